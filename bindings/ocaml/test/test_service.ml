(* The OCaml service API: handlers per type, publish, request/reply with a
   timeout, on_start/on_stop, one handler at a time, failing handlers; in
   one process and across a link to a real C++ peer. *)

open Lwt.Infix
open Schemas
open Testutil
module LT = Link_test
module Svc = Mycelium_lwt.Service
module SL = Mycelium_lwt.Socket_link
module E = Mycelium.Errc

let timeout = 10.
let run f () = Lwt_main.run (f ())

(* A condition-backed counter to wait on. *)
type probe = { mutable n : int; mutable log : string list; c : unit Lwt_condition.t }

let probe () = { n = 0; log = []; c = Lwt_condition.create () }
let bump p what = p.n <- p.n + 1; p.log <- what :: p.log; Lwt_condition.broadcast p.c ()

let await p what cond =
  let deadline = Unix.gettimeofday () +. timeout in
  let rec loop () =
    if cond () then Lwt.return_unit
    else
      let left = deadline -. Unix.gettimeofday () in
      if left <= 0. then Alcotest.failf "timed out waiting for %s" what
      else Lwt.pick [ Lwt_condition.wait p.c; Lwt_unix.sleep left ] >>= loop
  in
  loop ()

let noop _ = Lwt.return_unit

let reporter =
  {
    Svc.name = "reporter";
    on_start =
      (fun ctx ->
        Svc.serve ctx LT.Report_request.type_id (function
          | LT.Report_request r -> Lwt.return (Some (LT.Report { LT.Report.default with token = r.token; received = 7L }))
          | _ -> Lwt.return None);
        Lwt.return_unit);
    on_stop = noop;
  }

let is_report tok = function LT.Report r -> r.token = tok | _ -> false

let test_request_reply () =
  let n = Svc.create ~schema:LT.descriptor "local" in
  Svc.start n reporter >>= fun _ ->
  Svc.start n { Svc.name = "client"; on_start = noop; on_stop = noop } >>= fun client ->
  Svc.request client ~reply_type:LT.Report.type_id ~accept:(is_report 5L) ~timeout
    (LT.Report_request { token = 5L })
  >>= fun r ->
  (match r with
   | Ok (LT.Report r) -> Alcotest.(check int64) "reply" 7L r.received
   | Ok _ -> Alcotest.fail "wrong reply type"
   | Error e -> Alcotest.failf "request: %s" (E.to_string e));
  Svc.request client ~reply_type:LT.Pong.type_id ~accept:(fun _ -> true) ~timeout
    (LT.Ping { seq = 1L; payload = "" })
  >>= fun r ->
  Alcotest.(check bool) "no responder" true (r = Error E.No_responder);
  (* a responder that never answers *)
  Svc.start n
    { Svc.name = "mute"; on_start = (fun ctx -> Svc.subscribe ctx LT.Ping.type_id noop; Lwt.return_unit); on_stop = noop }
  >>= fun _ ->
  Svc.request client ~reply_type:LT.Pong.type_id ~accept:(fun _ -> true) ~timeout:0.05
    (LT.Ping { seq = 2L; payload = "" })
  >>= fun r ->
  Alcotest.(check bool) "timeout" true (r = Error E.Request_timeout);
  Svc.stop n

