(* bench_rtt: round trips over a Unix socket link, OCaml client <-> C++
   echo node beside C++ client <-> the same C++ echo node, in the same run.

   One C++ echo node (mycelium-link-peer --services peer --placement loop
   --node-defaults: a node's default settings) listens on a Unix socket. Per payload size and round, alternating which
   goes first:
     cxx    a C++ client process (mycelium-link-peer --rtt N --placement
            loop): its pong handler records the round trip and publishes the
            next ping (closed loop);
     ocaml  this program: a Socket_link to the same node; the pong event
            records the round trip and publishes the next ping.
   --echo-cpu / --client-cpu pin the echo node and both clients (taskset),
   e.g. 0 and 1: the "split" placement of docs/benchmarks.md.
   Each chunk connects a fresh link; its first 10 % of samples are warm-up
   and dropped. ALL FIGURES ARE ROUND TRIPS. Also: minor words allocated by
   one decode of a ping frame (Gc.minor_words over 100,000 decodes).

   Prints median, p99, p99.9, max (us) and msg/s per path and size, the
   ratio ocaml/cxx of the medians, and writes JSON (--json). *)

open Lwt.Infix
module LT = Schemas.Link_test
module SL = Mycelium_lwt.Socket_link

let peer = ref ""
let count = ref 100_000
let rounds = ref 5
let sizes = ref "16,256,4096,65536"
let json = ref ""
let kind = ref "unix"
let echo_cpu = ref (-1)
let client_cpu = ref (-1)

external monotonic_ns : unit -> int = "mycelium_bench_monotonic_ns" [@@noalloc]

let die fmt = Printf.ksprintf (fun s -> prerr_endline ("bench_rtt: " ^ s); exit 2) fmt

(* -- the C++ processes ---------------------------------------------------------- *)

(* argv for the peer, under taskset when a CPU is given *)
let pinned cpu args =
  if cpu < 0 then (!peer, !peer :: args)
  else ("taskset", "taskset" :: "-c" :: string_of_int cpu :: !peer :: args)

let spawn ?(cpu = -1) args =
  let out_r, out_w = Unix.pipe ~cloexec:true () in
  let in_r, in_w = Unix.pipe ~cloexec:true () in
  let devnull = Unix.openfile "/dev/null" [ Unix.O_WRONLY ] 0 in
  let prog, argv = pinned cpu args in
  let pid = Unix.create_process_env prog (Array.of_list argv) (Unix.environment ()) in_r out_w devnull in
  Unix.close out_w;
  Unix.close in_r;
  Unix.close devnull;
  (pid, Unix.in_channel_of_descr out_r, in_w)

let reap pid = try Unix.kill pid Sys.sigkill; ignore (Unix.waitpid [] pid) with Unix.Unix_error _ -> ()

let cxx_chunk path n size =
  let pid, out, stdin_w =
    spawn ~cpu:!client_cpu [ "--kind"; !kind; "--connect"; path; "--services"; "none"; "--placement"; "loop";
            "--node-defaults"; "--rtt"; string_of_int n; "--rtt-size"; string_of_int size; "--peer-timeout-ms"; "10000" ]
  in
  let rec find () =
    match input_line out with
    | l when String.length l > 7 && String.sub l 0 7 = "rtt ns " ->
      List.map int_of_string (List.tl (List.tl (String.split_on_char ' ' l)))
    | _ -> find ()
    | exception End_of_file -> die "the C++ client exited without its samples"
  in
  let samples = Fun.protect ~finally:(fun () -> close_in out; Unix.close stdin_w; ignore (Unix.waitpid [] pid)) find in
  Array.of_list samples

let ocaml_chunk path n size =
  let payload = String.make size 'Z' in
  let samples = Array.make n 0 in
  let finished, fin_u = Lwt.wait () in
  let sent = ref 0 in
  let lref = ref None in
  let on_event = function
    | SL.Message (_, LT.Pong p) ->
      let i = Int64.to_int p.seq in
      samples.(i - 1) <- monotonic_ns () - !sent;
      if i < n then begin
        sent := monotonic_ns ();
        match !lref with
        | Some l -> Lwt.async (fun () -> SL.publish l (LT.Ping { seq = Int64.of_int (i + 1); payload }) >|= ignore)
        | None -> ()
      end
      else Lwt.wakeup_later fin_u ()
    | _ -> ()
  in
  Lwt_main.run
    (SL.start ~schema:LT.descriptor ~interest:[ LT.Pong.type_id ] ~on_event
       { SL.default_config with
         address = SL.Unix_path path; log = (fun _ -> ());
         link = { SL.default_config.link with node = "bench-ocaml"; peer_timeout = 10.; shm = (!kind = "shm") } }
     >>= function
     | Error e -> die "%s" e
     | Ok l ->
       lref := Some l;
       SL.await_peer_interest l LT.Ping.type_id ~timeout:30. >>= fun ok ->
       if not ok then die "the echo node did not subscribe to ping";
       sent := monotonic_ns ();
       SL.publish l (LT.Ping { seq = 1L; payload }) >>= fun _ ->
       Lwt.pick [ finished; (Lwt_unix.sleep 600. >|= fun () -> die "round trips did not finish in 600 s") ]
       >>= fun () -> SL.stop l);
  samples

(* -- statistics ---------------------------------------------------------------------- *)

type summary = { median : float; p99 : float; p999 : float; max : float; rate : float; n : int }

let summarize xs =
  let a = Array.of_list xs in
  Array.sort compare a;
  let n = Array.length a in
  let q p = float_of_int a.(min (n - 1) (int_of_float (p *. float_of_int n))) /. 1000. in
  let mean = Array.fold_left (fun s x -> s +. float_of_int x) 0. a /. float_of_int n in
  { median = q 0.5; p99 = q 0.99; p999 = q 0.999; max = float_of_int a.(n - 1) /. 1000.; rate = 1e9 /. mean; n }

let drop_warmup a =
  let k = Array.length a / 10 in
  Array.to_list (Array.sub a k (Array.length a - k))

let decode_minor_words () =
  let frame = Mycelium.Frame.encode_data LT.descriptor ~sequence:1L (LT.Ping { seq = 1L; payload = String.make 16 'x' }) in
  let n = 100_000 in
  ignore (Mycelium.Frame.decode_data LT.descriptor frame);
  let before = Gc.minor_words () in
  for _ = 1 to n do
    match Mycelium.Frame.decode_data LT.descriptor frame with Ok _ -> () | Error _ -> die "decode failed"
  done;
  (Gc.minor_words () -. before) /. float_of_int n

let () =
  Arg.parse
    [ ("--peer", Arg.Set_string peer, "PATH  mycelium-link-peer");
      ("--count", Arg.Set_int count, "N  round trips per path and size, over all rounds (default 100000)");
      ("--rounds", Arg.Set_int rounds, "R  alternating rounds (default 5)");
      ("--sizes", Arg.Set_string sizes, "LIST  payload bytes, comma-separated (default 16,256,4096,65536)");
      ("--json", Arg.Set_string json, "FILE  also write the results as JSON");
      ("--kind", Arg.Set_string kind, "unix|shm  link kind (default unix)");
      ("--echo-cpu", Arg.Set_int echo_cpu, "N  pin the C++ echo node to CPU N (taskset)");
      ("--client-cpu", Arg.Set_int client_cpu, "N  pin both clients (this program and the C++ client) to CPU N") ]
    (fun a -> die "unexpected argument %s" a)
    "bench_rtt --peer build/tests/conformance/mycelium-link-peer [options]";
  if !peer = "" then die "give --peer PATH/TO/mycelium-link-peer";
  if !kind <> "unix" && !kind <> "shm" then die "--kind: '%s' is not unix or shm" !kind;
  Sys.set_signal Sys.sigpipe Sys.Signal_ignore;
  if !client_cpu >= 0 then begin
    let cmd = Printf.sprintf "taskset -pc %d %d > /dev/null" !client_cpu (Unix.getpid ()) in
    if Sys.command cmd <> 0 then die "could not pin this process to CPU %d (%s)" !client_cpu cmd
  end;
  let path = Filename.concat (Filename.get_temp_dir_name ()) (Printf.sprintf "mycelium-bench-ocaml-%d.sock" (Unix.getpid ())) in
  let echo, echo_out, echo_in =
    spawn ~cpu:!echo_cpu [ "--kind"; !kind; "--listen"; path; "--services"; "peer"; "--placement"; "loop"; "--node-defaults";
            "--name"; "echo"; "--peer-timeout-ms"; "10000" ]
  in
  Fun.protect ~finally:(fun () -> Unix.close echo_in; reap echo; (try Sys.remove path with _ -> ()))
    (fun () ->
      (match input_line echo_out with
       | l when String.length l > 6 && String.sub l 0 6 = "ready " -> ()
       | l -> die "unexpected line from the echo node: %s" l
       | exception End_of_file -> die "the echo node exited");
      let per_chunk = max 100 (!count / !rounds) in
      let results =
        List.map
          (fun size ->
            let cxx = ref [] and oc = ref [] in
            for r = 1 to !rounds do
              let run_cxx () = cxx := drop_warmup (cxx_chunk path per_chunk size) @ !cxx in
              let run_oc () = oc := drop_warmup (ocaml_chunk path per_chunk size) @ !oc in
              if r mod 2 = 0 then (run_cxx (); run_oc ()) else (run_oc (); run_cxx ())
            done;
            let c = summarize !cxx and o = summarize !oc in
            Printf.printf "%6d B  %-22s median %8.2f  p99 %8.2f  p99.9 %8.2f  max %9.2f us  %8.0f msg/s  (%d round trips)\n"
              size (Printf.sprintf "C++ <-> C++ (%s)" !kind) c.median c.p99 c.p999 c.max c.rate c.n;
            Printf.printf "%6d B  %-22s median %8.2f  p99 %8.2f  p99.9 %8.2f  max %9.2f us  %8.0f msg/s  (%d round trips)\n"
              size (Printf.sprintf "OCaml <-> C++ (%s)" !kind) o.median o.p99 o.p999 o.max o.rate o.n;
            Printf.printf "%6d B  ratio OCaml/C++ median %.2fx\n%!" size (o.median /. c.median);
            (size, c, o))
          (List.map int_of_string (String.split_on_char ',' !sizes))
      in
      let words = decode_minor_words () in
      Printf.printf "decode of a 16-byte ping frame: %.1f minor words\n" words;
      if !json <> "" then begin
        let oc = open_out !json in
        let s (x : summary) =
          Printf.sprintf "{\"median_us\": %.3f, \"p99_us\": %.3f, \"p999_us\": %.3f, \"max_us\": %.3f, \"msg_per_s\": %.0f, \"round_trips\": %d}"
            x.median x.p99 x.p999 x.max x.rate x.n
        in
        Printf.fprintf oc "{\n  \"benchmark\": \"bench_rtt\",\n  \"kind\": \"%s\",\n  \"unit\": \"round trip\",\n  \"decode_minor_words_16B_ping\": %.1f,\n  \"sizes\": [\n%s\n  ]\n}\n" !kind words
          (String.concat ",\n"
             (List.map (fun (size, c, o) ->
                  Printf.sprintf "    {\"payload_bytes\": %d, \"cxx_cxx\": %s, \"ocaml_cxx\": %s, \"ratio_median\": %.3f}" size (s c) (s o) (o.median /. c.median))
                results));
        close_out oc
      end)
