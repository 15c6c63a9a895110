// Loss and duplicate accounting for numbered message streams: every sender
// numbers its messages 0, 1, 2, ...; the receiver reports each number it sees.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace parley::bench {

class StreamAccounting {
 public:
  // The next sequence number to send (and counts it as sent).
  std::uint64_t next_to_send() { return sent_++; }
  std::uint64_t sent() const { return sent_; }

  enum class Arrival { first, duplicate, unknown };
  // A received sequence number: first delivery, a repeat, or a number that
  // was never sent (counted as unknown, not as delivered).
  Arrival receive(std::uint64_t sequence);

  std::uint64_t delivered() const { return delivered_; }  // distinct numbers received
  std::uint64_t duplicates() const { return duplicates_; }
  std::uint64_t unknown() const { return unknown_; }
  std::uint64_t out_of_order() const { return out_of_order_; }
  // Sent but (not yet) received.
  std::uint64_t missing() const { return sent_ - delivered_; }

 private:
  std::uint64_t sent_ = 0;
  std::vector<bool> seen_;
  std::uint64_t delivered_ = 0;
  std::uint64_t duplicates_ = 0;
  std::uint64_t unknown_ = 0;
  std::uint64_t out_of_order_ = 0;
  std::uint64_t highest_plus_one_ = 0;
};

// The text of a numbered message's body and its parse: "seq ts" with a
// sequence number and a send time in nanoseconds.
struct MessageStamp {
  std::uint64_t sequence = 0;
  std::int64_t sent_ns = 0;
  bool operator==(const MessageStamp&) const = default;
};
void append_stamp(std::string_view padding, const MessageStamp& stamp, std::string& out);
bool parse_stamp(std::string_view body, MessageStamp& stamp);

}  // namespace parley::bench
