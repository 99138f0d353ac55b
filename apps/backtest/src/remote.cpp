#include "mycelium/backtest/remote.hpp"

#include <chrono>
#include <cstdio>
#include <deque>
#include <map>

#include <caf/actor_system.hpp>
#include <caf/blocking_actor.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "mycelium/backtest/instance.hpp"
#include "mycelium/errc.hpp"
#include "mycelium/transports/remote_auth.hpp"

namespace mycelium::backtest {

using prepare_atom = caf::atom_constant<caf::atom("btprepare")>;
using run_atom = caf::atom_constant<caf::atom("btrun")>;
using result_atom = caf::atom_constant<caf::atom("btresult")>;

void add_remote_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<bar>("mycelium.backtest.bar");
  cfg.add_message_type<crossover_params>("mycelium.backtest.crossover_params");
  cfg.add_message_type<run_metrics>("mycelium.backtest.run_metrics");
  cfg.add_message_type<std::vector<bar>>("std::vector<mycelium.backtest.bar>");
  cfg.add_message_type<std::vector<crossover_params>>(
    "std::vector<mycelium.backtest.crossover_params>");
  cfg.add_message_type<std::vector<run_metrics>>(
    "std::vector<mycelium.backtest.run_metrics>");
}

namespace {

/// Separates a worker's proofs from those of other services.
constexpr char auth_label[] = "mycelium-backtest-auth-v1";

struct worker_state {
  std::map<uint64_t, bar_series_ptr> sessions;
  size_t threads = 0;
  transports::remote_gate gate{{}, auth_label, "worker"};
  static inline const char* name = "mycelium.backtest.worker";

  /// Whether the sender's node may use the worker.
  bool allowed(const caf::strong_actor_ptr& sender) const {
    return gate.allows(sender);
  }
};

/// Runs on its own thread (spawned detached): a chunk blocks it while the
/// local pool computes.
caf::behavior worker_actor(caf::stateful_actor<worker_state>* self, size_t threads,
                           std::string secret) {
  self->state.threads = threads;
  self->state.gate = transports::remote_gate{std::move(secret), auth_label, "worker"};
  return transports::remote_auth_handler(self, self->state.gate).or_else(caf::message_handler{
    [self](prepare_atom, uint64_t session, const std::vector<bar>& bars)
      -> caf::result<caf::atom_value> {
      if (!self->state.allowed(self->current_sender()))
        return self->state.gate.refusal();
      self->state.sessions[session] = std::make_shared<const bar_series>(bars);
      return caf::atom("ok");
    },
    [self](run_atom, uint64_t session, int32_t kind, uint64_t first,
           const std::vector<crossover_params>& sets)
      -> caf::result<result_atom, uint64_t, std::vector<run_metrics>> {
      if (!self->state.allowed(self->current_sender()))
        return self->state.gate.refusal();
      auto i = self->state.sessions.find(session);
      if (i == self->state.sessions.end())
        return make_error(errc::config_invalid,
                          "worker has no data for session " + std::to_string(session));
      std::vector<run_metrics> out(sets.size());
      caf::error failure;
      std::mutex mtx;
      parallel_for(sets.size(), self->state.threads, [&](size_t k) {
        auto r = run_instance(i->second, {static_cast<strategy_kind>(kind), sets[k], false});
        if (r) {
          out[k] = r->metrics;
        } else {
          std::lock_guard<std::mutex> guard{mtx};
          failure = r.error();
        }
      });
      if (failure)
        return failure;
      return {result_atom::value, first, std::move(out)};
    },
  });
}

} // namespace

