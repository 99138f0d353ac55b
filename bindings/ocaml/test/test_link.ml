(* The pure link core, two instances wired back to back in memory (no I/O,
   a synthetic clock): handshake, refusals, authentication, interest,
   heartbeats, goodbye, and malformed input that must close, never raise.
   Also the worked examples of docs/wire-protocol.md byte for byte. *)

open Schemas
module L = Mycelium.Link
module E = Mycelium.Errc
module LT = Link_test
open Testutil.Util

let cfg ?secret node = { L.default_config with node; service = "test"; pid = 42; secret }

let mk ?secret ?(interest = []) node =
  L.create ~schema:LT.descriptor ~config:(cfg ?secret node) ~nonce:(Mycelium.Auth.fresh_nonce ()) ~now:0.
    ~interest ()

let deliver ~now src dst =
  match L.take_output src with
  | Some s ->
    L.receive dst ~now (Bytes.of_string s) 0 (String.length s);
    true
  | None -> false

(* Moves bytes both ways until neither side has output. *)
let pump ?(now = 0.) a b =
  let rec go n =
    if n > 100 then Alcotest.fail "pump: no quiescence after 100 rounds";
    let x = deliver ~now a b in
    let y = deliver ~now b a in
    if x || y then go (n + 1)
  in
  go 0

let events t =
  let rec go acc = match L.pop_event t with Some e -> go (e :: acc) | None -> List.rev acc in
  go []

let closed_of t =
  List.find_map (function L.Closed c -> Some c | _ -> None) (events t)

let expect_closed name t code =
  match closed_of t with
  | Some c ->
    Alcotest.check errc (name ^ ": close reason") code c.error;
    c
  | None -> Alcotest.failf "%s: no Closed event" name

let test_handshake () =
  let a = mk "a" ~interest:[ LT.Ping.type_id ] and b = mk "b" ~interest:[ LT.Pong.type_id ] in
  pump a b;
  Alcotest.(check bool) "a up" true (L.is_up a);
  Alcotest.(check bool) "b up" true (L.is_up b);
  let ea = events a in
  Alcotest.(check bool) "a saw established with b's hello" true
    (List.exists (function L.Established h -> h.node = "b" | _ -> false) ea);
  Alcotest.(check bool) "a learnt b's interest" true (L.peer_interested a LT.Pong.type_id);
  Alcotest.(check bool) "b learnt a's interest" true (L.peer_interested b LT.Ping.type_id);
  (* no interest, no frame *)
  Alcotest.(check bool) "not interested" true
    (L.send a ~now:0. (LT.Ping { seq = 1L; payload = "" }) = L.Not_interested);
  Alcotest.(check bool) "sent" true
    (L.send b ~now:0. (LT.Ping { seq = 7L; payload = "xyz" }) = L.Sent);
  pump a b;
  (match events a with
   | [ L.Message (id, LT.Ping p) ] ->
     Alcotest.(check int) "type id" LT.Ping.type_id id;
     Alcotest.(check int64) "seq" 7L p.seq;
     Alcotest.(check string) "payload" "xyz" p.payload
   | _ -> Alcotest.fail "a did not get exactly the ping");
  (* unsubscribe stops the flow *)
  L.unsubscribe a ~now:0. LT.Ping.type_id;
  pump a b;
  Alcotest.(check bool) "b saw the unsubscribe" false (L.peer_interested b LT.Ping.type_id);
  Alcotest.(check bool) "b event" true
    (List.mem (L.Peer_unsubscribed LT.Ping.type_id) (events b));
  (* goodbye *)
  L.close a ~now:0.;
  pump a b;
  let c = expect_closed "goodbye" b E.None_ in
  Alcotest.(check bool) "goodbye text names a" true
    (Testutil.Astring_like.contains c.text "node 'a'")

