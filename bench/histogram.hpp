// A small HDR-style latency histogram: values (microseconds) fall into
// buckets whose width grows with magnitude so that every bucket is within
// about 1/sub_buckets of its value, at a fixed memory cost whatever the count.
#pragma once

#include <cstdint>
#include <vector>

namespace parley::bench {

class Histogram {
 public:
  // Values are exact below sub_buckets; above, relative error ≤ 1/sub_buckets.
  static constexpr unsigned sub_bucket_bits = 7;  // 128 sub-buckets: < 0.8 % error
  static constexpr unsigned max_magnitude = 40;   // up to about 2^47 µs

  Histogram();

  void record(std::uint64_t value);
  void merge(const Histogram& other);

  std::uint64_t count() const { return count_; }
  std::uint64_t min() const { return count_ == 0 ? 0 : min_; }
  std::uint64_t max() const { return max_; }
  double mean() const { return count_ == 0 ? 0.0 : static_cast<double>(sum_) / static_cast<double>(count_); }
  // The smallest recorded bucket value v such that at least percent % of the
  // values are ≤ v (0 < percent ≤ 100); 0 when empty. Never above max().
  std::uint64_t percentile(double percent) const;

 private:
  static std::size_t index_of(std::uint64_t value);
  static std::uint64_t highest_value_in(std::size_t index);

  std::vector<std::uint64_t> buckets_;
  std::uint64_t count_ = 0;
  std::uint64_t sum_ = 0;
  std::uint64_t min_ = UINT64_MAX;
  std::uint64_t max_ = 0;
};

}  // namespace parley::bench
