#include "core_module.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/atom.hpp>
#include <pybind11/stl.h>

#include "inbox.hpp"
#include "mycelium/actors/node.hpp"
#include "mycelium/actors/placement.hpp"
#include "mycelium/actors/untyped_service.hpp"
#include "mycelium/errc.hpp"
#include "mycelium/python/message_bridge.hpp"
#include "mycelium/python/native_schema.hpp"
#include "mycelium/raw_schema.hpp"
#include "mycelium/topology/node_main.hpp"
#include "mycelium/topology/topology_node.hpp"
#include "mycelium/transports/link.hpp"
#include "mycelium/transports/system_config.hpp"
#include "mycelium/wire/handshake.hpp"
#include "python_host.hpp"
#include "settings_conversion.hpp"

namespace py = pybind11;
using namespace std::chrono_literals;

namespace mycelium::python {

namespace {

/// Raised for every `caf::error` of the runtime; the Python package maps
/// it to its own exception classes by `errc` (mycelium.errors).
py::object core_error;

[[noreturn]] void raise(const caf::error& err) {
  auto code = err.category() == caf::atom("mycelium") ? static_cast<int>(err.code()) : -1;
  auto text = render(err);
  py::object exc = core_error(text, code);
  PyErr_SetObject(core_error.ptr(), exc.ptr());
  throw py::error_already_set();
}

unsigned long main_thread_ident = 0;

/// Enters the handle's runtime for one call; raises once it has stopped.
runtime_gate::pass enter(const py_handle& h) {
  runtime_gate::pass p{h.gate.get()};
  if (!p)
    raise(make_error(errc::service_failed,
                     "'" + h.handle->name() + "': its node has stopped"));
  return p;
}

std::chrono::nanoseconds seconds(double s) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(s));
}

py::bytes as_bytes(const std::vector<uint8_t>& v) {
  return py::bytes(reinterpret_cast<const char*>(v.data()), v.size());
}

/// The payload of a message event as Python gets it: the object of the
/// class bound to its type (the bridge made it from the struct), or the
/// TLV bytes (the Python class decodes them).
py::object payload_of(const py_handle& h, const inbox_event& ev) {
  if (ev.value.empty())
    return as_bytes(ev.payload);
  auto i = h.classes->by_type.find(ev.type_id);
  if (i != h.classes->by_type.end() && i->second != nullptr) {
    try {
      return py::reinterpret_steal<py::object>(i->second->entry->to_python(ev.value, *i->second));
    } catch (const convert_failure&) {
      // a value the decoder refuses: the bytes, so that it says why
    }
  }
  std::vector<uint8_t> bytes;
  uint32_t type_id = 0;
  if (!h.handle->schema().encode(ev.value, bytes, type_id))
    throw std::runtime_error("a message of type id " + std::to_string(ev.type_id)
                             + " that the node's schema cannot encode");
  return as_bytes(bytes);
}

py::tuple as_tuple(const py_handle& h, const inbox_event& ev) {
  return py::make_tuple(static_cast<int>(ev.kind), ev.type_id, ev.request_id,
                        payload_of(h, ev), ev.text);
}

/// Raises for a publish that did not happen.
void check_published(const py_handle& h, uint32_t type_id, errc e) {
  if (e == errc::service_failed)
    raise(make_error(e, "publish from '" + h.handle->name()
                          + "': it has stopped (or its node has)"));
  if (e != errc::none)
    raise(make_error(e, "publish of type id " + std::to_string(type_id)
                          + ": the payload does not decode as that type: " + to_string(e)));
}

int publish_bytes(py_handle& h, uint32_t type_id, const py::bytes& payload) {
  char* data = nullptr;
  Py_ssize_t n = 0;
  PyBytes_AsStringAndSize(payload.ptr(), &data, &n);
  publish_status st = publish_status::ok;
  errc e;
  {
    py::gil_scoped_release nogil;
    e = h.handle->publish(type_id, reinterpret_cast<const uint8_t*>(data),
                          static_cast<size_t>(n), &st);
  }
  check_published(h, type_id, e);
  return static_cast<int>(st);
}

/// Publishes a message object: through the bridge as the C++ struct when
/// the node has its type compiled in, else encoded by its class. True when
/// it reached every subscriber (`publish_status::ok`).
bool publish_object(py_handle& h, py::handle msg) {
  auto& cache = *h.classes;
  auto* type = Py_TYPE(msg.ptr());
  const class_info* ci;
  if (type == cache.last_type) {
    ci = cache.last_info; // a service mostly publishes one or two types
  } else {
    auto* b = h.bridge();
    ci = b != nullptr ? bind_class(reinterpret_cast<PyObject*>(type), *b) : nullptr;
    cache.last_type = type;
    cache.last_info = ci;
  }
  if (ci == nullptr)
    return publish_bytes(h, msg.attr("type_id").cast<uint32_t>(), msg.attr("encode")())
           == static_cast<int>(publish_status::ok);
  caf::message m;
  try {
    m = ci->entry->from_python(msg.ptr(), *ci);
  } catch (const encode_failure& f) {
    raise_encode_error(msg.ptr(), f);
  }
  publish_status st = publish_status::ok;
  errc e;
  {
    py::gil_scoped_release nogil;
    e = h.handle->publish(ci->type_id, std::move(m), &st);
  }
  check_published(h, ci->type_id, e);
  return st == publish_status::ok;
}

