#include "mycelium/topology/topology_loader.hpp"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include <fmt/format.h>

#include "mycelium/config/toml_reader.hpp"
#include "mycelium/errc.hpp"
#include "mycelium/transports/remote_auth.hpp"

namespace mycelium::topology {

namespace {

using config::toml_reader;
using config::toml_value;

source_ref ref(const toml_value& v) {
  auto loc = v.location();
  return {static_cast<uint32_t>(loc.line()), static_cast<uint32_t>(loc.column())};
}

const std::vector<std::string> top_keys{"name",  "socket_dir",    "shm_dir",
                                        "binary", "log_dir",      "nodes",
                                        "services", "link_defaults", "links",
                                        "daemons"};
const std::vector<std::string> node_keys{
  "name",    "services", "host",    "port",         "endpoint",
  "runtime", "binary",   "command", "env",          "workdir",
  "restart", "max_restarts", "restart_window", "backoff_min", "backoff_max",
  "after", "control", "loop_wait", "loop_spin", "cpus"};
const std::vector<std::string> service_keys{"type", "params", "placement",
                                            "max_restarts", "restart_window"};
const std::vector<std::string> link_setting_keys{
  "wait", "spin", "ring_capacity", "overflow", "send_queue", "max_payload",
  "heartbeat_interval", "peer_timeout", "secret_file"};

/// A TOML value as a CAF config value (service parameters).
bool to_config_value(toml_reader& r, const toml_value& v, const std::string& ctx,
                     const std::string& key, caf::config_value& out) {
  switch (v.type()) {
    case toml::value_t::boolean: out = v.as_boolean(); return true;
    case toml::value_t::integer: out = static_cast<int64_t>(v.as_integer()); return true;
    case toml::value_t::floating: out = v.as_floating(); return true;
    case toml::value_t::string: out = v.as_string().str; return true;
    case toml::value_t::array: {
      caf::config_value::list xs;
      for (auto& e : v.as_array()) {
        caf::config_value x;
        if (!to_config_value(r, e, ctx, key, x))
          return false;
        xs.push_back(std::move(x));
      }
      out = std::move(xs);
      return true;
    }
    case toml::value_t::table: {
      caf::config_value::dictionary d;
      for (auto& [k, e] : v.as_table()) {
        caf::config_value x;
        if (!to_config_value(r, e, ctx, key + "." + k, x))
          return false;
        d.emplace(k, std::move(x));
      }
      out = std::move(d);
      return true;
    }
    default:
      r.fail_key(v, ctx, key, fmt::format("{} is not supported as a service "
                                          "parameter (use a string)",
                                          config::kind_name(v)));
      return false;
  }
}

/// Reads one topology document.
class loader {
public:
  explicit loader(const std::string& file) : r_(file) {
    t_.file = file;
  }

  caf::expected<topology> run(const toml_value& root) {
    if (!root.is_table()) {
      r_.fail(root, "a topology must be a TOML table");
      return r_.error();
    }
    r_.check_keys(root, "top-level", top_keys);
    for (auto& [k, v] : root.as_table())
      t_.key_at[k] = ref(v);
    read_top(root);
    if (auto* s = toml_reader::find(&root, "services"))
      read_service_tables(*s);
    if (auto* d = toml_reader::find(&root, "link_defaults"))
      if (r_.expect_table(*d, "top-level key", "link_defaults",
                          "write [link_defaults] followed by its keys")) {
        r_.check_keys(*d, "[link_defaults]", link_setting_keys);
        read_link_settings(*d, "[link_defaults] key", t_.link_defaults);
      }
    auto* nodes = toml_reader::find(&root, "nodes");
    if (nodes == nullptr) {
      r_.fail_at(1, 1, "no nodes: add at least one [[nodes]] entry with a name "
                       "and services = [...]");
    } else if (!nodes->is_array()) {
      r_.fail_key(*nodes, "top-level key", "nodes",
                  "must be an array of tables: write [[nodes]] before each node");
    } else {
      for (auto& n : nodes->as_array())
        read_node(n);
    }
    resolve_services();
    if (auto* l = toml_reader::find(&root, "links")) {
      if (!l->is_array())
        r_.fail_key(*l, "top-level key", "links",
                    "must be an array of tables: write [[links]] before each entry");
      else
        for (auto& e : l->as_array())
          read_link(e);
    }
    if (auto* d = toml_reader::find(&root, "daemons")) {
      if (!d->is_array())
        r_.fail_key(*d, "top-level key", "daemons",
                    "must be an array of tables: write [[daemons]] before each entry");
      else
        for (auto& e : d->as_array())
          read_daemon(e);
    }
    check_nodes();
    check_daemons();
    if (!r_.ok())
      return r_.error();
    return std::move(t_);
  }

private:
  std::string path(const std::string& p) const {
    return config::resolve_path(t_.file, p);
  }

