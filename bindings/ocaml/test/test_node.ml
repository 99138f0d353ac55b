(* Mycelium_node: the MYCELIUM_LINKS lines mycelium-run hands a command
   node, parsed into link settings (every bad line refused with the line,
   the link and the key named), and the node side of the control protocol
   driven over a socket pair as the launcher drives it. (With links, under
   the real launcher and C++ peers: tests/launcher, test_ocaml_*.) *)

open Lwt.Infix
module L = Mycelium_node.Launch
module N = Mycelium_node.Node
module SL = Mycelium_lwt.Socket_link
module Svc = Mycelium_lwt.Service
module LT = Schemas.Link_test

(* Two lines as deployment_plan::links_text writes them. *)
let sample =
  "name=exec-ocaml:unix role=listen kind=unix address=/tmp/run/exec-ocaml.sock port=0 peers=journal wait=spin_then_block spin_us=100 ring_capacity=4194304 overflow=block send_queue=4096 max_payload=1048576 heartbeat_ms=100 peer_timeout_ms=1000 secret_file=-\n\
   name=exec-ocaml->md role=connect kind=shm address=/tmp/run/md.sock port=0 peers=md wait=busy_poll spin_us=50 ring_capacity=65536 overflow=drop_newest send_queue=16 max_payload=4096 heartbeat_ms=50 peer_timeout_ms=500 secret_file=/nonexistent/secret\n"

let test_parse () =
  match L.parse sample with
  | Error e -> Alcotest.fail e
  | Ok [ a; b ] ->
    Alcotest.(check string) "name" "exec-ocaml:unix" a.name;
    Alcotest.(check bool) "listen" true (a.role = SL.Listen);
    Alcotest.(check string) "endpoint" "unix:/tmp/run/exec-ocaml.sock" (L.endpoint a);
    Alcotest.(check (list string)) "peers" [ "journal" ] a.peers;
    Alcotest.(check (option string)) "no secret" None a.secret_file;
    Alcotest.(check bool) "connect" true (b.role = SL.Connect);
    Alcotest.(check string) "shm endpoint" "shm:/tmp/run/md.sock" (L.endpoint b);
    Alcotest.(check bool) "drop_newest" true (b.overflow = SL.Drop_newest);
    Alcotest.(check int) "send_queue" 16 b.send_queue;
    Alcotest.(check int) "ring" 65536 b.ring_capacity;
    Alcotest.(check (option string)) "secret" (Some "/nonexistent/secret") b.secret_file;
    (match L.to_config ~node:"exec-ocaml" a with
     | Error e -> Alcotest.fail e
     | Ok c ->
       Alcotest.(check bool) "unix address" true (c.SL.address = SL.Unix_path "/tmp/run/exec-ocaml.sock");
       Alcotest.(check bool) "not shm" false c.link.shm;
       Alcotest.(check string) "hello node" "exec-ocaml" c.link.node;
       Alcotest.(check (float 1e-9)) "spin" 100e-6 c.spin;
       Alcotest.(check (float 1e-9)) "heartbeat" 0.1 c.link.heartbeat_interval);
    (match L.to_config ~node:"exec-ocaml" b with
     | Error e -> Alcotest.(check string) "missing secret file named" "link exec-ocaml->md: cannot read the secret file /nonexistent/secret (/nonexistent/secret: No such file or directory)" e
     | Ok _ -> Alcotest.fail "a missing secret file was accepted");
    Alcotest.(check int) "empty text: no links" 0 (match L.parse "\n\n" with Ok l -> List.length l | Error e -> Alcotest.fail e)
  | Ok l -> Alcotest.failf "%d links" (List.length l)

let test_tcp_and_secret () =
  let path = Filename.temp_file "secret" ".txt" in
  Fun.protect ~finally:(fun () -> Sys.remove path) (fun () ->
      let oc = open_out_bin path in
      output_string oc "s3cret\n";
      close_out oc;
      let line =
        "name=b->a role=connect kind=tcp address=127.0.0.2 port=47101 peers=a wait=block spin_us=0 ring_capacity=4194304 overflow=disconnect send_queue=1 max_payload=0 heartbeat_ms=10 peer_timeout_ms=11 secret_file="
        ^ path
      in
      match Result.bind (L.parse line) (function [ l ] -> L.to_config ~node:"b" l | _ -> Error "not one link") with
      | Error e -> Alcotest.fail e
      | Ok c ->
        Alcotest.(check bool) "tcp" true (c.SL.address = SL.Tcp ("127.0.0.2", 47101));
        Alcotest.(check (option string)) "secret without its newline" (Some "s3cret") c.link.secret;
        Alcotest.(check (float 0.)) "block: no spin" 0. c.spin;
        Alcotest.(check bool) "disconnect" true (c.overflow = SL.Disconnect))