let test_digest_mismatch () =
  let a = mk "a"
  and b =
    L.create ~schema:Test_messages.descriptor ~config:(cfg "b")
      ~nonce:(Mycelium.Auth.fresh_nonce ()) ~now:0. ()
  in
  pump a b;
  let ca = expect_closed "a" a E.Schema_mismatch and cb = expect_closed "b" b E.Schema_mismatch in
  List.iter
    (fun (c : L.closed) ->
      Alcotest.(check bool) "names both digests" true
        (Testutil.Astring_like.contains c.text (hex LT.schema_digest)
        && Testutil.Astring_like.contains c.text (hex Test_messages.schema_digest));
      Alcotest.(check bool) "names the first differing type" true
        (Testutil.Astring_like.contains c.text "first differing message type: "))
    [ ca; cb ];
  (* both refuse at once (the check is symmetric): each closes on its own
     refusal, with the text naming both digests *)
  Alcotest.(check bool) "each side refused itself" true
    ((not ca.refused_by_peer) && not cb.refused_by_peer)

let test_auth () =
  let a = mk ~secret:"k" "a" ~interest:[ 1 ] and b = mk ~secret:"k" "b" in
  pump a b;
  Alcotest.(check bool) "both up with the same secret" true (L.is_up a && L.is_up b);
  Alcotest.(check bool) "interest after auth" true (L.peer_interested b 1);
  let a = mk ~secret:"k" "a" and b = mk ~secret:"other" "b" in
  pump a b;
  let c = expect_closed "wrong secret" a E.Auth_failed in
  let cb = expect_closed "wrong secret b" b E.Auth_failed in
  (* each side checks the other's proof (both sent one): each refuses on
     its own check, naming the peer whose proof failed *)
  List.iter
    (fun (side, peer, (cl : L.closed)) ->
      Alcotest.(check bool) (side ^ ": refused on its own check") false cl.refused_by_peer;
      Alcotest.(check string) (side ^ ": the reason")
        (Printf.sprintf
           "authentication proof of peer node '%s' service 'test' (pid 42) does not match: the two sides use \
            different secrets (or the proof was replayed from another connection)"
           peer)
        cl.text)
    [ ("a", "b", c); ("b", "a", cb) ];
  let a = mk ~secret:"k" "a" and b = mk "b" in
  pump a b;
  let ca = expect_closed "secret on one side (a)" a E.Auth_failed in
  let cb = expect_closed "secret on one side (b)" b E.Auth_failed in
  Alcotest.(check bool) "texts say what to do" true
    (Testutil.Astring_like.contains ca.text "configure the same secret on both sides"
    && Testutil.Astring_like.contains cb.text "configure the same secret on both sides")

let raw_frame ?(control = true) type_id seq payload =
  Mycelium.Frame.make ~type_id ~sequence:seq ~control payload

let feed t s = L.receive t ~now:0. (Bytes.of_string s) 0 (String.length s)

let last_refusal t =
  (* the refuse frame t wrote, decoded *)
  match L.take_output t with
  | None -> Alcotest.fail "no output"
  | Some s ->
    let rec last off found =
      if off >= String.length s then found
      else
        match Mycelium.Frame.read_header ~off ~max_payload:(1 lsl 20) s with
        | Ok h ->
          let found =
            if h.type_id = Mycelium.Frame.refuse then
              Some (h, Mycelium.Control.decode_refuse ~off:(off + 24) ~len:h.payload_length s)
            else found
          in
          last (off + 24 + h.payload_length) found
        | Error _ -> found
    in
    match last 0 None with
    | Some (h, Ok r) -> (h, r)
    | _ -> Alcotest.fail "no refuse frame in the output"

