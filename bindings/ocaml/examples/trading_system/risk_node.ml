(* mycelium-ocaml-risk-node: the OCaml pre-trade risk service of the
   multi-language trading system (apps/trading_system/trading_system.toml,
   docs/ocaml.md "The risk node"), one service type, trading.risk.

   signal -> order (with its check hash) or rejection; fills keep
   execution's positions; signals_done -> risk_done. At start, once the
   deployment is ready (the launcher's all-ready, which a node restarted
   after a crash gets too), risk says risk_hello {epoch} and queues every
   signal until execution's position_snapshot for that epoch is complete
   (Risk: committed := the snapshot, next order id := last_order_id + 1).
   So a risk process killed with kill -9 and restarted by the launcher
   never sends an order computed from positions execution does not hold.

   Params ([services.risk] of the topology, in MYCELIUM_SERVICES):
   max_position (int, 1000), max_notional (float, 5e6), key (string,
   "mycelium-risk-key"), epoch (int >= 1; default CLOCK_REALTIME in ns at
   start, fresh per incarnation), hello_retry_ms (int, 1000; 0: say hello
   once).

   A topology node:
     [[nodes]]  name = "risk"  runtime = "command"  control = true
                command = ["mycelium-ocaml-risk-node"]  services = ["risk"]
     [services.risk]  type = "trading.risk"  params = { max_position = 1000 } *)

open Lwt.Infix
module T = Trading_risk.Trading_system
module R = Trading_risk.Risk
module Svc = Mycelium_lwt.Service
module Params = Mycelium_lwt.Params

external monotonic_ns : unit -> int = "mycelium_risk_monotonic_ns" [@@noalloc]
external realtime_ns : unit -> int = "mycelium_risk_realtime_ns" [@@noalloc]

(* rejections are logged one line each up to this many, then only counted *)
let rejections_logged = 10

