(* The OCaml service API: handlers per type, publish, request/reply with a
   timeout, on_start/on_stop, one handler at a time, failing handlers,
   placement, views in loop services; in one process and across links to
   real C++ peers. *)

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

(* -- views ------------------------------------------------------------------------------- *)

let sock_counter = ref 0

(* A socket path in /tmp, removed when the suite exits (a listener leaves its file). *)
let sock_path what =
  incr sock_counter;
  let p =
    Filename.concat (Filename.get_temp_dir_name ())
      (Printf.sprintf "mycelium-ocaml-service-%d-%s-%d.sock" (Unix.getpid ()) what !sock_counter)
  in
  at_exit (fun () -> try Sys.remove p with Sys_error _ -> ());
  p

let contains = Testutil.Astring_like.contains
let count_lines lines needle = List.length (List.filter (fun l -> contains l needle) !lines)

(* Whether every view kept past its handler has expired, and reading one raises. *)
let check_expired what kept =
  Alcotest.(check bool) (what ^ ": every view expired after its handler") true
    (List.for_all (fun v -> not (Mycelium.View.is_valid v)) kept);
  match Mycelium.View.to_string (List.hd kept) with
  | _ -> Alcotest.failf "%s: an expired view was read" what
  | exception Mycelium.View.Expired -> ()

(* A loop service with a view subscription to pongs, on a node linked to a
   C++ echo (over a Unix socket or shared memory) and to an OCaml sink that
   takes pongs. Every pong reaches the view handler from the receive path
   (no copy: view_copies stays 0), with the right bytes, valid in the
   handler and expired after it; a pool service of the same node gets each
   as an owned value, and the sink through the relay, all in order. A
   handler that raises, and one that uses its view in the promise it
   returns, are counted and logged. A pong from the sink reaches the
   services and is not echoed to the sink; a request gets its reply as a
   value. After unsubscribe, pongs come as values again. *)
