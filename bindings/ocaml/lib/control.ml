(* Control frame payloads (docs/wire-protocol.md sections 7 and 9): hello,
   refuse, subscribe/unsubscribe, auth. Encoders and strict decoders. *)

let magic = 0x4C43594D (* bytes 4D 59 43 4C, "MYCL" *)
let protocol_version = 1
let max_name = 255
let max_text = 4096
let max_proof = 256
let max_types = 65535

type hello = {
  magic : int;
  version : int;
  digest : string;  (** 32 bytes *)
  node : string;
  service : string;
  pid : int;
  types : Schema.type_info list;
  nonce : string;  (** 16 bytes, or "" when absent *)
  auth_scheme : int;  (** 0: no secret; 1: hmac_sha256 *)
}

let empty_hello =
  { magic = 0; version = 0; digest = ""; node = ""; service = ""; pid = 0; types = [];
    nonce = ""; auth_scheme = 0 }

(** Cuts [s] to at most [n] bytes on a UTF-8 boundary. *)
let clip s n =
  if String.length s <= n then s
  else
    let rec back i = if i > 0 && Char.code s.[i] land 0xC0 = 0x80 then back (i - 1) else i in
    String.sub s 0 (back n)

let encode_hello w (h : hello) =
  Tlv.w_u32 w 1 h.magic;
  Tlv.w_u16 w 2 h.version;
  Tlv.w_sized w 3 h.digest;
  Tlv.w_sized w 4 (clip h.node max_name);
  Tlv.w_sized w 5 (clip h.service max_name);
  Tlv.w_u32 w 6 h.pid;
  Tlv.w_sized w 7 "";
  let tl = Buffer.create (4 + (40 * List.length h.types)) in
  Buffer.add_int32_le tl (Int32.of_int (List.length h.types));
  List.iter
    (fun (t : Schema.type_info) ->
      let name = clip t.name 255 in
      Buffer.add_int32_le tl (Int32.of_int t.type_id);
      Buffer.add_string tl t.digest;
      Buffer.add_uint8 tl (String.length name);
      Buffer.add_string tl name)
    h.types;
  Tlv.w_sized w 8 (Buffer.contents tl);
  if h.nonce <> "" && h.nonce <> String.make 16 '\000' then Tlv.w_sized w 9 h.nonce;
  if h.auth_scheme <> 0 then Tlv.w_u8 w 10 h.auth_scheme

(* Walks the fields of a control payload, refusing duplicates of ids below
   32 (known or not); returns the bit set of ids seen. *)
let fields r f =
  let seen = ref 0 in
  while not (Tlv.at_end r) do
    let t = Tlv.tag r in
    let fid = t lsr 3 and wt = t land 7 in
    if fid < 32 then begin
      if !seen land (1 lsl fid) <> 0 then Tlv.fail Errc.Duplicate_field;
      seen := !seen lor (1 lsl fid)
    end;
    f fid wt
  done;
  !seen

let type_list s p len =
  if len < 4 then Tlv.fail Errc.Truncated;
  let count = Frame.u32 s p in
  if count > max_types then Tlv.fail Errc.Vector_too_long;
  let off = ref 4 and acc = ref [] in
  for _ = 1 to count do
    if len - !off < 37 then Tlv.fail Errc.Truncated;
    let q = p + !off in
    let type_id = Frame.u32 s q in
    let digest = String.sub s (q + 4) 32 in
    let n = Char.code s.[q + 36] in
    off := !off + 37;
    if len - !off < n then Tlv.fail Errc.Truncated;
    if not (Tlv.valid_utf8 s (p + !off) n) then Tlv.fail Errc.Invalid_utf8;
    acc := { Schema.type_id; name = String.sub s (p + !off) n; digest } :: !acc;
    off := !off + n
  done;
  if !off <> len then Tlv.fail Errc.Bad_vector_length;
  List.rev !acc

