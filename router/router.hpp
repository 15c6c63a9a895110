// The router (GUIDE §1, §5): virtual hosts, hooks, IQ handlers and the
// delivery rules of RFC 6120 §10 and RFC 6121 §8. Every stanza goes through
// here once: from a client (process_from_client) or from the server itself
// (route).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "router/session.hpp"
#include "xmpp/jid.hpp"
#include "xmpp/xml.hpp"

namespace parley::router {

template <class T>
using Task = boost::asio::awaitable<T>;

struct StanzaEvent {
  xml::Element stanza;  // handlers may change it; 'from' is stamped already
  xmpp::Jid from;       // parsed 'from' (empty for an unauthenticated client)
  xmpp::Jid to;         // parsed 'to'; for a client stanza without 'to': its bare JID (iq, message) or empty (presence broadcast)
  // The session the stanza came from when it came from a local client
  // (replies to unauthenticated clients go through it); null otherwise.
  std::shared_ptr<Session> origin;
};

enum class HookResult { pass, handled };
using Hook = std::function<Task<HookResult>(StanzaEvent&)>;
// Returns the reply (a result or an error iq).
using IqHandler = std::function<Task<xml::Element>(StanzaEvent&)>;

struct SessionEvent {
  xmpp::Jid jid;                     // full JID
  std::shared_ptr<Session> session;  // the session
  std::optional<Resource> last;      // for "closed": the resource's last state
};
using SessionHook = std::function<Task<void>(SessionEvent&)>;

// Who an IQ handler serves:
//   host:            iq to the server's domain ("to='example.org'")
//   account:         iq to a local user's bare JID, including an iq without
//                    'to' from that user's own client (event.to is the bare JID)
//   unauthenticated: iq from a client that has not authenticated yet (XEP-0077)
enum class IqTarget { host, account, unauthenticated };

class Router;

// One virtual host. Modules register here in Module::start.
//
// Stanza hooks, run in descending priority until one returns handled:
//   "pre-message/bare|full|host", "pre-presence/bare|full|host",
//   "pre-presence/broadcast" (no 'to'), "pre-iq/bare|full|host":
//       a stanza from one of this host's clients, before it is routed
//       (outbound side of RFC 6121: roster state on the sender's side, ...)
//   "message/bare|full|host", "presence/bare|full|host", "iq/full":
//       a stanza arriving for this host (inbound side)
//   "message/offline": a message for a local account with no resource that
//       can take it (RFC 6121 §8.5.2); unhandled means service-unavailable
// When no hook handles a stanza the router applies RFC 6121 §8's default
// delivery rules.
class Host {
 public:
  Host(Router& router, std::string domain) : router_(router), domain_(std::move(domain)) {}
  const std::string& domain() const { return domain_; }
  Router& router() { return router_; }

  void hook(const std::string& event, int priority, Hook hook);
  void add_iq_handler(IqTarget target, std::string_view type, std::string_view child_ns, IqHandler handler);
  void on_session_bound(SessionHook hook);
  void on_session_closed(SessionHook hook);

  // XEP-0030 features and identities of the server's domain, contributed by modules.
  void add_disco_feature(std::string var);
  struct Identity {
    std::string category, type, name;
  };
  void add_disco_identity(Identity identity);
  std::vector<std::string> disco_features() const;
  std::vector<Identity> disco_identities() const;
  // Entities listed by disco#items on the server's domain (components,
  // MUC and other services register themselves here).
  struct Item {
    std::string jid, name;
  };
  void add_disco_item(Item item);
  std::vector<Item> disco_items() const;
  // Features a local account answers for (disco#info to a bare JID).
  void add_account_disco_feature(std::string var);
  std::vector<std::string> account_disco_features() const;

  // Used by the router.
  Task<HookResult> fire(std::string_view event, StanzaEvent& ev) const;
  // Whether any hook is registered for the event: firing an event nobody
  // hooks needs no coroutine.
  bool has_hooks(std::string_view event) const { return hooks_.find(event) != hooks_.end(); }
  const IqHandler* iq_handler(IqTarget target, std::string_view type, std::string_view child_ns) const;
  Task<void> fire_session_bound(SessionEvent& ev) const;
  Task<void> fire_session_closed(SessionEvent& ev) const;