let views_over_link ~shm () =
  let path = sock_path "peer" and sink_path = sock_path "sink" in
  Peer.with_peer
    [ "--kind"; (if shm then "shm" else "unix"); "--listen"; path; "--port"; "0"; "--name"; "cxx-peer";
      "--peer-timeout-ms"; "10000" ]
    (fun _peer ->
      let lines = ref [] and logged = probe () in
      let n =
        Svc.create ~log:(fun l -> lines := l :: !lines; bump logged l) ~schema:LT.descriptor "ocaml-node"
      in
      let vp = probe () and op = probe () and sp = probe () in
      let expected = Hashtbl.create 16 in
      let kept = ref [] and wrong = ref [] and owned = ref [] and at_sink = ref [] in
      Svc.start ~placement:Svc.Loop n
        { Svc.name = "viewer";
          on_start =
            (fun ctx ->
              Svc.subscribe_view ctx ~decode_view:LT.View.decode_any_fields LT.Pong.type_id (function
                | LT.View.Pong pv ->
                  let v = pv.payload in
                  if not (Mycelium.View.is_valid v) then
                    wrong := Printf.sprintf "pong %Ld: expired in its handler" pv.seq :: !wrong;
                  (match Hashtbl.find_opt expected pv.seq with
                   | Some b when Mycelium.View.equal_string v b -> ()
                   | Some _ -> wrong := Printf.sprintf "pong %Ld: the view's bytes differ" pv.seq :: !wrong
                   | None -> wrong := Printf.sprintf "pong %Ld: not expected" pv.seq :: !wrong);
                  kept := v :: !kept;
                  bump vp (Int64.to_string pv.seq);
                  if pv.seq = 100L then failwith "pong 100 fails"
                  else if pv.seq = 101L then
                    (* the promise outlives the call: its view has expired by then *)
                    Lwt.pause () >|= fun () -> ignore (Mycelium.View.length v)
                  else Lwt.return_unit
                | _ -> wrong := "a view of another type" :: !wrong; Lwt.return_unit);
              Lwt.return_unit);
          on_stop = noop }
      >>= fun viewer ->
      Svc.start n
        { Svc.name = "owner";
          on_start =
            (fun ctx ->
              Svc.subscribe ctx LT.Pong.type_id (function
                | LT.Pong q -> owned := (q.seq, q.payload) :: !owned; bump op (Int64.to_string q.seq); Lwt.return_unit
                | _ -> Lwt.return_unit);
              Lwt.return_unit);
          on_stop = noop }
      >>= fun _owner ->
      Svc.start n { Svc.name = "pinger"; on_start = noop; on_stop = noop } >>= fun pinger ->
      let sink_cfg =
        { SL.default_config with
          name = "sink"; address = SL.Unix_path sink_path; role = SL.Listen;
          link = { SL.default_config.link with node = "sink"; peer_timeout = 10. }; log = (fun _ -> ()) }
      in
      SL.start ~interest:[ LT.Pong.type_id ] ~schema:LT.descriptor
        ~on_event:(function
          | SL.Message (_, LT.Pong q) -> at_sink := (q.seq, q.payload) :: !at_sink; bump sp (Int64.to_string q.seq)
          | _ -> ())
        sink_cfg
      >>= function
      | Error e -> Alcotest.failf "sink: %s" e
      | Ok sink ->
        Lwt.finalize
          (fun () ->
            let link name address shm =
              Svc.add_link n
                { SL.default_config with
                  name; address; link = { SL.default_config.link with node = "ocaml-node"; peer_timeout = 10.; shm };
                  log = (fun _ -> ()) }
              >|= function Ok l -> l | Error e -> Alcotest.failf "add_link %s: %s" name e
            in
            link "to-cxx" (SL.Unix_path path) shm >>= fun l ->
            link "to-sink" (SL.Unix_path sink_path) false >>= fun ls ->
            let interest l id what =
              SL.await_peer_interest l id ~timeout >|= fun ok -> if not ok then Alcotest.failf "no interest: %s" what
            in
            interest l LT.Ping.type_id "the C++ echo in pings" >>= fun () ->
            interest ls LT.Pong.type_id "the sink in pongs" >>= fun () ->
            interest sink LT.Pong.type_id "the node in pongs (at the sink)" >>= fun () ->
            let ping seq payload =
              Hashtbl.replace expected seq payload;
              Svc.publish pinger (LT.Ping { seq; payload }) >|= fun st ->
              Alcotest.(check bool) (Printf.sprintf "ping %Ld sent" seq) true (st = Svc.Ok_sent)
            in
            let max_bytes = Mycelium.Frame.default_max_payload - (2 + 8) - (2 + 4) in
            let payloads =
              List.mapi (fun i n -> (Int64.of_int (i + 1), String.init n (fun k -> Char.chr ((k * 13 + i) land 0xFF))))
                [ 0; 1; 4096; 65536; max_bytes ]
            in
            Lwt_list.iter_s (fun (seq, b) -> ping seq b) payloads >>= fun () ->
            let seqs = List.map (fun (seq, _) -> Int64.to_string seq) payloads in
            await vp "five pongs as views" (fun () -> vp.n >= 5) >>= fun () ->
            await op "five pongs as values" (fun () -> op.n >= 5) >>= fun () ->
            await sp "five pongs relayed to the sink" (fun () -> sp.n >= 5) >>= fun () ->
            Alcotest.(check (list string)) "views: in order" seqs (List.rev vp.log);
            Alcotest.(check (list string)) "values: in order" seqs (List.rev op.log);
            Alcotest.(check (list string)) "the sink: in order" seqs (List.rev sp.log);
            Alcotest.(check bool) "values: the same bytes" true (List.rev !owned = payloads);
            Alcotest.(check bool) "the sink: the same bytes" true (List.rev !at_sink = payloads);
            Alcotest.(check (list string)) "nothing wrong in the view handler" [] !wrong;
            check_expired "pongs" !kept;
            Alcotest.(check int) "every view from the frame, none from a copy" 0 (Svc.view_copies viewer);
            (* a handler that raises, one whose promise uses its view *)
            ping 100L "x" >>= fun () ->
            ping 101L "y" >>= fun () ->
            await logged "both failures logged" (fun () -> count_lines lines "raised" >= 2) >>= fun () ->
            Alcotest.(check int) "failures" 2 (Svc.failures viewer);
            Alcotest.(check int) "the raise logged" 1 (count_lines lines "pong 100 fails");
            Alcotest.(check int) "the late use logged" 1 (count_lines lines "Mycelium.View.Expired");
            check_expired "failed handlers" !kept;
            (* a pong from the sink: to the services, not back to the sink *)
            Hashtbl.replace expected 999L "from the sink";
            SL.publish sink (LT.Pong { seq = 999L; payload = "from the sink" }) >>= fun _ ->
            await vp "the sink's pong as a view" (fun () -> List.mem "999" vp.log) >>= fun () ->
            await op "the sink's pong as a value" (fun () -> List.mem "999" op.log) >>= fun () ->
            (* an echo would have reached the sink before this pong *)
            ping 6L "after" >>= fun () ->
            await sp "pong 6 at the sink" (fun () -> List.mem "6" sp.log) >>= fun () ->
            Alcotest.(check bool) "no echo to the sink" false (List.mem "999" sp.log);
            Alcotest.(check bool) "the sink's pong: the same bytes" true (List.mem (999L, "from the sink") !owned);
            (* a request waiting for a pong gets it as a value *)
            Hashtbl.replace expected 8L "requested";
            Svc.request pinger ~reply_type:LT.Pong.type_id ~accept:(function LT.Pong q -> q.seq = 8L | _ -> false)
              ~timeout (LT.Ping { seq = 8L; payload = "requested" })
            >>= fun r ->
            (match r with
             | Ok (LT.Pong q) -> Alcotest.(check string) "the reply as a value" "requested" q.payload
             | _ -> Alcotest.fail "no reply to the request");
            await vp "pong 8 as a view too" (fun () -> List.mem "8" vp.log) >>= fun () ->
            (* without the view subscription pongs come as values again *)
            Svc.unsubscribe viewer LT.Pong.type_id;
            let views_before = vp.n in
            ping 7L "as a value" >>= fun () ->
            await op "pong 7 as a value" (fun () -> List.mem "7" op.log) >>= fun () ->
            Alcotest.(check int) "no view after unsubscribe" views_before vp.n;
            Alcotest.(check (list string)) "still nothing wrong" [] !wrong;
            Alcotest.(check int) "no bad frames" 0 (SL.stats l).bad_frames;
            Alcotest.(check int) "still none from a copy" 0 (Svc.view_copies viewer);
            if shm then
              Alcotest.(check bool) "the pongs came through the ring" true ((SL.stats l).ring_frames_in >= 10);
            Lwt.return_unit)
          (fun () -> Svc.stop n >>= fun () -> SL.stop sink))

