#include "c2s/stream_management.hpp"

#include <charconv>

namespace parley::c2s {

void StreamManagement::enable(bool resumable, std::string id) {
  enabled_ = true;
  resumable_ = resumable;
  id_ = std::move(id);
}

bool StreamManagement::acknowledge(std::uint32_t handled) {
  const std::uint32_t newly = handled - acknowledged_;  // modulo 2^32, as XEP-0198 §4 requires
  if (newly > unacked_.size()) return false;
  unacked_.erase(unacked_.begin(), unacked_.begin() + newly);
  acknowledged_ = handled;
  return true;
}

std::optional<std::uint32_t> StreamManagement::parse_h(std::string_view text) {
  std::uint32_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace parley::c2s
