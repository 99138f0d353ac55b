#include "mycelium/backtest/synthetic.hpp"

#include <algorithm>
#include <cmath>

namespace mycelium::backtest {

namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

constexpr double two_pi = 6.283185307179586476925286766559;

} // namespace

rng::rng(uint64_t seed) {
  uint64_t sm = seed;
  for (auto& s : s_)
    s = splitmix64(sm);
  // splitmix64 never yields four zero words from one seed, so the
  // all-zero state (a fixed point of xoshiro) cannot occur.
}

uint64_t rng::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double rng::uniform() {
  // The top 53 bits, scaled exactly into [0, 1).
  return static_cast<double>(next() >> 11) * 0x1.0p-53;
}

double rng::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  const double u1 = 1.0 - uniform(); // (0, 1]: log is finite
  const double u2 = uniform();
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double theta = two_pi * u2;
  spare_ = r * std::sin(theta);
  has_spare_ = true;
  return r * std::cos(theta);
}

uint64_t rng::below(uint64_t n) {
  if (n <= 1)
    return 0;
  // Rejection sampling: unbiased, needs only 64-bit arithmetic.
  const uint64_t threshold = (0 - n) % n; // 2^64 mod n
  for (;;) {
    const uint64_t r = next();
    if (r >= threshold)
      return r % n;
  }
}

namespace {

/// Appends the bar that moves the price from `price` by log return `r`.
void push_bar(bar_series& out, int64_t day, double& price, double r) {
  bar b;
  b.day = day;
  b.open = price;
  b.close = price * std::exp(r);
  b.high = std::max(b.open, b.close);
  b.low = std::min(b.open, b.close);
  b.volume = 0;
  price = b.close;
  out.push_back(b);
}

} // namespace

bar_series generate_gbm(const gbm_params& p, uint64_t seed) {
  rng gen{seed};
  const double dt = 1.0 / 252.0;
  const double drift = (p.mu - 0.5 * p.sigma * p.sigma) * dt;
  const double vol = p.sigma * std::sqrt(dt);
  bar_series out;
  out.reserve(p.days);
  double price = p.s0;
  for (size_t i = 0; i < p.days; ++i)
    push_bar(out, p.start_day + static_cast<int64_t>(i), price,
             drift + vol * gen.normal());
  return out;
}

bar_series bootstrap(const bar_series& source, size_t days, double s0,
                     uint64_t seed, int64_t start_day) {
  bar_series out;
  if (source.size() < 2)
    return out;
  std::vector<double> returns;
  returns.reserve(source.size() - 1);
  for (size_t i = 1; i < source.size(); ++i)
    returns.push_back(std::log(source[i].close / source[i - 1].close));
  rng gen{seed};
  out.reserve(days);
  double price = s0;
  for (size_t i = 0; i < days; ++i)
    push_bar(out, start_day + static_cast<int64_t>(i), price,
             returns[gen.below(returns.size())]);
  return out;
}

uint64_t derive_seed(uint64_t run_seed, uint64_t index) {
  // Two rounds of the splitmix64 finaliser: a bijection of `index` for a
  // fixed run seed (distinct instances never share a seed), and unrelated
  // streams for neighbouring run seeds.
  uint64_t a = run_seed;
  const uint64_t key = splitmix64(a);
  uint64_t b = index ^ key;
  const uint64_t mixed = splitmix64(b);
  uint64_t c = mixed ^ run_seed;
  return splitmix64(c);
}

} // namespace mycelium::backtest
