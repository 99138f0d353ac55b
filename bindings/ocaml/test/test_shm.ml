(* The shared-memory pieces without a peer process: segment creation and
   attach checks, the rings (wrap-around, full, corrupt records, the
   sleeping flag), and the link core in shm mode (offer, accept, ring
   sequence numbers, what a ring may carry). *)

open Schemas
open Testutil
module Seg = Mycelium_shm.Segment
module Ring = Mycelium_shm.Ring
module A = Mycelium_shm.Atomics
module E = Mycelium.Errc
module L = Mycelium.Link
module LT = Link_test

let counter = ref 0

let fresh_name () =
  incr counter;
  Printf.sprintf "mycelium-ocamltest-%d-%d" (Unix.getpid ()) !counter

let digest = LT.schema_digest

(* a created segment and its attached twin, both mapped here *)
let pair ?(capacity = 256) () =
  let name = fresh_name () in
  let s0 = Seg.create ~name ~capacity ~digest ~pid:(Unix.getpid ()) in
  match Seg.attach ~name ~digest ~pid:(Unix.getpid ()) with
  | Ok s1 -> (s0, s1)
  | Error (_, text) -> Seg.unlink name; Alcotest.failf "attach: %s" text

let test_attach () =
  let s0, s1 = pair () in
  Alcotest.(check int) "state attached" Seg.st_attached (Seg.state s0);
  Alcotest.(check bool) "name unlinked after attach" false (Sys.file_exists (Seg.path s0.name));
  Alcotest.(check int) "max_frame" (128 - 8) s1.max_frame;
  Alcotest.(check bool) "peer alive (ourselves)" true (Seg.peer_alive s1);
  let expect name code r =
    match r with
    | Ok _ -> Alcotest.failf "%s: attached" name
    | Error (c, text) -> Alcotest.check Util.errc (name ^ ": " ^ text) code c
  in
  expect "bad name" E.Protocol_violation (Seg.attach ~name:"other-x" ~digest ~pid:1);
  expect "slash" E.Protocol_violation (Seg.attach ~name:"mycelium-a/b" ~digest ~pid:1);
  expect "missing" E.Io_failed (Seg.attach ~name:(fresh_name ()) ~digest ~pid:1);
  let name = fresh_name () in
  ignore (Seg.create ~name ~capacity:256 ~digest ~pid:(Unix.getpid ()));
  expect "digest" E.Schema_mismatch (Seg.attach ~name ~digest:(String.make 32 'x') ~pid:1);
  Seg.unlink name;
  let zeros name size =
    let fd = Unix.openfile (Seg.path name) [ Unix.O_RDWR; Unix.O_CREAT ] 0o600 in
    Unix.ftruncate fd size;
    Unix.close fd
  in
  let name = fresh_name () in
  zeros name 1000;
  expect "bad magic" E.Bad_magic (Seg.attach ~name ~digest ~pid:1);
  Seg.unlink name;
  let name = fresh_name () in
  zeros name 100;
  expect "too small" E.Protocol_violation (Seg.attach ~name ~digest ~pid:1);
  Seg.unlink name;
  let name = fresh_name () in
  let s = Seg.create ~name ~capacity:256 ~digest ~pid:(Unix.getpid ()) in
  A.store_release_u32 s.map Seg.off_state Seg.st_creating;
  expect "not ready" E.Protocol_violation (Seg.attach ~name ~digest ~pid:1);
  Seg.unlink name

let frame_bytes i n = Bytes.init n (fun k -> Char.chr ((i * 7 + k) land 0xFF))

let test_ring_wrap () =
  let s0, s1 = pair ~capacity:256 () in
  let w = Ring.writer s1 and r = Ring.reader s0 in
  (* sizes that do not divide the capacity: records wrap at the end *)
  for i = 1 to 500 do
    let n = 1 + (i * 13 mod 100) in
    let b = frame_bytes i n in
    (match Ring.write w b 0 n with
     | Ring.Written -> ()
     | _ -> Alcotest.failf "write %d (%d bytes) refused on an empty ring" i n);
    match Ring.peek r with
    | Ring.Frame (pos, len) ->
      Alcotest.(check int) "length" n len;
      Alcotest.(check bool) (Printf.sprintf "frame %d intact" i) true (Ring.copy_out r pos len = b);
      Ring.release r len
    | Ring.Empty -> Alcotest.failf "frame %d missing" i
    | Ring.Bad t -> Alcotest.failf "frame %d: %s" i t
  done;
  Alcotest.(check bool) "empty at the end" true (Ring.peek r = Ring.Empty)