  /// A program: a bare name is looked up in PATH when it starts (like a
  /// shell does); a name with a '/' is a path relative to the file.
  std::string program(const std::string& p) const {
    return p.find('/') == std::string::npos ? p : path(p);
  }

  void read_top(const toml_value& root) {
    auto stem = std::filesystem::path{t_.file}.stem().string();
    t_.name = stem.empty() ? "mycelium" : stem;
    if (auto* v = toml_reader::find(&root, "name"))
      if (auto s = r_.nonempty_string(*v, "top-level key", "name")) {
        if (s->find('/') != std::string::npos)
          r_.fail_key(*v, "top-level key", "name", "must not contain '/'");
        else
          t_.name = *s;
      }
    t_.socket_dir = fmt::format("/tmp/mycelium-{}/{}", ::getuid(), t_.name);
    if (auto* v = toml_reader::find(&root, "socket_dir"))
      if (auto s = r_.nonempty_string(*v, "top-level key", "socket_dir"))
        t_.socket_dir = path(*s);
    if (auto* v = toml_reader::find(&root, "shm_dir"))
      if (auto s = r_.nonempty_string(*v, "top-level key", "shm_dir")) {
        auto p = path(*s);
        if (std::filesystem::path{p}.lexically_normal() != "/dev/shm")
          r_.fail_key(*v, "top-level key", "shm_dir",
                      fmt::format("\"{}\" is not supported: segments are POSIX "
                                  "shared memory and live in /dev/shm; remove the "
                                  "key or write \"/dev/shm\"", *s));
        t_.shm_dir = "/dev/shm";
      }
    if (auto* v = toml_reader::find(&root, "binary"))
      if (auto s = r_.nonempty_string(*v, "top-level key", "binary"))
        t_.binary = program(*s);
    if (auto* v = toml_reader::find(&root, "log_dir"))
      if (auto s = r_.nonempty_string(*v, "top-level key", "log_dir"))
        t_.log_dir = path(*s);
  }

  // -- services ---------------------------------------------------------------

  struct service_table {
    const toml_value* where;
    std::string type;
    source_ref type_at;
    caf::settings params;
    mycelium::placement where_placed = placement::pool;
    restart_policy restart;
    bool used = false;
  };

  void read_service_tables(const toml_value& s) {
    if (!r_.expect_table(s, "top-level key", "services",
                         "write [services.NAME] followed by its keys"))
      return;
    for (auto& [name, v] : s.as_table()) {
      auto ctx = fmt::format("[services.{}] key", name);
      if (!r_.expect_table(v, "[services] entry", name,
                           fmt::format("write [services.{}] followed by type = ...",
                                       name)))
        continue;
      r_.check_keys(v, fmt::format("[services.{}]", name), service_keys);
      service_table st;
      st.where = &v;
      st.type = name;
      st.type_at = ref(v);
      if (auto* x = toml_reader::find(&v, "type"))
        if (auto s = r_.nonempty_string(*x, ctx, "type")) {
          st.type = *s;
          st.type_at = ref(*x);
        }
      if (auto* x = toml_reader::find(&v, "params")) {
        if (r_.expect_table(*x, ctx, "params",
                            "write params = { key = value, ... }"))
          for (auto& [k, e] : x->as_table()) {
            caf::config_value cv;
            if (to_config_value(r_, e, fmt::format("[services.{}] params", name),
                                k, cv))
              st.params.emplace(k, std::move(cv));
          }
      }
      if (auto* x = toml_reader::find(&v, "placement"))
        if (auto s = r_.choice(*x, ctx, "placement", {"pool", "loop"}))
          st.where_placed = *s == "loop" ? placement::loop : placement::pool;
      if (auto* x = toml_reader::find(&v, "max_restarts"))
        if (auto n = r_.integer(*x, ctx, "max_restarts", 0, 1'000'000))
          st.restart.max_restarts = static_cast<size_t>(*n);
      if (auto* x = toml_reader::find(&v, "restart_window"))
        if (auto d = r_.duration(*x, ctx, "restart_window"))
          st.restart.window = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
      tables_.emplace(name, std::move(st));
    }
  }