/// Waits for the next event of `h`'s queue without the GIL: false after
/// `timeout` seconds (none: for ever). Polls for `spin` seconds first, by
/// running the node's I/O loop when it lends its turns (io_loop::lend). On
/// Python's main thread it waits in slices of 50 ms and checks for signals
/// between them, so Ctrl-C interrupts a blocking receive within 100 ms
/// (KeyboardInterrupt).
bool wait_event(py_handle& h, std::optional<double> timeout, double spin, inbox_event& ev) {
  auto now = std::chrono::steady_clock::now();
  auto deadline = now + (timeout ? seconds(*timeout)
                                 : std::chrono::nanoseconds{std::chrono::hours{24 * 365}});
  bool main = PyThread_get_thread_ident() == main_thread_ident;
  for (;;) {
    auto left = deadline - now;
    if (left < std::chrono::nanoseconds{0})
      left = std::chrono::nanoseconds{0};
    auto slice = main ? std::min<std::chrono::nanoseconds>(left, 50ms) : left;
    bool got;
    {
      py::gil_scoped_release nogil;
      std::chrono::nanoseconds poll = spin > 0 ? seconds(spin) : std::chrono::nanoseconds{0};
      if (poll.count() > 0 && h.lend.loop != nullptr && !h.inbox->has_events()) {
        // Spin by running the loop's turns: the loop thread sleeps, and
        // what arrives for this queue is taken from the ring on this thread.
        // The pass keeps the runtime (and its loop) alive meanwhile, and a
        // stopping runtime ends the lend.
        runtime_gate::pass alive{h.lend.gate.get()};
        if (alive) {
          struct waiter {
            inbox* in;
            runtime_gate* gate;
          } w{h.inbox.get(), h.lend.gate.get()};
          auto r = h.lend.loop->lend(
            [](void* ctx) noexcept {
              auto* x = static_cast<waiter*>(ctx);
              // No gate: a C++ node's loop, which outlives its Python services.
              return x->in->has_events() || (x->gate != nullptr && x->gate->closing());
            },
            &w, now + std::min(poll, slice));
          if (r != transports::io_loop::lend_result::refused)
            poll = std::chrono::nanoseconds{0};
        }
      }
      got = h.inbox->pop(ev, slice, poll);
    }
    spin = 0; // spin once, before the first sleep
    if (got)
      return true;
    if (PyErr_CheckSignals() != 0)
      throw py::error_already_set();
    now = std::chrono::steady_clock::now();
    if (now >= deadline)
      return false;
  }
}

/// `wait_event`, after a look at the queue that, when an event is there,
/// takes it with the GIL held (no release, no clock read).
bool take_event(py_handle& h, std::optional<double> timeout, double spin, inbox_event& ev) {
  if (h.inbox->has_events() && h.inbox->try_pop(ev))
    return true;
  return wait_event(h, timeout, spin, ev);
}

py::object next_event(py_handle& h, std::optional<double> timeout, double spin) {
  inbox_event ev;
  if (!wait_event(h, timeout, spin, ev))
    return py::none();
  return as_tuple(h, ev);
}

/// The counters of `l` (empty for none).
py::dict loop_stats_dict(const transports::io_loop* l) {
  py::dict d;
  if (l == nullptr)
    return d;
  auto st = l->stats();
  d["turns"] = st.turns;
  d["resumed"] = st.resumed;
  d["polled"] = st.polled;
  d["sleeps"] = st.sleeps;
  d["socket_polls"] = st.socket_polls;
  d["flushes"] = st.flushes;
  d["lends"] = st.lends;
  d["attends"] = st.attends;
  d["timers"] = st.timers;
  d["lending"] = l->lending_enabled();
  return d;
}

py::dict stats_dict(const service_stats& s) {
  py::dict d;
  d["name"] = s.name;
  d["published"] = s.published;
  d["delivered"] = s.delivered;
  d["dropped"] = s.dropped;
  d["handler_errors"] = s.handler_errors;
  d["restarts"] = s.restarts;
  return d;
}

py::dict link_stats_dict(const transports::link& l) {
  auto st = l.stats();
  py::dict d;
  d["name"] = st.name;
  d["endpoint"] = l.config().endpoint();
  d["state"] = transports::to_string(st.state);
  d["peers"] = st.peers;
  d["peer"] = st.peer;
  py::list peers;
  for (auto& p : st.peer_list)
    peers.append(p.node);
  d["peer_nodes"] = peers;
  d["peer_interest"] = st.peer_interest;
  d["port"] = st.port;
  d["queued"] = st.queued;
  // Every counter of transports::link_stats, under its C++ name.
  d["frames_sent"] = st.frames_sent;
  d["bytes_sent"] = st.bytes_sent;
  d["frames_received"] = st.frames_received;
  d["bytes_received"] = st.bytes_received;
  d["dropped_overflow"] = st.dropped_overflow;
  d["back_pressured"] = st.back_pressured;
  d["overflow_disconnects"] = st.overflow_disconnects;
  d["dropped_link_down"] = st.dropped_link_down;
  d["frames_too_large"] = st.frames_too_large;
  d["bad_frames"] = st.bad_frames;
  d["connects"] = st.connects;
  d["disconnects"] = st.disconnects;
  d["goodbyes"] = st.goodbyes;
  d["connect_failures"] = st.connect_failures;
  d["refusals_sent"] = st.refusals_sent;
  d["refusals_received"] = st.refusals_received;
  d["socket_writes"] = st.socket_writes;
  d["scribe_writes"] = st.scribe_writes;
  d["polled_reads"] = st.polled_reads;
  d["last_error"] = st.last_error;
  return d;
}