caf::error run_remote(const std::vector<std::string>& workers,
                      const bar_series_ptr& bars, strategy_kind kind,
                      const std::vector<crossover_params>& sets,
                      std::vector<run_metrics>& results,
                      std::atomic<size_t>& done, const std::string& secret) {
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  cfg.set("logger.console", caf::atom("none"));
  add_remote_types(cfg);
  caf::actor_system sys{cfg};
  struct remote {
    std::string name;
    caf::actor handle;
    size_t in_flight = 0;
  };
  std::vector<remote> peers;
  for (auto& w : workers) {
    auto where = transports::parse_host_port(w, "--workers");
    if (!where)
      return where.error();
    auto& [host, port] = *where;
    auto h = sys.middleman().remote_actor(host, port);
    if (!h)
      return make_error(errc::config_invalid,
                        "cannot reach worker " + w + ": " + render(h.error())
                          + " (is `mycelium-backtest worker --port "
                          + std::to_string(port) + "` running there?)");
    peers.push_back({w, *h, 0});
  }
  caf::scoped_actor self{sys};
  const uint64_t session = 1;
  std::vector<bar> data(bars->begin(), bars->end());
  for (auto& p : peers) {
    self->monitor(p.handle);
    caf::error err;
    if (!secret.empty()) {
      if (auto e = transports::remote_authenticate(self, p.handle, secret, auth_label,
                                                    std::chrono::seconds(30)))
        return make_error(errc::auth_failed,
                          "worker " + p.name + " refused the driver: " + render(e));
    }
    self->request(p.handle, std::chrono::seconds(60), prepare_atom::value, session, data)
      .receive([](caf::atom_value) {}, [&](caf::error& e) { err = e; });
    if (err)
      return make_error(errc::service_failed,
                        "worker " + p.name + " did not take the data: " + render(err));
  }
  // Chunks small enough to balance, large enough to amortise the round trip.
  size_t chunk = std::max<size_t>(1, std::min<size_t>(256, sets.size() / (peers.size() * 8) + 1));
  std::deque<std::pair<size_t, size_t>> pending; // [first, count)
  for (size_t first = 0; first < sets.size(); first += chunk)
    pending.emplace_back(first, std::min(chunk, sets.size() - first));
  std::map<uint64_t, std::pair<size_t, size_t>> outstanding; // first -> (peer, count)
  auto dispatch = [&] {
    for (size_t k = 0; k < peers.size(); ++k)
      while (peers[k].in_flight < 2 && !pending.empty()) {
        auto [first, count] = pending.front();
        pending.pop_front();
        std::vector<crossover_params> part(sets.begin() + first,
                                           sets.begin() + first + count);
        self->send(peers[k].handle, run_atom::value, session,
                   static_cast<int32_t>(kind), static_cast<uint64_t>(first), part);
        outstanding[first] = {k, count};
        ++peers[k].in_flight;
      }
  };
  dispatch();
  caf::error failure;
  while (!outstanding.empty() && !failure) {
    bool timed_out = false;
    self->receive(
      [&](result_atom, uint64_t first, std::vector<run_metrics>& part) {
        auto it = outstanding.find(first);
        if (it == outstanding.end() || part.size() != it->second.second) {
          failure = make_error(errc::service_failed, "a worker answered a chunk it was not given");
          return;
        }
        std::copy(part.begin(), part.end(), results.begin() + static_cast<long>(first));
        --peers[it->second.first].in_flight;
        done.fetch_add(part.size(), std::memory_order_relaxed);
        outstanding.erase(it);
        dispatch();
      },
      [&](caf::error& e) {
        failure = make_error(errc::service_failed, "a worker failed: " + render(e));
      },
      [&](caf::down_msg& dm) {
        for (auto& p : peers)
          if (p.handle.address() == dm.source)
            failure = make_error(errc::service_failed,
                                 "worker " + p.name + " went away (" + render(dm.reason)
                                   + "); restart it and run again");
      },
      caf::after(std::chrono::minutes(10)) >> [&] { timed_out = true; });
    if (timed_out)
      failure = make_error(errc::request_timeout,
                           "no result from any worker for 10 minutes");
  }
  return failure;
}

caf::error serve_worker(const std::string& host, uint16_t port, size_t threads,
                        const std::string& secret) {
  if (!transports::is_loopback(host) && secret.empty())
    return make_error(errc::config_invalid,
                      "refusing to listen on " + host + " without authentication: "
                        "anyone who reaches the port could use this worker. Pass "
                        "--secret-file FILE here and to the driver, or listen on "
                        "127.0.0.1");
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  cfg.set("logger.console", caf::atom("none"));
  add_remote_types(cfg);
  caf::actor_system sys{cfg};
  auto w = sys.spawn<caf::detached>(worker_actor, threads, secret);
  auto bound = sys.middleman().publish(w, port, host.c_str(), true);
  if (!bound) {
    caf::anon_send_exit(w, caf::exit_reason::user_shutdown);
    return make_error(errc::config_invalid,
                      "cannot listen on " + host + ":" + std::to_string(port) + ": "
                        + render(bound.error()));
  }
  std::printf("mycelium-backtest worker listening on %s:%u\n", host.c_str(),
              static_cast<unsigned>(*bound));
  std::fflush(stdout);
  sys.await_all_actors_done(); // until the process is stopped
  return caf::none;
}

} // namespace mycelium::backtest
