#include "mycelium/backtest/backtest_config.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <tuple>
#include <utility>

#include <fmt/format.h>
#include "mycelium/config/toml_reader.hpp"
#include "mycelium/errc.hpp"

namespace mycelium::backtest {

namespace {

using tvalue = config::toml_value;
using ttable = tvalue::table_type;
using config::known_list;

/// Upper bounds that keep a typo (a tiny step, an extra zero) from asking
/// for terabytes of memory.
constexpr size_t max_axis_values = 1'000'000;
constexpr double max_parameter_sets = 100'000'000;
constexpr int64_t max_days = 10'000'000;
constexpr int64_t max_paths = 100'000'000;

/// Collects every problem of one file instead of stopping at the first.
class reader : public config::toml_reader {
public:
  explicit reader(std::string file) : toml_reader(std::move(file)) {
  }

  static std::string field(const std::string& table) {
    return "[" + table + "] field";
  }

  void fail_field(const tvalue& v, const std::string& table,
                  const std::string& key, const std::string& what) {
    fail_key(v, field(table), key, what);
  }

  // -- structure -----------------------------------------------------------

  /// Checks the top level: only the known tables, each a table.
  void check_tables(const tvalue& root, const std::vector<std::string>& known) {
    for (auto& [key, v] : root.as_table()) {
      if (std::find(known.begin(), known.end(), key) == known.end()) {
        std::vector<std::string> bracketed;
        for (auto& k : known)
          bracketed.push_back("[" + k + "]");
        fail(v, fmt::format("unknown table [{}] (known tables: {})", key,
                            known_list(bracketed, "[" + key + "]")));
      } else if (!v.is_table()) {
        fail(v, fmt::format("'{}' must be a table: write [{}] on its own line "
                            "followed by its keys", key, key));
      }
    }
  }

  /// The table `name` of `root`, or nullptr (missing or not a table).
  const tvalue* table(const tvalue& root, const std::string& name) {
    auto& t = root.as_table();
    auto i = t.find(name);
    if (i == t.end() || !i->second.is_table())
      return nullptr;
    return &i->second;
  }

  // The toolkit's checks, with this file's "[table] field 'key'" wording.

  void check_keys(const tvalue& t, const std::string& table,
                  const std::vector<std::string>& known) {
    toml_reader::check_keys(t, "[" + table + "]", known);
  }

  std::optional<double> number(const tvalue& v, const std::string& table,
                               const std::string& key) {
    return toml_reader::number(v, field(table), key);
  }

  std::optional<int64_t> integer(const tvalue& v, const std::string& table,
                                 const std::string& key, int64_t lo,
                                 int64_t hi) {
    return toml_reader::integer(v, field(table), key, lo, hi);
  }

  std::optional<std::string> string(const tvalue& v, const std::string& table,
                                    const std::string& key) {
    return toml_reader::string(v, field(table), key);
  }

  std::optional<std::string> choice(const tvalue& v, const std::string& table,
                                    const std::string& key,
                                    const std::vector<std::string>& allowed) {
    return toml_reader::choice(v, field(table), key, allowed);
  }

  /// An optional number that must be > 0, or >= 0 when `allow_zero`; stored
  /// in `out` when valid.
  void positive_or_zero(const tvalue* v, const std::string& table,
                        const std::string& key, bool allow_zero, double& out) {
    if (!v)
      return;
    auto x = number(*v, table, key);
    if (!x)
      return;
    if (allow_zero ? *x < 0 : *x <= 0) {
      fail_field(*v, table, key,
                 fmt::format("{} must be {}", *x,
                             allow_zero ? "zero or positive" : "positive"));
      return;
    }
    out = *x;
  }