/// The schema a Python process's runtime uses: the generated C++ code of a
/// native module (native_schema.hpp), whose bridge is then registered, or
/// else a raw schema made from the Python module's announcement. Copyable;
/// immutable.
struct py_schema {
  std::shared_ptr<const raw_schema> raw; ///< null for a native schema
  const native_schema* native = nullptr;
  py::object keep; ///< the native module, which owns `*native`

  const schema_descriptor& descriptor() const {
    return native != nullptr ? *native->descriptor : raw->descriptor();
  }
};

wire::digest256 to_digest(const py::bytes& b, const std::string& what) {
  std::string s = b;
  if (s.size() != 32)
    throw py::value_error(what + ": a digest has 32 bytes, not " + std::to_string(s.size()));
  wire::digest256 d{};
  std::copy(s.begin(), s.end(), d.begin());
  return d;
}

py_schema make_schema(std::string package, py::bytes digest,
                      const std::vector<std::tuple<uint32_t, std::string, py::bytes>>& types) {
  std::vector<wire::type_digest> ts;
  for (auto& [id, name, dg] : types)
    ts.push_back({id, name, to_digest(dg, "type " + name)});
  auto s = raw_schema::make(package, to_digest(digest, "schema " + package), std::move(ts));
  if (!s)
    raise(s.error());
  return py_schema{std::move(*s), nullptr, py::none()};
}

/// The schema of native module `module`, checked against the announcement
/// of the Python module it belongs to (`digest`, `types`): a module built
/// from another version of the schema, or against other headers, is
/// refused with what differs, so that the caller can fall back to the
/// codec.
py_schema make_native_schema(py::module_ module, py::bytes digest,
                             const std::vector<std::tuple<uint32_t, std::string, py::bytes>>& types) {
  auto name = py::str(module.attr("__name__")).cast<std::string>();
  auto capsule = module.attr("schema");
  auto* record = static_cast<const native_schema*>(
    PyCapsule_GetPointer(capsule.ptr(), native_schema_capsule));
  if (record == nullptr) {
    PyErr_Clear();
    throw py::value_error("native module " + name + ": its `schema` is not a "
                          + native_schema_capsule + " capsule");
  }
  if (record->layout != native_schema::layout_tag())
    throw py::value_error("native module " + name
                          + " was built against other Mycelium or CAF headers than "
                            "the mycelium package's runtime: rebuild it with this "
                            "Mycelium (mycelium_add_schema)");
  auto& d = *record->descriptor;
  auto want = to_digest(digest, "schema " + d.package);
  bool same = d.digest == want && d.types.size() == types.size();
  for (size_t i = 0; same && i < types.size(); ++i) {
    auto& [id, tname, dg] = types[i];
    same = d.types[i].type_id == id && d.types[i].digest == to_digest(dg, "type " + tname);
  }
  if (!same)
    throw py::value_error("native module " + name + " holds schema " + d.package + " "
                          + wire::to_hex(d.digest) + ", not the Python module's "
                          + wire::to_hex(want)
                          + ": it is stale; rebuild both from the same schema file");
  bridge_registry::global().add(record->make_bridge()); // keeps an earlier one
  return py_schema{nullptr, record, module};
}

/// The C++ runtime inside a Python process: one actor system (with
/// Mycelium's defaults and the I/O loop) and one node, made by hand or
/// from a topology. Thread-safety: its methods release the GIL while the
/// runtime works and are safe from any Python thread; `stop` is idempotent.
class runtime {
public:
  runtime(const std::string& name, py_schema schema, const py::dict& options)
    : schema_(std::move(schema)) {
    make_system(options);
    own_node_ = std::make_unique<mycelium::node>(*sys_, name);
    own_node_->use_schema(schema_.descriptor());
  }

  runtime(const std::string& path, const std::string& node_name, py_schema schema,
          const py::dict& options)
    : schema_(std::move(schema)) {
    make_system(options);
    caf::expected<std::unique_ptr<topology::topology_node>> t{caf::error{}};
    {
      py::gil_scoped_release nogil;
      t = topology::topology_node::from_topology(*sys_, path, node_name,
                                                 schema_.descriptor());
    }
    if (!t)
      raise(t.error());
    topo_ = std::move(*t);
  }

  ~runtime() {
    py::gil_scoped_release nogil;
    shutdown();
  }

  mycelium::node& node() {
    if (stopped_)
      throw py::value_error("the node has been stopped");
    return topo_ ? topo_->node() : *own_node_;
  }

  std::string name() { return node().name(); }

  void start_service(const std::string& type, const std::string& instance,
                     const py::dict& params, const std::string& where,
                     size_t max_restarts, double window) {
    placement p = placement::pool;
    if (auto err = mycelium::parse_placement(where, p))
      raise(err);
    restart_policy rp;
    rp.max_restarts = max_restarts;
    rp.window = std::chrono::duration_cast<std::chrono::milliseconds>(seconds(window));
    auto settings = to_settings(params);
    caf::expected<caf::actor> started{caf::error{}};
    {
      py::gil_scoped_release nogil;
      started = node().start(type, std::move(settings), instance, rp, p);
    }
    if (!started)
      raise(started.error());
  }

  py_handle open_client(const std::string& instance, size_t capacity) {
    auto in = std::make_shared<inbox>(node().name() + "/" + instance, capacity);
    // The host keeps the handle it is given at start; the node returns only
    // after that start, so the slot is filled by then.
    auto slot = std::make_shared<std::shared_ptr<client_host>>();
    auto factory = untyped_service_factory([in, slot](const service_context&) {
      *slot = std::make_shared<client_host>(in);
      return *slot;
    });
    caf::expected<caf::actor> started{caf::error{}};
    {
      py::gil_scoped_release nogil;
      started = node().start(std::move(factory), instance);
    }
    if (!started)
      raise(started.error());
    py_handle h{(*slot)->handle(), std::move(in), gate_};
    h.lend = lending_buses::find(&node().bus());
    return h;
  }

