/* CLOCK_MONOTONIC in nanoseconds for bench_rtt (Unix.gettimeofday has
   microsecond resolution). Thread-safe; allocates nothing. */
#include <time.h>

#include <caml/mlvalues.h>

value mycelium_bench_monotonic_ns(value unit) {
  (void) unit;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return Val_long((long) ts.tv_sec * 1000000000L + ts.tv_nsec);
}
