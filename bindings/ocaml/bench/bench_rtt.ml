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

   Where the OCaml side's time goes, per size: the OCaml client's own work
   per round trip (pong handler entered -> next ping in the ring or the send
   queue), the GC's major cycles and compactions during its round trips,
   and, in this process without a peer, one in-place decode of a pong frame
   from a bigarray, one in-place encode of a ping into a bigarray slot, and
   a plain copy of the payload (the floor of each).

   --decode view (default) has the OCaml client take pongs as views
   (Socket_link.start ~views, Link_test.View: the payload is not copied out
   of the ring); --decode copy takes them as Message events with the
   payload copied into an OCaml string (the allocating decoder, what the
   figures before the views were measured with).

   --gc node (default) runs with the GC setting of an OCaml node
   (Mycelium_lwt.Gc_policy: no automatic compaction); --gc default keeps
   OCaml's defaults (what the figures before the policy were measured
   with).

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
let gc = ref "node"
let decode = ref "view"
let gap_us = ref 0

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

(* Samples live outside the OCaml heap (like the C++ client's vector): an
   int array of the heap would be marked by every major GC cycle and bill
   the benchmark's own bookkeeping to the OCaml link. *)
type samples = (int, Bigarray.int_elt, Bigarray.c_layout) Bigarray.Array1.t

let new_samples n : samples = Bigarray.Array1.create Bigarray.int Bigarray.c_layout n

let cxx_chunk path n size =
  let pid, out, stdin_w =
    spawn ~cpu:!client_cpu [ "--kind"; !kind; "--connect"; path; "--services"; "none"; "--placement"; "loop";
            "--node-defaults"; "--rtt"; string_of_int n; "--rtt-size"; string_of_int size; "--peer-timeout-ms"; "10000";
            "--rtt-gap-us"; string_of_int !gap_us ]
  in
  let rec find () =
    match input_line out with
    | l when String.length l > 7 && String.sub l 0 7 = "rtt ns " ->
      List.map int_of_string (List.tl (List.tl (String.split_on_char ' ' l)))
    | _ -> find ()
    | exception End_of_file -> die "the C++ client exited without its samples"
  in
  let samples = Fun.protect ~finally:(fun () -> close_in out; Unix.close stdin_w; ignore (Unix.waitpid [] pid)) find in
  let a = new_samples (List.length samples) in
  List.iteri (fun i x -> a.{i} <- x) samples;
  a

(* What the OCaml client's chunks did besides round trips. *)
type gc_count = { mutable majors : int; mutable compactions : int; mutable rtts : int }

let new_gc_count () = { majors = 0; compactions = 0; rtts = 0 }

let ocaml_chunk ~work ~gcc path n size =
  let payload = String.make size 'Z' in
  let samples = new_samples n in
  let finished, fin_u = Lwt.wait () in
  let sent = ref 0 in
  let lref = ref None in
  let on_pong seq =
    let entered = monotonic_ns () in
    let i = Int64.to_int seq in
    samples.{i - 1} <- entered - !sent;
    if i < n then begin
      (* --gap-us: the echo's side goes idle (and past its spin, sleeps) *)
      while monotonic_ns () - entered < !gap_us * 1000 do () done;
      sent := monotonic_ns ();
      match !lref with
      | Some l ->
        Lwt.async (fun () -> SL.publish l (LT.Ping { seq = Int64.of_int (i + 1); payload }) >|= ignore);
        (* over shared memory the ping is in the ring now (Socket_link
           writes it from the publishing call when nothing is queued) *)
        work.{i - 1} <- monotonic_ns () - entered
      | None -> ()
    end
    else Lwt.wakeup_later fin_u ()
  in
  let on_event = function SL.Message (_, LT.Pong p) -> on_pong p.seq | _ -> () in
  (* --decode view: the pong's payload stays in the ring, as a view *)
  let views =
    if !decode = "view" then
      Some { SL.view_types = [ LT.Pong.type_id ]; decode_view = LT.View.decode_any_fields;
             on_view = (function LT.View.Pong p -> on_pong p.seq | _ -> ()) }
    else None
  in
  let before = Gc.quick_stat () in
  Lwt_main.run
    (SL.start ~schema:LT.descriptor ~interest:[ LT.Pong.type_id ] ~on_event ?views
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
  let after = Gc.quick_stat () in
  gcc.majors <- gcc.majors + after.major_collections - before.major_collections;
  gcc.compactions <- gcc.compactions + after.compactions - before.compactions;
  gcc.rtts <- gcc.rtts + n;
  samples

(* -- statistics ---------------------------------------------------------------------- *)

type summary = { median : float; p99 : float; p999 : float; max : float; rate : float; n : int }

let summarize chunks =
  let a = Array.concat (List.map (fun (c : samples) -> Array.init (Bigarray.Array1.dim c) (fun i -> c.{i})) chunks) in
  Array.sort compare a;
  let n = Array.length a in
  let q p = float_of_int a.(min (n - 1) (int_of_float (p *. float_of_int n))) /. 1000. in
  let mean = Array.fold_left (fun s x -> s +. float_of_int x) 0. a /. float_of_int n in
  { median = q 0.5; p99 = q 0.99; p999 = q 0.999; max = float_of_int a.(n - 1) /. 1000.; rate = 1e9 /. mean; n }

let drop_warmup (a : samples) =
  let k = Bigarray.Array1.dim a / 10 in
  Bigarray.Array1.sub a k (Bigarray.Array1.dim a - k)

(* -- the OCaml side's pieces, in this process ---------------------------------------- *)

type bigstring = (char, Bigarray.int8_unsigned_elt, Bigarray.c_layout) Bigarray.Array1.t

(* ns per call of [f], over [n] calls after a warm-up; and the minor and
   major words per call *)
let per_call n f =
  for _ = 1 to n / 10 do f () done;
  let m0 = Gc.minor_words () and q0 = Gc.quick_stat () in
  let t0 = monotonic_ns () in
  for _ = 1 to n do f () done;
  let t1 = monotonic_ns () in
  let q1 = Gc.quick_stat () in
  let minor = (Gc.minor_words () -. m0) /. float_of_int n in
  let major = (q1.major_words -. q0.major_words) /. float_of_int n in
  (float_of_int (t1 - t0) /. float_of_int n, minor, major)

type pieces = {
  decode_ns : float;  (** a pong frame decoded in place from a bigarray (its payload string made) *)
  decode_major_words : float;
  view_ns : float;  (** the same pong decoded as a view (the payload not copied) *)
  encode_ns : float;  (** a ping encoded in place into a bigarray slot *)
  copy_ns : float;  (** a copy of the payload from a string into a bigarray: the floor of both *)
}

let pieces size =
  let n = if size >= 65536 then 20_000 else 200_000 in
  let payload = String.make size 'Z' in
  let frame = Mycelium.Frame.encode_data LT.descriptor ~sequence:1L (LT.Pong { seq = 1L; payload }) in
  let len = String.length frame in
  let ring : bigstring = Bigarray.Array1.create Bigarray.char Bigarray.c_layout (len + 64) in
  Mycelium.Tlv.blit_string_to_big frame 0 ring 8 len;
  let sink = ref 0L in
  let decode () =
    match Mycelium.Frame.read_header_big ~off:8 ~max_payload:(1 lsl 24) ring with
    | Error _ -> die "in-place header"
    | Ok h -> (
      match Mycelium.Tlv.decode_with_big (LT.descriptor.decode_fields h.type_id) ~off:32 ~len:h.payload_length ring with
      | Ok (LT.Pong p) -> sink := p.seq
      | _ -> die "in-place decode")
  in
  let decode_ns, _, decode_major_words = per_call n decode in
  let scope = Mycelium.View.new_scope () in
  let view () =
    match Mycelium.Frame.read_header_big ~off:8 ~max_payload:(1 lsl 24) ring with
    | Error _ -> die "in-place header"
    | Ok h -> (
      match
        Mycelium.Tlv.decode_with_big ~scope (LT.View.decode_any_fields h.type_id) ~off:32 ~len:h.payload_length ring
      with
      | Ok (LT.View.Pong p) -> sink := p.seq; Mycelium.View.expire scope
      | _ -> die "view decode")
  in
  let view_ns, _, _ = per_call n view in
  let w = Mycelium.Tlv.big_writer () in
  let ping = LT.Ping { seq = 2L; payload } in
  let encode () =
    Mycelium.Tlv.target w ring ~off:8 ~cap:(len + 56);
    ignore (Mycelium.Tlv.reserve w 24);
    let id = LT.descriptor.encode_fields w ping in
    Mycelium.Frame.write_header_at w 0 ~payload_length:(Mycelium.Tlv.length w - 24) ~type_id:id ~sequence:2L
      ~control:false
  in
  let encode_ns, _, _ = per_call n encode in
  let copy_ns, _, _ = per_call n (fun () -> Mycelium.Tlv.blit_string_to_big payload 0 ring 8 size) in
  ignore (Sys.opaque_identity !sink);
  { decode_ns; decode_major_words; view_ns; encode_ns; copy_ns }

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
      ("--client-cpu", Arg.Set_int client_cpu, "N  pin both clients (this program and the C++ client) to CPU N");
      ("--decode", Arg.Set_string decode, "view|copy  the OCaml client's pongs as views (default) or copied");
      ("--gap-us", Arg.Set_int gap_us, "US  pause (busy) after each pong before the next ping, both clients (default 0)");
      ("--gc", Arg.Set_string gc, "node|default  GC settings: an OCaml node's (Gc_policy, default) or OCaml's defaults") ]
    (fun a -> die "unexpected argument %s" a)
    "bench_rtt --peer build/tests/conformance/mycelium-link-peer [options]";
  if !peer = "" then die "give --peer PATH/TO/mycelium-link-peer";
  if !kind <> "unix" && !kind <> "shm" then die "--kind: '%s' is not unix or shm" !kind;
  if !decode <> "view" && !decode <> "copy" then die "--decode: '%s' is not view or copy" !decode;
  (match !gc with
   | "node" -> if not (Mycelium_lwt.Gc_policy.apply ()) then prerr_endline "bench_rtt: OCAMLRUNPARAM sets O: kept"
   | "default" -> ()
   | g -> die "--gc: '%s' is not node or default" g);
  Sys.set_signal Sys.sigpipe Sys.Signal_ignore;
  Printf.printf "bench_rtt: --kind %s --decode %s --gc %s\n%!" !kind !decode !gc;
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
            let cxx = ref [] and oc = ref [] and works = ref [] in
            let gcc = new_gc_count () in
            for r = 1 to !rounds do
              let run_cxx () = cxx := drop_warmup (cxx_chunk path per_chunk size) :: !cxx in
              let run_oc () =
                let work = new_samples per_chunk in
                oc := drop_warmup (ocaml_chunk ~work ~gcc path per_chunk size) :: !oc;
                works := drop_warmup (Bigarray.Array1.sub work 0 (per_chunk - 1)) :: !works
              in
              if r mod 2 = 0 then (run_cxx (); run_oc ()) else (run_oc (); run_cxx ())
            done;
            let c = summarize !cxx and o = summarize !oc and wk = summarize !works in
            let pc = pieces size in
            Printf.printf "%6d B  %-22s median %8.2f  p99 %8.2f  p99.9 %8.2f  max %9.2f us  %8.0f msg/s  (%d round trips)\n"
              size (Printf.sprintf "C++ <-> C++ (%s)" !kind) c.median c.p99 c.p999 c.max c.rate c.n;
            Printf.printf "%6d B  %-22s median %8.2f  p99 %8.2f  p99.9 %8.2f  max %9.2f us  %8.0f msg/s  (%d round trips)\n"
              size (Printf.sprintf "OCaml <-> C++ (%s)" !kind) o.median o.p99 o.p999 o.max o.rate o.n;
            Printf.printf "%6d B  ratio OCaml/C++ median %.2fx, OCaml adds %+.2f us\n" size (o.median /. c.median)
              (o.median -. c.median);
            Printf.printf
              "%6d B  OCaml side: handler -> next ping sent %.2f us (median, p99 %.2f); GC: %.1f major cycles and %.2f \
               compactions per 1000 round trips\n"
              size wk.median wk.p99 (1000. *. float_of_int gcc.majors /. float_of_int gcc.rtts)
              (1000. *. float_of_int gcc.compactions /. float_of_int gcc.rtts);
            Printf.printf
              "%6d B  in this process: decode in place %.2f us (%.0f major words), as a view %.2f us, encode in place \
               %.2f us, copy of the payload %.2f us\n%!"
              size (pc.decode_ns /. 1000.) pc.decode_major_words (pc.view_ns /. 1000.) (pc.encode_ns /. 1000.)
              (pc.copy_ns /. 1000.);
            (size, c, o, wk, gcc, pc))
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
        Printf.fprintf oc "{\n  \"benchmark\": \"bench_rtt\",\n  \"kind\": \"%s\",\n  \"decode\": \"%s\",\n  \"gc\": \"%s\",\n  \"unit\": \"round trip\",\n  \"decode_minor_words_16B_ping\": %.1f,\n  \"sizes\": [\n%s\n  ]\n}\n" !kind !decode !gc words
          (String.concat ",\n"
             (List.map (fun (size, c, o, wk, gcc, pc) ->
                  Printf.sprintf
                    "    {\"payload_bytes\": %d, \"cxx_cxx\": %s, \"ocaml_cxx\": %s, \"ratio_median\": %.3f, \"ocaml_adds_us\": %.3f, \"ocaml_handler_to_send_us\": {\"median\": %.3f, \"p99\": %.3f}, \"gc_per_1000_rtt\": {\"major_cycles\": %.2f, \"compactions\": %.3f}, \"in_process_us\": {\"decode_in_place\": %.3f, \"decode_major_words\": %.0f, \"decode_view\": %.3f, \"encode_in_place\": %.3f, \"payload_copy\": %.3f}}"
                    size (s c) (s o) (o.median /. c.median) (o.median -. c.median) wk.median wk.p99
                    (1000. *. float_of_int gcc.majors /. float_of_int gcc.rtts)
                    (1000. *. float_of_int gcc.compactions /. float_of_int gcc.rtts)
                    (pc.decode_ns /. 1000.) pc.decode_major_words (pc.view_ns /. 1000.) (pc.encode_ns /. 1000.)
                    (pc.copy_ns /. 1000.))
                results));
        close_out oc
      end)
