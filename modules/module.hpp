// Feature modules (GUIDE §5): each registers hooks and IQ handlers on a host
// and never touches sockets.
#pragma once

#include <yaml-cpp/yaml.h>

#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "router/router.hpp"
#include "router/workers.hpp"
#include "storage/storage.hpp"

namespace parley::modules {

// A bad module option; the server reports it with the config file's line.
struct OptionError : std::runtime_error {
  OptionError(const YAML::Node& node, const std::string& message)
      : std::runtime_error(message), mark(node.Mark()) {}
  YAML::Mark mark;
};

// What a module instance gets: one instance per host that enables it.
struct Context {
  router::Host& host;
  router::Router& router;
  storage::Storage& storage;
  router::WorkerPool& workers;
  YAML::Node options;  // the module's mapping from the config (may be null)
  std::string server_name = "Parley";
  std::string server_version;
};

class Module {
 public:
  virtual ~Module() = default;
  // Registers hooks and handlers on context.host. Throws OptionError for
  // bad options.
  virtual void start() = 0;
  virtual void stop() {}
};

using Factory = std::function<std::unique_ptr<Module>(Context&)>;

// Every module the server knows, by config name ("roster", "presence", ...).
const std::map<std::string, Factory>& registry();
// The names of every module, in the order they should be started.
std::vector<std::string> names();

}  // namespace parley::modules
