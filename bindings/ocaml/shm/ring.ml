(* The single-producer / single-consumer rings of docs/wire-protocol.md
   sections 10.2-10.4: 8-byte aligned records {length, kind} + bytes; kind
   1 = frame, 2 = wrap. Positions only grow; offset = position land
   (capacity - 1). Each side writes ring [side] and reads ring [1 - side].
   Not thread-safe: one producer and one consumer, each on one thread. *)

module A = Atomics

let align8 n = (n + 7) land lnot 7

type writer = {
  wseg : Segment.t;
  wctl : int;
  wdata : int;
  mutable head : int;
  mutable tail_seen : int;  (** the consumer's tail when last loaded: room is at least this much *)
  mutable claim_start : int;  (** offset in the ring data of the claimed record *)
  mutable claim_skip : int;  (** bytes of a wrap record before it (0: none) *)
  mutable granted : int;  (** bytes the claimed frame may have *)
}
type reader = { rseg : Segment.t; rctl : int; rdata : int; mutable tail : int }

let writer (s : Segment.t) =
  let i = s.side in
  let ctl = Segment.ring_offset s i in
  let head = A.load_acquire_u64 s.map (ctl + Segment.off_head) in
  { wseg = s; wctl = ctl; wdata = Segment.ring_data s i; head;
    tail_seen = A.load_acquire_u64 s.map (ctl + Segment.off_tail); claim_start = 0; claim_skip = 0;
    granted = -1 }

let reader (s : Segment.t) =
  let i = 1 - s.side in
  let ctl = Segment.ring_offset s i in
  { rseg = s; rctl = ctl; rdata = Segment.ring_data s i; tail = A.load_acquire_u64 s.map (ctl + Segment.off_tail) }

type write_result = Written | Full | Too_large | Corrupt of string

(** Writes one frame of [n] bytes from [b] (section 10.3, steps 1-4). *)
let write w (b : bytes) off n =
  let s = w.wseg in
  let cap = s.capacity in
  if n > s.max_frame then Too_large
  else
    let need = 8 + align8 n in
    let offset = w.head land (cap - 1) in
    let to_end = cap - offset in
    let total = if need <= to_end then need else to_end + need in
    let tail = A.load_acquire_u64 s.map (w.wctl + Segment.off_tail) in
    w.granted <- -1;
    if tail > w.head || w.head - tail > cap then
      Corrupt (Printf.sprintf "ring %d of %s: tail %d, head %d" s.side s.name tail w.head)
    else begin
      w.tail_seen <- tail;
      if tail + cap - w.head < total then Full
      else begin
        let pos =
          if need <= to_end then offset
          else begin
            A.set_u32 s.map (w.wdata + offset) (to_end - 8);
            A.set_u32 s.map (w.wdata + offset + 4) 2;
            0
          end
        in
        A.set_u32 s.map (w.wdata + pos) n;
        A.set_u32 s.map (w.wdata + pos + 4) 1;
        A.blit_from_bytes b off s.map (w.wdata + pos + 8) n;
        w.head <- w.head + total;
        A.store_release_u64 s.map (w.wctl + Segment.off_head) w.head;
        Written
      end
    end

type claim_result = Claimed | Claim_full | Claim_corrupt of string

(** Claims the ring's free run for one frame of at least [min_n] bytes
    (Aeron's claim/commit, as the C++ ring does): on [Claimed], write the
    frame at [slot w] in the mapping, at most [granted w] bytes, then
    [commit] it with its size; a claim that is not committed leaves nothing
    visible. The run is the rest of the ring up to its end, or, when that
    is shorter than [min_n], the start of the ring behind a wrap record
    (written at the commit). [Claim_full]: not even [min_n] bytes free (or
    [min_n] is over [max_frame]). *)
let claim w ~min_n =
  let s = w.wseg in
  let cap = s.capacity in
  let need_min = 8 + align8 min_n in
  let rec attempt pass =
    let free = w.tail_seen + cap - w.head in
    let offset = w.head land (cap - 1) in
    let to_end = cap - offset in
    let wrap = min free to_end < need_min && to_end < need_min && free >= to_end + need_min in
    let room = if wrap then free - to_end else min free to_end in
    if room >= need_min then begin
      w.claim_start <- (if wrap then 0 else offset);
      w.claim_skip <- (if wrap then to_end else 0);
      w.granted <- min ((room - 8) land lnot 7) s.max_frame;
      Claimed
    end
    else if pass = 0 then begin
      (* the cached tail is behind: load the consumer's *)
      let tail = A.load_acquire_u64 s.map (w.wctl + Segment.off_tail) in
      if tail > w.head || w.head - tail > cap then
        Claim_corrupt (Printf.sprintf "ring %d of %s: tail %d, head %d" s.side s.name tail w.head)
      else begin
        w.tail_seen <- tail;
        attempt 1
      end
    end
    else Claim_full
  in
  w.granted <- -1;
  if min_n > s.max_frame then Claim_full else attempt 0

(** Where the claimed frame goes: its offset in the mapping. *)
let slot w = w.wdata + w.claim_start + 8

(** How many bytes the claimed frame may have. *)
let granted w = w.granted

(** Publishes the claimed frame with its size [n] (at most [granted]):
    the record headers first, then [head] with release ordering. *)
let commit w n =
  if w.granted < 0 || n < 0 || n > w.granted then
    invalid_arg "Ring.commit: nothing claimed, or more than granted";
  let s = w.wseg in
  if w.claim_skip > 0 then begin
    let offset = w.head land (s.capacity - 1) in
    A.set_u32 s.map (w.wdata + offset) (w.claim_skip - 8);
    A.set_u32 s.map (w.wdata + offset + 4) 2
  end;
  A.set_u32 s.map (w.wdata + w.claim_start) n;
  A.set_u32 s.map (w.wdata + w.claim_start + 4) 1;
  w.head <- w.head + w.claim_skip + 8 + align8 n;
  w.granted <- -1;
  A.store_release_u64 s.map (w.wctl + Segment.off_head) w.head

(** After writes: whether the consumer may sleep and needs its doorbell
    rung (the fence pairs with the consumer's, section 10.4). *)
let consumer_sleeping w =
  A.fence ();
  A.load_relaxed_u32 w.wseg.map (w.wctl + Segment.off_sleeping) <> 0

type peek_result = Empty | Frame of int * int  (** offset in the mapping, length *) | Bad of string

(** The next frame record, skipping wrap records (section 10.3, reading). *)
let rec peek r =
  let s = r.rseg in
  let cap = s.capacity in
  let head = A.load_acquire_u64 s.map (r.rctl + Segment.off_head) in
  if head = r.tail then Empty
  else if head < r.tail || head - r.tail > cap then
    Bad (Printf.sprintf "ring %d of %s: head %d, tail %d" (1 - s.side) s.name head r.tail)
  else
    let offset = r.tail land (cap - 1) in
    let len = A.get_u32 s.map (r.rdata + offset) and kind = A.get_u32 s.map (r.rdata + offset + 4) in
    if offset land 7 <> 0 then Bad (Printf.sprintf "ring %d of %s: misaligned record at %d" (1 - s.side) s.name offset)
    else if kind = 2 then
      if len <> cap - offset - 8 || head - r.tail < cap - offset then
        Bad (Printf.sprintf "ring %d of %s: bad wrap record at %d" (1 - s.side) s.name offset)
      else begin
        r.tail <- r.tail + (cap - offset);
        peek r
      end
    else if kind <> 1 || len > s.max_frame || offset + 8 + align8 len > cap || 8 + align8 len > head - r.tail then
      Bad (Printf.sprintf "ring %d of %s: impossible record (kind %d, length %d) at %d" (1 - s.side) s.name kind len offset)
    else Frame (r.rdata + offset + 8, len)

(** Done with the frame of length [len] that [peek] returned. *)
let release r len =
  r.tail <- r.tail + 8 + align8 len;
  A.store_release_u64 r.rseg.map (r.rctl + Segment.off_tail) r.tail

(** Copies a peeked frame out of the mapping. *)
let copy_out r pos len =
  let b = Bytes.create len in
  A.blit_to_bytes r.rseg.map pos b 0 len;
  b

(** Consumer, before sleeping: announce it, then re-check (Dekker with the
    producer's fence). true = something arrived meanwhile: do not sleep. *)
let prepare_sleep r =
  let s = r.rseg in
  A.store_relaxed_u32 s.map (r.rctl + Segment.off_sleeping) 1;
  A.fence ();
  A.load_acquire_u64 s.map (r.rctl + Segment.off_head) <> r.tail

let end_sleep r = A.store_relaxed_u32 r.rseg.map (r.rctl + Segment.off_sleeping) 0
