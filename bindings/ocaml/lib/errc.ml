(* Error codes of the wire protocol (docs/wire-protocol.md section 4.1).
   The numbers are part of the protocol: a refuse frame carries one. *)

type t =
  | None_
  | Truncated
  | Frame_too_large
  | Bad_frame_header
  | Unknown_type
  | Bad_wire_type
  | Bad_field_id
  | Duplicate_field
  | Bad_enum_value
  | Bad_bool
  | String_too_long
  | Invalid_utf8
  | Bytes_too_long
  | Vector_too_long
  | Bad_vector_length
  | Array_length_mismatch
  | Bad_magic
  | Version_mismatch
  | Schema_mismatch
  | Auth_failed
  | Schema_invalid
  | Schema_incompatible
  | No_responder
  | Request_timeout
  | Unknown_service
  | Service_failed
  | Escalated
  | Already_registered
  | Config_invalid
  | Data_invalid
  | Peer_lost
  | Sequence_gap
  | Protocol_violation
  | Link_overflow
  | Address_in_use
  | Io_failed
  | Unknown of int  (** a number this build does not know (a newer peer's) *)

let table =
  [| None_; Truncated; Frame_too_large; Bad_frame_header; Unknown_type; Bad_wire_type;
     Bad_field_id; Duplicate_field; Bad_enum_value; Bad_bool; String_too_long; Invalid_utf8;
     Bytes_too_long; Vector_too_long; Bad_vector_length; Array_length_mismatch; Bad_magic;
     Version_mismatch; Schema_mismatch; Auth_failed; Schema_invalid; Schema_incompatible;
     No_responder; Request_timeout; Unknown_service; Service_failed; Escalated;
     Already_registered; Config_invalid; Data_invalid; Peer_lost; Sequence_gap;
     Protocol_violation; Link_overflow; Address_in_use; Io_failed |]

let names =
  [| "none"; "truncated"; "frame_too_large"; "bad_frame_header"; "unknown_type";
     "bad_wire_type"; "bad_field_id"; "duplicate_field"; "bad_enum_value"; "bad_bool";
     "string_too_long"; "invalid_utf8"; "bytes_too_long"; "vector_too_long";
     "bad_vector_length"; "array_length_mismatch"; "bad_magic"; "version_mismatch";
     "schema_mismatch"; "auth_failed"; "schema_invalid"; "schema_incompatible";
     "no_responder"; "request_timeout"; "unknown_service"; "service_failed"; "escalated";
     "already_registered"; "config_invalid"; "data_invalid"; "peer_lost"; "sequence_gap";
     "protocol_violation"; "link_overflow"; "address_in_use"; "io_failed" |]

(** The pinned number of a code. *)
let to_int = function
  | Unknown n -> n
  | e ->
    let rec find i = if table.(i) = e then i else find (i + 1) in
    find 0

(** Any u32 decodes: numbers this build does not know become [Unknown n]. *)
let of_int n = if n >= 0 && n < Array.length table then table.(n) else Unknown n

let to_string = function
  | Unknown n -> Printf.sprintf "unknown code %d" n
  | e -> names.(to_int e)

let pp fmt e = Format.pp_print_string fmt (to_string e)
