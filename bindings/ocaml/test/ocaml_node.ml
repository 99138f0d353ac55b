(* mycelium-ocaml-node: an OCaml program as a node of a topology, the way a
   launcher would start it: link settings on the command line, an echo
   service (link_test.toml: ping -> pong with the same content), "ready
   port=N" on stdout once the link is started, a clean stop (goodbye) at
   EOF on stdin or SIGTERM. Exit codes: 0 clean, 2 bad command line or
   unusable address. *)

open Lwt.Infix
module LT = Schemas.Link_test
module Svc = Mycelium_lwt.Service
module SL = Mycelium_lwt.Socket_link

let () =
  let kind = ref "tcp" and listen = ref "" and connect = ref "" and port = ref 0 in
  let secret = ref "" and name = ref "ocaml-node" and overflow = ref "block" in
  let send_queue = ref 4096 and heartbeat_ms = ref 100 and peer_timeout_ms = ref 1000 in
  let max_payload = ref Mycelium.Frame.default_max_payload in
  let specs =
    [
      ("--kind", Arg.Set_string kind, "unix|tcp|shm  link kind");
      ("--listen", Arg.Set_string listen, "ADDR  listen on a socket path (unix) or address (tcp)");
      ("--connect", Arg.Set_string connect, "ADDR  connect to a socket path (unix) or host (tcp)");
      ("--port", Arg.Set_int port, "N  TCP port (listen: 0 picks one)");
      ("--secret", Arg.Set_string secret, "S  shared secret");
      ("--name", Arg.Set_string name, "NODE  node name in the hello");
      ("--overflow", Arg.Set_string overflow, "P  block, drop_newest or disconnect");
      ("--send-queue", Arg.Set_int send_queue, "N  messages in flight per connection");
      ("--max-payload", Arg.Set_int max_payload, "N  largest payload in bytes");
      ("--heartbeat-ms", Arg.Set_int heartbeat_ms, "MS  heartbeat interval");
      ("--peer-timeout-ms", Arg.Set_int peer_timeout_ms, "MS  peer counts as lost after this silence");
    ]
  in
  let usage = "mycelium-ocaml-node: an OCaml echo node on one Unix, TCP or shared-memory link" in
  let bad msg = prerr_endline ("mycelium-ocaml-node: " ^ msg); exit 2 in
  (try Arg.parse_argv Sys.argv specs (fun a -> raise (Arg.Bad ("unexpected argument " ^ a))) usage
   with Arg.Bad m -> bad m | Arg.Help m -> print_string m; exit 0);
  let role, addr =
    match (!listen, !connect) with
    | "", "" -> bad "give --listen ADDRESS or --connect ADDRESS"
    | l, "" -> (SL.Listen, l)
    | "", c -> (SL.Connect, c)
    | _ -> bad "--listen and --connect exclude each other"
  in
  let address =
    match !kind with
    | "unix" | "shm" -> SL.Unix_path addr
    | "tcp" -> SL.Tcp (addr, !port)
    | k -> bad (Printf.sprintf "--kind: '%s' is not unix, tcp or shm" k)
  in
  let overflow = match SL.overflow_of_string !overflow with Ok o -> o | Error e -> bad ("--overflow: " ^ e) in
  let cfg =
    { SL.default_config with
      name = "node"; role; address; overflow; send_queue = !send_queue;
      link =
        { SL.default_config.link with
          node = !name; service = "ocaml-node"; secret = (if !secret = "" then None else Some !secret);
          max_payload = !max_payload; shm = (!kind = "shm");
          heartbeat_interval = float_of_int !heartbeat_ms /. 1000.;
          peer_timeout = float_of_int !peer_timeout_ms /. 1000. } }
  in
  Sys.set_signal Sys.sigpipe Sys.Signal_ignore;
  let stop_p, stop_u = Lwt.wait () in
  let request_stop () = if Lwt.is_sleeping stop_p then Lwt.wakeup_later stop_u () in
  ignore (Lwt_unix.on_signal Sys.sigterm (fun _ -> request_stop ()));
  ignore (Lwt_unix.on_signal Sys.sigint (fun _ -> request_stop ()));
  let code =
    Lwt_main.run
      (let n = Svc.create ~schema:LT.descriptor !name in
       Svc.start n
         { Svc.name = "echo";
           on_start =
             (fun ctx ->
               Svc.serve ctx LT.Ping.type_id (function
                 | LT.Ping p -> Lwt.return (Some (LT.Pong { seq = p.seq; payload = p.payload }))
                 | _ -> Lwt.return None);
               Lwt.return_unit);
           on_stop = (fun _ -> Lwt.return_unit) }
       >>= fun _ ->
       Svc.add_link n cfg >>= function
       | Error e -> prerr_endline ("mycelium-ocaml-node: " ^ e); Lwt.return 2
       | Ok l ->
         Printf.printf "ready port=%d\n%!" (SL.port l);
         Lwt.async (fun () ->
             Lwt.catch
               (fun () -> Lwt_io.read Lwt_io.stdin >|= fun _ -> ())
               (fun _ -> Lwt.return_unit)
             >|= request_stop);
         stop_p >>= fun () -> Svc.stop n >|= fun () -> 0)
  in
  exit code
