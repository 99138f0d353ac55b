#include "mycelium/transports/remote_node.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "mycelium/actors/log.hpp"
#include "mycelium/actors/node.hpp"
#include "mycelium/actors/service_registry.hpp"
#include "mycelium/actors/supervisor.hpp"
#include "mycelium/errc.hpp"

namespace mycelium::transports {

namespace {

using remote_spawn_atom = caf::atom_constant<caf::atom("mremspawn")>;

caf::behavior node_manager(caf::event_based_actor* self, caf::actor supervisor,
                           std::shared_ptr<mycelium::bus> b,
                           std::string node_name) {
  self->monitor(supervisor);
  self->set_down_handler([self](const caf::down_msg&) { self->quit(); });
  return {
    // The placement travels as its name, so that a value this node does not
    // know is refused with the accepted ones, not misread.
    [=](remote_spawn_atom, const std::string& type, const std::string& instance,
        const std::string& where_text,
        const caf::config_value& params) -> caf::result<caf::message> {
      auto factory = service_registry::global().find(type);
      if (!factory)
        return make_error(errc::unknown_service,
                          "node '" + node_name + "' has no service type '" + type
                            + "' registered");
      placement where = placement::pool;
      if (parse_placement(where_text, where))
        return make_error(errc::config_invalid,
                          "node '" + node_name + "', service '" + type
                            + "': unknown placement '" + where_text
                            + "': use pool or loop");
      auto* settings = caf::get_if<caf::settings>(&params);
      if (settings == nullptr)
        return make_error(errc::config_invalid,
                          "node '" + node_name + "', service '" + type
                            + "': parameters must be a dictionary, got "
                            + caf::to_string(params));
      auto spec = std::make_shared<child_spec>();
      spec->type = type;
      spec->context = service_context{instance.empty() ? type : instance, b, *settings,
                                      where};
      spec->factory = std::move(factory);
      log(log_level::info, node_name,
          "remote request: starting service '" + spec->context.name + "' ("
            + type + ", placement " + to_string(where) + ")");
      self->delegate(supervisor, start_child_atom::value,
                     child_spec_ptr{std::move(spec)});
      return caf::delegated<caf::message>{};
    },
  };
}

} // namespace

caf::expected<uint16_t> expose(node& n, uint16_t port, const std::string& address) {
  auto& sys = n.system();
  if (!sys.has_middleman())
    return make_error(errc::config_invalid,
                      "expose needs CAF's middleman: call "
                      "cfg.load<caf::io::middleman>() first");
  auto mgr = sys.spawn(node_manager, n.supervisor(), n.bus_ptr(), n.name());
  auto bound = sys.middleman().publish(mgr, port, address.c_str(), true);
  if (!bound) {
    caf::anon_send_exit(mgr, caf::exit_reason::user_shutdown);
    return make_error(errc::io_failed, "node '" + n.name() + "': cannot expose on "
                                         + address + ":" + std::to_string(port)
                                         + ": " + sys.render(bound.error()));
  }
  log(log_level::info, n.name(),
      "exposed through CAF BASP on " + address + ":" + std::to_string(*bound));
  return *bound;
}

caf::expected<caf::actor> remote_spawn(caf::actor_system& sys,
                                       const std::string& host, uint16_t port,
                                       const std::string& type,
                                       const std::string& instance,
                                       std::chrono::milliseconds timeout,
                                       placement where_placed,
                                       const caf::settings& params) {
  auto where = host + ":" + std::to_string(port);
  if (!sys.has_middleman())
    return make_error(errc::config_invalid,
                      "remote_spawn needs CAF's middleman: call "
                      "cfg.load<caf::io::middleman>() first");
  auto mgr = sys.middleman().remote_actor(host, port);
  if (!mgr)
    return make_error(errc::io_failed, "no exposed Mycelium node at " + where
                                         + ": " + sys.render(mgr.error()));
  caf::expected<caf::actor> result{caf::error{}};
  caf::scoped_actor self{sys};
  self->request(*mgr, timeout, remote_spawn_atom::value, type, instance,
                std::string{to_string(where_placed)}, caf::config_value{params})
    .receive([&](caf::actor& a) { result = std::move(a); },
             [&](caf::error& err) {
               if (err == caf::sec::request_timeout)
                 result = make_error(errc::request_timeout,
                                     "starting service '" + type + "' on " + where
                                       + " took longer than "
                                       + std::to_string(timeout.count()) + " ms");
               else
                 result = make_error(err.category() == errc_category
                                       ? static_cast<errc>(err.code())
                                       : errc::service_failed,
                                     "remote node at " + where
                                       + " could not start '" + type
                                       + "': " + render(err));
             });
  return result;
}

} // namespace mycelium::transports