let test_refusals () =
  let check_refused name input code text =
    let t = mk "x" in
    feed t input;
    let h, r = last_refusal t in
    Alcotest.(check int64) (name ^ ": refuse has sequence 2") 2L h.sequence;
    Alcotest.(check int) (name ^ ": reason") (E.to_int code) r.code;
    Alcotest.(check bool) (name ^ ": text " ^ r.text) true (Testutil.Astring_like.contains r.text text);
    ignore (expect_closed name t code)
  in
  check_refused "data first" (raw_frame ~control:false 1 1L "") E.Protocol_violation
    "data frame of type 1 before its hello";
  check_refused "goodbye first" (raw_frame Mycelium.Frame.goodbye 1L "") E.Protocol_violation
    "control frame goodbye (0xffff0006)";
  check_refused "unknown control first" (raw_frame 0xFFFF0009 1L "") E.Protocol_violation
    "control frame of unknown type 0xffff0009";
  check_refused "garbage hello" (raw_frame Mycelium.Frame.hello 1L "\x0a\x00\x01") E.Truncated
    "undecodable hello: truncated";
  check_refused "bad header" (String.make 24 '\xff') E.Bad_frame_header "corrupt frame header";
  check_refused "sequence 2 first" (raw_frame Mycelium.Frame.hello 2L "") E.Sequence_gap
    "expected 1, got 2";
  let bad_magic =
    let w = Mycelium.Tlv.writer () in
    Mycelium.Control.encode_hello w
      { (L.own_hello (mk "y")) with magic = 0x4C43594E; node = "evil"; service = "svc" };
    Mycelium.Tlv.contents w
  in
  check_refused "bad magic" (raw_frame Mycelium.Frame.hello 1L bad_magic) E.Bad_magic
    "peer node 'evil' service 'svc' (pid 42) is not a Mycelium peer (bad magic)";
  let big = Bytes.create 24 in
  Mycelium.Frame.write_header big 0 ~payload_length:((1 lsl 20) + 1) ~type_id:1 ~sequence:1L
    ~control:false;
  check_refused "too large" (Bytes.to_string big) E.Frame_too_large "exceeds max_payload"

let test_established_errors () =
  let up () =
    let a = mk "a" ~interest:[ 1 ] and b = mk "b" in
    pump a b;
    ignore (events a);
    ignore (events b);
    a
  in
  let close_on name input code =
    let a = up () in
    feed a input;
    ignore (expect_closed name a code);
    Alcotest.(check bool) (name ^ ": no refusal after the handshake") true
      (match L.take_output a with
       | None -> true
       | Some s -> not (Testutil.Astring_like.contains s "\x02\x00\xff\xff"))
  in
  close_on "sequence gap" (raw_frame Mycelium.Frame.heartbeat 5L "") E.Sequence_gap;
  close_on "bad flags" (String.make 24 '\x07') E.Bad_frame_header;
  close_on "second hello" (raw_frame Mycelium.Frame.hello 2L "") E.Protocol_violation;
  close_on "unknown control" (raw_frame 0xFFFF00AA 2L "") E.Protocol_violation;
  close_on "bad subscribe" (raw_frame Mycelium.Frame.subscribe 2L "") E.Truncated;
  close_on "subscribe type 0" (raw_frame Mycelium.Frame.subscribe 2L "\x0a\x00\x00\x00\x00\x00")
    E.Unknown_type;
  close_on "shm_attach on a socket" (raw_frame Mycelium.Frame.shm_attach 2L "") E.Protocol_violation;
  (* data frames that do not decode are dropped and counted; the link goes on *)
  let a = up () in
  feed a (raw_frame ~control:false 1 2L "\x00\x00");
  feed a (raw_frame ~control:false 77 3L "");
  feed a (raw_frame ~control:false 0xFFFF0001 4L "");
  Alcotest.(check bool) "still up" true (L.is_up a);
  Alcotest.(check int) "bad frames counted" 3 (L.stats a).bad_frames;
  Alcotest.(check bool) "bad frame events" true
    (events a = [ L.Bad_frame (1, E.Bad_field_id); L.Bad_frame (77, E.Unknown_type);
                  L.Bad_frame (0xFFFF0001, E.Unknown_type) ])

let test_split_input () =
  (* frames arriving one byte at a time *)
  let a = mk "a" ~interest:[ 1 ] and b = mk "b" in
  pump a b;
  ignore (L.send b ~now:0. (LT.Ping { seq = 3L; payload = String.make 1000 'p' }));
  let s = Option.get (L.take_output b) in
  String.iteri (fun i _ -> L.receive a ~now:0. (Bytes.of_string s) i 1) s;
  Alcotest.(check bool) "got it" true
    (List.exists (function L.Message (_, LT.Ping p) -> p.seq = 3L | _ -> false) (events a))

