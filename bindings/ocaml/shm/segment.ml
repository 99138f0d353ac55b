(* A shared-memory segment (docs/wire-protocol.md section 10.2): the header
   and the two rings' positions, mapped from /dev/shm/<name> (what
   shm_open does on Linux). Side 0 creates the segment, side 1 attaches.
   One value per mapping; not thread-safe (one Lwt thread drives it). *)

module A = Atomics
module Errc = Mycelium.Errc

(* The u64 0x314D4853434C594D little-endian: bytes 4D 59 4C 43 53 48 4D 31
   (docs/wire-protocol.md 10.2; the intended "MYCLSHM1" has two letters
   swapped in the constant). *)
let magic = "\x4d\x59\x4c\x43\x53\x48\x4d\x31"
let layout_version = 1
let header_size = 256
let control_size = 192
let min_capacity = 64
let max_capacity = 1 lsl 30

(* header offsets *)
let off_state = 12
let off_capacity = 16
let off_max_frame = 24
let off_digest = 32
let off_owner_pid side = 64 + (4 * side)
let off_heartbeat side = 80 + (8 * side)

(* states *)
let st_creating = 0
let st_ready = 1
let st_attached = 2
let st_closed = 3

(* ring control block offsets *)
let off_head = 0
let off_tail = 64
let off_sleeping = 128

type t = {
  name : string;
  map : A.mapping;
  capacity : int;
  max_frame : int;
  side : int;
}

let segment_size capacity = header_size + (2 * (control_size + capacity))
let ring_offset t i = header_size + (i * (control_size + t.capacity))
let ring_data t i = ring_offset t i + control_size
let path name = "/dev/shm/" ^ name

(** Names the C++ side accepts: "mycelium-" prefix, no '/', 1-200 bytes of
    [A-Za-z0-9._-]. *)
