(* Services in OCaml, in the spirit of the C++ API (docs/services.md): a
   node is a local bus plus links; a service has handlers per message type,
   publishes, makes requests with a timeout, and has on_start / on_stop.

   - Placement (docs/ocaml.md, "Placement"), as in C++:
     [Loop]: a message is handled where it arrives, with no hand-off: an
     idle service's handler is called directly from the link's receive
     path (or from the publisher's call); a busy one queues it.
     [Pool] (the default): handlers never run on the receive path; each
     service has a bounded mailbox served by its own Lwt task, which yields
     to the Lwt loop after each message, and [offload] runs CPU-bound or
     blocking work on a system thread, so the links keep being read and
     heartbeats keep going meanwhile.
   - Handlers of one service never run concurrently, and take the messages
     of one publisher in the order published, in both placements.
   - The synchronous part of every handler call is timed against the node's
     [handler_budget] (10 ms): an overrun is counted ([slow_handlers]) and
     logged, at most once a second per service.
   - A handler that raises is counted ([failures]) and logged; the service
     goes on with the next message.
   - A message that arrived over a link goes to local subscribers and to the
     other links whose peers want it, never back over its own link (no
     echo). A link announces what local services and the peers of the other
     links subscribed to. With [~relay:false] (nodes of a topology, whose
     links form a full mesh) a message from a link goes to local
     subscribers only, and links announce only the local subscriptions.
   - Request/reply across a link has no correlation id on the wire: the
     reply is the first message accepted by the caller's [reply] function
     (schemas carry a token, e.g. report_request/report).
   - Views ([subscribe_view], loop services only; docs/ocaml.md, "Views in
     services"): a message from a link is handed to an idle loop service as
     the generated view, its [bytes] fields read where the frame is, from
     the receive path before the frame is released. A local publish, or a
     message that waited in the mailbox, is handed as a view over a copy
     (its encoding). Either way the views expire when the handler's
     synchronous part returns.

   Everything runs on the Lwt thread of the program, except what [offload]
   hands to a system thread; not thread-safe. *)

open Lwt.Infix
module SL = Socket_link
module Errc = Mycelium.Errc

type publish_status = SL.publish_status = Ok_sent | No_subscriber | Back_pressured

type placement = Pool | Loop

let placement_to_string = function Pool -> "pool" | Loop -> "loop"

type 'a t = {
  name : string;
  schema : 'a Mycelium.Schema.t;
  log : string -> unit;
  relay : bool;  (** forward messages between links (see the header) *)
  handler_budget : float;  (** seconds a handler may run before it is counted as slow *)
  mailbox_limit : int;  (** messages a service's mailbox holds; more are dropped and counted *)
  mutable services : 'a ctx list;
  mutable links : 'a SL.t list;
  mutable waiters : 'a waiter list;
  mutable stopped : bool;
  view_types : (int, unit) Hashtbl.t;
      (** types a running service takes as views: the links hand these frames over in place *)
  encoder : Mycelium.Tlv.writer;  (** encodes a value for a view handler (local publishes, the mailbox) *)
}

and 'a ctx = {
  node : 'a t;
  svc_name : string;
  placement : placement;
  handlers : (int, 'a handler) Hashtbl.t;
  view_scope : Mycelium.View.scope;  (** the views handed to a handler; expired when its call returns *)
  mutable view_copies : int;  (** view handler calls given a view over a copy, not the frame *)
  mailbox : 'a Queue.t;
  wake : Wake.t;  (** the mailbox task: a message queued, or the service idle again *)
  mutable busy : bool;  (** a handler runs or has not finished yet (or on_start runs) *)
  mutable running : bool;
  mutable failures : int;
  mutable handled : int;
  mutable dropped : int;  (** messages refused by a full mailbox *)
  mutable slow_handlers : int;  (** handler calls over the handler budget *)
  mutable slow_logged_at : float;
  mutable slow_unlogged : int;
  mutable drop_logged_at : float;
  mutable drop_unlogged : int;
  mutable loop : unit Lwt.t;
  on_stop : 'a ctx -> unit Lwt.t;
  params : Params.t;  (** the instance's parameters (topology [services.X] params) *)
}

(* What a service runs for one message type. *)
and 'a handler =
  | Values of ('a -> unit Lwt.t)  (** [subscribe]: the decoded value, owned *)
  | Views of (Mycelium.Tlv.reader -> unit -> unit Lwt.t)
      (** [subscribe_view]: decodes the view from a reader over the payload
          (raising [Tlv.Decode_error]) and gives the handler's call with it *)

and 'a waiter = { w_type : int; accept : 'a -> bool; resolve : 'a Lwt.u }

type 'a service = {
  name : string;
  on_start : 'a ctx -> unit Lwt.t;  (** subscribe here; runs before any message *)
  on_stop : 'a ctx -> unit Lwt.t;  (** after the last handler *)
}

(** A node. [handler_budget] (seconds, default 0.01 like the C++ node's):
    a handler whose synchronous part runs longer is counted and logged.
    [mailbox_limit] (default 65536): messages one service may have queued;
    beyond it a message for that service is dropped, counted ([dropped])
    and logged. *)
let create ?(log = prerr_endline) ?(relay = true) ?(handler_budget = 0.010) ?(mailbox_limit = 65536) ~schema name =
  if not (handler_budget > 0.) then invalid_arg "Service.create: handler_budget must be positive";
  if mailbox_limit < 1 then invalid_arg "Service.create: mailbox_limit must be at least 1";
  { name; schema; log; relay; handler_budget; mailbox_limit; services = []; links = []; waiters = [];
    stopped = false; view_types = Hashtbl.create 8; encoder = Mycelium.Tlv.writer () }

let name ctx = ctx.svc_name
let node ctx = ctx.node
let links n = n.links
let failures ctx = ctx.failures
let handled ctx = ctx.handled
let placement ctx = ctx.placement

(** Handler calls whose synchronous part ran over the node's handler budget. *)
let slow_handlers ctx = ctx.slow_handlers

(** Messages dropped because the service's mailbox was full. *)
let dropped ctx = ctx.dropped

(** Messages waiting in the service's mailbox. *)
let queued ctx = Queue.length ctx.mailbox

(** Calls of the service's view handlers that got a view over a copy of
    the message instead of the frame it came in: local publishes, and
    messages from a link that waited in the mailbox (see [subscribe_view]). *)
let view_copies ctx = ctx.view_copies

(** The service's parameters (given to [start]; from the topology under
    mycelium-run): look them up with [Params.int], [Params.float],
    [Params.bool], [Params.string], [Params.strings]. *)
let params ctx = ctx.params

(* -- interest ----------------------------------------------------------------------- *)

let local_interest n =
  let h = Hashtbl.create 16 in
  List.iter (fun s -> if s.running then Hashtbl.iter (fun id _ -> Hashtbl.replace h id ()) s.handlers) n.services;
  List.iter (fun w -> Hashtbl.replace h w.w_type ()) n.waiters;
  h

(* The types the links hand over in place: those of the view handlers of
   running services. *)
let refresh_view_types n =
  Hashtbl.reset n.view_types;
  List.iter
    (fun s ->
      if s.running then
        Hashtbl.iter
          (fun id h -> match h with Views _ -> Hashtbl.replace n.view_types id () | Values _ -> ())
          s.handlers)
    n.services

(* What link [l] announces: local subscriptions and the other links' peers.
   (Called on every change of subscriptions, services and waiters.) *)
let refresh_interest n =
  refresh_view_types n;
  let local = local_interest n in
  List.iter
    (fun l ->
      let want = Hashtbl.copy local in
      if n.relay then
        List.iter (fun o -> if o != l then List.iter (fun id -> Hashtbl.replace want id ()) (SL.peer_interest o)) n.links;
      List.iter (fun id -> if not (Hashtbl.mem want id) then SL.unsubscribe l id) (SL.interest l);
      Hashtbl.iter (fun id () -> SL.subscribe l id) want)
    n.links

(* -- running handlers ------------------------------------------------------------------ *)

external coarse_ns : unit -> int = "mycelium_lwt_coarse_ns" [@@noalloc]

let log_ctx ctx fmt =
  Printf.ksprintf (fun s -> ctx.node.log (Printf.sprintf "mycelium-ocaml: node %s service %s: %s" ctx.node.name ctx.svc_name s)) fmt

(* Counts an overrun of the budget; one log line a second at most. *)
let over_budget ctx id took_ns =
  ctx.slow_handlers <- ctx.slow_handlers + 1;
  let now = Unix.gettimeofday () in
  if now -. ctx.slow_logged_at < 1. then ctx.slow_unlogged <- ctx.slow_unlogged + 1
  else begin
    log_ctx ctx "handler of '%s' ran %d us on the Lwt thread, over its budget of %d us: the links and the other services of the node stalled meanwhile (%s)%s"
      (Mycelium.Schema.type_name ctx.node.schema id) (took_ns / 1000)
      (int_of_float (ctx.node.handler_budget *. 1e6))
      (match ctx.placement with
       | Loop -> "place the service on the pool and move the work into Service.offload, or raise handler_budget"
       | Pool -> "move the work into Service.offload, or raise handler_budget")
      (if ctx.slow_unlogged > 0 then Printf.sprintf "; %d more overruns in the last second were only counted" ctx.slow_unlogged
       else "");
    ctx.slow_logged_at <- now;
    ctx.slow_unlogged <- 0
  end

let failed ctx id e =
  ctx.failures <- ctx.failures + 1;
  log_ctx ctx "handler for %s raised %s" (Mycelium.Schema.type_name ctx.node.schema id) (Printexc.to_string e)

(* A handler's call that was given views in the service's scope: they
   expire when its synchronous part returns, or raises. *)
let with_views ctx call () =
  match call () with
  | p ->
    Mycelium.View.expire ctx.view_scope;
    p
  | exception e ->
    Mycelium.View.expire ctx.view_scope;
    raise e

(* The call of handler [h] with the value [x]. A view handler gets views
   over [x]'s encoding (a copy: the value has no frame); a value the
   schema refuses (e.g. a string over its max, which encoders do not
   check) fails the call. *)
let value_call ctx h x =
  match h with
  | Values f -> fun () -> f x
  | Views decode ->
    fun () ->
      ctx.view_copies <- ctx.view_copies + 1;
      let w = ctx.node.encoder in
      Mycelium.Tlv.reset w;
      let id = ctx.node.schema.encode_fields w x in
      (* a copy of its own: a handler may publish, and reuse the encoder *)
      let r = Mycelium.Tlv.reader ~scope:ctx.view_scope (Mycelium.Tlv.contents w) in
      match decode r with
      | call -> with_views ctx call ()
      | exception Mycelium.Tlv.Decode_error e ->
        Mycelium.View.expire ctx.view_scope;
        failwith
          (Printf.sprintf "the %s value does not decode as a view: %s (a value the schema refuses)"
             (Mycelium.Schema.type_name ctx.node.schema id) (Errc.to_string e))

(* Runs [call], a handler of type [id]: its synchronous part timed against
   the budget, its outcome counted. The promise never fails. *)
let call_handler ctx id call =
  let t0 = coarse_ns () in
  let p = try call () with e -> Lwt.fail e in
  let took = coarse_ns () - t0 in
  if float_of_int took > ctx.node.handler_budget *. 1e9 then over_budget ctx id took;
  match Lwt.state p with
  | Lwt.Return () ->
    ctx.handled <- ctx.handled + 1;
    Lwt.return_unit
  | Lwt.Fail e ->
    failed ctx id e;
    Lwt.return_unit
  | Lwt.Sleep ->
    Lwt.try_bind (fun () -> p)
      (fun () -> ctx.handled <- ctx.handled + 1; Lwt.return_unit)
      (fun e -> failed ctx id e; Lwt.return_unit)

(* Calls the handler of [x], if the service still has one. *)
let invoke ctx x =
  let id = ctx.node.schema.type_id_of x in
  match Hashtbl.find_opt ctx.handlers id with
  | None -> Lwt.return_unit
  | Some h -> call_handler ctx id (value_call ctx h x)

(* Whether a message for [ctx] may be handled at once, on the caller's stack. *)
let idle ctx = ctx.placement = Loop && (not ctx.busy) && Queue.is_empty ctx.mailbox

(* A loop service that is idle: [call] (a handler of type [id]) runs now,
   on the caller's stack (the link's receive path, or the publisher). *)
let run_direct ctx id call =
  ctx.busy <- true;
  let p = call_handler ctx id call in
  if Lwt.is_sleeping p then
    Lwt.on_termination p (fun () ->
        ctx.busy <- false;
        Wake.signal ctx.wake)
  else begin
    ctx.busy <- false;
    (* the handler may have published to itself: that went to the mailbox *)
    if not (Queue.is_empty ctx.mailbox) then Wake.signal ctx.wake
  end

let drop ctx x =
  ctx.dropped <- ctx.dropped + 1;
  let now = Unix.gettimeofday () in
  if now -. ctx.drop_logged_at < 1. then ctx.drop_unlogged <- ctx.drop_unlogged + 1
  else begin
    log_ctx ctx "mailbox full (%d messages): a %s message was dropped%s" ctx.node.mailbox_limit
      (Mycelium.Schema.type_name ctx.node.schema (ctx.node.schema.type_id_of x))
      (if ctx.drop_unlogged > 0 then Printf.sprintf "; %d more drops in the last second were only counted" ctx.drop_unlogged
       else "");
    ctx.drop_logged_at <- now;
    ctx.drop_unlogged <- 0
  end

(* One message for [ctx]: a direct call (loop, idle), else its mailbox. *)
let deliver ctx x =
  if idle ctx then begin
    let id = ctx.node.schema.type_id_of x in
    match Hashtbl.find_opt ctx.handlers id with
    | Some h -> run_direct ctx id (value_call ctx h x)
    | None -> ()
  end
  else if Queue.length ctx.mailbox >= ctx.node.mailbox_limit then drop ctx x
  else begin
    Queue.push x ctx.mailbox;
    if not ctx.busy then Wake.signal ctx.wake
  end

(* The mailbox task of a service: queued messages in order, one handler at
   a time. Handlers that finish at once are run in a loop (no recursion).
   A pool service's handlers run in Lwt turns of their own, never on the
   stack of whoever queued the message, and it yields to the Lwt loop after
   each message, so a backlog never holds up the links; a loop service
   drains its mailbox in the same turn. *)
let run_mailbox ctx =
  let rec drain () =
    if ctx.busy then `Wait
    else
      match Queue.take_opt ctx.mailbox with
      | None -> `Wait
      | Some x ->
        ctx.busy <- true;
        let p = invoke ctx x in
        if Lwt.is_sleeping p then `Pending p
        else begin
          ctx.busy <- false;
          match ctx.placement with Pool -> `Yield | Loop -> drain ()
        end
  in
  let rec loop () =
    match drain () with
    | `Pending p ->
      p >>= fun () ->
      ctx.busy <- false;
      (match ctx.placement with Pool -> Lwt.pause () | Loop -> Lwt.return_unit) >>= loop
    | `Yield -> Lwt.pause () >>= loop
    | `Wait ->
      if ctx.running || ctx.busy || not (Queue.is_empty ctx.mailbox) then
        Wake.wait ctx.wake >>= fun () ->
        (* the wake-up may come from the receive path or a publisher (and
           run this at once): a pool service goes on in a later turn *)
        match ctx.placement with Pool -> Lwt.pause () >>= loop | Loop -> loop ()
      else Lwt.return_unit
  in
  loop ()

(* -- delivery --------------------------------------------------------------------------- *)

(* Resolves the requests waiting for [x] (of type [id]); how many. *)
let wake_waiters n id x =
  match n.waiters with
  | [] -> 0
  | _ ->
    let ws, rest = List.partition (fun w -> w.w_type = id && w.accept x) n.waiters in
    if ws <> [] then begin
      n.waiters <- rest;
      List.iter (fun w -> Lwt.wakeup_later w.resolve x) ws;
      refresh_interest n
    end;
    List.length ws

let deliver_local n x =
  let id = n.schema.type_id_of x in
  let delivered = ref 0 in
  List.iter
    (fun s ->
      if s.running && Hashtbl.mem s.handlers id then begin
        incr delivered;
        deliver s x
      end)
    n.services;
  !delivered + wake_waiters n id x

let combine a b =
  match (a, b) with
  | Back_pressured, _ | _, Back_pressured -> Back_pressured
  | Ok_sent, _ | _, Ok_sent -> Ok_sent
  | No_subscriber, No_subscriber -> No_subscriber

(* To the links other than [except]. *)
let to_links ?except n x =
  Lwt_list.fold_left_s
    (fun acc l ->
      match except with
      | Some e when e == l -> Lwt.return acc
      | _ -> SL.publish l x >|= combine acc)
    No_subscriber n.links

(** Publishes [x] to every local subscriber and every peer that wants it. *)
let publish_node n x =
  let local = deliver_local n x in
  to_links n x >|= fun st -> if local > 0 then combine Ok_sent st else st

let publish ctx x = publish_node ctx.node x

(* -- links --------------------------------------------------------------------------------- *)

(* [x], which came over link [l], to the other links whose peers want it. *)
let relay n l x =
  Lwt.async (fun () ->
      Lwt.catch (fun () -> to_links ~except:l n x >|= ignore) (fun e ->
          n.log (Printf.sprintf "mycelium-ocaml: node %s: forwarding failed: %s" n.name (Printexc.to_string e));
          Lwt.return_unit))

(* A data frame of a type some service takes as views, from link [self]'s
   receive path while the frame is still where it was read ([r] over its
   payload). An idle loop service with a view handler gets views of the
   frame itself, now; everyone else gets what a [Message] event gives (an
   owned value: other subscribers, a busy view subscriber's mailbox,
   requests, the relay to the other links), decoded once and only if
   someone needs it. The first decode checks the frame: when it fails,
   nothing was delivered and the link counts a bad frame. *)
let deliver_frame n self id (r : Mycelium.Tlv.reader) =
  let p0 = r.pos in
  let valid = ref false in
  let value = ref None in
  let decode_value () =
    match !value with
    | Some x -> x
    | None ->
      let x = n.schema.decode_fields id { r with pos = p0 } in
      value := Some x;
      x
  in
  (* a frame that decoded once fails again only under a decoder of another schema *)
  let checked f =
    match f () with
    | v ->
      valid := true;
      Some v
    | exception (Mycelium.Tlv.Decode_error e as ex) ->
      if not !valid then raise ex;
      n.log
        (Printf.sprintf "mycelium-ocaml: node %s: a %s frame that decoded once failed to decode again (%s): \
                         a view decoder of another schema?" n.name (Mycelium.Schema.type_name n.schema id)
           (Errc.to_string e));
      None
  in
  List.iter
    (fun s ->
      if s.running then
        match Hashtbl.find_opt s.handlers id with
        | None -> ()
        | Some (Views decode) when idle s -> (
          match checked (fun () -> decode { r with pos = p0; scope = s.view_scope }) with
          | Some call -> run_direct s id (with_views s call)
          | None -> Mycelium.View.expire s.view_scope)
        | Some (Views _ | Values _) -> Option.iter (deliver s) (checked decode_value))
    n.services;
  if List.exists (fun w -> w.w_type = id) n.waiters then
    Option.iter (fun x -> ignore (wake_waiters n id x)) (checked decode_value);
  match self with
  | Some l when n.relay && List.exists (fun o -> o != l && SL.peer_interested o id) n.links ->
    Option.iter (relay n l) (checked decode_value)
  | Some _ | None -> ()

(** Adds a link (connecting or listening) to the node. *)
let add_link n (cfg : SL.config) =
  let self = ref None in
  let on_event = function
    | SL.Message (_, x) ->
      ignore (deliver_local n x);
      (match !self with Some l when n.relay -> relay n l x | Some _ | None -> ())
    | SL.Interest _ | SL.Up _ | SL.Down _ -> refresh_interest n
    | SL.Bad_frame _ -> ()
  in
  let in_place =
    { Mycelium.Link.accepts = (fun id -> Hashtbl.mem n.view_types id);
      deliver = (fun id r -> deliver_frame n !self id r) }
  in
  SL.start ~schema:n.schema ~on_event ~in_place
    ~interest:(Hashtbl.fold (fun id () acc -> id :: acc) (local_interest n) []) cfg
  >|= function
  | Error e -> Error e
  | Ok l ->
    self := Some l;
    n.links <- l :: n.links;
    refresh_interest n;
    Ok l

(* -- services ------------------------------------------------------------------------------- *)

(** [f] for every message of [type_id] (replaces an earlier handler). *)
let subscribe ctx type_id f =
  Hashtbl.replace ctx.handlers type_id (Values f);
  refresh_interest ctx.node

(** [f] for every message of [type_id], as its view (replaces an earlier
    handler): [decode_view] is the schema module's
    [View.decode_any_fields], as for [Socket_link.start ~views], and [f]
    gets the generated view ([Link_test.View.Pong p]), whose [bytes] fields
    are [Mycelium.View.t]s.

    A message from a link reaches an idle service from the link's receive
    path, its views reading the bytes where the frame was read (the peer's
    shm ring, the connection's input buffer): nothing copied. A local
    publish, and a message that had to wait in the mailbox because the
    service was busy, get views over a copy (the value's encoding; counted
    in [view_copies]). Always: the views expire when [f]'s synchronous part
    returns or raises, and a later use raises [Mycelium.View.Expired] (also
    in the promise [f] returns: copy what you keep with [View.to_string]
    or [M.of_view]). Other subscribers of the type, requests and the other
    links get owned values as with [subscribe].

    Loop services only: a pool service's message waits in its mailbox
    after the frame is released, so this raises [Invalid_argument] there
    (and a service whose [on_start] raises does not start). *)
let subscribe_view ctx ~decode_view type_id f =
  (match ctx.placement with
   | Loop -> ()
   | Pool ->
     invalid_arg
       (Printf.sprintf
          "Service.subscribe_view: service '%s' is on the pool: its messages wait in its mailbox after \
           their frame is released, so it cannot take %s as views (place it on the loop, or use subscribe)"
          ctx.svc_name (Mycelium.Schema.type_name ctx.node.schema type_id)));
  if not (Mycelium.Schema.has_type ctx.node.schema type_id) then
    invalid_arg
      (Printf.sprintf "Service.subscribe_view: service '%s': type id %d is not a message type of schema %s"
         ctx.svc_name type_id ctx.node.schema.package);
  Hashtbl.replace ctx.handlers type_id (Views (fun r -> let v = decode_view type_id r in fun () -> f v));
  refresh_interest ctx.node

let unsubscribe ctx type_id =
  Hashtbl.remove ctx.handlers type_id;
  refresh_interest ctx.node

(** Publishes [req] and waits up to [timeout] seconds for the first message
    of [reply_type] that [accept] takes: [Error No_responder] when nobody
    subscribes to the request's type, [Error Request_timeout] after the
    timeout. The reply type is subscribed on the links while waiting. *)
let request ctx ~reply_type ~accept ~timeout req =
  let n = ctx.node in
  let p, u = Lwt.wait () in
  let w = { w_type = reply_type; accept; resolve = u } in
  n.waiters <- w :: n.waiters;
  refresh_interest n;
  let withdraw () =
    if List.memq w n.waiters then begin
      n.waiters <- List.filter (fun x -> x != w) n.waiters;
      refresh_interest n
    end
  in
  publish_node n req >>= function
  | No_subscriber ->
    withdraw ();
    Lwt.return (Error Errc.No_responder)
  | Ok_sent | Back_pressured ->
    Lwt.pick [ (p >|= fun x -> Ok x); (Lwt_unix.sleep timeout >|= fun () -> Error Errc.Request_timeout) ]
    >|= fun r ->
    withdraw ();
    r

(** Answers every [req_type] message with what [f] returns (if anything). *)
let serve ctx req_type f =
  subscribe ctx req_type (fun req ->
      f req >>= function
      | Some reply -> publish ctx reply >|= ignore
      | None -> Lwt.return_unit)

(** Runs [f ()] off the Lwt thread when the service is on the pool: on a
    system thread (Lwt_preemptive), so that CPU-bound or blocking work does
    not stall the links, heartbeats and other services (the runtime lock is
    released while [f] blocks in a system call, and at least every 50 ms
    while it computes and allocates). [f] must not use Lwt or the service
    API. On the loop, [f ()] runs inline, as everything on the loop does:
    no hand-off. *)
let offload ctx f =
  match ctx.placement with
  | Pool -> Lwt_preemptive.detach f ()
  | Loop -> ( match f () with v -> Lwt.return v | exception e -> Lwt.fail e)

(** Starts a service with its [params] (none by default) and [placement]
    (default [Pool], as in C++): [on_start] (messages that arrive meanwhile
    wait in the mailbox), then its mailbox task. *)
let start ?(params = Params.empty) ?(placement = Pool) n (svc : 'a service) =
  let ctx =
    { node = n; svc_name = svc.name; placement; handlers = Hashtbl.create 8;
      view_scope = Mycelium.View.new_scope (); view_copies = 0; mailbox = Queue.create ();
      wake = Wake.create (); busy = true; running = true; failures = 0; handled = 0; dropped = 0;
      slow_handlers = 0; slow_logged_at = neg_infinity; slow_unlogged = 0; drop_logged_at = neg_infinity;
      drop_unlogged = 0; loop = Lwt.return_unit; on_stop = svc.on_stop; params }
  in
  n.services <- ctx :: n.services;
  Lwt.catch
    (fun () -> svc.on_start ctx)
    (fun e ->
      (* not started: it takes no messages *)
      ctx.running <- false;
      ctx.busy <- false;
      n.services <- List.filter (fun s -> s != ctx) n.services;
      refresh_interest n;
      Lwt.fail e)
  >|= fun () ->
  ctx.busy <- false;
  ctx.loop <- run_mailbox ctx;
  refresh_interest n;
  ctx

(** Stops a service: no new messages, the queued ones are handled, then
    [on_stop]. *)
let stop_service ctx =
  if not ctx.running then Lwt.return_unit
  else begin
    ctx.running <- false;
    Wake.signal ctx.wake;
    refresh_interest ctx.node;
    ctx.loop >>= fun () ->
    ctx.node.services <- List.filter (fun s -> s != ctx) ctx.node.services;
    ctx.on_stop ctx
  end

(** Stops every service (see [stop_service]), then the links (a goodbye
    on each connection). *)
let stop n =
  n.stopped <- true;
  Lwt_list.iter_s stop_service n.services >>= fun () -> Lwt_list.iter_s SL.stop n.links
