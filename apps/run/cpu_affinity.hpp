#pragma once

#include <sched.h>

#include <string>
#include <vector>

namespace mycelium::run {

/// A node's `cpus` resolved on the launcher's host: the mask its process is
/// started with (`sched_setaffinity` between fork and exec, so every thread
/// of the node inherits it). Plain data.
struct cpu_affinity {
  cpu_set_t mask;
  std::vector<int> cpus; ///< the CPU numbers in `mask`, in the topology's order
};

/// Resolves `want` against the CPUs this process may use
/// (`sched_getaffinity`): a negative number counts from the last of them
/// (-1: the last), a non-negative one must be one of them. Returns an empty
/// string on success, else what is wrong and what the host has, e.g. "CPU 4
/// is not one this launcher may use (it may use 0-1); ...". Thread-safe.
std::string resolve_cpus(const std::vector<int>& want, cpu_affinity& out);

/// "0-3,6": a CPU list as `taskset -c` writes it.
std::string cpu_list_text(const std::vector<int>& cpus);

} // namespace mycelium::run
