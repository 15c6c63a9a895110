#include "c2s/sasl_session.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "xmpp/jid.hpp"

namespace parley::c2s {

namespace {

constexpr std::string_view ns_sasl = "urn:ietf:params:xml:ns:xmpp-sasl";
constexpr std::string_view known_channel_bindings[] = {"tls-exporter", "tls-server-end-point", "tls-unique"};

xml::Element sasl_element(std::string_view name, std::string_view base64_payload = {}) {
  xml::Element element{std::string(name), std::string(ns_sasl)};
  if (!base64_payload.empty()) element.add_text(std::string(base64_payload));
  return element;
}

SaslSession::Outcome failure(std::string_view condition, std::string_view text = {}) {
  auto element = sasl_element("failure");
  element.add_child(std::string(condition), std::string(ns_sasl));
  if (!text.empty()) element.add_child("text", std::string(ns_sasl)).add_text(std::string(text));
  return {std::move(element), std::nullopt, true};
}

SaslSession::Outcome challenge(std::string_view message) {
  return {sasl_element("challenge", sasl::base64_encode(message)), std::nullopt, false};
}

// The payload of <auth/> or <response/>: "=" is an empty message (RFC 6120 §6.4.2).
std::optional<std::string> payload(const xml::Element& element) {
  std::string text = element.text();
  if (text == "=") return std::string();
  return sasl::base64_decode(text);
}

// The account's localpart from a SASL authcid, or nullopt when it cannot be one.
std::optional<std::string> account_name(std::string_view authcid) {
  auto prepared = sasl::saslprep(authcid);
  if (!prepared) return std::nullopt;
  return xmpp::nodeprep(*prepared);
}

bool authzid_acceptable(std::string_view authzid, const std::string& username, const std::string& host) {
  if (authzid.empty()) return true;
  auto jid = xmpp::Jid::parse(authzid);
  return jid && jid->is_bare() && jid->local() == username && jid->domain() == host;
}

}  // namespace

void SaslSession::set_channel_binding(sasl::ChannelBindingProvider provider) {
  channel_binding_ = std::move(provider);
  channel_binding_types_.clear();
  for (auto type : known_channel_bindings) {
    if (channel_binding_(type)) channel_binding_types_.emplace_back(type);
  }
}

bool SaslSession::downgrade_detectable() const {
  return std::find(channel_binding_types_.begin(), channel_binding_types_.end(), "tls-unique") !=
         channel_binding_types_.end();
}

xml::Element SaslSession::mechanisms(bool encrypted) const {
  auto list = sasl_element("mechanisms");
  auto add = [&list](std::string_view name) {
    list.add_child("mechanism", std::string(ns_sasl)).add_text(std::string(name));
  };
  for (bool plus : {true, false}) {
    if (plus && !plus_available()) continue;
    add(sasl::mechanism_name(sasl::Hash::sha256, plus));
    add(sasl::mechanism_name(sasl::Hash::sha1, plus));
  }
  if (encrypted) add("PLAIN");
  return list;
}

xml::Element SaslSession::channel_binding_types() const {
  xml::Element list("sasl-channel-binding", "urn:xmpp:sasl-cb:0");
  for (const auto& type : channel_binding_types_) {
    list.add_child("channel-binding", "urn:xmpp:sasl-cb:0").set_attr("type", type);
  }
  return list;
}

router::Task<SaslSession::Outcome> SaslSession::step(const xml::Element& element, Context context) {
  if (element.name() == "auth") co_return co_await begin(element, context);
  if (element.name() == "abort") {
    scram_.reset();
    co_return failure("aborted");
  }
  if (element.name() != "response" || !scram_) {
    scram_.reset();
    co_return failure("malformed-request", "unexpected SASL element");
  }
  auto message = payload(element);
  if (!message) {
    scram_.reset();
    co_return failure("incorrect-encoding");
  }
  if (awaiting_client_first_) co_return co_await scram_client_first(*message, context);
  co_return scram_client_final(*message);
}

router::Task<SaslSession::Outcome> SaslSession::begin(const xml::Element& auth, Context context) {
  scram_.reset();
  mechanism_ = std::string(auth.attr("mechanism"));
  auto message = payload(auth);
  if (!message) co_return failure("incorrect-encoding");
  if (mechanism_ == "PLAIN") {
    if (!context.encrypted) co_return failure("encryption-required");
    co_return co_await plain(*message, context);
  }
  for (auto hash : {sasl::Hash::sha256, sasl::Hash::sha1}) {
    for (bool plus : {false, true}) {
      if (mechanism_ != sasl::mechanism_name(hash, plus)) continue;
      if (plus && !plus_available()) co_return failure("invalid-mechanism");
      hash_ = hash;
      scram_.emplace(hash, plus, channel_binding_, downgrade_detectable());
      if (message->empty()) {
        awaiting_client_first_ = true;
        co_return Outcome{sasl_element("challenge"), std::nullopt, false};
      }
      co_return co_await scram_client_first(*message, context);
    }
  }
  co_return failure("invalid-mechanism");
}

router::Task<SaslSession::Outcome> SaslSession::plain(std::string_view message, Context context) {
  auto parsed = sasl::parse_plain(message);
  if (auto* error = std::get_if<sasl::Failure>(&parsed)) co_return failure(error->condition, error->text);
  auto& credentials = std::get<sasl::PlainCredentials>(parsed);
  auto username = account_name(credentials.username);
  if (!username) co_return failure("not-authorized");
  if (!authzid_acceptable(credentials.authzid, *username, context.host)) co_return failure("invalid-authzid");
  bool valid = false;
  try {
    // Captures by reference only: g++ 12 mishandles closures holding
    // strings by value when they are temporaries of a co_await expression.
    valid = co_await context.services.workers.run([&] {
      auto account = context.services.storage.accounts().find(*username, context.host);
      return account && sasl::verify_password(sasl::Hash::sha256, credentials.password, account->sha256);
    });
  } catch (const std::exception& e) {
    spdlog::error("c2s: account lookup for {}@{} failed: {}", *username, context.host, e.what());
    co_return failure("temporary-auth-failure");
  }
  if (!valid) co_return failure("not-authorized");
  co_return Outcome{sasl_element("success"), *username, false};
}

router::Task<SaslSession::Outcome> SaslSession::scram_client_first(std::string_view message, Context context) {
  awaiting_client_first_ = false;
  auto first = scram_->client_first(message);
  if (auto* error = std::get_if<sasl::Failure>(&first)) {
    scram_.reset();
    co_return failure(error->condition, error->text);
  }
  auto& client = std::get<sasl::ScramServer::ClientFirst>(first);
  auto username = account_name(client.username);
  username_ = username.value_or(std::string());
  if (username && !authzid_acceptable(client.authzid, *username, context.host)) {
    scram_.reset();
    co_return failure("invalid-authzid");
  }
  std::optional<sasl::ScramCredentials> credentials;
  if (username) {
    try {
      credentials = co_await context.services.workers.run([&]() -> std::optional<sasl::ScramCredentials> {
        auto account = context.services.storage.accounts().find(*username, context.host);
        if (!account) return std::nullopt;
        return hash_ == sasl::Hash::sha1 ? account->sha1 : account->sha256;
      });
    } catch (const std::exception& e) {
      spdlog::error("c2s: account lookup for {}@{} failed: {}", *username, context.host, e.what());
      scram_.reset();
      co_return failure("temporary-auth-failure");
    }
  }
  co_return challenge(scram_->server_first(credentials));
}

SaslSession::Outcome SaslSession::scram_client_final(std::string_view message) {
  auto result = scram_->client_final(message);
  scram_.reset();
  if (auto* error = std::get_if<sasl::Failure>(&result)) return failure(error->condition, error->text);
  if (username_.empty()) return failure("not-authorized");
  return {sasl_element("success", sasl::base64_encode(std::get<std::string>(result))), username_, false};
}

}  // namespace parley::c2s
