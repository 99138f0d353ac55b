(* Services in OCaml, in the spirit of the C++ API (docs/services.md): a
   node is a local bus plus links; a service has handlers per message type,
   publishes, makes requests with a timeout, and has on_start / on_stop.

   - Handlers of one service never run concurrently: each service has a
     mailbox served by one Lwt loop, in arrival order.
   - A handler that raises is counted ([failures]) and logged; the service
     goes on with the next message.
   - A message that arrived over a link goes to local subscribers and to the
     other links whose peers want it, never back over its own link (no
     echo). A link announces what local services and the peers of the other
     links subscribed to. With [~relay:false] (nodes of a topology, whose
     links form a full mesh) a message from a link goes to local
     subscribers only, and links announce only the local subscriptions.
   - Request/reply across a link has no correlation id on the wire: the
     reply is the first message accepted by the caller's [reply] function
     (schemas carry a token, e.g. report_request/report).

   Everything runs on the Lwt thread of the program; not thread-safe. *)

open Lwt.Infix
module SL = Socket_link
module Errc = Mycelium.Errc

type publish_status = SL.publish_status = Ok_sent | No_subscriber | Back_pressured

type 'a t = {
  name : string;
  schema : 'a Mycelium.Schema.t;
  log : string -> unit;
  relay : bool;  (** forward messages between links (see the header) *)
  mutable services : 'a ctx list;
  mutable links : 'a SL.t list;
  mutable waiters : 'a waiter list;
  mutable stopped : bool;
}

and 'a ctx = {
  node : 'a t;
  svc_name : string;
  handlers : (int, 'a -> unit Lwt.t) Hashtbl.t;
  mailbox : 'a Queue.t;
  wake : unit Lwt_condition.t;
  mutable running : bool;
  mutable failures : int;
  mutable handled : int;
  mutable loop : unit Lwt.t;
  on_stop : 'a ctx -> unit Lwt.t;
  params : Params.t;  (** the instance's parameters (topology [services.X] params) *)
}

and 'a waiter = { w_type : int; accept : 'a -> bool; resolve : 'a Lwt.u }

type 'a service = {
  name : string;
  on_start : 'a ctx -> unit Lwt.t;  (** subscribe here; runs before any message *)
  on_stop : 'a ctx -> unit Lwt.t;  (** after the last handler *)
}

let create ?(log = prerr_endline) ?(relay = true) ~schema name =
  { name; schema; log; relay; services = []; links = []; waiters = []; stopped = false }

let name ctx = ctx.svc_name
let node ctx = ctx.node
let links n = n.links
let failures ctx = ctx.failures
let handled ctx = ctx.handled

(** The service's parameters (given to [start]; from the topology under
    mycelium-run): look them up with [Params.int], [Params.float],
    [Params.bool], [Params.string], [Params.strings]. *)
let params ctx = ctx.params

(* -- interest ----------------------------------------------------------------------- *)

let local_interest n =
  let h = Hashtbl.create 16 in
  List.iter (fun s -> if s.running then Hashtbl.iter (fun id _ -> Hashtbl.replace h id ()) s.handlers) n.services;
  List.iter (fun w -> Hashtbl.replace h w.w_type ()) n.waiters;
  h

