(* An OCaml program as a node of a topology, started by mycelium-run
   (runtime = "command", control = true): the program lists the service
   types it offers and calls [run]; this module does the rest.

   - Environment: MYCELIUM_NODE (this node's name), MYCELIUM_LINKS (its
     links, see Launch), MYCELIUM_SERVICES (its services and their params,
     see Services; --service on the command line wins over it),
     MYCELIUM_CONTROL_FD (the launcher's control channel, a Unix socket;
     lines end with '\n').
   - Services start first, then the links (a node-local bus without relay:
     the links of a topology form a full mesh, so a message from a link
     goes to local subscribers only, and each link announces only the
     local services' interest).
   - The control protocol of topology/src/node_main.cpp, node side:
     "started"; "links-up IDS" once every link has all its peers; after
     "expect PEER IDS"... "go": "ready" once each expected peer subscribed
     to those ids; "all-ready N" resolves [deployment_ready]; "status" is
     answered with "link ..." rows and "status {JSON}"; "stop" (or SIGTERM,
     SIGINT) stops gracefully: services, queued messages out (up to 1 s),
     a goodbye on every link, "stopped", exit 0. EOF on the channel (the
     launcher died) stops too, with exit code 6. "error CODE TEXT" precedes
     a failing exit; "service-done NAME" tells that a service stopped by
     itself ([Service.stop_service]).
   - Without a control channel (no MYCELIUM_CONTROL_FD, or --no-control for
     a node with control = false) the node is ready, and
     [deployment_ready] resolves with 1, once its links are up.

   Exit codes as the C++ node's: 0 clean stop, 2 bad command line or
   environment, 3 a service or link did not start, 4 peers not reached or
   their interest not seen within --ready-timeout, 6 the launcher went away. *)

open Lwt.Infix
module SL = Mycelium_lwt.Socket_link
module Svc = Mycelium_lwt.Service
module Params = Mycelium_lwt.Params

let exit_ok = 0
let exit_usage = 2
let exit_start = 3
let exit_peers = 4
let exit_orphaned = 6

type 'a service_type = {
  type_name : string;  (** e.g. "example.executor" *)
  make : string -> 'a Svc.service;  (** the service, given its instance name *)
}

let ready_p, ready_u = Lwt.wait ()