  /// A CSV path: resolved against the config file's directory and checked
  /// to be a readable regular file.
  std::optional<std::string> csv_path(const tvalue& v, const std::string& table,
                                      const std::string& key) {
    auto s = string(v, table, key);
    if (!s)
      return std::nullopt;
    if (s->empty()) {
      fail_field(v, table, key, "is empty; give the path of a CSV file");
      return std::nullopt;
    }
    auto resolved = config::resolve_path(file(), *s);
    std::error_code ec;
    auto st = std::filesystem::status(resolved, ec);
    if (ec || !std::filesystem::exists(st)) {
      fail_field(v, table, key,
                 fmt::format("'{}' does not exist (looked for '{}'; relative "
                             "paths resolve against the config file's "
                             "directory)", *s, resolved));
      return std::nullopt;
    }
    if (!std::filesystem::is_regular_file(st)) {
      fail_field(v, table, key,
                 fmt::format("'{}' is not a regular file (resolved to '{}')",
                             *s, resolved));
      return std::nullopt;
    }
    std::ifstream probe{resolved, std::ios::binary};
    if (!probe) {
      fail_field(v, table, key,
                 fmt::format("'{}' cannot be opened for reading (resolved to "
                             "'{}'; check its permissions)", *s, resolved));
      return std::nullopt;
    }
    return resolved;
  }

  // -- shared tables -----------------------------------------------------------

  /// [data] of a sweep or [model] of a Monte Carlo run.
  void data_table(const tvalue* t, const std::string& table,
                  const std::vector<std::string>& kinds, data_source& out) {
    check_keys(*t, table, {"source", "csv", "s0", "mu", "sigma", "days"});
    auto* source = find(t, "source");
    if (!source) {
      fail(*t, fmt::format("[{}] field 'source': missing; add source = \"{}\" "
                           "(one of {})", table, kinds.front(),
                           known_list(kinds, "")));
      return;
    }
    auto kind = choice(*source, table, "source", kinds);
    if (!kind)
      return;
    out.kind = *kind == "csv"   ? data_source::kind_t::csv
               : *kind == "gbm" ? data_source::kind_t::gbm
                                : data_source::kind_t::bootstrap;
    // Which keys apply to which source.
    const std::map<std::string, std::set<std::string>> applies{
      {"csv", {"csv", "bootstrap"}},
      {"s0", {"gbm", "bootstrap"}},
      {"mu", {"gbm"}},
      {"sigma", {"gbm"}},
      {"days", {"gbm", "bootstrap"}},
    };
    for (auto& [key, kinds_of_key] : applies) {
      auto* v = find(t, key);
      if (!v || kinds_of_key.count(*kind))
        continue;
      std::string which;
      for (auto& k : kinds_of_key)
        which += (which.empty() ? "" : " or ") + fmt::format("\"{}\"", k);
      fail_field(*v, table, key,
                 fmt::format("applies only to source = {}, not \"{}\"; "
                             "remove it or change the source", which, *kind));
    }
    if (*kind == "csv" || *kind == "bootstrap") {
      if (auto* v = find(t, "csv")) {
        if (auto p = csv_path(*v, table, "csv"))
          out.csv = *p;
      } else {
        fail(*t, fmt::format("[{}] field 'csv': missing; source \"{}\" needs "
                             "csv = \"path/to/bars.csv\"", table, *kind));
      }
    }
    if (*kind == "gbm") {
      positive_or_zero(find(t, "s0"), table, "s0", false, out.gbm.s0);
      if (auto* v = find(t, "mu"))
        if (auto x = number(*v, table, "mu"))
          out.gbm.mu = *x;
      positive_or_zero(find(t, "sigma"), table, "sigma", true, out.gbm.sigma);
      if (auto* v = find(t, "days"))
        if (auto x = integer(*v, table, "days", 1, max_days))
          out.gbm.days = static_cast<size_t>(*x);
      out.s0 = out.gbm.s0;
      out.days = out.gbm.days;
    } else if (*kind == "bootstrap") {
      positive_or_zero(find(t, "s0"), table, "s0", false, out.s0);
      if (auto* v = find(t, "days"))
        if (auto x = integer(*v, table, "days", 1, max_days))
          out.days = static_cast<size_t>(*x);
      out.gbm.s0 = out.s0;
      out.gbm.days = out.days;
    }
  }

