(* The link state machine of docs/wire-protocol.md sections 1.4, 7 and 9,
   without any I/O: bytes in ([receive]), bytes out ([take_output]), events
   out ([pop_event]), time in ([tick]). One value per connection; a new
   connection (a reconnect) gets a new one. Not thread-safe: drive one link
   from one thread (the Lwt transports do).

   Nothing the peer sends raises: every malformed input becomes a refusal
   (before the link is established) or a [Closed] event with the error. *)

type config = {
  node : string;
  service : string;
  pid : int;
  secret : string option;  (** shared secret: hello auth_scheme 1 and auth frames *)
  max_payload : int;  (** largest data payload in either direction *)
  heartbeat_interval : float;  (** seconds without sending before a heartbeat *)
  peer_timeout : float;  (** seconds without receiving before [Peer_lost] *)
  shm : bool;
      (** a shared-memory link (connecting side): after the handshake the
          peer offers a segment ([Shm_offer]); data and interest then travel
          in the rings ([swap_ring_output], [receive_ring_frame]) *)
}

let default_config =
  {
    node = "ocaml";
    service = "ocaml";
    pid = 0;
    secret = None;
    max_payload = Frame.default_max_payload;
    heartbeat_interval = 0.1;
    peer_timeout = 1.0;
    shm = false;
  }

type closed = {
  error : Errc.t;  (** [None_] for a clean stop (a goodbye either way) *)
  text : string;  (** what happened, naming the peer; for the log *)
  refused_by_peer : bool;  (** the peer sent a refuse frame *)
}

