#include "bench/accounting.hpp"

#include <algorithm>
#include <charconv>

namespace parley::bench {

StreamAccounting::Arrival StreamAccounting::receive(std::uint64_t sequence) {
  if (sequence >= sent_) {
    ++unknown_;
    return Arrival::unknown;
  }
  if (sequence >= seen_.size()) seen_.resize(std::max<std::size_t>(sequence + 1, seen_.size() * 2), false);
  if (seen_[sequence]) {
    ++duplicates_;
    return Arrival::duplicate;
  }
  seen_[sequence] = true;
  ++delivered_;
  if (sequence + 1 < highest_plus_one_) ++out_of_order_;
  highest_plus_one_ = std::max(highest_plus_one_, sequence + 1);
  return Arrival::first;
}

void append_stamp(std::string_view padding, const MessageStamp& stamp, std::string& out) {
  char digits[24];
  auto end = std::to_chars(digits, digits + sizeof digits, stamp.sequence).ptr;
  out.append(digits, end);
  out += ' ';
  end = std::to_chars(digits, digits + sizeof digits, stamp.sent_ns).ptr;
  out.append(digits, end);
  if (!padding.empty()) {
    out += ' ';
    out += padding;
  }
}

bool parse_stamp(std::string_view body, MessageStamp& stamp) {
  const char* first = body.data();
  const char* last = body.data() + body.size();
  auto [after_sequence, error] = std::from_chars(first, last, stamp.sequence);
  if (error != std::errc() || after_sequence == last || *after_sequence != ' ') return false;
  auto [after_time, time_error] = std::from_chars(after_sequence + 1, last, stamp.sent_ns);
  return time_error == std::errc() && (after_time == last || *after_time == ' ');
}

}  // namespace parley::bench
