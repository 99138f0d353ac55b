/* Clocks of the risk node: CLOCK_MONOTONIC in nanoseconds for the
   latency stamps (t_risk_in, t_risk_out: the trading system's timing
   fields are CLOCK_MONOTONIC ns on one host), CLOCK_REALTIME in
   nanoseconds for the default epoch (a fresh number per start). 63-bit
   OCaml ints hold either until the year 2262. Allocate nothing. */
#include <time.h>

#include <caml/mlvalues.h>

static value ns_of(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return Val_long((intnat) ts.tv_sec * 1000000000 + ts.tv_nsec);
}

value mycelium_risk_monotonic_ns(value unit) {
  (void) unit;
  return ns_of(CLOCK_MONOTONIC);
}

value mycelium_risk_realtime_ns(value unit) {
  (void) unit;
  return ns_of(CLOCK_REALTIME);
}
