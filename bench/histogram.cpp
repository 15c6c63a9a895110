#include "bench/histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace parley::bench {
namespace {
constexpr std::uint64_t sub_buckets = std::uint64_t{1} << Histogram::sub_bucket_bits;
}

Histogram::Histogram() : buckets_((max_magnitude + 1) * sub_buckets, 0) {}

// Magnitude 0 holds 0..sub_buckets-1 exactly; magnitude m ≥ 1 holds
// [sub_buckets·2^(m-1), sub_buckets·2^m) in sub_buckets slices of 2^(m-1).
std::size_t Histogram::index_of(std::uint64_t value) {
  if (value < sub_buckets) return static_cast<std::size_t>(value);
  unsigned magnitude = static_cast<unsigned>(std::bit_width(value)) - sub_bucket_bits;
  magnitude = std::min(magnitude, max_magnitude);
  std::uint64_t slice = (value >> (magnitude - 1)) - sub_buckets;
  slice = std::min(slice, sub_buckets - 1);
  return static_cast<std::size_t>(magnitude * sub_buckets + slice);
}

std::uint64_t Histogram::highest_value_in(std::size_t index) {
  std::uint64_t magnitude = index / sub_buckets;
  std::uint64_t slice = index % sub_buckets;
  if (magnitude == 0) return slice;
  return ((sub_buckets + slice + 1) << (magnitude - 1)) - 1;
}

void Histogram::record(std::uint64_t value) {
  ++buckets_[index_of(value)];
  ++count_;
  sum_ += value;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
}

void Histogram::merge(const Histogram& other) {
  for (std::size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

std::uint64_t Histogram::percentile(double percent) const {
  if (count_ == 0) return 0;
  percent = std::clamp(percent, 0.0, 100.0);
  auto rank = static_cast<std::uint64_t>(std::ceil(percent / 100.0 * static_cast<double>(count_)));
  rank = std::max<std::uint64_t>(rank, 1);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < buckets_.size(); ++i) {
    seen += buckets_[i];
    if (seen >= rank) return std::min(highest_value_in(i), max_);
  }
  return max_;
}

}  // namespace parley::bench
