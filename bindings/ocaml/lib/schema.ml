(* The type-erased view of a generated schema module that links use: the
   digests announced in the hello, and the codec of every message type. *)

type type_info = { type_id : int; name : string; digest : string (** 32 bytes *) }

type 'a t = {
  package : string;
  digest : string;  (** SHA-256 of the schema's canonical form, 32 bytes *)
  types : type_info list;  (** every message type, ascending id *)
  decode_fields : int -> Tlv.reader -> 'a;
      (** decodes the payload of a type id; raises [Tlv.Decode_error] *)
  encode_fields : Tlv.writer -> 'a -> int;  (** writes the fields; returns the type id *)
  type_id_of : 'a -> int;
}

let find_type s id = List.find_opt (fun t -> t.type_id = id) s.types
let has_type s id = find_type s id <> None

let type_name s id =
  match find_type s id with Some t -> t.name | None -> Printf.sprintf "type %d" id

let hex s = String.concat "" (List.map (fun c -> Printf.sprintf "%02x" (Char.code c)) (List.of_seq (String.to_seq s)))
