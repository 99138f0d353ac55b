(* The challenge-response proof of docs/wire-protocol.md section 9.4. *)

let label = "mycelium-auth-v2"

(** HMAC-SHA256(secret, label || challenge || own nonce || own digest ||
    own node || 0 || own service || 0 || own pid as u32 LE), where "own" is
    the hello of the side that sends the proof and [challenge] the nonce of
    the other side's hello. *)
let proof ~secret ~challenge (own : Control.hello) =
  let b = Buffer.create 128 in
  Buffer.add_string b label;
  Buffer.add_string b challenge;
  Buffer.add_string b own.nonce;
  Buffer.add_string b own.digest;
  Buffer.add_string b (Control.clip own.node Control.max_name);
  Buffer.add_char b '\000';
  Buffer.add_string b (Control.clip own.service Control.max_name);
  Buffer.add_char b '\000';
  Buffer.add_int32_le b (Int32.of_int own.pid);
  Cryptokit.hash_string (Cryptokit.MAC.hmac_sha256 secret) (Buffer.contents b)

(** Compares two strings in time independent of where they differ. *)
let constant_time_equal a b =
  String.length a = String.length b
  &&
  let d = ref 0 in
  String.iteri (fun i c -> d := !d lor (Char.code c lxor Char.code b.[i])) a;
  !d = 0

let sha256 s = Cryptokit.hash_string (Cryptokit.Hash.sha256 ()) s

(** 16 bytes from the system's random source, new for every connection. *)
let fresh_nonce () =
  let rng = Cryptokit.Random.device_rng "/dev/urandom" in
  let s = Cryptokit.Random.string rng 16 in
  rng#wipe;
  s