(* A local publish to a view subscriber: a direct call inside the publish
   (loop), a view over the value's encoding (counted in view_copies),
   expired after the handler; a loop subscriber of values on the same node
   gets the owned value. A message for a busy view subscriber waits in
   its mailbox and comes in order. A value the schema refuses (a string
   over its max) fails the view handler, counted and logged. *)
let test_views_local () =
  let lines = ref [] in
  let n = Svc.create ~log:(fun l -> lines := l :: !lines) ~schema:LT.descriptor "local" in
  let vp = probe () and op = probe () in
  let kept = ref [] and wrong = ref [] and owned = ref [] in
  let gate, open_gate = Lwt.wait () in
  let payload seq = Printf.sprintf "payload of pong %Ld" seq in
  Svc.start ~placement:Svc.Loop n
    { Svc.name = "viewer";
      on_start =
        (fun ctx ->
          Svc.subscribe_view ctx ~decode_view:LT.View.decode_any_fields LT.Pong.type_id (function
            | LT.View.Pong pv ->
              if not (Mycelium.View.equal_string pv.payload (payload pv.seq)) then
                wrong := Printf.sprintf "pong %Ld: bytes differ" pv.seq :: !wrong;
              kept := pv.payload :: !kept;
              bump vp (Int64.to_string pv.seq);
              if pv.seq = 2L then gate else Lwt.return_unit
            | _ -> Lwt.return_unit);
          Svc.subscribe_view ctx ~decode_view:LT.View.decode_any_fields LT.Chat.type_id (fun _ ->
              wrong := "a chat the schema refuses reached the handler" :: !wrong;
              Lwt.return_unit);
          Lwt.return_unit);
      on_stop = noop }
  >>= fun viewer ->
  Svc.start ~placement:Svc.Loop n
    { Svc.name = "owner";
      on_start =
        (fun ctx ->
          Svc.subscribe ctx LT.Pong.type_id (function
            | LT.Pong q -> owned := q.payload :: !owned; bump op (Int64.to_string q.seq); Lwt.return_unit
            | _ -> Lwt.return_unit);
          Lwt.return_unit);
      on_stop = noop }
  >>= fun _ ->
  Svc.start n { Svc.name = "publisher"; on_start = noop; on_stop = noop } >>= fun pub ->
  let pong seq = Svc.publish pub (LT.Pong { seq; payload = payload seq }) in
  let sent = pong 1L in
  Alcotest.(check (list string)) "the view handler ran inside publish" [ "1" ] vp.log;
  Alcotest.(check (list string)) "the value handler too" [ "1" ] op.log;
  sent >>= fun st ->
  Alcotest.(check bool) "delivered" true (st = Svc.Ok_sent);
  Alcotest.(check (list string)) "the owned value" [ payload 1L ] !owned;
  check_expired "after the handler" !kept;
  Alcotest.(check int) "a view over a copy" 1 (Svc.view_copies viewer);
  (* pong 2's handler waits on the gate: pong 3 waits in the mailbox *)
  pong 2L >>= fun _ ->
  pong 3L >>= fun _ ->
  Alcotest.(check (list string)) "pong 3 waits" [ "1"; "2" ] (List.rev vp.log);
  Alcotest.(check int) "in the mailbox" 1 (Svc.queued viewer);
  check_expired "pong 2, whose promise is pending" !kept;
  Lwt.wakeup open_gate ();
  await vp "pong 3" (fun () -> vp.n = 3) >>= fun () ->
  Alcotest.(check (list string)) "in order" [ "1"; "2"; "3" ] (List.rev vp.log);
  Alcotest.(check (list string)) "no wrong bytes" [] !wrong;
  check_expired "pong 3" !kept;
  Alcotest.(check int) "three views over copies" 3 (Svc.view_copies viewer);
  Alcotest.(check int) "no failure" 0 (Svc.failures viewer);
  (* a chat whose origin is over the schema's 64 bytes *)
  Svc.publish pub (LT.Chat { origin = String.make 65 'o'; seq = 1L }) >>= fun _ ->
  Alcotest.(check int) "a value the schema refuses fails the view handler" 1 (Svc.failures viewer);
  Alcotest.(check int) "and is logged" 1 (count_lines lines "does not decode as a view");
  Alcotest.(check (list string)) "the handler did not run" [] !wrong;
  Svc.stop n

(* subscribe_view on a pool service raises, so the service does not start
   (pool is the default placement); a type the schema lacks is refused. *)
let test_views_refused () =
  let n = Svc.create ~log:(fun _ -> ()) ~schema:LT.descriptor "local" in
  let viewing ?placement name type_id =
    Lwt.catch
      (fun () ->
        Svc.start ?placement n
          { Svc.name;
            on_start =
              (fun ctx ->
                Svc.subscribe_view ctx ~decode_view:LT.View.decode_any_fields type_id (fun _ -> Lwt.return_unit);
                Lwt.return_unit);
            on_stop = noop }
        >|= fun _ -> Ok ())
      (function Invalid_argument m -> Lwt.return (Error m) | e -> Lwt.fail e)
  in
  let refused what needles = function
    | Ok () -> Alcotest.failf "%s: accepted" what
    | Error m ->
      List.iter (fun s -> Alcotest.(check bool) (Printf.sprintf "%s: %S in %S" what s m) true (contains m s)) needles
  in
  viewing ~placement:Svc.Pool "on-pool" LT.Pong.type_id
  >|= refused "on the pool" [ "service 'on-pool' is on the pool"; "pong"; "place it on the loop" ] >>= fun () ->
  viewing "default" LT.Pong.type_id >|= refused "the default placement" [ "is on the pool" ] >>= fun () ->
  viewing ~placement:Svc.Loop "unknown-type" 424242 >|= refused "a type outside the schema" [ "424242" ] >>= fun () ->
  Svc.start n { Svc.name = "publisher"; on_start = noop; on_stop = noop } >>= fun pub ->
  Svc.publish pub (LT.Pong { seq = 1L; payload = "" }) >>= fun st ->
  Alcotest.(check bool) "the refused services did not start" true (st = Svc.No_subscriber);
  Svc.stop n

let () =
  (* a link end that writes to a peer gone first gets EPIPE, not the signal *)
  Sys.set_signal Sys.sigpipe Sys.Signal_ignore;
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
      ( "views",
        [ Alcotest.test_case "loop: pongs as views from a C++ peer over unix" `Quick (run (views_over_link ~shm:false));
          Alcotest.test_case "loop: pongs as views from a C++ peer over shm" `Quick (run (views_over_link ~shm:true));
          Alcotest.test_case "a local publish to a view subscriber" `Quick (run test_views_local);
          Alcotest.test_case "refused on the pool and for unknown types" `Quick (run test_views_refused) ] );
    ]
