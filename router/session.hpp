// What the router knows of a connected endpoint, and the registry of bound
// client resources (GUIDE §3: sharded by bare JID, no global lock).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "xmpp/jid.hpp"
#include "xmpp/xml.hpp"

namespace parley::router {

// A stream the router can hand stanzas to. Implemented by c2s sessions (and
// later s2s and component streams). All methods are safe from any thread.
class Session {
 public:
  virtual ~Session() = default;
  // Queues a stanza for the peer. Never blocks; a session whose queue is
  // over its limit closes itself with a stream error.
  virtual void deliver(xml::Element stanza) = 0;
  // Ends the stream with a stream error condition ("conflict",
  // "system-shutdown", "policy-violation", ...), then closes.
  virtual void close(std::string condition, std::string text = {}) = 0;
  // Short id for logs and parleyctl.
  virtual const std::string& id() const = 0;
  virtual std::string remote_address() const = 0;
  // "TLSv1.3" etc., empty when not encrypted.
  virtual std::string tls_version() const = 0;
};

// A bound resource as the registry sees it.
struct Resource {
  xmpp::Jid jid;  // full JID
  std::shared_ptr<Session> session;
  bool available = false;   // sent available presence and not unavailable since
  int priority = 0;         // from the last available presence
  bool interested = false;  // requested the roster (RFC 6121 §2.1.6)
  std::shared_ptr<const xml::Element> presence;  // last available presence broadcast
  std::int64_t bound_at = 0;                     // unix seconds
};

class SessionRegistry {
 public:
  // Binds a full JID. Returns the session that held it before (the caller
  // closes it with <conflict/>), or null.
  std::shared_ptr<Session> bind(const xmpp::Jid& full, std::shared_ptr<Session> session);
  // Removes the binding if it is still held by 'session'. Returns the
  // resource's last state, or nullopt when another session took it over.
  std::optional<Resource> unbind(const xmpp::Jid& full, const Session* session);

  // Hands a bound resource, with its presence state, from one session to
  // another (XEP-0198 resumption). False when 'from' no longer holds it.
  bool transfer(const xmpp::Jid& full, const Session* from, std::shared_ptr<Session> to);

  std::optional<Resource> find(const xmpp::Jid& full) const;
  // Only the session bound to a full JID (null when none): what delivery
  // needs, without copying the resource's state.
  std::shared_ptr<Session> session(const xmpp::Jid& full) const;
  // All bound resources of an account.
  std::vector<Resource> resources(const xmpp::Jid& bare) const;
  // All bound resources of the server (parleyctl sessions).
  std::vector<Resource> all() const;
  std::size_t count() const;

  // Records a presence broadcast: an available presence (priority from its
  // <priority/>) or, with presence == nullptr, unavailable.
  void set_presence(const xmpp::Jid& full, std::shared_ptr<const xml::Element> presence, int priority);
  void set_interested(const xmpp::Jid& full, bool interested);

 private:
  // Keys are bare JIDs ("local@domain"); a lookup hashes and compares a
  // Jid's parts in place instead of building that string.
  struct BareParts {
    std::string_view local, domain;
  };
  struct BareHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view bare) const noexcept;
    std::size_t operator()(const BareParts& bare) const noexcept;
  };
  struct BareEqual {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const noexcept { return a == b; }
    bool operator()(const BareParts& a, std::string_view b) const noexcept;
    bool operator()(std::string_view a, const BareParts& b) const noexcept { return (*this)(b, a); }
  };
  using ByBare = std::unordered_map<std::string, std::vector<Resource>, BareHash, BareEqual>;
  struct Shard {
    mutable std::mutex mutex;
    ByBare by_bare;
  };
  static constexpr std::size_t shard_count = 64;
  static BareParts bare_parts(const xmpp::Jid& jid) { return {jid.local(), jid.domain()}; }
  Shard& shard_for(const BareParts& bare) const;
  mutable std::array<Shard, shard_count> shards_;
};

}  // namespace parley::router
