(* A real mycelium-link-peer process for the conformance tests: started
   with pipes, its "ready port=N" line awaited with a timeout, its stderr
   collected, and always killed and reaped ([with_peer] cleans up even when
   the test fails). *)

open Lwt.Infix

type t = {
  pid : int;
  stdin : Lwt_io.output_channel;
  mutable stderr_lines : string list;
  changed : unit Lwt_condition.t;
  mutable exited : bool;
  port : int;
}

let exe () = Util.env "MYCELIUM_LINK_PEER"

let pump_lines ic on_line =
  let rec loop () =
    Lwt_io.read_line_opt ic >>= function
    | Some l -> on_line l; loop ()
    | None -> Lwt.return_unit
  in
  Lwt.catch loop (fun _ -> Lwt.return_unit)

(** Starts the peer with [args] and waits up to 20 s for its ready line. *)
let start ?exe:(program = exe ()) args =
  let in_r, in_w = Unix.pipe ~cloexec:true () in
  let out_r, out_w = Unix.pipe ~cloexec:true () in
  let err_r, err_w = Unix.pipe ~cloexec:true () in
  let argv = Array.of_list (program :: args) in
  let pid = Unix.create_process argv.(0) argv in_r out_w err_w in
  Unix.close in_r;
  Unix.close out_w;
  Unix.close err_w;
  let stdin = Lwt_io.of_unix_fd ~mode:Lwt_io.output in_w in
  let stdout = Lwt_io.of_unix_fd ~mode:Lwt_io.input out_r in
  let stderr = Lwt_io.of_unix_fd ~mode:Lwt_io.input err_r in
  let changed = Lwt_condition.create () in
  let p = ref None in
  let lines = ref [] in
  Lwt.async (fun () ->
      pump_lines stderr (fun l ->
          (match !p with Some p -> p.stderr_lines <- l :: p.stderr_lines | None -> lines := l :: !lines);
          Lwt_condition.broadcast changed ()));
  Lwt.pick
    [ Lwt_io.read_line_opt stdout;
      (Lwt_unix.sleep 20. >|= fun () -> None) ]
  >>= fun line ->
  match line with
  | Some l when String.length l > 11 && String.sub l 0 11 = "ready port=" ->
    let port = Scanf.sscanf l "ready port=%d" (fun x -> x) in
    let t = { pid; stdin; stderr_lines = !lines; changed; exited = false; port } in
    p := Some t;
    Lwt.async (fun () -> pump_lines stdout (fun _ -> ()));
    Lwt.return t
  | _ ->
    (try Unix.kill pid Sys.sigkill with Unix.Unix_error _ -> ());
    ignore (Unix.waitpid [] pid);
    Alcotest.failf "%s %s printed no ready line within 20 s; stderr:\n%s"
      program (String.concat " " args) (String.concat "\n" (List.rev !lines))

(** Kills the peer (SIGKILL) and reaps it. *)
let kill t =
  if not t.exited then begin
    t.exited <- true;
    (try Unix.kill t.pid Sys.sigkill with Unix.Unix_error _ -> ());
    Lwt_unix.waitpid [] t.pid >|= ignore
  end
  else Lwt.return_unit

(** Stops the peer cleanly (EOF on its stdin); SIGKILL after 10 s. Returns its exit code. *)
let stop t =
  if t.exited then Lwt.return (-1)
  else begin
    t.exited <- true;
    Lwt.catch (fun () -> Lwt_io.close t.stdin) (fun _ -> Lwt.return_unit) >>= fun () ->
    Lwt.pick
      [ (Lwt_unix.waitpid [] t.pid >|= fun (_, st) -> Some st);
        (Lwt_unix.sleep 10. >|= fun () -> None) ]
    >>= function
    | Some (Unix.WEXITED c) -> Lwt.return c
    | Some _ -> Lwt.return (-2)
    | None ->
      (try Unix.kill t.pid Sys.sigkill with Unix.Unix_error _ -> ());
      Lwt_unix.waitpid [] t.pid >|= fun _ -> -3
  end

(** Waits up to 10 s for a stderr line containing [needle]. *)
let await_stderr t needle =
  let has () = List.exists (fun l -> Astring_like.contains l needle) t.stderr_lines in
  let deadline = Unix.gettimeofday () +. 10. in
  let rec loop () =
    if has () then Lwt.return_unit
    else
      let left = deadline -. Unix.gettimeofday () in
      if left <= 0. then
        Alcotest.failf "the peer never logged %S; its stderr:\n%s" needle
          (String.concat "\n" (List.rev t.stderr_lines))
      else
        Lwt.pick [ Lwt_condition.wait t.changed; Lwt_unix.sleep left ] >>= loop
  in
  loop ()

(** Runs [f peer], then kills and reaps the peer whatever happened. *)
let with_peer ?exe args f =
  start ?exe args >>= fun p ->
  Lwt.finalize (fun () -> f p) (fun () -> kill p)