  size_t link(const std::string& kind, const std::string& role, const std::string& address,
              uint16_t port, const py::dict& options) {
    transports::link_config cfg;
    if (auto err = transports::parse_link_kind(kind, cfg.kind))
      raise(err);
    if (role == "connect")
      cfg.role = transports::link_role::connect;
    else if (role == "listen")
      cfg.role = transports::link_role::listen;
    else
      throw py::value_error("link role '" + role + "' is not one of connect, listen");
    cfg.address = address;
    cfg.port = port;
    cfg.name = kind + "-" + role;
    apply_link_options(cfg, options);
    caf::expected<transports::link> l{caf::error{}};
    {
      py::gil_scoped_release nogil;
      l = transports::link::start(node(), schema_.descriptor(), cfg);
    }
    if (!l)
      raise(l.error());
    links_.push_back(std::move(*l));
    return links_.size() - 1;
  }

  transports::link& link_at(size_t i) {
    if (i >= links_.size())
      throw py::index_error("no link " + std::to_string(i));
    return links_[i];
  }

  std::vector<transports::link> all_links() const {
    auto out = links_;
    if (topo_)
      out.insert(out.end(), topo_->links().begin(), topo_->links().end());
    return out;
  }

  py::tuple await_links(double timeout) {
    if (!topo_)
      return py::make_tuple(true, "");
    std::string why;
    bool ok;
    {
      py::gil_scoped_release nogil;
      ok = topo_->await_links(std::chrono::duration_cast<std::chrono::milliseconds>(
                                seconds(timeout)),
                              why);
    }
    return py::make_tuple(ok, why);
  }

  caf::actor_system& system() {
    if (stopped_)
      throw py::value_error("the node has been stopped");
    return *sys_;
  }

  /// Lets the node's I/O loop lend its turns to Python callers that spin
  /// waiting for a message (io_loop::lend): false when the node has no
  /// I/O loop.
  bool enable_lending() {
    auto* l = transports::io_loop::of(*sys_);
    if (l == nullptr)
      return false;
    l->enable_lending();
    lent_bus_ = &node().bus();
    lending_buses::add(lent_bus_, {l, gate_}); // Python services lend too
    return true;
  }

  void announce_ready(uint32_t nodes) {
    if (!topo_)
      throw py::value_error("announce_ready needs a node made from a topology");
    py::gil_scoped_release nogil;
    topo_->announce_ready(nodes);
  }

  py::list topics() {
    py::list out;
    for (auto& t : node().bus().topics()) {
      py::dict d;
      d["type_id"] = t.type_id;
      d["type_name"] = t.type_name;
      d["subscribers"] = t.subscribers;
      d["published"] = t.published;
      d["no_subscriber"] = t.no_subscriber;
      d["enqueued"] = t.enqueued;
      d["delivered"] = t.delivered;
      d["dropped"] = t.dropped;
      d["refused"] = t.refused;
      out.append(d);
    }
    return out;
  }

  py::list services() {
    py::list out;
    for (auto& s : node().bus().services())
      out.append(stats_dict(s));
    return out;
  }

  void stop() {
    py::gil_scoped_release nogil;
    shutdown();
  }

private:
  void make_system(const py::dict& options) {
    cfg_ = std::make_unique<system_config>();
    cfg_->set("logger.console", caf::atom("none"));
    schema_.descriptor().add_message_types(*cfg_);
    for (auto kv : options) {
      auto key = kv.first.cast<std::string>();
      auto value = kv.second;
      if (py::isinstance<py::bool_>(value))
        cfg_->set(key, value.cast<bool>());
      else if (py::isinstance<py::int_>(value))
        cfg_->set(key, value.cast<int64_t>());
      else if (py::isinstance<py::str>(value))
        cfg_->set(key, value.cast<std::string>());
      else
        throw py::type_error("CAF option '" + key + "' must be a bool, int or str");
    }
    py::gil_scoped_release nogil;
    sys_ = std::make_unique<caf::actor_system>(*cfg_);
  }

  static void apply_link_options(transports::link_config& cfg, const py::dict& options) {
    static const std::set<std::string> known{
      "name", "relay", "max_payload", "send_queue", "overflow", "block_timeout", "wait",
      "spin", "ring_capacity", "heartbeat_interval", "peer_timeout", "secret"};
    auto ms = [](const py::handle& v) {
      return std::chrono::duration_cast<std::chrono::milliseconds>(seconds(v.cast<double>()));
    };
    for (auto kv : options) {
      auto key = kv.first.cast<std::string>();
      auto v = kv.second;
      if (known.count(key) == 0) {
        std::string list;
        for (auto& k : known)
          list += (list.empty() ? "" : ", ") + k;
        throw py::value_error("unknown link option '" + key + "' (known: " + list + ")");
      }
      if (key == "name")
        cfg.name = v.cast<std::string>();
      else if (key == "relay")
        cfg.relay = v.cast<bool>();
      else if (key == "max_payload")
        cfg.max_payload = v.cast<uint32_t>();
      else if (key == "send_queue")
        cfg.send_queue = v.cast<size_t>();
      else if (key == "overflow") {
        if (auto err = parse_overflow_policy(v.cast<std::string>(), cfg.overflow))
          raise(err);
      } else if (key == "block_timeout")
        cfg.block_timeout = ms(v);
      else if (key == "wait") {
        if (auto err = transports::parse_wait_mode(v.cast<std::string>(), cfg.wait))
          raise(err);
      } else if (key == "spin")
        cfg.spin = std::chrono::duration_cast<std::chrono::microseconds>(
          seconds(v.cast<double>()));
      else if (key == "ring_capacity")
        cfg.ring_capacity = v.cast<uint64_t>();
      else if (key == "heartbeat_interval")
        cfg.heartbeat_interval = ms(v);
      else if (key == "peer_timeout")
        cfg.peer_timeout = ms(v);
      else if (key == "secret")
        cfg.secret = py::isinstance<py::bytes>(v) ? std::string{v.cast<py::bytes>()}
                                                  : v.cast<std::string>();
    }
    if (auto err = cfg.validate())
      raise(err);
  }

