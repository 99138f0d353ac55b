#include "mycelium/transports/shm/segment.hpp"

#include <cctype>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <new>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/shared_memory_object.hpp>

#include "mycelium/errc.hpp"

namespace mycelium::transports::shm {

namespace bip = boost::interprocess;

namespace {

/// `io_failed` for a failed step, with the system's reason (Boost puts
/// strerror's text in `what()`).
caf::error io_error(const std::string& doing, const bip::interprocess_exception& e) {
  return make_error(errc::io_failed, doing + ": " + e.what());
}

/// Opens the shared-memory object `name` read-write: if `creating`, a new
/// one (O_CREAT | O_EXCL) owner-only (0600 whatever the umask: Boost
/// fchmods), else an existing one. Boost opens without O_CLOEXEC; the
/// descriptor is marked close-on-exec at once (it lives only until the
/// segment is mapped, and a child exec'd meanwhile must not keep it).
/// Throws `interprocess_exception`.
bip::shared_memory_object open_object(const std::string& name, bool creating) {
  auto obj = creating ? bip::shared_memory_object{bip::create_only, name.c_str(),
                                                  bip::read_write,
                                                  bip::permissions{S_IRUSR | S_IWUSR}}
                      : bip::shared_memory_object{bip::open_only, name.c_str(),
                                                  bip::read_write};
  ::fcntl(obj.get_mapping_handle().handle, F_SETFD, FD_CLOEXEC);
  return obj;
}

std::string shm_path(const std::string& name) {
  return "/" + name;
}

bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > 200)
    return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'
          || c == '.'))
      return false;
  return true;
}

caf::error bad_name(const std::string& name) {
  return make_error(errc::config_invalid,
                    "shared-memory segment name '" + name
                      + "' must have 1 to 200 characters of [A-Za-z0-9._-]");
}

} // namespace

uint64_t monotonic_ns() noexcept {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull
         + static_cast<uint64_t>(ts.tv_nsec);
}

bool process_alive(uint32_t pid) noexcept {
  if (pid == 0)
    return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH;
}

segment segment::take_side(const std::string& name, bip::mapped_region region,
                           int side, segment_state next) {
  auto* hdr = static_cast<segment_header*>(region.get_address());
  hdr->owner_pid[side].store(static_cast<uint32_t>(::getpid()), std::memory_order_relaxed);
  hdr->heartbeat[side].store(monotonic_ns(), std::memory_order_relaxed);
  hdr->state.store(static_cast<uint32_t>(next), std::memory_order_release);
  segment s;
  s.name_ = name;
  s.side_ = side;
  s.region_ = std::move(region);
  s.hdr_ = hdr;
  return s;
}

caf::expected<segment> segment::create(const std::string& name, uint64_t capacity,
                                       const wire::digest256& schema_digest) {
  if (!valid_name(name))
    return bad_name(name);
  if (!valid_capacity(capacity))
    return make_error(errc::config_invalid,
                      "ring capacity " + std::to_string(capacity)
                        + " must be a power of two from 64 bytes to 1 GiB");
  auto where = "/dev/shm/" + name;
  auto size = segment_size(capacity);
  std::string doing = "shm_open " + where;
  bool created = false;
  try {
    auto obj = open_object(name, true);
    created = true;
    doing = "sizing " + where + " to " + std::to_string(size) + " bytes";
    obj.truncate(static_cast<bip::offset_t>(size));
    doing = "mapping " + where;
    bip::mapped_region region{obj, bip::read_write, 0, size};
    // A fresh mapping is zero-filled: construct the atomics in place.
    auto* p = static_cast<uint8_t*>(region.get_address());
    auto* hdr = new (p) segment_header{};
    new (p + ring_offset(capacity, 0)) ring_control{};
    new (p + ring_offset(capacity, 1)) ring_control{};
    // Our pid goes in before the magic: another process's `list_segments`
    // may read the header at any moment, and a valid magic with no owner
    // would look stale and be removed under us.
    hdr->owner_pid[0].store(static_cast<uint32_t>(::getpid()), std::memory_order_relaxed);
    hdr->layout_version = segment_layout_version;
    hdr->capacity = capacity;
    hdr->max_frame = max_frame_for(capacity);
    std::memcpy(hdr->schema_digest, schema_digest.data(), 32);
    std::atomic_thread_fence(std::memory_order_release);
    hdr->magic = segment_magic;
    return take_side(name, std::move(region), 0, segment_state::ready);
  } catch (const bip::interprocess_exception& e) {
    if (created)
      bip::shared_memory_object::remove(name.c_str());
    if (e.get_error_code() == bip::already_exists_error)
      return make_error(errc::address_in_use,
                        "shared-memory segment " + where
                          + " exists; remove stale ones with `mycelium-shm clean`");
    return io_error(doing, e);
  }
}

