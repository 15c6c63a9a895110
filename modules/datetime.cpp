#include "modules/datetime.hpp"

#include <cstdio>
#include <ctime>

namespace parley::modules {

namespace {

// Reads exactly 'count' digits at 'position'.
std::optional<int> digits(std::string_view text, std::size_t position, std::size_t count) {
  if (position + count > text.size()) return std::nullopt;
  int value = 0;
  for (std::size_t i = position; i < position + count; ++i) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
    value = value * 10 + (text[i] - '0');
  }
  return value;
}

bool is_leap(int year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

int days_in_month(int year, int month) {
  static constexpr int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && is_leap(year) ? 29 : days[month - 1];
}

}  // namespace

std::string format_datetime(std::chrono::system_clock::time_point when) {
  using namespace std::chrono;
  const auto micros = duration_cast<microseconds>(when.time_since_epoch()).count();
  auto seconds = micros / 1000000;
  auto fraction = micros % 1000000;
  if (fraction < 0) {
    fraction += 1000000;
    --seconds;
  }
  const std::time_t whole = static_cast<std::time_t>(seconds);
  std::tm parts{};
  gmtime_r(&whole, &parts);
  char text[48];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", parts.tm_year + 1900, parts.tm_mon + 1,
                parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec, static_cast<int>(fraction));
  return text;
}

std::optional<std::chrono::system_clock::time_point> parse_datetime(std::string_view text) {
  const auto year = digits(text, 0, 4);
  const auto month = digits(text, 5, 2);
  const auto day = digits(text, 8, 2);
  const auto hour = digits(text, 11, 2);
  const auto minute = digits(text, 14, 2);
  const auto second = digits(text, 17, 2);
  if (!year || !month || !day || !hour || !minute || !second || text[4] != '-' || text[7] != '-' || text[10] != 'T' ||
      text[13] != ':' || text[16] != ':') {
    return std::nullopt;
  }
  if (*month < 1 || *month > 12 || *day < 1 || *day > days_in_month(*year, *month) || *hour > 23 || *minute > 59 ||
      *second > 60) {
    return std::nullopt;
  }
  std::size_t position = 19;
  std::int64_t micros = 0;
  if (position < text.size() && text[position] == '.') {
    ++position;
    const auto start = position;
    int scale = 100000;
    while (position < text.size() && text[position] >= '0' && text[position] <= '9') {
      micros += (text[position] - '0') * scale;
      scale /= 10;
      ++position;
    }
    if (position == start) return std::nullopt;
  }
  std::int64_t offset_seconds = 0;
  if (position < text.size() && text[position] == 'Z') {
    ++position;
  } else if (position < text.size() && (text[position] == '+' || text[position] == '-')) {
    const auto offset_hours = digits(text, position + 1, 2);
    const auto offset_minutes = digits(text, position + 4, 2);
    if (!offset_hours || !offset_minutes || text[position + 3] != ':' || *offset_hours > 23 || *offset_minutes > 59) {
      return std::nullopt;
    }
    offset_seconds = (*offset_hours * 3600 + *offset_minutes * 60) * (text[position] == '+' ? 1 : -1);
    position += 6;
  } else {
    return std::nullopt;
  }
  if (position != text.size()) return std::nullopt;
  std::tm parts{};
  parts.tm_year = *year - 1900;
  parts.tm_mon = *month - 1;
  parts.tm_mday = *day;
  parts.tm_hour = *hour;
  parts.tm_min = *minute;
  parts.tm_sec = *second;
  const std::int64_t seconds = static_cast<std::int64_t>(timegm(&parts)) - offset_seconds;
  return std::chrono::system_clock::time_point(std::chrono::microseconds(seconds * 1000000 + micros));
}

}  // namespace parley::modules