  void shutdown() {
    if (stopped_)
      return;
    stopped_ = true;
    for (auto& l : links_)
      l.stop();
    links_.clear();
    if (topo_)
      topo_->stop();
    if (own_node_)
      own_node_->stop();
    // Services have run on_stop (they may publish until then); from now on
    // a call from Python is refused, and those in flight finish first.
    gate_->close();
    if (lent_bus_ != nullptr)
      lending_buses::remove(lent_bus_);
    topo_.reset();
    own_node_.reset();
    sys_.reset();
  }

  py_schema schema_;
  std::shared_ptr<runtime_gate> gate_ = std::make_shared<runtime_gate>();
  std::unique_ptr<system_config> cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  std::unique_ptr<mycelium::node> own_node_;
  std::unique_ptr<topology::topology_node> topo_;
  std::vector<transports::link> links_;
  const mycelium::bus* lent_bus_ = nullptr; ///< registered with lending_buses
  bool stopped_ = false;
};

// -- the fast publish ------------------------------------------------------------

/// `Handle.publisher()`: `publish_object` as a plain CPython function of one
/// argument, bound to a copy of the handle (in a capsule). It skips
/// pybind11's dispatcher (argument loaders, type lookups), which costs more
/// than the bus hand-off itself; `Service.publish` is this function.
constexpr const char* publisher_capsule = "mycelium.publisher";

