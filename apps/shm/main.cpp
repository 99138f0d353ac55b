// mycelium-shm: lists and removes the shared-memory segments of Mycelium
// links under /dev/shm. A segment is stale when no process that owned it is
// alive (e.g. both ended with kill -9); links also remove stale segments of
// their own at start.
//
// Exit codes: 0 done, 1 a removal failed, 2 bad command line.

#include <cstdio>
#include <iostream>

#include <sys/mman.h>

#include <CLI/CLI.hpp>

#include "mycelium/transports/shm/segment.hpp"

namespace shm = mycelium::transports::shm;

namespace {

const char* state_name(uint32_t s) {
  switch (static_cast<shm::segment_state>(s)) {
    case shm::segment_state::creating: return "creating";
    case shm::segment_state::ready: return "ready";
    case shm::segment_state::attached: return "attached";
    case shm::segment_state::closed: return "closed";
  }
  return "?";
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"mycelium-shm: list and remove the shared-memory segments of "
               "Mycelium links (/dev/shm)"};
  app.require_subcommand(1);
  std::string prefix = "mycelium-";
  auto* list = app.add_subcommand("list", "list segments with their owners and state");
  list->add_option("--prefix", prefix, "segment name prefix");
  bool dry_run = false;
  auto* clean = app.add_subcommand("clean", "remove stale segments (no live owner)");
  clean->add_option("--prefix", prefix, "segment name prefix");
  clean->add_flag("--dry-run", dry_run, "only print what would be removed");
  CLI11_PARSE(app, argc, argv);

  auto segments = shm::list_segments(prefix);
  if (list->parsed()) {
    if (segments.empty()) {
      std::cout << "no segments named " << prefix << "* in /dev/shm\n";
      return 0;
    }
    std::printf("%-48s %10s %-9s %8s %8s %s\n", "name", "bytes", "state", "pid0",
                "pid1", "status");
    for (auto& s : segments)
      std::printf("%-48s %10llu %-9s %8u %8u %s\n", s.name.c_str(),
                  static_cast<unsigned long long>(s.size),
                  s.valid ? state_name(s.state) : "-", s.owner_pid[0],
                  s.owner_pid[1],
                  (s.stale ? "stale" : (s.valid ? "live" : ("invalid: " + s.problem).c_str())));
    return 0;
  }
  int rc = 0;
  size_t n = 0;
  for (auto& s : segments) {
    if (!s.stale)
      continue;
    ++n;
    if (dry_run) {
      std::cout << "would remove /dev/shm/" << s.name << "\n";
    } else if (::shm_unlink(("/" + s.name).c_str()) == 0) {
      std::cout << "removed /dev/shm/" << s.name << "\n";
    } else {
      std::perror(("mycelium-shm: removing /dev/shm/" + s.name).c_str());
      rc = 1;
    }
  }
  if (n == 0)
    std::cout << "no stale segments named " << prefix << "*\n";
  return rc;
}
