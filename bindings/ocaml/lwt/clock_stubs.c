/* CLOCK_MONOTONIC_COARSE in nanoseconds: what service handlers are timed
   with against the handler budget (a few ns per read; the kernel tick's
   resolution, 1-4 ms, is enough for a budget of milliseconds), as the C++
   participant_core does. Allocates nothing. */
#include <time.h>

#include <caml/mlvalues.h>

value mycelium_lwt_coarse_ns(value unit) {
  (void) unit;
  struct timespec ts;
#ifdef CLOCK_MONOTONIC_COARSE
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
#else
  clock_gettime(CLOCK_MONOTONIC, &ts);
#endif
  return Val_long((intnat) ts.tv_sec * 1000000000 + ts.tv_nsec);
}
