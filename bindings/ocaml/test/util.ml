(* Helpers shared by the OCaml test suites. *)

(** The value of an environment variable the CTest registration sets; a
    clear failure naming it when it is missing. *)
let env name =
  match Sys.getenv_opt name with
  | Some v when v <> "" -> v
  | _ ->
    Alcotest.failf
      "environment variable %s is not set: run the OCaml tests through CTest (ctest -L ocaml) \
       or set it as bindings/ocaml/CMakeLists.txt does"
      name

(** Parses a golden .hex file: whitespace-separated hex bytes, '#' comments. *)
let read_hex path =
  let ic = open_in_bin path in
  let b = Buffer.create 256 in
  (try
     while true do
       let line = input_line ic in
       let line = match String.index_opt line '#' with Some i -> String.sub line 0 i | None -> line in
       String.split_on_char ' ' line
       |> List.concat_map (String.split_on_char '\t')
       |> List.iter (fun w ->
              let w = String.trim w in
              if w <> "" then Buffer.add_char b (Char.chr (int_of_string ("0x" ^ w))))
     done
   with End_of_file -> close_in ic);
  Buffer.contents b

let hex s = Mycelium.Schema.hex s

(** Bytes from a hex string with spaces ignored: ["0a 00"]. *)
let unhex h =
  let h = String.concat "" (String.split_on_char ' ' (String.concat "" (String.split_on_char '\n' h))) in
  String.init (String.length h / 2) (fun i -> Char.chr (int_of_string ("0x" ^ String.sub h (2 * i) 2)))

let errc = Alcotest.testable Mycelium.Errc.pp ( = )
let bytes_hex = Alcotest.testable (fun f s -> Format.pp_print_string f (hex s)) String.equal