type 'a event =
  | Established of Control.hello  (** the peer's hello *)
  | Message of int * 'a  (** a data frame from the peer: type id, value *)
  | Peer_subscribed of int
  | Peer_unsubscribed of int
  | Bad_frame of int * Errc.t  (** a data frame dropped and counted: type id, error *)
  | Closed of closed  (** last event; write the remaining output, then close *)
  | Shm_offer of string * string
      (** shm links, connecting side: the peer's segment and doorbell names;
          map it, then [shm_accept] (or [abort]) *)
  | Shm_answer of string
      (** shm links, creating side: the peer attached our segment; its
          doorbell name. The link is up. *)

type state = Awaiting_hello | Awaiting_auth | Up | Done

(** Data frames handed over in place instead of as [Message] events (see
    [set_in_place]): [deliver id r] decodes the payload from [r] (a reader
    over the frame where it is, whose views belong to the link's scope) and
    handles it before returning; a [Tlv.Decode_error] it raises is the
    frame's decode error. *)
type in_place = { accepts : int -> bool; deliver : int -> Tlv.reader -> unit }

type stats = {
  mutable frames_in : int;
  mutable frames_out : int;
  mutable bad_frames : int;  (** data frames dropped: unknown type or undecodable *)
  mutable frames_too_large : int;  (** outgoing messages over max_payload, not sent *)
}

type 'a t = {
  schema : 'a Schema.t;
  cfg : config;
  own : Control.hello;
  mutable state : state;
  mutable tx_seq : int64;
  mutable rx_seq : int64;
  mutable out : Tlv.writer;
  mutable inbuf : bytes;
  mutable in_start : int;
  mutable in_len : int;
  events : 'a event Queue.t;
  mutable peer : Control.hello option;
  peer_interest : (int, unit) Hashtbl.t;
  local_interest : (int, unit) Hashtbl.t;
  mutable last_rx : float;
  mutable last_tx : float;
  stats : stats;
  mutable shm_state : [ `None | `Offered | `We_offered of string | `Attached ];
  mutable ring_out : Tlv.writer;
  mutable ring_tx_seq : int64;
  mutable ring_rx_seq : int64;
  mutable in_place : in_place option;
  scope : View.scope;  (** the views of [in_place] deliveries: expired after each *)
}

let who (h : Control.hello) = Printf.sprintf "node '%s' service '%s' (pid %d)" h.node h.service h.pid

let state t = t.state

(** Data can flow: handshake done (and, on a shm link, the segment attached). *)
(* by a match: [=] on this polymorphic variant is a call of the generic
   compare, and is_up is on the per-frame path *)
let attached t = match t.shm_state with `Attached -> true | `None | `Offered | `We_offered _ -> false

let is_up t = t.state = Up && ((not t.cfg.shm) || attached t)
let is_closed t = t.state = Done
let peer t = t.peer
let stats t = t.stats
let own_hello t = t.own
let peer_interested t id = Hashtbl.mem t.peer_interest id
let pop_event t = Queue.take_opt t.events

let take_output t =
  if Tlv.length t.out = 0 then None
  else begin
    let s = Tlv.contents t.out in
    Tlv.reset t.out;
    Some s
  end

let pending_output t = Tlv.length t.out

(** Hands over the writer holding the pending output and continues with
    [spare] (emptied): the caller writes [Tlv.bytes w] up to [Tlv.length w]
    without a copy, and may give [w] back as the next spare. *)
let swap_output t spare =
  let w = t.out in
  Tlv.reset spare;
  t.out <- spare;
  w

(* -- writing frames --------------------------------------------------------- *)

let next_seq t =
  t.tx_seq <- Int64.succ t.tx_seq;
  t.tx_seq

(** Writes a control frame whose payload [f] writes. *)
let control t ~now type_id f =
  let w = t.out in
  let start = Tlv.reserve w Frame.header_size in
  f w;
  let n = Tlv.length w - start - Frame.header_size in
  Frame.write_header_at w start ~payload_length:n ~type_id ~sequence:(next_seq t) ~control:true;
  t.stats.frames_out <- t.stats.frames_out + 1;
  t.last_tx <- now

let close_with t ev =
  t.state <- Done;
  Queue.add (Closed ev) t.events

(** Refuses the peer (before the link is up): a refuse frame, then closed. *)
let refuse t ~now code text =
  control t ~now Frame.refuse (fun w -> Control.encode_refuse w { code = Errc.to_int code; text });
  close_with t { error = code; text; refused_by_peer = false }

(** Closes an established link without a refusal (section 9.3). *)
let fail t code text = close_with t { error = code; text; refused_by_peer = false }

(* -- creation ------------------------------------------------------------------- *)

(** A new connection: writes the hello (sequence 1). [nonce] must be 16
    fresh random bytes ([Auth.fresh_nonce ()]); [interest] the type ids the
    local side subscribes to, announced once the link is up. *)
let create ?(interest = []) ~schema ~config ~nonce ~now () =
  let own =
    {
      Control.magic = Control.magic;
      version = Control.protocol_version;
      digest = schema.Schema.digest;
      node = Control.clip config.node Control.max_name;
      service = Control.clip config.service Control.max_name;
      pid = config.pid;
      types = schema.types;
      nonce;
      auth_scheme = (if config.secret = None then 0 else 1);
    }
  in
  let t =
    {
      schema;
      cfg = config;
      own;
      state = Awaiting_hello;
      tx_seq = 0L;
      rx_seq = 0L;
      out = Tlv.writer ~size:4096 ();
      inbuf = Bytes.create 65536;
      in_start = 0;
      in_len = 0;
      events = Queue.create ();
      peer = None;
      peer_interest = Hashtbl.create 16;
      local_interest = Hashtbl.create 16;
      last_rx = now;
      last_tx = now;
      stats = { frames_in = 0; frames_out = 0; bad_frames = 0; frames_too_large = 0 };
      shm_state = `None;
      ring_out = Tlv.writer ~size:4096 ();
      ring_tx_seq = 0L;
      ring_rx_seq = 0L;
      in_place = None;
      scope = View.new_scope ();
    }
  in
  List.iter (fun id -> Hashtbl.replace t.local_interest id ()) interest;
  control t ~now Frame.hello (fun w -> Control.encode_hello w own);
  t

(* -- sending ---------------------------------------------------------------------- *)

type send_result =
  | Sent
  | Not_up  (** the handshake has not finished, or the link is closed *)
  | Not_interested  (** the peer's last word on the type was not subscribe *)
  | Too_large  (** payload over max_payload: not sent, counted *)

(** Writes a data frame for [x] if the link is up and the peer wants it. *)
let send t ~now x =
  let id = t.schema.type_id_of x in
  if not (is_up t) then Not_up
  else if not (Hashtbl.mem t.peer_interest id) then Not_interested
  else begin
    let shm = t.cfg.shm in
    let w = if shm then t.ring_out else t.out in
    let start = Tlv.reserve w Frame.header_size in
    ignore (t.schema.encode_fields w x);
    let n = Tlv.length w - start - Frame.header_size in
    if n > t.cfg.max_payload then begin
      (* drop what was written for it *)
      Tlv.truncate w start;
      t.stats.frames_too_large <- t.stats.frames_too_large + 1;
      Too_large
    end
    else begin
      let sequence =
        if shm then (t.ring_tx_seq <- Int64.succ t.ring_tx_seq; t.ring_tx_seq) else next_seq t
      in
      Frame.write_header_at w start ~payload_length:n ~type_id:id ~sequence ~control:false;
      t.stats.frames_out <- t.stats.frames_out + 1;
      if not shm then t.last_tx <- now;
      Sent
    end
  end

type place_result =
  | Placed  (** the frame is in [w]: [Tlv.length w] bytes of its area *)
  | Does_not_fit
      (** more than the area holds (or ring output is pending, which goes
          first): nothing was sent; [send] it instead *)
  | Refused of send_result  (** [Not_up], [Not_interested] or [Too_large], as [send] *)

(** shm links: writes the data frame for [x] in place, at the start of
    the area of [w] (a bigstring writer, [Tlv.target]ed at a slot claimed
    in the ring), with the next ring sequence number; the caller commits
    [Tlv.length w] bytes. The payload is encoded once, straight into the
    slot. Frames framed by [send] or interest changes and not yet taken
    with [swap_ring_output] keep their order: while there are any, this
    answers [Does_not_fit]. *)
let send_in_place t w x =
  let id = t.schema.type_id_of x in
  if not (is_up t) then Refused Not_up
  else if not (Hashtbl.mem t.peer_interest id) then Refused Not_interested
  else if (not t.cfg.shm) || Tlv.length t.ring_out > 0 then Does_not_fit
  else
    match
      let start = Tlv.reserve w Frame.header_size in
      ignore (t.schema.encode_fields w x);
      start
    with
    | exception Tlv.Overflow -> Does_not_fit
    | start ->
      let n = Tlv.length w - start - Frame.header_size in
      if n > t.cfg.max_payload then begin
        Tlv.truncate w start;
        t.stats.frames_too_large <- t.stats.frames_too_large + 1;
        Refused Too_large
      end
      else begin
        t.ring_tx_seq <- Int64.succ t.ring_tx_seq;
        Frame.write_header_at w start ~payload_length:n ~type_id:id ~sequence:t.ring_tx_seq
          ~control:false;
        t.stats.frames_out <- t.stats.frames_out + 1;
        Placed
      end

(* Interest goes on the socket, or in the ring once a shm link is attached
   (before that it is announced at the attach). *)
let interest_frame t ~now kind id =
  if not t.cfg.shm then control t ~now kind (fun w -> Control.encode_interest w id)
  else if (match t.shm_state with `Attached | `We_offered _ -> true | _ -> false) then begin
    let w = t.ring_out in
    let start = Tlv.reserve w Frame.header_size in
    Control.encode_interest w id;
    t.ring_tx_seq <- Int64.succ t.ring_tx_seq;
    Frame.write_header_at w start ~payload_length:(Tlv.length w - start - Frame.header_size)
      ~type_id:kind ~sequence:t.ring_tx_seq ~control:true;
    t.stats.frames_out <- t.stats.frames_out + 1
  end

(** Local interest in a type id; announced now if the link is up, else
    when it comes up. Idempotent. *)
let subscribe t ~now id =
  if not (Hashtbl.mem t.local_interest id) then begin
    Hashtbl.replace t.local_interest id ();
    if t.state = Up then interest_frame t ~now Frame.subscribe id
  end

let unsubscribe t ~now id =
  if Hashtbl.mem t.local_interest id then begin
    Hashtbl.remove t.local_interest id;
    if t.state = Up then interest_frame t ~now Frame.unsubscribe id
  end

(** Stops on purpose: a goodbye when the link is up, then closed. *)
let close t ~now =
  if t.state = Up then control t ~now Frame.goodbye (fun _ -> ());
  if t.state <> Done then
    close_with t { error = Errc.None_; text = "closed locally"; refused_by_peer = false }

(** Heartbeats and the peer timeout; call at least every
    [min heartbeat_interval (peer_timeout / 4)]. *)
let tick t ~now =
  if t.state <> Done then begin
    if now -. t.last_rx > t.cfg.peer_timeout then
      fail t Errc.Peer_lost
        (Printf.sprintf "no frame from the peer%s for %.0f ms (peer_timeout)"
           (match t.peer with Some h -> " " ^ who h | None -> "")
           ((now -. t.last_rx) *. 1000.))
    else if t.state = Up && now -. t.last_tx >= t.cfg.heartbeat_interval then
      control t ~now Frame.heartbeat (fun _ -> ())
  end

(** Closes the connection with [code] (e.g. [Link_overflow]), no goodbye. *)
let abort t code text = if t.state <> Done then fail t code text

(** The peer's connection ended (EOF or an I/O error) without a goodbye. *)
let connection_lost t text = if t.state <> Done then fail t Errc.Peer_lost text

(* -- receiving ------------------------------------------------------------------------ *)

let establish t ~now peer =
  t.state <- Up;
  if not t.cfg.shm then begin
    Hashtbl.iter (fun id () -> interest_frame t ~now Frame.subscribe id)
      (Hashtbl.copy t.local_interest);
    Queue.add (Established peer) t.events
  end
  (* a shm link is up for data once the segment is attached (shm_accept) *)

(** shm links: the segment of [Shm_offer] is mapped and checked; answers
    with shm_attach naming our doorbell, then announces our interest in our
    ring. The link is up now. *)
let shm_accept t ~now ~segment ~doorbell =
  if t.state = Up && (match t.shm_state with `Offered -> true | _ -> false) then begin
    control t ~now Frame.shm_attach (fun w -> Control.encode_shm_attach w ~segment ~doorbell);
    t.shm_state <- `Attached;
    Hashtbl.iter (fun id () -> interest_frame t ~now Frame.subscribe id) (Hashtbl.copy t.local_interest);
    match t.peer with Some p -> Queue.add (Established p) t.events | None -> ()
  end

(** shm links, creating side: once the handshake is done ([needs_shm_offer]),
    offers the segment we created and our doorbell; our interest goes into
    our ring at once (the peer reads it after mapping). *)
let shm_offer t ~now ~segment ~doorbell =
  if t.state = Up && (match t.shm_state with `None -> true | _ -> false) then begin
    control t ~now Frame.shm_attach (fun w -> Control.encode_shm_attach w ~segment ~doorbell);
    t.shm_state <- `We_offered segment;
    Hashtbl.iter (fun id () -> interest_frame t ~now Frame.subscribe id) (Hashtbl.copy t.local_interest)
  end

(** shm links: the handshake is done and no segment was offered either way. *)
let needs_shm_offer t = t.cfg.shm && t.state = Up && (match t.shm_state with `None -> true | _ -> false)

