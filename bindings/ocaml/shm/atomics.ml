(* Atomic access to a shared mapping (C stubs, shm_stubs.c). *)

type mapping = (char, Bigarray.int8_unsigned_elt, Bigarray.c_layout) Bigarray.Array1.t

external load_acquire_u64 : mapping -> int -> int = "mycelium_shm_load_acquire_u64" [@@noalloc]
external load_relaxed_u64 : mapping -> int -> int = "mycelium_shm_load_relaxed_u64" [@@noalloc]
external store_release_u64 : mapping -> int -> int -> unit = "mycelium_shm_store_release_u64" [@@noalloc]
external store_relaxed_u64 : mapping -> int -> int -> unit = "mycelium_shm_store_relaxed_u64" [@@noalloc]
external load_acquire_u32 : mapping -> int -> int = "mycelium_shm_load_acquire_u32" [@@noalloc]
external load_relaxed_u32 : mapping -> int -> int = "mycelium_shm_load_relaxed_u32" [@@noalloc]
external store_release_u32 : mapping -> int -> int -> unit = "mycelium_shm_store_release_u32" [@@noalloc]
external store_relaxed_u32 : mapping -> int -> int -> unit = "mycelium_shm_store_relaxed_u32" [@@noalloc]
external fence : unit -> unit = "mycelium_shm_fence" [@@noalloc]
external cpu_relax : unit -> unit = "mycelium_shm_cpu_relax" [@@noalloc]

(** sched_yield(2): another thread ready on this CPU runs first. *)
external sched_yield : unit -> unit = "mycelium_shm_sched_yield" [@@noalloc]
external get_u32 : mapping -> int -> int = "mycelium_shm_get_u32" [@@noalloc]
external set_u32 : mapping -> int -> int -> unit = "mycelium_shm_set_u32" [@@noalloc]
external blit_to_bytes : mapping -> int -> bytes -> int -> int -> unit = "mycelium_shm_blit_to_bytes" [@@noalloc]
external blit_from_bytes : bytes -> int -> mapping -> int -> int -> unit = "mycelium_shm_blit_from_bytes" [@@noalloc]
external monotonic_ns : unit -> int = "mycelium_shm_monotonic_ns" [@@noalloc]
