// One factory per module file; registry.cpp lists them.
#pragma once

#include <memory>

#include "modules/module.hpp"

namespace parley::modules {

std::unique_ptr<Module> make_roster_module(Context& context);    // roster.cpp: RFC 6121 §2, XEP-0237
std::unique_ptr<Module> make_presence_module(Context& context);  // presence.cpp: RFC 6121 §3-4
std::unique_ptr<Module> make_offline_module(Context& context);   // offline.cpp: XEP-0160, XEP-0203
std::unique_ptr<Module> make_disco_module(Context& context);     // disco.cpp: XEP-0030
std::unique_ptr<Module> make_ping_module(Context& context);      // ping.cpp: XEP-0199
std::unique_ptr<Module> make_version_module(Context& context);   // version.cpp: XEP-0092
std::unique_ptr<Module> make_time_module(Context& context);      // time.cpp: XEP-0202
std::unique_ptr<Module> make_register_module(Context& context);  // register.cpp: XEP-0077
std::unique_ptr<Module> make_muc_module(Context& context);       // muc.cpp, muc_room.cpp: XEP-0045
std::unique_ptr<Module> make_carbons_module(Context& context);   // carbons.cpp: XEP-0280
std::unique_ptr<Module> make_mam_module(Context& context);       // mam.cpp: XEP-0313, XEP-0359

}  // namespace parley::modules