caf::expected<segment> segment::attach(const std::string& name,
                                       const wire::digest256& schema_digest) {
  if (!valid_name(name))
    return bad_name(name);
  auto where = "shared-memory segment /dev/shm/" + name;
  std::string doing = "opening " + where;
  try {
    auto obj = open_object(name, false);
    bip::offset_t file_size = 0;
    if (!obj.get_size(file_size)
        || file_size < static_cast<bip::offset_t>(sizeof(segment_header)))
      return make_error(errc::protocol_violation, where + " is too small to be a segment");
    auto size = static_cast<size_t>(file_size);
    doing = "mapping " + where;
    bip::mapped_region region{obj, bip::read_write, 0, size};
    auto* hdr = static_cast<segment_header*>(region.get_address());
    // On failure `region` unmaps on the way out.
    auto fail = [&](errc code, const std::string& text) {
      return make_error(code, where + ": " + text);
    };
    if (hdr->magic != segment_magic)
      return fail(errc::bad_magic, "not a Mycelium segment (bad magic)");
    if (hdr->layout_version != segment_layout_version)
      return fail(errc::version_mismatch,
                  "layout version " + std::to_string(hdr->layout_version)
                    + ", this build uses " + std::to_string(segment_layout_version));
    if (hdr->state.load(std::memory_order_acquire)
        != static_cast<uint32_t>(segment_state::ready))
      return fail(errc::protocol_violation,
                  "state " + std::to_string(hdr->state.load()) + " (expected ready): "
                    "it is being created, already attached or closed");
    if (!valid_capacity(hdr->capacity) || segment_size(hdr->capacity) != size)
      return fail(errc::protocol_violation,
                  "capacity " + std::to_string(hdr->capacity) + " does not match its size "
                    + std::to_string(size));
    if (std::memcmp(hdr->schema_digest, schema_digest.data(), 32) != 0) {
      wire::digest256 theirs;
      std::memcpy(theirs.data(), hdr->schema_digest, 32);
      return fail(errc::schema_mismatch,
                  "schema digest " + wire::to_hex(theirs) + ", ours is "
                    + wire::to_hex(schema_digest)
                    + "; rebuild both sides from the same schema file");
    }
    return take_side(name, std::move(region), 1, segment_state::attached);
  } catch (const bip::interprocess_exception& e) {
    return io_error(doing, e);
  }
}

segment::segment(segment&& other) noexcept
  : name_(std::move(other.name_)), side_(other.side_),
    region_(std::move(other.region_)), hdr_(other.hdr_), unlinked_(other.unlinked_) {
  other.hdr_ = nullptr;
  other.unlinked_ = true;
}

segment& segment::operator=(segment&& other) noexcept {
  if (this != &other) {
    this->~segment();
    new (this) segment(std::move(other));
  }
  return *this;
}

segment::~segment() {
  if (hdr_ == nullptr)
    return;
  hdr_->state.store(static_cast<uint32_t>(segment_state::closed),
                    std::memory_order_release);
  if (side_ == 0) // the creator owns the name
    unlink();
} // region_ unmaps

ring_control& segment::outgoing() noexcept {
  return *reinterpret_cast<ring_control*>(reinterpret_cast<uint8_t*>(hdr_)
                                          + ring_offset(hdr_->capacity, side_));
}

