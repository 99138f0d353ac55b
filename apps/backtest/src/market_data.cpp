#include "mycelium/backtest/market_data.hpp"

#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string_view>

#include <fmt/format.h>

#include "mycelium/errc.hpp"

namespace mycelium::backtest {

namespace {

// -- calendar (proleptic Gregorian, H. Hinnant's days_from_civil) ------------

int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool is_leap(int64_t y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

unsigned days_in_month(int64_t y, unsigned m) {
  static constexpr std::array<unsigned, 12> len{31, 28, 31, 30, 31, 30,
                                                31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : len[m - 1];
}

/// Strict YYYY-MM-DD with a real calendar date; nullopt otherwise.
std::optional<int64_t> iso_to_day(std::string_view s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-')
    return std::nullopt;
  auto digits = [&](size_t from, size_t n) -> std::optional<unsigned> {
    unsigned v = 0;
    for (size_t i = from; i < from + n; ++i) {
      if (s[i] < '0' || s[i] > '9')
        return std::nullopt;
      v = v * 10 + static_cast<unsigned>(s[i] - '0');
    }
    return v;
  };
  auto y = digits(0, 4);
  auto m = digits(5, 2);
  auto d = digits(8, 2);
  if (!y || !m || !d || *m < 1 || *m > 12 || *d < 1
      || *d > days_in_month(*y, *m))
    return std::nullopt;
  return days_from_civil(*y, *m, *d);
}

// -- CSV ----------------------------------------------------------------------

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out{s};
  for (auto& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

/// Printable excerpt of a cell for error messages.
std::string shown(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 40)) {
    auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u >= 0x7f) ? '?' : c;
  }
  if (s.size() > 40)
    out += "...";
  return out;
}

/// Splits one line at commas. A cell may be enclosed in double quotes ("" is
/// a quote inside); quoted cells cannot span lines. Returns false on an
/// unterminated quote.
bool split_line(std::string_view line, std::vector<std::string>& cells) {
  cells.clear();
  size_t i = 0;
  for (;;) {
    std::string cell;
    // Skip blanks before a possible opening quote.
    size_t j = i;
    while (j < line.size() && (line[j] == ' ' || line[j] == '\t'))
      ++j;
    if (j < line.size() && line[j] == '"') {
      ++j;
      bool closed = false;
      while (j < line.size()) {
        if (line[j] == '"') {
          if (j + 1 < line.size() && line[j + 1] == '"') {
            cell += '"';
            j += 2;
            continue;
          }
          closed = true;
          ++j;
          break;
        }
        cell += line[j++];
      }
      if (!closed)
        return false;
      while (j < line.size() && line[j] != ',')
        cell += line[j++]; // text after the closing quote (kept, then rejected)
      i = j;
    } else {
      auto comma = line.find(',', i);
      auto end = comma == std::string_view::npos ? line.size() : comma;
      cell = std::string{line.substr(i, end - i)};
      i = end;
    }
    cells.push_back(std::move(cell));
    if (i >= line.size())
      return true;
    ++i; // the comma
  }
}

std::optional<double> to_double(std::string_view s) {
  s = trim(s);
  if (!s.empty() && s.front() == '+')
    s.remove_prefix(1);
  if (s.empty())
    return std::nullopt;
  double v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v,
                                   std::chars_format::general);
  if (ec != std::errc{} || ptr != s.data() + s.size() || !std::isfinite(v))
    return std::nullopt;
  return v;
}

caf::error data_error(const std::string& path, size_t line,
                      const std::string& what) {
  return make_error(errc::data_invalid, fmt::format("{}:{}: {}", path, line, what));
}

} // namespace

int64_t parse_iso_date(const std::string& iso) {
  auto d = iso_to_day(iso);
  return d ? *d : -1;
}

std::string format_iso_date(int64_t day) {
  // H. Hinnant's civil_from_days.
  const int64_t z = day + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  const int64_t y = static_cast<int64_t>(yoe) + era * 400 + (m <= 2);
  return fmt::format("{:04}-{:02}-{:02}", y, m, d);
}

