// Entity Time (XEP-0202) of the server. The server reports UTC with offset
// +00:00 whatever the machine's time zone: servers in a federation compare
// timestamps, and a fixed zone keeps the answer independent of the host's
// TZ setting (XEP-0202 allows any offset as long as it matches <utc/>).
#include <ctime>
#include <string>
#include <string_view>

#include "modules/factories.hpp"
#include "modules/module_options.hpp"
#include "xmpp/errors.hpp"

namespace parley::modules {
namespace {

constexpr std::string_view ns_time = "urn:xmpp:time";

using router::IqTarget;
using router::StanzaEvent;
using router::Task;

// XEP-0082 DateTime in UTC: "2026-11-25T14:03:09Z".
std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm parts{};
  gmtime_r(&now, &parts);
  char text[40];
  const auto length = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &parts);
  return std::string(text, length);
}

Task<xml::Element> answer(StanzaEvent& event) {
  auto reply = xmpp::iq_result(event.stanza);
  auto& time = reply.add_child("time", std::string(ns_time));
  time.add_child("tzo", std::string(ns_time)).add_text("+00:00");
  time.add_child("utc", std::string(ns_time)).add_text(utc_now());
  co_return reply;
}

class TimeModule final : public Module {
 public:
  explicit TimeModule(Context& context) : ctx_(context) {}

  void start() override {
    options::expect_keys(ctx_.options, "time", {});
    ctx_.host.add_iq_handler(IqTarget::host, "get", ns_time, answer);
    ctx_.host.add_disco_feature(std::string(ns_time));
  }

 private:
  Context ctx_;
};

}  // namespace

std::unique_ptr<Module> make_time_module(Context& context) { return std::make_unique<TimeModule>(context); }

}  // namespace parley::modules
