(* What mycelium-run hands a node with runtime = "command" besides its
   links: the services the topology places on it, one line each in
   MYCELIUM_SERVICES, blank-separated key=value:

     name=<instance> type=<registry type> placement=pool|loop p.KEY=VALUE...

   (topology/src/topology.cpp, services_text): a p.KEY per parameter,
   nested tables as p.a.b, lists as their elements joined by ','; names and
   values percent-encoded (%XX for '%', ' ', '=', ',' and control bytes).
   This module parses the lines (pure, no I/O), strictly: every error names
   the line, the service and the key, like Launch does for MYCELIUM_LINKS. *)

module Params = Mycelium_lwt.Params

type placement = Mycelium_lwt.Service.placement = Pool | Loop

type instance = {
  name : string;
  type_name : string;
  placement : placement;  (** where its handlers run (Service, docs/ocaml.md "Placement") *)
  params : Params.t;
}

let placement_to_string = Mycelium_lwt.Service.placement_to_string

exception Bad of string

let split_blank s = List.filter (fun x -> x <> "") (String.split_on_char ' ' s)

let split_kv item =
  match String.index_opt item '=' with
  | None -> None
  | Some i -> Some (String.sub item 0 i, String.sub item (i + 1) (String.length item - i - 1))

let keys_text = "name, type, placement, p.KEY"

let parse_line ~offered ~lineno text =
  let items = split_blank text in
  (* the service's name for the errors, even those before its name= item *)
  let svc_name =
    List.find_map
      (fun it ->
        match split_kv it with
        | Some ("name", v) -> ( match Params.decode v with Ok n when n <> "" -> Some n | _ -> None)
        | _ -> None)
      items
  in
  let where () =
    match svc_name with
    | Some n -> Printf.sprintf "MYCELIUM_SERVICES line %d (service %s)" lineno n
    | None -> Printf.sprintf "MYCELIUM_SERVICES line %d" lineno
  in
  let bad fmt = Printf.ksprintf (fun s -> raise (Bad (where () ^ ": " ^ s))) fmt in
  let seen = Hashtbl.create 8 in
  let fields = Hashtbl.create 4 and params = ref [] in
  let decoded k v = match Params.decode v with Ok s -> s | Error e -> bad "key '%s': %s" k e in
  List.iter
    (fun item ->
      match split_kv item with
      | None -> bad "'%s' is not key=value" item
      | Some (k, v) ->
        if Hashtbl.mem seen k then bad "key '%s' given twice" k;
        Hashtbl.replace seen k ();
        if String.length k >= 2 && String.sub k 0 2 = "p." then begin
          let key = decoded k (String.sub k 2 (String.length k - 2)) in
          if List.mem "" (String.split_on_char '.' key) then bad "key '%s': a parameter name has an empty part" k;
          (* every list element must decode *)
          List.iter (fun x -> ignore (decoded k x)) (String.split_on_char ',' v);
          params := (key, v) :: !params
        end
        else if List.mem k [ "name"; "type"; "placement" ] then Hashtbl.replace fields k (decoded k v)
        else bad "unknown key '%s' (keys: %s)" k keys_text)
    items;
  let get k =
    match Hashtbl.find_opt fields k with
    | Some "" -> bad "key '%s' is empty" k
    | Some v -> v
    | None -> bad "key '%s' is missing" k
  in
  let name = get "name" in
  let type_name = get "type" in
  let placement =
    match get "placement" with
    | "pool" -> Pool
    | "loop" -> Loop
    | v -> bad "key 'placement': '%s' is not one of pool, loop" v
  in
  if not (List.mem type_name offered) then
    bad "key 'type': this program has no service type '%s' (it has: %s)" type_name
      (match offered with [] -> "none" | _ -> String.concat ", " offered);
  { name; type_name; placement; params = Params.of_encoded ~service:name (List.rev !params) }

(** The service instances of MYCELIUM_SERVICES's text (blank lines skipped)
    whose types are among [offered]; [Error] names the line, the service
    and the key. *)
let parse ~offered text =
  let lines = String.split_on_char '\n' text in
  try
    let _, out =
      List.fold_left
        (fun (i, acc) line ->
          let line = String.trim line in
          if line = "" then (i + 1, acc)
          else begin
            let s = parse_line ~offered ~lineno:i line in
            if List.exists (fun (_, m) -> m.name = s.name) acc then
              raise
                (Bad
                   (Printf.sprintf "MYCELIUM_SERVICES line %d (service %s): a service of line %d has this name too" i
                      s.name
                      (fst (List.find (fun (_, m) -> m.name = s.name) acc))));
            (i + 1, (i, s) :: acc)
          end)
        (1, []) lines
    in
    Ok (List.rev_map snd out)
  with Bad e -> Error e
