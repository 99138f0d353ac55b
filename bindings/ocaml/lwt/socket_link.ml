(* A Mycelium link over a Unix stream socket or TCP, on Lwt: the pure core
   (Mycelium.Link) for every frame, this module for the bytes.

   - connecting links keep one connection and reconnect with exponential
     backoff plus jitter, re-announcing their interest on every new
     connection (resubscribe);
   - listening links accept any number of peers;
   - TCP sockets get TCP_NODELAY; everything queued while a write was in
     progress goes out in one write (batched writes);
   - each connection has a bounded send queue (messages in flight: queued
     or being written) and an overflow policy: block (up to block_timeout),
     drop_newest, disconnect (docs/transports.md).

   All functions must be called from the Lwt thread that runs the link
   (Lwt_main.run); nothing here is thread-safe. Peer input never raises: a
   malformed frame closes the connection with an error (Down event). *)

open Lwt.Infix
module C = Mycelium.Link
module Errc = Mycelium.Errc

type address =
  | Unix_path of string
  | Tcp of string * int  (** host (numeric or name), port; port 0 when listening: any *)

type overflow = Block | Drop_newest | Disconnect

type role = Connect | Listen

type config = {
  name : string;  (** names the link in logs *)
  role : role;
  address : address;
  link : C.config;
  send_queue : int;  (** messages in flight per connection before [overflow] applies *)
  overflow : overflow;
  block_timeout : float;  (** seconds [Block] holds a publisher *)
  reconnect_min : float;
      (** seconds; doubled per failure up to [reconnect_max], plus 0-50 % jitter ([reconnect_delay]) *)
  reconnect_max : float;
  connect_timeout : float;
  ring_capacity : int;  (** shm links, listening side: bytes per ring (a power of two, 64 .. 2^30) *)
  spin : float;
      (** seconds the Lwt loop keeps polling (never sleeping) after the last
          bytes read, like the C++ links' spin_then_block (100 us); 0 blocks
          at once *)
  log : string -> unit;  (** errors and refusals; default: stderr *)
}

let default_config =
  {
    name = "link";
    role = Connect;
    address = Tcp ("127.0.0.1", 0);
    link = { C.default_config with pid = Unix.getpid () };
    send_queue = 4096;
    overflow = Block;
    block_timeout = 0.1;
    reconnect_min = 0.02;
    reconnect_max = 2.0;
    connect_timeout = 2.0;
    spin = 100e-6;
    ring_capacity = 4 lsl 20;
    log = prerr_endline;
  }

let overflow_of_string = function
  | "block" -> Ok Block
  | "drop_newest" -> Ok Drop_newest
  | "disconnect" -> Ok Disconnect
  | s -> Error (Printf.sprintf "unknown overflow policy '%s' (expected block, drop_newest or disconnect)" s)

(** Checks a configuration; [Error] names the field. *)
let validate c =
  if c.send_queue < 1 then Error "send_queue must be at least 1"
  else if c.link.heartbeat_interval <= 0. then Error "heartbeat_interval must be positive"
  else if c.link.peer_timeout <= c.link.heartbeat_interval then
    Error "peer_timeout must be longer than heartbeat_interval"
  else if c.reconnect_min <= 0. || c.reconnect_max < c.reconnect_min then
    Error "reconnect_min must be positive and at most reconnect_max"
  else if c.spin < 0. || c.spin > 1. then Error "spin must be in 0..1 seconds"
  else if c.ring_capacity < 64 || c.ring_capacity > 1 lsl 30 || c.ring_capacity land (c.ring_capacity - 1) <> 0 then
    Error "ring_capacity must be a power of two in 64..1073741824"
  else if c.link.max_payload < 0 || c.link.max_payload > 0xFFFF_FFFF then
    Error "max_payload must be in 0..4294967295"
  else Ok ()

