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

(* -- sources: strings and bigarrays ---------------------------------------- *)

(** A byte area outside the OCaml heap: a shared-memory mapping (the rings
    of docs/wire-protocol.md section 10). Readers decode from it in place
    and writers encode into it in place. *)
type bigstring = (char, Bigarray.int8_unsigned_elt, Bigarray.c_layout) Bigarray.Array1.t

let no_big : bigstring = Bigarray.Array1.create Bigarray.char Bigarray.c_layout 0

(* Copies between a bigstring and OCaml bytes/strings (C, memcpy); the
   callers check the ranges. *)
external blit_big_to_bytes : bigstring -> int -> bytes -> int -> int -> unit
  = "mycelium_tlv_blit_big_to_bytes" [@@noalloc]
external blit_string_to_big : string -> int -> bigstring -> int -> int -> unit
  = "mycelium_tlv_blit_string_to_big" [@@noalloc]

(* Native-endian loads and stores of the compiler (bounds-checked), made
   little-endian. *)
external big_get16 : bigstring -> int -> int = "%caml_bigstring_get16"
external big_get32 : bigstring -> int -> int32 = "%caml_bigstring_get32"
external big_get64 : bigstring -> int -> int64 = "%caml_bigstring_get64"
external big_set16 : bigstring -> int -> int -> unit = "%caml_bigstring_set16"
external big_set32 : bigstring -> int -> int32 -> unit = "%caml_bigstring_set32"
external big_set64 : bigstring -> int -> int64 -> unit = "%caml_bigstring_set64"
external swap16 : int -> int = "%bswap16"
external swap32 : int32 -> int32 = "%bswap_int32"
external swap64 : int64 -> int64 = "%bswap_int64"

let[@inline] big_u16 b p = if Sys.big_endian then swap16 (big_get16 b p) else big_get16 b p
let[@inline] big_i32 b p = if Sys.big_endian then swap32 (big_get32 b p) else big_get32 b p
let[@inline] big_i64 b p = if Sys.big_endian then swap64 (big_get64 b p) else big_get64 b p
let[@inline] big_set_u16 b p v = big_set16 b p (if Sys.big_endian then swap16 v else v)
let[@inline] big_set_i32 b p v = big_set32 b p (if Sys.big_endian then swap32 v else v)
let[@inline] big_set_i64 b p v = big_set64 b p (if Sys.big_endian then swap64 v else v)

(** [len] bytes of [b] from [off] as a fresh string (one copy). *)
let big_sub b off len =
  if off < 0 || len < 0 || off > Bigarray.Array1.dim b - len then invalid_arg "Tlv.big_sub";
  let s = Bytes.create len in
  blit_big_to_bytes b off s 0 len;
  Bytes.unsafe_to_string s

(* -- reader --------------------------------------------------------------- *)