/// Runs `f` for a plain CPython function: its result, or null with the
/// Python error set from what it threw.
template <class F>
PyObject* guarded(F&& f) noexcept {
  try {
    return f();
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (py::builtin_exception& e) {
    e.set_error();
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  }
  return nullptr;
}

/// A CPython function `def` bound to `state` (owned by a capsule named
/// `name`, freed with the function).
template <class State>
py::object bind_function(PyMethodDef& def, State* state, const char* name) {
  py::capsule cap(state, name, [](PyObject* c) {
    delete static_cast<State*>(PyCapsule_GetPointer(c, PyCapsule_GetName(c)));
  });
  auto* fn = PyCFunction_New(&def, cap.ptr());
  if (fn == nullptr)
    throw py::error_already_set();
  return py::reinterpret_steal<py::object>(fn);
}

PyObject* publish_fast(PyObject* self, PyObject* msg) {
  auto* h = static_cast<py_handle*>(PyCapsule_GetPointer(self, publisher_capsule));
  if (h == nullptr)
    return nullptr;
  return guarded([&] {
    auto pass = enter(*h);
    return PyBool_FromLong(publish_object(*h, msg) ? 1 : 0);
  });
}

PyMethodDef publish_fast_def = {
  "publish", publish_fast, METH_O,
  "publish(msg) -> bool: publishes a generated message object (the bridge or "
  "its encoding); True when it reached every subscriber"};

py::object make_publisher(const py_handle& h) {
  return bind_function(publish_fast_def, new py_handle(h), publisher_capsule);
}

// -- the fast receive ------------------------------------------------------------

/// `Handle.receiver(spin)`: `next` for a `Subscription`, as a plain
/// CPython function of one argument (the timeout in seconds, or None),
/// bound to a copy of the handle and `spin` (in a capsule). It returns the
/// message's payload itself (the object the bridge made, or the TLV bytes),
/// `STOP` when the subscription ended, and None on timeout: no event tuple,
/// no pybind11 dispatch.
constexpr const char* receiver_capsule = "mycelium.receiver";

struct receiver_state {
  py_handle h;
  double spin;
};

/// `STOP`, made at module init and never released (it outlives the
/// interpreter's last use).
PyObject* stop_sentinel = nullptr;

/// A timeout argument (seconds or None) into `out`; false with the Python
/// error set when it is neither.
bool timeout_of(PyObject* arg, std::optional<double>& out) {
  if (arg == Py_None)
    return true;
  double t = PyFloat_AsDouble(arg);
  if (t == -1.0 && PyErr_Occurred() != nullptr)
    return false;
  out = t;
  return true;
}

/// What a receiver returns for the next event of `h`: the payload, STOP
/// (`*stopped` set) or None on timeout; null with the Python error set.
PyObject* next_payload(py_handle& h, std::optional<double> timeout, double spin,
                       bool* stopped) {
  return guarded([&]() -> PyObject* {
    inbox_event ev;
    if (!take_event(h, timeout, spin, ev))
      Py_RETURN_NONE;
    if (ev.kind == inbox_event::stop) {
      *stopped = true;
      return Py_NewRef(stop_sentinel);
    }
    if (ev.kind != inbox_event::message) // a client serves no requests
      return as_tuple(h, ev).release().ptr();
    return payload_of(h, ev).release().ptr();
  });
}

/// The state bound to `self` (a capsule named `capsule`) and the timeout
/// argument of a call of a receiver-like function; false with the Python
/// error set.
bool receiver_call(PyObject* self, const char* capsule, PyObject* timeout_arg,
                   receiver_state*& st, std::optional<double>& timeout) {
  st = static_cast<receiver_state*>(PyCapsule_GetPointer(self, capsule));
  return st != nullptr && timeout_of(timeout_arg, timeout);
}

PyObject* receive_fast(PyObject* self, PyObject* timeout_arg) {
  receiver_state* st = nullptr;
  std::optional<double> timeout;
  if (!receiver_call(self, receiver_capsule, timeout_arg, st, timeout))
    return nullptr;
  bool stopped = false;
  return next_payload(st->h, timeout, st->spin, &stopped);
}

PyMethodDef receive_fast_def = {
  "receive", receive_fast, METH_O,
  "receive(timeout) -> payload | STOP | None: the next message's payload (the "
  "object the bridge made, or its TLV bytes), STOP once the subscription ended, "
  "None after `timeout` seconds (None: wait for ever)"};

py::object make_receiver(const py_handle& h, double spin) {
  return bind_function(receive_fast_def, new receiver_state{h, spin}, receiver_capsule);
}

/// `Handle.nexter(spin)`: `Handle.next` as a plain CPython function of one
/// argument (the timeout in seconds, or None), bound to a copy of the
/// handle and `spin`: the event tuple, or None on timeout, without
/// pybind11's dispatch. A hosted service's thread waits with it
/// (mycelium/_hosting.py). Same state as a receiver.
constexpr const char* nexter_capsule = "mycelium.nexter";

PyObject* next_fast(PyObject* self, PyObject* timeout_arg) {
  receiver_state* st = nullptr;
  std::optional<double> timeout;
  if (!receiver_call(self, nexter_capsule, timeout_arg, st, timeout))
    return nullptr;
  return guarded([&]() -> PyObject* {
    inbox_event ev;
    if (!take_event(st->h, timeout, st->spin, ev))
      Py_RETURN_NONE;
    return as_tuple(st->h, ev).release().ptr();
  });
}

PyMethodDef next_fast_def = {
  "next", next_fast, METH_O,
  "next(timeout) -> (kind, type_id, request_id, payload, text) | None: the next "
  "event, or None after `timeout` seconds (None: wait for ever)"};

py::object make_nexter(const py_handle& h, double spin) {
  return bind_function(next_fast_def, new receiver_state{h, spin}, nexter_capsule);
}

// -- the fast get ----------------------------------------------------------------

/// `Handle.getter(cls, spin, finish, ended)`: `Subscription.get` itself as a
/// plain CPython function of `timeout` (positional or keyword). A message
/// that the bridge made into a `cls` object is returned as is; anything
/// else (None on timeout, STOP, TLV bytes) goes to `finish(payload,
/// timeout)`, the Python code that raises or decodes. `ended` is a list of
/// one item, the subscription's "closed" flag: the getter sets it on STOP,
/// and while it is true passes STOP to `finish` without waiting. The state
/// holds neither the subscription nor anything that refers to it (a capsule
/// hides its references from the cycle collector).
constexpr const char* getter_capsule = "mycelium.getter";

struct getter_state {
  py_handle h;
  double spin;
  py::object cls;
  py::object finish;
  py::object ended;
};

PyObject* get_fast(PyObject* self, PyObject* const* args, Py_ssize_t nargs,
                   PyObject* kwnames) {
  auto* st = static_cast<getter_state*>(PyCapsule_GetPointer(self, getter_capsule));
  if (st == nullptr)
    return nullptr;
  PyObject* timeout_arg = nargs > 0 ? args[0] : Py_None;
  Py_ssize_t nkw = kwnames != nullptr ? PyTuple_GET_SIZE(kwnames) : 0;
  if (nargs + nkw > 1
      || (nkw == 1
          && PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "timeout") != 0)) {
    PyErr_SetString(PyExc_TypeError, "get() takes one argument, timeout");
    return nullptr;
  }
  if (nkw == 1)
    timeout_arg = args[nargs];
  auto finish = [&](PyObject* payload) {
    return PyObject_CallFunctionObjArgs(st->finish.ptr(), payload, timeout_arg, nullptr);
  };
  PyObject* ended = st->ended.ptr();
  if (PyList_GET_ITEM(ended, 0) == Py_True)
    return finish(stop_sentinel);
  std::optional<double> timeout;
  if (!timeout_of(timeout_arg, timeout))
    return nullptr;
  bool stopped = false;
  PyObject* payload = next_payload(st->h, timeout, st->spin, &stopped);
  if (stopped) {
    Py_INCREF(Py_True);
    PyList_SetItem(ended, 0, Py_True); // steals the reference
  }
  if (payload == nullptr || Py_TYPE(payload) == reinterpret_cast<PyTypeObject*>(st->cls.ptr()))
    return payload;
  PyObject* r = finish(payload);
  Py_DECREF(payload);
  return r;
}

PyMethodDef get_fast_def = {
  "get", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(get_fast)),
  METH_FASTCALL | METH_KEYWORDS,
  "get(timeout=None): the subscription's next message (see Subscription.get)"};

py::object make_getter(const py_handle& h, py::object cls, double spin, py::object finish,
                       py::list ended) {
  if (ended.size() != 1)
    throw py::value_error("getter: `ended` must be a list of one item");
  return bind_function(get_fast_def,
                       new getter_state{h, spin, std::move(cls), std::move(finish),
                                        std::move(ended)},
                       getter_capsule);
}

} // namespace