ring_control& segment::incoming() noexcept {
  return *reinterpret_cast<ring_control*>(reinterpret_cast<uint8_t*>(hdr_)
                                          + ring_offset(hdr_->capacity, 1 - side_));
}

ring_writer segment::writer() {
  auto& ctl = outgoing();
  return ring_writer{&ctl, reinterpret_cast<uint8_t*>(&ctl) + sizeof(ring_control),
                     hdr_->capacity};
}

ring_reader segment::reader() {
  auto& ctl = incoming();
  return ring_reader{&ctl, reinterpret_cast<uint8_t*>(&ctl) + sizeof(ring_control),
                     hdr_->capacity};
}

void segment::beat() noexcept {
  hdr_->heartbeat[side_].store(monotonic_ns(), std::memory_order_relaxed);
}

uint64_t segment::peer_silence_ns() const noexcept {
  auto last = hdr_->heartbeat[1 - side_].load(std::memory_order_relaxed);
  auto now = monotonic_ns();
  return last == 0 || now < last ? 0 : now - last;
}

bool segment::peer_alive() const noexcept {
  return process_alive(hdr_->owner_pid[1 - side_].load(std::memory_order_relaxed));
}

void segment::unlink() noexcept {
  if (!unlinked_) {
    bip::shared_memory_object::remove(name_.c_str());
    unlinked_ = true;
  }
}

std::vector<segment_info> list_segments(const std::string& prefix) {
  std::vector<segment_info> out;
  DIR* dir = ::opendir("/dev/shm");
  if (dir == nullptr)
    return out;
  while (auto* e = ::readdir(dir)) {
    std::string name = e->d_name;
    if (name.compare(0, prefix.size(), prefix) != 0)
      continue;
    segment_info info;
    info.name = name;
    int fd = ::shm_open(shm_path(name).c_str(), O_RDONLY | O_CLOEXEC, 0);
    struct stat st;
    if (fd < 0 || ::fstat(fd, &st) != 0) {
      info.problem = std::string{"cannot open: "} + std::strerror(errno);
      if (fd >= 0)
        ::close(fd);
      out.push_back(std::move(info));
      continue;
    }
    info.size = static_cast<uint64_t>(st.st_size);
    // Read a copy of the header bytes (never map a foreign file writable).
    unsigned char raw[sizeof(segment_header)];
    bool readable = st.st_size >= static_cast<off_t>(sizeof(segment_header))
                    && ::pread(fd, raw, sizeof(raw), 0) == static_cast<ssize_t>(sizeof(raw));
    ::close(fd);
    auto field = [&raw](size_t offset, auto& out) { std::memcpy(&out, raw + offset, sizeof(out)); };
    uint64_t magic = 0;
    uint32_t version = 0;
    if (readable) {
      field(offsetof(segment_header, magic), magic);
      field(offsetof(segment_header, layout_version), version);
      field(offsetof(segment_header, state), info.state);
      field(offsetof(segment_header, owner_pid), info.owner_pid);
    }
    bool old = ::time(nullptr) - st.st_mtime > 60;
    if (!readable) {
      info.problem = "too small for a segment header";
      info.stale = old;
    } else if (magic != segment_magic) {
      info.problem = "bad magic";
      info.stale = old;
    } else {
      info.valid = version == segment_layout_version;
      if (!info.valid)
        info.problem = "layout version " + std::to_string(version);
      bool no_owner = info.owner_pid[0] == 0 && info.owner_pid[1] == 0;
      // No owner recorded yet: a segment being created, stale only if old.
      info.stale = no_owner ? old
                            : !process_alive(info.owner_pid[0])
                                && !process_alive(info.owner_pid[1]);
    }
    out.push_back(std::move(info));
  }
  ::closedir(dir);
  return out;
}

std::vector<std::string> remove_stale_segments(const std::string& prefix) {
  std::vector<std::string> removed;
  for (auto& s : list_segments(prefix))
    if (s.stale && bip::shared_memory_object::remove(s.name.c_str()))
      removed.push_back(s.name);
  return removed;
}

} // namespace mycelium::transports::shm
