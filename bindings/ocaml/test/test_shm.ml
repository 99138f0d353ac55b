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

(* Claim/commit: frames written in place into the claimed slot, sizes that
   wrap at the ring's end (a wrap record at the commit), interleaved with
   copying writes; an uncommitted claim leaves nothing visible. *)
let test_claim_commit () =
  let s0, s1 = pair ~capacity:256 () in
  let w = Ring.writer s1 and r = Ring.reader s0 in
  let put_in_place i n =
    match Ring.claim w ~min_n:n with
    | Ring.Claimed ->
      Alcotest.(check bool) (Printf.sprintf "claim %d: at least %d granted" i n) true (Ring.granted w >= n);
      let b = frame_bytes i n in
      Mycelium.Tlv.blit_string_to_big (Bytes.unsafe_to_string b) 0 s1.map (Ring.slot w) n;
      Ring.commit w n;
      b
    | Ring.Claim_full -> Alcotest.failf "claim %d (%d bytes) refused on an empty ring" i n
    | Ring.Claim_corrupt t -> Alcotest.failf "claim %d: %s" i t
  in
  for i = 1 to 500 do
    let n = 1 + (i * 29 mod 110) in
    let b =
      if i mod 3 = 0 then begin
        let b = frame_bytes i n in
        Alcotest.(check bool) "copying write" true (Ring.write w b 0 n = Ring.Written);
        b
      end
      else put_in_place i n
    in
    match Ring.peek r with
    | Ring.Frame (pos, len) ->
      Alcotest.(check int) "length" n len;
      Alcotest.(check bool) (Printf.sprintf "frame %d intact" i) true (Ring.copy_out r pos len = b);
      Ring.release r len
    | Ring.Empty -> Alcotest.failf "frame %d missing" i
    | Ring.Bad t -> Alcotest.failf "frame %d: %s" i t
  done;
  (match Ring.claim w ~min_n:16 with
   | Ring.Claimed -> Alcotest.(check bool) "an uncommitted claim is invisible" true (Ring.peek r = Ring.Empty)
   | _ -> Alcotest.fail "claim on an empty ring");
  (match Ring.commit w (Ring.granted w + 1) with
   | () -> Alcotest.fail "committed more than granted"
   | exception Invalid_argument _ -> ());
  (* on fresh rings, 4 records of 64 bytes fill 256 *)
  let s0, s1 = pair ~capacity:256 () in
  let w2 = Ring.writer s1 and r = Ring.reader s0 in
  for i = 1 to 4 do
    match Ring.claim w2 ~min_n:56 with
    | Ring.Claimed -> Ring.commit w2 56
    | _ -> Alcotest.failf "record %d does not fit" i
  done;
  Alcotest.(check bool) "full" true (Ring.claim w2 ~min_n:8 = Ring.Claim_full);
  (match Ring.peek r with Ring.Frame (_, len) -> Ring.release r len | _ -> Alcotest.fail "no frame");
  (match Ring.claim w2 ~min_n:56 with
   | Ring.Claimed -> Alcotest.(check bool) "room after a release (the tail reloaded)" true (Ring.granted w2 >= 56)
   | _ -> Alcotest.fail "no room after a release");
  Alcotest.(check bool) "over max_frame" true (Ring.claim w2 ~min_n:(s1.max_frame + 1) = Ring.Claim_full);
  (* a tail the consumer could not have written *)
  A.store_release_u64 s1.map (Seg.ring_offset s1 1 + Seg.off_tail) 100000;
  let w3 = Ring.writer s1 in
  w3.Ring.tail_seen <- 0;
  w3.Ring.head <- 256;
  (match Ring.claim w3 ~min_n:8 with
   | Ring.Claim_corrupt _ -> ()
   | _ -> Alcotest.fail "an impossible tail was not refused")

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

let rec up_pair () = up_pair_with (shm_cfg "a")

and up_pair_with cfg =
  let a = L.create ~schema:LT.descriptor ~config:cfg ~nonce:(Mycelium.Auth.fresh_nonce ()) ~now:0.
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

let rec offered () = offered_with (shm_cfg "a")

