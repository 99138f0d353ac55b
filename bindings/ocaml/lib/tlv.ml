(* The TLV payload encoding (docs/wire-protocol.md sections 2 and 3): the
   runtime of the modules mycelium-codegen --lang ocaml generates.

   Readers check every length before reading and raise [Decode_error] with
   the code of docs/wire-protocol.md section 4; [decode_with] turns that
   into a result, so no decoding error escapes as an exception.
   Not thread-safe: one reader or writer per decoding or encoding. *)

exception Decode_error of Errc.t

let fail e = raise (Decode_error e)

(* -- wire types --------------------------------------------------------- *)

let fixed8 = 0
let fixed16 = 1
let fixed32 = 2
let fixed64 = 3
let sized = 4
let max_field_id = 8191

(* -- UTF-8 (section 3.1) ------------------------------------------------- *)

(** Whether [len] bytes of [s] from [off] are well-formed UTF-8: no
    overlong forms, no surrogates, nothing above U+10FFFF. *)
let valid_utf8 s off len =
  let rec go i =
    if i >= off + len then true
    else
      let c = Char.code (String.unsafe_get s i) in
      if c < 0x80 then go (i + 1)
      else
        let n, cp =
          if c land 0xE0 = 0xC0 then (2, c land 0x1F)
          else if c land 0xF0 = 0xE0 then (3, c land 0x0F)
          else if c land 0xF8 = 0xF0 then (4, c land 0x07)
          else (0, 0)
        in
        if n = 0 || off + len - i < n then false
        else
          let rec cont k cp =
            if k = n then Some cp
            else
              let cc = Char.code (String.unsafe_get s (i + k)) in
              if cc land 0xC0 <> 0x80 then None else cont (k + 1) ((cp lsl 6) lor (cc land 0x3F))
          in
          match cont 1 cp with
          | None -> false
          | Some cp ->
            if (n = 2 && cp < 0x80) || (n = 3 && cp < 0x800) || (n = 4 && cp < 0x10000)
               || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)
            then false
            else go (i + n)
  in
  go off

(* -- reader --------------------------------------------------------------- *)

type reader = { buf : string; mutable pos : int; lim : int }

(** A reader over [len] bytes of [s] from [off]. *)
let reader ?(off = 0) ?len s =
  let len = match len with Some l -> l | None -> String.length s - off in
  if off < 0 || len < 0 || off + len > String.length s then invalid_arg "Tlv.reader: range";
  { buf = s; pos = off; lim = off + len }

let at_end r = r.pos >= r.lim
let remaining r = r.lim - r.pos

(** Reads a tag; returns [field_id lsl 3 lor wire_type] after checking the
    wire type (P2) and the field id (P3). *)
let tag r =
  if remaining r < 2 then fail Errc.Truncated;
  let t = String.get_uint16_le r.buf r.pos in
  r.pos <- r.pos + 2;
  if t land 7 > sized then fail Errc.Bad_wire_type;
  if t lsr 3 = 0 then fail Errc.Bad_field_id;
  t

let[@inline] need r wt expected n =
  if wt <> expected then fail Errc.Bad_wire_type;
  if remaining r < n then fail Errc.Truncated;
  let p = r.pos in
  r.pos <- p + n;
  p

let r_u8 r wt = Char.code (String.get r.buf (need r wt fixed8 1))
let r_i8 r wt = String.get_int8 r.buf (need r wt fixed8 1)
let r_bool r wt =
  match String.get r.buf (need r wt fixed8 1) with
  | '\000' -> false
  | '\001' -> true
  | _ -> fail Errc.Bad_bool
let r_u16 r wt = String.get_uint16_le r.buf (need r wt fixed16 2)
let r_i16 r wt = String.get_int16_le r.buf (need r wt fixed16 2)
let u32_of_int32 x = Int32.to_int x land 0xFFFF_FFFF
let r_u32 r wt = u32_of_int32 (String.get_int32_le r.buf (need r wt fixed32 4))
let r_i32 r wt = Int32.to_int (String.get_int32_le r.buf (need r wt fixed32 4))
let r_f32 r wt = Int32.float_of_bits (String.get_int32_le r.buf (need r wt fixed32 4))
let r_u64 r wt = String.get_int64_le r.buf (need r wt fixed64 8)
let r_i64 = r_u64
let r_f64 r wt = Int64.float_of_bits (String.get_int64_le r.buf (need r wt fixed64 8))

(** Reads a sized value's length prefix (P7); returns the offset of its
    bytes and their count. *)
let sized_range r wt =
  if wt <> sized then fail Errc.Bad_wire_type;
  if remaining r < 4 then fail Errc.Truncated;
  let n = u32_of_int32 (String.get_int32_le r.buf r.pos) in
  r.pos <- r.pos + 4;
  if n > remaining r then fail Errc.Truncated;
  let p = r.pos in
  r.pos <- p + n;
  (p, n)

(** A reader bounded by a sized value (a nested message). *)
let r_sized r wt =
  let p, n = sized_range r wt in
  { buf = r.buf; pos = p; lim = p + n }

let r_string r wt max =
  let p, n = sized_range r wt in
  if n > max then fail Errc.String_too_long;
  if not (valid_utf8 r.buf p n) then fail Errc.Invalid_utf8;
  String.sub r.buf p n

let r_bytes r wt max =
  let p, n = sized_range r wt in
  if n > max then fail Errc.Bytes_too_long;
  String.sub r.buf p n

(* Element getters of packed arrays and vectors. *)
let get_u8 s p = Char.code (String.get s p)
let get_i8 s p = String.get_int8 s p
let get_bool s p =
  match String.get s p with '\000' -> false | '\001' -> true | _ -> fail Errc.Bad_bool
