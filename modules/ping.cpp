// XMPP Ping (XEP-0199): the server answers pings to its domain, and a user's
// pings to their own bare JID (a client checking its connection).
#include <string_view>

#include "modules/factories.hpp"
#include "modules/module_options.hpp"
#include "xmpp/errors.hpp"

namespace parley::modules {
namespace {

constexpr std::string_view ns_ping = "urn:xmpp:ping";

using router::IqTarget;
using router::StanzaEvent;
using router::Task;

Task<xml::Element> pong(StanzaEvent& event) { co_return xmpp::iq_result(event.stanza); }

// Another entity's ping to a bare JID is not answered for the account: the
// server does not reveal whether the account exists (RFC 6121 §8.5.1).
Task<xml::Element> pong_own_account(StanzaEvent& event) {
  if (event.from.bare() != event.to) co_return xmpp::stanza_error(event.stanza, "service-unavailable");
  co_return xmpp::iq_result(event.stanza);
}

class PingModule final : public Module {
 public:
  explicit PingModule(Context& context) : ctx_(context) {}

  void start() override {
    options::expect_keys(ctx_.options, "ping", {});
    ctx_.host.add_iq_handler(IqTarget::host, "get", ns_ping, pong);
    ctx_.host.add_iq_handler(IqTarget::account, "get", ns_ping, pong_own_account);
    ctx_.host.add_disco_feature(std::string(ns_ping));
  }

 private:
  Context ctx_;
};

}  // namespace

std::unique_ptr<Module> make_ping_module(Context& context) { return std::make_unique<PingModule>(context); }

}  // namespace parley::modules
