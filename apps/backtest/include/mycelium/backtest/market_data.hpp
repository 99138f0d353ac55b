#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/expected.hpp>

namespace mycelium::backtest {

/// One OHLCV bar. `day` is simulated time: days since 1970-01-01 (the CSV
/// loader converts ISO dates; generators count from a start day).
struct bar {
  int64_t day = 0;
  double open = 0;
  double high = 0;
  double low = 0;
  double close = 0;
  double volume = 0;
};

/// A whole series, shared read-only between backtest instances (immutable
/// input is not shared mutable state).
using bar_series = std::vector<bar>;
using bar_series_ptr = std::shared_ptr<const bar_series>;

/// Reads an OHLCV CSV file as it is: a header row naming the columns
/// (`date,open,high,low,close` required, `volume` optional, any other columns
/// ignored, any order, case-insensitive), ISO dates (YYYY-MM-DD), rows in
/// strictly ascending date order. Also accepted: a UTF-8 BOM, CRLF line
/// ends, a missing final newline, blank lines (skipped, still counted for
/// line numbers), cells in double quotes. Prices must be finite and > 0,
/// volume finite and >= 0. Errors are `errc::data_invalid` naming
/// "file:line: column 'x' (field n): what is wrong". Thread-safe.
caf::expected<bar_series> load_csv(const std::string& path);

/// Days since 1970-01-01 of an ISO date, or -1 if `iso` is not YYYY-MM-DD
/// naming a real calendar day (proleptic Gregorian). 1969-12-31 is also -1;
/// load_csv does not rely on -1, so it reads dates before 1970 correctly.
int64_t parse_iso_date(const std::string& iso);

/// ISO date of a day number.
std::string format_iso_date(int64_t day);

} // namespace mycelium::backtest