let get_u16 s p = String.get_uint16_le s p
let get_i16 s p = String.get_int16_le s p
let get_u32 s p = u32_of_int32 (String.get_int32_le s p)
let get_i32 s p = Int32.to_int (String.get_int32_le s p)
let get_f32 s p = Int32.float_of_bits (String.get_int32_le s p)
let get_u64 s p = String.get_int64_le s p
let get_i64 = get_u64
let get_f64 s p = Int64.float_of_bits (String.get_int64_le s p)

(** A fixed array of [count] elements of [esize] bytes (P13, P8). *)
let r_array r wt esize get count =
  let p, n = sized_range r wt in
  if n <> count * esize then fail Errc.Array_length_mismatch;
  Array.init count (fun i -> get r.buf (p + (i * esize)))

(** A vector of at most [max] elements of [esize] bytes (P14, P15, P8). *)
let r_vector r wt esize get max =
  let p, n = sized_range r wt in
  if n mod esize <> 0 then fail Errc.Bad_vector_length;
  let count = n / esize in
  if count > max then fail Errc.Vector_too_long;
  Array.init count (fun i -> get r.buf (p + (i * esize)))

(** Skips the value of an unknown field (P17). *)
let skip r wt =
  let n = match wt with 0 -> 1 | 1 -> 2 | 2 -> 4 | 3 -> 8 | _ -> -1 in
  if n < 0 then ignore (sized_range r wt)
  else begin
    if remaining r < n then fail Errc.Truncated;
    r.pos <- r.pos + n
  end

(** Runs a generated [decode_fields] on [len] bytes of [s] from [off]. *)
let decode_with f ?(off = 0) ?len s =
  let len = match len with Some l -> l | None -> String.length s - off in
  if off < 0 || len < 0 || off + len > String.length s then Error Errc.Truncated
  else match f { buf = s; pos = off; lim = off + len } with
    | v -> Ok v
    | exception Decode_error e -> Error e

(* -- writer --------------------------------------------------------------- *)

type writer = { mutable b : bytes; mutable len : int }

let writer ?(size = 256) () = { b = Bytes.create (max size 16); len = 0 }
let length w = w.len
let reset w = w.len <- 0

(** Drops everything written after the first [n] bytes. *)
let truncate w n = if n >= 0 && n < w.len then w.len <- n

let[@inline] grow w n =
  if w.len + n > Bytes.length w.b then begin
    let nb = Bytes.create (max (2 * Bytes.length w.b) (w.len + n)) in
    Bytes.blit w.b 0 nb 0 w.len;
    w.b <- nb
  end;
  let p = w.len in
  w.len <- p + n;
  p

let[@inline] put_tag w field wt n =
  let p = grow w (2 + n) in
  Bytes.set_uint16_le w.b p ((field lsl 3) lor wt);
  p + 2

let w_u8 w f v = Bytes.set_uint8 w.b (put_tag w f fixed8 1) (v land 0xFF)
let w_i8 = w_u8
let w_bool w f v = Bytes.set_uint8 w.b (put_tag w f fixed8 1) (if v then 1 else 0)
let w_u16 w f v = Bytes.set_uint16_le w.b (put_tag w f fixed16 2) (v land 0xFFFF)
let w_i16 = w_u16
let w_u32 w f v = Bytes.set_int32_le w.b (put_tag w f fixed32 4) (Int32.of_int v)
let w_i32 = w_u32
let w_f32 w f v = Bytes.set_int32_le w.b (put_tag w f fixed32 4) (Int32.bits_of_float v)
let w_u64 w f v = Bytes.set_int64_le w.b (put_tag w f fixed64 8) v
let w_i64 = w_u64
let w_f64 w f v = Bytes.set_int64_le w.b (put_tag w f fixed64 8) (Int64.bits_of_float v)

let w_sized w f s =
  let n = String.length s in
  let p = put_tag w f sized (4 + n) in
  Bytes.set_int32_le w.b p (Int32.of_int n);
  Bytes.blit_string s 0 w.b (p + 4) n

(* Element setters of packed arrays and vectors. *)
let set_u8 b p v = Bytes.set_uint8 b p (v land 0xFF)
let set_i8 = set_u8
let set_bool b p v = Bytes.set_uint8 b p (if v then 1 else 0)
let set_u16 b p v = Bytes.set_uint16_le b p (v land 0xFFFF)
let set_i16 = set_u16
let set_u32 b p v = Bytes.set_int32_le b p (Int32.of_int v)
let set_i32 = set_u32
let set_f32 b p v = Bytes.set_int32_le b p (Int32.bits_of_float v)
let set_u64 b p v = Bytes.set_int64_le b p v
let set_i64 = set_u64
let set_f64 b p v = Bytes.set_int64_le b p (Int64.bits_of_float v)

let w_packed w f esize set xs =
  let n = esize * Array.length xs in
  let p = put_tag w f sized (4 + n) in
  Bytes.set_int32_le w.b p (Int32.of_int n);
  Array.iteri (fun i x -> set w.b (p + 4 + (i * esize)) x) xs

(** Starts a sized field whose content is written next; returns the mark
    [end_sized] needs. *)
let begin_sized w f = put_tag w f sized 4 + 4

let end_sized w mark = Bytes.set_int32_le w.b (mark - 4) (Int32.of_int (w.len - mark))

let contents w = Bytes.sub_string w.b 0 w.len

(** Appends raw bytes (frame headers are written through this too). *)
let add_string w s =
  let p = grow w (String.length s) in
  Bytes.blit_string s 0 w.b p (String.length s)

let reserve w n = grow w n
let bytes w = w.b

let encode_with f x =
  let w = writer () in
  f w x;
  contents w
