(* Codec tests of the generated OCaml (tests/schemas/test_messages.toml and
   tricky_names.toml): golden vectors byte for byte, round trips of every
   field type, every decode error of docs/wire-protocol.md section 4, and
   the digests of the generated modules against the C++ side's. *)

open Schemas
module T = Test_messages
module E = Mycelium.Errc
open Testutil.Util

let golden_dir () = env "MYCELIUM_GOLDEN_DIR"

let sha256 s = Cryptokit.hash_string (Cryptokit.Hash.sha256 ()) s

(* -- in place: decoding from and encoding into a bigstring --------------------- *)

let pad = 13

(* [s] at an odd offset of a bigstring, between guard bytes (as a frame in a
   shared-memory ring, which the link decodes in place) *)
let big_of s =
  let n = String.length s in
  let b = Bigarray.Array1.create Bigarray.char Bigarray.c_layout (n + (2 * pad)) in
  Bigarray.Array1.fill b '\xAA';
  String.iteri (fun i c -> b.{pad + i} <- c) s;
  b

let string_of_big b off len = String.init len (fun i -> b.{off + i})

let show = function Ok _ -> "ok" | Error e -> E.to_string e

(* The view decoder of a message type: its [View.decode_fields] and
   [of_view] (the view with its views copied), and whether the type has
   [bytes] fields ([`Bytes]: views of the frame, which expire with their
   scope) or none (its view is a value like any other). *)
type 'a view_codec =
  | V : (Mycelium.Tlv.reader -> 'v) * ('v -> 'a) * [ `Bytes | `No_bytes ] -> 'a view_codec

(* Decodes [s] as views, from the string and in place from a bigstring (in
   a scope of its own): copied out with [of_view], each must be the value
   [r] of the allocating decoder, or the same error. Then the scope expires:
   [`Expired] when [of_view] of the in-place views raises Expired,
   [`No_views] when it does not or the decode failed (decode_both says
   which one it expects). *)
let check_views name (V (vfields, of_view, _)) s r =
  let on_string = Mycelium.Tlv.decode_with vfields s in
  let scope = Mycelium.View.new_scope () in
  let on_big = Mycelium.Tlv.decode_with_big ~scope vfields ~off:pad ~len:(String.length s) (big_of s) in
  let owned x = Result.map of_view x in
  if compare r (owned on_string) <> 0 then
    Alcotest.failf "%s: the view decode (string) disagrees with the allocating decode (%s vs %s)" name (show r)
      (show on_string);
  if compare r (owned on_big) <> 0 then
    Alcotest.failf "%s: the view decode (in place) disagrees with the allocating decode (%s vs %s)" name (show r)
      (show on_big);
  Mycelium.View.expire scope;
  match on_big with
  | Ok v -> (
    (* still usable through a string's views, never through expired ones *)
    ignore (owned on_string);
    match of_view v with
    | _ -> `No_views
    | exception Mycelium.View.Expired -> `Expired)
  | Error _ -> `No_views

(* Decodes [s] with [fields] from the string and in place from a bigstring:
   both must give the same value, or the same error; with [view], the view
   decoder too (check_views), whose in-place views must have expired with
   their scope exactly when the decode succeeded and the type has bytes
   fields. *)
let decode_both ?view name fields s =
  let r = Mycelium.Tlv.decode_with fields s in
  let rb = Mycelium.Tlv.decode_with_big fields ~off:pad ~len:(String.length s) (big_of s) in
  if compare r rb <> 0 then
    Alcotest.failf "%s: the in-place decode disagrees with the string decode (%s vs %s)" name (show r) (show rb);
  Option.iter
    (fun (V (_, _, kind) as v) ->
      let expected = match (r, kind) with Ok _, `Bytes -> `Expired | _ -> `No_views in
      let name_of = function `Expired -> "raised Expired" | `No_views -> "gave a value" in
      let got = check_views name v s r in
      if got <> expected then
        Alcotest.failf "%s: of_view of the in-place views after their scope expired %s; expected it %s" name
          (name_of got) (name_of expected))
    view;
  r

let v_order = V (T.Order.View.decode_fields, T.Order.of_view, `No_bytes)
let v_scal = V (T.All_scalars.View.decode_fields, T.All_scalars.of_view, `No_bytes)
let v_texts = V (T.Texts.View.decode_fields, T.Texts.of_view, `Bytes)
let v_coll = V (T.Collections.View.decode_fields, T.Collections.of_view, `No_bytes)

(* Encodes [x] into a bigstring area as well: the same bytes as the string
   encoder, and an area one byte too short raises Overflow. *)
let encode_both name efields x =
  let s = Mycelium.Tlv.encode_with efields x in
  let n = String.length s in
  let b = Bigarray.Array1.create Bigarray.char Bigarray.c_layout (n + (2 * pad)) in
  Bigarray.Array1.fill b '\xAA';
  let w = Mycelium.Tlv.big_writer () in
  Mycelium.Tlv.target w b ~off:pad ~cap:n;
  efields w x;
  Alcotest.(check int) (name ^ ": in-place length") n (Mycelium.Tlv.length w);
  Alcotest.check bytes_hex (name ^ ": in-place bytes") s (string_of_big b pad n);
  Alcotest.(check bool) (name ^ ": guard bytes untouched") true
    (string_of_big b 0 pad = String.make pad '\xAA' && string_of_big b (pad + n) pad = String.make pad '\xAA');
  if n > 0 then begin
    Mycelium.Tlv.target w b ~off:pad ~cap:(n - 1);
    match efields w x with
    | () -> Alcotest.failf "%s: encoded into an area one byte short" name
    | exception Mycelium.Tlv.Overflow -> ()
  end;
  s


let all_scalars_golden =
  {
    T.All_scalars.a_u8 = 255;
    a_u16 = 65535;
    a_u32 = 4294967295;
    a_u64 = -1L (* 18446744073709551615 as a bit pattern *);
    a_i8 = -128;
    a_i16 = -32768;
    a_i32 = -2147483648;
    a_i64 = Int64.min_int;
    a_f32 = 1.5;
    a_f64 = -2.25;
    a_bool = true;
  }

let goldens =
  [
    ("all_scalars.hex", 1L, T.All_scalars all_scalars_golden);
    ("texts.hex", 2L, T.Texts { name = "\xc3\xa9t\xc3\xa9"; blob = "\x00\x01\x02\xff" });
    ( "collections.hex",
      3L,
      T.Collections
        { levels = [| 1.; 2.; 3. |]; ids = [| 1; 2; 3 |]; flags = [| true; false |]; side = Sell } );
    ("order.hex", 1L, T.Order { leg = { venue = "XNAS"; qty = 100 }; side = Buy; px = 101.25 });
    ("order_defaults.hex", 4L, T.Order T.Order.default);
  ]

let test_golden (file, seq, value) () =
  let bytes = read_hex (Filename.concat (golden_dir ()) file) in
  Alcotest.check bytes_hex (file ^ ": encoded") bytes
    (Mycelium.Frame.encode_data T.descriptor ~sequence:seq value);
  (* in place, as from a ring: the header and the payload from a bigstring *)
  (match Mycelium.Frame.read_header_big ~off:pad ~max_payload:(1 lsl 20) (big_of bytes) with
   | Error e -> Alcotest.failf "%s: in-place header: %s" file (E.to_string e)
   | Ok h -> (
     match
       Mycelium.Tlv.decode_with_big (T.descriptor.decode_fields h.type_id) ~off:(pad + 24) ~len:h.payload_length
         (big_of bytes)
     with
     | Ok v -> Alcotest.(check bool) (file ^ ": decoded in place") true (v = value)
     | Error e -> Alcotest.failf "%s: in-place decode: %s" file (E.to_string e)));
  (* as views, in place: copied out, the value; encoded again, the bytes *)
  (match Mycelium.Frame.read_header_big ~off:pad ~max_payload:(1 lsl 20) (big_of bytes) with
   | Error e -> Alcotest.failf "%s: in-place header: %s" file (E.to_string e)
   | Ok h -> (
     let scope = Mycelium.View.new_scope () in
     match
       Mycelium.Tlv.decode_with_big ~scope (T.View.decode_any_fields h.type_id) ~off:(pad + 24)
         ~len:h.payload_length (big_of bytes)
     with
     | Ok v ->
       Alcotest.(check int) (file ^ ": view type id") (T.type_id_of_any value) (T.View.type_id_of_any v);
       let owned = T.of_view_any v in
       Alcotest.(check bool) (file ^ ": decoded as views") true (owned = value);
       Alcotest.check bytes_hex (file ^ ": views encoded again") bytes
         (Mycelium.Frame.encode_data T.descriptor ~sequence:seq owned);
       (match v with
        | T.View.Texts t ->
          Alcotest.(check bool) (file ^ ": the blob's view") true (Mycelium.View.equal_string t.blob "\x00\x01\x02\xff")
        | _ -> ());
       Mycelium.View.expire scope
     | Error e -> Alcotest.failf "%s: view decode: %s" file (E.to_string e)));
  (match T.View.decode_any (T.type_id_of_any value) (String.sub bytes 24 (String.length bytes - 24)) with
   | Ok v -> Alcotest.(check bool) (file ^ ": views of a string") true (T.of_view_any v = value)
   | Error e -> Alcotest.failf "%s: view decode of a string: %s" file (E.to_string e));
  match Mycelium.Frame.decode_data T.descriptor bytes with
  | Error e -> Alcotest.failf "%s: decode failed: %s" file (E.to_string e)
  | Ok (h, v) ->
    Alcotest.(check int64) "sequence" seq h.sequence;
    Alcotest.(check bool) (file ^ ": decoded value") true (v = value)

let test_defaults_text () =
  (* docs/wire-protocol.md section 8: an empty payload decodes to the defaults *)
  match T.Order.decode "" with
  | Ok o ->
    Alcotest.(check string) "venue" "" o.leg.venue;
    Alcotest.(check int) "qty" 1 o.leg.qty;
    Alcotest.(check bool) "side" true (o.side = T.Side.Sell);
    Alcotest.(check (float 0.)) "px" 1.5 o.px;
    Alcotest.(check string) "texts default" "none" T.Texts.default.name
  | Error e -> Alcotest.failf "empty payload: %s" (E.to_string e)

let test_digests () =
  Alcotest.(check string) "order digest (schema.md 7.2)"
    "9c57d02c9acedbeb8357773b82df3fe68b5d7b13a25ebd5e8f4368d18cef4903" (hex T.Order.digest);
  Alcotest.(check int) "type ids" 5 T.Order.type_id;
  Alcotest.(check int) "descriptor lists every type" 10 (List.length T.descriptor.types);
  Alcotest.(check string) "package" "mycelium.test" T.package;
  Alcotest.(check int) "schema digest size" 32 (String.length T.schema_digest);
  (* the pinned value is SHA-256 of the per-message canonical form that
     schema.md 7.2 prints for order *)
  Alcotest.(check string) "order digest = SHA-256 of its canonical form (schema.md 7.2)" (hex T.Order.digest)
    (hex
       (sha256
          "mycelium-message 1\n\
           message 5 order {1 leg message leg;2 side enum side default=sell;3 px f64 default=1.5;}\n\
           enum side {buy=1;sell=2;}\n\
           message 4 leg {1 venue string[8] default=\"\";2 qty i32 default=1;}\n"))

(* -- the digests against the C++ side -------------------------------------------- *)

(* The lines [prog args] prints; fails unless it exits with 0. *)
let output_lines prog args =
  let ic = Unix.open_process_args_in prog (Array.of_list (prog :: args)) in
  let rec go acc = match input_line ic with l -> go (l :: acc) | exception End_of_file -> List.rev acc in
  let lines = go [] in
  match Unix.close_process_in ic with
  | Unix.WEXITED 0 -> lines
  | _ -> Alcotest.failf "%s %s failed" prog (String.concat " " args)

(* The 32 bytes of a C++ digest256 initialiser: "...{{0x1d,0x1e,...}};" *)
let cxx_bytes line =
  let a = String.index line '{' + 2 in
  let b = String.index_from line a '}' in
  String.sub line a (b - a) |> String.split_on_char ','
  |> List.map (fun h -> Char.chr (int_of_string (String.trim h)))
  |> List.to_seq |> String.of_seq

(* The schema digest and (type id, digest) of every message of a C++
   header of mycelium-codegen, as the C++ side compiles them in. *)
let cxx_digests lines =
  let schema = ref "" and types = ref [] and id = ref None in
  List.iter
    (fun l ->
      let l = String.trim l in
      let has prefix = String.starts_with ~prefix l in
      if has "inline constexpr mycelium::wire::digest256 schema_digest{{" then schema := cxx_bytes l
      else if has "static constexpr ::std::uint32_t type_id = " then
        id := Some (Scanf.sscanf l "static constexpr ::std::uint32_t type_id = %d;" Fun.id)
      else if has "static constexpr mycelium::wire::digest256 digest{{" then
        match !id with
        | Some i -> types := (i, hex (cxx_bytes l)) :: !types; id := None
        | None -> Alcotest.failf "a C++ message digest before its type_id: %s" l)
    lines;
  (!schema, List.sort compare !types)

(* The generated module of [file] against the C++ side's values for the
   same schema file: `mycelium-codegen digest --canonical` (the schema
   digest, each message's, the canonical form) and the C++ header
   `mycelium-codegen generate --lang cpp` writes; and the schema digest is
   SHA-256 of that canonical form (schema.md 7.1), hashed here. *)
let check_digests file (d : _ Mycelium.Schema.t) =
  let codegen = env "MYCELIUM_CODEGEN" in
  let schema = Filename.concat (env "MYCELIUM_SCHEMA_DIR") file in
  let lines = output_lines codegen [ "digest"; "--canonical"; schema ] in
  let rec split listed = function
    | "--- canonical form ---" :: canonical -> (List.rev listed, canonical)
    | l :: rest -> split (l :: listed) rest
    | [] -> Alcotest.failf "%s: no canonical form in the output of mycelium-codegen digest" file
  in
  let listed, canonical = split [] lines in
  let ours = List.map (fun (t : Mycelium.Schema.type_info) -> (t.type_id, t.name, hex t.digest)) d.types in
  (match listed with
   | schema_line :: messages ->
     Alcotest.(check string) (file ^ ": package and schema digest (mycelium-codegen digest)")
       (Printf.sprintf "schema %s %s" d.package (hex d.digest)) schema_line;
     Alcotest.(check (list string)) (file ^ ": every message's id, name and digest (mycelium-codegen digest)")
       (List.map (fun (id, name, h) -> Printf.sprintf "message %d %s %s" id name h) ours) messages
   | [] -> Alcotest.failf "%s: mycelium-codegen digest printed nothing" file);
  Alcotest.check bytes_hex (file ^ ": schema digest = SHA-256 of the canonical form")
    (sha256 (String.concat "" (List.map (fun l -> l ^ "\n") canonical))) d.digest;
  let cxx_schema, cxx_types = cxx_digests (output_lines codegen [ "generate"; "--lang"; "cpp"; schema ]) in
  Alcotest.check bytes_hex (file ^ ": schema_digest of the C++ header") cxx_schema d.digest;
  Alcotest.(check (list (pair int string))) (file ^ ": every message digest of the C++ header") cxx_types
    (List.map (fun (id, _, h) -> (id, h)) ours)

let test_digests_cxx () =
  check_digests "test_messages.toml" T.descriptor;
  check_digests "link_test.toml" Link_test.descriptor;
  check_digests "tricky_names.toml" Tricky_names.descriptor;
  check_digests "ocaml_names.toml" Ocaml_names.descriptor

let roundtrip ?view name efields dfields x =
  match decode_both ?view name dfields (encode_both name efields x) with
  | Ok y -> Alcotest.(check bool) (name ^ " round trip") true (compare y x = 0)
  | Error e -> Alcotest.failf "%s: %s" name (E.to_string e)

let test_scalars () =
  let rt = roundtrip ~view:v_scal "all_scalars" T.All_scalars.encode_fields T.All_scalars.decode_fields in
  rt all_scalars_golden;
  rt T.All_scalars.default;
  rt
    {
      T.All_scalars.a_u8 = 0;
      a_u16 = 1;
      a_u32 = 0x80000000;
      a_u64 = Int64.max_int;
      a_i8 = 127;
      a_i16 = 32767;
      a_i32 = 2147483647;
      a_i64 = Int64.max_int;
      a_f32 = Float.infinity;
      a_f64 = Float.neg_infinity;
      a_bool = false;
    };
  (* NaN and negative zero keep their bit patterns *)
  let x = { T.All_scalars.default with a_f64 = Int64.float_of_bits 0x7ff8_0000_0000_1234L; a_f32 = -0. } in
  match decode_both ~view:v_scal "NaN and -0." T.All_scalars.decode_fields (T.All_scalars.encode x) with
  | Ok y ->
    Alcotest.(check int64) "f64 NaN payload" 0x7ff8_0000_0000_1234L (Int64.bits_of_float y.a_f64);
    Alcotest.(check int32) "f32 -0" 0x8000_0000l (Int32.bits_of_float y.a_f32)
  | Error e -> Alcotest.fail (E.to_string e)

let test_texts () =
  let rt = roundtrip ~view:v_texts "texts" T.Texts.encode_fields T.Texts.decode_fields in
  rt { name = ""; blob = "" };
  rt { name = "a\x00b"; blob = String.make 8 '\xff' };
  rt { name = String.make 16 'x'; blob = "" };
  rt { name = "\xf0\x9f\x8d\x84 \xe2\x82\xac"; blob = "\x00" }

let test_collections () =
  let rt = roundtrip ~view:v_coll "collections" T.Collections.encode_fields T.Collections.decode_fields in
  rt T.Collections.default;
  rt { levels = [| -0.5; 1e300; 0. |]; ids = [| 0; 4294967295; 7; 8 |]; flags = [||]; side = Buy };
  rt { T.Collections.default with flags = [| true; true; false; true |] };
  Alcotest.(check int) "array default length" 3 (Array.length T.Collections.default.levels)

let test_nested_and_any () =
  let o = { T.Order.leg = { venue = "XPAR"; qty = -3 }; side = Sell; px = -0.25 } in
  roundtrip ~view:v_order "order" T.Order.encode_fields T.Order.decode_fields o;
  let frame = Mycelium.Frame.encode_data T.descriptor ~sequence:9L (T.Order o) in
  (match Mycelium.Frame.decode_data T.descriptor frame with
   | Ok (h, T.Order o') ->
     Alcotest.(check int) "type id in header" 5 h.type_id;
     Alcotest.(check bool) "same order" true (T.Order.equal o o')
   | _ -> Alcotest.fail "decode_data did not give the order back");
  roundtrip ~view:(V (T.Ping.View.decode_fields, T.Ping.of_view, `No_bytes)) "ping" T.Ping.encode_fields T.Ping.decode_fields
    { seq = 42L }

let test_tricky () =
  let module K = Tricky_names in
  let h =
    { K.Holder.other = 1; uint32_t = 2; kind = K.Kind.Class; class_ = "abc"; type_id = 2.5;
      nested = { inner = 5L } }
  in
  roundtrip ~view:(V (K.Holder.View.decode_fields, K.Holder.of_view, `No_bytes)) "tricky holder" K.Holder.encode_fields
    K.Holder.decode_fields h;
  Alcotest.(check bool) "enum default int" true (K.Holder.default.kind = K.Kind.Int);
  Alcotest.(check int64) "i64 min default" Int64.min_int K.Inner.default.inner;
  Alcotest.(check (float 0.)) "f32 default" 2. K.Holder.default.type_id

let test_wide_and_locals () =
  let module W = Ocaml_names in
  let w = W.Wide.default in
  let w = { w with f1 = -200; f2 = 70000; f3 = -5L; f9 = 9; f68 = 2.5; f69 = true; f70 = "abc" } in
  let v_wide = V (W.Wide.View.decode_fields, W.Wide.of_view, `Bytes) in
  roundtrip ~view:v_wide "70 fields" W.Wide.encode_fields W.Wide.decode_fields w;
  roundtrip ~view:v_wide "70 fields, bytes set" W.Wide.encode_fields W.Wide.decode_fields
    { w with f7 = "\x00\xff"; f63 = "12345678" };
  (* a duplicate of field 70 (past the 62 of an int mask) is still caught *)
  let p = W.Wide.encode w ^ "\x34\x02\x00\x00\x00\x00" in
  (match decode_both ~view:v_wide "duplicate field 70" W.Wide.decode_fields p with
   | Error E.Duplicate_field -> ()
   | Ok _ -> Alcotest.fail "duplicate field 70 decoded"
   | Error e -> Alcotest.failf "duplicate field 70: %s" (E.to_string e));
  let l = { W.Locals.r = 1; tag = 2; wt = 3; seen = 4; w = 5; x = 6; default = 7; upper = 8;
            type_id = 9; encode = 10; color = W.Color.Red_ } in
  roundtrip ~view:(V (W.Locals.View.decode_fields, W.Locals.of_view, `No_bytes)) "fields named like the decoder's locals"
    W.Locals.encode_fields W.Locals.decode_fields l;
  roundtrip ~view:(V (W.Locals2.View.decode_fields, W.Locals2.of_view, `No_bytes)) "nested" W.Locals2.encode_fields
    W.Locals2.decode_fields { inner = l };
  Alcotest.(check bool) "enum values Red and red" true (W.Color.to_int W.Color.Red_ = 4 && W.Color.to_string W.Color.Red_ = "Red")

let test_unknown_and_order () =
  (* fields in reverse order, plus unknown fields of every wire type *)
  let p =
    unhex
      ("1b00 000000000000f83f" (* px 1.5 *) ^ "1200 01000000" (* side buy *)
     ^ "f8ff 07" ^ "f9ff 0700" ^ "fa00 07000000" ^ "0b01 0700000000000000"
     ^ "0c01 03000000 616263" (* unknown ids 8191, 8191(wt1), 31, 33, 33 *)
     ^ "0c00 0e000000 0c00 02000000 4142 1200 09000000")
  in
  match decode_both ~view:v_order "any order, unknown fields" T.Order.decode_fields p with
  | Ok o ->
    Alcotest.(check bool) "side" true (o.side = T.Side.Buy);
    Alcotest.(check string) "venue" "AB" o.leg.venue;
    Alcotest.(check int) "qty" 9 o.leg.qty;
    Alcotest.(check (float 0.)) "px" 1.5 o.px
  | Error e -> Alcotest.failf "any order / unknown fields: %s" (E.to_string e)

(* -- views: no copy, and their lifetime ----------------------------------------- *)

let expired name f =
  match f () with
  | _ -> Alcotest.failf "%s: an expired view was used" name
  | exception Mycelium.View.Expired -> ()

let test_views () =
  let module V = Mycelium.View in
  let x = { T.Texts.name = "n\xc3\xa9"; blob = "\x00abc\xff" } in
  let s = T.Texts.encode x in
  let b = big_of s in
  let scope = V.new_scope () in
  let v =
    match T.Texts.View.decode_big ~scope ~off:pad ~len:(String.length s) b with
    | Ok v -> v
    | Error e -> Alcotest.failf "view decode: %s" (E.to_string e)
  in
  (* strings are copied (and UTF-8-checked on the copy); bytes are a view *)
  Alcotest.(check string) "the string field" x.name v.name;
  Alcotest.(check bool) "valid" true (V.is_valid v.blob);
  Alcotest.(check int) "length" 5 (V.length v.blob);
  Alcotest.(check char) "get" 'a' (V.get v.blob 1);
  Alcotest.(check int) "get_uint8" 255 (V.get_uint8 v.blob 4);
  Alcotest.(check string) "to_string" x.blob (V.to_string v.blob);
  Alcotest.(check string) "sub_string" "bc" (V.sub_string v.blob 2 2);
  Alcotest.(check bool) "equal_string" true (V.equal_string v.blob x.blob && not (V.equal_string v.blob "\x00abc"));
  Alcotest.(check bool) "equal" true (V.equal v.blob (V.of_string x.blob) && not (V.equal v.blob V.empty));
  Alcotest.(check int) "fold_left" (Char.code 'a' + Char.code 'b' + Char.code 'c' + 255)
    (V.fold_left (fun a c -> a + Char.code c) 0 v.blob);
  let dst = Bytes.make 4 '.' in
  V.blit_to_bytes v.blob 1 dst 1 3;
  Alcotest.(check string) "blit_to_bytes" ".abc" (Bytes.to_string dst);
  (* no copy: the view reads the bigstring where the payload is *)
  let blob_at = pad + String.length s - 5 in
  b.{blob_at + 1} <- 'Z';
  Alcotest.(check char) "reads in place" 'Z' (V.get v.blob 1);
  b.{blob_at + 1} <- 'a';
  (* ranges *)
  List.iter
    (fun (name, f) ->
      match f () with
      | _ -> Alcotest.failf "%s: out of range accepted" name
      | exception Invalid_argument _ -> ())
    [ ("get -1", (fun () -> ignore (V.get v.blob (-1))));
      ("get 5", (fun () -> ignore (V.get v.blob 5)));
      ("sub_string past the end", (fun () -> ignore (V.sub_string v.blob 3 3)));
      ("blit_to_bytes past dst", (fun () -> V.blit_to_bytes v.blob 0 dst 2 3));
      ("make_big past the end", (fun () -> ignore (V.make_big scope b (Bigarray.Array1.dim b - 2) 3)));
      ("make_string negative", (fun () -> ignore (V.make_string scope "abc" (-1) 1))) ];
  (* the lifetime: once the scope expires, every access raises *)
  let kept = v.blob in
  V.expire scope;
  Alcotest.(check bool) "expired" false (V.is_valid kept);
  expired "length" (fun () -> V.length kept);
  expired "get" (fun () -> V.get kept 0);
  expired "to_string" (fun () -> V.to_string kept);
  expired "sub_string" (fun () -> V.sub_string kept 0 1);
  expired "blit_to_bytes" (fun () -> V.blit_to_bytes kept 0 dst 0 1);
  expired "equal_string" (fun () -> V.equal_string kept "");
  expired "fold_left" (fun () -> V.fold_left (fun a _ -> a) 0 kept);
  expired "of_view" (fun () -> T.Texts.of_view v);
  Alcotest.(check bool) "the printer names the cure" true
    (Testutil.Astring_like.contains (Printexc.to_string V.Expired) "to_string");
  (* views made after the expiry are valid again: one scope serves a link *)
  (match T.Texts.View.decode_big ~scope ~off:pad ~len:(String.length s) b with
   | Ok v2 -> Alcotest.(check string) "a later frame's view" x.blob (V.to_string v2.blob)
   | Error e -> Alcotest.failf "view decode: %s" (E.to_string e));
  (* views of strings, the empty view and defaults never expire *)
  (match T.Texts.View.decode s with
   | Ok v3 -> V.expire scope; Alcotest.(check string) "views of a string" x.blob (V.to_string v3.blob)
   | Error e -> Alcotest.failf "view decode of a string: %s" (E.to_string e));
  Alcotest.(check int) "empty" 0 (V.length V.empty);
  Alcotest.(check bool) "view default" true (T.Texts.of_view T.Texts.View.default = T.Texts.default);
  Alcotest.(check bool) "nested view default" true (T.Order.of_view T.Order.View.default = T.Order.default);
  (* a message without bytes has itself as its view *)
  let o = { T.Order.default with px = 3. } in
  Alcotest.(check bool) "no bytes: the view is the value" true (T.Order.of_view (o : T.Order.View.t) = o);
  (* the 70-field message: views of every bytes field, expired together *)
  let module W = Ocaml_names in
  let w = { W.Wide.default with f7 = "a"; f15 = "bb"; f63 = "12345678" } in
  let ws = W.Wide.encode w in
  let wscope = V.new_scope () in
  match W.Wide.View.decode_big ~scope:wscope ~off:pad ~len:(String.length ws) (big_of ws) with
  | Ok wv ->
    Alcotest.(check bool) "70 fields as views" true (W.Wide.of_view wv = w);
    V.expire wscope;
    expired "70 fields: of_view" (fun () -> W.Wide.of_view wv);
    Alcotest.(check bool) "every view of the frame expired" true
      (not (V.is_valid wv.f7 || V.is_valid wv.f15 || V.is_valid wv.f63 || V.is_valid wv.f23))
  | Error e -> Alcotest.failf "70 fields view: %s" (E.to_string e)

(* -- every decode error ------------------------------------------------------ *)

let expect_error name expected r =
  match r with
  | Ok _ -> Alcotest.failf "%s: decoded, expected %s" name (E.to_string expected)
  | Error e -> Alcotest.check errc name expected e

let frame_of ?(flags = 0) ?(r0 = 0) ?(r1 = 0) ?(len = -1) type_id payload =
  let b = Bytes.create (24 + String.length payload) in
  Mycelium.Frame.write_header b 0
    ~payload_length:(if len < 0 then String.length payload else len)
    ~type_id ~sequence:1L ~control:false;
  Bytes.set_uint16_le b 16 flags;
  Bytes.set_uint16_le b 18 r0;
  Bytes.set_int32_le b 20 (Int32.of_int r1);
  Bytes.blit_string payload 0 b 24 (String.length payload);
  Bytes.to_string b

(* The header checks (H1-H3) in place on a bigstring give what they give
   on a string. *)
let dec_frame ?max_payload s =
  let mp = Option.value ~default:Mycelium.Frame.default_max_payload max_payload in
  let on_string = Mycelium.Frame.read_header ~max_payload:mp s in
  let on_big = Mycelium.Frame.read_header_big ~off:pad ~max_payload:mp (big_of s) in
  (* a bigstring cut at the frame's end (the ring record's length) *)
  let exact = Mycelium.Frame.read_header_big ~off:0 ~max_payload:mp (Bigarray.Array1.sub (big_of s) pad (String.length s)) in
  if compare on_string exact <> 0 then Alcotest.fail "read_header_big disagrees with read_header (exact area)";
  if String.length s >= 24 && compare on_string on_big <> 0 then Alcotest.fail "read_header_big disagrees with read_header";
  Mycelium.Frame.decode_data T.descriptor ?max_payload s

let test_header_errors () =
  expect_error "H1 short header" E.Truncated (dec_frame (String.make 23 '\000'));
  expect_error "H2 unknown flag" E.Bad_frame_header (dec_frame (frame_of ~flags:2 5 ""));
  expect_error "H2 reserved0" E.Bad_frame_header (dec_frame (frame_of ~r0:1 5 ""));
  expect_error "H2 reserved1" E.Bad_frame_header (dec_frame (frame_of ~r1:1 5 ""));
  expect_error "H3 too large" E.Frame_too_large (dec_frame ~max_payload:3 (frame_of 5 "abcd"));
  expect_error "H4 payload cut" E.Truncated (dec_frame (frame_of ~len:10 5 "abc"));
  expect_error "H5 control frame" E.Unknown_type (dec_frame (frame_of ~flags:1 5 ""));
  expect_error "H6 unknown type" E.Unknown_type (dec_frame (frame_of 99 ""));
  expect_error "H6 type 0" E.Unknown_type (dec_frame (frame_of 0 ""))

(* every payload error also through the view decoders (check_views: the
   same error from the string and in place) *)
let order p = decode_both ~view:v_order p T.Order.decode_fields (unhex p)
let scal p = decode_both ~view:v_scal p T.All_scalars.decode_fields (unhex p)
let texts p = decode_both ~view:v_texts p T.Texts.decode_fields (unhex p)
let coll p = decode_both ~view:v_coll p T.Collections.decode_fields (unhex p)

let test_payload_errors () =
  expect_error "P1 tag cut" E.Truncated (order "1b");
  expect_error "P2 wire type 5" E.Bad_wire_type (order "0d00");
  expect_error "P2 wire type 7" E.Bad_wire_type (order "0f00");
  expect_error "P3 field id 0" E.Bad_field_id (order "0000 00");
  expect_error "P4 duplicate" E.Duplicate_field (order "1200 01000000 1200 01000000");
  expect_error "P4 before P5" E.Duplicate_field (order "1200 01000000 1300 0100");
  expect_error "P5 wrong wire type" E.Bad_wire_type (order "1300 0100");
  expect_error "P5 scalar as sized" E.Bad_wire_type (scal "0c00 01000000 00");
  expect_error "P6 fixed cut" E.Truncated (order "1b00 0000");
  expect_error "P6 fixed8 cut" E.Truncated (scal "0800");
  expect_error "P7 length cut" E.Truncated (order "0c00 0100");
  expect_error "P7 value cut" E.Truncated (order "0c00 05000000 0000");
  expect_error "P8 bool 2" E.Bad_bool (scal "5800 02");
  expect_error "P8 bool element" E.Bad_bool (coll "1c00 02000000 0102");
  expect_error "P9 enum value 0" E.Bad_enum_value (order "1200 00000000");
  expect_error "P9 enum value 3" E.Bad_enum_value (order "1200 03000000");
  expect_error "P10 string too long" E.String_too_long
    (texts ("0c00 11000000 " ^ String.concat "" (List.init 17 (fun _ -> "61"))));
  expect_error "P10 before P11" E.String_too_long
    (texts ("0c00 11000000 " ^ String.concat "" (List.init 17 (fun _ -> "ff"))));
  expect_error "P11 invalid utf8" E.Invalid_utf8 (texts "0c00 01000000 ff");
  expect_error "P12 bytes too long" E.Bytes_too_long (texts "1400 09000000 000000000000000000");
  expect_error "P13 array length" E.Array_length_mismatch (coll "0c00 08000000 0000000000000000");
  expect_error "P14 vector length" E.Bad_vector_length (coll "1400 03000000 010000");
  expect_error "P15 vector too long" E.Vector_too_long
    (coll "1400 14000000 0100000002000000030000000400000005000000");
  expect_error "P16 nested error" E.Bad_field_id (order "0c00 03000000 000000");
  expect_error "P16 nested cut" E.Truncated (order "0c00 04000000 12000100");
  expect_error "P17 unknown fixed cut" E.Truncated (order "fb01 000000");
  expect_error "P17 unknown sized cut" E.Truncated (order "fc01 05000000 00");
  expect_error "P17 unknown length cut" E.Truncated (order "fc01 0500")

let utf8_cases =
  [
    ("ascii", "41", true); ("2-byte", "c3a9", true); ("3-byte", "e282ac", true);
    ("4-byte", "f09f8d84", true); ("U+10FFFF", "f48fbfbf", true); ("NUL", "00", true);
    ("lone continuation", "80", false); ("lead F8", "f8", false); ("cut 3-byte", "e282", false);
    ("bad continuation", "c328", false); ("overlong 2", "c0af", false);
    ("overlong 3", "e080af", false); ("overlong 4", "f08282ac", false);
    ("surrogate", "eda080", false); ("above U+10FFFF", "f4908080", false);
  ]

let test_utf8 () =
  List.iter
    (fun (name, h, ok) ->
      let s = unhex h in
      Alcotest.(check bool) name ok (Mycelium.Tlv.valid_utf8 s 0 (String.length s)))
    utf8_cases

let test_errc_numbers () =
  (* pinned numbers (docs/wire-protocol.md section 4.1) *)
  List.iter
    (fun (n, e) -> Alcotest.(check int) (E.to_string e) n (E.to_int e))
    [ (0, E.None_); (1, E.Truncated); (11, E.Invalid_utf8); (18, E.Schema_mismatch);
      (19, E.Auth_failed); (32, E.Protocol_violation); (35, E.Io_failed) ];
  Alcotest.check errc "unknown" (E.Unknown 200) (E.of_int 200);
  Alcotest.(check string) "unknown name" "unknown code 200" (E.to_string (E.of_int 200))

let () =
  Alcotest.run "codec"
    [
      ( "golden",
        List.map (fun ((f, _, _) as g) -> Alcotest.test_case f `Quick (test_golden g)) goldens );
      ( "roundtrip",
        [
          Alcotest.test_case "defaults" `Quick test_defaults_text;
          Alcotest.test_case "digests and ids" `Quick test_digests;
          Alcotest.test_case "digests as the C++ side has them" `Quick test_digests_cxx;
          Alcotest.test_case "scalars" `Quick test_scalars;
          Alcotest.test_case "strings and bytes" `Quick test_texts;
          Alcotest.test_case "arrays and vectors" `Quick test_collections;
          Alcotest.test_case "nested messages, any" `Quick test_nested_and_any;
          Alcotest.test_case "tricky names" `Quick test_tricky;
          Alcotest.test_case "70 fields, names of locals" `Quick test_wide_and_locals;
          Alcotest.test_case "any order, unknown fields" `Quick test_unknown_and_order;
          Alcotest.test_case "views: in place, lifetime" `Quick test_views;
        ] );
      ( "errors",
        [
          Alcotest.test_case "header H1-H6" `Quick test_header_errors;
          Alcotest.test_case "payload P1-P17" `Quick test_payload_errors;
          Alcotest.test_case "utf-8" `Quick test_utf8;
          Alcotest.test_case "errc numbers" `Quick test_errc_numbers;
        ] );
    ]
