(* The GC setting an OCaml node runs with (Mycelium_node.Node.run applies
   it; a program of its own can call [apply] first thing).

   Every string or bytes field over 256 words (2 KiB) that a link decodes is
   a fresh block in the major heap; such blocks die young, so after each
   major cycle most of the heap is free. With OCaml's default max_overhead
   (500 %) that triggers a compaction every few cycles: the heap shrinks,
   the next messages grow it again, and every fresh page costs a page
   fault. On the 64 KiB shared-memory round trip of bench_rtt that was 104
   compactions and 13 page faults per round trip in 20,000 round trips, and
   most of the time (docs/benchmarks.md, OCaml section). Turning automatic
   compaction off (max_overhead = 1000000, what OCAMLRUNPARAM=O=1000000
   does) keeps the heap at its high-water mark instead; the best-fit
   allocator (OCaml 4.13's default) keeps fragmentation low without it, and
   Gc.compact () still works when a program wants memory back. *)

let max_overhead = 1_000_000

(* Whether OCAMLRUNPARAM (or CAMLRUNPARAM) sets the parameter [key]
   ("O=..."): the user's choice wins. *)
let runparam_sets key =
  let set v = List.exists (fun item -> String.length item > 1 && item.[0] = key && item.[1] = '=') (String.split_on_char ',' v) in
  match (Sys.getenv_opt "OCAMLRUNPARAM", Sys.getenv_opt "CAMLRUNPARAM") with
  | Some v, _ -> set v
  | None, Some v -> set v
  | None, None -> false

(** Turns automatic compaction off unless OCAMLRUNPARAM sets [O]; true if
    it changed the setting. *)
let apply () =
  if runparam_sets 'O' then false
  else begin
    Gc.set { (Gc.get ()) with Gc.max_overhead };
    true
  end
