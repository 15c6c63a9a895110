// A token bucket for the bytes read from one connection (ejabberd calls it a
// shaper): 'rate' bytes per second on average, up to 'burst' bytes at once.
// After each read the reader asks how long to pause; pausing reads lets TCP
// flow control slow the peer down instead of Parley buffering its excess.
#pragma once

#include <chrono>
#include <cstddef>

namespace parley::xmpp {

class Shaper {
 public:
  using Clock = std::chrono::steady_clock;

  // rate and burst must be at least 1; the bucket starts full.
  Shaper(std::size_t rate, std::size_t burst, Clock::time_point now = Clock::now());

  // Accounts for 'bytes' read at 'now'; how long to wait before reading
  // again (zero while the connection is within its budget).
  Clock::duration take(std::size_t bytes, Clock::time_point now = Clock::now());

 private:
  double rate_;
  double burst_;
  double tokens_;
  Clock::time_point last_refill_;
};

}  // namespace parley::xmpp