  // -- nodes --------------------------------------------------------------------

  void read_node(const toml_value& n) {
    if (!n.is_table()) {
      r_.fail(n, "each [[nodes]] entry must be a table");
      return;
    }
    node_spec out;
    out.at = ref(n);
    std::string ctx = "[[nodes]] key";
    if (auto* v = toml_reader::find(&n, "name")) {
      if (auto s = r_.nonempty_string(*v, ctx, "name")) {
        out.name = *s;
        if (out.name.find_first_of("/ \t") != std::string::npos)
          r_.fail_key(*v, ctx, "name", "must not contain '/' or blanks");
      }
    } else {
      r_.fail(n, "[[nodes]] entry without a name: add name = \"...\"");
    }
    ctx = fmt::format("node '{}' key", out.name);
    r_.check_keys(n, fmt::format("node '{}'", out.name), node_keys);
    if (!out.name.empty()) {
      if (auto [i, fresh] = node_at_.emplace(out.name, out.at); !fresh)
        r_.fail(n, fmt::format("duplicate node name '{}' (first defined at line "
                               "{}); give each node its own name",
                               out.name, i->second.line));
    }
    if (auto* v = toml_reader::find(&n, "host"))
      if (auto s = r_.nonempty_string(*v, ctx, "host"))
        out.host = *s;
    auto* port = toml_reader::find(&n, "port");
    if (port != nullptr)
      if (auto p = r_.integer(*port, ctx, "port", 1, 65535))
        out.port = static_cast<uint16_t>(*p);
    if (!out.host.empty() && port == nullptr)
      r_.fail(*toml_reader::find(&n, "host"),
              fmt::format("node '{}' has host = \"{}\" but no port: add port = "
                          "N (the TCP port its peers connect to)",
                          out.name, out.host));
    if (auto* e = toml_reader::find(&n, "endpoint"))
      read_endpoint(*e, out);
    if (out.endpoint_path.empty() && !out.name.empty())
      out.endpoint_path = t_.socket_dir + "/" + out.name + ".sock";
    if (auto* v = toml_reader::find(&n, "runtime"))
      if (auto s = r_.choice(*v, ctx, "runtime", {"cpp", "python", "command"}))
        out.runtime = *s == "cpp"      ? node_runtime::cpp
                      : *s == "python" ? node_runtime::python
                                       : node_runtime::command;
    if (auto* v = toml_reader::find(&n, "binary")) {
      if (auto s = r_.nonempty_string(*v, ctx, "binary"))
        out.binary = program(*s);
      if (out.runtime != node_runtime::cpp)
        r_.fail_key(*v, ctx, "binary", "applies only to runtime = \"cpp\"; use "
                                       "command = [...] for other programs");
    }
    if (auto* v = toml_reader::find(&n, "command")) {
      if (auto xs = r_.string_array(*v, ctx, "command")) {
        if (xs->empty())
          r_.fail_key(*v, ctx, "command", "is empty; give the program and its "
                                          "arguments");
        out.command = *xs;
      }
      if (out.runtime != node_runtime::command)
        r_.fail_key(*v, ctx, "command", "applies only to runtime = \"command\"; "
                                        "add it or remove command");
    } else if (out.runtime == node_runtime::command) {
      r_.fail(n, fmt::format("node '{}' has runtime = \"command\" but no "
                             "command: add command = [\"program\", \"arg\"]",
                             out.name));
    }
    if (out.runtime == node_runtime::cpp && out.binary.empty())
      out.binary = t_.binary;
    if (auto* v = toml_reader::find(&n, "env")) {
      if (r_.expect_table(*v, ctx, "env", "write env = { NAME = \"value\" }"))
        for (auto& [k, e] : v->as_table())
          if (auto s = r_.string(e, fmt::format("node '{}' env", out.name), k))
            out.env[k] = *s;
    }
    if (auto* v = toml_reader::find(&n, "workdir"))
      if (auto s = r_.nonempty_string(*v, ctx, "workdir"))
        out.workdir = path(*s);
    if (auto* v = toml_reader::find(&n, "restart"))
      if (auto s = r_.choice(*v, ctx, "restart", {"never", "on-failure", "always"}))
        out.restart.mode = *s == "never"        ? restart_mode::never
                           : *s == "on-failure" ? restart_mode::on_failure
                                                : restart_mode::always;
    if (auto* v = toml_reader::find(&n, "max_restarts"))
      if (auto x = r_.integer(*v, ctx, "max_restarts", 0, 1'000'000))
        out.restart.max_restarts = static_cast<size_t>(*x);
    auto ms = [](std::chrono::nanoseconds d) {
      return std::chrono::duration_cast<std::chrono::milliseconds>(d);
    };
    if (auto* v = toml_reader::find(&n, "restart_window"))
      if (auto d = r_.duration(*v, ctx, "restart_window"))
        out.restart.window = ms(*d);
    if (auto* v = toml_reader::find(&n, "backoff_min"))
      if (auto d = r_.duration(*v, ctx, "backoff_min"))
        out.restart.backoff_min = ms(*d);
    if (auto* v = toml_reader::find(&n, "backoff_max"))
      if (auto d = r_.duration(*v, ctx, "backoff_max"))
        out.restart.backoff_max = ms(*d);
    out.control = out.runtime != node_runtime::command;
    if (auto* v = toml_reader::find(&n, "control"))
      if (auto b = r_.boolean(*v, ctx, "control"))
        out.control = *b;
    read_idle(n, ctx, "loop_wait", "loop_spin", out.loop_wait, out.loop_spin);
    if (auto* v = toml_reader::find(&n, "cpus"))
      read_cpus(*v, ctx, out);
    if (auto* v = toml_reader::find(&n, "after"))
      if (auto xs = r_.string_array(*v, ctx, "after")) {
        out.after = *xs;
        after_at_[out.name] = v;
      }
    if (auto* v = toml_reader::find(&n, "services")) {
      if (v->is_array()) {
        for (auto& e : v->as_array()) {
          auto s = r_.nonempty_string(e, fmt::format("node '{}' services", out.name),
                                      "entry");
          if (!s)
            continue;
          out.services.push_back(*s);
          named_.push_back({*s, out.name, ref(e)});
        }
      } else {
        r_.string_array(*v, ctx, "services"); // reports the kind
      }
    }
    t_.nodes.push_back(std::move(out));
  }