 private:
  struct PrioritisedHook {
    int priority;
    Hook hook;
  };
  Router& router_;
  std::string domain_;
  std::map<std::string, std::vector<PrioritisedHook>, std::less<>> hooks_;
  std::map<std::string, IqHandler, std::less<>> iq_handlers_;
  std::vector<SessionHook> bound_hooks_;
  std::vector<SessionHook> closed_hooks_;
  std::vector<std::string> features_;
  std::vector<std::string> account_features_;
  std::vector<Identity> identities_;
  std::vector<Item> items_;
};

// Where stanzas for non-local domains go (s2s, components). Returns false
// when it cannot take the stanza; the router then bounces it with
// remote-server-not-found.
using RemoteRoute = std::function<bool(xml::Element& stanza, const xmpp::Jid& to)>;

class Router {
 public:
  Router();
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // Hosts are added at start-up, before any traffic.
  Host& add_host(const std::string& domain);
  Host* host(std::string_view domain);
  const Host* host(std::string_view domain) const;
  bool is_local(std::string_view domain) const { return host(domain) != nullptr; }
  std::vector<std::string> host_names() const;

  SessionRegistry& sessions() { return sessions_; }
  // Domains served by something other than a local host (an external
  // component, a service): stanzas for them go to their route. Added at
  // start-up, before any traffic; the route answers for the domain even
  // while whatever serves it is away.
  void add_domain_route(const std::string& domain, RemoteRoute route);
  // Whether this server answers for 'domain': a local host or a routed domain.
  bool serves(std::string_view domain) const { return is_local(domain) || domain_routes_.contains(domain); }
  // Every other domain (federation).
  void set_remote_route(RemoteRoute route) { remote_route_ = std::move(route); }

  // A stanza from a bound client. Checks and stamps 'from' (the caller has
  // already refused a spoofed 'from' with <invalid-from/>), answers a
  // malformed 'to' with jid-malformed, runs the pre- hooks of the sender's
  // host, then routes.
  Task<void> process_from_client(xml::Element stanza, const xmpp::Jid& full, std::shared_ptr<Session> origin);
  // An iq from a client that has not authenticated on host 'domain'.
  Task<void> process_unauthenticated_iq(xml::Element stanza, const std::string& domain,
                                        std::shared_ptr<Session> origin);
  // A stanza the server produced or received from elsewhere, with 'from'
  // and 'to' set: delivered locally or handed to the remote route.
  Task<void> route(xml::Element stanza);

  // Session lifecycle, from c2s.
  Task<void> session_bound(const xmpp::Jid& full, std::shared_ptr<Session> session);
  Task<void> session_closed(const xmpp::Jid& full, const Session* session);

  // Error reply to a stanza (never to an error), routed back to its sender.
  Task<void> bounce(const xml::Element& stanza, std::string_view condition, std::string_view text = {});

 private:
  // Delivers what needs no hook, handler or storage to a local session
  // right away, without a coroutine frame per routing step. False when
  // dispatch() has to run.
  bool dispatch_now(StanzaEvent& ev);
  Task<void> dispatch(StanzaEvent& ev);
  Task<void> deliver_local(StanzaEvent& ev, Host& host);
  Task<void> deliver_message(StanzaEvent& ev, Host& host);
  void deliver_presence(StanzaEvent& ev);
  Task<void> deliver_iq(StanzaEvent& ev, Host& host);
  // Runs an IQ handler; a handler that throws is answered with internal-server-error.
  Task<xml::Element> call_iq_handler(const IqHandler& handler, StanzaEvent& ev);

  std::map<std::string, std::unique_ptr<Host>, std::less<>> hosts_;
  SessionRegistry sessions_;
  std::map<std::string, RemoteRoute, std::less<>> domain_routes_;
  RemoteRoute remote_route_;
};

// Which resources get a message to a bare JID (RFC 6121 §8.5.2.1): for chat
// and normal, the available resources with the highest non-negative
// priority; for headline, every available resource with non-negative
// priority; none for groupchat and error.
std::vector<Resource> message_recipients(std::string_view type, const std::vector<Resource>& resources);

}  // namespace parley::router
