// SOCKS5 Bytestreams proxy (XEP-0065): a service domain (proxy.<host>)
// that answers disco#info and the streamhost query, a TCP listener where
// both parties of a bytestream connect with the same hashed address, and
// the relay that joins the two connections once the requester activates
// them. Built in, like Prosody's proxy65 component.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "router/router.hpp"

namespace parley::components::proxy65 {

struct Settings {
  // The service's JIDs; each is listed in disco#items of 'listed_on'
  // (every host when empty).
  std::vector<std::string> domains;
  std::vector<std::string> listed_on;
  std::string name = "SOCKS5 Bytestreams Service";
  std::string address = "127.0.0.1";  // where the SOCKS5 listener binds
  std::uint16_t port = 7777;          // 0: any free port (tests)
  // What the streamhost answer advertises; empty / 0: address and the bound port.
  std::string public_host;
  std::uint16_t public_port = 0;
  // Domains whose users may discover and activate; empty: the server's hosts.
  std::vector<std::string> allow;
  std::size_t rate = 10 * 1024 * 1024;  // bytes/s read from each connection; 0: unlimited
  std::size_t burst = 1024 * 1024;      // bytes the bucket saves up
  std::chrono::seconds activation_timeout{60};  // connect → activated, else closed
  std::chrono::seconds idle_timeout{300};       // an active relay with no bytes for this long is closed
  std::size_t max_pending = 1000;               // connections not yet activated
};

class Proxy {
 public:
  // Routes every domain in settings.domains here and lists it in disco#items.
  // Call before any traffic, with every host already added to the router.
  // Binds the listener: throws boost::system::system_error when it cannot.
  Proxy(std::vector<boost::asio::io_context*> shards, router::Router& router, Settings settings);
  // Destroy it once the shards no longer run and before they are destroyed:
  // it closes the listener and the connections still waiting right away,
  // so nothing of one shard is left to be released while another shard is
  // torn down.
  ~Proxy();
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  // The port the listener is bound to.
  std::uint16_t port() const;
  void start();
  // Stops accepting; relays keep going.
  void stop();
  // Closes every connection, pending or relaying.
  void close_all();

  struct Counters {
    std::size_t pending = 0;        // connected, not activated
    std::size_t relays = 0;         // activated pairs still open
    std::uint64_t relayed_bytes = 0;  // total, both directions, finished and running relays
  };
  Counters counters() const;

  struct State;  // shared with connections and relays, defined in proxy65.cpp

 private:
  std::shared_ptr<State> state_;
};

}  // namespace parley::components::proxy65
