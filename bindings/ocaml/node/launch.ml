(* What mycelium-run hands a node with runtime = "command": its links, one
   line each in MYCELIUM_LINKS, blank-separated key=value:

     name= role=listen|connect kind=unix|tcp|shm address=<path or host> port=
     peers=<comma node names> wait=busy_poll|spin_then_block|block spin_us=
     ring_capacity= overflow=block|drop_newest|disconnect send_queue=
     max_payload= heartbeat_ms= peer_timeout_ms= secret_file=<path or ->

   (topology/src/deployment_plan.cpp, deployment_plan::links_text). This
   module parses the lines (pure, no I/O) and turns one into a
   Socket_link.config (which reads the secret file). Every error names the
   line, the link and the key. *)

module SL = Mycelium_lwt.Socket_link

type kind = Unix | Tcp | Shm
type wait = Busy_poll | Spin_then_block | Block

type link = {
  name : string;
  role : SL.role;
  kind : kind;
  address : string;  (** socket path (unix, shm) or host (tcp) *)
  port : int;
  peers : string list;  (** the nodes expected on this link *)
  wait : wait;
  spin_us : int;
  ring_capacity : int;
  overflow : SL.overflow;
  send_queue : int;
  max_payload : int;
  heartbeat_ms : int;
  peer_timeout_ms : int;
  secret_file : string option;
}

let keys =
  [ "name"; "role"; "kind"; "address"; "port"; "peers"; "wait"; "spin_us"; "ring_capacity"; "overflow";
    "send_queue"; "max_payload"; "heartbeat_ms"; "peer_timeout_ms"; "secret_file" ]

let kind_to_string = function Unix -> "unix" | Tcp -> "tcp" | Shm -> "shm"

(** The endpoint as the C++ links print it: "unix:PATH", "shm:PATH", "tcp:HOST:PORT". *)
let endpoint l =
  match l.kind with
  | Tcp -> Printf.sprintf "tcp:%s:%d" l.address l.port
  | Unix | Shm -> Printf.sprintf "%s:%s" (kind_to_string l.kind) l.address

exception Bad of string

let split_blank s = List.filter (fun x -> x <> "") (String.split_on_char ' ' s)

let parse_line ~lineno text =
  let fields = Hashtbl.create 16 in
  let where () =
    match Hashtbl.find_opt fields "name" with
    | Some n -> Printf.sprintf "MYCELIUM_LINKS line %d (link %s)" lineno n
    | None -> Printf.sprintf "MYCELIUM_LINKS line %d" lineno
  in
  let bad fmt = Printf.ksprintf (fun s -> raise (Bad (where () ^ ": " ^ s))) fmt in
  List.iter
    (fun item ->
      match String.index_opt item '=' with
      | None -> bad "'%s' is not key=value" item
      | Some i ->
        let k = String.sub item 0 i and v = String.sub item (i + 1) (String.length item - i - 1) in
        if not (List.mem k keys) then bad "unknown key '%s' (keys: %s)" k (String.concat ", " keys);
        if Hashtbl.mem fields k then bad "key '%s' given twice" k;
        Hashtbl.replace fields k v)
    (split_blank text);
  let get k = match Hashtbl.find_opt fields k with Some v -> v | None -> bad "key '%s' is missing" k in
  let int k ~min ~max =
    let v = get k in
    match int_of_string_opt v with
    | Some n when n >= min && n <= max -> n
    | Some _ -> bad "key '%s': %s is outside %d..%d" k v min max
    | None -> bad "key '%s': '%s' is not a number" k v
  in
  let choice k options =
    let v = get k in
    match List.assoc_opt v options with
    | Some x -> x
    | None -> bad "key '%s': '%s' is not one of %s" k v (String.concat ", " (List.map fst options))
  in
  let name = get "name" in
  if name = "" then bad "key 'name' is empty";
  let role = choice "role" [ ("listen", SL.Listen); ("connect", SL.Connect) ] in
  let kind = choice "kind" [ ("unix", Unix); ("tcp", Tcp); ("shm", Shm) ] in
  let address = get "address" in
  if address = "" then bad "key 'address' is empty";
  let port = int "port" ~min:0 ~max:65535 in
  if kind = Tcp && role = SL.Connect && port = 0 then bad "key 'port': a TCP link that connects needs a port";
  let peers = List.filter (fun p -> p <> "") (String.split_on_char ',' (get "peers")) in
  if peers = [] then bad "key 'peers' names no node";
  let wait = choice "wait" [ ("busy_poll", Busy_poll); ("spin_then_block", Spin_then_block); ("block", Block) ] in
  let spin_us = int "spin_us" ~min:0 ~max:1_000_000 in
  let ring_capacity = int "ring_capacity" ~min:64 ~max:(1 lsl 30) in
  if ring_capacity land (ring_capacity - 1) <> 0 then bad "key 'ring_capacity': %d is not a power of two" ring_capacity;
  let overflow =
    choice "overflow" [ ("block", SL.Block); ("drop_newest", SL.Drop_newest); ("disconnect", SL.Disconnect) ]
  in
  let send_queue = int "send_queue" ~min:1 ~max:max_int in
  let max_payload = int "max_payload" ~min:0 ~max:0xFFFF_FFFF in
  let heartbeat_ms = int "heartbeat_ms" ~min:1 ~max:max_int in
  let peer_timeout_ms = int "peer_timeout_ms" ~min:1 ~max:max_int in
  if peer_timeout_ms <= heartbeat_ms then
    bad "peer_timeout_ms (%d) must be longer than heartbeat_ms (%d)" peer_timeout_ms heartbeat_ms;
  let secret_file = match get "secret_file" with "-" | "" -> None | p -> Some p in
  { name; role; kind; address; port; peers; wait; spin_us; ring_capacity; overflow; send_queue; max_payload;
    heartbeat_ms; peer_timeout_ms; secret_file }

