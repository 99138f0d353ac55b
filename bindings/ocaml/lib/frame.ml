(* Frames (docs/wire-protocol.md section 1): a 24-byte little-endian header,
   then the payload. *)

let header_size = 24
let flag_control = 0x0001

(** 1 MiB: the default payload limit, and the limit of control payloads
    whatever the link's [max_payload] (section 7.1). *)
let default_max_payload = 1 lsl 20

let control_payload_limit = 1 lsl 20

(* Control type ids (section 1.2). *)
let first_control_type_id = 0xFFFF0000
let hello = 0xFFFF0001
let refuse = 0xFFFF0002
let subscribe = 0xFFFF0003
let unsubscribe = 0xFFFF0004
let heartbeat = 0xFFFF0005
let goodbye = 0xFFFF0006
let shm_attach = 0xFFFF0007
let auth = 0xFFFF0008

let control_name id =
  if id = hello then Some "hello"
  else if id = refuse then Some "refuse"
  else if id = subscribe then Some "subscribe"
  else if id = unsubscribe then Some "unsubscribe"
  else if id = heartbeat then Some "heartbeat"
  else if id = goodbye then Some "goodbye"
  else if id = shm_attach then Some "shm_attach"
  else if id = auth then Some "auth"
  else None

(** A message type id of a schema: 1 .. 0xFFFEFFFF. *)
let is_message_type_id id = id > 0 && id < first_control_type_id

type header = {
  payload_length : int;
  type_id : int;
  sequence : int64;
  flags : int;
}

let is_control h = h.flags land flag_control <> 0

let u32 s p = Int32.to_int (String.get_int32_le s p) land 0xFFFF_FFFF

(* H2 and H3 of section 4 on the loaded header fields. *)
let check_header ~max_payload h ~reserved0 ~reserved1 =
  if h.flags land lnot flag_control <> 0 || reserved0 <> 0 || reserved1 <> 0 then
    Error Errc.Bad_frame_header
  else if h.payload_length > max_payload then Error Errc.Frame_too_large
  else Ok h

(** Reads and checks a header at [off] (H1, H2, H3 of section 4):
    [Truncated], [Bad_frame_header], [Frame_too_large]. *)
let read_header ?(off = 0) ~max_payload s =
  if String.length s - off < header_size then Error Errc.Truncated
  else
    check_header ~max_payload
      {
        payload_length = u32 s off;
        type_id = u32 s (off + 4);
        sequence = String.get_int64_le s (off + 8);
        flags = String.get_uint16_le s (off + 16);
      }
      ~reserved0:(String.get_uint16_le s (off + 18)) ~reserved1:(u32 s (off + 20))

(** [read_header] in place on a bigstring (a shared-memory ring): each
    field is loaded once, then checked. *)
let read_header_big ~off ~max_payload (b : Tlv.bigstring) =
  if off < 0 || Bigarray.Array1.dim b - off < header_size then Error Errc.Truncated
  else
    let u32 p = Tlv.u32_of_int32 (Tlv.big_i32 b p) in
    check_header ~max_payload
      {
        payload_length = u32 off;
        type_id = u32 (off + 4);
        sequence = Tlv.big_i64 b (off + 8);
        flags = Tlv.big_u16 b (off + 16);
      }
      ~reserved0:(Tlv.big_u16 b (off + 18)) ~reserved1:(u32 (off + 20))

(** Writes a header into [b] at [p]. *)
let write_header b p ~payload_length ~type_id ~sequence ~control =
  Bytes.set_int32_le b p (Int32.of_int payload_length);
  Bytes.set_int32_le b (p + 4) (Int32.of_int type_id);
  Bytes.set_int64_le b (p + 8) sequence;
  Bytes.set_uint16_le b (p + 16) (if control then flag_control else 0);
  Bytes.set_uint16_le b (p + 18) 0;
  Bytes.set_int32_le b (p + 20) 0l

(** Writes a header at position [p] of what [w] holds (a bytes or a
    bigstring writer). *)
let write_header_at (w : Tlv.writer) p ~payload_length ~type_id ~sequence ~control =
  Tlv.set_u32_at w p payload_length;
  Tlv.set_u32_at w (p + 4) type_id;
  Tlv.set_u64_at w (p + 8) sequence;
  Tlv.set_u16_at w (p + 16) (if control then flag_control else 0);
  Tlv.set_u16_at w (p + 18) 0;
  Tlv.set_u32_at w (p + 20) 0

(** A whole frame as a string. *)
let make ~type_id ~sequence ?(control = false) payload =
  let n = String.length payload in
  let b = Bytes.create (header_size + n) in
  write_header b 0 ~payload_length:n ~type_id ~sequence ~control;
  Bytes.blit_string payload 0 b header_size n;
  Bytes.unsafe_to_string b

(** Encodes a message as a data frame. *)
let encode_data (schema : 'a Schema.t) ~sequence (x : 'a) =
  let w = Tlv.writer () in
  ignore (Tlv.reserve w header_size);
  let type_id = schema.encode_fields w x in
  write_header_at w 0 ~payload_length:(Tlv.length w - header_size) ~type_id ~sequence ~control:false;
  Tlv.contents w

(** Decodes one data frame from the start of [s] (every check of section 4,
    in its order). Bytes after the frame are not looked at. *)
let decode_data (schema : 'a Schema.t) ?(max_payload = default_max_payload) ?(off = 0) s =
  match read_header ~off ~max_payload s with
  | Error e -> Error e
  | Ok h ->
    if String.length s - off - header_size < h.payload_length then Error Errc.Truncated
    else if is_control h || not (Schema.has_type schema h.type_id) then Error Errc.Unknown_type
    else
      match
        Tlv.decode_with (schema.decode_fields h.type_id) ~off:(off + header_size)
          ~len:h.payload_length s
      with
      | Ok v -> Ok (h, v)
      | Error e -> Error e