(** Resolves with the number of nodes once the whole deployment is ready
    (the launcher's "all-ready"; 1 when the node runs without a launcher).
    A service that produces data from nothing waits for it before its
    first publish, like a C++ service subscribed to
    mycelium::deployment_ready. *)
let deployment_ready () = ready_p

type 'a state = {
  node : string;
  schema : 'a Mycelium.Schema.t;
  bus : 'a Svc.t;
  mutable links : (Launch.link * 'a SL.t) list;
  ctl : Lwt_io.output_channel option;
  expected : (string, int list) Hashtbl.t;
  go : unit Lwt.t * unit Lwt.u;
  stop : int Lwt.t * int Lwt.u;
  ready_timeout : float;
  mutable ready : bool;
  mutable stopping : bool;
}

let log st fmt = Printf.ksprintf (fun s -> prerr_endline (Printf.sprintf "mycelium-ocaml-node %s: %s" st.node s)) fmt

let send st line =
  match st.ctl with
  | None -> Lwt.return_unit
  | Some oc -> Lwt.catch (fun () -> Lwt_io.write_line oc line >>= fun () -> Lwt_io.flush oc) (fun _ -> Lwt.return_unit)

let request_stop st code = if Lwt.is_sleeping (fst st.stop) then Lwt.wakeup_later (snd st.stop) code

let fail st code text =
  log st "error: %s" text;
  send st (Printf.sprintf "error %d %s" code text) >|= fun () -> request_stop st code

let now () = Unix.gettimeofday ()

let json_quote s =
  let b = Buffer.create (String.length s + 2) in
  Buffer.add_char b '"';
  String.iter
    (function
      | '"' -> Buffer.add_string b "\\\""
      | '\\' -> Buffer.add_string b "\\\\"
      | '\n' -> Buffer.add_string b "\\n"
      | '\t' -> Buffer.add_string b "\\t"
      | c when Char.code c < 0x20 -> Buffer.add_string b (Printf.sprintf "\\u%04x" (Char.code c))
      | c -> Buffer.add_char b c)
    s;
  Buffer.add_char b '"';
  Buffer.contents b

let ids_text ids = String.concat "," (List.map string_of_int ids)

let local_ids st = List.sort compare (Hashtbl.fold (fun id () acc -> id :: acc) (Svc.local_interest st.bus) [])

let distinct xs = List.sort_uniq compare xs

(* -- readiness -------------------------------------------------------------------------- *)

(* Every link has all its peers, or the reasons why not. *)
let await_links st =
  let deadline = now () +. st.ready_timeout in
  Lwt_list.filter_map_s
    (fun ((spec : Launch.link), l) ->
      let want = List.length spec.peers in
      SL.await l ~timeout:(max 0. (deadline -. now ())) (fun () -> List.length (distinct (SL.peer_nodes l)) >= want)
      >|= function
      | true -> None
      | false ->
        let have = SL.peer_nodes l in
        let missing = List.filter (fun p -> not (List.mem p have)) spec.peers in
        let err = (SL.stats l).last_error in
        Some
          (Printf.sprintf "link %s (%s) waits for %s%s" spec.name (Launch.endpoint spec) (String.concat ", " missing)
             (if err = "" then "" else " (last error: " ^ err ^ ")")))
    st.links

let known_type st id = List.exists (fun (t : Mycelium.Schema.type_info) -> t.type_id = id) st.schema.types

(* What the expected peers of link [l] have not subscribed to yet. *)
let lacking st ((spec : Launch.link), l) =
  List.filter_map
    (fun peer ->
      match Hashtbl.find_opt st.expected peer with
      | None -> None
      | Some ids -> (
        match List.filter (fun id -> known_type st id && not (SL.node_interested l ~node:peer id)) ids with
        | [] -> None
        | lack -> Some (Printf.sprintf "%s (type ids %s)" peer (String.concat ", " (List.map string_of_int lack)))))
    spec.peers

let await_interest st =
  let deadline = now () +. st.ready_timeout in
  Lwt_list.map_s
    (fun ((_, l) as x) ->
      SL.await l ~timeout:(max 0. (deadline -. now ())) (fun () -> lacking st x = []) >|= fun _ -> lacking st x)
    st.links
  >|= List.concat

let become_ready st =
  st.ready <- true;
  log st "ready";
  send st "ready"

let lifecycle st =
  await_links st >>= function
  | _ :: _ as why ->
    fail st exit_peers
      (Printf.sprintf "node '%s': peers not reached within %.0f ms: %s" st.node (st.ready_timeout *. 1000.)
         (String.concat "; " why))
  | [] -> (
    match st.ctl with
    | None ->
      become_ready st >|= fun () -> if Lwt.is_sleeping ready_p then Lwt.wakeup_later ready_u 1
    | Some _ -> (
      send st ("links-up " ^ ids_text (local_ids st)) >>= fun () ->
      fst st.go >>= fun () ->
      await_interest st >>= function
      | [] -> become_ready st
      | why ->
        fail st exit_peers
          (Printf.sprintf "node '%s': no interest yet from %s within %.0f ms" st.node (String.concat "; " why)
             (st.ready_timeout *. 1000.))))

(* -- status --------------------------------------------------------------------------------- *)

let link_state st l = if st.stopping then "stopped" else if SL.connections l > 0 then "up" else "down"

let status st =
  let rows =
    List.map
      (fun ((spec : Launch.link), l) ->
        let s = SL.stats l in
        Printf.sprintf "link %s\t%s\t%d\t%d\t%d\t%d\t%d" spec.name (link_state st l) (SL.connections l) s.received
          s.published
          (s.dropped_overflow + s.back_pressured + s.dropped_link_down + s.frames_too_large)
          (SL.queued l))
      st.links
  in
  let link_json ((spec : Launch.link), l) =
    let s = SL.stats l in
    Printf.sprintf
      "{\"name\":%s,\"endpoint\":%s,\"state\":%s,\"peers\":[%s],\"expected_peers\":%d,\"frames_sent\":%d,\"frames_received\":%d,\"queued\":%d,\"dropped_overflow\":%d,\"back_pressured\":%d,\"dropped_link_down\":%d,\"frames_too_large\":%d,\"bad_frames\":%d,\"connects\":%d,\"disconnects\":%d,\"last_error\":%s}"
      (json_quote spec.name) (json_quote (Launch.endpoint spec)) (json_quote (link_state st l))
      (String.concat "," (List.map json_quote (SL.peer_nodes l)))
      (List.length spec.peers) s.published s.received (SL.queued l) s.dropped_overflow s.back_pressured
      s.dropped_link_down s.frames_too_large s.bad_frames s.connects s.disconnects (json_quote s.last_error)
  in
  let json =
    Printf.sprintf "status {\"node\":%s,\"pid\":%d,\"runtime\":\"ocaml\",\"ready\":%b,\"links\":[%s]}"
      (json_quote st.node) (Unix.getpid ()) st.ready
      (String.concat "," (List.map link_json st.links))
  in
  Lwt_list.iter_s (send st) (rows @ [ json ])

(* -- the control channel ----------------------------------------------------------------------- *)

let split_verb line =
  match String.index_opt line ' ' with
  | None -> (line, "")
  | Some i -> (String.sub line 0 i, String.sub line (i + 1) (String.length line - i - 1))

let on_line st line =
  let verb, arg = split_verb line in
  match verb with
  | "expect" ->
    let peer, ids = split_verb arg in
    let ids = List.filter_map int_of_string_opt (String.split_on_char ',' ids) in
    Hashtbl.replace st.expected peer ids;
    Lwt.return_unit
  | "go" ->
    if Lwt.is_sleeping (fst st.go) then Lwt.wakeup_later (snd st.go) ();
    Lwt.return_unit
  | "all-ready" ->
    let n = match int_of_string_opt arg with Some n -> n | None -> 1 in
    if Lwt.is_sleeping ready_p then Lwt.wakeup_later ready_u n;
    Lwt.return_unit
  | "status" -> status st
  | "stop" -> request_stop st exit_ok; Lwt.return_unit
  | _ -> log st "unknown control line from the launcher: %s" line; Lwt.return_unit

let rec read_control st ic =
  Lwt.catch (fun () -> Lwt_io.read_line_opt ic) (fun _ -> Lwt.return None) >>= function
  | Some line -> on_line st line >>= fun () -> read_control st ic
  | None ->
    if not st.stopping then begin
      log st "the launcher went away (control channel closed): stopping";
      request_stop st exit_orphaned
    end;
    Lwt.return_unit

(* -- start and stop ------------------------------------------------------------------------------ *)

let start_links st specs =
  let rec go = function
    | [] -> Lwt.return (Ok ())
    | (spec : Launch.link) :: rest -> (
      match Launch.to_config ~node:st.node spec with
      | Error e -> Lwt.return (Error (Printf.sprintf "node '%s': %s" st.node e))
      | Ok cfg -> (
        Lwt.catch (fun () -> Svc.add_link st.bus cfg) (fun e -> Lwt.return (Error (Printexc.to_string e))) >>= function
        | Error e ->
          Lwt.return
            (Error
               (match spec.role with
                | SL.Listen ->
                  Printf.sprintf "node '%s': cannot listen on %s for %s: %s" st.node (Launch.endpoint spec)
                    (String.concat ", " spec.peers) e
                | SL.Connect ->
                  Printf.sprintf "node '%s': cannot start the link to '%s' (%s): %s" st.node
                    (String.concat ", " spec.peers) (Launch.endpoint spec) e))
        | Ok l ->
          st.links <- st.links @ [ (spec, l) ];
          go rest))
  in
  go specs

let shutdown st =
  st.stopping <- true;
  Lwt_list.iter_s Svc.stop_service st.bus.Svc.services >>= fun () ->
  (* what the services published last may still be queued towards peers *)
  let deadline = now () +. 1.0 in
  Lwt_list.iter_s
    (fun (_, l) -> SL.await l ~timeout:(max 0. (deadline -. now ())) (fun () -> SL.queued l = 0) >|= ignore)
    st.links
  >>= fun () ->
  Svc.stop st.bus >>= fun () ->
  log st "stopped";
  send st "stopped"

let service_done st (svc : 'a Svc.service) =
  { svc with
    Svc.on_stop =
      (fun ctx ->
        svc.on_stop ctx >>= fun () ->
        if st.stopping then Lwt.return_unit
        else begin
          log st "service %s finished" svc.name;
          send st ("service-done " ^ svc.name)
        end) }

(** Runs a node to its stop and returns its exit code ([run] without the
    command line and the environment; the tests drive it). [params] are
    the parameters of the services by service name (none by default),
    [placements] their placements by name (default [Pool], as in C++). *)
let main ?(params = []) ?(placements = []) ~schema ~node ~links ~ctl_fd ~ready_timeout services =
  (* a write to a peer or launcher that went away is an error, not a signal *)
  Sys.set_signal Sys.sigpipe Sys.Signal_ignore;
  let ctl, ctl_in =
    match ctl_fd with
    | None -> (None, None)
    | Some fd ->
      (Some (Lwt_io.of_fd ~mode:Lwt_io.output fd), Some (Lwt_io.of_fd ~mode:Lwt_io.input fd))
  in
  let st =
    { node; schema; bus = Svc.create ~relay:false ~schema node; links = []; ctl; expected = Hashtbl.create 8;
      go = Lwt.wait (); stop = Lwt.wait (); ready_timeout; ready = false; stopping = false }
  in
  let start_services () =
    Lwt_list.fold_left_s
      (fun acc (svc : 'a Svc.service) ->
        match acc with
        | Error _ -> Lwt.return acc
        | Ok () ->
          Lwt.catch
            (fun () ->
              let params = Option.value ~default:Params.empty (List.assoc_opt svc.name params) in
              let placement = Option.value ~default:Svc.Pool (List.assoc_opt svc.name placements) in
              Svc.start ~params ~placement st.bus (service_done st svc) >|= fun _ -> Ok ())
            (fun e ->
              Lwt.return
                (Error (Printf.sprintf "node '%s': service '%s' did not start: %s" node svc.name (Printexc.to_string e)))))
      (Ok ()) services
  in
  (start_services () >>= function Ok () -> start_links st links | Error e -> Lwt.return (Error e)) >>= function
  | Error e ->
    st.stopping <- true;
    fail st exit_start e >>= fun () -> Svc.stop st.bus >|= fun () -> exit_start
  | Ok () ->
    log st "started %d service(s), %d link(s)" (List.length services) (List.length links);
    send st "started" >>= fun () ->
    let stop_on_signal _ = log st "signal: stopping"; request_stop st exit_ok in
    ignore (Lwt_unix.on_signal Sys.sigterm stop_on_signal);
    ignore (Lwt_unix.on_signal Sys.sigint stop_on_signal);
    (match ctl_in with Some ic -> Lwt.async (fun () -> read_control st ic) | None -> ());
    Lwt.async (fun () ->
        Lwt.catch (fun () -> lifecycle st) (fun e -> fail st exit_start ("internal error: " ^ Printexc.to_string e)));
    fst st.stop >>= fun code -> shutdown st >|= fun () -> code

(* -- the command line ------------------------------------------------------------------------------ *)

(** Runs the node and exits. [types] are the service types the program
    offers. The instances: [--service NAME=TYPE] (repeated) when given (for
    running by hand; no params); else MYCELIUM_SERVICES, the services the
    topology places on this node with their params (see Services; a bad
    line, or a type the program does not offer, exits 2 naming it); else
    one of each type, named after the last dot-separated part of the type
    ("example.executor" -> "executor"). *)
let run ?program ~schema (types : 'a service_type list) =
  (* no automatic compaction (Gc_policy: large decoded fields made it
     shrink and regrow the heap all the time) *)
  ignore (Mycelium_lwt.Gc_policy.apply ());
  let program = match program with Some p -> p | None -> Filename.basename Sys.executable_name in
  (* the launcher's control channel, once known: a usage error goes there
     too ("error 2 TEXT"), so that the launcher's failure message has it *)
  let ctl_raw = ref None in
  let usage_error fmt =
    Printf.ksprintf
      (fun s ->
        prerr_endline (program ^ ": error: " ^ s);
        (match !ctl_raw with
         | Some fd ->
           let line = Bytes.of_string (Printf.sprintf "error %d %s\n" exit_usage s) in
           (try ignore (Unix.write fd line 0 (Bytes.length line)) with Unix.Unix_error _ -> ())
         | None -> ());
        exit exit_usage)
      fmt
  in
  let picked = ref [] and ready_timeout_ms = ref 30000 and no_control = ref false and list_types = ref false in
  let type_names = String.concat ", " (List.map (fun t -> t.type_name) types) in
  let specs =
    [ ( "--service",
        Arg.String (fun s -> picked := s :: !picked),
        "NAME=TYPE  start a service of TYPE named NAME (repeatable; wins over MYCELIUM_SERVICES; default: the \
         topology's services from MYCELIUM_SERVICES, else one of each type)" );
      ("--ready-timeout", Arg.Set_int ready_timeout_ms, "MS  wait this long for the peers and their interest (30000)");
      ("--no-control", Arg.Set no_control, " do not speak the control protocol (a node with control = false)");
      ("--list-types", Arg.Set list_types, " print the service types of this program, one per line") ]
  in
  let usage =
    Printf.sprintf
      "%s: an OCaml Mycelium node (schema %s), started by mycelium-run with runtime = \"command\". Service types: %s"
      program schema.Mycelium.Schema.package type_names
  in
  (try Arg.parse_argv Sys.argv specs (fun a -> raise (Arg.Bad ("unexpected argument '" ^ a ^ "'"))) usage
   with Arg.Bad m -> prerr_string m; exit exit_usage | Arg.Help m -> print_string m; exit exit_ok);
  if !list_types then begin
    List.iter (fun t -> print_endline t.type_name) types;
    exit exit_ok
  end;
  if !ready_timeout_ms < 1 then usage_error "--ready-timeout must be at least 1 ms";
  let ctl_fd =
    if !no_control then None
    else
      match Sys.getenv_opt "MYCELIUM_CONTROL_FD" with
      | None | Some "" -> None
      | Some s -> (
        match int_of_string_opt s with
        | Some n when n >= 0 ->
          (* Unix.file_descr is the descriptor number on Unix *)
          let fd : Unix.file_descr = Obj.magic n in
          (match Unix.fstat fd with
           | _ -> ()
           | exception Unix.Unix_error (e, _, _) ->
             usage_error "MYCELIUM_CONTROL_FD=%s is not an open descriptor (%s)" s (Unix.error_message e));
          Unix.set_close_on_exec fd;
          ctl_raw := Some fd;
          Some fd
        | _ -> usage_error "MYCELIUM_CONTROL_FD='%s' is not a descriptor number" s)
  in
  let default_name t =
    match String.rindex_opt t '.' with Some i -> String.sub t (i + 1) (String.length t - i - 1) | None -> t
  in
  let type_of name = List.find (fun t -> t.type_name = name) types in
  (* (instance name, type, params, placement) *)
  let source, instances =
    match (List.rev !picked, Sys.getenv_opt "MYCELIUM_SERVICES") with
    | [], Some text -> (
      match Services.parse ~offered:(List.map (fun t -> t.type_name) types) text with
      | Error e -> usage_error "%s" e
      | Ok xs ->
        ( "MYCELIUM_SERVICES",
          List.map (fun (i : Services.instance) -> (i.name, type_of i.type_name, i.params, i.placement)) xs ))
    | [], None -> ("one of each type", List.map (fun t -> (default_name t.type_name, t, Params.empty, Svc.Pool)) types)
    | xs, _ ->
      ( "--service",
      List.map
        (fun s ->
          match String.index_opt s '=' with
          | None -> usage_error "--service '%s': give NAME=TYPE" s
          | Some i -> (
            let name = String.sub s 0 i and ty = String.sub s (i + 1) (String.length s - i - 1) in
            if name = "" then usage_error "--service '%s': the name is empty" s;
            match List.find_opt (fun t -> t.type_name = ty) types with
            | Some t -> (name, t, Params.empty, Svc.Pool)
            | None -> usage_error "--service '%s': this program has no service type '%s' (it has: %s)" s ty type_names))
        xs )
  in
  List.iteri
    (fun i (n, _, _, _) ->
      if List.exists (fun (m, _, _, _) -> m = n) (List.filteri (fun j _ -> j > i) instances) then
        usage_error "two services are named '%s'" n)
    instances;
  let node =
    match Sys.getenv_opt "MYCELIUM_NODE" with
    | Some n when n <> "" -> n
    | _ ->
      usage_error
        "MYCELIUM_NODE is not set: this program is a node of a topology, started by mycelium-run (runtime = \"command\")"
  in
  let links =
    match Launch.parse (Option.value ~default:"" (Sys.getenv_opt "MYCELIUM_LINKS")) with
    | Ok l -> l
    | Error e -> usage_error "%s" e
  in
  prerr_endline
    (Printf.sprintf "mycelium-ocaml-node %s: services (%s): %s" node source
       (match instances with
        | [] -> "none"
        | _ ->
          String.concat ", "
            (List.map
               (fun (n, t, _, pl) -> Printf.sprintf "%s (%s, %s)" n t.type_name (Svc.placement_to_string pl))
               instances)));
  let ctl_fd = Option.map (fun fd -> Lwt_unix.of_unix_file_descr ~blocking:false ~set_flags:true fd) ctl_fd in
  let services = List.map (fun (name, t, _, _) -> t.make name) instances in
  let params = List.map (fun (name, _, p, _) -> (name, p)) instances in
  let placements = List.map (fun (name, _, _, pl) -> (name, pl)) instances in
  let code =
    Lwt_main.run
      (main ~params ~placements ~schema ~node ~links ~ctl_fd
         ~ready_timeout:(float_of_int !ready_timeout_ms /. 1000.) services)
  in
  exit code
