#include "xmpp/shaper.hpp"

#include <algorithm>
#include <stdexcept>

namespace parley::xmpp {

Shaper::Shaper(std::size_t rate, std::size_t burst, Clock::time_point now)
    : rate_(static_cast<double>(rate)),
      burst_(static_cast<double>(burst)),
      tokens_(burst_),
      last_refill_(now) {
  if (rate == 0 || burst == 0) throw std::invalid_argument("shaper rate and burst must be at least 1");
}

Shaper::Clock::duration Shaper::take(std::size_t bytes, Clock::time_point now) {
  const double elapsed = std::chrono::duration<double>(now - last_refill_).count();
  if (elapsed > 0) {
    tokens_ = std::min(burst_, tokens_ + elapsed * rate_);
    last_refill_ = now;
  }
  tokens_ -= static_cast<double>(bytes);
  if (tokens_ >= 0) return Clock::duration::zero();
  return std::chrono::ceil<Clock::duration>(std::chrono::duration<double>(-tokens_ / rate_));
}

}  // namespace parley::xmpp
