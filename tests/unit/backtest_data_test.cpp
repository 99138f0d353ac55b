// The pure C++ half of the backtest driver (no actors): CSV market data, ISO
// dates, the PRNG and synthetic paths, metrics and risk summaries, the
// reference moving-average crossover and the TOML configs with their errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <regex>
#include <string>
#include <vector>

#include <unistd.h>

#include "mycelium/backtest/backtest_config.hpp"
#include "mycelium/backtest/crossover.hpp"
#include "mycelium/backtest/market_data.hpp"
#include "mycelium/backtest/metrics.hpp"
#include "mycelium/backtest/synthetic.hpp"
#include "mycelium/errc.hpp"

using namespace mycelium;
using namespace mycelium::backtest;
namespace fs = std::filesystem;

namespace {

const std::string data_dir = std::string{MYCELIUM_TEST_DATA_DIR} + "/backtest";

/// A fresh directory under the system temp dir, removed at scope exit.
struct temp_dir {
  fs::path path;
  temp_dir() {
    static int counter = 0;
    path = fs::temp_directory_path()
           / ("mycelium_backtest_test_" + std::to_string(::getpid()) + "_"
              + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  /// Writes `text` byte for byte to `name` and returns the full path.
  std::string write(const std::string& name, const std::string& text) const {
    auto p = path / name;
    fs::create_directories(p.parent_path());
    std::ofstream out{p, std::ios::binary};
    out << text;
    return p.string();
  }
};

/// The rendered error of a CSV that must fail to load.
std::string csv_error(const std::string& path) {
  auto r = load_csv(path);
  REQUIRE_FALSE(r);
  CHECK(r.error() == make_error(errc::data_invalid));
  return render(r.error());
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

#define CHECK_CONTAINS(text, part)                                             \
  CHECK_MESSAGE(contains(text, part), "'" << (part) << "' not in: " << (text))

} // namespace

// -- ISO dates -----------------------------------------------------------------

TEST_CASE("backtest: ISO dates convert both ways, leap years included") {
  CHECK(parse_iso_date("1970-01-01") == 0);
  CHECK(parse_iso_date("1970-01-02") == 1);
  CHECK(parse_iso_date("2000-01-01") == 10957);
  CHECK(parse_iso_date("2000-01-03") == 10959);
  CHECK(parse_iso_date("2020-04-17") == 18369);
  CHECK(format_iso_date(0) == "1970-01-01");
  CHECK(format_iso_date(10957) == "2000-01-01");
  CHECK(format_iso_date(-1) == "1969-12-31");
  // Leap years: divisible by 4, except centuries, except every 400 years.
  CHECK(parse_iso_date("2000-02-29") == parse_iso_date("2000-02-28") + 1);
  CHECK(parse_iso_date("2000-03-01") == parse_iso_date("2000-02-29") + 1);
  CHECK(parse_iso_date("2024-02-29") > 0);
  CHECK(parse_iso_date("2023-02-29") == -1);
  CHECK(parse_iso_date("1900-02-29") == -1);
  CHECK(parse_iso_date("2100-02-29") == -1);
  CHECK(parse_iso_date("2100-03-01") - parse_iso_date("2100-02-28") == 1);
  CHECK(parse_iso_date("2001-01-01") - parse_iso_date("2000-01-01") == 366);
  CHECK(parse_iso_date("1901-01-01") - parse_iso_date("1900-01-01") == 365);
  // Every day of 1600..2400 round-trips, consecutively.
  const int64_t first = parse_iso_date("1600-01-01");
  const int64_t last = parse_iso_date("2400-12-31");
  REQUIRE(last - first == 146097 * 2 + 365); // two 400-year cycles + 2400
  bool all_ok = true;
  for (int64_t d = first; d <= last && all_ok; ++d)
    all_ok = parse_iso_date(format_iso_date(d)) == d;
  CHECK(all_ok);
  // Not ISO.
  for (const char* bad : {"", "2020-1-02", "2020-01-2", "20200102", "2020/01/02",
                          "2020-13-01", "2020-00-10", "2020-01-00",
                          "2020-01-32", "2020-04-31", " 2020-01-02",
                          "2020-01-02 ", "2020-01-02T00:00", "2O20-01-02",
                          "02.01.2020"})
    CHECK_MESSAGE(parse_iso_date(bad) == -1, bad);
}

// -- CSV loading ---------------------------------------------------------------

TEST_CASE("backtest: load_csv reads columns by name, in any order") {
  temp_dir tmp;
  SUBCASE("extra columns ignored, order free, names case-insensitive") {
    auto p = tmp.write("a.csv",
                       "Symbol,Close,Volume,Date,Low,High,Open,Note\n"
                       "X,101.5,1000,2021-03-01,99,102,100,hello\n"
                       "X,102,2000,2021-03-02,100.5,103,101.5,\n");
    auto r = load_csv(p);
    REQUIRE_MESSAGE(r, (r ? "" : render(r.error())));
    REQUIRE(r->size() == 2);
    auto& b = (*r)[0];
    CHECK(b.day == parse_iso_date("2021-03-01"));
    CHECK(b.open == 100);
    CHECK(b.high == 102);
    CHECK(b.low == 99);
    CHECK(b.close == 101.5);
    CHECK(b.volume == 1000);
    CHECK((*r)[1].day == b.day + 1);
    CHECK((*r)[1].volume == 2000);
  }
  SUBCASE("volume is optional") {
    auto p = tmp.write("b.csv", "date,open,high,low,close\n"
                                "2021-03-01,1,2,0.5,1.5\n");
    auto r = load_csv(p);
    REQUIRE(r);
    CHECK((*r)[0].volume == 0);
    CHECK((*r)[0].close == 1.5);
  }
  SUBCASE("BOM, CRLF, quotes, spaces, blank lines, no final newline") {
    auto p = tmp.write("c.csv", "\xEF\xBB\xBF\"date\", open ,high,low,close\r\n"
                                "\r\n"
                                "\"2021-03-01\", 1e1 ,\"12\",+9,10.25\r\n"
                                "2021-03-05,10,11,9,10.5");
    auto r = load_csv(p);
    REQUIRE_MESSAGE(r, (r ? "" : render(r.error())));
    REQUIRE(r->size() == 2);
    CHECK((*r)[0].open == 10);
    CHECK((*r)[0].high == 12);
    CHECK((*r)[0].low == 9);
    CHECK((*r)[1].close == 10.5);
    CHECK((*r)[1].day - (*r)[0].day == 4);
  }
}

TEST_CASE("backtest: every CSV error names file, line and column") {
  temp_dir tmp;
  const std::string head = "date,open,high,low,close,volume\n";
  const std::string row1 = "2021-03-01,10,11,9,10.5,100\n";
  SUBCASE("missing file") {
    auto p = (tmp.path / "nope.csv").string();
    auto e = csv_error(p);
    CHECK_CONTAINS(e, p);
    CHECK_CONTAINS(e, "does not exist");
  }
  SUBCASE("a directory") {
    auto e = csv_error(tmp.path.string());
    CHECK_CONTAINS(e, "is a directory");
  }
  SUBCASE("unreadable file") {
    auto p = tmp.write("locked.csv", head + row1);
    fs::permissions(p, fs::perms::none);
    if (::geteuid() == 0) {
      MESSAGE("running as root: permissions are not enforced, skipped");
    } else {
      auto e = csv_error(p);
      CHECK_CONTAINS(e, "cannot open");
    }
    fs::permissions(p, fs::perms::owner_all);
  }
  SUBCASE("empty file") {
    auto p = tmp.write("empty.csv", "");
    auto e = csv_error(p);
    CHECK_CONTAINS(e, p + ":1: the file is empty");
  }
  SUBCASE("header only") {
    auto p = tmp.write("head.csv", head);
    CHECK_CONTAINS(csv_error(p), p + ":1: no data rows");
  }
  SUBCASE("missing required column") {
    auto p = tmp.write("nocol.csv", "date,open,high,low,volume\n" + row1);
    auto e = csv_error(p);
    CHECK_CONTAINS(e, p + ":1: header lacks required column(s) 'close'");
  }
  SUBCASE("several missing columns, e.g. no header row at all") {
    auto p = tmp.write("nohead.csv", row1 + row1);
    auto e = csv_error(p);
    CHECK_CONTAINS(e, p + ":1: header lacks required column(s) 'date', "
                          "'open', 'high', 'low', 'close'");
  }
  SUBCASE("duplicate column") {
    auto p = tmp.write("dup.csv", "date,open,high,low,close,Close\n" + row1);
    CHECK_CONTAINS(csv_error(p), p + ":1: column 'close' appears twice in the "
                                     "header (columns 5 and 6)");
  }
  SUBCASE("wrong field count") {
    auto p = tmp.write("short.csv", head + row1 + "2021-03-02,10,11,9,10.5\n");
    CHECK_CONTAINS(csv_error(p),
                   p + ":3: expected 6 fields as in the header, found 5");
    p = tmp.write("long.csv", head + row1 + "2021-03-02,10,11,9,10.5,1,2\n");
    CHECK_CONTAINS(csv_error(p),
                   p + ":3: expected 6 fields as in the header, found 7");
  }
  SUBCASE("malformed number") {
    auto p = tmp.write("num.csv", head + row1 + "2021-03-02,10,1l,9,10.5,100\n");
    CHECK_CONTAINS(csv_error(p), p + ":3: column 'high' (field 3): '1l' is not "
                                     "a finite number");
    p = tmp.write("empty_cell.csv", head + "2021-03-02,10,11,9,,100\n");
    CHECK_CONTAINS(csv_error(p), p + ":2: column 'close' (field 5): '' is not "
                                     "a finite number");
    p = tmp.write("nan.csv", head + "2021-03-02,nan,11,9,10,100\n");
    CHECK_CONTAINS(csv_error(p), p + ":2: column 'open' (field 2): 'nan'");
    p = tmp.write("comma.csv", head + "2021-03-02,\"10,5\",11,9,10,100\n");
    CHECK_CONTAINS(csv_error(p), p + ":2: column 'open' (field 2): '10,5'");
  }
  SUBCASE("prices must be positive, volume not negative") {
    auto p = tmp.write("neg.csv", head + "2021-03-02,10,11,0,10,100\n");
    CHECK_CONTAINS(csv_error(p),
                   p + ":2: column 'low' (field 4): 0 must be positive");
    p = tmp.write("negvol.csv", head + "2021-03-02,10,11,9,10,-5\n");
    CHECK_CONTAINS(csv_error(p), p + ":2: column 'volume' (field 6): -5 must be "
                                     "zero or positive");
  }
  SUBCASE("date not ISO") {
    auto p = tmp.write("date.csv", head + row1 + "03/02/2021,10,11,9,10.5,1\n");
    CHECK_CONTAINS(csv_error(p), p + ":3: column 'date': '03/02/2021' is not "
                                     "an ISO date YYYY-MM-DD");
    p = tmp.write("feb.csv", head + "2021-02-29,10,11,9,10.5,1\n");
    CHECK_CONTAINS(csv_error(p), p + ":2: column 'date': '2021-02-29'");
  }
  SUBCASE("dates not ascending, or repeated") {
    auto p = tmp.write("order.csv",
                       head + row1 + "2021-02-28,10,11,9,10.5,1\n");
    CHECK_CONTAINS(csv_error(p), p + ":3: column 'date': 2021-02-28 is not "
                                     "after the previous row's 2021-03-01");
    p = tmp.write("same.csv", head + row1 + row1);
    CHECK_CONTAINS(csv_error(p), p + ":3: column 'date': 2021-03-01 is not "
                                     "after");
  }
  SUBCASE("blank lines still count for line numbers") {
    auto p = tmp.write("blank.csv", head + row1 + "\n\n2021-03-04,x,1,1,1,1\n");
    CHECK_CONTAINS(csv_error(p), p + ":5: column 'open'");
  }
  SUBCASE("unterminated quote") {
    auto p = tmp.write("quote.csv", head + "\"2021-03-01,10,11,9,10.5,100\n");
    CHECK_CONTAINS(csv_error(p), p + ":2: unterminated double quote");
  }
  SUBCASE("binary garbage") {
    auto p = tmp.write("bin.csv", std::string{"date,open,high,low,close\n1\0,2",
                                              29});
    CHECK_CONTAINS(csv_error(p), p + ":2: contains a NUL byte");
  }
}

TEST_CASE("backtest: the real S&P 500 file (vega-datasets) loads as it is") {
  auto r = load_csv(data_dir + "/sp500-2000.csv");
  REQUIRE_MESSAGE(r, (r ? "" : render(r.error())));
  REQUIRE(r->size() == 5105);
  CHECK(format_iso_date(r->front().day) == "2000-01-03");
  CHECK(format_iso_date(r->back().day) == "2020-04-17");
  CHECK(r->front().open == 1469.25);
  CHECK(r->front().close == 1455.219971);
  CHECK(r->back().close == 2874.560059);
  CHECK(r->back().volume == 5792140000.0);
  bool sane = true;
  for (auto& b : *r)
    sane = sane && b.low <= std::min(b.open, b.close)
           && b.high >= std::max(b.open, b.close);
  CHECK(sane);
}

// -- the PRNG and synthetic paths ----------------------------------------------

TEST_CASE("backtest: rng is xoshiro256** seeded by splitmix64, pinned") {
  // Seed 1: splitmix64(1) fills the state; these are the first outputs
  // (checked once against the reference C code of Blackman and Vigna).
  rng g{1};
  CHECK(g.next() == 0xB3F2AF6D0FC710C5ull);
  CHECK(g.next() == 0x853B559647364CEAull);
  CHECK(g.next() == 0x92F89756082A4514ull);
  CHECK(g.next() == 0x642E1C7BC266A3A7ull);
  rng u{1};
  CHECK(u.uniform() == static_cast<double>(0xB3F2AF6D0FC710C5ull >> 11) * 0x1p-53);
  CHECK(u.uniform() == doctest::Approx(0.5204366).epsilon(1e-6));
  rng n{1};
  CHECK(n.normal() == doctest::Approx(-1.5452228371402943).epsilon(1e-13));
  CHECK(n.normal() == doctest::Approx(-0.19951530557849143).epsilon(1e-13));
  CHECK(n.normal() == doctest::Approx(-1.0136476397283942).epsilon(1e-13));
  // Same seed, same stream; another seed, another stream.
  rng a{42}, b{42}, c{43};
  bool same = true, differs = false;
  for (int i = 0; i < 1000; ++i) {
    auto x = a.next();
    same = same && x == b.next();
    differs = differs || x != c.next();
  }
  CHECK(same);
  CHECK(differs);
}

TEST_CASE("backtest: rng uniform, below and normal have the right shape") {
  rng g{2024};
  const int n = 1'000'000;
  double sum = 0, sq = 0;
  for (int i = 0; i < n; ++i) {
    double z = g.normal();
    sum += z;
    sq += z * z;
  }
  const double mean = sum / n;
  const double var = sq / n - mean * mean;
  // Standard errors: 1/sqrt(n) = 0.001 for the mean, sqrt(2/n) = 0.0014 for
  // the variance; allow five.
  CHECK(std::abs(mean) < 0.005);
  CHECK(std::abs(var - 1.0) < 0.007);

  double usum = 0, umin = 1, umax = 0;
  for (int i = 0; i < n; ++i) {
    double x = g.uniform();
    usum += x;
    umin = std::min(umin, x);
    umax = std::max(umax, x);
  }
  CHECK(umin >= 0.0);
  CHECK(umax < 1.0);
  CHECK(std::abs(usum / n - 0.5) < 0.0015); // 5 x sqrt(1/12/n)

  std::vector<int> counts(7, 0);
  bool in_range = true;
  for (int i = 0; i < 70'000; ++i) {
    auto k = g.below(7);
    in_range = in_range && k < 7;
    if (k < 7)
      ++counts[k];
  }
  CHECK(in_range);
  for (int c : counts)
    CHECK(std::abs(c - 10'000) < 500); // sd is about 93
  CHECK(g.below(1) == 0);
  CHECK(g.below(0) == 0);
}

TEST_CASE("backtest: derive_seed gives distinct, stable instance seeds") {
  std::set<uint64_t> seeds;
  for (uint64_t i = 0; i < 10'000; ++i)
    seeds.insert(derive_seed(7, i));
  CHECK(seeds.size() == 10'000);
  CHECK(derive_seed(7, 3) == derive_seed(7, 3));
  CHECK(derive_seed(7, 3) != derive_seed(8, 3));
  CHECK(derive_seed(1, 0) == 7806873273932414515ull); // pinned
}

TEST_CASE("backtest: GBM log returns have mean (mu - sigma^2/2)dt, variance "
          "sigma^2 dt") {
  gbm_params p;
  p.s0 = 50;
  p.mu = 0.08;
  p.sigma = 0.3;
  p.days = 252;
  p.start_day = parse_iso_date("2010-01-04");
  const double dt = 1.0 / 252;
  const size_t paths = 2000;
  double sum = 0, sq = 0;
  size_t count = 0;
  bool shape_ok = true;
  for (size_t k = 0; k < paths; ++k) {
    auto s = generate_gbm(p, derive_seed(99, k));
    REQUIRE(s.size() == p.days);
    for (size_t i = 0; i < s.size(); ++i) {
      auto& b = s[i];
      shape_ok = shape_ok && b.day == p.start_day + static_cast<int64_t>(i)
                 && b.open == (i == 0 ? p.s0 : s[i - 1].close)
                 && b.high == std::max(b.open, b.close)
                 && b.low == std::min(b.open, b.close) && b.volume == 0;
      const double r = std::log(b.close / b.open);
      sum += r;
      sq += r * r;
      ++count;
    }
  }
  CHECK(shape_ok);
  const double n = static_cast<double>(count);
  const double mean = sum / n;
  const double var = sq / n - mean * mean;
  const double want_mean = (p.mu - p.sigma * p.sigma / 2) * dt;
  const double want_var = p.sigma * p.sigma * dt;
  // Standard errors over n = 504,000 returns; allow five.
  CHECK(std::abs(mean - want_mean) < 5 * std::sqrt(want_var / n));
  CHECK(std::abs(var - want_var) < 5 * want_var * std::sqrt(2 / n));
  // Same seed, same path.
  auto a = generate_gbm(p, 5), b = generate_gbm(p, 5), c = generate_gbm(p, 6);
  CHECK(a.back().close == b.back().close);
  CHECK(a.back().close != c.back().close);
}

TEST_CASE("backtest: bootstrap resamples only the source's returns") {
  bar_series src;
  const double closes[] = {100, 103, 101, 106, 104, 110};
  for (size_t i = 0; i < 6; ++i)
    src.push_back({static_cast<int64_t>(i), closes[i], closes[i], closes[i],
                   closes[i], 0});
  std::vector<double> returns;
  for (size_t i = 1; i < 6; ++i)
    returns.push_back(std::log(closes[i] / closes[i - 1]));
  auto path = bootstrap(src, 1000, 20.0, 11, 500);
  REQUIRE(path.size() == 1000);
  CHECK(path.front().open == 20.0);
  CHECK(path.front().day == 500);
  std::vector<int> used(returns.size(), 0);
  bool only_source = true, chained = true;
  for (size_t i = 0; i < path.size(); ++i) {
    const double r = std::log(path[i].close / path[i].open);
    auto it = std::find_if(returns.begin(), returns.end(), [&](double x) {
      return std::abs(x - r) < 1e-12;
    });
    only_source = only_source && it != returns.end();
    if (it != returns.end())
      ++used[static_cast<size_t>(it - returns.begin())];
    if (i > 0)
      chained = chained && path[i].open == path[i - 1].close;
  }
  CHECK(only_source);
  CHECK(chained);
  for (int u : used)
    CHECK(u > 150); // each about 200 times
  // Determinism and the minimum source.
  CHECK(bootstrap(src, 50, 1, 3).back().close
        == bootstrap(src, 50, 1, 3).back().close);
  CHECK(bootstrap(bar_series{src.front()}, 10, 1, 3).empty());
}

// -- metrics ---------------------------------------------------------------------

TEST_CASE("backtest: compute_metrics on hand-computed equity curves") {
  SUBCASE("up 10 %, down 10 %, up 10 %") {
    // Daily returns from 100: +0.1, -0.1, +0.1. Mean 1/30; sample variance
    // ((1/15)^2 * 2 + (2/15)^2) / 2 = 1/75; mean/sd = sqrt(75)/30 =
    // 1/sqrt(12); Sharpe = sqrt(252/12) = sqrt(21).
    auto m = compute_metrics(100, {110, 99, 108.9}, 4);
    CHECK(m.final_equity == 108.9);
    CHECK(m.total_return == doctest::Approx(0.089));
    CHECK(m.sharpe == doctest::Approx(std::sqrt(21.0)).epsilon(1e-12));
    CHECK(m.max_drawdown == doctest::Approx(0.1)); // 110 -> 99
    CHECK(m.trades == 4);
  }
  SUBCASE("drawdown counts from the initial cash and picks the deepest") {
    // Peaks 100 then 120; troughs 80 (-20 %) and 90 (-25 %).
    auto m = compute_metrics(100, {80, 120, 90, 125}, 0);
    CHECK(m.max_drawdown == doctest::Approx(0.25));
    CHECK(m.total_return == doctest::Approx(0.25));
  }
  SUBCASE("flat curve: Sharpe 0, drawdown 0") {
    auto m = compute_metrics(1000, std::vector<double>(20, 1000.0), 0);
    CHECK(m.sharpe == 0);
    CHECK(m.max_drawdown == 0);
    CHECK(m.total_return == 0);
  }
  SUBCASE("empty curve") {
    auto m = compute_metrics(1000, {}, 0);
    CHECK(m.final_equity == 1000);
    CHECK(m.sharpe == 0);
  }
}

TEST_CASE("backtest: summarize_pnl quantiles, VaR and CVaR by hand") {
  SUBCASE("-50 .. 49, shuffled") {
    std::vector<double> pnl;
    for (int i = 0; i < 100; ++i)
      pnl.push_back((i * 37) % 100 - 50); // a permutation of -50..49
    auto s = summarize_pnl(pnl);
    CHECK(s.samples == 100);
    CHECK(s.min == -50);
    CHECK(s.max == 49);
    CHECK(s.mean == -0.5);
    // Sample variance of 100 consecutive integers: n(n+1)/12 = 841.67.
    CHECK(s.stddev == doctest::Approx(std::sqrt(100.0 * 101 / 12)));
    // 95 %: k = ceil(100 * 0.05) = 5th smallest = -46; tail -50..-46.
    CHECK(s.var95 == 46);
    CHECK(s.cvar95 == 48);
    // 99 %: k = 1, the minimum.
    CHECK(s.var99 == 50);
    CHECK(s.cvar99 == 50);
  }
  SUBCASE("n = 30 with ties: k = ceil(1.5) = 2, ties all in the tail") {
    std::vector<double> pnl(27, 5.0);
    pnl.push_back(-10);
    pnl.push_back(-4);
    pnl.push_back(-4);
    auto s = summarize_pnl(pnl);
    CHECK(s.var95 == 4);                              // 2nd smallest is -4
    CHECK(s.cvar95 == doctest::Approx(18.0 / 3));     // (-10 - 4 - 4) / 3
    CHECK(s.var99 == 10);
    CHECK(s.cvar99 == 10);
  }
  SUBCASE("all gains: VaR is a negative loss; zero prints as 0") {
    auto s = summarize_pnl({0, 1, 2});
    CHECK(s.var95 == 0);
    CHECK_FALSE(std::signbit(s.var95));
    auto g = summarize_pnl({3, 4});
    CHECK(g.var95 == -3);
    CHECK(g.cvar95 == -3);
  }
  SUBCASE("empty") {
    auto s = summarize_pnl({});
    CHECK(s.samples == 0);
    CHECK(s.var95 == 0);
  }
}

// -- the crossover ------------------------------------------------------------------

TEST_CASE("backtest: crossover trades and equity on a hand-checkable CSV") {
  // tests/data/backtest/crossover_small.csv, fast = 2, slow = 4, fee = 1,
  // cash = 1000. All closes are integers and opens halves, so every sum and
  // price below is exact in binary floating point.
  //
  //  t  date        open   close  fast SMA          slow SMA              want
  //  0  2020-01-02  10     10     -                 -                     -
  //  1  2020-01-03  10     10     -                 -                     -
  //  2  2020-01-06  10     10     -                 -                     -
  //  3  2020-01-07  10     10     (10+10)/2 = 10    (10+10+10+10)/4 = 10  flat (10 > 10 is false)
  //  4  2020-01-08  10     12     (10+12)/2 = 11    (10+10+10+12)/4 = 10.5  LONG -> buy at t5 open
  //  5  2020-01-09  12.5   13     12.5              (10+10+12+13)/4 = 11.25 long
  //  6  2020-01-10  13     14     13.5              (10+12+13+14)/4 = 12.25 long
  //  7  2020-01-13  14     12     13                (12+13+14+12)/4 = 12.75 long
  //  8  2020-01-14  12     9      10.5              (13+14+12+9)/4 = 12     FLAT -> sell at t9 open
  //  9  2020-01-15  9      8      8.5               (14+12+9+8)/4 = 10.75   flat
  // 10  2020-01-16  8.5    10     9                 (12+9+8+10)/4 = 9.75    flat
  // 11  2020-01-17  10     12     11                (9+8+10+12)/4 = 9.75    LONG -> buy at t12 open
  // 12  2020-01-21  12.5   11     11.5              (8+10+12+11)/4 = 10.25  long
  // 13  2020-01-22  11     11     11                (10+12+11+11)/4 = 11    flat, but the last bar: no order
  //
  // Fills:
  //  t5  buy  floor((1000 - 1) / 12.5) = floor(79.92) = 79 units at 12.5;
  //      cash = 1000 - 79 * 12.5 - 1 = 1000 - 987.5 - 1 = 11.5
  //  t9  sell 79 at 9: cash = 11.5 + 711 - 1 = 721.5
  //  t12 buy  floor((721.5 - 1) / 12.5) = floor(57.64) = 57 units at 12.5;
  //      cash = 721.5 - 712.5 - 1 = 8
  // Equity at each close = cash + units * close:
  //  t0..t4 1000; t5 11.5 + 79*13 = 1038.5; t6 11.5 + 79*14 = 1117.5;
  //  t7 11.5 + 79*12 = 959.5; t8 11.5 + 79*9 = 722.5; t9..t11 721.5;
  //  t12 8 + 57*11 = 635; t13 635.
  // Final equity 635, total return -36.5 %, 3 trades, maximum drawdown from
  // the 1117.5 peak to 635: 482.5 / 1117.5.
  auto bars = load_csv(data_dir + "/crossover_small.csv");
  REQUIRE_MESSAGE(bars, (bars ? "" : render(bars.error())));
  REQUIRE(bars->size() == 14);
  crossover_params p;
  p.fast = 2;
  p.slow = 4;
  p.fee = 1;
  p.cash = 1000;
  auto r = run_crossover_plain(*bars, p);
  REQUIRE(r.fills.size() == 3);
  CHECK(r.fills[0].bar_index == 5);
  CHECK(r.fills[0].buy);
  CHECK(r.fills[0].units == 79);
  CHECK(r.fills[0].price == 12.5);
  CHECK(r.fills[1].bar_index == 9);
  CHECK_FALSE(r.fills[1].buy);
  CHECK(r.fills[1].units == 79);
  CHECK(r.fills[1].price == 9);
  CHECK(r.fills[2].bar_index == 12);
  CHECK(r.fills[2].buy);
  CHECK(r.fills[2].units == 57);
  CHECK(r.fills[2].price == 12.5);
  const std::vector<double> equity{1000,  1000,  1000,  1000,  1000,
                                   1038.5, 1117.5, 959.5, 722.5, 721.5,
                                   721.5, 721.5, 635,   635};
  CHECK(r.equity == equity);
  CHECK(r.metrics.final_equity == 635);
  CHECK(r.metrics.total_return == doctest::Approx(-0.365));
  CHECK(r.metrics.trades == 3);
  CHECK(r.metrics.max_drawdown == doctest::Approx(482.5 / 1117.5));
  CHECK(r.metrics.sharpe < 0);
  CHECK(r.metrics.sharpe
        == doctest::Approx(compute_metrics(1000, equity, 3).sharpe));

  SUBCASE("a fee that leaves nothing to buy with sends no order") {
    p.cash = 10.5; // floor((10.5 - 1) / 12.5) = 0
    auto none = run_crossover_plain(*bars, p);
    CHECK(none.fills.empty());
    CHECK(none.metrics.final_equity == 10.5);
  }
  SUBCASE("windows longer than the series: no signal at all") {
    p.slow = 20;
    auto none = run_crossover_plain(*bars, p);
    CHECK(none.fills.empty());
    CHECK(none.equity.size() == 14);
  }
  SUBCASE("buy and hold") {
    // decided at the first close, filled at the second bar's open (10):
    // floor((1000 - 1) / 10) = 99 units at 10; cash 1000 - 990 - 1 = 9;
    // final 9 + 99 * 11 = 1098; P&L 98.
    CHECK(buy_and_hold_pnl(*bars, 1000, 1) == 98);
    CHECK(buy_and_hold_pnl(*bars, 5, 1) == 0); // cannot buy one unit
    CHECK(buy_and_hold_pnl({}, 1000, 1) == 0);
  }
}

TEST_CASE("backtest: the crossover runs on the real S&P 500 series") {
  auto bars = load_csv(data_dir + "/sp500-2000.csv");
  REQUIRE(bars);
  crossover_params p;
  p.fast = 50;
  p.slow = 200;
  auto r = run_crossover_plain(*bars, p);
  CHECK(r.equity.size() == bars->size());
  CHECK(r.fills.size() > 10);
  bool alternate = true;
  for (size_t i = 0; i < r.fills.size(); ++i)
    alternate = alternate && r.fills[i].buy == (i % 2 == 0);
  CHECK(alternate);
  CHECK(r.metrics.max_drawdown > 0);
  CHECK(r.metrics.max_drawdown < 1);
  // Deterministic.
  auto again = run_crossover_plain(*bars, p);
  CHECK(again.equity == r.equity);
}

// -- configs ---------------------------------------------------------------------

namespace {

struct config_fixture {
  temp_dir tmp;
  std::string csv;

  config_fixture() {
    csv = tmp.write("bars.csv", "date,open,high,low,close\n"
                                "2021-03-01,10,11,9,10\n"
                                "2021-03-02,10,12,9,11\n"
                                "2021-03-03,11,12,10,12\n");
  }

  /// The error text with "file:line:column: " shortened to "file:line: ",
  /// so that checks below name lines only (the toolkit's own tests check
  /// columns).
  static std::string lines_only(const std::string& text) {
    static const std::regex column{R"((\.toml:[0-9]+):[0-9]+: )"};
    return std::regex_replace(text, column, "$1: ");
  }

  std::string sweep_error(const std::string& text) {
    auto path = tmp.write("bad.toml", text);
    auto r = load_sweep_config(path);
    REQUIRE_FALSE(r);
    CHECK(r.error() == make_error(errc::config_invalid));
    return lines_only(render(r.error()));
  }

  std::string mc_error(const std::string& text) {
    auto path = tmp.write("bad_mc.toml", text);
    auto r = load_montecarlo_config(path);
    REQUIRE_FALSE(r);
    CHECK(r.error() == make_error(errc::config_invalid));
    return lines_only(render(r.error()));
  }

  std::string at(int line) const {
    return (tmp.path / "bad.toml").string() + ":" + std::to_string(line) + ": ";
  }

  std::string mc_at(int line) const {
    return (tmp.path / "bad_mc.toml").string() + ":" + std::to_string(line)
           + ": ";
  }
};

const char* good_grid = "[grid]\nfast = [2, 3]\nslow = [5]\n";

} // namespace

TEST_CASE_FIXTURE(config_fixture, "backtest: a documented sweep config loads") {
  auto path = tmp.write("sub/sweep.toml", R"(# comment
[data]
source = "csv"
csv = "../bars.csv"
[strategy]
cash = 50000
[grid]
slow = { from = 20, to = 50, step = 10 }
fast = [5, 10, 20]
fee = { from = 0, to = 0.3, step = 0.1 }
[output]
dir = "out"
rank_by = "total_return"
[run]
seed = 9
)");
  auto r = load_sweep_config(path);
  REQUIRE_MESSAGE(r, (r ? "" : render(r.error())));
  CHECK(r->file == path);
  CHECK(r->data.kind == data_source::kind_t::csv);
  CHECK(fs::equivalent(r->data.csv, csv)); // relative to the config's dir
  CHECK(r->base.cash == 50000);
  CHECK(r->output_dir == (tmp.path / "sub" / "out").string());
  CHECK(r->rank_by == "total_return");
  CHECK(r->seed == 9);
  // Axes in file order, values in file order / ascending.
  REQUIRE(r->grid.size() == 3);
  CHECK(r->grid[0].name == "slow");
  CHECK(r->grid[0].values == std::vector<double>{20, 30, 40, 50});
  CHECK(r->grid[1].name == "fast");
  CHECK(r->grid[1].values == std::vector<double>{5, 10, 20});
  CHECK(r->grid[2].name == "fee");
  CHECK(r->grid[2].values == std::vector<double>{0, 0.1, 0.2, 0.3});
  auto data = load_data(r->data, 1);
  REQUIRE(data);
  CHECK(data->size() == 3);
}

TEST_CASE_FIXTURE(config_fixture, "backtest: expand_grid order and skip count") {
  auto path = tmp.write("grid.toml", R"([data]
source = "gbm"
[grid]
fast = [5, 10, 20]
slow = { from = 10, to = 30, step = 10 }
)");
  auto cfg = load_sweep_config(path);
  REQUIRE_MESSAGE(cfg, (cfg ? "" : render(cfg.error())));
  size_t skipped = 99;
  auto sets = expand_grid(*cfg, skipped);
  // Row-major, first axis (fast) slowest:
  // (5,10) (5,20) (5,30) (10,10)x (10,20) (10,30) (20,10)x (20,20)x (20,30)
  CHECK(skipped == 3);
  std::vector<std::pair<size_t, size_t>> got;
  for (auto& p : sets) {
    got.emplace_back(p.fast, p.slow);
    CHECK(p.fee == 1.0); // crossover_params default, not in the grid
    CHECK(p.cash == 100000.0);
  }
  std::vector<std::pair<size_t, size_t>> want{{5, 10},  {5, 20},  {5, 30},
                                              {10, 20}, {10, 30}, {20, 30}};
  CHECK(got == want);

  // Three axes, slow first in the file: slow varies slowest, fee fastest.
  path = tmp.write("grid3.toml", R"([data]
source = "gbm"
days = 30
[strategy]
cash = 1000
[grid]
slow = [4, 3]
fast = [2]
fee = [0, 1]
)");
  cfg = load_sweep_config(path);
  REQUIRE_MESSAGE(cfg, (cfg ? "" : render(cfg.error())));
  sets = expand_grid(*cfg, skipped);
  CHECK(skipped == 0);
  REQUIRE(sets.size() == 4);
  CHECK((sets[0].slow == 4 && sets[0].fee == 0));
  CHECK((sets[1].slow == 4 && sets[1].fee == 1));
  CHECK((sets[2].slow == 3 && sets[2].fee == 0));
  CHECK((sets[3].slow == 3 && sets[3].fee == 1));
  CHECK(sets[3].cash == 1000);
  auto data = load_data(cfg->data, 5);
  REQUIRE(data);
  CHECK(data->size() == 30);

  // A large grid: 100 x 200 = 20,000 sets of which fast < slow.
  path = tmp.write("big.toml", R"([data]
source = "gbm"
[grid]
fast = { from = 1, to = 100, step = 1 }
slow = { from = 1, to = 200, step = 1 }
)");
  cfg = load_sweep_config(path);
  REQUIRE(cfg);
  sets = expand_grid(*cfg, skipped);
  CHECK(sets.size() + skipped == 20'000);
  CHECK(skipped == 5050); // fast >= slow: sum over fast = 1..100 of fast
}

TEST_CASE_FIXTURE(config_fixture, "backtest: a documented montecarlo config loads") {
  auto path = tmp.write("mc.toml", R"([model]
source = "gbm"
s0 = 100
mu = 0.05
sigma = 0.2
days = 10
[simulation]
paths = 10000
seed = 7
[portfolio]
strategy = "buy_and_hold"
cash = 100000
fee = 0
[output]
dir = "/tmp/mc-results"
)");
  auto r = load_montecarlo_config(path);
  REQUIRE_MESSAGE(r, (r ? "" : render(r.error())));
  CHECK(r->model.kind == data_source::kind_t::gbm);
  CHECK(r->model.gbm.s0 == 100);
  CHECK(r->model.gbm.mu == 0.05);
  CHECK(r->model.gbm.sigma == 0.2);
  CHECK(r->model.gbm.days == 10);
  CHECK(r->paths == 10000);
  CHECK(r->seed == 7);
  CHECK(r->strategy == "buy_and_hold");
  CHECK(r->params.cash == 100000);
  CHECK(r->params.fee == 0);
  CHECK(r->output_dir == "/tmp/mc-results");

  path = tmp.write("mc2.toml", R"([model]
source = "bootstrap"
csv = "bars.csv"
days = 40
s0 = 7
[portfolio]
strategy = "ma_crossover"
fast = 3
slow = 8
)");
  r = load_montecarlo_config(path);
  REQUIRE_MESSAGE(r, (r ? "" : render(r.error())));
  CHECK(r->model.kind == data_source::kind_t::bootstrap);
  CHECK(r->model.days == 40);
  CHECK(r->model.s0 == 7);
  CHECK(r->params.fast == 3);
  CHECK(r->params.slow == 8);
  auto data = load_data(r->model, r->seed);
  REQUIRE(data);
  CHECK(data->size() == 40);
  CHECK(data->front().open == 7);
}

TEST_CASE_FIXTURE(config_fixture, "backtest: every sweep config error names "
                                  "file, line and field") {
  SUBCASE("missing config file") {
    auto p = (tmp.path / "none.toml").string();
    auto r = load_sweep_config(p);
    REQUIRE_FALSE(r);
    CHECK_CONTAINS(render(r.error()), p + ": cannot open the file");
  }
  SUBCASE("TOML syntax error") {
    auto e = sweep_error("[data]\nsource = \"gbm\n");
    CHECK_CONTAINS(e, at(2) + "TOML syntax error");
  }
  SUBCASE("duplicate key") {
    auto e = sweep_error("[data]\nsource = \"gbm\"\nsource = \"csv\"\n");
    CHECK_CONTAINS(e, at(3) + "TOML syntax error");
  }
  SUBCASE("unknown table, with a suggestion") {
    auto e = sweep_error(std::string{"[dta]\nsource = \"gbm\"\n"} + good_grid);
    CHECK_CONTAINS(e, at(1) + "unknown table [dta] (known tables: [data], "
                              "[strategy], [grid], [output], [run]; did you "
                              "mean '[data]'?)");
    CHECK_CONTAINS(e, "missing table [data]");
  }
  SUBCASE("a table given as a value") {
    auto e = sweep_error(std::string{"run = 5\n[data]\nsource = \"gbm\"\n"}
                         + good_grid);
    CHECK_CONTAINS(e, at(1) + "'run' must be a table");
  }
  SUBCASE("unknown key") {
    auto e = sweep_error(std::string{"[data]\nsorce = \"gbm\"\n"} + good_grid);
    CHECK_CONTAINS(e, at(2) + "[data] unknown key 'sorce' (known keys: source, "
                              "csv, s0, mu, sigma, days; did you mean "
                              "'source'?)");
  }
  SUBCASE("missing source") {
    auto e = sweep_error(std::string{"[data]\nmu = 0.1\n"} + good_grid);
    CHECK_CONTAINS(e, at(1) + "[data] field 'source': missing");
  }
  SUBCASE("unknown source") {
    auto e = sweep_error(std::string{"[data]\nsource = \"yahoo\"\n"} + good_grid);
    CHECK_CONTAINS(e, at(2) + "[data] field 'source': \"yahoo\" is not one of "
                              "csv, gbm, bootstrap");
  }
  SUBCASE("wrong type of a string field") {
    auto e = sweep_error(std::string{"[data]\nsource = 3\n"} + good_grid);
    CHECK_CONTAINS(e, at(2) + "[data] field 'source': must be a string in "
                              "double quotes, not an integer");
  }
  SUBCASE("csv missing for source csv") {
    auto e = sweep_error(std::string{"\n[data]\nsource = \"csv\"\n"} + good_grid);
    CHECK_CONTAINS(e, at(2) + "[data] field 'csv': missing; source \"csv\" "
                              "needs csv = ");
  }
  SUBCASE("csv that does not exist, resolved against the config's dir") {
    auto e = sweep_error(std::string{"[data]\nsource = \"csv\"\ncsv = "
                                     "\"nope.csv\"\n"} + good_grid);
    CHECK_CONTAINS(e, at(3) + "[data] field 'csv': 'nope.csv' does not exist "
                              "(looked for '"
                        + (tmp.path / "nope.csv").string() + "'");
  }
  SUBCASE("csv that is a directory") {
    fs::create_directories(tmp.path / "adir");
    auto e = sweep_error(std::string{"[data]\nsource = \"csv\"\ncsv = "
                                     "\"adir\"\n"} + good_grid);
    CHECK_CONTAINS(e, at(3) + "[data] field 'csv': 'adir' is not a regular "
                              "file");
  }
  SUBCASE("a key for another source") {
    auto e = sweep_error(std::string{"[data]\nsource = \"csv\"\ncsv = "
                                     "\"bars.csv\"\nmu = 0.1\n"} + good_grid);
    CHECK_CONTAINS(e, at(4) + "[data] field 'mu': applies only to source = "
                              "\"gbm\", not \"csv\"");
    e = sweep_error(std::string{"[data]\nsource = \"gbm\"\ncsv = "
                                "\"bars.csv\"\n"} + good_grid);
    CHECK_CONTAINS(e, at(3) + "[data] field 'csv': applies only to source = "
                              "\"bootstrap\" or \"csv\", not \"gbm\"");
  }
  SUBCASE("bad numbers in [data]") {
    auto e = sweep_error(std::string{"[data]\nsource = \"gbm\"\nsigma = -0.2\n"
                                     "days = 0\ns0 = \"100\"\n"} + good_grid);
    CHECK_CONTAINS(e, at(3) + "[data] field 'sigma': -0.2 must be zero or "
                              "positive");
    CHECK_CONTAINS(e, at(4) + "[data] field 'days': 0 is out of range; use 1 "
                              "to 10000000");
    CHECK_CONTAINS(e, at(5) + "[data] field 's0': must be a number, not a "
                              "string");
    e = sweep_error(std::string{"[data]\nsource = \"gbm\"\ndays = 25.5\n"}
                    + good_grid);
    CHECK_CONTAINS(e, at(3) + "[data] field 'days': must be an integer");
    e = sweep_error(std::string{"[data]\nsource = \"gbm\"\nmu = nan\n"}
                    + good_grid);
    CHECK_CONTAINS(e, at(3) + "[data] field 'mu': must be a finite number");
  }
  SUBCASE("missing grid") {
    auto e = sweep_error("[data]\nsource = \"gbm\"\n");
    CHECK_CONTAINS(e, at(1) + "missing table [grid]");
  }
  SUBCASE("empty grid") {
    auto e = sweep_error("[data]\nsource = \"gbm\"\n[grid]\n");
    CHECK_CONTAINS(e, at(3) + "[grid] is empty");
  }
  SUBCASE("unknown grid parameter") {
    auto e = sweep_error("[data]\nsource = \"gbm\"\n[grid]\nfsat = [1, 2]\n"
                         "slow = [5]\n");
    CHECK_CONTAINS(e, at(4) + "[grid] unknown grid parameter 'fsat' (known: "
                              "fast, slow, fee; did you mean 'fast'?)");
    e = sweep_error("[data]\nsource = \"gbm\"\n[grid]\nlookback = [1, 2]\n");
    CHECK_CONTAINS(e, at(4) + "[grid] unknown grid parameter 'lookback' "
                              "(known: fast, slow, fee)");
  }
  SUBCASE("empty axis") {
    auto e = sweep_error("[data]\nsource = \"gbm\"\n[grid]\nfast = []\n");
    CHECK_CONTAINS(e, at(4) + "[grid] field 'fast': empty list");
  }
  SUBCASE("wrong value types in the grid") {
    auto e = sweep_error("[data]\nsource = \"gbm\"\n[grid]\nfast = \"5\"\n");
    CHECK_CONTAINS(e, at(4) + "[grid] field 'fast': must be a list like "
                              "[5, 10, 20] or a range like { from = 5, to = "
                              "50, step = 5 }, not a string");
    e = sweep_error("[data]\nsource = \"gbm\"\n[grid]\nfast = [\n  5,\n  "
                    "true,\n]\n");
    CHECK_CONTAINS(e, at(6) + "[grid] field 'fast': element 2 must be a "
                              "number, not a boolean");
  }
  SUBCASE("bad ranges") {
    auto e = sweep_error("[data]\nsource = \"gbm\"\n[grid]\nslow = { from = "
                         "10, to = 50, step = 0 }\n");
    CHECK_CONTAINS(e, at(4) + "[grid] field 'slow': range step 0 must be "
                              "positive");
    e = sweep_error("[data]\nsource = \"gbm\"\n[grid]\nslow = { from = 50, "
                    "to = 10, step = 5 }\n");
    CHECK_CONTAINS(e, at(4) + "[grid] field 'slow': range from 50 is greater "
                              "than to 10");
    e = sweep_error("[data]\nsource = \"gbm\"\n[grid]\nslow = { from = 10, "
                    "to = 50 }\n");
    CHECK_CONTAINS(e, at(4) + "[grid] field 'slow': range lacks 'step'");
    e = sweep_error("[data]\nsource = \"gbm\"\n[grid]\nslow = { from = 10, "
                    "to = 50, stpe = 5 }\n");
    CHECK_CONTAINS(e, at(4) + "[grid.slow] unknown key 'stpe'");
    e = sweep_error("[data]\nsource = \"gbm\"\n[grid]\nfee = { from = 0, "
                    "to = 1, step = 1e-9 }\n");
    CHECK_CONTAINS(e, at(4) + "[grid] field 'fee': range yields about");
  }
  SUBCASE("window values must be whole numbers, 1 or more") {
    auto e = sweep_error("[data]\nsource = \"gbm\"\n[grid]\nfast = { from = "
                         "5, to = 10, step = 2.5 }\nslow = [20]\n");
    CHECK_CONTAINS(e, at(4) + "[grid] field 'fast': value 7.5 is not a whole "
                              "number of bars");
    e = sweep_error("[data]\nsource = \"gbm\"\n[grid]\nfast = [0, 1]\n"
                    "slow = [20]\n");
    CHECK_CONTAINS(e, at(4) + "[grid] field 'fast': value 0 is not a whole "
                              "number");
    e = sweep_error("[data]\nsource = \"gbm\"\n[grid]\nfee = [-1]\n");
    CHECK_CONTAINS(e, at(4) + "[grid] field 'fee': value -1 must be zero or "
                              "positive");
  }
  SUBCASE("duplicate values") {
    auto e = sweep_error("[data]\nsource = \"gbm\"\n[grid]\nfast = [5, 7, 5]\n");
    CHECK_CONTAINS(e, at(4) + "[grid] field 'fast': value 5 appears twice");
  }
  SUBCASE("every combination skipped") {
    auto e = sweep_error("[data]\nsource = \"gbm\"\n[grid]\nfast = [50, 60]\n"
                         "slow = [10, 20]\n");
    CHECK_CONTAINS(e, at(3) + "[grid] has no parameter set with fast < slow");
    e = sweep_error("[data]\nsource = \"gbm\"\n[strategy]\nslow = 5\n[grid]\n"
                    "fast = [5, 6]\n");
    CHECK_CONTAINS(e, at(5) + "[grid] has no parameter set with fast < slow "
                              "(fast from the grid, slow 5)");
  }
  SUBCASE("a parameter both in [strategy] and [grid]") {
    auto e = sweep_error(std::string{"[data]\nsource = \"gbm\"\n[strategy]\n"
                                     "fast = 3\n"} + good_grid);
    CHECK_CONTAINS(e, at(4) + "[strategy] field 'fast': is also a [grid] axis");
  }
  SUBCASE("bad [strategy] values") {
    auto e = sweep_error(std::string{"[data]\nsource = \"gbm\"\n[strategy]\n"
                                     "cash = \"lots\"\nfee = -1\nslow = 0\n"
                                     "lots = 1\n"} + "[grid]\nfast = [2]\n");
    CHECK_CONTAINS(e, at(4) + "[strategy] field 'cash': must be a number, not "
                              "a string");
    CHECK_CONTAINS(e, at(5) + "[strategy] field 'fee': -1 must be zero or "
                              "positive");
    CHECK_CONTAINS(e, at(6) + "[strategy] field 'slow': 0 is out of range");
    CHECK_CONTAINS(e, at(7) + "[strategy] unknown key 'lots'");
  }
  SUBCASE("bad [output] and [run]") {
    auto e = sweep_error(std::string{"[data]\nsource = \"gbm\"\n"} + good_grid
                         + "[output]\nrank_by = \"sharp\"\ndir = \"\"\n"
                           "[run]\nseed = -1\nthreads = 4\n");
    CHECK_CONTAINS(e, at(7) + "[output] field 'rank_by': \"sharp\" is not one "
                              "of sharpe, total_return, max_drawdown, "
                              "final_equity; did you mean 'sharpe'?");
    CHECK_CONTAINS(e, at(8) + "[output] field 'dir': is empty");
    CHECK_CONTAINS(e, at(10) + "[run] field 'seed': -1 is out of range");
    CHECK_CONTAINS(e, at(11) + "[run] unknown key 'threads'");
  }
}

TEST_CASE_FIXTURE(config_fixture, "backtest: every montecarlo config error "
                                  "names file, line and field") {
  SUBCASE("unknown table") {
    auto e = mc_error("[model]\nsource = \"gbm\"\n[simulaton]\npaths = 5\n");
    CHECK_CONTAINS(e, mc_at(3) + "unknown table [simulaton]");
    CHECK_CONTAINS(e, "did you mean '[simulation]'?");
  }
  SUBCASE("missing model") {
    auto e = mc_error("[simulation]\npaths = 5\n");
    CHECK_CONTAINS(e, mc_at(1) + "missing table [model]");
  }
  SUBCASE("a CSV replay is not a Monte Carlo model") {
    auto e = mc_error("[model]\nsource = \"csv\"\ncsv = \"bars.csv\"\n");
    CHECK_CONTAINS(e, mc_at(2) + "[model] field 'source': \"csv\" is not one "
                                 "of gbm, bootstrap");
  }
  SUBCASE("bootstrap of a missing file") {
    auto e = mc_error("[model]\nsource = \"bootstrap\"\ncsv = \"x.csv\"\n");
    CHECK_CONTAINS(e, mc_at(3) + "[model] field 'csv': 'x.csv' does not exist");
  }
  SUBCASE("paths and seed") {
    auto e = mc_error("[model]\nsource = \"gbm\"\n[simulation]\npaths = 0\n"
                      "seed = \"7\"\n");
    CHECK_CONTAINS(e, mc_at(4) + "[simulation] field 'paths': 0 is out of "
                                 "range");
    CHECK_CONTAINS(e, mc_at(5) + "[simulation] field 'seed': must be an "
                                 "integer");
  }
  SUBCASE("strategy") {
    auto e = mc_error("[model]\nsource = \"gbm\"\n[portfolio]\nstrategy = "
                      "\"buy_and_hodl\"\n");
    CHECK_CONTAINS(e, mc_at(4) + "[portfolio] field 'strategy': "
                                 "\"buy_and_hodl\" is not one of "
                                 "buy_and_hold, ma_crossover; did you mean "
                                 "'buy_and_hold'?");
    e = mc_error("[model]\nsource = \"gbm\"\n[portfolio]\nfast = 5\n");
    CHECK_CONTAINS(e, mc_at(4) + "[portfolio] field 'fast': applies only to "
                                 "strategy = \"ma_crossover\"");
    e = mc_error("[model]\nsource = \"gbm\"\n[portfolio]\nstrategy = "
                 "\"ma_crossover\"\nfast = 5\n");
    CHECK_CONTAINS(e, mc_at(3) + "[portfolio] field 'slow': missing");
    e = mc_error("[model]\nsource = \"gbm\"\n[portfolio]\nstrategy = "
                 "\"ma_crossover\"\nfast = 20\nslow = 20\n");
    CHECK_CONTAINS(e, mc_at(5) + "[portfolio] field 'fast': fast 20 must be "
                                 "less than slow 20");
  }
  SUBCASE("all problems at once") {
    auto e = mc_error("[model]\nsource = \"gbm\"\nmu = \"high\"\n[portfolio]\n"
                      "cash = 0\n[output]\nfile = \"x\"\n");
    CHECK_CONTAINS(e, mc_at(3) + "[model] field 'mu': must be a number");
    CHECK_CONTAINS(e, mc_at(5) + "[portfolio] field 'cash': 0 must be positive");
    CHECK_CONTAINS(e, mc_at(7) + "[output] unknown key 'file' (known keys: "
                                 "dir)");
  }
}

TEST_CASE_FIXTURE(config_fixture, "backtest: load_data reports CSV errors as "
                                  "data errors") {
  auto bad = tmp.write("badrow.csv", "date,open,high,low,close\n"
                                     "2021-03-01,10,11,9,10\n"
                                     "2021-03-02,10,11,9,ten\n");
  data_source src;
  src.kind = data_source::kind_t::csv;
  src.csv = bad;
  auto r = load_data(src, 1);
  REQUIRE_FALSE(r);
  CHECK(r.error() == make_error(errc::data_invalid));
  CHECK_CONTAINS(render(r.error()), bad + ":3: column 'close' (field 5): "
                                          "'ten' is not a finite number");
  src.kind = data_source::kind_t::bootstrap;
  src.csv = tmp.write("one.csv", "date,open,high,low,close\n"
                                 "2021-03-01,10,11,9,10\n");
  r = load_data(src, 1);
  REQUIRE_FALSE(r);
  CHECK_CONTAINS(render(r.error()), "bootstrap needs at least 2 bars");
}