void define_core(py::module_& m, bool embedded) {
  m.doc() = "The C++ runtime of Mycelium as Python sees it (use the mycelium package)";
  m.attr("embedded") = embedded;
  main_thread_ident = py::module_::import("threading").attr("main_thread")().attr("ident")
                        .cast<unsigned long>();
  core_error = py::module_::import("mycelium.errors").attr("CoreError");

  m.attr("EVENT_MESSAGE") = static_cast<int>(inbox_event::message);
  m.attr("EVENT_REQUEST") = static_cast<int>(inbox_event::request);
  m.attr("EVENT_STOP") = static_cast<int>(inbox_event::stop);
  if (stop_sentinel == nullptr)
    stop_sentinel = py::module_::import("builtins").attr("object")().release().ptr();
  m.attr("STOP") = py::reinterpret_borrow<py::object>(stop_sentinel);

  py::class_<py_schema>(m, "RuntimeSchema")
    .def_property_readonly("package", [](const py_schema& s) { return s.descriptor().package; })
    .def_property_readonly("native", [](const py_schema& s) { return s.native != nullptr; });
  m.def("RawSchema", &make_schema, py::arg("package"), py::arg("digest"), py::arg("types"),
        "The schema as a Python module announces it (the codec carries its messages)");
  m.def("NativeSchema", &make_native_schema, py::arg("module"), py::arg("digest"),
        py::arg("types"),
        "The schema of a native module (<module>_native), checked against the Python "
        "module's announcement; registers its bridge");

  py::class_<py_handle>(m, "Handle")
    .def_property_readonly("name", [](const py_handle& h) { return h.handle->name(); })
    .def_property_readonly("node_name",
                           [](const py_handle& h) { return h.handle->node_name(); })
    .def_property_readonly("params",
                           [](const py_handle& h) { return to_dict(h.handle->params()); })
    .def_property_readonly("schema_package",
                           [](const py_handle& h) { return h.handle->schema().package; })
    .def_property_readonly("schema_digest",
                           [](const py_handle& h) {
                             auto& d = h.handle->schema().digest;
                             return py::bytes(reinterpret_cast<const char*>(d.data()), d.size());
                           })
    .def_property_readonly("alive", [](const py_handle& h) { return h.handle->alive(); })
    .def("started",
         [](py_handle& h, std::optional<std::string> failure) {
           auto pass = enter(h);
           h.handle->started(failure ? make_error(errc::service_failed, *failure)
                                     : caf::error{});
         },
         py::arg("failure") = py::none())
    .def("fail", [](py_handle& h, std::string text) {
           auto pass = enter(h); h.handle->fail(std::move(text)); })
    .def("quit", [](py_handle& h) {
           auto pass = enter(h); h.handle->quit(); })
    .def("finish", [](py_handle& h) { h.inbox->finish(); })
    .def("subscribe",
         [](py_handle& h, uint32_t type_id) {
           auto pass = enter(h);
           caf::error err;
           {
             py::gil_scoped_release nogil;
             err = h.handle->subscribe(type_id);
           }
           if (err)
             raise(err);
         })
    .def("unsubscribe",
         [](py_handle& h, uint32_t type_id) {
           auto pass = enter(h);
           py::gil_scoped_release nogil;
           h.handle->unsubscribe(type_id);
         })
    .def("publish",
         [](py_handle& h, uint32_t type_id, const py::bytes& payload) {
           auto pass = enter(h);
           return publish_bytes(h, type_id, payload);
         })
    .def("publish_object",
         [](py_handle& h, py::handle msg) {
           auto pass = enter(h);
           return publish_object(h, msg);
         },
         "Publishes a generated message object: as the C++ struct where the node "
         "has its type compiled in (no encoding), else encoded by its class; True "
         "when it reached every subscriber")
    .def("receiver", &make_receiver, py::arg("spin") = 0.0,
         "next() for a Subscription as a plain function of the timeout: returns the "
         "payload, STOP or None (no event tuple, no pybind11 dispatch)")
    .def("nexter", &make_nexter, py::arg("spin") = 0.0,
         "`next` as a plain function of the timeout, bound to this handle and "
         "`spin`, without pybind11's dispatch (a hosted service's wait)")
    .def("getter", &make_getter, py::arg("cls"), py::arg("spin"), py::arg("finish"),
         py::arg("ended"),
         "Subscription.get as a plain function of the timeout: returns a message of "
         "`cls` that the bridge made, or finish(payload, timeout); sets ended[0] on STOP")
    .def("publisher", &make_publisher,
         "publish_object as a plain function of the message (no pybind11 "
         "dispatch): what Service.publish is")
    .def("bind",
         [](py_handle& h, py::handle cls) {
           auto* b = h.bridge();
           const class_info* ci = b != nullptr ? bind_class(cls.ptr(), *b) : nullptr;
           if (ci != nullptr)
             h.classes->by_type[ci->type_id] = ci;
           return ci != nullptr;
         },
         "Deliveries of `cls`'s type arrive as `cls` objects made from the C++ "
         "struct (no decoding) where the node has the type compiled in; returns "
         "whether it does")
    .def("serve",
         [](py_handle& h, uint32_t type_id) {
           auto pass = enter(h);
           caf::error err;
           {
             py::gil_scoped_release nogil;
             err = h.handle->serve(type_id);
           }
           if (err)
             raise(err);
         })
    .def("reply",
         [](py_handle& h, uint64_t id, uint32_t type_id, const py::bytes& payload) {
           auto pass = enter(h);
           std::string bytes = payload;
           caf::error err;
           {
             py::gil_scoped_release nogil;
             err = h.handle->reply(id, type_id, reinterpret_cast<const uint8_t*>(bytes.data()),
                                   bytes.size());
           }
           if (err)
             raise(err);
         })
    .def("reply_error",
         [](py_handle& h, uint64_t id, std::string text) {
           auto pass = enter(h);
           h.handle->reply_error(id, std::move(text));
         })
    .def("request",
         [](py_handle& h, uint32_t type_id, const py::bytes& payload, double timeout) {
           auto pass = enter(h);
           std::string bytes = payload;
           caf::expected<untyped_reply> r{caf::error{}};
           {
             py::gil_scoped_release nogil;
             r = h.handle->request(type_id, reinterpret_cast<const uint8_t*>(bytes.data()),
                                   bytes.size(), seconds(timeout));
           }
           if (!r)
             raise(r.error());
           return py::make_tuple(r->type_id, as_bytes(r->payload));
         })
    .def("next", &next_event, py::arg("timeout") = py::none(), py::arg("spin") = 0.0,
         "The next event (kind, type_id, request_id, payload, text), or None after "
         "`timeout` seconds (None: wait for ever); polls for `spin` seconds first")
    .def("drain",
         [](py_handle& h, size_t max) {
           py::list out;
           inbox_event ev;
           while (out.size() < max && h.inbox->try_pop(ev))
             out.append(as_tuple(h, ev));
           return out;
         },
         py::arg("max") = 1024)
    .def("event_fd", [](py_handle& h) { return h.inbox->event_fd(); })
    .def("lend_stats",
         [](const py_handle& h) {
           auto pass = enter(h);
           return loop_stats_dict(h.lend.loop);
         },
         "The counters of the I/O loop this handle's waits run (lend), or {} when "
         "they do not lend")
    .def("stats",
         [](const py_handle& h) {
           auto pass = enter(h);
           auto d = stats_dict(h.handle->stats());
           d["queued"] = h.inbox->size();
           d["queue_dropped"] = h.inbox->dropped();
           d["queue_high_water"] = h.inbox->high_water();
           d["queue_capacity"] = h.inbox->capacity();
           return d;
         });

  py::class_<runtime>(m, "Runtime")
    .def(py::init<const std::string&, py_schema, const py::dict&>(), py::arg("name"),
         py::arg("schema"), py::arg("options") = py::dict())
    .def(py::init<const std::string&, const std::string&, py_schema, const py::dict&>(),
         py::arg("topology"), py::arg("node"), py::arg("schema"),
         py::arg("options") = py::dict())
    .def_property_readonly("name", &runtime::name)
    .def("start_service", &runtime::start_service, py::arg("type"), py::arg("name"),
         py::arg("params"), py::arg("placement") = "pool", py::arg("max_restarts") = 3,
         py::arg("window") = 60.0)
    .def("open_client", &runtime::open_client, py::arg("name"),
         py::arg("capacity") = default_queue_capacity)
    .def("link", &runtime::link, py::arg("kind"), py::arg("role"), py::arg("address"),
         py::arg("port") = 0, py::arg("options") = py::dict())
    .def("link_stats",
         [](runtime& r, size_t i) { return link_stats_dict(r.link_at(i)); })
    .def("link_port", [](runtime& r, size_t i) { return r.link_at(i).port(); })
    .def("link_await_up",
         [](runtime& r, size_t i, double timeout) {
           auto l = r.link_at(i);
           py::gil_scoped_release nogil;
           return l.await_up(std::chrono::duration_cast<std::chrono::milliseconds>(
             seconds(timeout)));
         })
    .def("link_await_peer_interest",
         [](runtime& r, size_t i, uint32_t type_id, double timeout) {
           auto l = r.link_at(i);
           py::gil_scoped_release nogil;
           return l.await_peer_interest(
             type_id, std::chrono::duration_cast<std::chrono::milliseconds>(seconds(timeout)));
         })
    .def("link_stop",
         [](runtime& r, size_t i) {
           auto l = r.link_at(i);
           py::gil_scoped_release nogil;
           l.stop();
         })
    .def("all_link_stats",
         [](runtime& r) {
           py::list out;
           for (auto& l : r.all_links())
             out.append(link_stats_dict(l));
           return out;
         })
    .def("await_links", &runtime::await_links, py::arg("timeout"))
    .def("announce_ready", &runtime::announce_ready, py::arg("nodes"))
    .def("topics", &runtime::topics)
    .def("services", &runtime::services)
    .def("enable_lending", &runtime::enable_lending)
    .def("loop_stats", [](runtime& r) { return loop_stats_dict(transports::io_loop::of(r.system())); })
    .def("stop", &runtime::stop);

  m.def("noop", [] {}, "Does nothing: the cost of a bare pybind11 call (benchmarks)");

  m.def(
    "node_main",
    [](std::vector<std::string> args, py_schema schema) {
      std::vector<char*> argv;
      for (auto& a : args)
        argv.push_back(a.data());
      argv.push_back(nullptr);
      py::gil_scoped_release nogil;
      return mycelium::node_main(static_cast<int>(args.size()), argv.data(),
                                 schema.descriptor());
    },
    py::arg("argv"), py::arg("schema"),
    "Runs a node of a topology in this process, as a C++ node binary does "
    "(mycelium-run's control protocol included); returns its exit code");
}

} // namespace mycelium::python