  void read_endpoint(const toml_value& e, node_spec& out) {
    auto ctx = fmt::format("node '{}' endpoint key", out.name);
    if (!r_.expect_table(e, fmt::format("node '{}' key", out.name), "endpoint",
                         "write endpoint = { kind = \"shm\", path = \"...\" }"))
      return;
    r_.check_keys(e, fmt::format("node '{}' endpoint", out.name), {"kind", "path"});
    if (auto* k = toml_reader::find(&e, "kind"))
      if (auto s = r_.choice(*k, ctx, "kind", {"shm", "unix", "tcp"})) {
        transports::link_kind kind{};
        (void) transports::parse_link_kind(*s, kind);
        out.local_kind = kind;
        if (kind == transports::link_kind::tcp && toml_reader::find(&e, "path"))
          r_.fail_key(*toml_reader::find(&e, "path"), ctx, "path",
                      "applies to kinds \"shm\" and \"unix\"; a tcp endpoint "
                      "uses the node's host and port");
      }
    if (auto* p = toml_reader::find(&e, "path"))
      if (auto s = r_.nonempty_string(*p, ctx, "path"))
        out.endpoint_path = path(*s);
  }

  void resolve_services() {
    std::map<std::string, std::pair<std::string, source_ref>> seen; // name -> node
    for (auto& n : named_) {
      auto [i, fresh] = seen.emplace(n.service, std::pair{n.node, n.at});
      if (!fresh) {
        if (i->second.first == n.node)
          r_.fail_at(n.at.line, n.at.column,
                     fmt::format("service '{}' is listed twice on node '{}'; "
                                 "list it once (start two instances under two "
                                 "names, each with [services.NAME] type = ...)",
                                 n.service, n.node));
        else
          r_.fail_at(n.at.line, n.at.column,
                     fmt::format("service '{}' is on two nodes, '{}' (line {}) "
                                 "and '{}'; a service runs on one node: remove "
                                 "it from one, or give the second instance "
                                 "another name", n.service, i->second.first,
                                 i->second.second.line, n.node));
        continue;
      }
      service_spec s;
      s.name = n.service;
      s.node = n.node;
      s.at = n.at;
      s.type = n.service;
      s.type_at = n.at;
      if (auto t = tables_.find(n.service); t != tables_.end()) {
        t->second.used = true;
        s.type = t->second.type;
        s.type_at = t->second.type_at;
        s.params = t->second.params;
        s.where = t->second.where_placed;
        s.restart = t->second.restart;
      }
      t_.services.push_back(std::move(s));
    }
    for (auto& [name, st] : tables_)
      if (!st.used) {
        std::vector<std::string> listed;
        for (auto& n : named_)
          listed.push_back(n.service);
        auto near = config::closest(listed, name);
        r_.fail(*st.where,
                fmt::format("[services.{}] is defined but no node lists it in "
                            "services = [...]{}", name,
                            near.empty() ? "; add it to a node or remove the table"
                                         : fmt::format("; did you mean '{}'?", near)));
      }
  }