let test_ring_full_and_too_large () =
  let s0, s1 = pair ~capacity:256 () in
  let w = Ring.writer s1 and r = Ring.reader s0 in
  let b = frame_bytes 0 56 in
  (* 8 + 56 = 64 bytes per record: 4 fit in 256 *)
  for i = 1 to 4 do
    Alcotest.(check bool) (Printf.sprintf "record %d fits" i) true (Ring.write w b 0 56 = Ring.Written)
  done;
  Alcotest.(check bool) "fifth: full" true (Ring.write w b 0 56 = Ring.Full);
  (match Ring.peek r with Ring.Frame (_, len) -> Ring.release r len | _ -> Alcotest.fail "no frame");
  Alcotest.(check bool) "room again after a release" true (Ring.write w b 0 56 = Ring.Written);
  Alcotest.(check bool) "over max_frame" true (Ring.write w (Bytes.create 200) 0 200 = Ring.Too_large)

let test_ring_corrupt () =
  let s0, s1 = pair ~capacity:256 () in
  let w = Ring.writer s1 and r = Ring.reader s0 in
  ignore (Ring.write w (frame_bytes 1 16) 0 16);
  let data = Seg.ring_data s1 1 in
  A.set_u32 s1.map (data + 4) 7;
  (match Ring.peek r with Ring.Bad _ -> () | _ -> Alcotest.fail "kind 7 not refused");
  A.set_u32 s1.map (data + 4) 1;
  A.set_u32 s1.map data 1000;
  (match Ring.peek r with Ring.Bad _ -> () | _ -> Alcotest.fail "length over max_frame not refused");
  A.set_u32 s1.map data 16;
  let ctl = Seg.ring_offset s1 1 in
  A.store_release_u64 s1.map (ctl + Seg.off_head) 1000;
  (match Ring.peek r with Ring.Bad _ -> () | _ -> Alcotest.fail "head too far ahead not refused")

let test_sleep_flag () =
  let s0, s1 = pair () in
  let w = Ring.writer s1 and r = Ring.reader s0 in
  Alcotest.(check bool) "empty: may sleep" false (Ring.prepare_sleep r);
  Alcotest.(check bool) "the producer sees the sleeper" true (Ring.consumer_sleeping w);
  Ring.end_sleep r;
  Alcotest.(check bool) "awake" false (Ring.consumer_sleeping w);
  ignore (Ring.write w (frame_bytes 1 8) 0 8);
  Alcotest.(check bool) "data pending: do not sleep" true (Ring.prepare_sleep r)

let test_remove_stale () =
  (* a pid that surely is dead: a child that exited and was reaped *)
  let pid = Unix.create_process "true" [| "true" |] Unix.stdin Unix.stdout Unix.stderr in
  ignore (Unix.waitpid [] pid);
  let stale = fresh_name () and live = fresh_name () in
  ignore (Seg.create ~name:stale ~capacity:256 ~digest ~pid);
  ignore (Seg.create ~name:live ~capacity:256 ~digest ~pid:(Unix.getpid ()));
  let removed = Seg.remove_stale () in
  Alcotest.(check bool) "the dead owner's segment is removed" true (List.mem stale removed);
  Alcotest.(check bool) "and gone" false (Sys.file_exists (Seg.path stale));
  Alcotest.(check bool) "a live owner's segment stays" true (Sys.file_exists (Seg.path live));
  Seg.unlink live

(* -- the link core in shm mode -------------------------------------------------------- *)

let shm_cfg node = { L.default_config with node; service = "t"; pid = 1; shm = true }

let up_pair () =
  let a = L.create ~schema:LT.descriptor ~config:(shm_cfg "a") ~nonce:(Mycelium.Auth.fresh_nonce ()) ~now:0.
      ~interest:[ LT.Pong.type_id ] () in
  let b = L.create ~schema:LT.descriptor ~config:{ (shm_cfg "b") with shm = false }
      ~nonce:(Mycelium.Auth.fresh_nonce ()) ~now:0. () in
  let move x y = match L.take_output x with Some s -> L.receive y ~now:0. (Bytes.of_string s) 0 (String.length s) | None -> () in
  move a b; move b a; move a b; move b a;
  (a, b)

let events t = let rec go acc = match L.pop_event t with Some e -> go (e :: acc) | None -> List.rev acc in go []
let frame ?(control = true) id seq payload = Mycelium.Frame.make ~type_id:id ~sequence:seq ~control payload
let feed t s = L.receive t ~now:0. (Bytes.of_string s) 0 (String.length s)
let ring t s = L.receive_ring_frame t ~now:0. s 0 (String.length s)

