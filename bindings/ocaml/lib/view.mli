(** Views of the [bytes] fields of a received message: the bytes where the
    frame is (a shared-memory ring, or a link's input buffer), not a copy.
    The generated [M.View] decoders make them (docs/ocaml.md, "Views").

    {b Lifetime.} A view handed to a link's view handler
    ([Socket_link.start ~views]) is valid only until that handler returns:
    the link then releases the frame (a ring record goes back to the peer,
    which writes later frames over it) and expires the view's scope. Every
    accessor of an expired view raises {!Expired}; nothing reads bytes that
    are no longer the message's. Copy what you keep ({!to_string}) inside the
    handler. Views over an OCaml string ({!of_string}, [M.View.decode] of a
    string) never expire.

    In a shared mapping, a peer that breaks the protocol could change the
    bytes under a view while the handler reads them; no access can leave the
    view's range. Not thread-safe: use a view on the thread that received
    it. *)

type bigstring = (char, Bigarray.int8_unsigned_elt, Bigarray.c_layout) Bigarray.Array1.t

(** Where views come from (a link connection has one); {!expire} ends
    every view made from it so far. *)
type scope

type t

(** A view was used after the handler it was handed to returned. *)
exception Expired

val new_scope : unit -> scope

(** Ends every view made from the scope so far (the links call it when a
    view handler returns or raises). *)
val expire : scope -> unit

(** The empty view (a bytes field's default); never expires. *)
val empty : t

(** A view of a whole string; never expires. *)
val of_string : string -> t

(** [make_string scope s off len], [make_big scope b off len]: a view of
    [len] bytes from [off], valid until [expire scope]. Raise
    [Invalid_argument] for a range outside the source. *)
val make_string : scope -> string -> int -> int -> t
val make_big : scope -> bigstring -> int -> int -> t

(** Whether the view may still be used. The only function that does not
    raise {!Expired}. *)
val is_valid : t -> bool

(** All of the following raise {!Expired} on an expired view, and
    [Invalid_argument] for a range outside it. *)

val length : t -> int
val get : t -> int -> char
val get_uint8 : t -> int -> int

(** [blit_to_bytes v off dst dst_off len] *)
val blit_to_bytes : t -> int -> bytes -> int -> int -> unit

val sub_string : t -> int -> int -> string

(** The bytes as a fresh string: what the allocating decoder gives, and the
    way to keep them past the handler. *)
val to_string : t -> string

(** Whether the view holds exactly these bytes (no copy). *)
val equal_string : t -> string -> bool

(** Whether two views hold the same bytes. *)
val equal : t -> t -> bool

(** [f] over every byte, in order (no copy). *)
val fold_left : ('a -> char -> 'a) -> 'a -> t -> 'a