  /// `cpus`: a CPU number or an array of them, each from -1024 to 1023,
  /// without repeats. Whether the host has them is checked at start.
  void read_cpus(const toml_value& v, const std::string& ctx, node_spec& out) {
    out.cpus_at = ref(v);
    const std::string how = "write a CPU number or an array of them, e.g. cpus = [2, 3]; "
                            "negative numbers count from the last CPU (-1)";
    std::vector<const toml_value*> xs;
    if (v.is_array()) {
      for (auto& x : v.as_array())
        xs.push_back(&x);
      if (xs.empty())
        r_.fail_key(v, ctx, "cpus", "the array is empty: " + how + ", or remove the key");
    } else {
      xs.push_back(&v);
    }
    for (auto* x : xs) {
      if (!x->is_integer()) {
        r_.fail_key(*x, ctx, "cpus", "not an integer: " + how);
        continue;
      }
      auto c = r_.integer(*x, ctx, "cpus", -1024, 1023);
      if (!c)
        continue;
      auto cpu = static_cast<int>(*c);
      if (std::find(out.cpus.begin(), out.cpus.end(), cpu) != out.cpus.end())
        r_.fail_key(*x, ctx, "cpus", fmt::format("CPU {} is named twice", cpu));
      else
        out.cpus.push_back(cpu);
    }
  }

  // -- links ------------------------------------------------------------------------

  /// An idle strategy's keys (a link's `wait`/`spin`, a node's
  /// `loop_wait`/`loop_spin`).
  void read_idle(const toml_value& t, const std::string& ctx, const char* wait_key,
                 const char* spin_key, std::optional<transports::wait_mode>& wait,
                 std::optional<std::chrono::microseconds>& spin) {
    if (auto* v = toml_reader::find(&t, wait_key))
      if (auto s = r_.choice(*v, ctx, wait_key, {"busy_poll", "spin_then_block", "block"})) {
        transports::wait_mode m{};
        (void) transports::parse_wait_mode(*s, m);
        wait = m;
      }
    if (auto* v = toml_reader::find(&t, spin_key))
      if (auto d = r_.duration(*v, ctx, spin_key, std::chrono::microseconds{1}))
        spin = std::chrono::duration_cast<std::chrono::microseconds>(*d);
  }

  void read_link_settings(const toml_value& t, const std::string& ctx,
                          link_settings& out) {
    read_idle(t, ctx, "wait", "spin", out.wait, out.spin);
    if (auto* v = toml_reader::find(&t, "ring_capacity"))
      if (auto n = r_.byte_size(*v, ctx, "ring_capacity")) {
        if (*n < 64 || *n > (uint64_t{1} << 30) || (*n & (*n - 1)) != 0)
          r_.fail_key(*v, ctx, "ring_capacity",
                      fmt::format("{} must be a power of two from 64 bytes to "
                                  "1GiB, e.g. \"4MiB\"", *n));
        else
          out.ring_capacity = *n;
      }
    if (auto* v = toml_reader::find(&t, "overflow"))
      if (auto s = r_.choice(*v, ctx, "overflow", {"block", "drop_newest", "disconnect"})) {
        overflow_policy p{};
        (void) parse_overflow_policy(*s, p);
        out.overflow = p;
      }
    if (auto* v = toml_reader::find(&t, "send_queue"))
      if (auto n = r_.integer(*v, ctx, "send_queue", 1, 1 << 24))
        out.send_queue = static_cast<size_t>(*n);
    if (auto* v = toml_reader::find(&t, "max_payload"))
      if (auto n = r_.byte_size(*v, ctx, "max_payload")) {
        if (*n == 0 || *n >= wire::first_control_type_id)
          r_.fail_key(*v, ctx, "max_payload",
                      fmt::format("{} must be 1 to {}", *n, wire::first_control_type_id - 1));
        else
          out.max_payload = static_cast<uint32_t>(*n);
      }
    auto ms = [](std::chrono::nanoseconds d) {
      return std::chrono::duration_cast<std::chrono::milliseconds>(d);
    };
    if (auto* v = toml_reader::find(&t, "heartbeat_interval"))
      if (auto d = r_.duration(*v, ctx, "heartbeat_interval"))
        out.heartbeat_interval = ms(*d);
    if (auto* v = toml_reader::find(&t, "peer_timeout"))
      if (auto d = r_.duration(*v, ctx, "peer_timeout"))
        out.peer_timeout = ms(*d);
    if (auto* v = toml_reader::find(&t, "secret_file"))
      if (auto p = secret_file(*v, ctx))
        out.secret_file = *p;
  }

