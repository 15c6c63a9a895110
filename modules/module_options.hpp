// Reading a module's YAML options. Bad options are refused at start with the
// config file's line (OptionError), never silently ignored.
#pragma once

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "modules/module.hpp"

namespace parley::modules::options {

// Refuses options that are neither absent nor a mapping, and any key not in 'known'.
inline void expect_keys(const YAML::Node& options, std::string_view module,
                        std::initializer_list<std::string_view> known) {
  if (!options.IsDefined() || options.IsNull()) return;
  if (!options.IsMap()) {
    throw OptionError(options, "the options of module '" + std::string(module) + "' must be a mapping");
  }
  for (const auto& entry : options) {
    const auto key = entry.first.Scalar();
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      throw OptionError(entry.first, "unknown option '" + key + "' for module '" + std::string(module) + "'");
    }
  }
}

// The option's node, or an undefined node when the option is absent. (yaml-cpp's
// own lookup of a missing key gives an invalid node that throws when inspected.)
inline YAML::Node find(const YAML::Node& options, const std::string& key) {
  if (!options.IsDefined() || !options.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
  const auto node = options[key];
  return node.IsDefined() ? node : YAML::Node(YAML::NodeType::Undefined);
}

inline bool get_bool(const YAML::Node& options, const std::string& key, bool fallback) {
  const auto node = find(options, key);
  if (!node.IsDefined() || node.IsNull()) return fallback;
  bool value = false;
  if (!node.IsScalar() || !YAML::convert<bool>::decode(node, value)) {
    throw OptionError(node, "option '" + key + "' must be true or false");
  }
  return value;
}

inline std::int64_t get_int(const YAML::Node& options, const std::string& key, std::int64_t fallback,
                            std::int64_t min, std::int64_t max) {
  const auto node = find(options, key);
  if (!node.IsDefined() || node.IsNull()) return fallback;
  std::int64_t value = 0;
  if (!node.IsScalar() || !YAML::convert<std::int64_t>::decode(node, value) || value < min || value > max) {
    throw OptionError(node, "option '" + key + "' must be an integer from " + std::to_string(min) + " to " +
                                std::to_string(max));
  }
  return value;
}

}  // namespace parley::modules::options
