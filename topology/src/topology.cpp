#include "mycelium/topology/topology.hpp"

#include <cstdio>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "mycelium/config/toml_reader.hpp"
#include "mycelium/errc.hpp"

namespace mycelium::topology {

namespace {

/// "" for the launcher's host, else the host as written.
std::string host_key(const std::string& host) {
  return host == "localhost" ? std::string{} : host;
}

} // namespace

const char* to_string(node_runtime x) noexcept {
  switch (x) {
    case node_runtime::cpp: return "cpp";
    case node_runtime::python: return "python";
    case node_runtime::command: return "command";
  }
  return "?";
}

const char* to_string(restart_mode x) noexcept {
  switch (x) {
    case restart_mode::never: return "never";
    case restart_mode::on_failure: return "on-failure";
    case restart_mode::always: return "always";
  }
  return "?";
}

void link_settings::merge(const link_settings& o) {
  if (o.wait) wait = o.wait;
  if (o.spin) spin = o.spin;
  if (o.ring_capacity) ring_capacity = o.ring_capacity;
  if (o.overflow) overflow = o.overflow;
  if (o.send_queue) send_queue = o.send_queue;
  if (o.max_payload) max_payload = o.max_payload;
  if (o.heartbeat_interval) heartbeat_interval = o.heartbeat_interval;
  if (o.peer_timeout) peer_timeout = o.peer_timeout;
  if (o.secret_file) secret_file = o.secret_file;
}

caf::error link_settings::apply(transports::link_config& cfg) const {
  if (wait) cfg.wait = *wait;
  if (spin) cfg.spin = *spin;
  if (ring_capacity) cfg.ring_capacity = *ring_capacity;
  if (overflow) cfg.overflow = *overflow;
  if (send_queue) cfg.send_queue = *send_queue;
  if (max_payload) cfg.max_payload = *max_payload;
  if (heartbeat_interval) cfg.heartbeat_interval = *heartbeat_interval;
  if (peer_timeout) cfg.peer_timeout = *peer_timeout;
  if (secret_file) {
    auto s = config::read_secret_file(*secret_file);
    if (!s)
      return std::move(s.error());
    cfg.secret = std::move(*s);
  }
  return {};
}

namespace {

std::string percent_encode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c <= 0x20 || c == '%' || c == '=' || c == ',' || c == 0x7f) {
      char buf[4];
      std::snprintf(buf, sizeof(buf), "%%%02X", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string param_text(const caf::config_value& v) {
  if (auto* xs = caf::get_if<caf::config_value::list>(&v)) {
    std::string out;
    for (auto& x : *xs)
      out += (out.empty() ? "" : ",") + param_text(x);
    return out;
  }
  if (auto* s = caf::get_if<std::string>(&v))
    return percent_encode(*s);
  if (auto* b = caf::get_if<bool>(&v))
    return *b ? "true" : "false";
  if (auto* d = caf::get_if<double>(&v)) {
    // The shortest text that reads back exactly, and always looks like a
    // float (so that 1.0 does not arrive as the integer 1).
    auto text = fmt::format("{}", *d);
    if (text.find_first_of(".eni") == std::string::npos)
      text += ".0";
    return text;
  }
  return percent_encode(caf::to_string(v));
}

void params_text(const std::string& prefix, const caf::settings& xs, std::string& out) {
  for (auto& [k, v] : xs) {
    if (auto* d = caf::get_if<caf::config_value::dictionary>(&v))
      params_text(prefix + percent_encode(k) + ".", *d, out); // "a b" = {...} too
    else
      out += " " + prefix + percent_encode(k) + "=" + param_text(v);
  }
}

} // namespace

std::string services_text(const topology& t, const std::string& node) {
  std::string out;
  for (auto* s : t.services_of(node)) {
    out += "name=" + percent_encode(s->name) + " type=" + percent_encode(s->type)
           + " placement=" + to_string(s->where);
    params_text("p.", s->params, out);
    out += "\n";
  }
  return out;
}

bool node_spec::local() const noexcept {
  return host.empty() || host == "localhost" || host.rfind("127.", 0) == 0
         || host == "::1";
}

std::string node_spec::address() const {
  return host.empty() || host == "localhost" ? std::string{"127.0.0.1"} : host;
}

const daemon_spec* topology::daemon_for(const node_spec& n) const {
  if (n.host.empty())
    return nullptr;
  for (auto& d : daemons)
    if (d.host == n.host)
      return &d;
  return nullptr;
}

const node_spec* topology::find_node(const std::string& n) const {
  for (auto& x : nodes)
    if (x.name == n)
      return &x;
  return nullptr;
}

transports::idle_strategy topology::loop_idle(const node_spec& n) const {
  auto mode = n.loop_wait ? *n.loop_wait
                          : link_defaults.wait.value_or(transports::wait_mode::spin_then_block);
  if (mode != transports::wait_mode::spin_then_block)
    return {mode, {}};
  return transports::idle_strategy::spinning(
    n.loop_spin ? *n.loop_spin : link_defaults.spin.value_or(std::chrono::microseconds{100}));
}

const service_spec* topology::find_service(const std::string& n) const {
  for (auto& x : services)
    if (x.name == n)
      return &x;
  return nullptr;
}

std::vector<const service_spec*> topology::services_of(const std::string& n) const {
  std::vector<const service_spec*> out;
  for (auto& x : services)
    if (x.node == n)
      out.push_back(&x);
  return out;
}

bool topology::same_host(const node_spec& a, const node_spec& b) const {
  return host_key(a.host) == host_key(b.host);
}

} // namespace mycelium::topology