(* A reader decodes from a string ([is_big = false], [big] unused) or in
   place from a bigstring ([is_big = true], [buf] unused); positions are
   offsets in that source. Every value is loaded once and checked before it
   is used, so bytes changing under a reader of shared memory can give a
   wrong value but never a read out of bounds or an unchecked one (strings
   are validated on their copy). The views of bytes fields that
   [r_bytes_view] makes belong to [scope] (View): one that never expires
   for an immutable string, the link's for its input buffer or ring. *)
type reader = { buf : string; big : bigstring; is_big : bool; mutable pos : int; lim : int; scope : View.scope }

(* The scope of views over immutable strings: never expired. *)
let forever = View.new_scope ()

(** A reader over [len] bytes of [s] from [off]; views it makes belong to
    [scope] (default: never expired, for an immutable string). *)
let reader ?(scope = forever) ?(off = 0) ?len s =
  let len = match len with Some l -> l | None -> String.length s - off in
  if off < 0 || len < 0 || off + len > String.length s then invalid_arg "Tlv.reader: range";
  { buf = s; big = no_big; is_big = false; pos = off; lim = off + len; scope }

(** A reader over [len] bytes of [b] from [off], in place; views it makes
    belong to [scope] (default: never expired). *)
let big_reader ?(scope = forever) ~off ~len b =
  if off < 0 || len < 0 || off > Bigarray.Array1.dim b - len then invalid_arg "Tlv.big_reader: range";
  { buf = ""; big = b; is_big = true; pos = off; lim = off + len; scope }

let at_end r = r.pos >= r.lim
let remaining r = r.lim - r.pos

(* Loads at a checked position of the reader's source. *)
let[@inline] ld_u8 r p =
  if r.is_big then Char.code (Bigarray.Array1.get r.big p) else Char.code (String.get r.buf p)
let[@inline] ld_u16 r p = if r.is_big then big_u16 r.big p else String.get_uint16_le r.buf p
let[@inline] ld_i32 r p = if r.is_big then big_i32 r.big p else String.get_int32_le r.buf p
let[@inline] ld_i64 r p = if r.is_big then big_i64 r.big p else String.get_int64_le r.buf p

(* [n] bytes from [p] of the source as a fresh string: the one copy of a
   string or bytes value. *)
let sub r p n = if r.is_big then big_sub r.big p n else String.sub r.buf p n

(** Reads a tag; returns [field_id lsl 3 lor wire_type] after checking the
    wire type (P2) and the field id (P3). *)
let tag r =
  if remaining r < 2 then fail Errc.Truncated;
  let t = ld_u16 r r.pos in
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

let u32_of_int32 x = Int32.to_int x land 0xFFFF_FFFF
let[@inline] i8_of_u8 v = if v >= 0x80 then v - 0x100 else v
let[@inline] i16_of_u16 v = if v >= 0x8000 then v - 0x10000 else v
let[@inline] bool_of_u8 = function 0 -> false | 1 -> true | _ -> fail Errc.Bad_bool

let r_u8 r wt = ld_u8 r (need r wt fixed8 1)
let r_i8 r wt = i8_of_u8 (ld_u8 r (need r wt fixed8 1))
let r_bool r wt = bool_of_u8 (ld_u8 r (need r wt fixed8 1))
let r_u16 r wt = ld_u16 r (need r wt fixed16 2)
let r_i16 r wt = i16_of_u16 (ld_u16 r (need r wt fixed16 2))
let r_u32 r wt = u32_of_int32 (ld_i32 r (need r wt fixed32 4))
let r_i32 r wt = Int32.to_int (ld_i32 r (need r wt fixed32 4))
let r_f32 r wt = Int32.float_of_bits (ld_i32 r (need r wt fixed32 4))
let r_u64 r wt = ld_i64 r (need r wt fixed64 8)
let r_i64 = r_u64
let r_f64 r wt = Int64.float_of_bits (ld_i64 r (need r wt fixed64 8))

(** Reads a sized value's length prefix (P7); returns the offset of its
    bytes and their count. *)
let sized_range r wt =
  if wt <> sized then fail Errc.Bad_wire_type;
  if remaining r < 4 then fail Errc.Truncated;
  let n = u32_of_int32 (ld_i32 r r.pos) in
  r.pos <- r.pos + 4;
  if n > remaining r then fail Errc.Truncated;
  let p = r.pos in
  r.pos <- p + n;
  (p, n)

(** A reader bounded by a sized value (a nested message). *)
let r_sized r wt =
  let p, n = sized_range r wt in
  { r with pos = p; lim = p + n }

(* Strings are validated after the copy: in a shared mapping the bytes
   could change between a check and a copy. *)
let r_string r wt max =
  let p, n = sized_range r wt in
  if n > max then fail Errc.String_too_long;
  if r.is_big then begin
    let s = big_sub r.big p n in
    if not (valid_utf8 s 0 n) then fail Errc.Invalid_utf8;
    s
  end
  else begin
    if not (valid_utf8 r.buf p n) then fail Errc.Invalid_utf8;
    String.sub r.buf p n
  end

let r_bytes r wt max =
  let p, n = sized_range r wt in
  if n > max then fail Errc.Bytes_too_long;
  sub r p n

(** [r_bytes] without the copy: a view of the value where it is, in the
    reader's scope (the same checks, P7 then P12). *)
let r_bytes_view r wt max =
  let p, n = sized_range r wt in
  if n > max then fail Errc.Bytes_too_long;
  if r.is_big then View.make_big r.scope r.big p n else View.make_string r.scope r.buf p n

(* Element getters of packed arrays and vectors: (reader, position). *)
let get_u8 r p = ld_u8 r p
let get_i8 r p = i8_of_u8 (ld_u8 r p)
let get_bool r p = bool_of_u8 (ld_u8 r p)
let get_u16 r p = ld_u16 r p
let get_i16 r p = i16_of_u16 (ld_u16 r p)
let get_u32 r p = u32_of_int32 (ld_i32 r p)
let get_i32 r p = Int32.to_int (ld_i32 r p)
let get_f32 r p = Int32.float_of_bits (ld_i32 r p)
let get_u64 r p = ld_i64 r p
let get_i64 = get_u64
let get_f64 r p = Int64.float_of_bits (ld_i64 r p)

(** A fixed array of [count] elements of [esize] bytes (P13, P8). *)
let r_array r wt esize get count =
  let p, n = sized_range r wt in
  if n <> count * esize then fail Errc.Array_length_mismatch;
  Array.init count (fun i -> get r (p + (i * esize)))

(** A vector of at most [max] elements of [esize] bytes (P14, P15, P8). *)
let r_vector r wt esize get max =
  let p, n = sized_range r wt in
  if n mod esize <> 0 then fail Errc.Bad_vector_length;
  let count = n / esize in
  if count > max then fail Errc.Vector_too_long;
  Array.init count (fun i -> get r (p + (i * esize)))

(** Skips the value of an unknown field (P17). *)
let skip r wt =
  let n = match wt with 0 -> 1 | 1 -> 2 | 2 -> 4 | 3 -> 8 | _ -> -1 in
  if n < 0 then ignore (sized_range r wt)
  else begin
    if remaining r < n then fail Errc.Truncated;
    r.pos <- r.pos + n
  end

(** Runs a generated [decode_fields] on [len] bytes of [s] from [off]
    (views, if [f] makes any, belong to [scope]: default never expired). *)
let decode_with ?(scope = forever) f ?(off = 0) ?len s =
  let len = match len with Some l -> l | None -> String.length s - off in
  if off < 0 || len < 0 || off + len > String.length s then Error Errc.Truncated
  else match f { buf = s; big = no_big; is_big = false; pos = off; lim = off + len; scope } with
    | v -> Ok v
    | exception Decode_error e -> Error e

(** Runs a generated [decode_fields] on [len] bytes of [b] from [off], in
    place: the same checks, in the same order, as [decode_with]. Views (of
    a generated [View.decode_fields]) belong to [scope]; without one they
    never expire, and keeping the bigstring's bytes unchanged while they
    are used is the caller's business. *)
let decode_with_big ?(scope = forever) f ~off ~len b =
  if off < 0 || len < 0 || off > Bigarray.Array1.dim b - len then Error Errc.Truncated
  else match f { buf = ""; big = b; is_big = true; pos = off; lim = off + len; scope } with
    | v -> Ok v
    | exception Decode_error e -> Error e

(* -- writer --------------------------------------------------------------- *)

(* A writer appends to its own growing bytes ([is_big = false]) or, in
   place, to a bounded area of a bigstring ([is_big = true]: [cap] bytes
   from [base], e.g. a slot claimed in a shared-memory ring); positions
   ([len], the [p] of the setters) count from the start of the area. A
   bigstring writer never grows: writing past [cap] raises [Overflow] and
   the caller encodes elsewhere. *)
type writer = {
  mutable b : bytes;
  mutable len : int;
  mutable big : bigstring;
  is_big : bool;
  mutable base : int;
  mutable cap : int;
}

(** A bigstring writer's area is too small for what is being written. *)
exception Overflow

let writer ?(size = 256) () =
  { b = Bytes.create (max size 16); len = 0; big = no_big; is_big = false; base = 0; cap = 0 }

(** A writer into bigstrings; give it an area with [target] before each use. *)
let big_writer () = { b = Bytes.empty; len = 0; big = no_big; is_big = true; base = 0; cap = 0 }

(** Points a bigstring writer at [cap] bytes of [big] from [off], empty. *)
let target w big ~off ~cap =
  if not w.is_big then invalid_arg "Tlv.target: not a bigstring writer";
  if off < 0 || cap < 0 || off > Bigarray.Array1.dim big - cap then invalid_arg "Tlv.target: range";
  w.big <- big;
  w.base <- off;
  w.cap <- cap;
  w.len <- 0

let length w = w.len
let reset w = w.len <- 0

(** Drops everything written after the first [n] bytes. *)
let truncate w n = if n >= 0 && n < w.len then w.len <- n

let grow_slow w n =
  if w.is_big then raise Overflow;
  let nb = Bytes.create (max (2 * Bytes.length w.b) (w.len + n)) in
  Bytes.blit w.b 0 nb 0 w.len;
  w.b <- nb

let[@inline] grow w n =
  if w.len + n > (if w.is_big then w.cap else Bytes.length w.b) then grow_slow w n;
  let p = w.len in
  w.len <- p + n;
  p

(* Stores at a position already inside the written area. *)
let[@inline] st_u8 w p v =
  if w.is_big then Bigarray.Array1.set w.big (w.base + p) (Char.unsafe_chr (v land 0xFF))
  else Bytes.set_uint8 w.b p (v land 0xFF)
let[@inline] st_u16 w p v =
  if w.is_big then big_set_u16 w.big (w.base + p) (v land 0xFFFF) else Bytes.set_uint16_le w.b p (v land 0xFFFF)
let[@inline] st_i32 w p v = if w.is_big then big_set_i32 w.big (w.base + p) v else Bytes.set_int32_le w.b p v
let[@inline] st_i64 w p v = if w.is_big then big_set_i64 w.big (w.base + p) v else Bytes.set_int64_le w.b p v

(** Overwrites, at position [p] of what was written, a little-endian u16,
    u32 or u64 (frame headers). *)
let set_u16_at = st_u16
let set_u32_at w p v = st_i32 w p (Int32.of_int v)
let set_u64_at = st_i64

let[@inline] put_tag w field wt n =
  let p = grow w (2 + n) in
  st_u16 w p ((field lsl 3) lor wt);
  p + 2

let w_u8 w f v = st_u8 w (put_tag w f fixed8 1) v
let w_i8 = w_u8
let w_bool w f v = st_u8 w (put_tag w f fixed8 1) (if v then 1 else 0)
let w_u16 w f v = st_u16 w (put_tag w f fixed16 2) v
let w_i16 = w_u16
let w_u32 w f v = st_i32 w (put_tag w f fixed32 4) (Int32.of_int v)
let w_i32 = w_u32
let w_f32 w f v = st_i32 w (put_tag w f fixed32 4) (Int32.bits_of_float v)
let w_u64 w f v = st_i64 w (put_tag w f fixed64 8) v
let w_i64 = w_u64
let w_f64 w f v = st_i64 w (put_tag w f fixed64 8) (Int64.bits_of_float v)

(* [s] at position [p] (inside the written area): the one copy of a string
   or bytes value on encode. *)
let[@inline] blit_in w p s =
  let n = String.length s in
  if w.is_big then blit_string_to_big s 0 w.big (w.base + p) n else Bytes.blit_string s 0 w.b p n

let w_sized w f s =
  let n = String.length s in
  let p = put_tag w f sized (4 + n) in
  st_i32 w p (Int32.of_int n);
  blit_in w (p + 4) s

(* Element setters of packed arrays and vectors: (writer, position, value). *)
let set_u8 w p v = st_u8 w p v
let set_i8 = set_u8
let set_bool w p v = st_u8 w p (if v then 1 else 0)
let set_u16 w p v = st_u16 w p v
let set_i16 = set_u16
let set_u32 w p v = st_i32 w p (Int32.of_int v)
let set_i32 = set_u32
let set_f32 w p v = st_i32 w p (Int32.bits_of_float v)
let set_u64 w p v = st_i64 w p v
let set_i64 = set_u64
let set_f64 w p v = st_i64 w p (Int64.bits_of_float v)

let w_packed w f esize set xs =
  let n = esize * Array.length xs in
  let p = put_tag w f sized (4 + n) in
  st_i32 w p (Int32.of_int n);
  Array.iteri (fun i x -> set w (p + 4 + (i * esize)) x) xs

(** Starts a sized field whose content is written next; returns the mark
    [end_sized] needs. *)
let begin_sized w f = put_tag w f sized 4 + 4

let end_sized w mark = st_i32 w (mark - 4) (Int32.of_int (w.len - mark))

(** What a bytes writer holds, as a string (a copy). *)
let contents w =
  if w.is_big then invalid_arg "Tlv.contents: a bigstring writer";
  Bytes.sub_string w.b 0 w.len

(** Appends raw bytes (frame headers are written through this too). *)
let add_string w s =
  let p = grow w (String.length s) in
  blit_in w p s

let reserve w n = grow w n

(** The buffer of a bytes writer (valid until the next write). *)
let bytes w =
  if w.is_big then invalid_arg "Tlv.bytes: a bigstring writer";
  w.b

let encode_with f x =
  let w = writer () in
  f w x;
  contents w