  /// A `secret_file` value: resolved, readable and not empty.
  std::optional<std::string> secret_file(const toml_value& v, const std::string& ctx) {
    auto s = r_.nonempty_string(v, ctx, "secret_file");
    if (!s)
      return std::nullopt;
    auto p = path(*s);
    std::ifstream probe{p, std::ios::binary};
    std::error_code ec;
    if (!std::filesystem::is_regular_file(p, ec) || !probe) {
      r_.fail_key(v, ctx, "secret_file",
                  fmt::format("cannot read '{}' (resolved to '{}'): create it "
                              "with the shared secret, readable by the nodes",
                              *s, p));
      return std::nullopt;
    }
    if (std::filesystem::file_size(p, ec) == 0) {
      r_.fail_key(v, ctx, "secret_file",
                  fmt::format("'{}' is empty; put the shared secret in it", p));
      return std::nullopt;
    }
    return p;
  }

  void read_link(const toml_value& e) {
    if (!e.is_table()) {
      r_.fail(e, "each [[links]] entry must be a table");
      return;
    }
    auto keys = link_setting_keys;
    keys.push_back("between");
    keys.push_back("kind");
    r_.check_keys(e, "[[links]]", keys);
    link_override out;
    out.at = ref(e);
    const std::string ctx = "[[links]] key";
    if (auto* b = toml_reader::find(&e, "between")) {
      if (auto xs = r_.string_array(*b, ctx, "between")) {
        if (xs->size() != 2 || (*xs)[0] == (*xs)[1]) {
          r_.fail_key(*b, ctx, "between",
                      "must name two different nodes, e.g. [\"md\", \"risk\"]");
        } else {
          for (auto& x : *xs)
            if (node_at_.count(x) == 0)
              r_.fail_key(*b, ctx, "between",
                          fmt::format("no node is named '{}' (nodes: {})", x,
                                      config::known_list(node_names(), x)));
          out.between = *xs;
        }
      }
    } else {
      r_.fail(e, "[[links]] entry without between = [\"node\", \"node\"]; "
                 "settings for every link go in [link_defaults]");
    }
    if (auto* k = toml_reader::find(&e, "kind"))
      if (auto s = r_.choice(*k, ctx, "kind", {"shm", "unix", "tcp"})) {
        transports::link_kind kind{};
        (void) transports::parse_link_kind(*s, kind);
        out.kind = kind;
        if (out.between.size() == 2 && kind != transports::link_kind::tcp) {
          auto* a = t_.find_node(out.between[0]);
          auto* b = t_.find_node(out.between[1]);
          if (a && b && !t_.same_host(*a, *b))
            r_.fail_key(*k, ctx, "kind",
                        fmt::format("\"{}\" needs both nodes on one host, but "
                                    "'{}' is on {} and '{}' on {}; use \"tcp\" "
                                    "between hosts", *s, a->name,
                                    a->host.empty() ? "this host" : a->host, b->name,
                                    b->host.empty() ? "this host" : b->host));
        }
      }
    read_link_settings(e, ctx, out.settings);
    t_.links.push_back(std::move(out));
  }

  // -- daemons ----------------------------------------------------------------------

