(* The risk node program (mycelium-ocaml-risk-node, examples/trading_system)
   as its own process, driven as mycelium-run drives it: MYCELIUM_NODE,
   MYCELIUM_LINKS, MYCELIUM_SERVICES and a control channel (started,
   links-up, expect/go, ready, all-ready, stop). This test is the launcher
   and the other side of risk's link: an execution (answers risk_hello with
   a position snapshot, accepts an order only with the current epoch and a
   correct check, fills it and publishes the fill) that also plays the
   model (publishes the signals and signals_done).

   The crash case kills risk with SIGKILL after a first batch of signals,
   starts it again, publishes the next signals before the new incarnation
   is told that the deployment is ready (so they wait in its queue), and
   checks that every order execution accepts takes its position exactly to
   the signal's target, that order ids go on after the snapshot's
   last_order_id, and that risk_done counts the new incarnation only. *)

open Lwt.Infix
module SL = Mycelium_lwt.Socket_link
module Svc = Mycelium_lwt.Service
module T = Trading_risk.Trading_system
module R = Trading_risk.Risk

let timeout = 10.
let key = "test-key"

let exe () = Testutil.Util.env "MYCELIUM_OCAML_RISK_NODE"

(* -- execution (and the model) --------------------------------------------------------------- *)

type exec = {
  mutable ctx : T.any Svc.ctx option;
  mutable link : T.any SL.t option;
  positions : (string, int64) Hashtbl.t;
  mutable last_order_id : int64;
  mutable epoch : int64;  (** the last hello's: orders of other epochs are refused *)
  mutable hellos : int64 list;
  mutable accepted : (T.Order.t * int64) list;  (** with the position before it, newest first *)
  mutable refused : (T.Order.t * string) list;
  mutable rejections : T.Rejection.t list;
  mutable done_ : T.Risk_done.t list;
  changed : unit Lwt_condition.t;
}

let position e s = match Hashtbl.find_opt e.positions s with Some p -> p | None -> 0L

let exec_service e =
  { Svc.name = "exec";
    on_start =
      (fun ctx ->
        e.ctx <- Some ctx;
        let changed () = Lwt_condition.broadcast e.changed () in
        Svc.subscribe ctx T.Risk_hello.type_id (function
          | T.Risk_hello h ->
            e.epoch <- h.epoch;
            e.hellos <- h.epoch :: e.hellos;
            let syms = List.sort compare (Hashtbl.fold (fun s p acc -> (s, p) :: acc) e.positions []) in
            let count = List.length syms in
            let one index (symbol, position) =
              Svc.publish ctx
                (T.Position_snapshot { epoch = h.epoch; symbol; position; index; count; last_order_id = e.last_order_id })
              >|= ignore
            in
            (match syms with [] -> one 0 ("", 0L) | _ -> Lwt_list.iteri_s one syms) >|= changed
          | _ -> Lwt.return_unit);
        Svc.subscribe ctx T.Order.type_id (function
          | T.Order o ->
            if not (Int64.equal o.risk_epoch e.epoch) then begin
              e.refused <- (o, "epoch") :: e.refused;
              changed ();
              Lwt.return_unit
            end
            else if not (Int64.equal o.check (R.check_of_order ~key o)) then begin
              e.refused <- (o, "check") :: e.refused;
              changed ();
              Lwt.return_unit
            end
            else begin
              let before = position e o.symbol in
              let signed = match o.side with T.Side.Buy -> Int64.of_int o.qty | T.Side.Sell -> Int64.of_int (-o.qty) in
              let after = Int64.add before signed in
              Hashtbl.replace e.positions o.symbol after;
              e.last_order_id <- o.order_id;
              e.accepted <- (o, before) :: e.accepted;
              Svc.publish ctx
                (T.Fill { order_id = o.order_id; bar_seq = o.bar_seq; symbol = o.symbol; side = o.side; qty = o.qty;
                          px = o.limit; position = after })
              >|= fun _ -> changed ()
            end
          | _ -> Lwt.return_unit);
        Svc.subscribe ctx T.Rejection.type_id (function
          | T.Rejection r -> e.rejections <- r :: e.rejections; changed (); Lwt.return_unit
          | _ -> Lwt.return_unit);
        Svc.subscribe ctx T.Risk_done.type_id (function
          | T.Risk_done d -> e.done_ <- d :: e.done_; changed (); Lwt.return_unit
          | _ -> Lwt.return_unit);
        Lwt.return_unit);
    on_stop = (fun _ -> Lwt.return_unit) }

(* Waits (woken by execution's events, bounded by [timeout]) for [cond]. *)
let wait_for e what cond =
  let deadline = Unix.gettimeofday () +. timeout in
  let rec loop () =
    if cond () then Lwt.return_unit
    else
      let left = deadline -. Unix.gettimeofday () in
      if left <= 0. then Alcotest.failf "timed out after %.0f s waiting for %s" timeout what
      else Lwt.pick [ Lwt_condition.wait e.changed; Lwt_unix.sleep left ] >>= loop
  in
  loop ()

let signal ~bar_seq symbol target px =
  T.Signal { bar_seq; symbol; target; px; t_md = 1L; t_signal_in = 2L; t_signal_out = 3L }

let publish e x =
  match e.ctx with
  | None -> Alcotest.fail "execution is not running"
  | Some ctx -> (
    Svc.publish ctx x >|= function
    | Svc.Ok_sent -> ()
    | Svc.No_subscriber -> Alcotest.fail "risk was not subscribed to what the test published"
    | Svc.Back_pressured -> Alcotest.fail "back-pressured")

(* -- the risk process, as the launcher runs it ---------------------------------------------------- *)

type risk = {
  pid : int;
  ic : Lwt_io.input_channel;
  oc : Lwt_io.output_channel;
  ctl : Lwt_unix.file_descr;
  mutable stderr : string list;
  err_changed : unit Lwt_condition.t;
  mutable exited : bool;
}

let links_line ~kind path =
  Printf.sprintf
    "name=risk->exec role=connect kind=%s address=%s port=0 peers=exec wait=spin_then_block spin_us=100 \
     ring_capacity=4194304 overflow=block send_queue=4096 max_payload=1048576 heartbeat_ms=100 peer_timeout_ms=2000 \
     secret_file=-"
    kind path

let spawn ~kind path =
  let mine, theirs = Unix.socketpair ~cloexec:true Unix.PF_UNIX Unix.SOCK_STREAM 0 in
  Unix.clear_close_on_exec theirs;
  let err_r, err_w = Unix.pipe ~cloexec:true () in
  let ours =
    [ "MYCELIUM_NODE=risk";
      "MYCELIUM_LINKS=" ^ links_line ~kind path;
      "MYCELIUM_SERVICES=name=risk type=trading.risk placement=pool p.max_position=1000 p.max_notional=50000.0 p.key="
      ^ key;
      (* Unix.file_descr is the descriptor number on Unix *)
      Printf.sprintf "MYCELIUM_CONTROL_FD=%d" (Obj.magic theirs : int) ]
  in
  let inherited =
    List.filter
      (fun v -> not (String.length v >= 9 && String.sub v 0 9 = "MYCELIUM_"))
      (Array.to_list (Unix.environment ()))
  in
  let devnull = Unix.openfile "/dev/null" [ Unix.O_RDWR; Unix.O_CLOEXEC ] 0 in
  let program = exe () in
  let pid = Unix.create_process_env program [| program |] (Array.of_list (ours @ inherited)) devnull devnull err_w in
  List.iter Unix.close [ theirs; err_w; devnull ];
  let ctl = Lwt_unix.of_unix_file_descr mine in
  let r =
    { pid; ic = Lwt_io.of_fd ~mode:Lwt_io.input ctl; oc = Lwt_io.of_fd ~mode:Lwt_io.output ctl; ctl; stderr = [];
      err_changed = Lwt_condition.create (); exited = false }
  in
  let err = Lwt_io.of_unix_fd ~mode:Lwt_io.input err_r in
  let rec pump () =
    Lwt_io.read_line_opt err >>= function
    | Some l ->
      if Sys.getenv_opt "MYCELIUM_OCAML_TEST_LOG" <> None then prerr_endline ("[risk] " ^ l);
      r.stderr <- l :: r.stderr;
      Lwt_condition.broadcast r.err_changed ();
      pump ()
    | None -> Lwt_io.close err
  in
  Lwt.async (fun () -> Lwt.catch pump (fun _ -> Lwt.return_unit));
  r

let log_text r = String.concat "\n" (List.rev r.stderr)

let expect_line r what =
  Lwt.pick
    [ Lwt_io.read_line_opt r.ic;
      (Lwt_unix.sleep timeout >|= fun () ->
       Alcotest.failf "no %s line from risk within %.0f s; its log:\n%s" what timeout (log_text r)) ]
  >|= function
  | Some x -> x
  | None -> Alcotest.failf "risk closed the control channel (waiting for %s); its log:\n%s" what (log_text r)

let say r line = Lwt_io.write_line r.oc line >>= fun () -> Lwt_io.flush r.oc

let await_log r needle =
  let deadline = Unix.gettimeofday () +. timeout in
  let has () = List.exists (fun l -> Testutil.Astring_like.contains l needle) r.stderr in
  let rec loop () =
    if has () then Lwt.return_unit
    else
      let left = deadline -. Unix.gettimeofday () in
      if left <= 0. then Alcotest.failf "risk never logged %S; its log:\n%s" needle (log_text r)
      else Lwt.pick [ Lwt_condition.wait r.err_changed; Lwt_unix.sleep left ] >>= loop
  in
  loop ()

(* started, links-up, expect/go, ready: as the launcher. *)
let bring_up r =
  expect_line r "started" >>= fun x ->
  Alcotest.(check string) "started" "started" x;
  expect_line r "links-up" >>= fun x ->
  Alcotest.(check string) "risk subscribes to signal, fill, position_snapshot, signals_done" "links-up 2,5,7,11" x;
  say r "expect exec 3,4,6,12" >>= fun () ->
  say r "go" >>= fun () ->
  expect_line r "ready" >|= fun x -> Alcotest.(check string) "ready" "ready" x

let kill r =
  if r.exited then Lwt.return_unit
  else begin
    r.exited <- true;
    (try Unix.kill r.pid Sys.sigkill with Unix.Unix_error _ -> ());
    Lwt_unix.waitpid [] r.pid >>= fun _ -> Lwt.catch (fun () -> Lwt_unix.close r.ctl) (fun _ -> Lwt.return_unit)
  end

let stop r =
  say r "stop" >>= fun () ->
  expect_line r "stopped" >>= fun x ->
  Alcotest.(check string) "stopped" "stopped" x;
  r.exited <- true;
  Lwt.pick
    [ (Lwt_unix.waitpid [] r.pid >|= fun (_, st) -> Some st); (Lwt_unix.sleep timeout >|= fun () -> None) ]
  >>= fun st ->
  Lwt.catch (fun () -> Lwt_unix.close r.ctl) (fun _ -> Lwt.return_unit) >|= fun () ->
  match st with
  | Some (Unix.WEXITED c) -> Alcotest.(check int) "exit code after stop" 0 c
  | Some _ -> Alcotest.fail "risk died of a signal"
  | None -> (try Unix.kill r.pid Sys.sigkill with Unix.Unix_error _ -> ()); Alcotest.fail "risk did not exit after stop"

(* Execution's side of the link: [n] connections (the killed incarnation's
   gone), and the peer subscribed to what risk takes. "ready" from risk
   says that risk saw execution's interest, not that execution has seen
   risk's yet (the launcher waits for execution's own ready). *)
let await_risk_link e ~connections what =
  match e.link with
  | None -> Alcotest.fail "execution has no link"
  | Some l ->
    SL.await l ~timeout (fun () ->
        SL.connections l = connections
        && (connections = 0
           || List.for_all (SL.peer_interested l)
                [ T.Signal.type_id; T.Fill.type_id; T.Position_snapshot.type_id; T.Signals_done.type_id ]))
    >|= fun ok -> if not ok then Alcotest.failf "timed out after %.0f s waiting for %s" timeout what

(* -- the scenario ------------------------------------------------------------------------------------ *)

let orders_accepted e = List.length e.accepted

(* Every accepted order took execution's position to its signal's target;
   [targets] maps (bar_seq, symbol) to the target of the signal. *)
let check_orders e targets =
  List.iter
    (fun ((o : T.Order.t), before) ->
      let signed = match o.side with T.Side.Buy -> Int64.of_int o.qty | T.Side.Sell -> Int64.of_int (-o.qty) in
      match Hashtbl.find_opt targets (o.bar_seq, o.symbol) with
      | None -> Alcotest.failf "order %Lu for a signal never published" o.order_id
      | Some target ->
        Alcotest.(check int64) (Printf.sprintf "order %Lu takes %s to its target" o.order_id o.symbol) target
          (Int64.add before signed);
        Alcotest.(check bool) "t_risk_in <= t_risk_out, both stamped" true
          (Int64.compare o.t_risk_in 0L > 0 && Int64.compare o.t_risk_in o.t_risk_out <= 0))
    e.accepted

let scenario ~kind () =
  Lwt_main.run
    (let path =
       Filename.concat (Filename.get_temp_dir_name ()) (Printf.sprintf "myc-risk-test-%d-%s.sock" (Unix.getpid ()) kind)
     in
     let e =
       { ctx = None; link = None; positions = Hashtbl.create 8; last_order_id = 0L; epoch = 0L; hellos = [];
         accepted = []; refused = []; rejections = []; done_ = []; changed = Lwt_condition.create () }
     in
     let node = Svc.create ~relay:false ~schema:T.descriptor "exec" in
     let procs = ref [] in
     Lwt.finalize
       (fun () ->
         Svc.start node (exec_service e) >>= fun _ ->
         let cfg =
           { SL.default_config with
             name = "exec"; role = SL.Listen; address = SL.Unix_path path;
             link = { SL.default_config.link with node = "exec"; shm = kind = "shm" } }
         in
         (Svc.add_link node cfg >|= function Ok l -> e.link <- Some l | Error err -> Alcotest.fail err) >>= fun () ->
         let targets = Hashtbl.create 16 in
         let sig_ ~bar_seq s target px =
           Hashtbl.replace targets (bar_seq, s) target;
           publish e (signal ~bar_seq s target px)
         in
         (* first incarnation: a fresh epoch; the snapshot is empty *)
         let r1 = spawn ~kind path in
         procs := r1 :: !procs;
         bring_up r1 >>= fun () ->
         await_risk_link e ~connections:1 "risk's interest" >>= fun () ->
         say r1 "all-ready 2" >>= fun () ->
         wait_for e "the first risk_hello" (fun () -> e.hellos <> []) >>= fun () ->
         await_log r1 "recovered from execution's snapshot: 0 symbol(s), next order id 1" >>= fun () ->
         sig_ ~bar_seq:1L "AAA" 100L 10. >>= fun () ->
         sig_ ~bar_seq:1L "BBB" (-40L) 20. >>= fun () ->
         sig_ ~bar_seq:2L "AAA" 300L 11. >>= fun () ->
         (* over max_position *)
         sig_ ~bar_seq:2L "BBB" (-1001L) 20. >>= fun () ->
         (* over max_notional: 600 * 100 = 60000 > 50000 *)
         sig_ ~bar_seq:2L "CCC" 600L 100. >>= fun () ->
         publish e (T.Signals_done { signals = 5L; bars = 2L }) >>= fun () ->
         wait_for e "risk_done of the first incarnation" (fun () -> e.done_ <> []) >>= fun () ->
         (match e.done_ with
          | [ d ] -> Alcotest.(check (list int64)) "first risk_done" [ 3L; 2L; 5L ] [ d.orders; d.rejections; d.signals ]
          | _ -> Alcotest.fail "one risk_done expected");
         Alcotest.(check (list string)) "rejection reasons"
           [ "position limit: |-1001| > 1000"; "notional limit: |600| * 100 = 60000 > 50000" ]
           (List.rev_map (fun (x : T.Rejection.t) -> x.reason) e.rejections);
         Alcotest.(check (list int64)) "order ids 1, 2, 3" [ 1L; 2L; 3L ]
           (List.rev_map (fun ((o : T.Order.t), _) -> o.order_id) e.accepted);
         let epoch1 = e.epoch in
         Alcotest.(check bool) "every order carries the hello's epoch" true
           (List.for_all (fun ((o : T.Order.t), _) -> Int64.equal o.risk_epoch epoch1) e.accepted);
         check_orders e targets;
         (* crash: kill -9, then the launcher starts it again *)
         kill r1 >>= fun () ->
         await_risk_link e ~connections:0 "the killed risk's connection to close" >>= fun () ->
         let r2 = spawn ~kind path in
         procs := r2 :: !procs;
         bring_up r2 >>= fun () ->
         await_risk_link e ~connections:1 "the new risk's interest" >>= fun () ->
         (* signals reach the new risk before it may say hello: queued.
            Execution holds AAA 300, BBB -40 (last order id 3). *)
         sig_ ~bar_seq:3L "AAA" 300L 12. >>= fun () ->
         (* held already: no order (a risk that forgot would buy 300) *)
         sig_ ~bar_seq:3L "BBB" 0L 21. >>= fun () ->
         (* buy 40 *)
         sig_ ~bar_seq:3L "CCC" 10L 100. >>= fun () ->
         (* buy 10 *)
         sig_ ~bar_seq:4L "AAA" (-200L) 13. >>= fun () ->
         (* sell 500 *)
         publish e (T.Signals_done { signals = 9L; bars = 4L }) >>= fun () ->
         let before_hello = List.length e.hellos and accepted_before = orders_accepted e in
         say r2 "all-ready 2" >>= fun () ->
         wait_for e "risk_done of the second incarnation" (fun () -> List.length e.done_ = 2) >>= fun () ->
         Alcotest.(check int) "one more hello" (before_hello + 1) (List.length e.hellos);
         Alcotest.(check bool) "a fresh epoch" true (e.epoch <> epoch1);
         await_log r2 "recovered from execution's snapshot: 2 symbol(s), next order id 4, 5 input(s) queued meanwhile"
         >>= fun () ->
         (match e.done_ with
          | d :: _ ->
            Alcotest.(check (list int64)) "second risk_done: this incarnation's counts" [ 3L; 0L; 4L ]
              [ d.orders; d.rejections; d.signals ]
          | [] -> assert false);
         let second = List.filteri (fun i _ -> i < orders_accepted e - accepted_before) e.accepted in
         Alcotest.(check (list (pair int64 string))) "orders after the restart: ids from last_order_id + 1"
           [ (4L, "BBB buy 40"); (5L, "CCC buy 10"); (6L, "AAA sell 500") ]
           (List.rev_map
              (fun ((o : T.Order.t), _) ->
                (o.order_id, Printf.sprintf "%s %s %d" o.symbol (T.Side.to_string o.side) o.qty))
              second);
         Alcotest.(check bool) "the new epoch in the new orders" true
           (List.for_all (fun ((o : T.Order.t), _) -> Int64.equal o.risk_epoch e.epoch) second);
         check_orders e targets;
         Alcotest.(check int) "execution refused nothing" 0 (List.length e.refused);
         Alcotest.(check (list (pair string int64))) "execution's positions are the last targets"
           [ ("AAA", -200L); ("BBB", 0L); ("CCC", 10L) ]
           (List.sort compare (Hashtbl.fold (fun s p acc -> (s, p) :: acc) e.positions []));
         (* the fills reached risk: they were published before this
            signals_done, on the same link, so its risk_done comes after
            risk handled them; then a clean stop *)
         publish e (T.Signals_done { signals = 9L; bars = 4L }) >>= fun () ->
         wait_for e "the third risk_done" (fun () -> List.length e.done_ = 3) >>= fun () ->
         stop r2 >>= fun () ->
         await_log r2 "0 symbol(s) where committed <> filled")
       (fun () ->
         Lwt_list.iter_s kill !procs >>= fun () ->
         Svc.stop node >|= fun () -> try Unix.unlink path with Unix.Unix_error _ -> ()))

(* A bad param: the node does not start, and says why (error 3). *)
let test_bad_param () =
  Lwt_main.run
    (let mine, theirs = Unix.socketpair ~cloexec:true Unix.PF_UNIX Unix.SOCK_STREAM 0 in
     Unix.clear_close_on_exec theirs;
     let program = exe () in
     let env =
       Array.append
         [| "MYCELIUM_NODE=risk"; "MYCELIUM_LINKS=";
            "MYCELIUM_SERVICES=name=risk type=trading.risk placement=pool p.max_position=-5";
            Printf.sprintf "MYCELIUM_CONTROL_FD=%d" (Obj.magic theirs : int) |]
         (Array.of_list
            (List.filter
               (fun v -> not (String.length v >= 9 && String.sub v 0 9 = "MYCELIUM_"))
               (Array.to_list (Unix.environment ()))))
     in
     let devnull = Unix.openfile "/dev/null" [ Unix.O_RDWR; Unix.O_CLOEXEC ] 0 in
     let pid = Unix.create_process_env program [| program |] env devnull devnull devnull in
     List.iter Unix.close [ theirs; devnull ];
     let ctl = Lwt_unix.of_unix_file_descr mine in
     let ic = Lwt_io.of_fd ~mode:Lwt_io.input ctl in
     let reaped = ref false in
     Lwt.finalize
       (fun () ->
         Lwt.pick [ Lwt_io.read_line_opt ic; (Lwt_unix.sleep timeout >|= fun () -> None) ] >>= fun line ->
         Alcotest.(check (option string)) "the launcher hears why"
           (Some "error 3 node 'risk': service 'risk' did not start: service 'risk': max_position is -5, must be at least 0")
           line;
         Lwt_unix.waitpid [] pid >|= fun (_, st) ->
         reaped := true;
         Alcotest.(check bool) "exit code 3" true (st = Unix.WEXITED 3))
       (fun () ->
         if not !reaped then begin
           (try Unix.kill pid Sys.sigkill with Unix.Unix_error _ -> ());
           ignore (Unix.waitpid [] pid)
         end;
         Lwt.catch (fun () -> Lwt_unix.close ctl) (fun _ -> Lwt.return_unit)))

let () =
  (* a write to a risk process that was killed is an error, not a signal *)
  Sys.set_signal Sys.sigpipe Sys.Signal_ignore;
  Alcotest.run "risk_node"
    [ ( "node",
        [ Alcotest.test_case "orders, rejections, kill -9 and recovery from the snapshot (unix)" `Quick
            (scenario ~kind:"unix");
          Alcotest.test_case "the same over shared memory" `Quick (scenario ~kind:"shm");
          Alcotest.test_case "a bad param is refused with error 3" `Quick test_bad_param ] ) ]