let risk name =
  let r = ref None in
  let stopped = ref false in
  let log fmt = Printf.ksprintf (fun s -> prerr_endline (Printf.sprintf "risk %s: %s" name s)) fmt in
  {
    Svc.name;
    on_start =
      (fun ctx ->
        let p = Svc.params ctx in
        let max_position = Params.int p "max_position" ~default:R.default_max_position in
        let max_notional = Params.float p "max_notional" ~default:R.default_max_notional in
        let key = Params.string p "key" ~default:R.default_key in
        let epoch = Params.int p "epoch" ~default:(realtime_ns ()) in
        let hello_retry_ms = Params.int p "hello_retry_ms" ~default:1000 in
        let cfg = { R.max_position = Int64.of_int max_position; max_notional; key; epoch = Int64.of_int epoch } in
        (match R.validate cfg with
         | Error e -> raise (Params.Bad (Printf.sprintf "service '%s': %s" name e))
         | Ok () -> ());
        if hello_retry_ms < 0 then
          raise (Params.Bad (Printf.sprintf "service '%s': hello_retry_ms is %d, must be at least 0" name hello_retry_ms));
        let t = R.create cfg in
        r := Some t;
        let recovered_p, recovered_u = Lwt.wait () in
        let unsent_logged = ref false and ignored_logged = ref 0 in
        let emit = function
          | R.Order o -> (
            let o = { o with t_risk_out = Int64.of_int (monotonic_ns ()) } in
            Svc.publish ctx (T.Order o) >|= function
            | Svc.Ok_sent -> ()
            | Svc.No_subscriber ->
              (* it reached nobody: take its quantity back (Risk.void) *)
              R.void t o;
              if not !unsent_logged then begin
                unsent_logged := true;
                log "order %Lu (%s) reached no subscriber: voided (further ones are only counted)" o.order_id o.symbol
              end
            | Svc.Back_pressured ->
              log "order %Lu (%s): back-pressured by a peer's full send queue" o.order_id o.symbol)
          | R.Rejection x ->
            let n = (R.stats t).rejections in
            if n <= rejections_logged then
              log "rejected bar %Lu %s %Ld: %s%s" x.bar_seq x.symbol x.wanted x.reason
                (if n = rejections_logged then " (further rejections are only counted)" else "");
            Svc.publish ctx (T.Rejection x) >|= ignore
          | R.Unchanged -> Lwt.return_unit
          | R.Done d ->
            log "signals_done: risk_done {orders %Lu, rejections %Lu, signals %Lu}" d.orders d.rejections d.signals;
            Svc.publish ctx (T.Risk_done d) >|= ignore
        in
        let rec drain () = match R.step t with None -> Lwt.return_unit | Some out -> emit out >>= drain in
        Svc.subscribe ctx T.Signal.type_id (fun m ->
            let t_in = monotonic_ns () in
            match m with
            | T.Signal s ->
              R.submit t (R.Signal (s, Int64.of_int t_in));
              drain ()
            | _ -> Lwt.return_unit);
        Svc.subscribe ctx T.Signals_done.type_id (function
          | T.Signals_done d -> R.submit t (R.Signals_done d); drain ()
          | _ -> Lwt.return_unit);
        Svc.subscribe ctx T.Fill.type_id (function T.Fill f -> R.on_fill t f; Lwt.return_unit | _ -> Lwt.return_unit);
        Svc.subscribe ctx T.Position_snapshot.type_id (function
          | T.Position_snapshot s -> (
            match R.on_snapshot t s with
            | R.Complete ->
              log "recovered from execution's snapshot: %d symbol(s), next order id %Lu, %d input(s) queued meanwhile"
                s.count (R.next_order_id t) (R.queued t);
              Lwt.wakeup_later recovered_u ();
              drain ()
            | R.Partial _ -> Lwt.return_unit
            | R.Ignored why ->
              if !ignored_logged < 5 then begin
                incr ignored_logged;
                log "position_snapshot ignored: %s" why
              end;
              Lwt.return_unit)
          | _ -> Lwt.return_unit);
        log "epoch %Lu, max_position %d, max_notional %g: waiting for the deployment, then for execution's snapshot"
          cfg.epoch max_position max_notional;
        (* hello once the deployment is ready; again while no complete
           snapshot came within hello_retry_ms *)
        let rec hello attempt =
          if !stopped || R.recovered t then Lwt.return_unit
          else
            Svc.publish ctx (R.hello t) >>= fun st ->
            if attempt > 1 || st <> Svc.Ok_sent then
              log "risk_hello {epoch %Lu} (attempt %d): %s" cfg.epoch attempt
                (match st with Svc.Ok_sent -> "sent" | Svc.No_subscriber -> "no subscriber" | Svc.Back_pressured -> "back-pressured");
            if hello_retry_ms = 0 then Lwt.return_unit
            else
              Lwt.pick [ recovered_p; Lwt_unix.sleep (float_of_int hello_retry_ms /. 1000.) ] >>= fun () ->
              hello (attempt + 1)
        in
        Lwt.async (fun () ->
            Lwt.catch
              (fun () -> Mycelium_node.Node.deployment_ready () >>= fun _ -> hello 1)
              (fun e -> log "hello failed: %s" (Printexc.to_string e); Lwt.return_unit));
        Lwt.return_unit);
    on_stop =
      (fun _ ->
        stopped := true;
        (match !r with
         | None -> ()
         | Some t ->
           let st = R.stats t in
           let mm = R.mismatches t in
           log "stopping: %d signal(s): %d order(s), %d rejection(s), %d unchanged, %d voided; %d queued at most, %d still queued%s; %d snapshot message(s) ignored; %d symbol(s) where committed <> filled%s"
             st.signals st.orders st.rejections st.unchanged st.voided st.queued_max (R.queued t)
             (if R.recovered t then "" else " (no complete snapshot came)")
             st.snapshots_ignored (List.length mm)
             (match mm with
              | [] -> ""
              | _ ->
                ": " ^ String.concat ", "
                         (List.filteri (fun i _ -> i < 5) mm
                         |> List.map (fun (s, c, f) -> Printf.sprintf "%s %Ld/%Ld" s c f))));
        Lwt.return_unit);
  }

let () =
  Mycelium_node.Node.run ~program:"mycelium-ocaml-risk-node" ~schema:T.descriptor
    [ { Mycelium_node.Node.type_name = "trading.risk"; make = risk } ]