let valid_name n =
  let ok c =
    (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c = '.'
    || c = '_' || c = '-'
  in
  String.length n >= 1 && String.length n <= 200
  && String.length n >= 9 && String.sub n 0 9 = "mycelium-"
  && String.for_all ok n

let is_pow2 x = x > 0 && x land (x - 1) = 0

let get_string map off n = String.init n (fun i -> Bigarray.Array1.get map (off + i))

let set_string map off s = String.iteri (fun i c -> Bigarray.Array1.set map (off + i) c) s

let map_fd fd size =
  Bigarray.array1_of_genarray (Unix.map_file fd Bigarray.char Bigarray.c_layout true [| size |])

let unlink name = try Unix.unlink (path name) with Unix.Unix_error _ -> ()

(* Side 1: opens and checks a segment the peer created (section 10.1 step
    2), then marks it attached and unlinks its name. [Error] carries the
    code and a text naming the segment. *)
let attach_unguarded ~name ~digest ~pid =
  let fail code fmt = Printf.ksprintf (fun s -> Error (code, Printf.sprintf "shared-memory segment %s: %s" name s)) fmt in
  if not (valid_name name) then
    fail Errc.Protocol_violation "not a valid segment name (mycelium-..., 1-200 bytes of [A-Za-z0-9._-])"
  else
    match Unix.openfile (path name) [ Unix.O_RDWR; Unix.O_CLOEXEC ] 0 with
    | exception Unix.Unix_error (e, _, _) -> fail Errc.Io_failed "cannot open: %s" (Unix.error_message e)
    | fd ->
      Fun.protect ~finally:(fun () -> Unix.close fd) (fun () ->
          let size = (Unix.fstat fd).Unix.st_size in
          if size < header_size then fail Errc.Protocol_violation "only %d bytes, smaller than its header" size
          else
            match map_fd fd size with
            | exception Unix.Unix_error (e, _, _) -> fail Errc.Io_failed "cannot map: %s" (Unix.error_message e)
            | map ->
              let capacity = A.load_relaxed_u64 map off_capacity in
              if get_string map 0 8 <> magic then fail Errc.Bad_magic "bad magic %s (not a Mycelium segment)" (Mycelium.Schema.hex (get_string map 0 8))
              else if A.get_u32 map 8 <> layout_version then
                fail Errc.Version_mismatch "layout version %d, this build knows %d" (A.get_u32 map 8) layout_version
              else if A.load_acquire_u32 map off_state <> st_ready then
                fail Errc.Protocol_violation "state %d, expected 1 (ready)" (A.load_acquire_u32 map off_state)
              else if (not (is_pow2 capacity)) || capacity < min_capacity || capacity > max_capacity
                      || size <> segment_size capacity
              then fail Errc.Protocol_violation "capacity %d and size %d do not match the layout" capacity size
              else if get_string map off_digest 32 <> digest then
                fail Errc.Schema_mismatch "schema digest %s in the header, ours is %s"
                  (Mycelium.Schema.hex (get_string map off_digest 32)) (Mycelium.Schema.hex digest)
              else begin
                let t = { name; map; capacity; max_frame = A.load_relaxed_u64 map off_max_frame; side = 1 } in
                A.store_relaxed_u32 map (off_owner_pid 1) pid;
                A.store_relaxed_u64 map (off_heartbeat 1) (A.monotonic_ns ());
                A.store_release_u32 map off_state st_attached;
                unlink name;
                Ok t
              end)

(** Side 1: opens and checks a segment the peer created (section 10.1 step
    2), then marks it attached and unlinks its name. [Error] carries the
    code and a text naming the segment; never raises. *)
let attach ~name ~digest ~pid =
  try attach_unguarded ~name ~digest ~pid
  with Unix.Unix_error (e, fn, _) ->
    Error (Errc.Io_failed, Printf.sprintf "shared-memory segment %s: %s failed: %s" name fn (Unix.error_message e))

(** Side 0: creates a segment (section 10.1 step 1). Used by the tests. *)
let create ~name ~capacity ~digest ~pid =
  let fd = Unix.openfile (path name) [ Unix.O_RDWR; Unix.O_CREAT; Unix.O_EXCL; Unix.O_CLOEXEC ] 0o600 in
  Fun.protect ~finally:(fun () -> Unix.close fd) (fun () ->
      let size = segment_size capacity in
      Unix.ftruncate fd size;
      let map = map_fd fd size in
      set_string map 0 magic;
      A.set_u32 map 8 layout_version;
      A.store_relaxed_u64 map off_capacity capacity;
      A.store_relaxed_u64 map off_max_frame ((capacity / 2) - 8);
      set_string map off_digest digest;
      A.store_relaxed_u32 map (off_owner_pid 0) pid;
      A.store_relaxed_u64 map (off_heartbeat 0) (A.monotonic_ns ());
      A.store_release_u32 map off_state st_ready;
      { name; map; capacity; max_frame = (capacity / 2) - 8; side = 0 })

(** Attaches as side 1 to a segment this process created (tests). *)
let state t = A.load_acquire_u32 t.map off_state

let close t = A.store_release_u32 t.map off_state st_closed

(** Stores our heartbeat (section 10.5). *)
let beat t = A.store_relaxed_u64 t.map (off_heartbeat t.side) (A.monotonic_ns ())

let peer_pid t = A.load_relaxed_u32 t.map (off_owner_pid (1 - t.side))

(** false when the peer's pid names no live process (kill(pid, 0) = ESRCH; pid 0 is dead). *)
let peer_alive t =
  let pid = peer_pid t in
  pid <> 0 && (match Unix.kill pid 0 with () -> true | exception Unix.Unix_error (Unix.ESRCH, _, _) -> false | exception Unix.Unix_error _ -> true)

(** Removes stale "mycelium-*" segments under /dev/shm (section 10.1): both
    owner pids dead (pid 0 counts as dead), or too small or a bad magic and
    older than 60 s. Returns the names removed. Doorbells are abstract
    sockets and never appear there. *)
let remove_stale () =
  let dead pid =
    pid = 0 || (match Unix.kill pid 0 with () -> false | exception Unix.Unix_error (Unix.ESRCH, _, _) -> true | exception Unix.Unix_error _ -> false)
  in
  let entries = try Sys.readdir "/dev/shm" with Sys_error _ -> [||] in
  Array.fold_left
    (fun acc name ->
      if String.length name < 9 || String.sub name 0 9 <> "mycelium-" then acc
      else
        match Unix.openfile (path name) [ Unix.O_RDONLY; Unix.O_CLOEXEC ] 0 with
        | exception Unix.Unix_error _ -> acc
        | fd ->
          let stale =
            try
              let st = Unix.fstat fd in
              let old = Unix.gettimeofday () -. st.Unix.st_mtime > 60. in
              if st.Unix.st_size < header_size then old
              else
                let m =
                  Bigarray.array1_of_genarray
                    (Unix.map_file fd Bigarray.char Bigarray.c_layout false [| header_size |])
                in
                if get_string m 0 8 <> magic then old
                else dead (A.load_relaxed_u32 m (off_owner_pid 0)) && dead (A.load_relaxed_u32 m (off_owner_pid 1))
            with Unix.Unix_error _ -> false
          in
          Unix.close fd;
          if stale then (unlink name; name :: acc) else acc)
    [] entries