let test_lifecycle_and_serial () =
  let n = Svc.create ~log:(fun _ -> ()) ~schema:LT.descriptor "local" in
  let p = probe () in
  let active = ref 0 and max_active = ref 0 in
  let svc =
    {
      Svc.name = "worker";
      on_start =
        (fun ctx ->
          bump p "start";
          Svc.subscribe ctx LT.Ping.type_id (function
            | LT.Ping { seq = 3L; _ } -> failwith "seq 3 fails"
            | LT.Ping { seq; _ } ->
              incr active;
              max_active := max !max_active !active;
              (* a slow handler: the next message must wait for it *)
              Lwt_unix.sleep 0.005 >|= fun () ->
              decr active;
              bump p (Printf.sprintf "ping %Ld" seq)
            | _ -> Lwt.return_unit);
          Lwt.return_unit);
      on_stop = (fun _ -> bump p "stop"; Lwt.return_unit);
    }
  in
  Svc.start n svc >>= fun ctx ->
  Lwt_list.iter_s (fun i -> Svc.publish ctx (LT.Ping { seq = Int64.of_int i; payload = "" }) >|= ignore) [ 1; 2; 3; 4; 5 ]
  >>= fun () ->
  Svc.stop_service ctx >|= fun () ->
  Alcotest.(check (list string)) "order: start, handlers in arrival order, stop"
    [ "start"; "ping 1"; "ping 2"; "ping 4"; "ping 5"; "stop" ] (List.rev p.log);
  Alcotest.(check int) "never two handlers at once" 1 !max_active;
  Alcotest.(check int) "the failure is counted" 1 (Svc.failures ctx);
  Alcotest.(check int) "the rest handled" 4 (Svc.handled ctx)

let test_over_link () =
  Peer.with_peer [ "--kind"; "tcp"; "--listen"; "127.0.0.1"; "--port"; "0"; "--name"; "cxx-peer"; "--peer-timeout-ms"; "10000" ]
    (fun peer ->
      let n = Svc.create ~log:(fun _ -> ()) ~schema:LT.descriptor "ocaml-node" in
      let p = probe () in
      Svc.start n
        { Svc.name = "chatter";
          on_start = (fun ctx -> Svc.subscribe ctx LT.Chat.type_id (fun _ -> bump p "chat"; Lwt.return_unit); Lwt.return_unit);
          on_stop = noop }
      >>= fun chatter ->
      Svc.add_link n
        { SL.default_config with
          name = "to-cxx"; address = SL.Tcp ("127.0.0.1", peer.port);
          link = { SL.default_config.link with node = "ocaml-node"; peer_timeout = 10. };
          log = (fun _ -> ()) }
      >>= function
      | Error e -> Alcotest.failf "add_link: %s" e
      | Ok l ->
        Lwt.finalize
          (fun () ->
            SL.await_peer_interest l LT.Report_request.type_id ~timeout >>= fun ok ->
            Alcotest.(check bool) "peer serves report_request" true ok;
            SL.await_peer_interest l LT.Chat.type_id ~timeout >>= fun ok ->
            Alcotest.(check bool) "peer wants chats" true ok;
            (* ping -> pong through the C++ echo, as a request *)
            Svc.request chatter ~reply_type:LT.Pong.type_id
              ~accept:(function LT.Pong q -> q.seq = 77L | _ -> false) ~timeout
              (LT.Ping { seq = 77L; payload = "over the link" })
            >>= fun r ->
            (match r with
             | Ok (LT.Pong q) -> Alcotest.(check string) "echoed" "over the link" q.payload
             | _ -> Alcotest.fail "no pong from the C++ peer");
            Svc.publish chatter (LT.Chat { origin = "ocaml-node"; seq = 1L }) >>= fun st ->
            Alcotest.(check bool) "our chat: delivered locally and sent" true (st = Svc.Ok_sent);
            Svc.publish chatter (LT.Command { text = "chat 3" }) >>= fun _ ->
            await p "our chat and the peer's 3" (fun () -> p.n >= 4) >>= fun () ->
            Svc.request chatter ~reply_type:LT.Report.type_id ~accept:(is_report 9L) ~timeout
              (LT.Report_request { token = 9L })
            >|= function
            | Ok (LT.Report r) ->
              (* ours once, its own 3 locally; none of its 3 echoed back to it *)
              Alcotest.(check int64) "the peer's chat count" 4L r.chats
            | _ -> Alcotest.fail "no report from the C++ peer")
          (fun () -> Svc.stop n))

let () =
  Alcotest.run "service"
    [
      ( "local",
        [ Alcotest.test_case "request/reply, no responder, timeout" `Quick (run test_request_reply);
          Alcotest.test_case "on_start/on_stop, one handler at a time, failures" `Quick (run test_lifecycle_and_serial) ] );
      ("link", [ Alcotest.test_case "services across a link to a C++ peer" `Quick (run test_over_link) ]);
    ]
