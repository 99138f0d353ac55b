(* Mycelium_node: the MYCELIUM_LINKS lines mycelium-run hands a command
   node, parsed into link settings (every bad line refused with the line,
   the link and the key named), the MYCELIUM_SERVICES lines with their
   params (likewise), and the node side of the control protocol
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


(* -- MYCELIUM_SERVICES ------------------------------------------------------------------ *)

module S = Mycelium_node.Services
module P = Mycelium_lwt.Params

(* The text of the C++ test "command nodes get their services and parameters
   as text" (tests/unit/topology_test.cpp), plus a line of edge cases. *)
let services_sample =
  "name=limits type=demo.limits placement=loop p.desk=fx%20spot%3D1%25 p.max_qty=100 p.nested.k=2 \
   p.notional=1500000.0 p.on=true p.symbols=A,B\n\
   name=audit type=audit placement=pool\n\
   \n\
   name=odd%20one type=demo.limits placement=pool p.neg=-12 p.big=1e+20 p.inf=inf p.minf=-inf p.nan=nan \
   p.off=false p.empty= p.commas=a%2Cb,c p.we%3Dird=%00x p.list1=7 p.a%20b.c%3Dd=1\n"

let offered = [ "demo.limits"; "audit" ]

let raises_bad what expected f =
  match f () with
  | _ -> Alcotest.failf "%s: no error" what
  | exception P.Bad e -> Alcotest.(check string) what expected e

let test_services () =
  match S.parse ~offered services_sample with
  | Error e -> Alcotest.fail e
  | Ok [ a; b; c ] ->
    Alcotest.(check string) "name" "limits" a.name;
    Alcotest.(check string) "type" "demo.limits" a.type_name;
    Alcotest.(check bool) "loop" true (a.placement = S.Loop);
    let p = a.params in
    Alcotest.(check (list string)) "keys in order" [ "desk"; "max_qty"; "nested.k"; "notional"; "on"; "symbols" ] (P.keys p);
    Alcotest.(check string) "decoded string" "fx spot=1%" (P.string p "desk" ~default:"");
    Alcotest.(check int) "int" 100 (P.int p "max_qty" ~default:0);
    Alcotest.(check int) "nested table" 2 (P.int p "nested.k" ~default:0);
    Alcotest.(check (float 0.)) "float" 1.5e6 (P.float p "notional" ~default:0.);
    Alcotest.(check (float 0.)) "an integer as a float" 100. (P.float p "max_qty" ~default:0.);
    Alcotest.(check bool) "bool" true (P.bool p "on" ~default:false);
    Alcotest.(check (list string)) "list" [ "A"; "B" ] (P.strings p "symbols" ~default:[]);
    Alcotest.(check string) "a list as its text" "A,B" (P.string p "symbols" ~default:"");
    Alcotest.(check string) "a number as a string" "100" (P.string p "max_qty" ~default:"");
    Alcotest.(check int) "absent int: default" 7 (P.int p "absent" ~default:7);
    Alcotest.(check (float 0.)) "absent float: default" 0.5 (P.float p "absent" ~default:0.5);
    Alcotest.(check bool) "absent bool: default" true (P.bool p "absent" ~default:true);
    Alcotest.(check string) "absent string: default" "d" (P.string p "absent" ~default:"d");
    Alcotest.(check (list string)) "absent list: default" [ "z" ] (P.strings p "absent" ~default:[ "z" ]);
    Alcotest.(check bool) "mem" true (P.mem p "nested.k" && not (P.mem p "nested"));
    Alcotest.(check string) "second line" "audit" b.name;
    Alcotest.(check bool) "pool" true (b.placement = S.Pool);
    Alcotest.(check (list string)) "no params" [] (P.keys b.params);
    let q = c.params in
    Alcotest.(check string) "decoded name" "odd one" c.name;
    Alcotest.(check int) "negative int" (-12) (P.int q "neg" ~default:0);
    Alcotest.(check (float 0.)) "exponent" 1e20 (P.float q "big" ~default:0.);
    Alcotest.(check (float 0.)) "inf" infinity (P.float q "inf" ~default:0.);
    Alcotest.(check (float 0.)) "-inf" neg_infinity (P.float q "minf" ~default:0.);
    Alcotest.(check bool) "nan" true (Float.is_nan (P.float q "nan" ~default:0.));
    Alcotest.(check bool) "false" false (P.bool q "off" ~default:true);
    Alcotest.(check string) "empty string" "" (P.string q "empty" ~default:"d");
    Alcotest.(check (list string)) "empty list" [] (P.strings q "empty" ~default:[ "d" ]);
    Alcotest.(check (list string)) "an encoded ',' stays in its element" [ "a,b"; "c" ] (P.strings q "commas" ~default:[]);
    Alcotest.(check string) "encoded key and control byte" "\000x" (P.string q "we=ird" ~default:"");
    Alcotest.(check int) "encoded nested table key" 1 (P.int q "a b.c=d" ~default:0);
    Alcotest.(check (list string)) "a scalar is a list of one" [ "7" ] (P.strings q "list1" ~default:[]);
    raises_bad "a float is not an int" "service 'limits': param 'notional' is '1500000.0', not an integer" (fun () ->
        P.int p "notional" ~default:0);
    raises_bad "a string is not a number" "service 'limits': param 'desk' is 'fx spot=1%', not a number" (fun () ->
        P.float p "desk" ~default:0.);
    raises_bad "an int is not a bool" "service 'limits': param 'max_qty' is '100', not true or false" (fun () ->
        P.bool p "max_qty" ~default:false);
    raises_bad "a list is not an int" "service 'limits': param 'symbols' is 'A,B', not an integer" (fun () ->
        P.int p "symbols" ~default:0);
    (match S.parse ~offered "name=x type=audit placement=pool p.n=99999999999999999999" with
     | Ok [ x ] ->
       raises_bad "int overflow" "service 'x': param 'n' is 99999999999999999999, not an integer that fits 63 bits"
         (fun () -> P.int x.params "n" ~default:0)
     | Ok _ -> Alcotest.fail "not one service"
     | Error e -> Alcotest.fail e);
    Alcotest.(check int) "empty text: no services" 0
      (match S.parse ~offered "\n\n" with Ok l -> List.length l | Error e -> Alcotest.fail e);
    (* what a program hands its own services *)
    let own = P.of_list ~service:"own" [ ("s", `S "a b,c"); ("l", `L [ "x,y"; "z" ]) ] in
    Alcotest.(check string) "of_list string" "a b,c" (P.string own "s" ~default:"");
    Alcotest.(check (list string)) "of_list list" [ "x,y"; "z" ] (P.strings own "l" ~default:[])
  | Ok l -> Alcotest.failf "%d services" (List.length l)

let test_services_refused () =
  let refused what text expected =
    match S.parse ~offered text with
    | Ok _ -> Alcotest.failf "%s: accepted" what
    | Error e -> Alcotest.(check string) what expected e
  in
  let ok = "name=x type=audit placement=pool" in
  Alcotest.(check bool) "the good line parses" true (Result.is_ok (S.parse ~offered ok));
  refused "not key=value" (ok ^ " oops") "MYCELIUM_SERVICES line 1 (service x): 'oops' is not key=value";
  refused "unknown key" (ok ^ " colour=red")
    "MYCELIUM_SERVICES line 1 (service x): unknown key 'colour' (keys: name, type, placement, p.KEY)";
  refused "twice" (ok ^ " placement=loop") "MYCELIUM_SERVICES line 1 (service x): key 'placement' given twice";
  refused "param twice" (ok ^ " p.a=1 p.a=2") "MYCELIUM_SERVICES line 1 (service x): key 'p.a' given twice";
  refused "no name" "type=audit placement=pool" "MYCELIUM_SERVICES line 1: key 'name' is missing";
  refused "empty name" "name= type=audit placement=pool" "MYCELIUM_SERVICES line 1: key 'name' is empty";
  refused "no type" "\n\nname=x placement=pool" "MYCELIUM_SERVICES line 3 (service x): key 'type' is missing";
  refused "no placement" "name=x type=audit" "MYCELIUM_SERVICES line 1 (service x): key 'placement' is missing";
  refused "bad placement" "name=x type=audit placement=thread"
    "MYCELIUM_SERVICES line 1 (service x): key 'placement': 'thread' is not one of pool, loop";
  refused "a type the program does not offer" "name=x type=demo.risk placement=pool"
    "MYCELIUM_SERVICES line 1 (service x): key 'type': this program has no service type 'demo.risk' (it has: demo.limits, audit)";
  refused "bad escape" (ok ^ " p.desk=a%G1")
    "MYCELIUM_SERVICES line 1 (service x): key 'p.desk': '%G1' is not a %XX escape";
  refused "escape cut short" (ok ^ " p.desk=a%4")
    "MYCELIUM_SERVICES line 1 (service x): key 'p.desk': '%4' is not a %XX escape";
  refused "bad escape in a list element" (ok ^ " p.l=a,b%")
    "MYCELIUM_SERVICES line 1 (service x): key 'p.l': '%' is not a %XX escape";
  refused "bad escape in a name" "name=x%zz type=audit placement=pool"
    "MYCELIUM_SERVICES line 1: key 'name': '%zz' is not a %XX escape";
  refused "bad escape in a key" (ok ^ " p.a%2=1") "MYCELIUM_SERVICES line 1 (service x): key 'p.a%2': '%2' is not a %XX escape";
  refused "an '=' not encoded" (ok ^ " p.desk=a=b")
    "MYCELIUM_SERVICES line 1 (service x): key 'p.desk': '=' must be sent as %3D";
  refused "a control byte not encoded" (ok ^ " p.desk=a\tb")
    "MYCELIUM_SERVICES line 1 (service x): key 'p.desk': the control byte 0x09 must be sent as %09";
  refused "empty param name" (ok ^ " p.=1") "MYCELIUM_SERVICES line 1 (service x): key 'p.': a parameter name has an empty part";
  refused "empty part of a param name" (ok ^ " p.a..b=1")
    "MYCELIUM_SERVICES line 1 (service x): key 'p.a..b': a parameter name has an empty part";
  refused "same name twice" ("name=x type=demo.limits placement=loop\n\n" ^ ok)
    "MYCELIUM_SERVICES line 3 (service x): a service of line 1 has this name too";
  match S.parse ~offered:[] ok with
  | Ok _ -> Alcotest.fail "a program without types accepted a service"
  | Error e ->
    Alcotest.(check string) "no type offered"
      "MYCELIUM_SERVICES line 1 (service x): key 'type': this program has no service type 'audit' (it has: none)" e

(* A service sees its params through its context; one that reads a param of
   the wrong type does not start, and the launcher gets the text. *)
let test_service_params () =
  Lwt_main.run
    (let l, theirs = launcher () in
     let seen = ref (0, 0., false, "", []) in
     let placed = ref [] in
     let reader =
       { Svc.name = "limits";
         on_start =
           (fun ctx ->
             placed := (Svc.name ctx, Svc.placement ctx) :: !placed;
             let p = Svc.params ctx in
             seen :=
               ( P.int p "max_qty" ~default:0,
                 P.float p "notional" ~default:0.,
                 P.bool p "on" ~default:false,
                 P.string p "desk" ~default:"",
                 P.strings p "symbols" ~default:[] );
             Lwt.return_unit);
         on_stop = (fun _ -> Lwt.return_unit) }
     in
     let echo_placed =
       { echo with on_start = (fun ctx -> placed := (Svc.name ctx, Svc.placement ctx) :: !placed; echo.on_start ctx) }
     in
     let params, placements =
       match S.parse ~offered services_sample with
       | Ok (a :: _) -> ([ (a.name, a.params) ], [ (a.name, a.placement) ])
       | Ok [] -> Alcotest.fail "no services"
       | Error e -> Alcotest.fail e
     in
     let code =
       N.main ~params ~placements ~schema:LT.descriptor ~node:"t" ~links:[] ~ctl_fd:(Some theirs) ~ready_timeout:5.
         [ reader; echo_placed ]
     in
     expect_line l "started" >>= fun x ->
     Alcotest.(check string) "started" "started" x;
     Alcotest.(check bool) "the service read its params" true
       (!seen = (100, 1.5e6, true, "fx spot=1%", [ "A"; "B" ]));
     Alcotest.(check bool) "the topology's placement (loop); pool without one" true
       (List.sort compare !placed = [ ("echo", Svc.Pool); ("limits", Svc.Loop) ]);
     say l "stop" >>= fun () ->
     within code "the node's exit code" >>= fun c ->
     Alcotest.(check int) "exit code after stop" 0 c;
     Lwt_unix.close l.fd)
  ;
  Lwt_main.run
    (let l, theirs = launcher () in
     let strict =
       { Svc.name = "limits";
         on_start = (fun ctx -> ignore (P.int (Svc.params ctx) "notional" ~default:0); Lwt.return_unit);
         on_stop = (fun _ -> Lwt.return_unit) }
     in
     let params = [ ("limits", P.of_list ~service:"limits" [ ("notional", `S "1.5") ]) ] in
     let code = N.main ~params ~schema:LT.descriptor ~node:"t" ~links:[] ~ctl_fd:(Some theirs) ~ready_timeout:5. [ strict ] in
     expect_line l "error" >>= fun x ->
     Alcotest.(check string) "the error names the service, the param and its value"
       "error 3 node 't': service 'limits' did not start: service 'limits': param 'notional' is '1.5', not an integer" x;
     within code "the node's exit code" >>= fun c ->
     Alcotest.(check int) "exit code" 3 c;
     Lwt_unix.close l.fd)

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
          Alcotest.test_case "bad lines refused with line, link and key" `Quick test_refused ] );
      ( "services",
        [ Alcotest.test_case "MYCELIUM_SERVICES lines, params of each kind, defaults, type mismatches" `Quick
            test_services;
          Alcotest.test_case "bad lines refused with line, service and key" `Quick test_services_refused;
          Alcotest.test_case "a service reads its params and placement; a mismatch is error 3" `Quick
            test_service_params ] ) ]
