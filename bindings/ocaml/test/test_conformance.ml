(* Conformance of the OCaml client against a real C++ peer process
   (mycelium-link-peer, tests/conformance/link_peer.cpp) over Unix sockets
   and TCP: handshake, order, sizes from 0 to the maximum payload,
   interest, no echo, refusal (digest and secret), authentication, peer
   crash and reconnect with resubscription, the OCaml side listening
   for a connecting C++ peer, overflow policies, malformed input (a corrupt
   ring record too), TCP_NODELAY and batched writes, the reconnect backoff.
   Every wait has a timeout; peers are killed and reaped even when a check
   fails. *)

open Lwt.Infix
open Schemas
open Testutil
module LT = Link_test
module S = Mycelium_lwt.Socket_link
module E = Mycelium.Errc

let timeout = 10.

(* MYCELIUM_OCAML_TEST_LOG=1 shows the OCaml links' log lines on stderr. *)
let test_log = if Sys.getenv_opt "MYCELIUM_OCAML_TEST_LOG" = Some "1" then prerr_endline else fun _ -> ()

let tmpdir =
  lazy
    (let d = Filename.concat (Filename.get_temp_dir_name ())
         (Printf.sprintf "mycelium-ocaml-%d" (Unix.getpid ())) in
     (try Unix.mkdir d 0o700 with Unix.Unix_error (Unix.EEXIST, _, _) -> ());
     at_exit (fun () ->
         Array.iter (fun f -> try Sys.remove (Filename.concat d f) with _ -> ()) (Sys.readdir d);
         try Unix.rmdir d with _ -> ());
     d)

let counter = ref 0
let sock_path () =
  incr counter;
  Filename.concat (Lazy.force tmpdir) (Printf.sprintf "peer-%d.sock" !counter)

(* Messages and link events seen by the OCaml side, with a condition to wait on. *)
type inbox = {
  mutable msgs : LT.any list;  (** newest first *)
  mutable downs : Mycelium.Link.closed list;
  mutable ups : int;
  cond : unit Lwt_condition.t;
}

let inbox () = { msgs = []; downs = []; ups = 0; cond = Lwt_condition.create () }

let on_event ib = function
  | S.Message (_, m) -> ib.msgs <- m :: ib.msgs; Lwt_condition.broadcast ib.cond ()
  | S.Down c -> ib.downs <- c :: ib.downs; Lwt_condition.broadcast ib.cond ()
  | S.Up _ -> ib.ups <- ib.ups + 1; Lwt_condition.broadcast ib.cond ()
  | _ -> Lwt_condition.broadcast ib.cond ()

let wait_for ?(timeout = timeout) ib what cond =
  let deadline = Unix.gettimeofday () +. timeout in
  let rec loop () =
    if cond () then Lwt.return_unit
    else
      let left = deadline -. Unix.gettimeofday () in
      if left <= 0. then Alcotest.failf "timed out after %.0f s waiting for %s" timeout what
      else Lwt.pick [ Lwt_condition.wait ib.cond; Lwt_unix.sleep left ] >>= loop
  in
  loop ()

let check_await what b = if not b then Alcotest.failf "timed out: %s" what

type kind = Unix_k | Tcp_k | Shm_k

let peer_args ?(extra = []) kind path =
  (match kind with
   | Unix_k -> [ "--kind"; "unix"; "--listen"; path ]
   | Shm_k -> [ "--kind"; "shm"; "--listen"; path ]
   | Tcp_k -> [ "--kind"; "tcp"; "--listen"; "127.0.0.1" ])
  @ [ "--port"; "0"; "--peer-timeout-ms"; "10000"; "--name"; "cxx-peer" ] @ extra

let address kind path (p : Peer.t) =
  match kind with Unix_k | Shm_k -> S.Unix_path path | Tcp_k -> S.Tcp ("127.0.0.1", p.port)

let client ?(shm = false) ?secret ?(interest = [ LT.Pong.type_id; LT.Report.type_id; LT.Chat.type_id ]) ib addr =
  let cfg =
    { S.default_config with
      name = "conformance";
      address = addr;
      link = { S.default_config.link with node = "ocaml"; service = "conformance"; secret; shm;
                                           peer_timeout = 10.; heartbeat_interval = 0.1 };
      log = test_log }
  in
  S.start ~interest ~schema:LT.descriptor ~on_event:(on_event ib) cfg >|= function
  | Ok l -> l
  | Error e -> Alcotest.failf "link start: %s" e

let publish l x =
  S.publish l x >|= function
  | S.Ok_sent -> ()
  | S.No_subscriber -> Alcotest.fail "publish: no subscriber on the peer"
  | S.Back_pressured -> Alcotest.fail "publish: back-pressured"

let token = ref 1000L

(* A report from the peer, matched by token. *)
let report l ib =
  token := Int64.succ !token;
  let tok = !token in
  publish l (LT.Report_request { token = tok }) >>= fun () ->
  let find () =
    List.find_map (function LT.Report r when r.token = tok -> Some r | _ -> None) ib.msgs
  in
  wait_for ib "a report" (fun () -> find () <> None) >|= fun () -> Option.get (find ())

let fnv1a s =
  let h = ref 1469598103934665603L (* the offset the peer uses (peer_service.hpp) *) in
  String.iter
    (fun c ->
      h := Int64.logxor !h (Int64.of_int (Char.code c));
      h := Int64.mul !h 1099511628211L)
    s;
  !h

let up l = S.await_up l ~timeout >|= check_await "link up"

let wait_interest l id = S.await_peer_interest l id ~timeout >|= check_await (Printf.sprintf "peer interest in %d" id)

(* The whole session of one connection: interest, pings of every size,
   ordered data, probes through interest changes, chats without echo. *)
let session kind ?secret () =
  let path = sock_path () in
  let extra = match secret with Some s -> [ "--secret"; s ] | None -> [] in
  Peer.with_peer (peer_args ~extra kind path) (fun p ->
      let ib = inbox () in
      client ~shm:(kind = Shm_k) ?secret ib (address kind path p) >>= fun l ->
      Lwt.finalize
        (fun () ->
          up l >>= fun () ->
          Lwt_list.iter_s (wait_interest l)
            [ LT.Ping.type_id; LT.Data.type_id; LT.Report_request.type_id; LT.Empty.type_id ]
          >>= fun () ->
          (* sizes 0 .. the largest payload that fits max_payload (1 MiB) *)
          let max_bytes = Mycelium.Frame.default_max_payload - (2 + 8) - (2 + 4) in
          let sizes = [ 0; 1; 7; 8; 1000; 70000; max_bytes ] in
          let payloads = List.mapi (fun i n -> (Int64.of_int (i + 1), String.init n (fun k -> Char.chr ((k * 31 + i) land 0xFF)))) sizes in
          Lwt_list.iter_s (fun (seq, payload) -> publish l (LT.Ping { seq; payload })) payloads >>= fun () ->
          let pongs () = List.filter_map (function LT.Pong p -> Some p | _ -> None) ib.msgs in
          wait_for ib "every pong" (fun () -> List.length (pongs ()) >= List.length sizes) >>= fun () ->
          List.iter
            (fun (seq, payload) ->
              match List.find_opt (fun (p : LT.Pong.t) -> p.seq = seq) (pongs ()) with
              | Some p -> Alcotest.(check int) (Printf.sprintf "pong %Ld size" seq) (String.length payload) (String.length p.payload);
                Alcotest.(check bool) (Printf.sprintf "pong %Ld content" seq) true (p.payload = payload)
              | None -> Alcotest.failf "no pong %Ld" seq)
            payloads;
          (* one byte over the maximum is not sent, and counted *)
          (S.publish l (LT.Ping { seq = 99L; payload = String.make (max_bytes + 1) 'x' }) >|= fun _ -> ())
          >>= fun () ->
          (* ordered data with checksums, and an empty message *)
          report l ib >>= fun before ->
          Alcotest.(check int) "the ping over max_payload was not sent, and counted" 1
            (S.stats l).frames_too_large;
          Alcotest.(check bool) "and no pong 99" false
            (List.exists (function LT.Pong p -> p.seq = 99L | _ -> false) ib.msgs);
          let n = 200 in
          let first = Int64.succ before.last_seq in
          let rec send i =
            if i = n then Lwt.return_unit
            else
              let seq = Int64.add first (Int64.of_int i) in
              let body = String.init (i * 37 mod 3000) (fun k -> Char.chr ((i + k) land 0xFF)) in
              publish l (LT.Data { seq; checksum = fnv1a body; payload = body }) >>= fun () -> send (i + 1)
          in
          send 0 >>= fun () ->
          publish l (LT.Empty ()) >>= fun () ->
          report l ib >>= fun r ->
          Alcotest.(check int64) "received" (Int64.of_int n) (Int64.sub r.received before.received);
          Alcotest.(check int64) "order errors" 0L (Int64.sub r.order_errors before.order_errors);
          Alcotest.(check int64) "checksum errors" 0L (Int64.sub r.checksum_errors before.checksum_errors);
          Alcotest.(check int64) "empties" 1L (Int64.sub r.empties before.empties);
          (* interest: nobody wants probes until the peer is told to subscribe *)
          S.publish l (LT.Probe { seq = 1L }) >>= fun st ->
          Alcotest.(check bool) "probe before subscribe: no subscriber" true (st = S.No_subscriber);
          publish l (LT.Command { text = "subscribe probe" }) >>= fun () ->
          wait_interest l LT.Probe.type_id >>= fun () ->
          publish l (LT.Probe { seq = 2L }) >>= fun () ->
          publish l (LT.Probe { seq = 3L }) >>= fun () ->
          report l ib >>= fun r2 ->
          Alcotest.(check int64) "probes" 2L (Int64.sub r2.probes r.probes);
          publish l (LT.Command { text = "unsubscribe probe" }) >>= fun () ->
          S.await (l) ~timeout (fun () -> not (S.peer_interested l LT.Probe.type_id)) >|= check_await "peer unsubscribed probe" >>= fun () ->
          S.publish l (LT.Probe { seq = 4L }) >>= fun st ->
          Alcotest.(check bool) "probe after unsubscribe: no subscriber" true (st = S.No_subscriber);
          (* no echo: our chats reach the peer and never come back; the peer's arrive *)
          Lwt_list.iter_s (fun i -> publish l (LT.Chat { origin = "ocaml"; seq = Int64.of_int i })) [ 1; 2; 3 ] >>= fun () ->
          report l ib >>= fun r3 ->
          Alcotest.(check int64) "the peer got our 3 chats" 3L (Int64.sub r3.chats r2.chats);
          publish l (LT.Command { text = "chat 5" }) >>= fun () ->
          let chats origin = List.length (List.filter (function LT.Chat c -> c.origin = origin | _ -> false) ib.msgs) in
          wait_for ib "the peer's 5 chats" (fun () -> chats "cxx-peer" >= 5) >>= fun () ->
          Alcotest.(check int) "none of ours echoed back" 0 (chats "ocaml");
          Alcotest.(check int) "no bad frames" 0 (S.stats l).bad_frames;
          if kind = Shm_k then begin
            (* data and interest went through the rings, both ways *)
            Alcotest.(check bool) "frames written into our ring" true ((S.stats l).ring_frames_out >= 200);
            Alcotest.(check bool) "frames read from the peer's ring" true ((S.stats l).ring_frames_in > 10)
          end;
          Lwt.return_unit)
        (fun () -> S.stop l)
      >>= fun () ->
      Peer.stop p >|= fun rc -> Alcotest.(check int) "peer exit code" 0 rc)

let refused_digest kind () =
  let path = sock_path () in
  Peer.with_peer (peer_args ~extra:[ "--schema"; "other" ] kind path) (fun p ->
      let ib = inbox () in
      client ~shm:(kind = Shm_k) ib (address kind path p) >>= fun l ->
      Lwt.finalize
        (fun () ->
          wait_for ib "a refusal" (fun () -> ib.downs <> []) >>= fun () ->
          let c = List.hd (List.rev ib.downs) in
          Alcotest.(check bool) ("schema mismatch: " ^ c.text) true (c.error = E.Schema_mismatch);
          Alcotest.(check bool) "names our digest" true
            (Testutil.Astring_like.contains c.text (Mycelium.Schema.hex LT.schema_digest));
          Peer.await_stderr p "schema digest mismatch" >>= fun () ->
          Peer.await_stderr p (Mycelium.Schema.hex LT.schema_digest) >|= fun () ->
          Alcotest.(check int) "never up" 0 ib.ups)
        (fun () -> S.stop l))

let refused_secret kind () =
  let path = sock_path () in
  Peer.with_peer (peer_args ~extra:[ "--secret"; "right" ] kind path) (fun p ->
      let ib = inbox () in
      client ~shm:(kind = Shm_k) ~secret:"wrong" ib (address kind path p) >>= fun l ->
      Lwt.finalize
        (fun () ->
          wait_for ib "a refusal" (fun () -> ib.downs <> []) >>= fun () ->
          let c = List.hd (List.rev ib.downs) in
          Alcotest.(check bool) ("auth failed: " ^ c.text) true (c.error = E.Auth_failed);
          Peer.await_stderr p "different secrets" >|= fun () ->
          Alcotest.(check int) "never up" 0 ib.ups)
        (fun () -> S.stop l))

(* kill -9 the peer; a new one on the same address; the client reconnects
   and re-announces its interest (the ping/pong works again). *)
let crash_reconnect kind () =
  let path = sock_path () in
  Peer.start (peer_args kind path) >>= fun p1 ->
  let port = p1.port in
  let ib = inbox () in
  Lwt.finalize
    (fun () ->
      client ~shm:(kind = Shm_k) ib (address kind path p1) >>= fun l ->
      Lwt.finalize
        (fun () ->
          up l >>= fun () ->
          wait_interest l LT.Ping.type_id >>= fun () ->
          publish l (LT.Ping { seq = 1L; payload = "before" }) >>= fun () ->
          wait_for ib "pong 1" (fun () -> List.exists (function LT.Pong p -> p.seq = 1L | _ -> false) ib.msgs) >>= fun () ->
          Peer.kill p1 >>= fun () ->
          wait_for ib "the link to go down" (fun () -> ib.downs <> []) >>= fun () ->
          let c = List.hd ib.downs in
          Alcotest.(check bool) ("peer lost: " ^ c.text) true (c.error = E.Peer_lost);
          let args =
            match kind with
            | Unix_k | Shm_k -> peer_args kind path
            | Tcp_k -> [ "--kind"; "tcp"; "--listen"; "127.0.0.1"; "--port"; string_of_int port;
                         "--peer-timeout-ms"; "10000"; "--name"; "cxx-peer" ]
          in
          Peer.with_peer args (fun _p2 ->
              wait_for ib "a second connection" (fun () -> ib.ups >= 2) >>= fun () ->
              wait_interest l LT.Ping.type_id >>= fun () ->
              publish l (LT.Ping { seq = 2L; payload = "after" }) >>= fun () ->
              wait_for ib "pong 2 (our interest in pong was re-announced)"
                (fun () -> List.exists (function LT.Pong p -> p.seq = 2L | _ -> false) ib.msgs)
              >|= fun () ->
              Alcotest.(check bool) "reconnected" true ((S.stats l).connects >= 2)))
        (fun () -> S.stop l))
    (fun () -> Peer.kill p1)

(* Runs the C++ pinger (`--ping count`) with [target]'s link arguments and
   waits up to 60 s for it to exit 0: every pong came back. Fails with
   [what] and the pinger's stderr otherwise. *)
let expect_pinger target count what =
  Peer.with_peer (target @ [ "--services"; "none"; "--ping"; string_of_int count; "--name"; "cxx-pinger" ]) (fun p ->
      Lwt.pick [ (Lwt_unix.waitpid [] p.pid >|= fun (_, st) -> Some st); (Lwt_unix.sleep 60. >|= fun () -> None) ]
      >|= fun st ->
      p.exited <- true;
      match st with
      | Some (Unix.WEXITED 0) -> ()
      | _ -> Alcotest.failf "%s; its stderr:\n%s" what (String.concat "\n" (List.rev p.stderr_lines)))

(* The OCaml side listens; the C++ peer connects and runs its --ping check
   against an OCaml echo (ping -> pong). *)
let ocaml_listens kind () =
  let path = sock_path () in
  let ib = inbox () in
  let lref = ref None in
  let on_ev ev =
    on_event ib ev;
    match (ev, !lref) with
    | S.Message (_, LT.Ping p), Some l -> Lwt.async (fun () -> S.publish l (LT.Pong { seq = p.seq; payload = p.payload }) >|= ignore)
    | _ -> ()
  in
  let cfg =
    { S.default_config with
      name = "listener"; role = S.Listen;
      address = (match kind with Unix_k | Shm_k -> S.Unix_path path | Tcp_k -> S.Tcp ("127.0.0.1", 0));
      link = { S.default_config.link with node = "ocaml-listener"; peer_timeout = 10.; shm = (kind = Shm_k) };
      log = test_log }
  in
  S.start ~interest:[ LT.Ping.type_id ] ~schema:LT.descriptor ~on_event:on_ev cfg >>= function
  | Error e -> Alcotest.failf "listen: %s" e
  | Ok l ->
    lref := Some l;
    Lwt.finalize
      (fun () ->
        let target = match kind with Unix_k -> [ "--kind"; "unix"; "--connect"; path ] | Tcp_k -> [ "--kind"; "tcp"; "--connect"; "127.0.0.1"; "--port"; string_of_int (S.port l) ] | Shm_k -> [ "--kind"; "shm"; "--connect"; path ] in
        Peer.start (target @ [ "--services"; "none"; "--ping"; "200"; "--name"; "cxx-pinger" ]) >>= fun p ->
        Lwt.finalize
          (fun () ->
            Lwt.pick [ (Lwt_unix.waitpid [] p.pid >|= fun (_, st) -> Some st); (Lwt_unix.sleep 60. >|= fun () -> None) ] >|= function
            | Some (Unix.WEXITED 0) ->
              p.exited <- true;
              Alcotest.(check int) "pings answered" 200
                (List.length (List.filter (function LT.Ping _ -> true | _ -> false) ib.msgs))
            | Some _ -> p.exited <- true; Alcotest.failf "the C++ pinger failed; stderr:\n%s" (String.concat "\n" (List.rev p.stderr_lines))
            | None -> Alcotest.fail "the C++ pinger did not finish within 60 s")
          (fun () -> Peer.kill p))
      (fun () -> S.stop l)

(* A frozen peer (SIGSTOP) fills the socket (over TCP: both kernel
   buffers) or the ring, then the send queue; each overflow policy answers
   as documented (docs/transports.md); after SIGCONT what was admitted
   arrives in order. *)
let overflow ?(kind = Unix_k) policy () =
  let path = sock_path () in
  Peer.with_peer (peer_args kind path) (fun p ->
      let ib = inbox () in
      let cfg =
        { S.default_config with
          name = "overflow"; address = address kind path p; send_queue = 16; overflow = policy;
          block_timeout = 0.2;
          link = { S.default_config.link with node = "ocaml"; peer_timeout = 10.; shm = (kind = Shm_k) };
          log = test_log }
      in
      S.start ~interest:[ LT.Report.type_id ] ~schema:LT.descriptor ~on_event:(on_event ib) cfg >>= function
      | Error e -> Alcotest.failf "start: %s" e
      | Ok l ->
        Lwt.finalize
          (fun () ->
            up l >>= fun () ->
            wait_interest l LT.Data.type_id >>= fun () ->
            wait_interest l LT.Report_request.type_id >>= fun () ->
            Unix.kill p.pid Sys.sigstop;
            let body = String.make 65536 'd' in
            let ck = fnv1a body in
            let admitted = ref 0 in
            (* publish until the policy refuses one (a frozen peer takes a few
               hundred KiB at most) *)
            let rec fill n =
              if n > 5000 then Alcotest.fail "the send queue never filled against a frozen peer"
              else
                let seq = Int64.of_int (!admitted + 1) in
                let t0 = Unix.gettimeofday () in
                S.publish l (LT.Data { seq; checksum = ck; payload = body }) >>= function
                | S.Ok_sent -> incr admitted; fill (n + 1)
                | S.Back_pressured -> Lwt.return (Unix.gettimeofday () -. t0)
                | S.No_subscriber -> Alcotest.fail "no subscriber while filling"
            in
            Lwt.finalize (fun () -> fill 0) (fun () -> Unix.kill p.pid Sys.sigcont; Lwt.return_unit)
            >>= fun waited ->
            let st = S.stats l in
            Alcotest.(check bool) "back_pressured counted" true (st.back_pressured >= 1);
            (match policy with
             | S.Block ->
               Alcotest.(check bool) (Printf.sprintf "block held the publisher %.3f s" waited) true (waited >= 0.199)
             | S.Drop_newest | S.Disconnect ->
               Alcotest.(check bool) (Printf.sprintf "refused at once (%.3f s)" waited) true (waited < 0.1);
               Alcotest.(check int) "dropped_overflow" 1 st.dropped_overflow);
            (match policy with
             | S.Disconnect ->
               Alcotest.(check int) "overflow_disconnects" 1 st.overflow_disconnects;
               wait_for ib "the overflow close" (fun () -> List.exists (fun (c : Mycelium.Link.closed) -> c.error = E.Link_overflow) ib.downs) >>= fun () ->
               wait_for ib "the reconnect" (fun () -> ib.ups >= 2) >>= fun () ->
               wait_interest l LT.Report_request.type_id >>= fun () ->
               report l ib >|= fun r ->
               Alcotest.(check int64) "order errors" 0L r.order_errors;
               Alcotest.(check int64) "checksum errors" 0L r.checksum_errors;
               Alcotest.(check bool) "a prefix of what was admitted" true (Int64.to_int r.received <= !admitted);
               Alcotest.(check int64) "gap-free prefix" r.received r.last_seq
             | S.Block | S.Drop_newest ->
               S.await l ~timeout (fun () -> S.queued l = 0) >|= check_await "the queue to drain" >>= fun () ->
               report l ib >|= fun r ->
               Alcotest.(check int64) "everything admitted arrived" (Int64.of_int !admitted) r.received;
               Alcotest.(check int64) "in order" 0L r.order_errors;
               Alcotest.(check int64) "intact" 0L r.checksum_errors))
          (fun () -> S.stop l))

(* The OCaml node as its own process (test/ocaml_node.ml), the way a
   launcher starts an external node; a C++ peer connects and checks its
   pings. Then a clean stop: EOF on its stdin, exit code 0. *)
let ocaml_node_process kind () =
  let exe = Util.env "MYCELIUM_OCAML_NODE" in
  let path = sock_path () in
  let args = match kind with
    | Unix_k -> [ "--kind"; "unix"; "--listen"; path ]
    | Tcp_k -> [ "--kind"; "tcp"; "--listen"; "127.0.0.1"; "--port"; "0" ]
    | Shm_k -> [ "--kind"; "shm"; "--listen"; path ] in
  Peer.with_peer ~exe (args @ [ "--name"; "ocaml-node"; "--peer-timeout-ms"; "10000" ]) (fun node ->
      let target = match kind with
        | Unix_k -> [ "--kind"; "unix"; "--connect"; path ]
        | Tcp_k -> [ "--kind"; "tcp"; "--connect"; "127.0.0.1"; "--port"; string_of_int node.port ]
        | Shm_k -> [ "--kind"; "shm"; "--connect"; path ] in
      expect_pinger target 500 "the C++ pinger did not get its 500 pongs from the OCaml node"
      >>= fun () ->
      Peer.stop node >|= fun rc -> Alcotest.(check int) "the OCaml node stops cleanly at EOF" 0 rc)

(* Malformed frames over a real socket (Unix or TCP): the OCaml listener
   refuses (before the handshake) or closes (after it) with the error, keeps
   running, and then serves a C++ peer. *)
let malformed_input kind () =
  let path = sock_path () in
  let ib = inbox () in
  let cfg =
    { S.default_config with
      name = "listener"; role = S.Listen;
      address = (match kind with Tcp_k -> S.Tcp ("127.0.0.1", 0) | Unix_k | Shm_k -> S.Unix_path path);
      link = { S.default_config.link with node = "ocaml-listener"; peer_timeout = 10. };
      log = test_log }
  in
  let lref = ref None in
  let on_ev ev =
    on_event ib ev;
    match (ev, !lref) with
    | S.Message (_, LT.Ping p), Some l ->
      Lwt.async (fun () -> S.publish l (LT.Pong { seq = p.seq; payload = p.payload }) >|= ignore)
    | _ -> ()
  in
  S.start ~interest:[ LT.Ping.type_id ] ~schema:LT.descriptor ~on_event:on_ev cfg >>= function
  | Error e -> Alcotest.failf "listen: %s" e
  | Ok l ->
    lref := Some l;
    Lwt.finalize
      (fun () ->
        let raw send =
          let dom, addr =
            match kind with
            | Tcp_k -> (Unix.PF_INET, Unix.ADDR_INET (Unix.inet_addr_loopback, S.port l))
            | Unix_k | Shm_k -> (Unix.PF_UNIX, Unix.ADDR_UNIX path)
          in
          let fd = Lwt_unix.socket dom Unix.SOCK_STREAM 0 in
          Lwt.finalize
            (fun () ->
              Lwt_unix.connect fd addr >>= fun () ->
              send fd >>= fun () ->
              (* read until the listener closes; collect what it sent *)
              let buf = Buffer.create 256 and b = Bytes.create 4096 in
              let rec loop () =
                Lwt.pick [ Lwt_unix.read fd b 0 4096; (Lwt_unix.sleep timeout >|= fun () -> -1) ] >>= function
                | 0 -> Lwt.return_unit
                | -1 -> Alcotest.fail "the listener did not close the connection"
                | n -> Buffer.add_subbytes buf b 0 n; loop ()
              in
              loop () >|= fun () -> Buffer.contents buf)
            (fun () -> Lwt_unix.close fd)
        in
        let write fd s = Lwt_unix.write_string fd s 0 (String.length s) >|= ignore in
        (* 1: garbage instead of a hello *)
        let downs0 = List.length ib.downs in
        raw (fun fd -> write fd (String.make 24 '\xee')) >>= fun got ->
        Alcotest.(check bool) "a refuse frame came back" true
          (Astring_like.contains got "\x02\x00\xff\xff");
        wait_for ib "the listener's close" (fun () -> List.length ib.downs > downs0) >>= fun () ->
        Alcotest.(check bool) "bad_frame_header" true ((List.hd ib.downs).error = E.Bad_frame_header);
        (* 2: a good hello, then a corrupt frame on the established link *)
        let core =
          Mycelium.Link.create ~schema:LT.descriptor ~config:{ Mycelium.Link.default_config with node = "raw" }
            ~nonce:(Mycelium.Auth.fresh_nonce ()) ~now:0. ()
        in
        let hello = Option.get (Mycelium.Link.take_output core) in
        let downs1 = List.length ib.downs in
        raw (fun fd ->
            write fd hello >>= fun () ->
            S.await l ~timeout (fun () -> S.connections l = 1) >|= check_await "the raw client up" >>= fun () ->
            write fd (Mycelium.Frame.make ~type_id:1 ~sequence:7L ""))
        >>= fun got ->
        Alcotest.(check bool) "no refusal after the handshake" false (Astring_like.contains got "\x02\x00\xff\xff");
        wait_for ib "the close" (fun () -> List.length ib.downs > downs1) >>= fun () ->
        Alcotest.(check bool) "sequence_gap" true ((List.hd ib.downs).error = E.Sequence_gap);
        (* 3: the listener still serves a real peer *)
        let target =
          match kind with
          | Tcp_k -> [ "--kind"; "tcp"; "--connect"; "127.0.0.1"; "--port"; string_of_int (S.port l) ]
          | Unix_k | Shm_k -> [ "--kind"; "unix"; "--connect"; path ]
        in
        expect_pinger target 50 "the C++ pinger failed after the malformed input")
      (fun () -> S.stop l)

(* Both ends in OCaml over shared memory: a listener (creates the segment)
   and a client in this process. *)
let ocaml_to_ocaml_shm () =
  let path = sock_path () in
  let ib_l = inbox () and ib_c = inbox () in
  let lref = ref None in
  let on_l ev =
    on_event ib_l ev;
    match (ev, !lref) with
    | S.Message (_, LT.Ping p), Some l -> Lwt.async (fun () -> S.publish l (LT.Pong { seq = p.seq; payload = p.payload }) >|= ignore)
    | _ -> ()
  in
  let cfg role node =
    { S.default_config with
      name = node; role; address = S.Unix_path path; ring_capacity = 1 lsl 16;
      link = { S.default_config.link with node; peer_timeout = 10.; shm = true; secret = Some "k" };
      log = test_log }
  in
  S.start ~interest:[ LT.Ping.type_id ] ~schema:LT.descriptor ~on_event:on_l (cfg S.Listen "ocaml-creator") >>= function
  | Error e -> Alcotest.failf "listen: %s" e
  | Ok l ->
    lref := Some l;
    Lwt.finalize
      (fun () ->
        S.start ~interest:[ LT.Pong.type_id ] ~schema:LT.descriptor ~on_event:(on_event ib_c) (cfg S.Connect "ocaml-attacher")
        >>= function
        | Error e -> Alcotest.failf "connect: %s" e
        | Ok c ->
          Lwt.finalize
            (fun () ->
              up c >>= fun () ->
              wait_interest c LT.Ping.type_id >>= fun () ->
              (* 300 pings of up to 20 KiB through 64 KiB rings: they wrap many times *)
              let n = 300 in
              let rec send i =
                if i > n then Lwt.return_unit
                else publish c (LT.Ping { seq = Int64.of_int i; payload = String.make (i * 67 mod 20000) (Char.chr (i land 0xFF)) }) >>= fun () -> send (i + 1)
              in
              send 1 >>= fun () ->
              let pongs () = List.filter_map (function LT.Pong p -> Some p | _ -> None) ib_c.msgs in
              wait_for ib_c "every pong" (fun () -> List.length (pongs ()) >= n) >|= fun () ->
              let seqs = List.rev_map (fun (p : LT.Pong.t) -> Int64.to_int p.seq) (pongs ()) in
              Alcotest.(check (list int)) "in order" (List.init n (fun i -> i + 1)) seqs;
              List.iter (fun (p : LT.Pong.t) ->
                  let i = Int64.to_int p.seq in
                  Alcotest.(check int) "size" (i * 67 mod 20000) (String.length p.payload)) (pongs ());
              Alcotest.(check bool) "through the rings" true ((S.stats c).ring_frames_out >= n && (S.stats l).ring_frames_out >= n);
              Alcotest.(check bool) "nothing left in /dev/shm" true
                (* ours: named after this pid (a substring match would also
                   take other processes' segments, CTest runs tests beside us) *)
                (let pid = string_of_int (Unix.getpid ()) in
                 not (Array.exists (fun f ->
                     String.starts_with ~prefix:("mycelium-" ^ pid ^ "-") f
                     || String.starts_with ~prefix:("mycelium-bell-" ^ pid ^ "-") f)
                     (Sys.readdir "/dev/shm"))))
            (fun () -> S.stop c))
      (fun () -> S.stop l)

(* A hung peer (SIGSTOP: its socket stays open, nothing arrives) is lost
   after peer_timeout; after SIGCONT the client reconnects. *)
let hung_peer kind () =
  let path = sock_path () in
  Peer.with_peer (peer_args kind path) (fun p ->
      let ib = inbox () in
      let cfg =
        { S.default_config with
          name = "hung"; address = address kind path p;
          link = { S.default_config.link with node = "ocaml"; peer_timeout = 0.5; heartbeat_interval = 0.05;
                                               shm = (kind = Shm_k) };
          log = test_log }
      in
      S.start ~interest:[ LT.Pong.type_id ] ~schema:LT.descriptor ~on_event:(on_event ib) cfg >>= function
      | Error e -> Alcotest.failf "start: %s" e
      | Ok l ->
        Lwt.finalize
          (fun () ->
            up l >>= fun () ->
            let t0 = Unix.gettimeofday () in
            Unix.kill p.pid Sys.sigstop;
            Lwt.finalize
              (fun () -> wait_for ib "peer_lost" (fun () -> ib.downs <> []))
              (fun () -> Unix.kill p.pid Sys.sigcont; Lwt.return_unit)
            >>= fun () ->
            let c = List.hd ib.downs and waited = Unix.gettimeofday () -. t0 in
            Alcotest.(check bool) ("peer lost: " ^ c.text) true (c.error = E.Peer_lost);
            Alcotest.(check bool) (Printf.sprintf "after the timeout (%.2f s)" waited) true (waited >= 0.45);
            wait_for ib "the reconnect" (fun () -> ib.ups >= 2))
          (fun () -> S.stop l))

(* Pongs as views (Socket_link.start ~views) from a C++ echo: payloads of
   0 B to the largest that fits, each view valid in its handler and
   expired after it; 300 round trips of 64 KiB driven from inside the view
   handler (its publish goes out while the pong is still in the ring);
   other types (reports) still come as Message events; a views type the
   schema lacks is refused at start. *)
let views_session kind () =
  let path = sock_path () in
  Peer.with_peer (peer_args kind path) (fun p ->
      let ib = inbox () in
      (* failures inside a handler are counted (Socket_link logs and ignores
         what a handler raises) and checked at the end *)
      let got = ref [] and kept = ref [] and invalid_in_handler = ref 0 and wrong = ref [] in
      let lref = ref None in
      let chain_left = ref 0 and big = String.init 65536 (fun k -> Char.chr ((k * 7) land 0xFF)) in
      let on_view = function
        | LT.View.Pong pv ->
          if not (Mycelium.View.is_valid pv.payload) then incr invalid_in_handler;
          if pv.seq >= 1000L && !chain_left > 0 then begin
            (* the round-trip chain: check without copying, then the next ping *)
            if not (Mycelium.View.equal_string pv.payload big) then wrong := "chain: payload differs" :: !wrong;
            decr chain_left;
            (match !lref with
             | Some l ->
               (* a refused publish would end the chain silently: name it *)
               Lwt.async (fun () ->
                   S.publish l (LT.Ping { seq = Int64.succ pv.seq; payload = big }) >|= function
                   | S.Ok_sent -> ()
                   | _ ->
                     wrong := Printf.sprintf "chain: the ping after %Ld was refused" pv.seq :: !wrong;
                     Lwt_condition.broadcast ib.cond ())
             | None -> ())
          end
          else got := (pv.seq, Mycelium.View.to_string pv.payload) :: !got;
          kept := pv.payload :: !kept;
          Lwt_condition.broadcast ib.cond ()
        | _ -> wrong := "a view of a type not asked for" :: !wrong
      in
      let views = { S.view_types = [ LT.Pong.type_id ]; decode_view = LT.View.decode_any_fields; on_view } in
      let cfg =
        { S.default_config with
          name = "views"; address = address kind path p;
          link = { S.default_config.link with node = "ocaml"; peer_timeout = 10.; shm = (kind = Shm_k) };
          log = test_log }
      in
      (S.start ~interest:[ LT.Pong.type_id ] ~schema:LT.descriptor ~on_event:(on_event ib)
         ~views:{ views with view_types = [ 424242 ] } cfg
       >|= function
       | Ok _ -> Alcotest.fail "a views type outside the schema was accepted"
       | Error e -> Alcotest.(check bool) ("refused: " ^ e) true (Testutil.Astring_like.contains e "424242"))
      >>= fun () ->
      S.start ~interest:[ LT.Pong.type_id; LT.Report.type_id ] ~schema:LT.descriptor ~on_event:(on_event ib) ~views cfg
      >>= function
      | Error e -> Alcotest.failf "start: %s" e
      | Ok l ->
        lref := Some l;
        Lwt.finalize
          (fun () ->
            up l >>= fun () ->
            wait_interest l LT.Ping.type_id >>= fun () ->
            let max_bytes = Mycelium.Frame.default_max_payload - (2 + 8) - (2 + 4) in
            let payloads =
              List.mapi (fun i n -> (Int64.of_int (i + 1), String.init n (fun k -> Char.chr ((k * 13 + i) land 0xFF))))
                [ 0; 1; 4096; 65536; max_bytes ]
            in
            Lwt_list.iter_s (fun (seq, payload) -> publish l (LT.Ping { seq; payload })) payloads >>= fun () ->
            wait_for ib "every pong as a view" (fun () -> List.length !got >= List.length payloads) >>= fun () ->
            List.iter
              (fun (seq, payload) ->
                match List.assoc_opt seq !got with
                | Some b -> Alcotest.(check bool) (Printf.sprintf "pong %Ld: the view's bytes" seq) true (b = payload)
                | None -> Alcotest.failf "no pong %Ld" seq)
              payloads;
            chain_left := 300;
            publish l (LT.Ping { seq = 1000L; payload = big }) >>= fun () ->
            wait_for ib "300 round trips from the view handler" (fun () -> !chain_left = 0 || !wrong <> []) >>= fun () ->
            Alcotest.(check (list string)) "the chain ran through" [] !wrong;
            (* other types beside the views: data out, a report back as a Message *)
            wait_interest l LT.Data.type_id >>= fun () ->
            Lwt_list.iter_s
              (fun i -> publish l (LT.Data { seq = Int64.of_int i; checksum = fnv1a "d"; payload = "d" }))
              [ 1; 2; 3; 4; 5 ]
            >>= fun () ->
            report l ib >|= fun r ->
            Alcotest.(check int64) "the report (a Message) counts the 5 data" 5L r.received;
            Alcotest.(check int64) "the last data" 5L r.last_seq;
            Alcotest.(check int64) "data intact" 0L (Int64.add r.order_errors r.checksum_errors);
            Alcotest.(check int) "no pong as a Message event" 0
              (List.length (List.filter (function LT.Pong _ -> true | _ -> false) ib.msgs));
            Alcotest.(check int) "every view valid in its handler" 0 !invalid_in_handler;
            Alcotest.(check (list string)) "nothing wrong in the handler" [] !wrong;
            Alcotest.(check bool) "every view expired after its handler" true
              (List.for_all (fun v -> not (Mycelium.View.is_valid v)) !kept);
            (match Mycelium.View.to_string (List.hd !kept) with
             | _ -> Alcotest.fail "an expired view was read"
             | exception Mycelium.View.Expired -> ());
            Alcotest.(check int) "no bad frames" 0 (S.stats l).bad_frames;
            if kind = Shm_k then
              Alcotest.(check bool) "the pongs came through the ring" true ((S.stats l).ring_frames_in >= 300))
          (fun () -> S.stop l))

(* TCP: the socket of a connecting link (to a C++ peer) and of an
   accepted connection (from one) both have TCP_NODELAY; a burst of [n]
   data frames published without yielding goes out in a few write calls
   (the writer takes everything queued since its last write), not [n], and
   arrives complete and in order. *)
let tcp_nodelay_and_batched_writes () =
  let nodelay what l =
    match S.connection_fds l with
    | [ fd ] -> Alcotest.(check bool) (what ^ ": TCP_NODELAY on the live socket") true (Unix.getsockopt fd Unix.TCP_NODELAY)
    | fds -> Alcotest.failf "%s: expected one connection, got %d" what (List.length fds)
  in
  Peer.with_peer (peer_args Tcp_k "") (fun p ->
      let ib = inbox () in
      client ib (S.Tcp ("127.0.0.1", p.port)) >>= fun l ->
      Lwt.finalize
        (fun () ->
          up l >>= fun () ->
          nodelay "connecting" l;
          wait_interest l LT.Data.type_id >>= fun () ->
          wait_interest l LT.Report_request.type_id >>= fun () ->
          let n = 1000 in
          let writes0 = (S.stats l).writes in
          let rec burst i acc =
            if i > n then List.rev acc
            else
              let body = String.init (i mod 64) (fun k -> Char.chr ((i + k) land 0xFF)) in
              burst (i + 1) (S.publish l (LT.Data { seq = Int64.of_int i; checksum = fnv1a body; payload = body }) :: acc)
          in
          (* no Lwt yield between the publishes: the writer runs after the last *)
          Lwt_list.map_s Fun.id (burst 1 []) >>= fun sts ->
          Alcotest.(check int) "every publish admitted" n (List.length (List.filter (( = ) S.Ok_sent) sts));
          S.await l ~timeout (fun () -> S.queued l = 0) >|= check_await "the burst written" >>= fun () ->
          let writes = (S.stats l).writes - writes0 in
          Alcotest.(check bool) (Printf.sprintf "%d frames in %d write calls (at most n/10)" n writes) true
            (writes >= 1 && writes <= n / 10);
          report l ib >|= fun r ->
          Alcotest.(check int64) "every frame of the burst arrived" (Int64.of_int n) r.received;
          Alcotest.(check int64) "in order" 0L r.order_errors;
          Alcotest.(check int64) "intact" 0L r.checksum_errors)
        (fun () -> S.stop l))
  >>= fun () ->
  let ib = inbox () in
  let cfg =
    { S.default_config with
      name = "listener"; role = S.Listen; address = S.Tcp ("127.0.0.1", 0);
      link = { S.default_config.link with node = "ocaml-listener"; peer_timeout = 10. }; log = test_log }
  in
  S.start ~schema:LT.descriptor ~on_event:(on_event ib) cfg >>= function
  | Error e -> Alcotest.failf "listen: %s" e
  | Ok l ->
    Lwt.finalize
      (fun () ->
        Peer.with_peer
          [ "--kind"; "tcp"; "--connect"; "127.0.0.1"; "--port"; string_of_int (S.port l); "--name"; "cxx-connector";
            "--peer-timeout-ms"; "10000" ]
          (fun _ -> up l >|= fun () -> nodelay "accepted" l))
      (fun () -> S.stop l)

(* The reconnect backoff (Socket_link.reconnect_delay, what the connect
   loop waits), drawn from a seeded random state: retry k waits
   reconnect_min * 2^(k-1), capped at reconnect_max, times 1 to 1.5; it
   grows until the cap, never exceeds 1.5 x reconnect_max, the jitter
   spreads over its range, and one seed gives one schedule. *)
let reconnect_backoff () =
  let cfg = { S.default_config with reconnect_min = 0.02; reconnect_max = 2.0 } in
  let schedule seed = let rng = Random.State.make [| seed |] in List.init 12 (fun i -> S.reconnect_delay cfg rng ~attempt:(i + 1)) in
  let d = schedule 7 in
  List.iteri
    (fun i x ->
      let base = Float.min (0.02 *. (2. ** float_of_int i)) 2.0 in
      Alcotest.(check bool) (Printf.sprintf "retry %d: %.4f s in [%.3f, %.3f)" (i + 1) x base (1.5 *. base)) true
        (x >= base && x < 1.5 *. base))
    d;
  (* 0.02 * 2^6 = 1.28 < 2 < 2.56: retries 1-7 double, retry 8 is at the cap *)
  List.iteri
    (fun i (a, b) ->
      if i < 7 then Alcotest.(check bool) (Printf.sprintf "retry %d waits longer than retry %d" (i + 2) (i + 1)) true (b > a))
    (List.combine (List.filteri (fun i _ -> i < 11) d) (List.tl d));
  Alcotest.(check bool) "bounded by 1.5 x reconnect_max" true (List.for_all (fun x -> x <= 1.5 *. 2.0) d);
  Alcotest.(check bool) "at the cap from retry 8 on" true (List.for_all (fun x -> x >= 2.0) (List.filteri (fun i _ -> i >= 7) d));
  Alcotest.(check (list (float 0.))) "one seed, one schedule" d (schedule 7);
  Alcotest.(check bool) "another seed, other jitter" true (d <> schedule 8);
  let rng = Random.State.make [| 1 |] in
  let draws = List.init 1000 (fun _ -> S.reconnect_delay cfg rng ~attempt:1) in
  let lo = List.fold_left Float.min infinity draws and hi = List.fold_left Float.max 0. draws in
  Alcotest.(check bool) (Printf.sprintf "the jitter spreads over 0-50 %% (%.5f .. %.5f s)" lo hi) true
    (lo >= 0.02 && lo < 0.0205 && hi < 0.03 && hi > 0.0295);
  Lwt.return_unit

(* A live shm link whose peer's ring holds an impossible record: this test
   is the attaching peer (a Link core over a raw Unix socket), maps the
   OCaml listener's segment, writes a record of kind 7 into its own ring
   and answers the offer. The listener reads the ring once the answer came:
   it must close that connection with protocol_violation, naming the
   record, without an exception; then it serves a C++ peer over shm. *)
let shm_corrupt_ring () =
  let module Seg = Mycelium_shm.Segment in
  let module A = Mycelium_shm.Atomics in
  let module L = Mycelium.Link in
  let path = sock_path () in
  let ib = inbox () in
  let lines = ref [] in
  let lref = ref None in
  let on_ev ev =
    on_event ib ev;
    match (ev, !lref) with
    | S.Message (_, LT.Ping p), Some l ->
      Lwt.async (fun () -> S.publish l (LT.Pong { seq = p.seq; payload = p.payload }) >|= ignore)
    | _ -> ()
  in
  let cfg =
    { S.default_config with
      name = "listener"; role = S.Listen; address = S.Unix_path path;
      link = { S.default_config.link with node = "ocaml-listener"; peer_timeout = 10.; shm = true };
      log = (fun s -> lines := s :: !lines; test_log s) }
  in
  S.start ~interest:[ LT.Ping.type_id ] ~schema:LT.descriptor ~on_event:on_ev cfg >>= function
  | Error e -> Alcotest.failf "listen: %s" e
  | Ok l ->
    lref := Some l;
    Lwt.finalize
      (fun () ->
        let fd = Lwt_unix.socket Unix.PF_UNIX Unix.SOCK_STREAM 0 in
        let core =
          L.create ~schema:LT.descriptor ~config:{ L.default_config with node = "raw-attacher"; shm = true }
            ~nonce:(Mycelium.Auth.fresh_nonce ()) ~now:(Unix.gettimeofday ()) ()
        in
        let rec flush () =
          match L.take_output core with
          | Some s -> Lwt_unix.write_string fd s 0 (String.length s) >>= fun _ -> flush ()
          | None -> Lwt.return_unit
        in
        let b = Bytes.create 65536 in
        (* reads what the listener sends into the core until [f] takes an
           event; [None] at the end of the stream *)
        let rec until what f =
          match L.pop_event core with
          | Some ev -> (match f ev with Some x -> Lwt.return (Some x) | None -> until what f)
          | None -> (
            Lwt.pick [ Lwt_unix.read fd b 0 (Bytes.length b); (Lwt_unix.sleep timeout >|= fun () -> -1) ] >>= function
            | -1 -> Alcotest.failf "timed out waiting for %s" what
            | 0 -> Lwt.return None
            | n -> L.receive core ~now:(Unix.gettimeofday ()) b 0 n; until what f)
        in
        Lwt.finalize
          (fun () ->
            Lwt_unix.connect fd (Unix.ADDR_UNIX path) >>= fun () ->
            flush () >>= fun () ->
            until "the shm offer" (function
              | L.Shm_offer (segment, _) -> Some segment
              | L.Closed c -> Alcotest.failf "closed before the offer: %s" c.text
              | _ -> None)
            >>= function
            | None -> Alcotest.fail "the listener closed before its offer"
            | Some segment -> (
              match Seg.attach ~name:segment ~digest:LT.schema_digest ~pid:(Unix.getpid ()) with
              | Error (_, text) -> Alcotest.failf "attach: %s" text
              | Ok seg ->
                (* our ring (side 1): one record {length 8, kind 7} *)
                let data = Seg.ring_data seg 1 and ctl = Seg.ring_offset seg 1 in
                A.set_u32 seg.Seg.map data 8;
                A.set_u32 seg.Seg.map (data + 4) 7;
                A.store_release_u64 seg.Seg.map (ctl + Seg.off_head) 16;
                L.shm_accept core ~now:(Unix.gettimeofday ()) ~segment ~doorbell:"mycelium-bell-corrupt-ring-test";
                flush () >>= fun () ->
                wait_for ib "the listener's close" (fun () -> ib.downs <> []) >>= fun () ->
                let c = List.hd ib.downs in
                Alcotest.check Util.errc ("closed: " ^ c.text) E.Protocol_violation c.error;
                List.iter
                  (fun part -> Alcotest.(check bool) (Printf.sprintf "%S in %S" part c.text) true (Astring_like.contains c.text part))
                  [ "impossible record (kind 7, length 8) at 0"; "last good ring sequence 0" ];
                Alcotest.(check (list string)) "no exception in the listener" []
                  (List.filter (fun s -> Astring_like.contains s "internal error" || Astring_like.contains s "raised") !lines);
                until "the end of the connection" (fun _ -> None) >|= fun _ ->
                Alcotest.(check int) "no connection left" 0 (S.connections l)))
          (fun () -> Lwt_unix.close fd)
        >>= fun () ->
        expect_pinger [ "--kind"; "shm"; "--connect"; path ] 50 "the C++ pinger failed after the corrupt ring")
      (fun () -> S.stop l)

let lwt_case name f = Alcotest.test_case name `Quick (fun () -> Lwt_main.run (f ()))

let () =
  Sys.set_signal Sys.sigpipe Sys.Signal_ignore;
  let per_kind label kind =
    ( label,
      [
        lwt_case "session" (session kind);
        lwt_case "session with a secret" (session kind ~secret:"s3cret");
        lwt_case "digest mismatch refused" (refused_digest kind);
        lwt_case "wrong secret refused" (refused_secret kind);
        lwt_case "peer crash and reconnect" (crash_reconnect kind);
        lwt_case "C++ peer connects to OCaml" (ocaml_listens kind);
        lwt_case "OCaml node process" (ocaml_node_process kind);
        lwt_case "hung peer lost after peer_timeout" (hung_peer kind);
        lwt_case "pongs as views" (views_session kind);
        lwt_case "malformed frames from a raw client" (malformed_input kind);
        lwt_case "overflow block" (overflow ~kind S.Block);
        lwt_case "overflow drop_newest" (overflow ~kind S.Drop_newest);
        lwt_case "overflow disconnect" (overflow ~kind S.Disconnect);
      ] )
  in
  let shm_cases =
    ( "shm",
      [
        lwt_case "session" (session Shm_k);
        lwt_case "session with a secret" (session Shm_k ~secret:"s3cret");
        lwt_case "digest mismatch refused" (refused_digest Shm_k);
        lwt_case "wrong secret refused" (refused_secret Shm_k);
        lwt_case "peer crash and reconnect" (crash_reconnect Shm_k);
        lwt_case "C++ peer connects to OCaml" (ocaml_listens Shm_k);
        lwt_case "OCaml node process" (ocaml_node_process Shm_k);
        lwt_case "OCaml to OCaml" ocaml_to_ocaml_shm;
        lwt_case "hung peer lost after peer_timeout" (hung_peer Shm_k);
        lwt_case "overflow block" (overflow ~kind:Shm_k S.Block);
        lwt_case "overflow drop_newest" (overflow ~kind:Shm_k S.Drop_newest);
        lwt_case "overflow disconnect" (overflow ~kind:Shm_k S.Disconnect);
        lwt_case "pongs as views" (views_session Shm_k);
        lwt_case "a corrupt ring record closes the link" shm_corrupt_ring;
      ] )
  in
  Alcotest.run "conformance"
    [ per_kind "unix" Unix_k; per_kind "tcp" Tcp_k; shm_cases;
      ( "tcp socket",
        [ lwt_case "TCP_NODELAY on both ends, a burst in few writes" tcp_nodelay_and_batched_writes ] );
      ("reconnect", [ lwt_case "backoff: exponential, jittered, bounded" reconnect_backoff ]) ]
