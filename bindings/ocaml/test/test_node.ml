(* Mycelium_node.Launch: the MYCELIUM_LINKS lines mycelium-run hands a
   command node, parsed into link settings; every bad line is refused with
   the line, the link and the key named. (The node itself runs under the
   real launcher in tests/launcher: test_ocaml_executor_same_journal.) *)

module L = Mycelium_node.Launch
module SL = Mycelium_lwt.Socket_link

(* Two lines as deployment_plan::links_text writes them. *)
let sample =
  "name=exec-ocaml:unix role=listen kind=unix address=/tmp/run/exec-ocaml.sock port=0 peers=journal wait=spin_then_block spin_us=100 ring_capacity=4194304 overflow=block send_queue=4096 max_payload=1048576 heartbeat_ms=100 peer_timeout_ms=1000 secret_file=-\n\
   name=exec-ocaml->md role=connect kind=shm address=/tmp/run/md.sock port=0 peers=md wait=busy_poll spin_us=50 ring_capacity=65536 overflow=drop_newest send_queue=16 max_payload=4096 heartbeat_ms=50 peer_timeout_ms=500 secret_file=/etc/secret\n"

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
    Alcotest.(check (option string)) "secret" (Some "/etc/secret") b.secret_file;
    (match L.to_config ~node:"exec-ocaml" a with
     | Error e -> Alcotest.fail e
     | Ok c ->
       Alcotest.(check bool) "unix address" true (c.SL.address = SL.Unix_path "/tmp/run/exec-ocaml.sock");
       Alcotest.(check bool) "not shm" false c.link.shm;
       Alcotest.(check string) "hello node" "exec-ocaml" c.link.node;
       Alcotest.(check (float 1e-9)) "spin" 100e-6 c.spin;
       Alcotest.(check (float 1e-9)) "heartbeat" 0.1 c.link.heartbeat_interval);
    (match L.to_config ~node:"exec-ocaml" b with
     | Error e -> Alcotest.(check string) "missing secret file named" "link exec-ocaml->md: cannot read the secret file /etc/secret (/etc/secret: No such file or directory)" e
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

let () =
  Alcotest.run "node"
    [ ( "launch",
        [ Alcotest.test_case "the launcher's lines" `Quick test_parse;
          Alcotest.test_case "tcp and a secret file" `Quick test_tcp_and_secret;
          Alcotest.test_case "bad lines refused with line, link and key" `Quick test_refused ] ) ]