(* What link [l] announces: local subscriptions and the other links' peers. *)
let refresh_interest n =
  let local = local_interest n in
  List.iter
    (fun l ->
      let want = Hashtbl.copy local in
      if n.relay then
        List.iter (fun o -> if o != l then List.iter (fun id -> Hashtbl.replace want id ()) (SL.peer_interest o)) n.links;
      List.iter (fun id -> if not (Hashtbl.mem want id) then SL.unsubscribe l id) (SL.interest l);
      Hashtbl.iter (fun id () -> SL.subscribe l id) want)
    n.links

(* -- delivery --------------------------------------------------------------------------- *)

let deliver_local n x =
  let id = n.schema.type_id_of x in
  let delivered = ref 0 in
  List.iter
    (fun s ->
      if s.running && Hashtbl.mem s.handlers id then begin
        incr delivered;
        Queue.push x s.mailbox;
        Lwt_condition.signal s.wake ()
      end)
    n.services;
  let ws, rest = List.partition (fun w -> w.w_type = id && w.accept x) n.waiters in
  if ws <> [] then begin
    n.waiters <- rest;
    List.iter (fun w -> Lwt.wakeup_later w.resolve x) ws;
    refresh_interest n
  end;
  !delivered + List.length ws

let combine a b =
  match (a, b) with
  | Back_pressured, _ | _, Back_pressured -> Back_pressured
  | Ok_sent, _ | _, Ok_sent -> Ok_sent
  | No_subscriber, No_subscriber -> No_subscriber

(* To the links other than [except]. *)
let to_links ?except n x =
  Lwt_list.fold_left_s
    (fun acc l ->
      match except with
      | Some e when e == l -> Lwt.return acc
      | _ -> SL.publish l x >|= combine acc)
    No_subscriber n.links

(** Publishes [x] to every local subscriber and every peer that wants it. *)
let publish_node n x =
  let local = deliver_local n x in
  to_links n x >|= fun st -> if local > 0 then combine Ok_sent st else st

let publish ctx x = publish_node ctx.node x

(* -- links --------------------------------------------------------------------------------- *)

(** Adds a link (connecting or listening) to the node. *)
let add_link n (cfg : SL.config) =
  let self = ref None in
  let on_event = function
    | SL.Message (_, x) ->
      ignore (deliver_local n x);
      (match !self with
       | Some l when n.relay ->
         Lwt.async (fun () ->
             Lwt.catch (fun () -> to_links ~except:l n x >|= ignore) (fun e ->
                 n.log (Printf.sprintf "mycelium-ocaml: node %s: forwarding failed: %s" n.name (Printexc.to_string e));
                 Lwt.return_unit))
       | Some _ | None -> ())
    | SL.Interest _ | SL.Up _ | SL.Down _ -> refresh_interest n
    | SL.Bad_frame _ -> ()
  in
  SL.start ~schema:n.schema ~on_event ~interest:(Hashtbl.fold (fun id () acc -> id :: acc) (local_interest n) []) cfg
  >|= function
  | Error e -> Error e
  | Ok l ->
    self := Some l;
    n.links <- l :: n.links;
    refresh_interest n;
    Ok l

(* -- services ------------------------------------------------------------------------------- *)

(** [f] for every message of [type_id] (replaces an earlier handler). *)
let subscribe ctx type_id f =
  Hashtbl.replace ctx.handlers type_id f;
  refresh_interest ctx.node

let unsubscribe ctx type_id =
  Hashtbl.remove ctx.handlers type_id;
  refresh_interest ctx.node

(** Publishes [req] and waits up to [timeout] seconds for the first message
    of [reply_type] that [accept] takes: [Error No_responder] when nobody
    subscribes to the request's type, [Error Request_timeout] after the
    timeout. The reply type is subscribed on the links while waiting. *)
let request ctx ~reply_type ~accept ~timeout req =
  let n = ctx.node in
  let p, u = Lwt.wait () in
  let w = { w_type = reply_type; accept; resolve = u } in
  n.waiters <- w :: n.waiters;
  refresh_interest n;
  let withdraw () =
    if List.memq w n.waiters then begin
      n.waiters <- List.filter (fun x -> x != w) n.waiters;
      refresh_interest n
    end
  in
  publish_node n req >>= function
  | No_subscriber ->
    withdraw ();
    Lwt.return (Error Errc.No_responder)
  | Ok_sent | Back_pressured ->
    Lwt.pick [ (p >|= fun x -> Ok x); (Lwt_unix.sleep timeout >|= fun () -> Error Errc.Request_timeout) ]
    >|= fun r ->
    withdraw ();
    r

(** Answers every [req_type] message with what [f] returns (if anything). *)
let serve ctx req_type f =
  subscribe ctx req_type (fun req ->
      f req >>= function
      | Some reply -> publish ctx reply >|= ignore
      | None -> Lwt.return_unit)

let run_mailbox ctx =
  let rec loop () =
    match Queue.take_opt ctx.mailbox with
    | Some x ->
      let id = ctx.node.schema.type_id_of x in
      (match Hashtbl.find_opt ctx.handlers id with
       | None -> Lwt.return_unit
       | Some f ->
         Lwt.catch
           (fun () -> f x >|= fun () -> ctx.handled <- ctx.handled + 1)
           (fun e ->
             ctx.failures <- ctx.failures + 1;
             ctx.node.log
               (Printf.sprintf "mycelium-ocaml: node %s service %s: handler for %s raised %s"
                  ctx.node.name ctx.svc_name (Mycelium.Schema.type_name ctx.node.schema id)
                  (Printexc.to_string e));
             Lwt.return_unit))
      >>= loop
    | None -> if ctx.running then Lwt_condition.wait ctx.wake >>= loop else Lwt.return_unit
  in
  loop ()

(** Starts a service with its [params] (none by default): [on_start], then
    its mailbox loop. *)
let start ?(params = Params.empty) n (svc : 'a service) =
  let ctx =
    { node = n; svc_name = svc.name; handlers = Hashtbl.create 8; mailbox = Queue.create ();
      wake = Lwt_condition.create (); running = true; failures = 0; handled = 0;
      loop = Lwt.return_unit; on_stop = svc.on_stop; params }
  in
  n.services <- ctx :: n.services;
  svc.on_start ctx >|= fun () ->
  ctx.loop <- run_mailbox ctx;
  refresh_interest n;
  ctx

(** Stops a service: no new messages, the queued ones are handled, then
    [on_stop]. *)
let stop_service ctx =
  if not ctx.running then Lwt.return_unit
  else begin
    ctx.running <- false;
    Lwt_condition.signal ctx.wake ();
    refresh_interest ctx.node;
    ctx.loop >>= fun () ->
    ctx.node.services <- List.filter (fun s -> s != ctx) ctx.node.services;
    ctx.on_stop ctx
  end

(** Stops every service (see [stop_service]), then the links (a goodbye
    on each connection). *)
let stop n =
  n.stopped <- true;
  Lwt_list.iter_s stop_service n.services >>= fun () -> Lwt_list.iter_s SL.stop n.links
