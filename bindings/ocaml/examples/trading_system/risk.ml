(* The pre-trade risk logic of the trading system (apps/trading_system,
   docs/ocaml.md "The risk node"), without I/O: the node program
   (risk_node.ml) feeds it messages and publishes what it returns; the
   tests (test/test_risk.ml) drive it directly.

   - [committed]: per symbol, the signed sum of the quantities of the
     orders risk approved (what execution will hold once it filled them);
     a signal's order is [target - committed].
   - Recovery: a (re)started risk knows nothing of the orders an earlier
     incarnation sent. It says [risk_hello {epoch}] and queues every input
     until execution's [position_snapshot] for that epoch is complete; then
     committed := the snapshot's positions, the next order id :=
     last_order_id + 1, and the queue is processed in arrival order.
     Nothing is dropped, and no order is computed from a position that
     execution does not hold.
   - [check]: FNV-1a 64 over the key and the order's fields (see [check]),
     which execution recomputes before it accepts an order. *)

module T = Trading_system

(* -- the check hash ---------------------------------------------------------------------- *)

let fnv_offset = 0xcbf29ce484222325L (* 14695981039346656037 *)
let fnv_prime = 0x100000001b3L (* 1099511628211 *)

let[@inline] byte h b = Int64.mul (Int64.logxor h (Int64.of_int (b land 0xff))) fnv_prime

let bytes_of_string h s =
  let h = ref h in
  for i = 0 to String.length s - 1 do
    h := byte !h (Char.code (String.unsafe_get s i))
  done;
  !h

(* [n] little-endian bytes of [x] *)
let le64 h x =
  let h = ref h in
  for i = 0 to 7 do
    h := byte !h (Int64.to_int (Int64.shift_right_logical x (8 * i)))
  done;
  !h

let le32 h x =
  let h = ref h in
  for i = 0 to 3 do
    h := byte !h ((x lsr (8 * i)) land 0xff)
  done;
  !h

(** FNV-1a 64 of a byte string (offset basis 14695981039346656037, prime
    1099511628211). *)
let fnv1a64 s = bytes_of_string fnv_offset s

(** The order's [check]: FNV-1a 64 over, in this order, the bytes of [key]
    (UTF-8); [order_id] (8 bytes little-endian); [bar_seq] (8 LE); the
    bytes of [symbol]; [side] (1 byte: 1 buy, 2 sell); [qty] (4 LE); the
    IEEE-754 bits of [limit] (8 LE); [risk_epoch] (8 LE). No lengths, no
    separators. u64 fields are the unsigned bit patterns ([int64]). *)
let check ~key ~order_id ~bar_seq ~symbol ~side ~qty ~limit ~risk_epoch =
  let h = bytes_of_string fnv_offset key in
  let h = le64 h order_id in
  let h = le64 h bar_seq in
  let h = bytes_of_string h symbol in
  let h = byte h (T.Side.to_int side) in
  let h = le32 h qty in
  let h = le64 h (Int64.bits_of_float limit) in
  le64 h risk_epoch

