(* mycelium-ocaml-trading-node: an OCaml node of the trading example
   (apps/examples/trading/trading.toml) with one service type,
   example.executor, the OCaml twin of apps/examples/trading/executor.cpp:
   it fills every order at its limit price, counts the quotes, and
   publishes executor_done {fills; quotes} once both strategy_done and
   session_end have arrived (they come over different links in a split
   deployment: the strategy may finish before the last quotes arrive).

   Started by mycelium-run (topologies/ocaml-executor.toml), which hands it
   the topology's services of node exec-ocaml in MYCELIUM_SERVICES:
     command = ["mycelium-ocaml-trading-node"]
     services = ["executor"]   [services.executor] type = "example.executor" *)

open Lwt.Infix
module T = Trading
module Svc = Mycelium_lwt.Service

let executor name =
  {
    Svc.name;
    on_start =
      (fun ctx ->
        let quotes = ref 0L and fills = ref 0L in
        let strategy_done = ref false and session_end = ref false in
        let finish () =
          if !strategy_done && !session_end then
            Svc.publish ctx (T.Executor_done { fills = !fills; quotes = !quotes }) >|= ignore
          else Lwt.return_unit
        in
        Svc.subscribe ctx T.Quote.type_id (fun _ -> quotes := Int64.succ !quotes; Lwt.return_unit);
        Svc.subscribe ctx T.Order.type_id (function
          | T.Order o ->
            Svc.publish ctx (T.Fill { order_id = o.order_id; side = o.side; qty = o.qty; px = o.limit }) >|= fun _ ->
            fills := Int64.succ !fills
          | _ -> Lwt.return_unit);
        Svc.subscribe ctx T.Strategy_done.type_id (fun _ -> strategy_done := true; finish ());
        Svc.subscribe ctx T.Session_end.type_id (fun _ -> session_end := true; finish ());
        Lwt.return_unit);
    on_stop = (fun _ -> Lwt.return_unit);
  }

let () =
  Mycelium_node.Node.run ~program:"mycelium-ocaml-trading-node" ~schema:T.descriptor
    [ { Mycelium_node.Node.type_name = "example.executor"; make = executor } ]