  void read_daemon(const toml_value& e) {
    if (!e.is_table()) {
      r_.fail(e, "each [[daemons]] entry must be a table");
      return;
    }
    r_.check_keys(e, "[[daemons]]", {"host", "port", "secret_file"});
    daemon_spec out;
    out.at = ref(e);
    const std::string ctx = "[[daemons]] key";
    if (auto* v = toml_reader::find(&e, "host")) {
      if (auto s = r_.nonempty_string(*v, ctx, "host"))
        out.host = *s;
    } else {
      r_.fail(e, "[[daemons]] entry without a host: add host = \"...\", the "
                 "host of the nodes it starts");
    }
    if (auto* v = toml_reader::find(&e, "port")) {
      if (auto p = r_.integer(*v, ctx, "port", 1, 65535))
        out.port = static_cast<uint16_t>(*p);
    } else {
      r_.fail(e, fmt::format("[[daemons]] entry for host '{}' without a port: add "
                             "port = N, the port of its --serve HOST:PORT", out.host));
    }
    if (auto* v = toml_reader::find(&e, "secret_file"))
      if (auto p = secret_file(*v, ctx))
        out.secret_file = *p;
    if (!out.host.empty() && out.secret_file.empty()
        && !transports::is_loopback(out.host)
        && toml_reader::find(&e, "secret_file") == nullptr)
      r_.fail(e, fmt::format("the daemon of host '{}' is not on loopback and has no "
                             "secret_file: a daemon on another address refuses to "
                             "start without one; add secret_file = \"...\" (the "
                             "file its --secret-file reads)", out.host));
    for (auto& d : t_.daemons)
      if (!out.host.empty() && d.host == out.host)
        r_.fail(e, fmt::format("a second [[daemons]] entry for host '{}' (the first "
                               "is at line {}); a host has one daemon",
                               out.host, d.at.line));
    t_.daemons.push_back(std::move(out));
  }

  void check_daemons() {
    for (auto& d : t_.daemons) {
      if (d.host.empty())
        continue;
      bool used = false;
      for (auto& n : t_.nodes) {
        if (n.host != d.host)
          continue;
        used = true;
        auto refuse = [&](const std::string& what) {
          r_.fail_at(n.at.line, n.at.column,
                     fmt::format("node '{}' starts through the daemon of host '{}' "
                                 "(line {}), inside the daemon's process: {}",
                                 n.name, d.host, d.at.line, what));
        };
        if (n.runtime != node_runtime::cpp)
          refuse(fmt::format("a daemon runs C++ nodes only, and this one has runtime "
                             "= \"{}\"; run it on a host of its own without a daemon",
                             to_string(n.runtime)));
        if (!n.env.empty())
          refuse("env cannot apply there; set the variables where the daemon starts, "
                 "or remove env");
        if (!n.workdir.empty())
          refuse("workdir cannot apply there (relative paths resolve against the "
                 "daemon's working directory); remove workdir");
        if (!n.cpus.empty())
          refuse("cpus cannot apply there (the daemon's process is shared); pin the "
                 "daemon itself, e.g. with taskset, or remove cpus");
        if (n.port == d.port)
          refuse(fmt::format("the node and the daemon both use port {}", d.port));
      }
      if (!used) {
        std::vector<std::string> hosts;
        for (auto& n : t_.nodes)
          if (!n.host.empty())
            hosts.push_back(n.host);
        auto near = config::closest(hosts, d.host);
        r_.fail_at(d.at.line, d.at.column,
                   fmt::format("no node has host = \"{}\", so this daemon starts "
                               "nothing{}", d.host,
                               near.empty() ? "; fix the host or remove the entry"
                                            : fmt::format("; did you mean '{}'?", near)));
      }
    }
  }

  std::vector<std::string> node_names() const {
    std::vector<std::string> out;
    for (auto& n : t_.nodes)
      out.push_back(n.name);
    return out;
  }

  void check_nodes() {
    std::map<std::string, const node_spec*> by_path;
    std::map<std::pair<std::string, uint16_t>, const node_spec*> by_port;
    for (auto& n : t_.nodes) {
      if (n.services.empty() && n.runtime != node_runtime::command)
        r_.fail_at(n.at.line, n.at.column,
                   fmt::format("node '{}' has no services: add services = "
                               "[\"...\"] or remove the node", n.name));
      if (n.local_kind == transports::link_kind::tcp && n.port == 0)
        r_.fail_at(n.at.line, n.at.column,
                   fmt::format("node '{}' has endpoint kind \"tcp\" but no "
                               "port: add port = N", n.name));
      if (n.local_kind != transports::link_kind::tcp) {
        if (n.endpoint_path.size() >= 108)
          r_.fail_at(n.at.line, n.at.column,
                     fmt::format("node '{}': socket path '{}' is longer than the "
                                 "107 bytes a Unix socket allows; set a shorter "
                                 "socket_dir or endpoint.path", n.name,
                                 n.endpoint_path));
        if (auto [i, fresh] = by_path.emplace(n.endpoint_path, &n); !fresh)
          r_.fail_at(n.at.line, n.at.column,
                     fmt::format("nodes '{}' and '{}' share the socket path '{}'; "
                                 "give each its own endpoint.path",
                                 i->second->name, n.name, n.endpoint_path));
      }
      if (n.port != 0) {
        auto host = n.address();
        if (auto [i, fresh] = by_port.emplace(std::pair{host, n.port}, &n); !fresh)
          r_.fail_at(n.at.line, n.at.column,
                     fmt::format("nodes '{}' and '{}' both use port {} on {}",
                                 i->second->name, n.name, n.port, host));
      }
    }
    for (auto& [name, v] : after_at_) {
      auto* n = t_.find_node(name);
      for (auto& a : n->after)
        if (node_at_.count(a) == 0)
          r_.fail_key(*v, fmt::format("node '{}' key", name), "after",
                      fmt::format("no node is named '{}' (nodes: {})", a,
                                  config::known_list(node_names(), a)));
        else if (a == name)
          r_.fail_key(*v, fmt::format("node '{}' key", name), "after",
                      "a node cannot wait for itself");
    }
    check_after_cycles();
  }

