/* Atomics and copies on a shared-memory mapping (an OCaml char Bigarray)
   for the rings of docs/wire-protocol.md section 10. Offsets are byte
   offsets into the mapping, checked by the OCaml callers; values are OCaml
   ints (positions and nanoseconds stay far below 2^62). Every function is
   thread-safe in the sense of the memory order it names; none allocates. */
#include <stdint.h>
#include <string.h>
#include <sched.h>

#include <caml/bigarray.h>
#include <caml/mlvalues.h>

static inline unsigned char* at(value ba, value off) {
  return (unsigned char*) Caml_ba_data_val(ba) + Long_val(off);
}

value mycelium_shm_load_acquire_u64(value ba, value off) {
  return Val_long((intnat) __atomic_load_n((uint64_t*) at(ba, off), __ATOMIC_ACQUIRE));
}

value mycelium_shm_load_relaxed_u64(value ba, value off) {
  return Val_long((intnat) __atomic_load_n((uint64_t*) at(ba, off), __ATOMIC_RELAXED));
}

value mycelium_shm_store_release_u64(value ba, value off, value v) {
  __atomic_store_n((uint64_t*) at(ba, off), (uint64_t) Long_val(v), __ATOMIC_RELEASE);
  return Val_unit;
}

value mycelium_shm_store_relaxed_u64(value ba, value off, value v) {
  __atomic_store_n((uint64_t*) at(ba, off), (uint64_t) Long_val(v), __ATOMIC_RELAXED);
  return Val_unit;
}

value mycelium_shm_load_acquire_u32(value ba, value off) {
  return Val_long((intnat) __atomic_load_n((uint32_t*) at(ba, off), __ATOMIC_ACQUIRE));
}

value mycelium_shm_load_relaxed_u32(value ba, value off) {
  return Val_long((intnat) __atomic_load_n((uint32_t*) at(ba, off), __ATOMIC_RELAXED));
}

value mycelium_shm_store_release_u32(value ba, value off, value v) {
  __atomic_store_n((uint32_t*) at(ba, off), (uint32_t) Long_val(v), __ATOMIC_RELEASE);
  return Val_unit;
}

value mycelium_shm_store_relaxed_u32(value ba, value off, value v) {
  __atomic_store_n((uint32_t*) at(ba, off), (uint32_t) Long_val(v), __ATOMIC_RELAXED);
  return Val_unit;
}

value mycelium_shm_fence(value unit) {
  (void) unit;
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  return Val_unit;
}

/* Lets another thread that is ready on this CPU run (a spin that lasts
   would otherwise keep a freshly woken peer process off it). */
value mycelium_shm_sched_yield(value unit) {
  (void) unit;
  sched_yield();
  return Val_unit;
}

/* A spin-wait hint between two polls of a ring (x86 pause). */
value mycelium_shm_cpu_relax(value unit) {
  (void) unit;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
  return Val_unit;
}

/* Plain little-endian u32 of a record header (the ring's release/acquire
   on head and tail orders it). */
value mycelium_shm_get_u32(value ba, value off) {
  uint32_t v;
  memcpy(&v, at(ba, off), 4);
  return Val_long((intnat) v);
}

value mycelium_shm_set_u32(value ba, value off, value v) {
  uint32_t x = (uint32_t) Long_val(v);
  memcpy(at(ba, off), &x, 4);
  return Val_unit;
}

/* mapping[off, off+len) -> bytes[boff, boff+len) */
value mycelium_shm_blit_to_bytes(value ba, value off, value b, value boff, value len) {
  memcpy(Bytes_val(b) + Long_val(boff), at(ba, off), Long_val(len));
  return Val_unit;
}

/* bytes[boff, boff+len) -> mapping[off, off+len) */
value mycelium_shm_blit_from_bytes(value b, value boff, value ba, value off, value len) {
  memcpy(at(ba, off), Bytes_val(b) + Long_val(boff), Long_val(len));
  return Val_unit;
}

value mycelium_shm_monotonic_ns(value unit);
#include <time.h>
value mycelium_shm_monotonic_ns(value unit) {
  (void) unit;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return Val_long((intnat) ts.tv_sec * 1000000000 + ts.tv_nsec);
}