and offered_with cfg =
  let a, _ = up_pair_with cfg in
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

(* The core in shm mode, in place: a data frame encoded straight into a
   claimed slot (send_in_place) and decoded straight from the mapping
   (receive_ring_frame_big), through a real ring. *)
let test_core_in_place () =
  let a = offered () in
  ignore (L.take_output a);
  ignore (events a);
  (* the peer's interest, in the ring *)
  ring a (frame Mycelium.Frame.subscribe 1L "\x0a\x00\x01\x00\x00\x00");
  Alcotest.(check bool) "peer wants pings" true (L.peer_interested a LT.Ping.type_id);
  (* our subscribe (ring sequence 1) is pending in the core's ring output:
     earlier frames go first *)
  let slot = Mycelium.Tlv.big_writer () in
  let s0, s1 = pair ~capacity:4096 () in
  let w = Ring.writer s1 and r = Ring.reader s0 in
  let claim () =
    match Ring.claim w ~min_n:24 with
    | Ring.Claimed -> Mycelium.Tlv.target slot s1.map ~off:(Ring.slot w) ~cap:(Ring.granted w)
    | _ -> Alcotest.fail "no room"
  in
  claim ();
  let ping = LT.Ping { seq = 7L; payload = String.make 300 'p' } in
  Alcotest.(check bool) "behind pending ring output: does not fit" true (L.send_in_place a slot ping = L.Does_not_fit);
  let pending = L.swap_ring_output a (Mycelium.Tlv.writer ()) in
  Alcotest.(check bool) "the subscribe was pending" true (Mycelium.Tlv.length pending > 0);
  claim ();
  Alcotest.(check bool) "placed" true (L.send_in_place a slot ping = L.Placed);
  let n = Mycelium.Tlv.length slot in
  Alcotest.(check int) "frame length" (24 + String.length (LT.Ping.encode { seq = 7L; payload = String.make 300 'p' })) n;
  Ring.commit w n;
  (* what went into the ring is the frame [send] would have framed, ring sequence 2 *)
  (match Ring.peek r with
   | Ring.Frame (pos, len) ->
     let b = Bytes.unsafe_to_string (Ring.copy_out r pos len) in
     (match Mycelium.Frame.read_header ~max_payload:(1 lsl 20) b with
      | Ok h -> Alcotest.(check int64) "ring sequence after the subscribe" 2L h.sequence
      | Error e -> Alcotest.failf "header: %s" (E.to_string e));
     (* and a second core decodes it in place from the mapping *)
     let b2 = offered () in
     ignore (events b2);
     ring b2 (frame Mycelium.Frame.subscribe 1L "\x0a\x00\x01\x00\x00\x00");
     (* b2 took a subscribe as ring sequence 1, as [a] wrote one: the ping is 2 *)
     L.receive_ring_frame_big b2 ~now:0. s0.map pos len;
     Alcotest.(check bool) "decoded in place" true
       (List.exists (function L.Message (_, x) -> x = ping | _ -> false) (events b2));
     Ring.release r len
   | _ -> Alcotest.fail "nothing in the ring");
  (* a frame larger than the granted area: nothing written, no sequence used *)
  claim ();
  Mycelium.Tlv.target slot s1.map ~off:(Ring.slot w) ~cap:64;
  Alcotest.(check bool) "too big for the area" true
    (L.send_in_place a slot (LT.Ping { seq = 8L; payload = String.make 100 'q' }) = L.Does_not_fit);
  claim ();
  Alcotest.(check bool) "the next one placed" true (L.send_in_place a slot (LT.Ping { seq = 9L; payload = "" }) = L.Placed);
  Ring.commit w (Mycelium.Tlv.length slot);
  (match Ring.peek r with
   | Ring.Frame (pos, len) ->
     (match Mycelium.Frame.read_header ~max_payload:(1 lsl 20) (Bytes.unsafe_to_string (Ring.copy_out r pos len)) with
      | Ok h -> Alcotest.(check int64) "no sequence lost to the frame that did not fit" 3L h.sequence
      | Error e -> Alcotest.failf "header: %s" (E.to_string e));
     Ring.release r len
   | _ -> Alcotest.fail "nothing in the ring");
  (* over max_payload: refused and counted, as by send *)
  let small = offered_with { (shm_cfg "a") with max_payload = 10 } in
  ring small (frame Mycelium.Frame.subscribe 1L "\x0a\x00\x01\x00\x00\x00");
  ignore (L.swap_ring_output small (Mycelium.Tlv.writer ()));
  claim ();
  Alcotest.(check bool) "over max_payload" true
    (L.send_in_place small slot (LT.Ping { seq = 1L; payload = String.make 20 'x' }) = L.Refused L.Too_large);
  Alcotest.(check int) "counted" 1 (L.stats small).frames_too_large;
  (* undecodable data in place is dropped and counted, corrupt headers close *)
  let c = offered () in
  ignore (events c);
  let bad = frame ~control:false LT.Ping.type_id 1L "\x0d\x00" in
  let b = Bigarray.Array1.create Bigarray.char Bigarray.c_layout (String.length bad + 8) in
  String.iteri (fun i ch -> b.{8 + i} <- ch) bad;
  L.receive_ring_frame_big c ~now:0. b 8 (String.length bad);
  Alcotest.(check bool) "undecodable: dropped and counted" true
    (List.exists (function L.Bad_frame (_, E.Bad_wire_type) -> true | _ -> false) (events c) && (L.stats c).bad_frames = 1);
  let bad_hdr = Bytes.of_string (frame ~control:false LT.Ping.type_id 2L "") in
  Bytes.set_uint16_le bad_hdr 18 1;
  String.iteri (fun i ch -> b.{8 + i} <- ch) (Bytes.to_string bad_hdr);
  L.receive_ring_frame_big c ~now:0. b 8 24;
  Alcotest.(check bool) "corrupt header in place: closed" true (closed c = Some E.Bad_frame_header);
  Seg.close s0; Seg.close s1

(* The core handing data frames over as views (Link.set_in_place): from
   the mapping (shm) and from the input buffer (socket), delivered before
   the call returns, with views valid during the delivery and expired
   after it; other types stay Message events; a view decode error is a
   bad frame, counted, and reaches no handler. *)
let test_core_views () =
  let module V = Mycelium.View in
  let delivered = ref [] and kept = ref [] in
  let in_place =
    { L.accepts = (fun id -> id = LT.Pong.type_id);
      deliver =
        (fun id r ->
          match LT.View.decode_any_fields id r with
          | LT.View.Pong p ->
            Alcotest.(check bool) "valid during the delivery" true (V.is_valid p.payload);
            delivered := (p.seq, V.to_string p.payload) :: !delivered;
            kept := p.payload :: !kept
          | _ -> Alcotest.fail "not a pong") }
  in
  let big_frame id seq payload =
    let f = frame ~control:false id seq payload in
    let b = Bigarray.Array1.create Bigarray.char Bigarray.c_layout (String.length f + 8) in
    String.iteri (fun i ch -> b.{8 + i} <- ch) f;
    (b, String.length f)
  in
  let a = offered () in
  ignore (events a);
  L.set_in_place a (Some in_place);
  let body = String.init 70000 (fun i -> Char.chr (i land 0xFF)) in
  let b, n = big_frame LT.Pong.type_id 1L (LT.Pong.encode { seq = 3L; payload = body }) in
  L.receive_ring_frame_big a ~now:0. b 8 n;
  Alcotest.(check bool) "delivered in the call" true (!delivered = [ (3L, body) ]);
  Alcotest.(check bool) "no Message event for it" true (events a = []);
  Alcotest.(check bool) "expired after the delivery" false (V.is_valid (List.hd !kept));
  (match V.length (List.hd !kept) with
   | _ -> Alcotest.fail "an expired view was used"
   | exception V.Expired -> ());
  (* a type the views do not take: a Message as before *)
  let b, n = big_frame LT.Ping.type_id 2L (LT.Ping.encode { seq = 4L; payload = "x" }) in
  L.receive_ring_frame_big a ~now:0. b 8 n;
  Alcotest.(check bool) "pings stay Message events" true
    (match events a with [ L.Message (_, LT.Ping p) ] -> p.seq = 4L | _ -> false);
  (* undecodable: dropped, counted, no delivery; the core goes on *)
  let b, n = big_frame LT.Pong.type_id 3L "\x0d\x00" in
  L.receive_ring_frame_big a ~now:0. b 8 n;
  Alcotest.(check bool) "bad pong: a bad frame" true
    (match events a with [ L.Bad_frame (_, E.Bad_wire_type) ] -> true | _ -> false);
  Alcotest.(check int) "counted" 1 (L.stats a).bad_frames;
  let b, n = big_frame LT.Pong.type_id 4L "\x14\x00\x05\x00\x00\x00ab" in
  L.receive_ring_frame_big a ~now:0. b 8 n;
  Alcotest.(check bool) "cut bytes field: truncated" true
    (match events a with [ L.Bad_frame (_, E.Truncated) ] -> true | _ -> false);
  Alcotest.(check int) "one delivery only" 1 (List.length !delivered);
  (* a delivery that raises still expires its views *)
  L.set_in_place a
    (Some { in_place with deliver = (fun id r -> in_place.deliver id r; failwith "handler bug") });
  let b, n = big_frame LT.Pong.type_id 5L (LT.Pong.encode { seq = 5L; payload = "abc" }) in
  (match L.receive_ring_frame_big a ~now:0. b 8 n with
   | () -> Alcotest.fail "the delivery's exception was lost"
   | exception Failure _ -> ());
  Alcotest.(check bool) "expired after a raise" false (V.is_valid (List.hd !kept));
  (* off again: pongs are Message events *)
  L.set_in_place a None;
  let b, n = big_frame LT.Pong.type_id 6L (LT.Pong.encode { seq = 6L; payload = "q" }) in
  L.receive_ring_frame_big a ~now:0. b 8 n;
  Alcotest.(check bool) "without in_place: a Message" true
    (match events a with [ L.Message (_, LT.Pong p) ] -> p.seq = 6L && p.payload = "q" | _ -> false);
  (* over a socket: views of the input buffer, expired after the delivery *)
  delivered := [];
  let x, y = up_pair_with { (shm_cfg "x") with shm = false } in
  ignore (events x);
  ignore (events y);
  L.set_in_place x (Some in_place);
  Alcotest.(check bool) "sent" true (L.send y ~now:0. (LT.Pong { seq = 9L; payload = body }) = L.Sent);
  Alcotest.(check bool) "sent" true (L.send y ~now:0. (LT.Pong { seq = 10L; payload = "z" }) = L.Sent);
  (match L.take_output y with
   | Some s ->
     (* in two reads: a frame split between them *)
     let cut = String.length s - 10 in
     feed x (String.sub s 0 cut);
     Alcotest.(check int) "the first frame in the first read" 1 (List.length !delivered);
     feed x (String.sub s cut (String.length s - cut))
   | None -> Alcotest.fail "no output");
  Alcotest.(check bool) "both delivered from the buffer" true (List.rev !delivered = [ (9L, body); (10L, "z") ]);
  Alcotest.(check bool) "no events" true (events x = []);
  Alcotest.(check bool) "socket views expired" false (V.is_valid (List.hd !kept))

let () =
  Alcotest.run "shm"
    [
      ( "segment and rings",
        [ Alcotest.test_case "create, attach and its checks" `Quick test_attach;
          Alcotest.test_case "records wrap around" `Quick test_ring_wrap;
          Alcotest.test_case "claim and commit in place" `Quick test_claim_commit;
          Alcotest.test_case "full ring, frame over max_frame" `Quick test_ring_full_and_too_large;
          Alcotest.test_case "corrupt records refused" `Quick test_ring_corrupt;
          Alcotest.test_case "consumer_sleeping handshake" `Quick test_sleep_flag;
          Alcotest.test_case "stale segments removed" `Quick test_remove_stale ] );
      ( "link core",
        [ Alcotest.test_case "offer, accept, ring frames" `Quick test_core_shm;
          Alcotest.test_case "in place: encode into a slot, decode from the mapping" `Quick test_core_in_place;
          Alcotest.test_case "views: delivered in place, expired after" `Quick test_core_views ] );
    ]
