(* The parameters of a service instance ([services.X] params of a topology),
   as mycelium-run hands them to a command node in MYCELIUM_SERVICES
   (topology/src/topology.cpp, services_text): untyped text per key, nested
   tables flattened to dotted keys ("a.b"), lists as their elements joined
   by ','. The text is kept percent-encoded (%XX) until a lookup, so that a
   ',' inside a list element (%2C) stays apart from the separators.

   The type is decided at the lookup, with the conventions of the encoder:
   floats always contain '.', 'e', "inf" or "nan", integers never do,
   booleans are true/false. A key that is absent gives the default; a key
   whose value does not have the asked type raises [Bad] naming the service,
   the key and the value (a service's on_start that raises does not start,
   and the node reports the text). *)

exception Bad of string

let () = Printexc.register_printer (function Bad s -> Some s | _ -> None)

type t = { service : string; values : (string * string) list  (** key, encoded value *) }

let empty = { service = ""; values = [] }

(** The encoding of the launcher: '%', ' ', '=', ',', control bytes and DEL
    as %XX (upper-case hex). *)
let encode s =
  let b = Buffer.create (String.length s) in
  String.iter
    (fun c ->
      if Char.code c <= 0x20 || c = '%' || c = '=' || c = ',' || Char.code c = 0x7f then
        Buffer.add_string b (Printf.sprintf "%%%02X" (Char.code c))
      else Buffer.add_char b c)
    s;
  Buffer.contents b

let hex c =
  match c with
  | '0' .. '9' -> Some (Char.code c - 48)
  | 'A' .. 'F' -> Some (Char.code c - 55)
  | 'a' .. 'f' -> Some (Char.code c - 87)
  | _ -> None

(** The text of an encoded value; [Error] describes the first bad byte: an
    escape that is not %XX, or a byte that the encoder always escapes
    (' ', '=', ',', a control byte) found as it is. *)
let decode s =
  let n = String.length s in
  let b = Buffer.create n in
  let rec go i =
    if i >= n then Ok (Buffer.contents b)
    else
      match s.[i] with
      | '%' -> (
        let esc = String.sub s i (min 3 (n - i)) in
        match if i + 2 < n then (hex s.[i + 1], hex s.[i + 2]) else (None, None) with
        | Some h, Some l ->
          Buffer.add_char b (Char.chr ((h * 16) + l));
          go (i + 3)
        | _ -> Error (Printf.sprintf "'%s' is not a %%XX escape" esc))
      | (' ' | '=' | ',') as c -> Error (Printf.sprintf "'%c' must be sent as %%%02X" c (Char.code c))
      | c when Char.code c < 0x20 || Char.code c = 0x7f ->
        Error (Printf.sprintf "the control byte 0x%02X must be sent as %%%02X" (Char.code c) (Char.code c))
      | c ->
        Buffer.add_char b c;
        go (i + 1)
  in
  go 0

(** Parameters from encoded values (as in MYCELIUM_SERVICES, without the
    "p." prefix of the keys); [service] names the owner in errors. Raises
    [Bad] for a value that does not decode, or a list element that does
    not. *)
let of_encoded ~service values =
  List.iter
    (fun (k, v) ->
      List.iter
        (fun x ->
          match decode x with
          | Ok _ -> ()
          | Error e -> raise (Bad (Printf.sprintf "service '%s': param '%s': %s" service k e)))
        (String.split_on_char ',' v))
    values;
  { service; values }

(** Parameters from plain values (a list as its elements): for services
    started by a program rather than by the launcher, and for tests. *)
let of_list ~service values =
  { service;
    values =
      List.map
        (fun (k, v) -> (k, match v with `S s -> encode s | `L xs -> String.concat "," (List.map encode xs)))
        values }

let keys t = List.map fst t.values
let mem t key = List.mem_assoc key t.values

let get_decoded t key v =
  match decode v with
  | Ok s -> s
  | Error e -> raise (Bad (Printf.sprintf "service '%s': param '%s': %s" t.service key e))

let mismatch t key v what =
  raise (Bad (Printf.sprintf "service '%s': param '%s' is %s, not %s" t.service key v what))

(* A value as the error shows it: decoded, a list's elements joined by ','. *)
let shown v =
  Printf.sprintf "'%s'"
    (String.concat "," (List.map (fun x -> match decode x with Ok s -> s | Error _ -> x) (String.split_on_char ',' v)))

let lookup t key ~default f = match List.assoc_opt key t.values with None -> default | Some v -> f v

let all p s = s <> "" && String.for_all p s

let is_int s =
  match s with
  | "" -> false
  | _ -> (
    let digits = match s.[0] with '-' | '+' -> String.sub s 1 (String.length s - 1) | _ -> s in
    all (function '0' .. '9' -> true | _ -> false) digits)

(** The string of [key] (the text of a number or boolean too; a list's
    elements joined by ','). *)
let string t key ~default =
  lookup t key ~default (fun v -> String.concat "," (List.map (get_decoded t key) (String.split_on_char ',' v)))

(** The elements of the list [key] ([] for an empty list; a scalar is a
    list of one). *)
let strings t key ~default =
  lookup t key ~default (fun v -> if v = "" then [] else List.map (get_decoded t key) (String.split_on_char ',' v))

(** An integer: decimal digits with an optional sign, within OCaml's [int]. *)
let int t key ~default =
  lookup t key ~default (fun v ->
      if not (is_int v) then mismatch t key (shown v) "an integer"
      else match int_of_string_opt v with Some n -> n | None -> mismatch t key v "an integer that fits 63 bits")

(** A float; an integer is taken as the float it names (a topology may write
    [rate = 100] for a float parameter). *)
let float t key ~default =
  lookup t key ~default (fun v ->
      let ok =
        match String.lowercase_ascii v with
        | "inf" | "+inf" | "-inf" | "nan" | "+nan" | "-nan" -> true
        | _ -> all (function '0' .. '9' | '.' | 'e' | 'E' | '+' | '-' -> true | _ -> false) v
      in
      match if ok then float_of_string_opt v else None with
      | Some f -> f
      | None -> mismatch t key (shown v) "a number")

(** A boolean: true or false. *)
let bool t key ~default =
  lookup t key ~default (function
    | "true" -> true
    | "false" -> false
    | v -> mismatch t key (shown v) "true or false")