(** The links of MYCELIUM_LINKS's text (blank lines skipped); [Error]
    names the line, the link and the key. *)
let parse text =
  let lines = String.split_on_char '\n' text in
  try
    let _, out =
      List.fold_left
        (fun (i, acc) line ->
          let line = String.trim line in
          if line = "" then (i + 1, acc) else (i + 1, parse_line ~lineno:i line :: acc))
        (1, []) lines
    in
    let out = List.rev out in
    let rec dup = function
      | [] -> Ok out
      | l :: rest ->
        if List.exists (fun m -> m.name = l.name) rest then
          Error (Printf.sprintf "MYCELIUM_LINKS: two links are named '%s'" l.name)
        else dup rest
    in
    dup out
  with Bad e -> Error e

(** The secret of [path]: its bytes without trailing newlines (an editor's
    final newline is not part of the secret), like the C++ loader. *)
let read_secret link path =
  match open_in_bin path with
  | exception Sys_error e -> Error (Printf.sprintf "link %s: cannot read the secret file %s (%s)" link path e)
  | ic ->
    let s = Fun.protect ~finally:(fun () -> close_in_noerr ic) (fun () -> really_input_string ic (in_channel_length ic)) in
    let n = ref (String.length s) in
    while !n > 0 && (s.[!n - 1] = '\n' || s.[!n - 1] = '\r') do decr n done;
    if !n = 0 then Error (Printf.sprintf "link %s: the secret file %s is empty" link path)
    else Ok (String.sub s 0 !n)

(** The Socket_link configuration of a link of node [node]. [wait]: block
    is [spin = 0]; spin_then_block spins [spin_us]; busy_poll spins the
    longest the OCaml link allows (1 s after the last input, then it
    blocks). *)
let to_config ?(log = prerr_endline) ~node (l : link) =
  let secret = match l.secret_file with None -> Ok None | Some p -> Result.map Option.some (read_secret l.name p) in
  match secret with
  | Error e -> Error e
  | Ok secret ->
    let address =
      match l.kind with Tcp -> SL.Tcp (l.address, l.port) | Unix | Shm -> SL.Unix_path l.address
    in
    let spin = match l.wait with Block -> 0. | Spin_then_block -> float_of_int l.spin_us /. 1e6 | Busy_poll -> 1.0 in
    Ok
      { SL.default_config with
        name = l.name; role = l.role; address; send_queue = l.send_queue; overflow = l.overflow;
        ring_capacity = l.ring_capacity; spin; log;
        link =
          { SL.default_config.link with
            node; service = "link:" ^ l.name; secret; max_payload = l.max_payload; shm = l.kind = Shm;
            heartbeat_interval = float_of_int l.heartbeat_ms /. 1000.;
            peer_timeout = float_of_int l.peer_timeout_ms /. 1000. } }
