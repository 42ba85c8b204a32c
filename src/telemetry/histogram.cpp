// Native bucket indexing, histogram snapshots, quantiles and the sliding window.
#include <algorithm>
#include <array>
#include <bit>
#include <cmath>

#include "telemetry/detail/series.hpp"
#include "telemetry/metrics.hpp"

namespace sb::telemetry {

namespace detail {
namespace {

constexpr std::uint64_t kMantissaBits = 52;
constexpr std::uint64_t kMantissaMask = (std::uint64_t{1} << kMantissaBits) - 1;
constexpr int kTableBits = 8;  // cells of 1/256 in [1, 2): narrower than a bucket (1.09%)

/// For each cell [1 + j/256, 1 + (j+1)/256) of the mantissa: the bucket k (in 0..64, value
/// in (2^((k-1)/64), 2^(k/64)] times 2^e) of the cell's low end, and the mantissa bits of
/// that bucket's upper bound 2^(k/64). A cell is narrower than a bucket, so a value of the
/// cell is in bucket k or k+1: one compare tells which.
struct BucketTable {
  std::array<std::uint8_t, 1 << kTableBits> k{};
  std::array<std::uint64_t, 1 << kTableBits> upper{};
  BucketTable() {
    for (int j = 0; j < (1 << kTableBits); ++j) {
      double lo = 1.0 + j / double(1 << kTableBits);
      int kk = 0;
      while (kk < kPerChunk && std::exp2(kk / double(kPerChunk)) < lo) ++kk;
      k[j] = static_cast<std::uint8_t>(kk);
      upper[j] =
          kk == kPerChunk
              ? (std::uint64_t{1} << kMantissaBits)
              : (std::bit_cast<std::uint64_t>(std::exp2(kk / double(kPerChunk))) & kMantissaMask);
    }
  }
};
const BucketTable kTable;

}  // namespace

NativeSlot native_slot(double v) {
  auto bits = std::bit_cast<std::uint64_t>(v);
  int biased = static_cast<int>((bits >> kMantissaBits) & 0x7ff);
  if (biased == 0x7ff) return {kOctaves - 1, kPerChunk - 1};  // +Inf: the top bucket
  std::uint64_t m = bits & kMantissaMask;
  auto j = static_cast<std::size_t>(m >> (kMantissaBits - kTableBits));
  int k = kTable.k[j] + (m > kTable.upper[j] ? 1 : 0);
  int octave = biased - 1023;
  int slot = k - 1;
  if (k == 0) {  // an exact power of two closes the octave below
    octave -= 1;
    slot = kPerChunk - 1;
  }
  if (octave > kMaxOctave) return {kOctaves - 1, kPerChunk - 1};
  if (octave < kMinOctave) return {0, 0};
  return {octave - kMinOctave, slot};
}

HistogramSnapshot Series::histogram_snapshot(bool with_native) const {
  HistogramSnapshot snap;
  snap.bounds.assign(bounds, bounds + nbounds);
  snap.classic.assign(nbounds + 1, 0);
  for (unsigned s = 0; s < shards; ++s) {
    HistogramShard& h = histogram_shard(s);
    snap.sum += h.sum.load(std::memory_order_relaxed);
    snap.zero_count += h.zero.load(std::memory_order_relaxed);
    for (std::size_t i = 0; i <= nbounds; ++i)
      snap.classic[i] += h.classic()[i].load(std::memory_order_relaxed);
  }
  for (std::uint64_t n : snap.classic) snap.count += n;
  if (!with_native) return snap;
  std::uint64_t present[2] = {0, 0};
  for (unsigned s = 0; s < shards; ++s)
    for (int w = 0; w < 2; ++w)
      present[w] |= histogram_shard(s).present[w].load(std::memory_order_acquire);
  for (int w = 0; w < 2; ++w) {
    for (std::uint64_t bits = present[w]; bits != 0; bits &= bits - 1) {
      int c = w * 64 + std::countr_zero(bits);
      std::array<std::uint64_t, kPerChunk> sums{};
      for (unsigned s = 0; s < shards; ++s) {
        const Chunk* ch = histogram_shard(s).chunks[c].load(std::memory_order_acquire);
        if (ch == nullptr) continue;
        for (int i = 0; i < kPerChunk; ++i) sums[i] += ch->n[i].load(std::memory_order_relaxed);
      }
      for (int i = 0; i < kPerChunk; ++i)
        if (sums[i] != 0) snap.native.emplace_back((c + kMinOctave) * kPerChunk + i + 1, sums[i]);
    }
  }
  return snap;
}

}  // namespace detail

double HistogramSnapshot::quantile(double q) const {
  std::uint64_t total = zero_count;
  for (const auto& [i, n] : native) total += n;
  if (total == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  // Nearest rank: the ceil(q * total)-th sample; the epsilon keeps 0.95 * 100 at 95.
  auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total) - 1e-9));
  rank = std::clamp<std::uint64_t>(rank, 1, total);
  if (rank <= zero_count) return 0;
  std::uint64_t seen = zero_count;
  const double base = std::exp2(std::exp2(-kSchema));
  for (const auto& [i, n] : native) {
    seen += n;
    if (seen >= rank) return 2 * std::exp2(i / std::exp2(kSchema)) / (base + 1);
  }
  return 2 * std::exp2(native.back().first / std::exp2(kSchema)) / (base + 1);
}

HistogramSnapshot HistogramSnapshot::minus(const HistogramSnapshot& earlier) const {
  // Counts only grow while a handle keeps the series; a bucket that went down (a different
  // series passed in by mistake) saturates at zero rather than wrapping.
  auto sub = [](std::uint64_t a, std::uint64_t b) { return a > b ? a - b : 0; };
  HistogramSnapshot d;
  d.bounds = bounds;
  d.sum = sum - earlier.sum;
  d.zero_count = sub(zero_count, earlier.zero_count);
  d.classic.resize(classic.size());
  for (std::size_t i = 0; i < classic.size(); ++i)
    d.classic[i] = sub(classic[i], i < earlier.classic.size() ? earlier.classic[i] : 0);
  for (std::uint64_t n : d.classic) d.count += n;
  std::size_t j = 0;
  for (const auto& [i, n] : native) {
    while (j < earlier.native.size() && earlier.native[j].first < i) ++j;
    std::uint64_t before =
        j < earlier.native.size() && earlier.native[j].first == i ? earlier.native[j].second : 0;
    if (n > before) d.native.emplace_back(i, n - before);
  }
  return d;
}

SlidingWindow::SlidingWindow(core::Duration window, int steps)
    : window_(window),
      step_(window / std::max(steps, 1)),
      ring_(static_cast<std::size_t>(std::max(steps, 1)) + 1) {}

void SlidingWindow::rotate(core::SteadyTime now, const HistogramSnapshot& cumulative) {
  if (last_ && now - *last_ < step_) return;
  last_ = now;
  ring_[next_] = cumulative;
  next_ = (next_ + 1) % ring_.size();
  filled_ = std::min(filled_ + 1, ring_.size());
}

HistogramSnapshot SlidingWindow::over_window(const HistogramSnapshot& cumulative) const {
  // The ring keeps steps + 1 snapshots; once full, the oldest is `steps` rotations old.
  if (filled_ < ring_.size()) return cumulative;
  return cumulative.minus(ring_[next_]);
}

}  // namespace sb::telemetry