let test_heartbeat_timeout () =
  let a = mk "a" and b = mk "b" in
  pump a b;
  ignore (events a);
  L.tick a ~now:0.05;
  Alcotest.(check bool) "no heartbeat before the interval" true (L.take_output a = None);
  L.tick a ~now:0.15;
  (match L.take_output a with
   | Some s ->
     (match Mycelium.Frame.read_header ~max_payload:0 s with
      | Ok h -> Alcotest.(check int) "heartbeat" Mycelium.Frame.heartbeat h.type_id
      | Error e -> Alcotest.fail (E.to_string e))
   | None -> Alcotest.fail "no heartbeat after the interval");
  L.tick a ~now:1.5;
  ignore (expect_closed "peer timeout" a E.Peer_lost)

let test_too_large_send () =
  let a =
    L.create ~schema:LT.descriptor ~config:{ (cfg "a") with max_payload = 100 }
      ~nonce:(Mycelium.Auth.fresh_nonce ()) ~now:0. ()
  in
  let b = mk "b" ~interest:[ 1 ] in
  pump a b;
  Alcotest.(check bool) "too large" true
    (L.send a ~now:0. (LT.Ping { seq = 1L; payload = String.make 200 'x' }) = L.Too_large);
  Alcotest.(check int) "counted" 1 (L.stats a).frames_too_large;
  Alcotest.(check bool) "then a small one" true
    (L.send a ~now:0. (LT.Ping { seq = 2L; payload = "ok" }) = L.Sent);
  pump a b;
  Alcotest.(check bool) "b got only the small one, in sequence" true
    (List.exists (function L.Message (_, LT.Ping p) -> p.seq = 2L | _ -> false) (events b)
    && L.is_up b)

(* docs/wire-protocol.md, worked examples *)
let test_doc_examples () =
  let own =
    { Mycelium.Control.empty_hello with
      nonce = String.init 16 (fun i -> Char.chr (0x10 + i));
      digest = String.init 32 (fun i -> Char.chr (0x20 + i));
      node = "a"; service = "s"; pid = 7 }
  in
  let proof = Mycelium.Auth.proof ~secret:"k" ~challenge:(String.init 16 Char.chr) own in
  Alcotest.(check string) "auth proof (section 9.4)"
    "451dce9dae9dbc60ad13eec41b9cd6cd741f7e6ad60375130b17a1951fdec3a2" (hex proof);
  let w = Mycelium.Tlv.writer () in
  Mycelium.Control.encode_refuse w { code = 18; text = "bye" };
  Alcotest.check bytes_hex "refuse frame (section 7.4)"
    (unhex "0f000000 0200ffff 0200000000000000 0100 0000 00000000 0a00 12000000 1400 03000000 627965")
    (raw_frame Mycelium.Frame.refuse 2L (Mycelium.Tlv.contents w));
  let w = Mycelium.Tlv.writer () in
  Mycelium.Control.encode_interest w 5;
  Alcotest.check bytes_hex "subscribe frame (section 9.1)"
    (unhex "06000000 0300ffff 0200000000000000 0100 0000 00000000 0a00 05000000")
    (raw_frame Mycelium.Frame.subscribe 2L (Mycelium.Tlv.contents w));
  let w = Mycelium.Tlv.writer () in
  Mycelium.Control.encode_auth w proof;
  Alcotest.(check int) "auth frame is 62 bytes" 62
    (String.length (raw_frame Mycelium.Frame.auth 2L (Mycelium.Tlv.contents w)))

let test_hello_decode_errors () =
  let good = L.own_hello (mk "h") in
  let enc h = let w = Mycelium.Tlv.writer () in Mycelium.Control.encode_hello w h; Mycelium.Tlv.contents w in
  let dec s = match Mycelium.Control.decode_hello s with Ok _ -> E.None_ | Error (e, _) -> e in
  Alcotest.check errc "good" E.None_ (dec (enc good));
  Alcotest.check errc "digest not 32" E.Array_length_mismatch (dec (enc { good with digest = "abc" }));
  Alcotest.check errc "nonce not 16" E.Array_length_mismatch (dec (enc { good with nonce = "abc" }));
  Alcotest.check errc "duplicate unknown id < 32" E.Duplicate_field (dec (enc good ^ "\xf8\x00\x01\xf8\x00\x01"));
  Alcotest.check errc "unknown id >= 32 twice is fine" E.None_ (dec (enc good ^ "\x00\x01\x01\x00\x01\x01"));
  Alcotest.check errc "name too long" E.String_too_long
    (dec (String.sub (enc good) 0 48 ^ "\x24\x00\x00\x01\x00\x00" ^ String.make 256 'n'));
  Alcotest.check errc "no magic" E.Bad_magic (dec "\x11\x00\x01\x00");
  Alcotest.check errc "missing pid" E.Truncated
    (dec (String.sub (enc { good with node = ""; service = "" }) 0 (48 + 12)))

