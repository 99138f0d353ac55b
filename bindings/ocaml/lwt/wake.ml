(* A one-place wake-up for a task that waits for work (a connection's
   writer, a service's mailbox): [signal] resolves the waiting [wait], or,
   when nobody waits, makes the next [wait] return at once, so a signal is
   never lost while the task is busy. Cheaper than a Lwt_condition, which
   allocates a finaliser per wait. One waiter at a time; Lwt thread only. *)

type t = { mutable waiter : unit Lwt.u option; mutable signalled : bool }

let create () = { waiter = None; signalled = false }

let signal w =
  match w.waiter with
  | Some u ->
    w.waiter <- None;
    Lwt.wakeup_later u ()
  | None -> w.signalled <- true

let wait w =
  if w.signalled then begin
    w.signalled <- false;
    Lwt.return_unit
  end
  else begin
    (* a task: cancelling the waiter (e.g. by Lwt.pick) cancels it *)
    let p, u = Lwt.task () in
    w.waiter <- Some u;
    p
  end
