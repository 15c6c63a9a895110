// Resident memory and CPU time of another process, read from /proc/<pid>.
#pragma once

#include <optional>
#include <string_view>
#include <sys/types.h>

namespace parley::bench {

struct ProcessSample {
  std::size_t rss_bytes = 0;
  double cpu_seconds = 0;  // user + system
};

std::optional<ProcessSample> sample_process(pid_t pid);

// The parsers, separate from the file reading for tests.
std::optional<std::size_t> parse_status_rss(std::string_view status);      // VmRSS of /proc/pid/status
std::optional<double> parse_stat_cpu(std::string_view stat, long ticks_per_second);  // /proc/pid/stat

}  // namespace parley::bench
