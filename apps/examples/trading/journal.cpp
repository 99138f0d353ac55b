// journal: writes what the trading session produced -- every fill and the
// final counts -- to a file (param `path`), then finishes. The end-to-end
// tests compare journals across deployments: same services, same seed,
// same journal, whichever topology ran them.
#include <fstream>
#include <iomanip>
#include <sstream>

#include <caf/all.hpp>

#include "mycelium/actors/log.hpp"
#include "mycelium/actors/service.hpp"
#include "mycelium/actors/service_registry.hpp"
#include "trading.hpp"

namespace tr = example::trading;

class journal : public mycelium::service {
public:
  using service::service;

  void on_start() override {
    path_ = caf::get_or(params(), "path", std::string{"journal.txt"});
    subscribe<tr::fill>([this](const tr::fill& f) {
      out_ << "fill #" << f.order_id << " " << to_string(f.side) << " " << f.qty
           << " @ " << std::fixed << std::setprecision(4) << f.px << "\n";
    });
    subscribe<tr::executor_done>([this](const tr::executor_done& d) {
      out_ << "session complete: " << d.quotes << " quotes, " << d.fills
           << " fills\n";
      std::ofstream file{path_, std::ios::trunc};
      file << out_.str();
      if (!file) {
        mycelium::log(mycelium::log_level::error, service_name(),
                      "cannot write the journal to " + path_);
        quit(caf::sec::runtime_error);
        return;
      }
      mycelium::log(mycelium::log_level::info, service_name(),
                    "session complete: " + std::to_string(d.fills)
                      + " fills, journal written to " + path_);
      quit(); // done: `mycelium-run --until-exit journal` stops the deployment
    });
  }

private:
  std::string path_;
  std::ostringstream out_;
};

MYCELIUM_REGISTER_SERVICE("example.journal", journal);
