#include "bench/process_sample.hpp"

#include <unistd.h>

#include <charconv>
#include <fstream>
#include <sstream>
#include <string>

namespace parley::bench {
namespace {

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

std::optional<std::size_t> parse_status_rss(std::string_view status) {
  auto at = status.find("\nVmRSS:");
  if (at == std::string_view::npos) return std::nullopt;
  auto rest = status.substr(at + 7);
  auto digits = rest.find_first_of("0123456789");
  if (digits == std::string_view::npos) return std::nullopt;
  std::size_t kib = 0;
  auto [end, error] = std::from_chars(rest.data() + digits, rest.data() + rest.size(), kib);
  if (error != std::errc()) return std::nullopt;
  return kib * 1024;
}

// Fields after the command name, which is in parentheses and may itself
// contain spaces and parentheses: utime and stime are fields 14 and 15.
std::optional<double> parse_stat_cpu(std::string_view stat, long ticks_per_second) {
  auto close = stat.rfind(')');
  if (close == std::string_view::npos || ticks_per_second <= 0) return std::nullopt;
  std::istringstream fields{std::string(stat.substr(close + 1))};
  std::string field;
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  for (int number = 3; fields >> field; ++number) {
    if (number == 14) utime = std::stoull(field);
    if (number == 15) {
      stime = std::stoull(field);
      return static_cast<double>(utime + stime) / static_cast<double>(ticks_per_second);
    }
  }
  return std::nullopt;
}

std::optional<ProcessSample> sample_process(pid_t pid) {
  auto base = "/proc/" + std::to_string(pid);
  auto status = read_file(base + "/status");
  auto stat = read_file(base + "/stat");
  if (!status || !stat) return std::nullopt;
  auto rss = parse_status_rss(*status);
  auto cpu = parse_stat_cpu(*stat, sysconf(_SC_CLK_TCK));
  if (!rss || !cpu) return std::nullopt;
  return ProcessSample{*rss, *cpu};
}

}  // namespace parley::bench