(** Decodes a hello payload (section 7.1). On an error the fields decoded
    so far come with it (a bad magic's refusal names the sender). *)
let decode_hello ?(off = 0) ?len s : (hello, Errc.t * hello) result =
  let len = match len with Some l -> l | None -> String.length s - off in
  let h = ref empty_hello in
  let r = Tlv.reader ~off ~len s in
  let fixed_array wt n =
    let p, l = Tlv.sized_range r wt in
    if l <> n then Tlv.fail Errc.Array_length_mismatch;
    String.sub s p l
  in
  match
    fields r (fun fid wt ->
        match fid with
        | 1 -> h := { !h with magic = Tlv.r_u32 r wt }
        | 2 -> h := { !h with version = Tlv.r_u16 r wt }
        | 3 -> h := { !h with digest = fixed_array wt 32 }
        | 4 -> h := { !h with node = Tlv.r_string r wt max_name }
        | 5 -> h := { !h with service = Tlv.r_string r wt max_name }
        | 6 -> h := { !h with pid = Tlv.r_u32 r wt }
        | 7 -> ignore (Tlv.r_bytes r wt max_proof)
        | 8 ->
          let p, l = Tlv.sized_range r wt in
          h := { !h with types = type_list s p l }
        | 9 -> h := { !h with nonce = fixed_array wt 16 }
        | 10 -> h := { !h with auth_scheme = Tlv.r_u8 r wt }
        | _ -> Tlv.skip r wt)
  with
  | exception Tlv.Decode_error e -> Error (e, !h)
  | seen ->
    let required = 0b101111110 in
    if !h.magic <> magic then Error (Errc.Bad_magic, !h)
    else if seen land required <> required then
      Error ((if seen land 2 <> 0 then Errc.Truncated else Errc.Bad_magic), !h)
    else Ok !h

(* -- refuse (section 7.2) -------------------------------------------------- *)

type refuse = { code : int;  (** the errc number as received, any u32 *) text : string }

let encode_refuse w r =
  Tlv.w_u32 w 1 r.code;
  Tlv.w_sized w 2 (clip r.text max_text)

let decode_refuse ?(off = 0) ?len s =
  let r = Tlv.reader ~off ?len s in
  let code = ref 0 and text = ref "" in
  match
    fields r (fun fid wt ->
        match fid with
        | 1 -> code := Tlv.r_u32 r wt
        | 2 -> text := Tlv.r_string r wt max_text
        | _ -> Tlv.skip r wt)
  with
  | exception Tlv.Decode_error e -> Error e
  | _ -> Ok { code = !code; text = !text }

(** "schema_mismatch" or "unknown code N" (section 4.1). *)
let reason_name code = Errc.to_string (Errc.of_int code)

(* -- subscribe / unsubscribe (section 9.1) --------------------------------- *)

let encode_interest w type_id = Tlv.w_u32 w 1 type_id

let decode_interest ?(off = 0) ?len s =
  let r = Tlv.reader ~off ?len s in
  let id = ref 0 in
  match fields r (fun fid wt -> if fid = 1 then id := Tlv.r_u32 r wt else Tlv.skip r wt) with
  | exception Tlv.Decode_error e -> Error e
  | seen ->
    if seen land 2 = 0 then Error Errc.Truncated
    else if not (Frame.is_message_type_id !id) then Error Errc.Unknown_type
    else Ok !id

(* -- auth (section 9.4) ------------------------------------------------------ *)

let encode_auth w proof = Tlv.w_sized w 1 proof

let decode_auth ?(off = 0) ?len s =
  let r = Tlv.reader ~off ?len s in
  let proof = ref "" in
  match
    fields r (fun fid wt ->
        if fid = 1 then begin
          let p, l = Tlv.sized_range r wt in
          if l <> 32 then Tlv.fail Errc.Array_length_mismatch;
          proof := String.sub s p l
        end
        else Tlv.skip r wt)
  with
  | exception Tlv.Decode_error e -> Error e
  | seen -> if seen land 2 = 0 then Error Errc.Truncated else Ok !proof

(* -- shm_attach (section 9.2b) ------------------------------------------------ *)

let encode_shm_attach w ~segment ~doorbell =
  Tlv.w_sized w 1 (clip segment max_name);
  Tlv.w_sized w 2 (clip doorbell max_name)

(** (segment, doorbell); both required and non-empty, else [Truncated]. *)
let decode_shm_attach ?(off = 0) ?len s =
  let r = Tlv.reader ~off ?len s in
  let seg = ref "" and bell = ref "" in
  match
    fields r (fun fid wt ->
        match fid with
        | 1 -> seg := Tlv.r_string r wt max_name
        | 2 -> bell := Tlv.r_string r wt max_name
        | _ -> Tlv.skip r wt)
  with
  | exception Tlv.Decode_error e -> Error e
  | seen ->
    if seen land 6 <> 6 || !seg = "" || !bell = "" then Error Errc.Truncated else Ok (!seg, !bell)
