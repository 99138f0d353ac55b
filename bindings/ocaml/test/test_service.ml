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

(* -- placement ------------------------------------------------------------------------ *)

let seq_of = function LT.Ping p -> p.seq | LT.Data d -> d.seq | _ -> -1L

(* A service of [placement] recording the sequence numbers of the pings
   it handles; every third handler waits a little, so messages queue. *)
let recorder ~placement n name =
  let p = probe () in
  let active = ref 0 and max_active = ref 0 in
  let svc =
    { Svc.name;
      on_start =
        (fun ctx ->
          Svc.subscribe ctx LT.Ping.type_id (fun x ->
              incr active;
              max_active := max !max_active !active;
              let seq = seq_of x in
              let finish () = decr active; bump p (Int64.to_string seq) in
              if Int64.rem seq 3L = 0L then Lwt_unix.sleep 0.001 >|= finish
              else (finish (); Lwt.return_unit));
          Lwt.return_unit);
      on_stop = noop }
  in
  Svc.start ~placement n svc >|= fun ctx -> (ctx, p, max_active)

(* loop: an idle service is called inside the publisher's call, with no
   hand-off; pool: never on the caller's stack, but on its own task. *)
let test_direct_call_or_hand_off () =
  let n = Svc.create ~log:(fun _ -> ()) ~schema:LT.descriptor "local" in
  recorder ~placement:Svc.Loop n "on-loop" >>= fun (lctx, lp, _) ->
  recorder ~placement:Svc.Pool n "on-pool" >>= fun (pctx, pp, _) ->
  Svc.start n { Svc.name = "publisher"; on_start = noop; on_stop = noop } >>= fun pub ->
  Alcotest.(check bool) "placements" true (Svc.placement lctx = Svc.Loop && Svc.placement pctx = Svc.Pool);
  let sent = Svc.publish pub (LT.Ping { seq = 1L; payload = "" }) in
  (* nothing has been scheduled since the call *)
  Alcotest.(check (list string)) "loop: handled within publish" [ "1" ] lp.log;
  Alcotest.(check (list string)) "pool: not on the publisher's stack" [] pp.log;
  sent >>= fun st ->
  Alcotest.(check bool) "delivered" true (st = Svc.Ok_sent);
  await pp "the pool service's handler" (fun () -> pp.n = 1) >>= fun () ->
  Alcotest.(check (list string)) "pool: handled on its task" [ "1" ] pp.log;
  Svc.stop n

(* Messages of one publisher reach both placements in order, one handler
   at a time, also when handlers wait and messages queue behind them. *)
let test_order_per_publisher () =
  let n = Svc.create ~log:(fun _ -> ()) ~schema:LT.descriptor "local" in
  recorder ~placement:Svc.Loop n "on-loop" >>= fun (_, lp, lmax) ->
  recorder ~placement:Svc.Pool n "on-pool" >>= fun (_, pp, pmax) ->
  Svc.start n { Svc.name = "publisher"; on_start = noop; on_stop = noop } >>= fun pub ->
  let count = 300 in
  Lwt_list.iter_s (fun i -> Svc.publish pub (LT.Ping { seq = Int64.of_int i; payload = "" }) >|= ignore)
    (List.init count (fun i -> i + 1))
  >>= fun () ->
  await lp "every ping on the loop service" (fun () -> lp.n = count) >>= fun () ->
  await pp "every ping on the pool service" (fun () -> pp.n = count) >>= fun () ->
  let expected = List.init count (fun i -> string_of_int (i + 1)) in
  Alcotest.(check (list string)) "loop: in order" expected (List.rev lp.log);
  Alcotest.(check (list string)) "pool: in order" expected (List.rev pp.log);
  Alcotest.(check int) "loop: one handler at a time" 1 !lmax;
  Alcotest.(check int) "pool: one handler at a time" 1 !pmax;
  Svc.stop n

(* The synchronous part of a handler over the budget is counted and
   logged (once a second at most); quick handlers are not. *)
let test_budget () =
  let lines = ref [] in
  let n = Svc.create ~log:(fun l -> lines := l :: !lines) ~handler_budget:0.02 ~schema:LT.descriptor "budget-node" in
  let p = probe () in
  Svc.start ~placement:Svc.Loop n
    { Svc.name = "slowpoke";
      on_start =
        (fun ctx ->
          Svc.subscribe ctx LT.Ping.type_id (fun x ->
              (* 60 ms of blocking on the Lwt thread, three times the budget *)
              if seq_of x = 2L then Unix.sleepf 0.06;
              bump p "ping";
              Lwt.return_unit);
          Lwt.return_unit);
      on_stop = noop }
  >>= fun ctx ->
  Lwt_list.iter_s (fun i -> Svc.publish ctx (LT.Ping { seq = Int64.of_int i; payload = "" }) >|= ignore) [ 1; 2; 3; 4 ]
  >>= fun () ->
  await p "four pings" (fun () -> p.n = 4) >>= fun () ->
  Alcotest.(check int) "one slow handler counted" 1 (Svc.slow_handlers ctx);
  (match !lines with
   | [ l ] ->
     List.iter
       (fun part -> Alcotest.(check bool) (Printf.sprintf "the log line has %S: %s" part l) true (Astring_like.contains l part))
       [ "node budget-node service slowpoke"; "handler of 'ping' ran "; "over its budget of 20000 us";
         "place the service on the pool" ]
   | l -> Alcotest.failf "expected one log line, got %d: %s" (List.length l) (String.concat " | " l));
  Svc.stop n

(* A pool service's mailbox is bounded: what does not fit is dropped,
   counted and logged; what fits is handled in order. *)
let test_mailbox_bound () =
  let lines = ref [] in
  let n = Svc.create ~log:(fun l -> lines := l :: !lines) ~mailbox_limit:3 ~schema:LT.descriptor "local" in
  let gate, open_gate = Lwt.wait () in
  let p = probe () in
  Svc.start n
    { Svc.name = "gated";
      on_start =
        (fun ctx ->
          Svc.subscribe ctx LT.Ping.type_id (fun x ->
              bump p (Int64.to_string (seq_of x));
              if seq_of x = 1L then gate else Lwt.return_unit);
          Lwt.return_unit);
      on_stop = noop }
  >>= fun ctx ->
  let ping i = Svc.publish ctx (LT.Ping { seq = Int64.of_int i; payload = "" }) >|= ignore in
  ping 1 >>= fun () ->
  await p "the first handler to start" (fun () -> p.n = 1) >>= fun () ->
  Lwt_list.iter_s ping [ 2; 3; 4; 5; 6 ] >>= fun () ->
  Alcotest.(check int) "three wait" 3 (Svc.queued ctx);
  Alcotest.(check int) "two dropped" 2 (Svc.dropped ctx);
  (match !lines with
   | [ l ] ->
     Alcotest.(check bool) ("logged once, the rest counted: " ^ l) true
       (Astring_like.contains l "mailbox full (3 messages): a ping message was dropped")
   | l -> Alcotest.failf "expected one log line, got %d" (List.length l));
  Lwt.wakeup open_gate ();
  await p "the queued ones" (fun () -> p.n = 4) >>= fun () ->
  Alcotest.(check (list string)) "in order" [ "1"; "2"; "3"; "4" ] (List.rev p.log);
  Svc.stop n

(* A service on a node linked to a C++ peer that drops silent links after
   400 ms; its handler of data #1 blocks (or computes) for 1.2 s through
   Service.offload. [check] gets the link, the service and the data seen. *)
let with_slow_handler ~placement ~work check =
  Peer.with_peer
    [ "--kind"; "tcp"; "--listen"; "127.0.0.1"; "--port"; "0"; "--name"; "cxx-peer"; "--heartbeat-ms"; "50";
      "--peer-timeout-ms"; "400" ]
    (fun peer ->
      let n = Svc.create ~log:(fun _ -> ()) ~schema:LT.descriptor "ocaml-node" in
      let p = probe () in
      Svc.start ~placement n
        { Svc.name = "worker";
          on_start =
            (fun ctx ->
              Svc.subscribe ctx LT.Data.type_id (fun x ->
                  let seq = seq_of x in
                  (if seq = 1L then Svc.offload ctx work else Lwt.return_unit) >|= fun () ->
                  bump p (Int64.to_string seq));
              Lwt.return_unit);
          on_stop = noop }
      >>= fun ctx ->
      Svc.add_link n
        { SL.default_config with
          name = "to-cxx"; address = SL.Tcp ("127.0.0.1", peer.port);
          link = { SL.default_config.link with node = "ocaml-node"; heartbeat_interval = 0.05; peer_timeout = 0.4 };
          log = (fun _ -> ()) }
      >>= function
      | Error e -> Alcotest.failf "add_link: %s" e
      | Ok l ->
        Lwt.finalize
          (fun () ->
            SL.await_peer_interest l LT.Command.type_id ~timeout >>= fun ok ->
            Alcotest.(check bool) "peer takes commands" true ok;
            Svc.publish ctx (LT.Command { text = "send 5 16" }) >>= fun _ -> check l ctx p)
          (fun () -> Svc.stop n))

let sleep_1_2 () = Unix.sleepf 1.2

(* 1.2 s of work that allocates (the runtime lock changes hands at OCaml's
   50 ms ticks) *)
let compute_1_2 () =
  let t0 = Unix.gettimeofday () in
  let acc = ref [] in
  while Unix.gettimeofday () -. t0 < 1.2 do
    acc := [ Random.int 10 ] :: (match !acc with _ :: tl when List.length tl > 64 -> [] | l -> l)
  done

let pool_keeps_the_link work () =
  with_slow_handler ~placement:Svc.Pool ~work (fun l ctx p ->
      await p "the five data in order" (fun () -> p.n = 5) >|= fun () ->
      Alcotest.(check (list string)) "order" [ "1"; "2"; "3"; "4"; "5" ] (List.rev p.log);
      let st = SL.stats l in
      (* the Lwt thread read the peer's heartbeats and sent ours meanwhile *)
      Alcotest.(check int) "the link never went down" 0 st.disconnects;
      Alcotest.(check int) "one connection" 1 st.connects;
      Alcotest.(check int) "the handler's own part was quick" 0 (Svc.slow_handlers ctx))

let test_loop_loses_the_link () =
  with_slow_handler ~placement:Svc.Loop ~work:sleep_1_2 (fun l ctx p ->
      await p "the slow handler to return" (fun () -> p.n >= 1) >>= fun () ->
      (* the whole Lwt thread stood still for 1.2 s: the peer dropped us *)
      SL.await l ~timeout (fun () -> (SL.stats l).disconnects >= 1) >|= fun dropped ->
      Alcotest.(check bool) "the link went down" true dropped;
      Alcotest.(check string) "data 1 first" "1" (List.hd (List.rev p.log));
      Alcotest.(check int) "counted as a slow handler" 1 (Svc.slow_handlers ctx))

let () =
  Alcotest.run "service"
    [
      ( "local",
        [ Alcotest.test_case "request/reply, no responder, timeout" `Quick (run test_request_reply);
          Alcotest.test_case "on_start/on_stop, one handler at a time, failures" `Quick (run test_lifecycle_and_serial) ] );
      ("link", [ Alcotest.test_case "services across a link to a C++ peer" `Quick (run test_over_link) ]);
      ( "placement",
        [ Alcotest.test_case "loop: a direct call; pool: its own task" `Quick (run test_direct_call_or_hand_off);
          Alcotest.test_case "order per publisher in both placements" `Quick (run test_order_per_publisher);
          Alcotest.test_case "a handler over the budget is counted and logged" `Quick (run test_budget);
          Alcotest.test_case "a full pool mailbox drops, counts and logs" `Quick (run test_mailbox_bound);
          Alcotest.test_case "pool: blocking offloaded 3x peer_timeout keeps the link" `Quick
            (run (pool_keeps_the_link sleep_1_2));
          Alcotest.test_case "pool: computing offloaded 3x peer_timeout keeps the link" `Quick
            (run (pool_keeps_the_link compute_1_2));
          Alcotest.test_case "loop: the same handler stalls the node, the peer drops it" `Quick
            (run test_loop_loses_the_link) ] );
    ]