  void output_dir(const tvalue* t, const std::string& table, std::string& out) {
    if (auto* v = find(t, "dir")) {
      if (auto s = string(*v, table, "dir")) {
        if (s->empty())
          fail_field(*v, table, "dir", "is empty; give a directory path");
        else
          out = config::resolve_path(file(), *s);
      }
    }
  }

  void seed(const tvalue* t, const std::string& table, uint64_t& out) {
    if (auto* v = find(t, "seed"))
      if (auto x = integer(*v, table, "seed", 0,
                           std::numeric_limits<int64_t>::max()))
        out = static_cast<uint64_t>(*x);
  }

  // -- the grid ------------------------------------------------------------------

  struct located_axis {
    grid_axis axis;
    const tvalue* where;
  };

  std::optional<grid_axis> axis(const std::string& name, const tvalue& v) {
    const std::string table = "grid";
    grid_axis out;
    out.name = name;
    if (v.is_array()) {
      auto& arr = v.as_array();
      if (arr.empty()) {
        fail_field(v, table, name,
                   "empty list; give at least one value, e.g. [5, 10, 20]");
        return std::nullopt;
      }
      bool good = true;
      for (size_t i = 0; i < arr.size(); ++i) {
        auto& e = arr[i];
        if (!e.is_integer() && !e.is_floating()) {
          fail_field(e, table, name,
                     fmt::format("element {} must be a number, not {}", i + 1,
                                 config::kind_name(e)));
          good = false;
          continue;
        }
        if (auto x = number(e, table, name))
          out.values.push_back(*x);
        else
          good = false;
      }
      if (!good)
        return std::nullopt;
    } else if (v.is_table()) {
      check_keys(v, table + "." + name, {"from", "to", "step"});
      std::optional<double> r[3];
      const char* keys[3] = {"from", "to", "step"};
      for (int i = 0; i < 3; ++i) {
        auto* x = find(&v, keys[i]);
        if (!x)
          fail_field(v, table, name,
                     fmt::format("range lacks '{}'; write {{ from = 5, to = 50, "
                                 "step = 5 }}", keys[i]));
        else
          r[i] = number(*x, table, fmt::format("{}.{}", name, keys[i]));
      }
      if (!r[0] || !r[1] || !r[2])
        return std::nullopt;
      auto [from, to, step] = std::tuple{*r[0], *r[1], *r[2]};
      if (step <= 0) {
        fail_field(v, table, name,
                   fmt::format("range step {} must be positive", step));
        return std::nullopt;
      }
      if (from > to) {
        fail_field(v, table, name,
                   fmt::format("range from {} is greater than to {}; swap "
                               "them", from, to));
        return std::nullopt;
      }
      // Count with a little slack so that e.g. 0 to 1 step 0.1 includes 1.
      const double span = (to - from) / step;
      if (span + 1 > static_cast<double>(max_axis_values)) {
        fail_field(v, table, name,
                   fmt::format("range yields about {:.0f} values, more than "
                               "{}; use a larger step", span + 1,
                               max_axis_values));
        return std::nullopt;
      }
      const auto count = static_cast<size_t>(std::floor(span + 1e-9)) + 1;
      for (size_t i = 0; i < count; ++i)
        out.values.push_back(std::min(to, from + static_cast<double>(i) * step));
    } else if (v.is_integer() || v.is_floating()) {
      if (auto x = number(v, table, name))
        out.values.push_back(*x);
      else
        return std::nullopt;
    } else {
      fail_field(v, table, name,
                 fmt::format("must be a list like [5, 10, 20] or a range like "
                             "{{ from = 5, to = 50, step = 5 }}, not {}",
                             config::kind_name(v)));
      return std::nullopt;
    }
    // The values themselves.
    std::set<double> seen;
    for (double x : out.values) {
      if (name == "fee" ? x < 0 : (x < 1 || x != std::floor(x) || x > 1e9)) {
        fail_field(v, table, name,
                   name == "fee"
                     ? fmt::format("value {} must be zero or positive", x)
                     : fmt::format("value {} is not a whole number of bars "
                                   "(1 or more)", x));
        return std::nullopt;
      }
      if (!seen.insert(x).second) {
        fail_field(v, table, name,
                   fmt::format("value {} appears twice; list each value once",
                               x));
        return std::nullopt;
      }
    }
    return out;
  }