(** [check] of an order's fields (its own [check] field is not an input). *)
let check_of_order ~key (o : T.Order.t) =
  check ~key ~order_id:o.order_id ~bar_seq:o.bar_seq ~symbol:o.symbol ~side:o.side ~qty:o.qty ~limit:o.limit
    ~risk_epoch:o.risk_epoch

(* -- configuration ------------------------------------------------------------------------- *)

type config = {
  max_position : int64;  (** |target| above it is rejected *)
  max_notional : float;  (** |target| * px above it is rejected *)
  key : string;  (** the check hash's key, shared with execution *)
  epoch : int64;  (** this incarnation's: in risk_hello, in every order *)
}

let default_max_position = 1000
let default_max_notional = 5e6
let default_key = "mycelium-risk-key"

(** [Error] names the bad value. *)
let validate c =
  if Int64.compare c.max_position 0L < 0 then Error (Printf.sprintf "max_position is %Ld, must be at least 0" c.max_position)
  else if not (c.max_notional >= 0.) then Error (Printf.sprintf "max_notional is %g, must be a number >= 0" c.max_notional)
  else if Int64.compare c.epoch 0L <= 0 then Error (Printf.sprintf "epoch is %Ld, must be at least 1" c.epoch)
  else Ok ()

(* -- state ------------------------------------------------------------------------------------ *)

(** An input, with the time its handler was entered (t_risk_in). *)
type input =
  | Signal of T.Signal.t * int64
  | Signals_done of T.Signals_done.t

(** What an input comes to (the node publishes the messages). *)
type output =
  | Order of T.Order.t  (** t_risk_out is 0: the publisher stamps it *)
  | Rejection of T.Rejection.t
  | Unchanged  (** the target is the committed position: nothing to do *)
  | Done of T.Risk_done.t  (** for signals_done: this incarnation's counts *)

type counters = {
  mutable signals : int;  (** handled (not queued) in this incarnation *)
  mutable orders : int;  (** published (minus those [void] took back) *)
  mutable rejections : int;
  mutable unchanged : int;
  mutable voided : int;  (** orders that reached no subscriber ([void]) *)
  mutable queued_max : int;  (** the longest the queue was *)
  mutable snapshots_ignored : int;  (** other epochs, after recovery, malformed *)
}

type t = {
  cfg : config;
  committed : (string, int64) Hashtbl.t;
  filled : (string, int64) Hashtbl.t;  (** execution's position per symbol, from fills and the snapshot *)
  mutable next_order_id : int64;
  mutable recovered : bool;
  queue : input Queue.t;  (** inputs waiting for the snapshot *)
  (* the snapshot being collected: its count, and index -> (symbol, position) *)
  mutable snap_count : int;
  snap : (int, string * int64) Hashtbl.t;
  mutable snap_last_order_id : int64;
  stats : counters;
}

let create cfg =
  (match validate cfg with Ok () -> () | Error e -> invalid_arg ("Risk.create: " ^ e));
  { cfg; committed = Hashtbl.create 64; filled = Hashtbl.create 64; next_order_id = 1L; recovered = false;
    queue = Queue.create (); snap_count = -1; snap = Hashtbl.create 64; snap_last_order_id = 0L;
    stats =
      { signals = 0; orders = 0; rejections = 0; unchanged = 0; voided = 0; queued_max = 0; snapshots_ignored = 0 } }

let config t = t.cfg
let stats t = t.stats
let recovered t = t.recovered
let queued t = Queue.length t.queue
let next_order_id t = t.next_order_id
let position tbl symbol = match Hashtbl.find_opt tbl symbol with Some p -> p | None -> 0L
let committed t symbol = position t.committed symbol
let filled t symbol = position t.filled symbol

(** Symbols whose committed position differs from execution's (filled):
    (symbol, committed, filled). Transiently non-empty while orders are in
    flight; at the end of a session it should be empty. *)
let mismatches t =
  let syms = Hashtbl.create 64 in
  Hashtbl.iter (fun s _ -> Hashtbl.replace syms s ()) t.committed;
  Hashtbl.iter (fun s _ -> Hashtbl.replace syms s ()) t.filled;
  Hashtbl.fold
    (fun s () acc ->
      let c = committed t s and f = filled t s in
      if Int64.equal c f then acc else (s, c, f) :: acc)
    syms []
  |> List.sort compare

(** What risk says when the deployment is ready (and again while no
    complete snapshot came). *)
let hello t = T.Risk_hello { epoch = t.cfg.epoch }

(* -- decisions ---------------------------------------------------------------------------------- *)

(* |x| > m for m >= 0, without overflow at Int64.min_int *)
let abs_exceeds x m = if Int64.compare x 0L < 0 then Int64.compare x (Int64.neg m) < 0 else Int64.compare x m > 0

let max_qty = 0xFFFF_FFFFL (* u32 *)

let max_reason = 128 (* the schema's max for rejection.reason *)

let reject t (s : T.Signal.t) reason =
  let reason = if String.length reason > max_reason then String.sub reason 0 max_reason else reason in
  t.stats.rejections <- t.stats.rejections + 1;
  Rejection (T.Rejection.{ bar_seq = s.bar_seq; symbol = s.symbol; wanted = s.target; reason })

let decide t (s : T.Signal.t) t_in =
  t.stats.signals <- t.stats.signals + 1;
  let have = committed t s.symbol in
  let delta = Int64.sub s.target have in
  let cfg = t.cfg in
  if Int64.equal delta 0L then begin
    t.stats.unchanged <- t.stats.unchanged + 1;
    Unchanged
  end
  else if abs_exceeds s.target cfg.max_position then
    reject t s (Printf.sprintf "position limit: |%Ld| > %Ld" s.target cfg.max_position)
  else if not (Float.is_finite s.px && s.px > 0.) then reject t s (Printf.sprintf "bad price: px = %g" s.px)
  else
    let notional = Float.abs (Int64.to_float s.target) *. s.px in
    if notional > cfg.max_notional then
      reject t s (Printf.sprintf "notional limit: |%Ld| * %.6g = %.6g > %.6g" s.target s.px notional cfg.max_notional)
    else if abs_exceeds delta max_qty then
      (* only after a snapshot with a position far outside the limits *)
      reject t s (Printf.sprintf "order size: |%Ld - %Ld| > %Ld (u32 qty)" s.target have max_qty)
    else begin
      let side = if Int64.compare delta 0L > 0 then T.Side.Buy else T.Side.Sell in
      let qty = Int64.to_int (Int64.abs delta) in
      let order_id = t.next_order_id in
      t.next_order_id <- Int64.succ order_id;
      Hashtbl.replace t.committed s.symbol s.target;
      t.stats.orders <- t.stats.orders + 1;
      let check =
        check ~key:cfg.key ~order_id ~bar_seq:s.bar_seq ~symbol:s.symbol ~side ~qty ~limit:s.px ~risk_epoch:cfg.epoch
      in
      Order
        T.Order.{ order_id; bar_seq = s.bar_seq; symbol = s.symbol; side; qty; limit = s.px; risk_epoch = cfg.epoch;
                  check; t_md = s.t_md; t_signal_in = s.t_signal_in; t_signal_out = s.t_signal_out; t_risk_in = t_in;
                  t_risk_out = 0L }
    end

let process t = function
  | Signal (s, t_in) -> decide t s t_in
  | Signals_done _ ->
    let st = t.stats in
    Done T.Risk_done.{ orders = Int64.of_int st.orders; rejections = Int64.of_int st.rejections;
                       signals = Int64.of_int st.signals }

(** Queues an input; [step] processes it (at once, unless risk is still
    waiting for its snapshot). *)
let submit t x =
  Queue.push x t.queue;
  let n = Queue.length t.queue in
  if n > t.stats.queued_max then t.stats.queued_max <- n

(** Processes the oldest queued input: [None] when the queue is empty or
    the snapshot is not complete yet. The caller publishes what it gets,
    then steps again. *)
let step t = if t.recovered && not (Queue.is_empty t.queue) then Some (process t (Queue.pop t.queue)) else None

(** An order that reached nobody (publish said no subscriber): its
    quantity is taken back from the committed position, so that the next
    signal of the symbol orders what execution is actually missing. *)
let void t (o : T.Order.t) =
  let signed = match o.side with T.Side.Buy -> Int64.of_int o.qty | T.Side.Sell -> Int64.neg (Int64.of_int o.qty) in
  Hashtbl.replace t.committed o.symbol (Int64.sub (committed t o.symbol) signed);
  t.stats.orders <- t.stats.orders - 1;
  t.stats.voided <- t.stats.voided + 1

(** Execution's position after a fill. *)
let on_fill t (f : T.Fill.t) = Hashtbl.replace t.filled f.symbol f.position

(* -- recovery ------------------------------------------------------------------------------------- *)

type snapshot_result =
  | Complete  (** committed and the order id are set; [step] now processes the queue *)
  | Partial of int * int  (** (have, count) *)
  | Ignored of string  (** why: another epoch, already recovered, bad index *)

let complete t =
  Hashtbl.reset t.committed;
  Hashtbl.iter
    (fun _ (sym, pos) ->
      Hashtbl.replace t.committed sym pos;
      Hashtbl.replace t.filled sym pos)
    t.snap;
  t.next_order_id <- Int64.succ t.snap_last_order_id;
  t.recovered <- true;
  Hashtbl.reset t.snap;
  Complete

let ignored t why =
  t.stats.snapshots_ignored <- t.stats.snapshots_ignored + 1;
  Ignored why

(** One [position_snapshot] message. Execution answers a hello with
    [count] messages, [index] 0 to count-1 (count 0: a single message, no
    positions). Only messages of this incarnation's epoch count; index 0
    starts a snapshot afresh (execution answers every hello, so a repeated
    hello may bring a second answer); the first complete one wins and later
    ones are ignored. [last_order_id] is the highest of the messages. *)
let on_snapshot t (s : T.Position_snapshot.t) =
  if t.recovered then ignored t "already recovered"
  else if not (Int64.equal s.epoch t.cfg.epoch) then
    ignored t (Printf.sprintf "epoch %Lu is not ours (%Lu)" s.epoch t.cfg.epoch)
  else if s.count = 0 then begin
    Hashtbl.reset t.snap;
    t.snap_last_order_id <- s.last_order_id;
    complete t
  end
  else if s.index < 0 || s.index >= s.count then
    ignored t (Printf.sprintf "index %d outside a snapshot of %d" s.index s.count)
  else begin
    if s.index = 0 || s.count <> t.snap_count then begin
      Hashtbl.reset t.snap;
      t.snap_count <- s.count;
      t.snap_last_order_id <- s.last_order_id
    end;
    Hashtbl.replace t.snap s.index (s.symbol, s.position);
    if Int64.unsigned_compare s.last_order_id t.snap_last_order_id > 0 then t.snap_last_order_id <- s.last_order_id;
    let have = Hashtbl.length t.snap in
    if have = t.snap_count then complete t else Partial (have, t.snap_count)
  end