let closed t = List.find_map (function L.Closed c -> Some c.error | _ -> None) (events t)

let attach_payload seg bell =
  let w = Mycelium.Tlv.writer () in
  Mycelium.Control.encode_shm_attach w ~segment:seg ~doorbell:bell;
  Mycelium.Tlv.contents w

let offered () =
  let a, _ = up_pair () in
  Alcotest.(check bool) "not up before the attach" false (L.is_up a);
  ignore (events a);
  feed a (frame Mycelium.Frame.shm_attach 2L (attach_payload "mycelium-x" "bell"));
  Alcotest.(check bool) "offer event" true (events a = [ L.Shm_offer ("mycelium-x", "bell") ]);
  L.shm_accept a ~now:0. ~segment:"mycelium-x" ~doorbell:"mine";
  Alcotest.(check bool) "up after the accept" true (L.is_up a);
  a

let test_core_shm () =
  let a = offered () in
  (* the answer goes on the socket, the subscribe in the ring with ring sequence 1 *)
  let out = Option.get (L.take_output a) in
  (match Mycelium.Frame.read_header ~max_payload:(1 lsl 20) out with
   | Ok h -> Alcotest.(check int) "shm_attach answer on the socket" Mycelium.Frame.shm_attach h.type_id
   | Error _ -> Alcotest.fail "no answer");
  let w = L.swap_ring_output a (Mycelium.Tlv.writer ()) in
  let rs = Mycelium.Tlv.contents w in
  (match Mycelium.Frame.read_header ~max_payload:(1 lsl 20) rs with
   | Ok h ->
     Alcotest.(check int) "subscribe in the ring" Mycelium.Frame.subscribe h.type_id;
     Alcotest.(check int64) "ring sequence 1" 1L h.sequence
   | Error _ -> Alcotest.fail "no ring output");
  (* a data frame from the ring *)
  let ping = LT.Ping.encode { seq = 5L; payload = "r" } in
  ring a (frame ~control:false LT.Ping.type_id 1L ping);
  Alcotest.(check bool) "message from the ring" true
    (List.exists (function L.Message (_, LT.Ping p) -> p.seq = 5L | _ -> false) (events a));
  ring a (frame Mycelium.Frame.subscribe 2L "\x0a\x00\x01\x00\x00\x00");
  Alcotest.(check bool) "interest from the ring" true (L.peer_interested a 1);
  Alcotest.(check bool) "data to the ring" true
    (L.send a ~now:0. (LT.Ping { seq = 1L; payload = "" }) = L.Sent && L.pending_ring_output a > 0);
  (* violations close *)
  ring a (frame ~control:false LT.Ping.type_id 9L ping);
  Alcotest.(check bool) "ring sequence gap" true (closed a = Some E.Sequence_gap);
  let a = offered () in
  ring a (frame Mycelium.Frame.heartbeat 1L "");
  Alcotest.(check bool) "heartbeat in a ring" true (closed a = Some E.Protocol_violation);
  let a = offered () in
  L.receive_ring_frame a ~now:0. (frame ~control:false 1 1L ping ^ "xx") 0 (24 + String.length ping + 2);
  Alcotest.(check bool) "record longer than its frame" true (closed a = Some E.Bad_frame_header);
  let a = offered () in
  feed a (frame Mycelium.Frame.shm_attach 3L (attach_payload "mycelium-y" "b"));
  Alcotest.(check bool) "second offer" true (closed a = Some E.Protocol_violation);
  let a, _ = up_pair () in
  ignore (events a);
  feed a (frame Mycelium.Frame.shm_attach 2L "");
  Alcotest.(check bool) "undecodable offer" true (closed a = Some E.Truncated)

let () =
  Alcotest.run "shm"
    [
      ( "segment and rings",
        [ Alcotest.test_case "create, attach and its checks" `Quick test_attach;
          Alcotest.test_case "records wrap around" `Quick test_ring_wrap;
          Alcotest.test_case "full ring, frame over max_frame" `Quick test_ring_full_and_too_large;
          Alcotest.test_case "corrupt records refused" `Quick test_ring_corrupt;
          Alcotest.test_case "consumer_sleeping handshake" `Quick test_sleep_flag;
          Alcotest.test_case "stale segments removed" `Quick test_remove_stale ] );
      ("link core", [ Alcotest.test_case "offer, accept, ring frames" `Quick test_core_shm ]);
    ]
