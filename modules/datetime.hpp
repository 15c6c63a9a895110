// XEP-0082 date-times, as used by delayed delivery (XEP-0203), MUC history
// requests (XEP-0045) and archive queries (XEP-0313).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace parley::modules {

// UTC with microseconds: 2024-01-31T12:34:56.789012Z
std::string format_datetime(std::chrono::system_clock::time_point when);

// CCYY-MM-DDThh:mm:ss[.sss...](Z|(+|-)hh:mm); nullopt when malformed or out of range.
std::optional<std::chrono::system_clock::time_point> parse_datetime(std::string_view text);

}  // namespace parley::modules