  void check_after_cycles() {
    // Depth-first search over `after`; a back edge is a cycle.
    std::map<std::string, int> mark; // 0 new, 1 on stack, 2 done
    std::function<bool(const std::string&)> visit = [&](const std::string& n) {
      mark[n] = 1;
      if (auto* spec = t_.find_node(n))
        for (auto& a : spec->after) {
          if (t_.find_node(a) == nullptr || a == n)
            continue;
          if (mark[a] == 1)
            return false;
          if (mark[a] == 0 && !visit(a))
            return false;
        }
      mark[n] = 2;
      return true;
    };
    for (auto& n : t_.nodes)
      if (mark[n.name] == 0 && !visit(n.name)) {
        r_.fail_at(n.at.line, n.at.column,
                   fmt::format("the 'after' lists form a cycle through node '{}'; "
                               "nodes cannot all wait for each other", n.name));
        return;
      }
  }

  struct named_service {
    std::string service;
    std::string node;
    source_ref at;
  };

  toml_reader r_;
  topology t_;
  std::map<std::string, service_table> tables_;
  std::map<std::string, source_ref> node_at_;
  std::map<std::string, const toml_value*> after_at_;
  std::vector<named_service> named_;
};

caf::expected<topology> load_root(const std::string& name,
                                  caf::expected<toml_value> root) {
  if (!root)
    return std::move(root.error());
  return loader{name}.run(*root);
}

} // namespace

caf::expected<topology> load_topology(const std::string& path) {
  std::error_code ec;
  auto abs = std::filesystem::absolute(path, ec).lexically_normal().string();
  if (ec)
    abs = path;
  return load_root(abs, config::parse_toml_file(abs));
}

caf::expected<topology> load_topology_string(const std::string& text,
                                             const std::string& name) {
  return load_root(name, config::parse_toml_string(text, name));
}

caf::error check_service_types(const topology& t, const registered_types& known) {
  config::toml_reader r{t.file};
  for (auto& s : t.services) {
    auto* n = t.find_node(s.node);
    if (n == nullptr || n->runtime != node_runtime::cpp)
      continue;
    auto i = known.find(n->binary);
    if (i == known.end())
      continue;
    if (i->second.count(s.type) != 0)
      continue;
    if (s.type.rfind("python:", 0) == 0) {
      if (i->second.count("python:*") != 0)
        continue; // the binary embeds Python
      r.fail_at(s.type_at.line, s.type_at.column,
                fmt::format("service '{}' has type \"{}\": node '{}''s binary {} does "
                            "not embed Python; link it with mycelium::python_embed "
                            "(mycelium_add_node(... PYTHON)), or run the service in a "
                            "node with runtime = \"python\"",
                            s.name, s.type, n->name, n->binary));
      continue;
    }
    std::vector<std::string> types(i->second.begin(), i->second.end());
    auto near = config::closest(types, s.type);
    r.fail_at(s.type_at.line, s.type_at.column,
              fmt::format("service '{}' has type '{}', which node '{}''s binary "
                          "{} does not register{} (it registers: {})",
                          s.name, s.type, n->name, n->binary,
                          near.empty() ? "" : fmt::format("; did you mean '{}'?", near),
                          config::known_list(types, "")));
  }
  if (r.ok())
    return {};
  return r.error();
}

} // namespace mycelium::topology