caf::expected<bar_series> load_csv(const std::string& path) {
  std::error_code ec;
  auto st = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(st))
    return make_error(errc::data_invalid,
                      fmt::format("{}: CSV file does not exist (check the "
                                  "path; relative paths in a config resolve "
                                  "against the config file's directory)",
                                  path));
  if (std::filesystem::is_directory(st))
    return make_error(errc::data_invalid,
                      fmt::format("{}: is a directory, not a CSV file", path));
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return make_error(errc::data_invalid,
                      fmt::format("{}: cannot open the CSV file for reading "
                                  "(check its permissions)", path));
  std::string text{std::istreambuf_iterator<char>{in},
                   std::istreambuf_iterator<char>{}};
  if (in.bad())
    return make_error(errc::data_invalid,
                      fmt::format("{}: read error", path));
  std::string_view all{text};
  if (all.substr(0, 3) == "\xEF\xBB\xBF") // UTF-8 byte order mark
    all.remove_prefix(3);

  // Column indexes of the fields we read.
  enum col { c_date, c_open, c_high, c_low, c_close, c_volume, c_count };
  static constexpr std::array<const char*, c_count> names{
    "date", "open", "high", "low", "close", "volume"};
  std::array<std::optional<size_t>, c_count> idx;
  size_t width = 0;
  bool have_header = false;

  bar_series out;
  std::vector<std::string> cells;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < all.size()) {
    auto nl = all.find('\n', pos);
    auto end = nl == std::string_view::npos ? all.size() : nl;
    auto line = all.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r')
      line.remove_suffix(1);
    if (trim(line).empty())
      continue; // blank lines (e.g. at the end) carry no data
    if (line.find('\0') != std::string_view::npos)
      return data_error(path, line_no,
                        "contains a NUL byte; this is not a text CSV file");
    if (!split_line(line, cells))
      return data_error(path, line_no,
                        "unterminated double quote; close the quoted cell");
    if (!have_header) {
      have_header = true;
      width = cells.size();
      for (size_t i = 0; i < cells.size(); ++i) {
        auto name = lower(trim(cells[i]));
        for (size_t k = 0; k < c_count; ++k) {
          if (name != names[k])
            continue;
          if (idx[k])
            return data_error(path, line_no,
                              fmt::format("column '{}' appears twice in the "
                                          "header (columns {} and {})",
                                          names[k], *idx[k] + 1, i + 1));
          idx[k] = i;
        }
      }
      std::string missing;
      for (size_t k = 0; k < c_volume; ++k)
        if (!idx[k])
          missing += (missing.empty() ? "'" : ", '") + std::string{names[k]} + "'";
      if (!missing.empty())
        return data_error(path, line_no,
                          fmt::format("header lacks required column(s) {}; "
                                      "the first row must name the columns "
                                      "date,open,high,low,close[,volume] in "
                                      "any order (found: {})",
                                      missing, shown(line)));
      continue;
    }
    if (cells.size() != width)
      return data_error(path, line_no,
                        fmt::format("expected {} fields as in the header, "
                                    "found {}", width, cells.size()));
    bar b;
    const auto& date_cell = cells[*idx[c_date]];
    auto day = iso_to_day(trim(date_cell));
    if (!day)
      return data_error(path, line_no,
                        fmt::format("column 'date': '{}' is not an ISO date "
                                    "YYYY-MM-DD", shown(date_cell)));
    b.day = *day;
    if (!out.empty() && b.day <= out.back().day)
      return data_error(path, line_no,
                        fmt::format("column 'date': {} is not after the "
                                    "previous row's {}; rows must be in "
                                    "ascending date order without duplicates",
                                    format_iso_date(b.day),
                                    format_iso_date(out.back().day)));
    double* fields[c_count] = {nullptr, &b.open, &b.high, &b.low, &b.close,
                               &b.volume};
    for (size_t k = c_open; k < c_count; ++k) {
      if (!idx[k])
        continue;
      const auto& cell = cells[*idx[k]];
      auto v = to_double(cell);
      if (!v)
        return data_error(path, line_no,
                          fmt::format("column '{}' (field {}): '{}' is not a "
                                      "finite number", names[k], *idx[k] + 1,
                                      shown(cell)));
      if (k == c_volume ? *v < 0 : *v <= 0)
        return data_error(path, line_no,
                          fmt::format("column '{}' (field {}): {} must be {}",
                                      names[k], *idx[k] + 1, shown(trim(cell)),
                                      k == c_volume ? "zero or positive"
                                                    : "positive"));
      *fields[k] = *v;
    }
    out.push_back(b);
  }
  if (!have_header)
    return data_error(path, 1,
                      "the file is empty; expected a header row "
                      "date,open,high,low,close[,volume] and data rows");
  if (out.empty())
    return data_error(path, line_no,
                      "no data rows after the header");
  return out;
}

} // namespace mycelium::backtest