(** shm links: hands over the ring output (frames, each to become one ring
    record) and continues with [spare]. *)
let swap_ring_output t spare =
  let w = t.ring_out in
  Tlv.reset spare;
  t.ring_out <- spare;
  w

let pending_ring_output t = Tlv.length t.ring_out

(** The last sequence number read from the peer's ring. *)
let ring_rx_seq t = t.ring_rx_seq

let describe (h : Frame.header) =
  if not (Frame.is_control h) then Printf.sprintf "data frame of type %d" h.type_id
  else
    match Frame.control_name h.type_id with
    | Some n -> Printf.sprintf "control frame %s (0x%08x)" n h.type_id
    | None -> Printf.sprintf "control frame of unknown type 0x%08x" h.type_id

(* First differing message type of two type lists (section 7.3). *)
let first_difference (local : Schema.type_info list) (remote : Schema.type_info list) =
  let ids =
    List.sort_uniq compare (List.map (fun (x : Schema.type_info) -> x.type_id) (local @ remote))
  in
  let find l id = List.find_opt (fun (x : Schema.type_info) -> x.type_id = id) l in
  let rec go = function
    | [] -> "none found in the announced type lists"
    | id :: rest -> (
      match (find local id, find remote id) with
      | Some l, None -> Printf.sprintf "%s (id %d) exists only locally" l.name id
      | None, Some r -> Printf.sprintf "%s (id %d) exists only on the remote side" r.name id
      | Some l, Some r when l.name <> r.name ->
        Printf.sprintf "%s (id %d), called '%s' remotely" l.name id r.name
      | Some l, Some r when l.digest <> r.digest -> Printf.sprintf "%s (id %d)" l.name id
      | _ -> go rest)
  in
  go ids

let on_refuse t payload =
  match Control.decode_refuse payload with
  | Error e ->
    fail t e (Printf.sprintf "undecodable refuse frame from the peer: %s" (Errc.to_string e))
  | Ok r ->
    close_with t
      {
        error = Errc.of_int r.code;
        text = Printf.sprintf "refused by peer (%s): %s" (Control.reason_name r.code) r.text;
        refused_by_peer = true;
      }

let on_hello t ~now payload =
  match Control.decode_hello payload with
  | Error (Errc.Bad_magic, h) ->
    refuse t ~now Errc.Bad_magic (Printf.sprintf "peer %s is not a Mycelium peer (bad magic)" (who h))
  | Error (e, _) ->
    refuse t ~now e
      (Printf.sprintf
         "undecodable hello: %s; the peer does not speak Mycelium wire protocol version 1 or \
          sent a corrupt hello"
         (Errc.to_string e))
  | Ok h ->
    t.peer <- Some h;
    let own = t.own in
    if h.version <> own.version then
      refuse t ~now Errc.Version_mismatch
        (Printf.sprintf "protocol version mismatch: local %d vs remote %d from %s" own.version
           h.version (who h))
    else if h.digest <> own.digest then
      refuse t ~now Errc.Schema_mismatch
        (Printf.sprintf
           "schema digest mismatch: local %s has %s, remote %s has %s; first differing message \
            type: %s. Rebuild both sides from the same schema file."
           (who own) (Schema.hex own.digest) (who h) (Schema.hex h.digest)
           (first_difference own.types h.types))
    else
      match t.cfg.secret with
      | None ->
        if h.auth_scheme <> 0 then
          refuse t ~now Errc.Auth_failed
            (Printf.sprintf
               "peer %s has a shared secret configured (its hello asks for authentication), but \
                none is configured here: configure the same secret on both sides"
               (who h))
        else establish t ~now h
      | Some secret ->
        if h.auth_scheme = 0 then
          refuse t ~now Errc.Auth_failed
            (Printf.sprintf
               "peer %s sent no authentication proof (its hello announces no shared secret), but \
                a secret is configured here: configure the same secret on both sides"
               (who h))
        else if h.auth_scheme <> 1 then
          refuse t ~now Errc.Auth_failed
            (Printf.sprintf
               "peer %s asks for authentication scheme %d, which this build does not know (it \
                knows 1, hmac_sha256): run the same Mycelium version on both sides"
               (who h) h.auth_scheme)
        else if h.nonce = "" || h.nonce = String.make 16 '\000' then
          refuse t ~now Errc.Auth_failed
            (Printf.sprintf
               "peer %s sent no nonce (hello field 9 missing or all zero), so its proof could be \
                replayed: with a secret, every hello must carry 16 fresh random bytes"
               (who h))
        else if h.nonce = own.nonce then
          refuse t ~now Errc.Auth_failed
            (Printf.sprintf
               "peer %s sent back the nonce of our own hello: a reflected handshake is refused"
               (who h))
        else begin
          let proof = Auth.proof ~secret ~challenge:h.nonce own in
          control t ~now Frame.auth (fun w -> Control.encode_auth w proof);
          t.state <- Awaiting_auth
        end

let on_auth t ~now payload =
  let h = match t.peer with Some h -> h | None -> Control.empty_hello in
  match Control.decode_auth payload with
  | Error e ->
    refuse t ~now e
      (Printf.sprintf "undecodable auth frame from %s: %s; the proof must be 32 bytes in field 1"
         (who h) (Errc.to_string e))
  | Ok proof ->
    let secret = match t.cfg.secret with Some s -> s | None -> "" in
    let expected = Auth.proof ~secret ~challenge:t.own.nonce h in
    if Auth.constant_time_equal proof expected then establish t ~now h
    else
      refuse t ~now Errc.Auth_failed
        (Printf.sprintf
           "authentication proof of peer %s does not match: the two sides use different secrets \
            (or the proof was replayed from another connection)"
           (who h))

let on_established_control t (h : Frame.header) payload =
  let id = h.type_id in
  if id = Frame.subscribe || id = Frame.unsubscribe then begin
    match Control.decode_interest payload with
    | Error e ->
      fail t e
        (Printf.sprintf "undecodable %s frame from the peer: %s"
           (if id = Frame.subscribe then "subscribe" else "unsubscribe")
           (Errc.to_string e))
    | Ok tid ->
      if not (Schema.has_type t.schema tid) then t.stats.bad_frames <- t.stats.bad_frames + 1
      else if id = Frame.subscribe then begin
        if not (Hashtbl.mem t.peer_interest tid) then begin
          Hashtbl.replace t.peer_interest tid ();
          Queue.add (Peer_subscribed tid) t.events
        end
      end
      else if Hashtbl.mem t.peer_interest tid then begin
        Hashtbl.remove t.peer_interest tid;
        Queue.add (Peer_unsubscribed tid) t.events
      end
  end
  else if id = Frame.heartbeat then ()
  else if id = Frame.goodbye then
    close_with t
      {
        error = Errc.None_;
        text =
          Printf.sprintf "peer %s said goodbye"
            (match t.peer with Some p -> who p | None -> "?");
        refused_by_peer = false;
      }
  else if id = Frame.refuse then on_refuse t payload
  else if id = Frame.shm_attach && t.cfg.shm && (match t.shm_state with `We_offered _ -> true | _ -> false) then begin
    (* the answer to our offer *)
    let offered = match t.shm_state with `We_offered s -> s | _ -> "" in
    match Control.decode_shm_attach payload with
    | Error e -> fail t e (Printf.sprintf "undecodable shm_attach answer from the peer: %s" (Errc.to_string e))
    | Ok (segment, doorbell) ->
      if segment <> offered then
        fail t Errc.Protocol_violation
          (Printf.sprintf "the peer answered for segment %s, we offered %s" segment offered)
      else begin
        t.shm_state <- `Attached;
        Queue.add (Shm_answer doorbell) t.events;
        match t.peer with Some p -> Queue.add (Established p) t.events | None -> ()
      end
  end
  else if id = Frame.shm_attach && t.cfg.shm then begin
    if t.shm_state <> `None then
      fail t Errc.Protocol_violation "a second shm_attach from the peer (it offers one segment per connection)"
    else
      match Control.decode_shm_attach payload with
      | Error e -> fail t e (Printf.sprintf "undecodable shm_attach frame from the peer: %s" (Errc.to_string e))
      | Ok (segment, doorbell) ->
        t.shm_state <- `Offered;
        Queue.add (Shm_offer (segment, doorbell)) t.events
  end
  else if id = Frame.shm_attach then
    fail t Errc.Protocol_violation
      "shm_attach on a socket link: configure the same link kind on both sides"
  else
    fail t Errc.Protocol_violation
      (Printf.sprintf "unexpected %s on an established link" (describe h))

(** Data frames of the types [ip.accepts] takes are handed to
    [ip.deliver] while they are still where they were read (the ring record
    not yet released, the input buffer not yet reused), instead of being
    decoded into [Message] events; the views made from them expire when
    [deliver] returns. A decode error is a [Bad_frame] as on the other
    path; unknown types are refused before. [None]: every frame as a
    [Message]. *)
let set_in_place t ip = t.in_place <- ip

(* The frame's views end when the delivery does, whatever happened. *)
let deliver_in_place t ip id r =
  match ip.deliver id r with
  | () -> View.expire t.scope
  | exception Tlv.Decode_error e ->
    View.expire t.scope;
    t.stats.bad_frames <- t.stats.bad_frames + 1;
    Queue.add (Bad_frame (id, e)) t.events
  | exception ex ->
    View.expire t.scope;
    raise ex

let on_data ?(off = 0) ?len t (h : Frame.header) payload =
  let id = h.type_id in
  if not (Schema.has_type t.schema id) then begin
    t.stats.bad_frames <- t.stats.bad_frames + 1;
    Queue.add (Bad_frame (id, Errc.Unknown_type)) t.events
  end
  else
    match t.in_place with
    | Some ip when ip.accepts id -> deliver_in_place t ip id (Tlv.reader ~scope:t.scope ~off ?len payload)
    | _ -> (
      match Tlv.decode_with (t.schema.decode_fields id) ~off ?len payload with
      | Ok v -> Queue.add (Message (id, v)) t.events
      | Error e ->
        t.stats.bad_frames <- t.stats.bad_frames + 1;
        Queue.add (Bad_frame (id, e)) t.events)

(* A data frame in a bigstring, decoded in place. *)
let on_data_big t (h : Frame.header) big ~off ~len =
  let id = h.type_id in
  if not (Schema.has_type t.schema id) then begin
    t.stats.bad_frames <- t.stats.bad_frames + 1;
    Queue.add (Bad_frame (id, Errc.Unknown_type)) t.events
  end
  else
    match t.in_place with
    | Some ip when ip.accepts id -> deliver_in_place t ip id (Tlv.big_reader ~scope:t.scope ~off ~len big)
    | _ -> (
      match Tlv.decode_with_big (t.schema.decode_fields id) ~off ~len big with
      | Ok v -> Queue.add (Message (id, v)) t.events
      | Error e ->
        t.stats.bad_frames <- t.stats.bad_frames + 1;
        Queue.add (Bad_frame (id, e)) t.events)

(* Handles one complete frame. *)
let handle t ~now (h : Frame.header) payload =
  t.stats.frames_in <- t.stats.frames_in + 1;
  let control = Frame.is_control h in
  match t.state with
  | Done -> ()
  | Awaiting_hello ->
    if control && h.type_id = Frame.hello then on_hello t ~now payload
    else if control && h.type_id = Frame.refuse then on_refuse t payload
    else
      refuse t ~now Errc.Protocol_violation
        (Printf.sprintf
           "peer sent a %s before its hello: the first frame on a link must be a hello \
            (docs/wire-protocol.md section 7.3)"
           (describe h))
  | Awaiting_auth ->
    if control && h.type_id = Frame.auth then on_auth t ~now payload
    else if control && h.type_id = Frame.refuse then on_refuse t payload
    else
      refuse t ~now Errc.Protocol_violation
        (Printf.sprintf
           "peer %s sent a %s before its auth frame: with a shared secret the second frame must \
            be an auth frame (docs/wire-protocol.md section 9.4)"
           (match t.peer with Some p -> who p | None -> "?")
           (describe h))
  | Up -> if control then on_established_control t h payload else on_data t h payload

(* A broken stream: refused before the link is up, closed after. *)
let stream_error t ~now code text =
  if t.state = Up then fail t code text else refuse t ~now code text

(** Room for at least [n] more input bytes: returns the buffer, the offset
    to read into and the free bytes there; then call [commit_read]. *)
let read_buffer t n =
  if t.in_start + t.in_len + n > Bytes.length t.inbuf then begin
    let need = t.in_len + n in
    let nb =
      if need > Bytes.length t.inbuf then Bytes.create (max need (2 * Bytes.length t.inbuf))
      else t.inbuf
    in
    Bytes.blit t.inbuf t.in_start nb 0 t.in_len;
    t.inbuf <- nb;
    t.in_start <- 0
  end;
  let off = t.in_start + t.in_len in
  (t.inbuf, off, Bytes.length t.inbuf - off)

(** [n] bytes were read into the buffer of [read_buffer]: handles every
    complete frame; events and output accumulate. Ignored after a close. *)
let commit_read t ~now n =
  if t.state <> Done && n > 0 then begin
    t.last_rx <- now;
    t.in_len <- t.in_len + n;
    let s = Bytes.unsafe_to_string t.inbuf in
    let limit = max t.cfg.max_payload Frame.control_payload_limit in
    let continue = ref true in
    while !continue && t.state <> Done && t.in_len >= Frame.header_size do
      match Frame.read_header ~off:t.in_start ~max_payload:limit s with
      | Error Errc.Frame_too_large ->
        continue := false;
        stream_error t ~now Errc.Frame_too_large
          (Printf.sprintf
             "frame header from the peer announces %d payload bytes, over the limit of %d: \
              it exceeds max_payload; configure the same max_payload on both sides"
             (Frame.u32 s t.in_start) limit)
      | Error e ->
        continue := false;
        stream_error t ~now e
          (Printf.sprintf "corrupt frame header from the peer after sequence %Ld: %s" t.rx_seq
             (Errc.to_string e))
      | Ok h ->
        if (not (Frame.is_control h)) && h.payload_length > t.cfg.max_payload then begin
          continue := false;
          stream_error t ~now Errc.Frame_too_large
            (Printf.sprintf
               "data frame of type %d with %d payload bytes exceeds max_payload %d; configure the \
                same max_payload on both sides"
               h.type_id h.payload_length t.cfg.max_payload)
        end
        else if h.sequence <> Int64.succ t.rx_seq then begin
          continue := false;
          stream_error t ~now Errc.Sequence_gap
            (Printf.sprintf "sequence gap from the peer: expected %Ld, got %Ld"
               (Int64.succ t.rx_seq) h.sequence)
        end
        else if t.in_len < Frame.header_size + h.payload_length then continue := false
        else begin
          t.rx_seq <- h.sequence;
          let off = t.in_start + Frame.header_size and n = h.payload_length in
          t.in_start <- off + n;
          t.in_len <- t.in_len - Frame.header_size - n;
          if t.state = Up && not (Frame.is_control h) then begin
            (* data: decoded in place, the decoder copies what it keeps *)
            t.stats.frames_in <- t.stats.frames_in + 1;
            on_data t h s ~off ~len:n
          end
          else handle t ~now h (String.sub s off n)
        end
    done;
    if t.in_len = 0 then t.in_start <- 0
  end

(** Feeds bytes read from the connection (a copy into the input buffer;
    [read_buffer] + [commit_read] avoid it). *)
let receive t ~now (data : bytes) off len =
  if t.state <> Done && len > 0 then begin
    let buf, p, _ = read_buffer t len in
    Bytes.blit data off buf p len;
    commit_read t ~now len
  end

(* The checks of a ring record's frame whose header [read] gives (section
   10.3): true when the frame may be handled; otherwise the connection is
   closed. *)
let ring_frame_ok t len read =
  let limit = max t.cfg.max_payload Frame.control_payload_limit in
  match read limit with
  | Error e ->
    fail t e (Printf.sprintf "corrupt frame header in the ring after ring sequence %Ld: %s" t.ring_rx_seq (Errc.to_string e));
    None
  | Ok h ->
    if Frame.header_size + h.Frame.payload_length <> len then begin
      fail t Errc.Bad_frame_header
        (Printf.sprintf "ring record of %d bytes holds a frame of %d" len (Frame.header_size + h.payload_length));
      None
    end
    else if (not (Frame.is_control h)) && h.payload_length > t.cfg.max_payload then begin
      fail t Errc.Frame_too_large
        (Printf.sprintf "data frame of type %d with %d payload bytes in the ring exceeds max_payload %d"
           h.type_id h.payload_length t.cfg.max_payload);
      None
    end
    else if h.sequence <> Int64.succ t.ring_rx_seq then begin
      fail t Errc.Sequence_gap
        (Printf.sprintf "sequence gap in the ring: expected %Ld, got %Ld" (Int64.succ t.ring_rx_seq) h.sequence);
      None
    end
    else begin
      t.ring_rx_seq <- h.sequence;
      t.stats.frames_in <- t.stats.frames_in + 1;
      if Frame.is_control h && h.type_id <> Frame.subscribe && h.type_id <> Frame.unsubscribe then begin
        fail t Errc.Protocol_violation
          (Printf.sprintf "%s in a shared-memory ring (only data and interest travel there)" (describe h));
        None
      end
      else Some h
    end

(** shm links: one frame read from the peer's ring ([len] bytes of [s] from
    [off], one record). Checked as section 10.3 says: header, length = 24 +
    payload_length, the ring's own sequence numbers; data and interest
    frames only. A violation closes the connection. *)
let receive_ring_frame t ~now s off len =
  if t.state = Up && attached t then begin
    t.last_rx <- now;
    match ring_frame_ok t len (fun max_payload -> Frame.read_header ~off ~max_payload s) with
    | None -> ()
    | Some h ->
      let poff = off + Frame.header_size in
      if not (Frame.is_control h) then on_data t h s ~off:poff ~len:h.payload_length
      else on_established_control t h (String.sub s poff h.payload_length)
  end

(** [receive_ring_frame] in place: the frame is [len] bytes of [big] (the
    mapping) from [off]. Data is decoded straight from it (the decoder's
    copies of strings and bytes are the only ones); release the record
    only after this returns. *)
let receive_ring_frame_big t ~now (big : Tlv.bigstring) off len =
  if t.state = Up && attached t then begin
    t.last_rx <- now;
    match ring_frame_ok t len (fun max_payload -> Frame.read_header_big ~off ~max_payload big) with
    | None -> ()
    | Some h ->
      let poff = off + Frame.header_size in
      if not (Frame.is_control h) then on_data_big t h big ~off:poff ~len:h.payload_length
      else on_established_control t h (Tlv.big_sub big poff h.payload_length)
  end