let good =
  [ ("name", "x"); ("role", "connect"); ("kind", "unix"); ("address", "/tmp/x.sock"); ("port", "0"); ("peers", "a");
    ("wait", "block"); ("spin_us", "0"); ("ring_capacity", "4096"); ("overflow", "block"); ("send_queue", "8");
    ("max_payload", "100"); ("heartbeat_ms", "100"); ("peer_timeout_ms", "1000"); ("secret_file", "-") ]

let line_with kvs = String.concat " " (List.map (fun (k, v) -> k ^ "=" ^ v) kvs)
let set k v = List.map (fun (k', v') -> if k' = k then (k, v) else (k', v')) good

let test_refused () =
  let refused what text expected =
    match L.parse text with
    | Ok _ -> Alcotest.failf "%s: accepted" what
    | Error e -> Alcotest.(check string) what expected e
  in
  Alcotest.(check bool) "the good line parses" true (Result.is_ok (L.parse (line_with good)));
  refused "bad role" ("\n" ^ line_with (set "role" "serve"))
    "MYCELIUM_LINKS line 2 (link x): key 'role': 'serve' is not one of listen, connect";
  refused "bad kind" (line_with (set "kind" "udp"))
    "MYCELIUM_LINKS line 1 (link x): key 'kind': 'udp' is not one of unix, tcp, shm";
  refused "not a number" (line_with (set "port" "http"))
    "MYCELIUM_LINKS line 1 (link x): key 'port': 'http' is not a number";
  refused "port range" (line_with (set "port" "70000"))
    "MYCELIUM_LINKS line 1 (link x): key 'port': 70000 is outside 0..65535";
  refused "ring not a power of two" (line_with (set "ring_capacity" "1000"))
    "MYCELIUM_LINKS line 1 (link x): key 'ring_capacity': 1000 is not a power of two";
  refused "missing key" (line_with (List.remove_assoc "overflow" good))
    "MYCELIUM_LINKS line 1 (link x): key 'overflow' is missing";
  refused "unknown key" (line_with (good @ [ ("colour", "red") ]))
    "MYCELIUM_LINKS line 1 (link x): unknown key 'colour' (keys: name, role, kind, address, port, peers, wait, spin_us, ring_capacity, overflow, send_queue, max_payload, heartbeat_ms, peer_timeout_ms, secret_file)";
  refused "twice" (line_with (good @ [ ("port", "1") ])) "MYCELIUM_LINKS line 1 (link x): key 'port' given twice";
  refused "not key=value" (line_with good ^ " oops") "MYCELIUM_LINKS line 1 (link x): 'oops' is not key=value";
  refused "no peers" (line_with (set "peers" ",")) "MYCELIUM_LINKS line 1 (link x): key 'peers' names no node";
  refused "timeout" (line_with (set "peer_timeout_ms" "100"))
    "MYCELIUM_LINKS line 1 (link x): peer_timeout_ms (100) must be longer than heartbeat_ms (100)";
  refused "tcp without port" (line_with (set "kind" "tcp"))
    "MYCELIUM_LINKS line 1 (link x): key 'port': a TCP link that connects needs a port";
  refused "no name" (line_with (List.remove_assoc "name" good)) "MYCELIUM_LINKS line 1: key 'name' is missing";
  refused "same name" (line_with good ^ "\n" ^ line_with good) "MYCELIUM_LINKS: two links are named 'x'"

(* -- the control protocol ---------------------------------------------------------- *)

let timeout = 10.

(* The launcher's end of a control channel to a node run in this process. *)
type launcher = { ic : Lwt_io.input_channel; oc : Lwt_io.output_channel; fd : Lwt_unix.file_descr }

let launcher () =
  let mine, theirs = Lwt_unix.socketpair Unix.PF_UNIX Unix.SOCK_STREAM 0 in
  ({ ic = Lwt_io.of_fd ~mode:Lwt_io.input mine; oc = Lwt_io.of_fd ~mode:Lwt_io.output mine; fd = mine }, theirs)

let expect_line l what =
  Lwt.pick
    [ Lwt_io.read_line_opt l.ic;
      (Lwt_unix.sleep timeout >|= fun () -> Alcotest.failf "no line from the node within %.0f s (waiting for %s)" timeout what) ]
  >|= function
  | Some x -> x
  | None -> Alcotest.failf "the node closed the channel (waiting for %s)" what

let say l line = Lwt_io.write_line l.oc line >>= fun () -> Lwt_io.flush l.oc

let within p what =
  Lwt.pick [ p; (Lwt_unix.sleep timeout >|= fun () -> Alcotest.failf "timed out waiting for %s" what) ]

let echo =
  { Svc.name = "echo";
    on_start =
      (fun ctx ->
        Svc.serve ctx LT.Ping.type_id (function
          | LT.Ping p -> Lwt.return (Some (LT.Pong { seq = p.seq; payload = p.payload }))
          | _ -> Lwt.return None);
        Svc.subscribe ctx LT.Chat.type_id (fun _ -> Lwt.return_unit);
        Lwt.return_unit);
    on_stop = (fun _ -> Lwt.return_unit) }

let test_control () =
  Lwt_main.run
    (let l, theirs = launcher () in
     let nodes = ref 0 in
     (* a service that waits for the whole deployment, then finishes *)
     let once =
       { Svc.name = "once";
         on_start =
           (fun ctx ->
             Lwt.async (fun () -> N.deployment_ready () >>= fun n -> nodes := n; Svc.stop_service ctx);
             Lwt.return_unit);
         on_stop = (fun _ -> Lwt.return_unit) }
     in
     let code = N.main ~schema:LT.descriptor ~node:"t" ~links:[] ~ctl_fd:(Some theirs) ~ready_timeout:5. [ echo; once ] in
     expect_line l "started" >>= fun x ->
     Alcotest.(check string) "started" "started" x;
     expect_line l "links-up" >>= fun x ->
     Alcotest.(check string) "the local services' type ids" "links-up 1,6" x;
     say l "expect nobody 1,2" >>= fun () ->
     say l "go" >>= fun () ->
     expect_line l "ready" >>= fun x ->
     Alcotest.(check string) "ready" "ready" x;
     Alcotest.(check int) "not ready before all-ready" 0 !nodes;
     say l "all-ready 3" >>= fun () ->
     expect_line l "service-done" >>= fun x ->
     Alcotest.(check string) "a service that finished" "service-done once" x;
     Alcotest.(check int) "deployment_ready carries the node count" 3 !nodes;
     say l "status" >>= fun () ->
     expect_line l "status" >>= fun x ->
     Alcotest.(check string) "status"
       (Printf.sprintf "status {\"node\":\"t\",\"pid\":%d,\"runtime\":\"ocaml\",\"ready\":true,\"links\":[]}" (Unix.getpid ()))
       x;
     say l "stop" >>= fun () ->
     expect_line l "stopped" >>= fun x ->
     Alcotest.(check string) "stopped" "stopped" x;
     within code "the node's exit code" >>= fun c ->
     Alcotest.(check int) "exit code after stop" 0 c;
     Lwt_unix.close l.fd)

let test_launcher_gone () =
  Lwt_main.run
    (let l, theirs = launcher () in
     let code = N.main ~schema:LT.descriptor ~node:"t" ~links:[] ~ctl_fd:(Some theirs) ~ready_timeout:5. [ echo ] in
     expect_line l "started" >>= fun _ ->
     expect_line l "links-up" >>= fun _ ->
     Lwt_unix.close l.fd >>= fun () ->
     within code "the node's exit code" >|= fun c -> Alcotest.(check int) "EOF: the launcher went away" 6 c)

let test_listen_error () =
  Lwt_main.run
    (let l, theirs = launcher () in
     (* a live listener on the path: the node's own listener must fail *)
     let path = Filename.concat (Filename.get_temp_dir_name ()) (Printf.sprintf "myc-node-test-%d.sock" (Unix.getpid ())) in
     (try Unix.unlink path with Unix.Unix_error _ -> ());
     let busy = Unix.socket Unix.PF_UNIX Unix.SOCK_STREAM 0 in
     Unix.bind busy (Unix.ADDR_UNIX path);
     Unix.listen busy 1;
     let line =
       line_with (List.map (fun (k, v) -> (k, match k with "role" -> "listen" | "address" -> path | _ -> v)) good)
     in
     let links = match L.parse line with Ok x -> x | Error e -> Alcotest.fail e in
     Lwt.finalize
       (fun () ->
         let code = N.main ~schema:LT.descriptor ~node:"t" ~links ~ctl_fd:(Some theirs) ~ready_timeout:5. [ echo ] in
         expect_line l "error" >>= fun x ->
         Alcotest.(check string) "the error names the node, endpoint, peers and cause"
           (Printf.sprintf
              "error 3 node 't': cannot listen on unix:%s for a: address_in_use: a live process serves the Unix socket %s; stop it or pick another path"
              path path)
           x;
         within code "the node's exit code" >|= fun c -> Alcotest.(check int) "exit code" 3 c)
       (fun () ->
         Unix.close busy;
         (try Unix.unlink path with Unix.Unix_error _ -> ());
         Lwt_unix.close l.fd))

let () =
  Alcotest.run "node"
    [ ( "control",
        [ Alcotest.test_case "started, links-up, expect/go, ready, all-ready, service-done, status, stop" `Quick
            test_control;
          Alcotest.test_case "EOF on the channel stops with exit code 6" `Quick test_launcher_gone;
          Alcotest.test_case "a listener that cannot bind: error 3" `Quick test_listen_error ] );
      ( "launch",
        [ Alcotest.test_case "the launcher's lines" `Quick test_parse;
          Alcotest.test_case "tcp and a secret file" `Quick test_tcp_and_secret;
          Alcotest.test_case "bad lines refused with line, link and key" `Quick test_refused ] ) ]
