#include "modules/factories.hpp"
#include "modules/module.hpp"

namespace parley::modules {

const std::map<std::string, Factory>& registry() {
  static const std::map<std::string, Factory> factories = {
      {"roster", make_roster_module},   {"presence", make_presence_module},
      {"offline", make_offline_module}, {"disco", make_disco_module},
      {"ping", make_ping_module},       {"version", make_version_module},
      {"time", make_time_module},       {"register", make_register_module},
      {"muc", make_muc_module},         {"carbons", make_carbons_module},
      {"mam", make_mam_module},
  };
  return factories;
}

std::vector<std::string> names() {
  return {"roster", "presence", "offline", "disco", "ping", "version", "time", "register", "muc", "carbons", "mam"};
}

}  // namespace parley::modules
