(* Views of the [bytes] fields of a received message: the bytes where the
   frame is (a shared-memory ring, or a link's input buffer), not a copy.
   The generated [M.View] decoders give them (docs/ocaml.md, "Views").

   Lifetime: a view from a link is valid only while the handler it was
   handed to runs. The link then releases the frame (the ring record goes
   back to the peer, which writes the next frames over it) and *expires*
   the view's scope: every accessor of an expired view raises [Expired]
   instead of reading bytes that are no longer the message's. To keep the
   bytes, copy them ([to_string]) inside the handler. Views over an OCaml
   string ([of_string], [M.View.decode] on a string) never expire.

   A view's bounds are checked when it is made (the decoder's P7 and P12
   checks); its accessors check their own ranges. In a shared mapping a
   peer that breaks the protocol could change the bytes under a view, but
   never make an access leave the frame's record.
   Not thread-safe: use a view on the thread that received it. *)

type bigstring = (char, Bigarray.int8_unsigned_elt, Bigarray.c_layout) Bigarray.Array1.t

(** Where views come from: a link connection has one. Views made while
    its generation is [g] are valid until [expire] moves it on. *)
type scope = { mutable generation : int }

type t = {
  str : string;  (** the source when [is_big = false] *)
  big : bigstring;  (** the source when [is_big = true] *)
  is_big : bool;
  off : int;
  len : int;
  scope : scope;
  gen : int;  (** the scope's generation when the view was made *)
}

(** A view was used after the handler it was handed to returned. *)
exception Expired

let () =
  Printexc.register_printer (function
    | Expired ->
      Some
        "Mycelium.View.Expired: a view of a received bytes field was used after its handler \
         returned (the frame is released then); copy it with Mycelium.View.to_string inside \
         the handler to keep it"
    | _ -> None)

let new_scope () = { generation = 0 }

(** Ends every view made from [s] so far. *)
let expire s = s.generation <- s.generation + 1

(* The scope of views that never expire (over immutable OCaml strings). *)
let forever = { generation = 0 }

let no_big : bigstring = Bigarray.Array1.create Bigarray.char Bigarray.c_layout 0

(** The empty view (the default of a bytes field); never expires. *)
let empty = { str = ""; big = no_big; is_big = false; off = 0; len = 0; scope = forever; gen = 0 }

(** A view of a whole string; never expires. *)
let of_string s =
  { str = s; big = no_big; is_big = false; off = 0; len = String.length s; scope = forever; gen = 0 }

(** A view of [len] bytes of [s] from [off] in [scope] (the generated
    decoders make them). Raises [Invalid_argument] for a range outside [s]. *)
let make_string scope s off len =
  if off < 0 || len < 0 || off > String.length s - len then invalid_arg "Mycelium.View.make_string";
  { str = s; big = no_big; is_big = false; off; len; scope; gen = scope.generation }

(** A view of [len] bytes of [b] from [off] in [scope]. Raises
    [Invalid_argument] for a range outside [b]. *)
let make_big scope b off len =
  if off < 0 || len < 0 || off > Bigarray.Array1.dim b - len then invalid_arg "Mycelium.View.make_big";
  { str = ""; big = b; is_big = true; off; len; scope; gen = scope.generation }

(** Whether [v] may still be used (its handler has not returned). *)
let[@inline] is_valid v = v.scope.generation = v.gen

let[@inline] check v = if v.scope.generation <> v.gen then raise Expired

(* Byte [i] of a checked view, [i] in range. *)
let[@inline] byte v i =
  if v.is_big then Bigarray.Array1.unsafe_get v.big (v.off + i) else String.unsafe_get v.str (v.off + i)

external blit_big_to_bytes : bigstring -> int -> bytes -> int -> int -> unit
  = "mycelium_tlv_blit_big_to_bytes" [@@noalloc]

(** The number of bytes. Raises [Expired]. *)
let length v = check v; v.len

(** Byte [i]. Raises [Expired], [Invalid_argument] outside [0 .. length - 1]. *)
let get v i =
  check v;
  if i < 0 || i >= v.len then invalid_arg "Mycelium.View.get";
  byte v i

let get_uint8 v i = Char.code (get v i)

(** Copies [len] bytes from [off] of [v] into [dst] at [dst_off].
    Raises [Expired], [Invalid_argument] for a range outside either. *)
let blit_to_bytes v off dst dst_off len =
  check v;
  if off < 0 || len < 0 || off > v.len - len || dst_off < 0 || dst_off > Bytes.length dst - len then
    invalid_arg "Mycelium.View.blit_to_bytes";
  if v.is_big then blit_big_to_bytes v.big (v.off + off) dst dst_off len
  else Bytes.blit_string v.str (v.off + off) dst dst_off len

(** [len] bytes from [off] as a fresh string. Raises [Expired]. *)
let sub_string v off len =
  check v;
  if off < 0 || len < 0 || off > v.len - len then invalid_arg "Mycelium.View.sub_string";
  let b = Bytes.create len in
  blit_to_bytes v off b 0 len;
  Bytes.unsafe_to_string b

(** The bytes as a fresh string: what the allocating decoder gives, and
    the way to keep them past the handler. Raises [Expired]. *)
let to_string v = check v; sub_string v 0 v.len

(** Whether [v] holds exactly the bytes of [s] (no copy). Raises [Expired]. *)
let equal_string v s =
  check v;
  let n = String.length s in
  n = v.len
  &&
  let rec go i = i >= n || (String.unsafe_get s i = byte v i && go (i + 1)) in
  go 0

(** Whether two views hold the same bytes. Raises [Expired]. *)
let equal a b =
  check a;
  check b;
  a.len = b.len
  &&
  let rec go i = i >= a.len || (byte a i = byte b i && go (i + 1)) in
  go 0

(** [f] over every byte, in order, with an accumulator (no copy).
    Raises [Expired]. *)
let fold_left f acc v =
  check v;
  let r = ref acc in
  for i = 0 to v.len - 1 do
    r := f !r (byte v i)
  done;
  !r