(* Random and mutated input never raises: every stream ends in a Closed
   event or leaves the link running, whatever the bytes. Deterministic
   (fixed seed), so a failure reproduces. *)
let test_random_input () =
  let rng = Random.State.make [| 13 |] in
  let valid () =
    (* a good hello, as a peer sends it *)
    let b = mk "b" ~interest:[ 1 ] in
    Option.get (L.take_output b)
  in
  let base = valid () in
  let traffic =
    String.concat ""
      [ raw_frame Mycelium.Frame.subscribe 2L "\x0a\x00\x01\x00\x00\x00";
        raw_frame ~control:false 1 3L (LT.Ping.encode { seq = 1L; payload = "abc" });
        raw_frame Mycelium.Frame.heartbeat 4L "" ]
  in
  let good = base ^ traffic in
  for i = 1 to 3000 do
    let s = Bytes.of_string good in
    (* flip, cut or extend *)
    let n = 1 + Random.State.int rng 6 in
    for _ = 1 to n do
      let p = Random.State.int rng (Bytes.length s) in
      Bytes.set s p (Char.chr (Random.State.int rng 256))
    done;
    let s = Bytes.to_string s in
    let s = if i mod 3 = 0 then String.sub s 0 (Random.State.int rng (String.length s)) else s in
    let s = if i mod 5 = 0 then s ^ String.init (Random.State.int rng 64) (fun _ -> Char.chr (Random.State.int rng 256)) else s in
    let t = mk "x" ~interest:[ 1 ] in
    (try
       (* in random chunks *)
       let pos = ref 0 in
       while !pos < String.length s do
         let k = min (String.length s - !pos) (1 + Random.State.int rng 40) in
         L.receive t ~now:0. (Bytes.of_string s) !pos k;
         pos := !pos + k
       done;
       L.tick t ~now:5.;
       ignore (L.take_output t);
       ignore (events t)
     with e -> Alcotest.failf "input %d raised %s" i (Printexc.to_string e));
    Alcotest.(check bool) (Printf.sprintf "input %d: closed after the timeout" i) true (L.is_closed t)
  done;
  (* random bytes from the start *)
  for i = 1 to 2000 do
    let s = String.init (Random.State.int rng 200) (fun _ -> Char.chr (Random.State.int rng 256)) in
    let t = mk "y" in
    (try L.receive t ~now:0. (Bytes.of_string s) 0 (String.length s); ignore (events t)
     with e -> Alcotest.failf "random input %d raised %s" i (Printexc.to_string e))
  done

let () =
  Alcotest.run "link"
    [
      ( "core",
        [
          Alcotest.test_case "handshake, interest, data, goodbye" `Quick test_handshake;
          Alcotest.test_case "digest mismatch refused at both ends" `Quick test_digest_mismatch;
          Alcotest.test_case "authentication" `Quick test_auth;
          Alcotest.test_case "refusals before the hello" `Quick test_refusals;
          Alcotest.test_case "bad input on an established link" `Quick test_established_errors;
          Alcotest.test_case "frames split into bytes" `Quick test_split_input;
          Alcotest.test_case "heartbeat and peer timeout" `Quick test_heartbeat_timeout;
          Alcotest.test_case "outgoing frame too large" `Quick test_too_large_send;
          Alcotest.test_case "hello decoding" `Quick test_hello_decode_errors;
          Alcotest.test_case "documented examples" `Quick test_doc_examples;
          Alcotest.test_case "5,000 random and mutated inputs never raise" `Quick test_random_input;
        ] );
    ]
