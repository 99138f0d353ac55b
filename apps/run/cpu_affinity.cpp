#include "cpu_affinity.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace mycelium::run {

std::string cpu_list_text(const std::vector<int>& cpus) {
  auto xs = cpus;
  std::sort(xs.begin(), xs.end());
  std::string out;
  for (size_t i = 0; i < xs.size();) {
    size_t j = i;
    while (j + 1 < xs.size() && xs[j + 1] == xs[j] + 1)
      ++j;
    out += (out.empty() ? "" : ",")
           + (j == i ? fmt::format("{}", xs[i]) : fmt::format("{}-{}", xs[i], xs[j]));
    i = j + 1;
  }
  return out;
}

std::string resolve_cpus(const std::vector<int>& want, cpu_affinity& out) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (::sched_getaffinity(0, sizeof(allowed), &allowed) != 0)
    return fmt::format("cannot read the launcher's CPUs (sched_getaffinity: {})",
                       std::strerror(errno));
  std::vector<int> may;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &allowed))
      may.push_back(c);
  auto has = [&] {
    return fmt::format("it may use {} CPU(s): {}", may.size(), cpu_list_text(may));
  };
  CPU_ZERO(&out.mask);
  out.cpus.clear();
  for (int c : want) {
    int cpu = c;
    if (c < 0) {
      auto from_end = static_cast<size_t>(-static_cast<long>(c));
      if (from_end > may.size())
        return fmt::format("CPU {} counts from the last CPU, and this launcher has "
                           "fewer ({}); use a number in range or remove cpus",
                           c, has());
      cpu = may[may.size() - from_end];
    } else if (std::find(may.begin(), may.end(), c) == may.end()) {
      return fmt::format("CPU {} is not one this launcher may use ({}); use one of "
                         "them, a negative number (-1: the last), or remove cpus",
                         c, has());
    }
    if (CPU_ISSET(cpu, &out.mask))
      return fmt::format("CPU {} and another entry name the same CPU ({}); name it "
                         "once", c, cpu);
    CPU_SET(cpu, &out.mask);
    out.cpus.push_back(cpu);
  }
  return {};
}

} // namespace mycelium::run
