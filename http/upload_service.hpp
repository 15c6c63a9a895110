// HTTP File Upload (XEP-0363): the XMPP service on upload.<host> that hands
// out slots, and the HTTP handler that takes the PUTs and serves the GETs.
//
// The service is a routed domain (Router::add_domain_route), like the MUC
// service: no module depends on it and it knows nothing of sockets; the
// server wiring connects it to the router and to the HTTP listeners.
//
// A slot is "<url base><id>/<name>": the same URL for PUT and GET. The PUT
// must carry "Authorization: Bearer <token>", the HMAC of (id/name, size,
// content type, expiry) under the server's secret (upload_token.hpp).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http/http_server.hpp"
#include "http/upload_store.hpp"
#include "router/router.hpp"
#include "xmpp/xml.hpp"

namespace parley::http {

inline constexpr std::string_view ns_http_upload = "urn:xmpp:http:upload:0";

struct UploadDomain {
  std::vector<std::string> hosts;  // whose users may ask for slots
  std::string domain;              // the service's JID, e.g. upload.example.org
  std::string url_base;            // e.g. https://upload.example.org:5443/upload/ (ends with '/')
};

class UploadService : public std::enable_shared_from_this<UploadService> {
 public:
  // Every url_base must have the same path (path_prefix()): one HTTP handler
  // serves the files of every domain.
  UploadService(router::Router& router, boost::asio::any_io_executor executor, std::shared_ptr<UploadStore> store,
                std::vector<UploadDomain> domains);

  // The path the HTTP handler must be routed for, e.g. "/upload/".
  const std::string& path_prefix() const { return path_prefix_; }

  // Registers each domain with the router and in its host's disco#items.
  // Before any traffic.
  void attach();
  // Starts the periodic expiry (and runs it once now).
  void start();
  void stop();

  // The answer to a stanza sent to a service domain; nullopt when none is due.
  std::optional<xml::Element> handle_stanza(const xml::Element& stanza) const;

  // The HTTP side, for requests under path_prefix().
  Decision handle_http(const Request& request) const;

 private:
  const UploadDomain* domain_of(std::string_view jid_domain) const;
  xml::Element disco_info(const xml::Element& iq) const;
  xml::Element request_slot(const xml::Element& iq, const xml::Element& request, const UploadDomain& domain) const;
  Decision handle_put(const Request& request, const UploadRecord& record) const;
  router::Task<void> expiry_loop(std::shared_ptr<UploadService> self);

  router::Router& router_;
  boost::asio::any_io_executor executor_;
  std::shared_ptr<UploadStore> store_;
  std::vector<UploadDomain> domains_;
  std::string path_prefix_;
  boost::asio::steady_timer timer_;
  bool stopped_ = false;
};

// The path of a URL ("https://h:1/a/b/" → "/a/b/"); empty when it has none.
std::string url_path(std::string_view url);

// Content-Disposition for a served file: inline for media and plain text,
// attachment otherwise, with an ASCII fallback name and the RFC 8187 UTF-8 name.
std::string content_disposition(std::string_view content_type, std::string_view filename);

}  // namespace parley::http
