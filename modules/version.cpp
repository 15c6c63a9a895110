// Software Version (XEP-0092) of the server. The operating system is only
// disclosed with the option 'show_os: true': it helps attackers more than users.
#include <sys/utsname.h>

#include <string>
#include <string_view>

#include "modules/factories.hpp"
#include "modules/module_options.hpp"
#include "xmpp/errors.hpp"

namespace parley::modules {
namespace {

constexpr std::string_view ns_version = "jabber:iq:version";

using router::IqTarget;
using router::StanzaEvent;
using router::Task;

// "Linux 6.1.0-13-amd64", or empty when uname fails.
std::string operating_system() {
  utsname name{};
  if (uname(&name) != 0) return {};
  return std::string(name.sysname) + " " + name.release;
}

class VersionModule final : public Module {
 public:
  explicit VersionModule(Context& context) : ctx_(context) {}

  void start() override {
    options::expect_keys(ctx_.options, "version", {"show_os"});
    if (options::get_bool(ctx_.options, "show_os", false)) os_ = operating_system();
    ctx_.host.add_iq_handler(IqTarget::host, "get", ns_version, [this](StanzaEvent& ev) { return answer(ev); });
    ctx_.host.add_disco_feature(std::string(ns_version));
  }

 private:
  Task<xml::Element> answer(StanzaEvent& event) {
    auto reply = xmpp::iq_result(event.stanza);
    auto& query = reply.add_child("query", std::string(ns_version));
    query.add_child("name", std::string(ns_version)).add_text(ctx_.server_name);
    query.add_child("version", std::string(ns_version)).add_text(ctx_.server_version);
    if (!os_.empty()) query.add_child("os", std::string(ns_version)).add_text(os_);
    co_return reply;
  }

  Context ctx_;
  std::string os_;
};

}  // namespace

std::unique_ptr<Module> make_version_module(Context& context) { return std::make_unique<VersionModule>(context); }

}  // namespace parley::modules