type 'a event =
  | Up of Mycelium.Control.hello  (** a connection finished its handshake (peer's hello) *)
  | Down of C.closed  (** a connection ended; [error] = [None_] for a clean goodbye *)
  | Message of int * 'a  (** type id, value *)
  | Bad_frame of int * Errc.t  (** a data frame dropped (counted) *)
  | Interest of int * bool  (** the peer (un)subscribed a type id *)

(** Data frames handed to a handler as views instead of as [Message]
    events (docs/ocaml.md, "Views"): the [bytes] fields are
    [Mycelium.View.t]s of the bytes where the frame was read (the peer's
    shm ring, or the connection's input buffer), not copies. *)
type 'v views = {
  view_types : int list;  (** the type ids delivered as views; other types stay [Message] events *)
  decode_view : int -> Mycelium.Tlv.reader -> 'v;
      (** the schema module's [View.decode_any_fields] *)
  on_view : 'v -> unit;
      (** runs while the frame is still where it was read, before the ring
          record is released; the views expire when it returns (using one
          later raises [Mycelium.View.Expired]). It may publish. An
          exception it raises is logged and ignored, as for [on_event]. *)
}

type publish_status =
  | Ok_sent  (** queued for every connection whose peer wants the type *)
  | No_subscriber  (** no connected peer wants it *)
  | Back_pressured  (** a connection's queue was full: its copy was refused by the policy *)

type stats = {
  mutable connects : int;  (** connections that finished the handshake *)
  mutable connect_failures : int;
  mutable published : int;
  mutable received : int;
  mutable bad_frames : int;
  mutable dropped_overflow : int;
  mutable back_pressured : int;
  mutable overflow_disconnects : int;
  mutable disconnects : int;  (** established connections that ended (goodbye or loss) *)
  mutable dropped_link_down : int;  (** queued when the connection ended *)
  mutable writes : int;  (** write system calls *)
  mutable frames_too_large : int;  (** messages over max_payload: not sent *)
  mutable ring_frames_out : int;  (** shm links: frames written into our ring *)
  mutable ring_frames_in : int;  (** shm links: frames read from the peer's ring *)
  mutable last_error : string;
}

type 'a conn = {
  core : 'a C.t;
  fd : Lwt_unix.file_descr;
  queue : 'a Queue.t;
  mutable writing : int;  (** messages in the write in progress *)
  mutable spare : Mycelium.Tlv.writer;  (** the output buffer not in use by the core *)
  wake : Wake.t;  (** writer: output or queue changed *)
  closed : unit Lwt.t * unit Lwt.u;  (** resolved once the core is closed (drain_events saw it) *)
  mutable finished : bool;
  done_ : unit Lwt.t * unit Lwt.u;
  mutable last_read : float;
  mutable spinning : bool;
  mutable shm : shm_conn option;  (** shm links, once the segment is attached *)
}

(* The shared-memory side of a connection (docs/wire-protocol.md section 10). *)
and shm_conn = {
  seg : Mycelium_shm.Segment.t;
  rx : Mycelium_shm.Ring.reader;
  tx : Mycelium_shm.Ring.writer;
  bell : Unix.file_descr;  (** our doorbell: an abstract datagram socket *)
  mutable peer_bell : Unix.sockaddr;
  mutable bell_ev : Lwt_engine.event option;
  mutable pending : string;  (** frames not yet in the ring (it was full) *)
  mutable pending_off : int;
  mutable pending_frames : int;
  mutable ring_spinning : bool;
  mutable last_frame : float;
  mutable retry : bool;
  mutable spare_ring : Mycelium.Tlv.writer;
  slot : Mycelium.Tlv.writer;  (** encodes a frame in place into a slot claimed in our ring *)
  mutable unrung : bool;  (** frames written since the last doorbell check *)
}

type 'a t = {
  schema : 'a Mycelium.Schema.t;
  cfg : config;
  on_event : 'a event -> unit;
  interest : (int, unit) Hashtbl.t;
  mutable conns : 'a conn list;
  changed : unit Lwt_condition.t;  (** any state change: up, down, interest, queue space *)
  mutable stopped : bool;
  stop_signal : unit Lwt.t * unit Lwt.u;
  stats : stats;
  mutable bound_port : int;
  mutable runner : unit Lwt.t;
  mutable listen_fd : Lwt_unix.file_descr option;
  mutable in_place : C.in_place option;
      (** the frames handled where they were read: [start ~views], or [start ~in_place] *)
  rng : Random.State.t;  (** the reconnect jitter *)
}

let now () = Unix.gettimeofday ()
let stats t = t.stats
let port t = t.bound_port
let is_up t = List.exists (fun c -> C.is_up c.core) t.conns
let peer_interested t id = List.exists (fun c -> C.is_up c.core && C.peer_interested c.core id) t.conns
let connections t = List.length (List.filter (fun c -> C.is_up c.core) t.conns)

(** The sockets of the connections that are up, for tests and diagnostics
    (e.g. [Unix.getsockopt fd TCP_NODELAY]); they stay the link's. *)
let connection_fds t =
  List.filter_map (fun c -> if C.is_up c.core then Some (Lwt_unix.unix_file_descr c.fd) else None) t.conns

(** The node names (from their hellos) of the connected peers whose
    connection is up, one per connection. *)
let peer_nodes t =
  List.filter_map
    (fun c -> if C.is_up c.core then Option.map (fun (h : Mycelium.Control.hello) -> h.node) (C.peer c.core) else None)
    t.conns

(** Whether a connected peer named [node] (its hello) subscribed to [id]. *)
let node_interested t ~node id =
  List.exists
    (fun c ->
      C.is_up c.core && C.peer_interested c.core id
      && match C.peer c.core with Some h -> h.Mycelium.Control.node = node | None -> false)
    t.conns

let config t = t.cfg

let log t fmt = Printf.ksprintf (fun s -> t.cfg.log (Printf.sprintf "mycelium-ocaml: link %s: %s" t.cfg.name s)) fmt

(* Lwt.async's default hook ends the program on an exception: ours logs it. *)
let async t f =
  Lwt.async (fun () ->
      Lwt.catch f (fun e ->
          if e <> Lwt.Canceled then log t "internal error (ignored): %s" (Printexc.to_string e);
          Lwt.return_unit))

let emit t ev =
  try t.on_event ev
  with e -> log t "event handler raised %s (ignored)" (Printexc.to_string e)

(* The decode + handler of [start ~views]: a decode error escapes (the core
   counts it as a bad frame), the handler's exceptions do not. *)
let view_delivery t v =
  let types = Hashtbl.create 8 in
  List.iter (fun id -> Hashtbl.replace types id ()) v.view_types;
  let deliver id r =
    let x = v.decode_view id r in
    t.stats.received <- t.stats.received + 1;
    try v.on_view x with e -> log t "view handler raised %s (ignored)" (Printexc.to_string e)
  in
  { C.accepts = (fun id -> Hashtbl.mem types id); deliver }

(* The hook of [start ~in_place], counted and guarded as [views] are: a
   decode error escapes (a bad frame), anything else is logged. *)
let guarded_in_place t (ip : C.in_place) =
  let deliver id r =
    match ip.deliver id r with
    | () -> t.stats.received <- t.stats.received + 1
    | exception (Mycelium.Tlv.Decode_error _ as e) -> raise e
    | exception e ->
      t.stats.received <- t.stats.received + 1;
      log t "in-place handler raised %s (ignored)" (Printexc.to_string e)
  in
  { ip with deliver }

module Seg = Mycelium_shm.Segment
module Ring = Mycelium_shm.Ring

let bell_counter = ref 0

(* One byte to the peer's doorbell; a full socket means a wake-up is
   pending anyway. *)
let ring_bell s =
  try ignore (Unix.sendto s.bell (Bytes.make 1 '\001') 0 1 [] s.peer_bell)
  with Unix.Unix_error _ -> ()

let rec drain_bell s =
  let b = Bytes.create 64 in
  match Unix.recv s.bell b 0 64 [] with
  | _ -> drain_bell s
  | exception Unix.Unix_error _ -> ()

(* Polls of an idle ring per Lwt iteration while spinning (poll_turns). *)
let spin_turns = 128

(* Idle Lwt iterations between two sched_yields while spinning: about one
   yield per 64 idle polls, as the C++ loop's spin_step, and at least one
   per iteration (with 128 polls an iteration, one per 128 polls). *)
let spin_yield_every = max 1 (64 / spin_turns)

(* Events of a connection's core, after each input or tick. *)
let rec drain_events t c =
  match C.pop_event c.core with
  | None ->
    (* listening side of a shm link: the handshake just finished *)
    if t.cfg.role = Listen && c.shm = None && C.needs_shm_offer c.core then begin
      offer_shm t c;
      drain_events t c
    end
    else if C.is_closed c.core && Lwt.is_sleeping (fst c.closed) then Lwt.wakeup_later (snd c.closed) ()
  | Some ev ->
    (match ev with
     | C.Established h ->
       t.stats.connects <- t.stats.connects + 1;
       emit t (Up h)
     | C.Message (id, v) ->
       t.stats.received <- t.stats.received + 1;
       emit t (Message (id, v))
     | C.Bad_frame (id, e) ->
       t.stats.bad_frames <- t.stats.bad_frames + 1;
       log t "dropped a data frame of type %d: %s" id (Errc.to_string e);
       emit t (Bad_frame (id, e))
     | C.Peer_subscribed id -> emit t (Interest (id, true))
     | C.Peer_unsubscribed id -> emit t (Interest (id, false))
     | C.Shm_offer (segment, doorbell) -> attach_shm t c segment doorbell
     | C.Shm_answer doorbell -> (
       match c.shm with
       | Some s ->
         s.peer_bell <- Unix.ADDR_UNIX ("\000" ^ doorbell);
         Seg.unlink s.seg.name;
         shm_spin t c s
       | None -> ())
     | C.Closed cl ->
       if C.peer c.core <> None then t.stats.disconnects <- t.stats.disconnects + 1;
       if cl.error <> Errc.None_ then begin
         t.stats.last_error <- cl.text;
         log t "%s" cl.text
       end;
       emit t (Down cl));
    (* state changes only: a message changes nothing anybody awaits *)
    (match ev with C.Message _ | C.Bad_frame _ -> () | _ -> Lwt_condition.broadcast t.changed ());
    drain_events t c

(* Our doorbell: an abstract datagram socket, readable when the peer rings. *)
and make_bell t c s_ref =
  incr bell_counter;
  let name = Printf.sprintf "mycelium-bell-%d-%d" (Unix.getpid ()) !bell_counter in
  let fd = Unix.socket ~cloexec:true Unix.PF_UNIX Unix.SOCK_DGRAM 0 in
  (try
     Unix.set_nonblock fd;
     Unix.bind fd (Unix.ADDR_UNIX ("\000" ^ name))
   with e -> Unix.close fd; raise e);
  let ev =
    Lwt_engine.on_readable fd (fun _ ->
        match !s_ref with
        | None -> ()
        | Some s -> (
          try
            drain_bell s;
            shm_spin t c s
          with ex ->
            C.abort c.core Errc.Io_failed
              (Printf.sprintf "internal error on the doorbell: %s" (Printexc.to_string ex));
            drain_events t c;
            Wake.signal c.wake))
  in
  (name, fd, ev)

(* Listening side of a shm link: the handshake is done; create the segment
   (section 10.1 step 1), offer it with our doorbell. *)
and offer_shm t c =
  let seq = (incr bell_counter; !bell_counter) in
  let name = Printf.sprintf "mycelium-%d-%d-%d" (Unix.getpid ()) seq (Random.int 1000000) in
  match Seg.create ~name ~capacity:t.cfg.ring_capacity ~digest:t.schema.digest ~pid:(Unix.getpid ()) with
  | exception Unix.Unix_error (e, fn, _) ->
    C.abort c.core Errc.Io_failed
      (Printf.sprintf "cannot create the shared-memory segment %s: %s failed: %s" name fn (Unix.error_message e))
  | seg -> (
    let s_ref = ref None in
    match make_bell t c s_ref with
    | exception Unix.Unix_error (e, _, _) ->
      Seg.unlink name;
      C.abort c.core Errc.Io_failed (Printf.sprintf "cannot create a doorbell: %s" (Unix.error_message e))
    | bell_name, fd, ev ->
      let s =
        { seg; rx = Ring.reader seg; tx = Ring.writer seg; bell = fd;
          peer_bell = Unix.ADDR_UNIX "\000"; bell_ev = Some ev; pending = ""; pending_off = 0;
          pending_frames = 0; ring_spinning = false; last_frame = now (); retry = false;
          spare_ring = Mycelium.Tlv.writer ~size:4096 (); slot = Mycelium.Tlv.big_writer ();
          unrung = false }
      in
      s_ref := Some s;
      c.shm <- Some s;
      C.shm_offer c.core ~now:(now ()) ~segment:name ~doorbell:bell_name;
      Wake.signal c.wake)

(* The peer offered its segment: map and check it, make our doorbell,
   answer (Link.shm_accept), then read what the creator already wrote. *)
and attach_shm t c segment doorbell =
  match Seg.attach ~name:segment ~digest:t.schema.digest ~pid:(Unix.getpid ()) with
  | Error (code, text) -> C.abort c.core code text
  | Ok seg -> (
    incr bell_counter;
    let name = Printf.sprintf "mycelium-bell-%d-%d" (Unix.getpid ()) !bell_counter in
    match
      let fd = Unix.socket ~cloexec:true Unix.PF_UNIX Unix.SOCK_DGRAM 0 in
      (try
         Unix.set_nonblock fd;
         Unix.bind fd (Unix.ADDR_UNIX ("\000" ^ name))
       with e -> Unix.close fd; raise e);
      fd
    with
    | exception Unix.Unix_error (e, _, _) ->
      Seg.close seg;
      C.abort c.core Errc.Io_failed
        (Printf.sprintf "cannot create the doorbell %s: %s" name (Unix.error_message e))
    | fd ->
      let s =
        { seg; rx = Ring.reader seg; tx = Ring.writer seg; bell = fd;
          peer_bell = Unix.ADDR_UNIX ("\000" ^ doorbell); bell_ev = None; pending = "";
          pending_off = 0; pending_frames = 0; ring_spinning = false; last_frame = now ();
          retry = false; spare_ring = Mycelium.Tlv.writer ~size:4096 (); slot = Mycelium.Tlv.big_writer ();
          unrung = false }
      in
      c.shm <- Some s;
      s.bell_ev <-
        Some
          (Lwt_engine.on_readable fd (fun _ ->
               try
                 drain_bell s;
                 shm_spin t c s
               with ex ->
                 C.abort c.core Errc.Io_failed
                   (Printf.sprintf "internal error on the doorbell: %s" (Printexc.to_string ex));
                 drain_events t c;
                 Wake.signal c.wake));
      C.shm_accept c.core ~now:(now ()) ~segment ~doorbell:name;
      Wake.signal c.wake;
      shm_spin t c s)

(* Handles every frame in the peer's ring; returns how many. *)
and poll_ring t c s =
  let rec go n =
    (* not before the peer attached: its ring is not ours to read yet *)
    if C.is_closed c.core || not (C.is_up c.core) then n
    else
      match Ring.peek s.rx with
      | Ring.Empty -> n
      | Ring.Bad text ->
        C.abort c.core Errc.Protocol_violation
          (Printf.sprintf "%s; last good ring sequence %Ld" text (C.ring_rx_seq c.core));
        n
      | Ring.Frame (pos, len) ->
        (* decoded in place, straight from the mapping: the decoder's copy
           of a string or bytes field is the only one; the record is
           released once the message is decoded *)
        t.stats.ring_frames_in <- t.stats.ring_frames_in + 1;
        C.receive_ring_frame_big c.core ~now:(now ()) s.seg.map pos len;
        Ring.release s.rx len;
        go (n + 1)
  in
  let n = go 0 in
  if n > 0 || C.is_closed c.core then begin
    drain_events t c;
    (* ring frames make no output; a close lets the writer finish *)
    if C.is_closed c.core || C.pending_output c.core > 0 then Wake.signal c.wake
  end;
  n

(* Up to [turns] polls of the ring in a row, until one finds frames (then
   the Lwt loop runs their handlers' continuations and the writer): one
   Lwt iteration, whose epoll_wait is a system call, per [turns] polls
   while the ring is idle, as the C++ I/O loop polls its sockets every 32
   turns of its pollers. Returns the frames handled. *)
and poll_turns t c s turns =
  let n = poll_ring t c s in
  if n > 0 || turns <= 1 || C.is_closed c.core then n
  else begin
    Mycelium_shm.Atomics.cpu_relax ();
    poll_turns t c s (turns - 1)
  end

(* Polls the ring until [spin] passed without a frame, then announces that
   it sleeps (consumer_sleeping, section 10.4): the doorbell wakes it. *)
and shm_spin t c s =
  if not s.ring_spinning then begin
    s.ring_spinning <- true;
    Ring.end_sleep s.rx;
    s.last_frame <- now ();
    let idle = ref 0 in
    let delivered = ref false in
    let rec loop () =
      if C.is_closed c.core then begin
        s.ring_spinning <- false;
        Lwt.return_unit
      end
      else begin
        (* Right after frames, one poll only: the pool services they went
           to pause before their handlers, and those pauses come after
           ours in the next Lwt iteration; a full spin first would delay
           them by its length. *)
        let n = poll_turns t c s (if !delivered then 1 else spin_turns) in
        delivered := n > 0;
        if n > 0 then s.last_frame <- now ()
        else begin
          (* every spin_yield_every idle iterations, as the C++ loop's spin
             (spin_step): a process woken on this CPU (the peer our frame
             woke) runs now, not when the spin ends *)
          incr idle;
          if !idle mod spin_yield_every = 0 then Mycelium_shm.Atomics.sched_yield ()
        end;
        if now () -. s.last_frame > t.cfg.spin then
          if Ring.prepare_sleep s.rx then begin
            Ring.end_sleep s.rx;
            s.last_frame <- now ();
            Lwt.pause () >>= loop
          end
          else begin
            s.ring_spinning <- false;
            Lwt.return_unit
          end
        else Lwt.pause () >>= loop
      end
    in
    async t loop
  end

(* Moves the core's ring output into our ring, frame by frame; what does not
   fit waits in [pending] and is retried shortly. *)
let flush_ring t c s =
  let wrote = ref 0 in
  (* frames from [b] at [off] up to [stop] into the ring; returns where it
     stopped (at [stop] when everything fitted) *)
  let rec put b off stop =
    if off >= stop || C.is_closed c.core then off
    else
      let len = Mycelium.Frame.header_size + Mycelium.Frame.u32 (Bytes.unsafe_to_string b) off in
      match Ring.write s.tx b off len with
      | Ring.Written ->
        incr wrote;
        t.stats.ring_frames_out <- t.stats.ring_frames_out + 1;
        put b (off + len) stop
      | Ring.Too_large ->
        t.stats.frames_too_large <- t.stats.frames_too_large + 1;
        log t "not sent: a frame of %d bytes is over the ring's max_frame %d" len s.seg.max_frame;
        put b (off + len) stop
      | Ring.Full -> off
      | Ring.Corrupt text ->
        C.abort c.core Errc.Protocol_violation text;
        drain_events t c;
        stop
  in
  let count str off =
    let rec go off n = if off >= String.length str then n else go (off + 24 + Mycelium.Frame.u32 str off) (n + 1) in
    go off 0
  in
  (* older frames first *)
  if s.pending_off < String.length s.pending then begin
    let stop = String.length s.pending in
    s.pending_off <- put (Bytes.unsafe_of_string s.pending) s.pending_off stop;
    if s.pending_off >= stop then begin s.pending <- ""; s.pending_off <- 0 end
  end;
  if C.pending_ring_output c.core > 0 then begin
    let w = C.swap_ring_output c.core s.spare_ring in
    let b = Mycelium.Tlv.bytes w and stop = Mycelium.Tlv.length w in
    s.spare_ring <- w;
    if s.pending = "" then begin
      (* the common case: straight from the core's buffer into the ring *)
      let off = put b 0 stop in
      if off < stop then begin
        s.pending <- Bytes.sub_string b off (stop - off);
        s.pending_off <- 0
      end
    end
    else begin
      (* behind older frames that still wait for room *)
      s.pending <- String.sub s.pending s.pending_off (String.length s.pending - s.pending_off) ^ Bytes.sub_string b 0 stop;
      s.pending_off <- 0
    end
  end;
  s.pending_frames <- (if s.pending = "" then 0 else count s.pending s.pending_off);
  if s.pending <> "" && not s.retry then begin
    s.retry <- true;
    async t (fun () ->
        Lwt_unix.sleep 0.0002 >|= fun () ->
        s.retry <- false;
        Wake.signal c.wake)
  end;
  if !wrote > 0 then s.unrung <- true

(* After frames went into our ring: the doorbell if the peer sleeps. *)
let wake_peer s =
  if s.unrung then begin
    s.unrung <- false;
    if Ring.consumer_sleeping s.tx then ring_bell s
  end

(* A message that [C.send] could not frame. *)
let not_sent t x = function
  | C.Sent -> ()
  | C.Too_large ->
    t.stats.frames_too_large <- t.stats.frames_too_large + 1;
    log t "not sent: a %s message over max_payload %d bytes"
      (Mycelium.Schema.type_name t.schema (t.schema.type_id_of x)) t.cfg.link.max_payload
  | C.Not_interested | C.Not_up -> t.stats.dropped_link_down <- t.stats.dropped_link_down + 1

(* shm links: [x] encoded straight into a slot claimed in our ring (no
   copy of the frame); false when it has to take the way through the core's
   ring output (earlier frames still wait there, the ring is full, or the
   frame is longer than the run up to the ring's end), as the C++ shm
   channel's fast and slow paths. *)
let place t c s x =
  s.pending = "" && C.pending_ring_output c.core = 0
  &&
  match Ring.claim s.tx ~min_n:Mycelium.Frame.header_size with
  | Ring.Claim_full -> false
  | Ring.Claim_corrupt text ->
    C.abort c.core Errc.Protocol_violation text;
    drain_events t c;
    true
  | Ring.Claimed -> (
    Mycelium.Tlv.target s.slot s.seg.map ~off:(Ring.slot s.tx) ~cap:(Ring.granted s.tx);
    match C.send_in_place c.core s.slot x with
    | C.Placed ->
      Ring.commit s.tx (Mycelium.Tlv.length s.slot);
      t.stats.ring_frames_out <- t.stats.ring_frames_out + 1;
      s.unrung <- true;
      true
    | C.Does_not_fit -> false
    | C.Refused r -> not_sent t x r; true)

(* Writes all of [len] bytes: the non-blocking write first (no readiness
   check: one system call when the kernel takes it all), waiting for
   writability only when the socket is full. *)
let rec write_all fd b off len =
  if len = 0 then Lwt.return_unit
  else
    match Unix.single_write (Lwt_unix.unix_file_descr fd) b off len with
    | n -> write_all fd b (off + n) (len - n)
    | exception Unix.Unix_error ((Unix.EAGAIN | Unix.EWOULDBLOCK | Unix.EINTR), _, _) ->
      Lwt_unix.wait_write fd >>= fun () -> write_all fd b off len

(* Messages of a shm connection that wait for room in the ring. *)
let ring_pending c = match c.shm with Some s -> s.pending_frames | None -> 0

(* The writer of one connection: moves queued messages into the core (which
   frames them), then writes everything pending in one go. *)
let rec writer t c =
  if not (C.is_closed c.core) then begin
    let n = Queue.length c.queue in
    let tm = now () in
    let send x = not_sent t x (C.send c.core ~now:tm x) in
    (match c.shm with
     | Some s when n > 0 && C.is_up c.core ->
       (* frames framed before (interest, or waiting for room) go first *)
       flush_ring t c s;
       Queue.iter (fun x -> if not (C.is_closed c.core || place t c s x) then send x) c.queue
     | Some _ | None -> Queue.iter send c.queue);
    Queue.clear c.queue;
    c.writing <- n;
    match c.shm with
    | Some s ->
      flush_ring t c s;
      wake_peer s;
      c.writing <- s.pending_frames;
      if s.pending_frames = 0 then Lwt_condition.broadcast t.changed ()
    | None -> ()
  end;
  if C.pending_output c.core > 0 then begin
    (* write from the core's buffer, which meanwhile gets the spare one *)
    let w = C.swap_output c.core c.spare in
    t.stats.writes <- t.stats.writes + 1;
    write_all c.fd (Mycelium.Tlv.bytes w) 0 (Mycelium.Tlv.length w) >>= fun () ->
    c.spare <- w;
    c.writing <- ring_pending c;
    Lwt_condition.broadcast t.changed ();
    writer t c
  end
  else begin
    c.writing <- ring_pending c;
    if C.is_closed c.core then Lwt.return_unit
    else Wake.wait c.wake >>= fun () -> writer t c
  end

(* The reader of one connection: a libev watcher for the connection's
   lifetime; each time the socket is readable, one non-blocking read straight
   into the core's input buffer, then the frames are handled. (No Lwt_unix.read:
   it polls for readiness before every read.) Resolves when the connection
   ends (EOF, a read error, or the core closed). *)
(* spin_then_block: after bytes were read, keep the Lwt loop polling (each
   Lwt.pause makes the next iteration's epoll_wait non-blocking) until
   [spin] seconds passed without a read, so that an answer arriving within
   the spin does not pay a wake-up. *)
let spin_after_read t c =
  if t.cfg.spin > 0. && not c.spinning then begin
    c.spinning <- true;
    let turns = ref 0 in
    let rec loop () =
      if C.is_closed c.core || now () -. c.last_read > t.cfg.spin then begin
        c.spinning <- false;
        Lwt.return_unit
      end
      else begin
        (* yields now and then, as shm_spin does *)
        incr turns;
        if !turns land 1 = 0 then Mycelium_shm.Atomics.sched_yield ();
        Lwt.pause () >>= loop
      end
    in
    async t loop
  end

let reader t c =
  let p, u = Lwt.task () in
  let fd = Lwt_unix.unix_file_descr c.fd in
  let ev = ref None in
  let finish () =
    (match !ev with Some e -> Lwt_engine.stop_event e; ev := None | None -> ());
    if Lwt.is_sleeping p then Lwt.wakeup_later u ()
  in
  let lost text =
    C.connection_lost c.core text;
    drain_events t c;
    Wake.signal c.wake;
    finish ()
  in
  let on_readable _ =
    if C.is_closed c.core then finish ()
    else
      let buf, off, free = C.read_buffer c.core 65536 in
      match Unix.read fd buf off free with
      | 0 -> lost "the peer closed the connection"
      | n ->
        let tm = now () in
        c.last_read <- tm;
        C.commit_read c.core ~now:tm n;
        drain_events t c;
        Wake.signal c.wake;
        if C.is_closed c.core then finish () else spin_after_read t c
      | exception Unix.Unix_error ((Unix.EAGAIN | Unix.EWOULDBLOCK | Unix.EINTR), _, _) -> ()
      | exception Unix.Unix_error (err, fn, _) ->
        lost (Printf.sprintf "%s failed: %s" fn (Unix.error_message err))
  in
  (* an exception must not leave a libev callback (it would end
     Lwt_main.run): it closes this connection instead *)
  let guarded e =
    try on_readable e
    with ex -> lost (Printf.sprintf "internal error while reading: %s" (Printexc.to_string ex))
  in
  ev := Some (Lwt_engine.on_readable fd guarded);
  Lwt.on_cancel p finish;
  p

let ticker t c =
  let period = min t.cfg.link.heartbeat_interval (t.cfg.link.peer_timeout /. 4.) in
  let rec loop () =
    Lwt.pick [ Lwt_unix.sleep period; fst c.done_ ] >>= fun () ->
    if C.is_closed c.core then Lwt.return_unit
    else begin
      (match c.shm with
       | Some s when C.is_up c.core ->
         Seg.beat s.seg;
         if not (Seg.peer_alive s.seg) then
           C.abort c.core Errc.Peer_lost
             (Printf.sprintf "the peer's process %d no longer exists (segment %s)" (Seg.peer_pid s.seg) s.seg.name)
         else ignore (poll_ring t c s)
       | Some _ | None -> ());
      C.tick c.core ~now:(now ());
      drain_events t c;
      Wake.signal c.wake;
      loop ()
    end
  in
  loop ()

let finish t c =
  if not c.finished then begin
    c.finished <- true;
    (match c.shm with
     | Some s ->
       (* frames written before a goodbye or a crash still count *)
       (try
          let rec drain () =
            match Ring.peek s.rx with
            | Ring.Frame (pos, len) ->
              let b = Ring.copy_out s.rx pos len in
              Ring.release s.rx len;
              (match Mycelium.Frame.read_header ~max_payload:max_int (Bytes.unsafe_to_string b) with
               | Ok h when (not (Mycelium.Frame.is_control h))
                           && (match t.in_place with Some ip -> ip.accepts h.type_id | None -> false) -> (
                 (* views of the record's copy, expired after the handler as on the ring *)
                 let scope = Mycelium.View.new_scope () in
                 let r =
                   Mycelium.Tlv.reader ~scope ~off:Mycelium.Frame.header_size ~len:h.payload_length
                     (Bytes.unsafe_to_string b)
                 in
                 match Option.iter (fun (ip : C.in_place) -> ip.deliver h.type_id r) t.in_place with
                 | () -> Mycelium.View.expire scope
                 | exception Mycelium.Tlv.Decode_error _ ->
                   Mycelium.View.expire scope;
                   t.stats.bad_frames <- t.stats.bad_frames + 1)
               | Ok h when not (Mycelium.Frame.is_control h) -> (
                 match
                   Mycelium.Tlv.decode_with (t.schema.decode_fields h.type_id) ~off:Mycelium.Frame.header_size
                     ~len:h.payload_length (Bytes.unsafe_to_string b)
                 with
                 | Ok v -> t.stats.received <- t.stats.received + 1; emit t (Message (h.type_id, v))
                 | Error _ -> t.stats.bad_frames <- t.stats.bad_frames + 1)
               | _ -> ());
              drain ()
            | Ring.Empty | Ring.Bad _ -> ()
          in
          drain ()
        with _ -> ());
       Seg.close s.seg;
       if s.seg.side = 0 then Seg.unlink s.seg.name; (* the peer may never have attached *)
       (match s.bell_ev with Some e -> Lwt_engine.stop_event e | None -> ());
       (try Unix.close s.bell with Unix.Unix_error _ -> ());
       c.shm <- None
     | None -> ());
    let lost = Queue.length c.queue + c.writing in
    t.stats.dropped_link_down <- t.stats.dropped_link_down + lost;
    Queue.clear c.queue;
    t.conns <- List.filter (fun x -> x != c) t.conns;
    Lwt.wakeup_later (snd c.done_) ();
    Lwt_condition.broadcast t.changed ()
  end

(* Runs one connection to its end; true if it got established. *)
let run_connection t fd =
  let core =
    C.create ~schema:t.schema ~config:t.cfg.link ~nonce:(Mycelium.Auth.fresh_nonce ())
      ~now:(now ())
      ~interest:(Hashtbl.fold (fun id () acc -> id :: acc) t.interest [])
      ()
  in
  let c =
    { core; fd; queue = Queue.create (); writing = 0; spare = Mycelium.Tlv.writer ~size:4096 ();
      wake = Wake.create (); closed = Lwt.wait ();
      finished = false; done_ = Lwt.wait (); last_read = 0.; spinning = false; shm = None }
  in
  (match t.in_place with
   | None -> ()
   | Some ip ->
     (* the events of earlier frames reach on_event first, in order *)
     C.set_in_place core (Some { ip with deliver = (fun id r -> drain_events t c; ip.deliver id r) }));
  t.conns <- c :: t.conns;
  let was_up = ref false in
  let watch_up () =
    let rec loop () =
      if C.is_up core then (was_up := true; Lwt.return_unit)
      else if C.is_closed core then Lwt.return_unit
      else Lwt_condition.wait t.changed >>= loop
    in
    loop ()
  in
  let guard name f =
    Lwt.catch f (fun e ->
        (match e with
         | Unix.Unix_error (err, fn, _) ->
           C.connection_lost core (Printf.sprintf "%s failed: %s" fn (Unix.error_message err))
         | Lwt.Canceled -> ()
         | e -> C.connection_lost core (Printf.sprintf "%s: %s" name (Printexc.to_string e)));
        drain_events t c;
        Lwt.return_unit)
  in
  let r = guard "reader" (fun () -> reader t c) in
  let w = guard "writer" (fun () -> writer t c) in
  let k = guard "ticker" (fun () -> ticker t c) in
  let stopper = fst t.stop_signal >>= fun () -> C.close core ~now:(now ()); drain_events t c; Wake.signal c.wake; Lwt.return_unit in
  async t (fun () -> watch_up ());
  (* the connection ends when the core is closed and its last output is out *)
  Lwt.pick [ fst c.closed; (r >>= fun () -> Lwt.return_unit) ] >>= fun () ->
  drain_events t c;
  Wake.signal c.wake;
  (* let the writer flush a refusal or goodbye, bounded in time *)
  Lwt.pick [ w; Lwt_unix.sleep 1.0 ] >>= fun () ->
  Lwt.cancel r;
  Lwt.cancel k;
  Lwt.cancel stopper;
  finish t c;
  Lwt.catch (fun () -> Lwt_unix.close fd) (fun _ -> Lwt.return_unit) >>= fun () ->
  Lwt.return !was_up

(* -- sockets --------------------------------------------------------------------------- *)

let sockaddr_of = function
  | Unix_path p -> Lwt.return (Unix.ADDR_UNIX p, Unix.PF_UNIX)
  | Tcp (host, port) ->
    (match Unix.inet_addr_of_string host with
     | a -> Lwt.return (Unix.ADDR_INET (a, port), Unix.PF_INET)
     | exception Failure _ ->
       Lwt_unix.gethostbyname host >>= fun h ->
       if Array.length h.Unix.h_addr_list = 0 then
         Lwt.fail (Failure (Printf.sprintf "host '%s' has no address" host))
       else Lwt.return (Unix.ADDR_INET (h.Unix.h_addr_list.(0), port), Unix.PF_INET))

let describe = function
  | Unix_path p -> Printf.sprintf "unix:%s" p
  | Tcp (h, p) -> Printf.sprintf "tcp:%s:%d" h p

let nodelay fd = function
  | Tcp _ -> Lwt_unix.setsockopt fd Unix.TCP_NODELAY true
  | Unix_path _ -> ()

let open_connection cfg =
  sockaddr_of cfg.address >>= fun (addr, dom) ->
  let fd = Lwt_unix.socket dom Unix.SOCK_STREAM 0 in
  Lwt.catch
    (fun () ->
      Lwt.pick
        [ Lwt_unix.connect fd addr;
          (Lwt_unix.sleep cfg.connect_timeout >>= fun () ->
           Lwt.fail (Unix.Unix_error (Unix.ETIMEDOUT, "connect", describe cfg.address))) ]
      >>= fun () ->
      nodelay fd cfg.address;
      Lwt.return fd)
    (fun e -> Lwt.catch (fun () -> Lwt_unix.close fd) (fun _ -> Lwt.return_unit) >>= fun () -> Lwt.fail e)

(** The wait before retry [attempt] of a connecting link (1: the first
    after a failure, or after a connection that got established; one more
    per failure in a row since): [reconnect_min] doubled per earlier
    failure, at most [reconnect_max], times 1 to 1.5 of jitter drawn from
    [rng] (as the C++ connector), so never over 1.5 x [reconnect_max]. *)
let reconnect_delay cfg rng ~attempt =
  let base = Float.min (cfg.reconnect_min *. (2. ** float_of_int (max 0 (attempt - 1)))) cfg.reconnect_max in
  base *. (1. +. Random.State.float rng 0.5)

let sleep_or_stop t d = Lwt.pick [ Lwt_unix.sleep d; fst t.stop_signal ]

(* [attempt]: see [reconnect_delay]; past 64 the wait is at its maximum anyway *)
let rec connect_loop t attempt =
  let next = min (attempt + 1) 64 in
  if t.stopped then Lwt.return_unit
  else
    Lwt.try_bind
      (fun () -> open_connection t.cfg)
      (fun fd ->
        run_connection t fd >>= fun was_up ->
        let attempt = if was_up then 1 else attempt in
        if t.stopped then Lwt.return_unit
        else sleep_or_stop t (reconnect_delay t.cfg t.rng ~attempt) >>= fun () ->
          connect_loop t (if was_up then 1 else next))
      (fun e ->
        t.stats.connect_failures <- t.stats.connect_failures + 1;
        t.stats.last_error <-
          (match e with
           | Unix.Unix_error (err, fn, _) ->
             Printf.sprintf "%s %s failed: %s" fn (describe t.cfg.address) (Unix.error_message err)
           | e -> Printexc.to_string e);
        sleep_or_stop t (reconnect_delay t.cfg t.rng ~attempt) >>= fun () -> connect_loop t next)

(* A Unix socket path in use by a live process is refused; a stale file
   (nobody accepts on it) is removed. *)
let prepare_unix_path p =
  if not (Sys.file_exists p) then Lwt.return (Ok ())
  else
    let fd = Lwt_unix.socket Unix.PF_UNIX Unix.SOCK_STREAM 0 in
    Lwt.catch
      (fun () -> Lwt_unix.connect fd (Unix.ADDR_UNIX p) >>= fun () -> Lwt.return true)
      (fun _ -> Lwt.return false)
    >>= fun live ->
    Lwt_unix.close fd >>= fun () ->
    if live then
      Lwt.return
        (Error
           (Printf.sprintf "address_in_use: a live process serves the Unix socket %s; stop it or pick another path" p))
    else (Unix.unlink p; Lwt.return (Ok ()))

let listen t =
  (match t.cfg.address with Unix_path p -> prepare_unix_path p | Tcp _ -> Lwt.return (Ok ()))
  >>= function
  | Error e -> Lwt.return (Error e)
  | Ok () ->
    sockaddr_of t.cfg.address >>= fun (addr, dom) ->
    let fd = Lwt_unix.socket dom Unix.SOCK_STREAM 0 in
    (match t.cfg.address with Tcp _ -> Lwt_unix.setsockopt fd Unix.SO_REUSEADDR true | _ -> ());
    Lwt.catch
      (fun () ->
        Lwt_unix.bind fd addr >>= fun () ->
        Lwt_unix.listen fd 64;
        (match Lwt_unix.getsockname fd with
         | Unix.ADDR_INET (_, p) -> t.bound_port <- p
         | _ -> ());
        t.listen_fd <- Some fd;
        let rec accept_loop () =
          Lwt.pick [ (Lwt_unix.accept fd >|= fun x -> Some x); (fst t.stop_signal >|= fun () -> None) ]
          >>= function
          | None -> Lwt.return_unit
          | Some (cfd, _) ->
            nodelay cfd t.cfg.address;
            async t (fun () -> run_connection t cfd >|= ignore);
            accept_loop ()
        in
        t.runner <-
          Lwt.catch accept_loop (fun e ->
              if not t.stopped then log t "accept failed: %s" (Printexc.to_string e);
              Lwt.return_unit);
        Lwt.return (Ok ()))
      (fun e ->
        Lwt_unix.close fd >>= fun () ->
        Lwt.return
          (Error
             (match e with
              | Unix.Unix_error (Unix.EADDRINUSE, _, _) ->
                Printf.sprintf "address_in_use: %s is in use" (describe t.cfg.address)
              | Unix.Unix_error (err, fn, _) ->
                Printf.sprintf "io_failed: %s %s: %s" fn (describe t.cfg.address) (Unix.error_message err)
              | e -> Printexc.to_string e)))

(** Starts a link: connects (and keeps reconnecting) or listens. [interest]
    is the initial set of type ids this side subscribes to. [Error] names
    what is wrong with the configuration or the address.

    [in_place] is the hook under [views], for [Service]: [accepts id] is
    asked for every data frame (so the set of types may change while the
    link runs); [deliver id r] decodes the payload from [r] (a
    [Tlv.Decode_error] it raises is a bad frame, counted) and handles it
    before the frame is released; anything else it raises is logged and
    ignored. Views made in [r]'s scope expire when it returns. At most one
    of [views] and [in_place]. *)
let start ?(interest = []) ~schema ?(on_event = fun _ -> ()) ?views ?in_place cfg =
  let bad_view_type =
    match views with
    | Some v -> List.find_opt (fun id -> not (Mycelium.Schema.has_type schema id)) v.view_types
    | None -> None
  in
  match validate cfg with
  | Error e -> Lwt.return (Error ("config_invalid: link " ^ cfg.name ^ ": " ^ e))
  | Ok () when Option.is_some views && Option.is_some in_place ->
    Lwt.return (Error ("config_invalid: link " ^ cfg.name ^ ": views and in_place exclude each other"))
  | Ok () when bad_view_type <> None ->
    Lwt.return
      (Error
         (Printf.sprintf "config_invalid: link %s: views: type id %d is not a message type of schema %s" cfg.name
            (Option.get bad_view_type) schema.Mycelium.Schema.package))
  | Ok () ->
    let t =
      {
        schema; cfg; on_event; interest = Hashtbl.create 16; conns = [];
        changed = Lwt_condition.create (); stopped = false; stop_signal = Lwt.wait ();
        stats =
          { connects = 0; connect_failures = 0; published = 0; received = 0; bad_frames = 0;
            dropped_overflow = 0; back_pressured = 0; overflow_disconnects = 0; disconnects = 0;
            dropped_link_down = 0; writes = 0; frames_too_large = 0; ring_frames_out = 0; ring_frames_in = 0; last_error = "" };
        bound_port = (match cfg.address with Tcp (_, p) -> p | _ -> 0);
        runner = Lwt.return_unit; listen_fd = None; in_place = None; rng = Random.State.make_self_init ();
      }
    in
    (match (views, in_place) with
     | Some v, _ -> t.in_place <- Some (view_delivery t v)
     | None, Some ip -> t.in_place <- Some (guarded_in_place t ip)
     | None, None -> ());
    List.iter (fun id -> Hashtbl.replace t.interest id ()) interest;
    if cfg.link.shm then
      List.iter (fun n -> log t "removed the stale shared-memory segment %s" n) (Seg.remove_stale ());
    match cfg.role with
    | Connect ->
      t.runner <- connect_loop t 1;
      Lwt.return (Ok t)
    | Listen -> listen t >|= (function Ok () -> Ok t | Error e -> Error e)

(* -- publishing and interest ---------------------------------------------------------- *)

let in_flight c = Queue.length c.queue + c.writing

let rec admit t c x deadline =
  if C.is_closed c.core then Lwt.return false
  else if in_flight c < t.cfg.send_queue then begin
    Queue.push x c.queue;
    Wake.signal c.wake;
    Lwt.return true
  end
  else
    match t.cfg.overflow with
    | Drop_newest ->
      t.stats.dropped_overflow <- t.stats.dropped_overflow + 1;
      Lwt.return false
    | Disconnect ->
      t.stats.dropped_overflow <- t.stats.dropped_overflow + 1;
      t.stats.overflow_disconnects <- t.stats.overflow_disconnects + 1;
      let text = Printf.sprintf "send queue of %d messages full: peer disconnected (overflow policy disconnect)" t.cfg.send_queue in
      C.abort c.core Errc.Link_overflow text;
      drain_events t c;
      Wake.signal c.wake;
      Lwt.return false
    | Block ->
      let left = deadline -. now () in
      if left <= 0. then Lwt.return false
      else
        Lwt.pick [ (Lwt_condition.wait t.changed >|= fun () -> true); (Lwt_unix.sleep left >|= fun () -> false) ]
        >>= fun _ -> admit t c x deadline

(** Messages in flight (queued or being written) over every connection. *)
let queued t = List.fold_left (fun acc c -> acc + in_flight c) 0 t.conns

let ok_sent = Lwt.return Ok_sent
let no_subscriber = Lwt.return No_subscriber

(* Without waiting: a shm connection with nothing queued before [x] takes
   it straight into its ring (encoded in place, the peer's doorbell rung if
   it sleeps), as a C++ loop service writes from the publishing thread; else
   it is queued for the writer if the queue has room. false: the queue is
   full ([admit] applies the overflow policy). *)
let send_now t c x =
  let direct =
    Queue.is_empty c.queue && c.writing = 0 && (not (C.is_closed c.core))
    && match c.shm with
       | Some s when place t c s x -> wake_peer s; true
       | Some _ | None -> false
  in
  direct
  || (in_flight c < t.cfg.send_queue && not (C.is_closed c.core))
     && begin
       Queue.push x c.queue;
       Wake.signal c.wake;
       true
     end

(** Sends [x] to every connected peer that subscribed to its type. *)
let publish t x =
  let id = t.schema.type_id_of x in
  (* the connections that took it at once; those whose queue is full *)
  let rec go conns any full =
    match conns with
    | [] -> (any, full)
    | c :: rest ->
      if C.is_up c.core && C.peer_interested c.core id then
        if send_now t c x then go rest true full else go rest true (c :: full)
      else go rest any full
  in
  match go t.conns false [] with
  | false, _ -> no_subscriber
  | true, [] ->
    t.stats.published <- t.stats.published + 1;
    ok_sent
  | true, full ->
    t.stats.published <- t.stats.published + 1;
    let deadline = now () +. t.cfg.block_timeout in
    Lwt_list.map_s (fun c -> admit t c x deadline) (List.rev full) >|= fun results ->
    if List.for_all (fun ok -> ok) results then Ok_sent
    else begin
      t.stats.back_pressured <- t.stats.back_pressured + 1;
      Back_pressured
    end

(** The type ids this side announces to its peers. *)
let interest t = Hashtbl.fold (fun id () acc -> id :: acc) t.interest []

(** The union of what the connected peers subscribed to. *)
let peer_interest t =
  let h = Hashtbl.create 16 in
  List.iter
    (fun c ->
      if C.is_up c.core then
        List.iter (fun (ty : Mycelium.Schema.type_info) ->
            if C.peer_interested c.core ty.type_id then Hashtbl.replace h ty.type_id ())
          t.schema.types)
    t.conns;
  Hashtbl.fold (fun id () acc -> id :: acc) h []

let subscribe t id =
  if not (Hashtbl.mem t.interest id) then begin
    Hashtbl.replace t.interest id ();
    List.iter (fun c -> C.subscribe c.core ~now:(now ()) id; Wake.signal c.wake) t.conns
  end

let unsubscribe t id =
  if Hashtbl.mem t.interest id then begin
    Hashtbl.remove t.interest id;
    List.iter (fun c -> C.unsubscribe c.core ~now:(now ()) id; Wake.signal c.wake) t.conns
  end

(** Waits until [cond ()] holds, re-checking on every state change; false
    after [timeout] seconds. *)
let await t ~timeout cond =
  let deadline = now () +. timeout in
  let rec loop () =
    if cond () then Lwt.return true
    else
      let left = deadline -. now () in
      if left <= 0. then Lwt.return false
      else
        Lwt.pick [ (Lwt_condition.wait t.changed >|= fun () -> `Changed); (Lwt_unix.sleep left >|= fun () -> `Timeout) ]
        >>= function `Changed -> loop () | `Timeout -> Lwt.return (cond ())
  in
  loop ()

let await_up t ~timeout = await t ~timeout (fun () -> is_up t)
let await_peer_interest t id ~timeout = await t ~timeout (fun () -> peer_interested t id)

(** Stops: a goodbye on every established connection, no more reconnects;
    removes a Unix socket file it created. *)
let stop t =
  if t.stopped then Lwt.return_unit
  else begin
    t.stopped <- true;
    Lwt.wakeup_later (snd t.stop_signal) ();
    let conns = t.conns in
    Lwt.join (List.map (fun c -> fst c.done_) conns) >>= fun () ->
    (match t.listen_fd with
     | Some fd ->
       t.listen_fd <- None;
       (match t.cfg.address with Unix_path p -> (try Unix.unlink p with Unix.Unix_error _ -> ()) | _ -> ());
       Lwt.catch (fun () -> Lwt_unix.close fd) (fun _ -> Lwt.return_unit)
     | None -> Lwt.return_unit)
    >>= fun () -> Lwt.catch (fun () -> t.runner) (fun _ -> Lwt.return_unit)
  end
