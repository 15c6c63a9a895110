// The SASL part of a client stream (RFC 6120 §6): which mechanisms are
// offered, and one exchange at a time from <auth/> to <success/> or <failure/>.
#pragma once

#include <optional>
#include <string>

#include "c2s/c2s.hpp"
#include "xmpp/sasl.hpp"
#include "xmpp/xml.hpp"

namespace parley::c2s {

class SaslSession {
 public:
  struct Context {
    const std::string& host;
    bool encrypted;
    Services& services;
  };
  struct Outcome {
    xml::Element reply;                   // <challenge/>, <success/> or <failure/>
    std::optional<std::string> username;  // set on success: the authenticated localpart
    bool failed = false;                  // the exchange ended in <failure/>
  };

  // Called once TLS is up; enables the -PLUS mechanisms for the channel
  // binding types the connection can provide.
  void set_channel_binding(sasl::ChannelBindingProvider provider);

  // <mechanisms/>: PLAIN only when encrypted.
  xml::Element mechanisms(bool encrypted) const;
  // XEP-0440 <sasl-channel-binding/>.
  xml::Element channel_binding_types() const;
  const std::string& mechanism() const { return mechanism_; }

  router::Task<Outcome> step(const xml::Element& element, Context context);

 private:
  bool plus_available() const { return !channel_binding_types_.empty(); }
  // Whether a client's "y" GS2 flag (it supports channel binding but thinks
  // we do not) is treated as a downgrade attack. Many clients know only
  // tls-unique, which TLS 1.3 lacks; such a client honestly says "y" when
  // we offer only tls-exporter and tls-server-end-point, so "y" is refused
  // only when tls-unique was on offer too.
  bool downgrade_detectable() const;
  router::Task<Outcome> begin(const xml::Element& auth, Context context);
  router::Task<Outcome> plain(std::string_view message, Context context);
  router::Task<Outcome> scram_client_first(std::string_view message, Context context);
  Outcome scram_client_final(std::string_view message);

  sasl::ChannelBindingProvider channel_binding_;
  std::vector<std::string> channel_binding_types_;
  std::optional<sasl::ScramServer> scram_;
  sasl::Hash hash_ = sasl::Hash::sha256;
  bool awaiting_client_first_ = false;
  std::string mechanism_;
  std::string username_;
};

}  // namespace parley::c2s
