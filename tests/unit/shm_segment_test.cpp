// Shared-memory segments: creation (owner-only, exclusive), attaching with
// every check (and refusing strangers' files), heartbeats and pid liveness,
// and stale segments left by a process killed with SIGKILL being found and
// removed.
#include <doctest/doctest.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <string>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mycelium/errc.hpp"
#include "mycelium/transports/shm/segment.hpp"

using namespace mycelium;
using namespace mycelium::transports::shm;

namespace {

std::string unique_name(const char* what) {
  return std::string{"mycelium-test-"} + what + "-" + std::to_string(::getpid());
}

wire::digest256 digest(uint8_t x) {
  wire::digest256 d{};
  d.fill(x);
  return d;
}

/// Runs a shell command and returns its standard output.
std::string run(const std::string& cmd) {
  std::string out;
  if (FILE* f = ::popen(cmd.c_str(), "r")) {
    char buf[512];
    while (auto n = ::fread(buf, 1, sizeof(buf), f))
      out.append(buf, n);
    ::pclose(f);
  }
  return out;
}

bool exists(const std::string& name) {
  struct stat st;
  return ::stat(("/dev/shm/" + name).c_str(), &st) == 0;
}

} // namespace

TEST_CASE("shm segment: created owner-only and exclusively, attached with checks") {
  auto name = unique_name("basic");
  auto a = segment::create(name, 4096, digest(1));
  REQUIRE(a);
  struct stat st;
  REQUIRE(::stat(("/dev/shm/" + name).c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  auto dup = segment::create(name, 4096, digest(1));
  REQUIRE(!dup);
  CHECK(render(dup.error()).find("exists") != std::string::npos);
  auto wrong = segment::attach(name, digest(2));
  REQUIRE(!wrong);
  CHECK(render(wrong.error()).find("schema_mismatch") != std::string::npos);
  CHECK(render(wrong.error()).find(wire::to_hex(digest(1))) != std::string::npos);
  auto b = segment::attach(name, digest(1));
  REQUIRE(b);
  CHECK(a->header().state.load() == static_cast<uint32_t>(segment_state::attached));
  // Side 0 writes ring 0, side 1 reads it, and back.
  auto w = a->writer();
  auto r = b->reader();
  REQUIRE(w.write("hello", 5) == ring_status::ok);
  const uint8_t* p = nullptr;
  size_t n = 0;
  REQUIRE(r.peek(p, n) == ring_status::ok);
  CHECK(std::string(reinterpret_cast<const char*>(p), n) == "hello");
  r.release();
  auto w2 = b->writer();
  auto r2 = a->reader();
  REQUIRE(w2.write("back", 4) == ring_status::ok);
  REQUIRE(r2.peek(p, n) == ring_status::ok);
  CHECK(n == 4);
  CHECK(a->peer_alive());
  b->beat();
  CHECK(a->peer_silence_ns() < 1000000000ull);
  a->unlink();
  CHECK_FALSE(exists(name));
}

TEST_CASE("shm segment: bad names and capacities are refused with the reason") {
  auto bad = segment::create("../etc/passwd", 4096, digest(1));
  REQUIRE(!bad);
  CHECK(render(bad.error()).find("[A-Za-z0-9._-]") != std::string::npos);
  auto cap = segment::create(unique_name("cap"), 1000, digest(1));
  REQUIRE(!cap);
  CHECK(render(cap.error()).find("power of two") != std::string::npos);
  auto none = segment::attach(unique_name("missing"), digest(1));
  REQUIRE(!none);
  CHECK(render(none.error()).find("No such file") != std::string::npos);
}

TEST_CASE("shm segment: attach refuses a file too small, a bad magic and a wrong size") {
  auto name = unique_name("refused");
  auto path = "/dev/shm/" + name;
  auto refusal = [&] {
    auto s = segment::attach(name, digest(1));
    REQUIRE(!s);
    return render(s.error());
  };
  { // A stranger's small file.
    int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(::ftruncate(fd, 16) == 0);
    ::close(fd);
  }
  CHECK(refusal().find("too small to be a segment") != std::string::npos);
  REQUIRE(::truncate(path.c_str(), 4096) == 0); // zeros: no magic
  CHECK(refusal().find("bad magic") != std::string::npos);
  REQUIRE(::unlink(path.c_str()) == 0);
  // A real segment whose file grew: its size no longer matches its capacity.
  auto a = segment::create(name, 4096, digest(1));
  REQUIRE(a);
  REQUIRE(::truncate(path.c_str(), static_cast<off_t>(segment_size(4096) + 4096)) == 0);
  CHECK(refusal().find("does not match its size") != std::string::npos);
  CHECK(a->header().state.load() == static_cast<uint32_t>(segment_state::ready));
}

TEST_CASE("shm segment: a segment left by a killed process is listed as stale and removed") {
  // Outside the default prefix "mycelium-": every shm link that starts
  // removes the stale segments under that prefix, and a test running beside
  // this one (ctest -j) would remove ours between its creation and the checks.
  auto name = "mycelium.test-stale-" + std::to_string(::getpid());
  auto live_name = "mycelium.test-stale-live-" + std::to_string(::getpid());
  // A run killed half-way (a CI timeout) may have left these names behind
  // under a pid that is ours now.
  ::shm_unlink(("/" + name).c_str());
  ::shm_unlink(("/" + live_name).c_str());
  int pipefd[2];
  REQUIRE(::pipe(pipefd) == 0);
  auto pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    auto s = segment::create(name, 4096, digest(3));
    char ok = s ? '1' : '0';
    (void) !::write(pipefd[1], &ok, 1);
    ::raise(SIGKILL); // no destructor, no unlink: like kill -9
  }
  char ok = 0;
  REQUIRE(::read(pipefd[0], &ok, 1) == 1);
  ::close(pipefd[0]);
  ::close(pipefd[1]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(ok == '1');
  REQUIRE(exists(name));
  bool found = false;
  for (auto& s : list_segments("mycelium.test-stale-"))
    if (s.name == name) {
      found = true;
      CHECK(s.valid);
      CHECK(s.stale);
      CHECK(s.owner_pid[0] == static_cast<uint32_t>(pid));
    }
  CHECK(found);
  // A live segment of ours is not stale and is kept.
  auto live = segment::create(live_name, 4096, digest(3));
  REQUIRE(live);
  // The command lists both and removes only the stale one.
  auto listing = run(std::string{MYCELIUM_SHM_TOOL} + " list --prefix mycelium.test-stale-");
  // Each row ends with the segment's status.
  auto status_of = [&listing](const std::string& segment_name) {
    auto at = listing.find(segment_name + " ");
    if (at == std::string::npos)
      return std::string{"(not listed)"};
    auto end = listing.find('\n', at);
    auto row = listing.substr(at, end == std::string::npos ? std::string::npos : end - at);
    return row.substr(row.find_last_of(' ') + 1);
  };
  CHECK(status_of(name) == "stale");
  CHECK(status_of(live->name()) == "live");
  auto dry = run(std::string{MYCELIUM_SHM_TOOL} + " clean --dry-run --prefix mycelium.test-stale-");
  CHECK(dry.find("would remove /dev/shm/" + name) != std::string::npos);
  REQUIRE(exists(name));
  SUBCASE("by the library") {
    // Others' leftovers under the prefix may go too; ours must, the live one not.
    auto removed = remove_stale_segments("mycelium.test-stale-");
    CHECK(std::count(removed.begin(), removed.end(), name) == 1);
    CHECK(std::count(removed.begin(), removed.end(), live_name) == 0);
  }
  SUBCASE("by mycelium-shm clean") {
    auto out = run(std::string{MYCELIUM_SHM_TOOL} + " clean --prefix mycelium.test-stale-");
    CHECK(out.find("removed /dev/shm/" + name) != std::string::npos);
  }
  CHECK_FALSE(exists(name));
  CHECK(exists(live->name()));
}
