(* The pre-trade risk logic of the trading system
   (examples/trading_system/risk.ml), with no peer: the check hash and its
   published test vectors (docs/ocaml.md, for execution's C++ side), the
   limits, the order from the delta to the committed position, and the
   recovery from execution's position snapshot with the signals queued
   meanwhile. *)

module R = Trading_risk.Risk
module T = Trading_risk.Trading_system

let u64 = Alcotest.testable (fun f x -> Format.fprintf f "0x%016Lx" x) Int64.equal
let i64 = Alcotest.int64

let cfg ?(max_position = 1000L) ?(max_notional = 5e6) ?(key = "mycelium-risk-key") ?(epoch = 7L) () =
  { R.max_position; max_notional; key; epoch }

let signal ?(bar_seq = 1L) ?(px = 100.) symbol target =
  T.Signal.{ bar_seq; symbol; target; px; t_md = 11L; t_signal_in = 12L; t_signal_out = 13L }

(* one input through a recovered risk *)
let recovered ?(last_order_id = 0L) c =
  let t = R.create c in
  (match R.on_snapshot t { epoch = c.epoch; symbol = ""; position = 0L; index = 0; count = 0; last_order_id } with
   | R.Complete -> ()
   | _ -> Alcotest.fail "an empty snapshot did not complete");
  t

let run t ?(t_in = 99L) s =
  R.submit t (R.Signal (s, t_in));
  match R.step t with Some out -> out | None -> Alcotest.fail "a recovered risk did not process a signal"

let order = function R.Order o -> o | _ -> Alcotest.fail "expected an order"
let rejection = function R.Rejection r -> r | _ -> Alcotest.fail "expected a rejection"

(* -- the check hash ------------------------------------------------------------------------ *)

(* The vectors of docs/ocaml.md ("The check hash"), computed independently
   (Python: struct.pack of the same fields); the C++ execution checks the
   same three. *)
let vectors =
  [ ("mycelium-risk-key", 1L, 0L, "AAPL", T.Side.Buy, 100, 189.25, 1L, 0xcc5b74f9ce55cd50L);
    ("mycelium-risk-key", 4242L, 1234567L, "MSFT", T.Side.Sell, 37, 411.07, 1733065200123456789L, 0xffe7599963c62045L);
    ( "cl\xc3\xa9", -1L (* 2^64-1 *), Int64.min_int (* 2^63 *), "BRK.B", T.Side.Sell, 0xFFFF_FFFF, 0.1, 0L,
      0x05003d3051639252L ) ]

let test_check_vectors () =
  (* the FNV-1a 64 core against its published values *)
  Alcotest.(check u64) "fnv1a64 \"\"" 0xcbf29ce484222325L (R.fnv1a64 "");
  Alcotest.(check u64) "fnv1a64 \"a\"" 0xaf63dc4c8601ec8cL (R.fnv1a64 "a");
  Alcotest.(check u64) "fnv1a64 \"foobar\"" 0x85944171f73967e8L (R.fnv1a64 "foobar");
  List.iteri
    (fun i (key, order_id, bar_seq, symbol, side, qty, limit, risk_epoch, want) ->
      Alcotest.(check u64) (Printf.sprintf "vector %d" (i + 1)) want
        (R.check ~key ~order_id ~bar_seq ~symbol ~side ~qty ~limit ~risk_epoch);
      let o =
        { T.Order.default with order_id; bar_seq; symbol; side; qty; limit; risk_epoch; check = 12345L; t_md = 1L;
                               t_risk_out = 2L }
      in
      Alcotest.(check u64) (Printf.sprintf "vector %d from the order (check and timings not hashed)" (i + 1)) want
        (R.check_of_order ~key o))
    vectors;
  (* every input counts *)
  let base = R.check ~key:"k" ~order_id:1L ~bar_seq:2L ~symbol:"S" ~side:T.Side.Buy ~qty:3 ~limit:4.5 ~risk_epoch:6L in
  let differs what h = if Int64.equal h base then Alcotest.failf "changing %s left the check unchanged" what in
  differs "key" (R.check ~key:"K" ~order_id:1L ~bar_seq:2L ~symbol:"S" ~side:T.Side.Buy ~qty:3 ~limit:4.5 ~risk_epoch:6L);
  differs "order_id" (R.check ~key:"k" ~order_id:2L ~bar_seq:2L ~symbol:"S" ~side:T.Side.Buy ~qty:3 ~limit:4.5 ~risk_epoch:6L);
  differs "bar_seq" (R.check ~key:"k" ~order_id:1L ~bar_seq:3L ~symbol:"S" ~side:T.Side.Buy ~qty:3 ~limit:4.5 ~risk_epoch:6L);
  differs "symbol" (R.check ~key:"k" ~order_id:1L ~bar_seq:2L ~symbol:"T" ~side:T.Side.Buy ~qty:3 ~limit:4.5 ~risk_epoch:6L);
  differs "side" (R.check ~key:"k" ~order_id:1L ~bar_seq:2L ~symbol:"S" ~side:T.Side.Sell ~qty:3 ~limit:4.5 ~risk_epoch:6L);
  differs "qty" (R.check ~key:"k" ~order_id:1L ~bar_seq:2L ~symbol:"S" ~side:T.Side.Buy ~qty:4 ~limit:4.5 ~risk_epoch:6L);
  differs "limit" (R.check ~key:"k" ~order_id:1L ~bar_seq:2L ~symbol:"S" ~side:T.Side.Buy ~qty:3 ~limit:(-4.5) ~risk_epoch:6L);
  differs "risk_epoch" (R.check ~key:"k" ~order_id:1L ~bar_seq:2L ~symbol:"S" ~side:T.Side.Buy ~qty:3 ~limit:4.5 ~risk_epoch:7L);
  (* the bytes are the fields' in order, without lengths: the key and the
     symbol are just concatenated (FNV-1a of the whole byte string) *)
  let le64 x = String.init 8 (fun i -> Char.chr (Int64.to_int (Int64.shift_right_logical x (8 * i)) land 0xff)) in
  let le32 x = String.init 4 (fun i -> Char.chr ((x lsr (8 * i)) land 0xff)) in
  let bytes =
    String.concat "" [ "k"; le64 1L; le64 2L; "S"; "\x01"; le32 3; le64 (Int64.bits_of_float 4.5); le64 6L ]
  in
  Alcotest.(check u64) "the byte layout" (R.fnv1a64 bytes) base

(* -- limits ---------------------------------------------------------------------------------- *)

let test_limits () =
  let t = recovered (cfg ()) in
  (* at the limit: accepted *)
  let o = order (run t (signal "A" 1000L ~px:10.)) in
  Alcotest.(check int) "qty at the limit" 1000 o.qty;
  let o = order (run t (signal "B" (-1000L) ~px:10.)) in
  Alcotest.(check bool) "short at the limit: sell" true (o.side = T.Side.Sell);
  (* over it, either side *)
  let r = rejection (run t (signal "A" 1001L ~bar_seq:5L ~px:10.)) in
  Alcotest.(check string) "position reason" "position limit: |1001| > 1000" r.reason;
  Alcotest.(check i64) "wanted" 1001L r.wanted;
  Alcotest.(check i64) "bar_seq" 5L r.bar_seq;
  Alcotest.(check string) "symbol" "A" r.symbol;
  let r = rejection (run t (signal "C" (-1001L))) in
  Alcotest.(check string) "short over the limit" "position limit: |-1001| > 1000" r.reason;
  let r = rejection (run t (signal "C" Int64.min_int)) in
  Alcotest.(check string) "min_int (no overflow in |T|)" "position limit: |-9223372036854775808| > 1000" r.reason;
  Alcotest.(check i64) "a rejection leaves committed" 1000L (R.committed t "A");
  Alcotest.(check i64) "nothing committed for C" 0L (R.committed t "C");
  (* notional: |T| * px against max_notional, at it accepted, over it refused *)
  let t = recovered (cfg ~max_notional:50_000. ()) in
  let o = order (run t (signal "N" 500L ~px:100.)) in
  Alcotest.(check int) "notional at the limit" 500 o.qty;
  let r = rejection (run t (signal "N" (-501L) ~px:100.)) in
  Alcotest.(check string) "notional reason" "notional limit: |-501| * 100 = 50100 > 50000" r.reason;
  Alcotest.(check i64) "committed kept" 500L (R.committed t "N");
  (* a position limit is checked before the notional *)
  let r = rejection (run t (signal "N" 2000L ~px:1e9)) in
  Alcotest.(check string) "position first" "position limit: |2000| > 1000" r.reason;
  (* a price that cannot be a limit *)
  List.iter
    (fun px ->
      let r = rejection (run t (signal "P" 10L ~px)) in
      Alcotest.(check string) (Printf.sprintf "px %g" px) (Printf.sprintf "bad price: px = %g" px) r.reason)
    [ nan; 0.; -5.; infinity ];
  (* delta 0 comes first: a committed position is never rejected again *)
  Alcotest.(check bool) "unchanged" true (run t (signal "N" 500L ~px:nan) = R.Unchanged);
  (* a huge price does not make the reason longer than the schema allows *)
  let t = recovered (cfg ~max_notional:1. ()) in
  let r = rejection (run t (signal "X" (-999L) ~px:1.7976931348623157e308)) in
  Alcotest.(check bool) "reason within 128 bytes" true (String.length r.reason <= 128);
  let st = R.stats t in
  Alcotest.(check (pair int int)) "counts: 1 signal, 1 rejection" (1, 1) (st.signals, st.rejections)

let test_config () =
  let bad c want =
    match R.validate c with Ok () -> Alcotest.failf "accepted: %s" want | Error e -> Alcotest.(check string) want want e
  in
  bad (cfg ~max_position:(-1L) ()) "max_position is -1, must be at least 0";
  bad (cfg ~max_notional:nan ()) "max_notional is nan, must be a number >= 0";
  bad (cfg ~max_notional:(-1.) ()) "max_notional is -1, must be a number >= 0";
  bad (cfg ~epoch:0L ()) "epoch is 0, must be at least 1";
  Alcotest.(check bool) "defaults" true (R.validate (cfg ()) = Ok ());
  Alcotest.check_raises "create refuses a bad config" (Invalid_argument "Risk.create: epoch is 0, must be at least 1")
    (fun () -> ignore (R.create (cfg ~epoch:0L ())))

(* -- orders from the delta ----------------------------------------------------------------- *)

let test_delta_and_committed () =
  let c = cfg ~key:"sekrit" ~epoch:42L () in
  let t = recovered c in
  let o1 = order (run t ~t_in:555L (signal "AAPL" 100L ~bar_seq:3L ~px:189.25)) in
  Alcotest.(check i64) "first id" 1L o1.order_id;
  Alcotest.(check bool) "buy" true (o1.side = T.Side.Buy);
  Alcotest.(check int) "qty" 100 o1.qty;
  Alcotest.(check (float 0.)) "limit = px" 189.25 o1.limit;
  Alcotest.(check i64) "bar_seq" 3L o1.bar_seq;
  Alcotest.(check i64) "epoch" 42L o1.risk_epoch;
  Alcotest.(check (list i64)) "timings copied, t_risk_in from the handler, t_risk_out left to the publisher"
    [ 11L; 12L; 13L; 555L; 0L ] [ o1.t_md; o1.t_signal_in; o1.t_signal_out; o1.t_risk_in; o1.t_risk_out ];
  Alcotest.(check u64) "check" (R.check_of_order ~key:"sekrit" o1) o1.check;
  Alcotest.(check i64) "committed := target" 100L (R.committed t "AAPL");
  (* through zero: the whole delta in one order *)
  let o2 = order (run t (signal "AAPL" (-50L) ~px:190.)) in
  Alcotest.(check (list string)) "id 2, sell 150"
    [ "2"; "sell"; "150" ] [ Int64.to_string o2.order_id; T.Side.to_string o2.side; string_of_int o2.qty ];
  Alcotest.(check i64) "committed" (-50L) (R.committed t "AAPL");
  Alcotest.(check bool) "same target: nothing" true (run t (signal "AAPL" (-50L)) = R.Unchanged);
  (* symbols are apart *)
  let o3 = order (run t (signal "MSFT" (-7L))) in
  Alcotest.(check (pair int string)) "another symbol from 0" (7, "sell") (o3.qty, T.Side.to_string o3.side);
  Alcotest.(check i64) "next id" 4L (R.next_order_id t);
  (* a rejected signal uses no id *)
  ignore (rejection (run t (signal "MSFT" 5000L)));
  let o4 = order (run t (signal "MSFT" 0L)) in
  Alcotest.(check (pair i64 int)) "back to flat, id 4" (4L, 7) (o4.order_id, o4.qty);
  (* signals_done: this incarnation's counts *)
  R.submit t (R.Signals_done { signals = 6L; bars = 6L });
  (match R.step t with
   | Some (R.Done d) ->
     Alcotest.(check (list i64)) "orders, rejections, signals" [ 4L; 1L; 6L ] [ d.orders; d.rejections; d.signals ]
   | _ -> Alcotest.fail "signals_done gave no risk_done");
  Alcotest.(check int) "unchanged counted" 1 (R.stats t).unchanged

let test_void () =
  let t = recovered (cfg ()) in
  let o1 = order (run t (signal "A" 100L)) in
  let o2 = order (run t (signal "A" 40L)) in
  (* the first reached nobody: execution holds -60 from o2 alone *)
  R.void t o1;
  Alcotest.(check i64) "committed without the voided order" (-60L) (R.committed t "A");
  let o3 = order (run t (signal "A" 40L)) in
  Alcotest.(check (pair string int)) "the next signal orders what is missing" ("buy", 100)
    (T.Side.to_string o3.side, o3.qty);
  Alcotest.(check i64) "ids go on (no reuse)" 3L o3.order_id;
  ignore o2;
  let st = R.stats t in
  Alcotest.(check (pair int int)) "orders 2, voided 1" (2, 1) (st.orders, st.voided)

let test_fills () =
  let t = recovered (cfg ()) in
  ignore (order (run t (signal "A" 100L)));
  Alcotest.(check bool) "in flight: a mismatch" true (R.mismatches t = [ ("A", 100L, 0L) ]);
  R.on_fill t { T.Fill.default with symbol = "A"; position = 100L; qty = 100 };
  Alcotest.(check i64) "filled := fill.position" 100L (R.filled t "A");
  Alcotest.(check bool) "filled: no mismatch" true (R.mismatches t = [])

(* -- recovery ------------------------------------------------------------------------------------- *)

let snap ?(epoch = 7L) ?(last_order_id = 0L) ~index ~count symbol position =
  T.Position_snapshot.{ epoch; symbol; position; index; count; last_order_id }

let test_recovery () =
  let t = R.create (cfg ()) in
  Alcotest.(check bool) "the hello carries the epoch" true (R.hello t = T.Risk_hello { epoch = 7L });
  (* signals before the snapshot are queued, not dropped, not processed *)
  R.submit t (R.Signal (signal "A" 100L ~bar_seq:1L, 1L));
  R.submit t (R.Signal (signal "B" (-20L) ~bar_seq:1L, 2L));
  R.submit t (R.Signal (signal "A" 150L ~bar_seq:2L, 3L));
  R.submit t (R.Signal (signal "C" 5L ~bar_seq:2L, 4L));
  R.submit t (R.Signals_done { signals = 4L; bars = 2L });
  Alcotest.(check bool) "nothing before the snapshot" true (R.step t = None);
  Alcotest.(check int) "queued" 5 (R.queued t);
  (* another epoch's snapshot (an earlier incarnation's answer) is ignored *)
  (match R.on_snapshot t (snap ~epoch:6L ~index:0 ~count:1 "A" 999L) with
   | R.Ignored why -> Alcotest.(check string) "why" "epoch 6 is not ours (7)" why
   | _ -> Alcotest.fail "another epoch's snapshot was taken");
  (match R.on_snapshot t (snap ~index:0 ~count:2 ~last_order_id:41L "A" 150L) with
   | R.Partial (1, 2) -> ()
   | _ -> Alcotest.fail "index 0 of 2: expected Partial (1, 2)");
  Alcotest.(check bool) "a partial snapshot processes nothing" true (R.step t = None);
  (match R.on_snapshot t (snap ~index:5 ~count:2 "X" 1L) with
   | R.Ignored why -> Alcotest.(check string) "bad index" "index 5 outside a snapshot of 2" why
   | _ -> Alcotest.fail "an index outside the count was taken");
  (match R.on_snapshot t (snap ~index:1 ~count:2 ~last_order_id:41L "B" (-20L)) with
   | R.Complete -> ()
   | _ -> Alcotest.fail "index 1 of 2 did not complete");
  Alcotest.(check bool) "recovered" true (R.recovered t);
  Alcotest.(check (pair i64 i64)) "committed := snapshot" (150L, -20L) (R.committed t "A", R.committed t "B");
  Alcotest.(check i64) "filled := snapshot" 150L (R.filled t "A");
  Alcotest.(check i64) "next id := last_order_id + 1" 42L (R.next_order_id t);
  (* the queue, in arrival order, against the snapshot's positions: A 100
     sells 50 (not buys 100), B -20 is held already, A 150 buys 50 back *)
  let outs = List.init 5 (fun _ -> match R.step t with Some o -> o | None -> Alcotest.fail "queue ended early") in
  (match outs with
   | [ R.Order a1; R.Unchanged; R.Order a2; R.Order c; R.Done d ] ->
     Alcotest.(check (list string)) "A 150 -> 100: sell 50, id 42" [ "42"; "sell"; "50"; "1" ]
       [ Int64.to_string a1.order_id; T.Side.to_string a1.side; string_of_int a1.qty; Int64.to_string a1.t_risk_in ];
     Alcotest.(check (list string)) "A 100 -> 150: buy 50, id 43" [ "43"; "buy"; "50"; "3" ]
       [ Int64.to_string a2.order_id; T.Side.to_string a2.side; string_of_int a2.qty; Int64.to_string a2.t_risk_in ];
     Alcotest.(check (pair i64 int)) "C: a symbol not in the snapshot starts flat, id 44" (44L, 5) (c.order_id, c.qty);
     Alcotest.(check (list i64)) "risk_done after the queued signals" [ 3L; 0L; 4L ] [ d.orders; d.rejections; d.signals ]
   | _ -> Alcotest.fail "the queue did not come out as order, unchanged, order, order, done");
  Alcotest.(check bool) "queue empty" true (R.step t = None);
  Alcotest.(check int) "queued at most" 5 (R.stats t).queued_max;
  (* after recovery: snapshots change nothing *)
  (match R.on_snapshot t (snap ~index:0 ~count:1 ~last_order_id:1000L "A" 0L) with
   | R.Ignored "already recovered" -> ()
   | _ -> Alcotest.fail "a snapshot after recovery was taken");
  Alcotest.(check (pair i64 i64)) "unchanged" (150L, 45L) (R.committed t "A", R.next_order_id t);
  (* live now: a new signal goes straight through *)
  let o = order (run t (signal "C" 0L)) in
  Alcotest.(check (pair i64 int)) "live" (45L, 5) (o.order_id, o.qty);
  Alcotest.(check int) "snapshot messages ignored" 3 (R.stats t).snapshots_ignored

let test_snapshot_again () =
  (* an empty snapshot (count 0) *)
  let t = R.create (cfg ()) in
  R.submit t (R.Signal (signal "A" 10L, 0L));
  (match R.on_snapshot t (snap ~index:0 ~count:0 ~last_order_id:9L "" 0L) with
   | R.Complete -> ()
   | _ -> Alcotest.fail "count 0 did not complete");
  let o = order (match R.step t with Some x -> x | None -> Alcotest.fail "not processed") in
  Alcotest.(check (pair i64 int)) "id 10, buy 10" (10L, 10) (o.order_id, o.qty);
  (* a second answer (hello repeated) that starts while the first is
     partial: index 0 starts afresh, the first complete one wins *)
  let t = R.create (cfg ()) in
  ignore (R.on_snapshot t (snap ~index:0 ~count:3 ~last_order_id:5L "A" 1L));
  ignore (R.on_snapshot t (snap ~index:1 ~count:3 ~last_order_id:5L "B" 2L));
  (match R.on_snapshot t (snap ~index:0 ~count:2 ~last_order_id:6L "A" 3L) with
   | R.Partial (1, 2) -> ()
   | _ -> Alcotest.fail "index 0 did not start afresh");
  (match R.on_snapshot t (snap ~index:1 ~count:2 ~last_order_id:6L "C" 4L) with
   | R.Complete -> ()
   | _ -> Alcotest.fail "the second answer did not complete");
  Alcotest.(check (list i64)) "the second answer's positions, none of the first's" [ 3L; 0L; 4L; 7L ]
    [ R.committed t "A"; R.committed t "B"; R.committed t "C"; R.next_order_id t ]

let () =
  Alcotest.run "risk"
    [ ("check", [ Alcotest.test_case "FNV-1a 64 and the published vectors" `Quick test_check_vectors ]);
      ( "limits",
        [ Alcotest.test_case "position, notional, price, boundaries, reasons" `Quick test_limits;
          Alcotest.test_case "config validation" `Quick test_config ] );
      ( "orders",
        [ Alcotest.test_case "delta, side, ids, committed, risk_done" `Quick test_delta_and_committed;
          Alcotest.test_case "an order that reached nobody is voided" `Quick test_void;
          Alcotest.test_case "fills keep execution's positions" `Quick test_fills ] );
      ( "recovery",
        [ Alcotest.test_case "queued signals after a snapshot, order ids" `Quick test_recovery;
          Alcotest.test_case "empty snapshot, a second answer" `Quick test_snapshot_again ] ) ]