  /// The [grid] table: axes in file order.
  std::vector<grid_axis> grid(const tvalue* t) {
    std::vector<located_axis> axes;
    for (auto& [key, v] : t->as_table()) {
      if (key != "fast" && key != "slow" && key != "fee") {
        fail(v, fmt::format("[grid] unknown grid parameter '{}' (known: {})",
                            key, known_list({"fast", "slow", "fee"}, key)));
        continue;
      }
      if (auto a = axis(key, v))
        axes.push_back({std::move(*a), &v});
    }
    std::sort(axes.begin(), axes.end(), [](auto& a, auto& b) {
      auto la = a.where->location(), lb = b.where->location();
      return std::pair{la.line(), la.column()} < std::pair{lb.line(), lb.column()};
    });
    std::vector<grid_axis> out;
    for (auto& a : axes)
      out.push_back(std::move(a.axis));
    return out;
  }

};

template <class Config, class F>
caf::expected<Config> parse_config(const std::string& path, F body) {
  auto root = config::parse_toml_file(path);
  if (!root)
    return std::move(root.error());
  reader r{path};
  Config cfg;
  cfg.file = path;
  body(r, *root, cfg);
  if (!r.ok())
    return r.error();
  return cfg;
}

/// Parameter sets with fast < slow, counted without expanding the grid.
double valid_sets(const std::vector<grid_axis>& grid,
                  const crossover_params& base) {
  std::vector<double> fast{static_cast<double>(base.fast)};
  std::vector<double> slow{static_cast<double>(base.slow)};
  double others = 1;
  for (auto& a : grid) {
    if (a.name == "fast")
      fast = a.values;
    else if (a.name == "slow")
      slow = a.values;
    else
      others *= static_cast<double>(a.values.size());
  }
  std::sort(slow.begin(), slow.end());
  double pairs = 0;
  for (double f : fast)
    pairs += static_cast<double>(
      slow.end() - std::upper_bound(slow.begin(), slow.end(), f));
  return pairs * others;
}

} // namespace

caf::expected<sweep_config> load_sweep_config(const std::string& path) {
  return parse_config<sweep_config>(path, [](reader& r, const tvalue& root,
                                             sweep_config& cfg) {
    r.check_tables(root, {"data", "strategy", "grid", "output", "run"});
    // [data]
    if (auto* t = r.table(root, "data"))
      r.data_table(t, "data", {"csv", "gbm", "bootstrap"}, cfg.data);
    else if (!root.as_table().count("data"))
      r.fail(root, "missing table [data]: say where the bars come from, e.g. "
                   "[data] source = \"csv\" csv = \"bars.csv\"");
    // [grid] first: [strategy] must not repeat an axis.
    std::set<std::string> axes;
    const tvalue* grid = r.table(root, "grid");
    if (grid) {
      cfg.grid = r.grid(grid);
      for (auto& a : cfg.grid)
        axes.insert(a.name);
      if (grid->as_table().empty())
        r.fail(*grid, "[grid] is empty: give at least one of fast, slow, fee "
                      "as a list [5, 10] or a range { from = 5, to = 50, "
                      "step = 5 }");
    } else if (!root.as_table().count("grid")) {
      r.fail(root, "missing table [grid]: the sweep needs at least one "
                   "parameter axis, e.g. [grid] fast = [5, 10] slow = "
                   "{ from = 20, to = 100, step = 10 }");
    }
    // [strategy]
    if (auto* t = r.table(root, "strategy")) {
      r.check_keys(*t, "strategy", {"fast", "slow", "fee", "cash"});
      for (auto& key : {"fast", "slow", "fee"})
        if (auto* v = reader::find(t, key); v && axes.count(key))
          r.fail_field(*v, "strategy", key,
                       "is also a [grid] axis; set it in one place only");
      r.positive_or_zero(reader::find(t, "fee"), "strategy", "fee", true,
                         cfg.base.fee);
      r.positive_or_zero(reader::find(t, "cash"), "strategy", "cash", false,
                         cfg.base.cash);
      for (auto& key : {"fast", "slow"})
        if (auto* v = reader::find(t, key))
          if (auto x = r.integer(*v, "strategy", key, 1, 1'000'000'000))
            (std::string{key} == "fast" ? cfg.base.fast : cfg.base.slow) =
              static_cast<size_t>(*x);
    }
    // [output]
    if (auto* t = r.table(root, "output")) {
      r.check_keys(*t, "output", {"dir", "rank_by"});
      r.output_dir(t, "output", cfg.output_dir);
      if (auto* v = reader::find(t, "rank_by"))
        if (auto s = r.choice(*v, "output", "rank_by",
                              {"sharpe", "total_return", "max_drawdown",
                               "final_equity"}))
          cfg.rank_by = *s;
    }
    // [run]
    if (auto* t = r.table(root, "run")) {
      r.check_keys(*t, "run", {"seed"});
      r.seed(t, "run", cfg.seed);
    }
    // The grid as a whole (only when its parts were fine).
    if (r.ok() && !cfg.grid.empty()) {
      double total = 1;
      for (auto& a : cfg.grid)
        total *= static_cast<double>(a.values.size());
      if (total > max_parameter_sets)
        r.fail(*grid, fmt::format("[grid] expands to {:.0f} parameter sets, "
                                  "more than {:.0f}; narrow the axes",
                                  total, max_parameter_sets));
      else if (valid_sets(cfg.grid, cfg.base) == 0)
        r.fail(*grid, fmt::format(
                        "[grid] has no parameter set with fast < slow (fast "
                        "{}, slow {}); every run would be skipped",
                        axes.count("fast") ? "from the grid"
                                           : std::to_string(cfg.base.fast),
                        axes.count("slow") ? "from the grid"
                                           : std::to_string(cfg.base.slow)));
    }
  });
}

caf::expected<montecarlo_config> load_montecarlo_config(const std::string& path) {
  return parse_config<montecarlo_config>(path, [](reader& r, const tvalue& root,
                                                  montecarlo_config& cfg) {
    r.check_tables(root, {"model", "simulation", "portfolio", "output"});
    // [model]
    if (auto* t = r.table(root, "model"))
      r.data_table(t, "model", {"gbm", "bootstrap"}, cfg.model);
    else if (!root.as_table().count("model"))
      r.fail(root, "missing table [model]: say how paths are simulated, e.g. "
                   "[model] source = \"gbm\" mu = 0.05 sigma = 0.2 days = 10");
    // [simulation]
    if (auto* t = r.table(root, "simulation")) {
      r.check_keys(*t, "simulation", {"paths", "seed"});
      if (auto* v = reader::find(t, "paths"))
        if (auto x = r.integer(*v, "simulation", "paths", 1, max_paths))
          cfg.paths = static_cast<size_t>(*x);
      r.seed(t, "simulation", cfg.seed);
    }
    // [portfolio]
    if (auto* t = r.table(root, "portfolio")) {
      r.check_keys(*t, "portfolio", {"strategy", "cash", "fee", "fast", "slow"});
      if (auto* v = reader::find(t, "strategy"))
        if (auto s = r.choice(*v, "portfolio", "strategy",
                              {"buy_and_hold", "ma_crossover"}))
          cfg.strategy = *s;
      r.positive_or_zero(reader::find(t, "cash"), "portfolio", "cash", false,
                         cfg.params.cash);
      r.positive_or_zero(reader::find(t, "fee"), "portfolio", "fee", true,
                         cfg.params.fee);
      bool crossover = cfg.strategy == "ma_crossover";
      bool both = true;
      for (auto& key : {"fast", "slow"}) {
        auto* v = reader::find(t, key);
        if (!v) {
          both = false;
          if (crossover)
            r.fail(*t, fmt::format("[portfolio] field '{}': missing; strategy "
                                   "\"ma_crossover\" needs fast and slow "
                                   "(e.g. fast = 5, slow = 20)", key));
          continue;
        }
        if (!crossover) {
          both = false;
          r.fail_field(*v, "portfolio", key,
                       fmt::format("applies only to strategy = "
                                   "\"ma_crossover\", not \"{}\"; remove it",
                                   cfg.strategy));
          continue;
        }
        if (auto x = r.integer(*v, "portfolio", key, 1, 1'000'000'000))
          (std::string{key} == "fast" ? cfg.params.fast : cfg.params.slow) =
            static_cast<size_t>(*x);
        else
          both = false;
      }
      if (crossover && both && cfg.params.fast >= cfg.params.slow)
        r.fail_field(*reader::find(t, "fast"), "portfolio", "fast",
                     fmt::format("fast {} must be less than slow {}",
                                 cfg.params.fast, cfg.params.slow));
    }
    // [output]
    if (auto* t = r.table(root, "output")) {
      r.check_keys(*t, "output", {"dir"});
      r.output_dir(t, "output", cfg.output_dir);
    }
  });
}

std::vector<crossover_params> expand_grid(const sweep_config& cfg,
                                          size_t& skipped) {
  skipped = 0;
  std::vector<crossover_params> out;
  if (cfg.grid.empty())
    return out;
  for (auto& a : cfg.grid)
    if (a.values.empty())
      return out;
  // An odometer over the axes; the last axis turns fastest.
  std::vector<size_t> at(cfg.grid.size(), 0);
  for (;;) {
    crossover_params p = cfg.base;
    for (size_t i = 0; i < cfg.grid.size(); ++i) {
      const auto& a = cfg.grid[i];
      const double x = a.values[at[i]];
      if (a.name == "fast")
        p.fast = static_cast<size_t>(x);
      else if (a.name == "slow")
        p.slow = static_cast<size_t>(x);
      else if (a.name == "fee")
        p.fee = x;
    }
    if (p.fast >= p.slow)
      ++skipped;
    else
      out.push_back(p);
    size_t i = cfg.grid.size();
    while (i > 0) {
      --i;
      if (++at[i] < cfg.grid[i].values.size())
        break;
      at[i] = 0;
      if (i == 0)
        return out;
    }
  }
}

caf::expected<bar_series> load_data(const data_source& src, uint64_t seed) {
  switch (src.kind) {
    case data_source::kind_t::csv:
      return load_csv(src.csv);
    case data_source::kind_t::gbm:
      return generate_gbm(src.gbm, seed);
    case data_source::kind_t::bootstrap: {
      auto source = load_csv(src.csv);
      if (!source)
        return source.error();
      if (source->size() < 2)
        return make_error(errc::data_invalid,
                          fmt::format("{}: bootstrap needs at least 2 bars (1 "
                                      "return) in the source, found {}",
                                      src.csv, source->size()));
      return bootstrap(*source, src.days, src.s0, seed);
    }
  }
  return make_error(errc::config_invalid, "unknown data source kind");
}

} // namespace mycelium::backtest
