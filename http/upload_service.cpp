#include "http/upload_service.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>

#include "http/upload_token.hpp"
#include "xmpp/errors.hpp"
#include "xmpp/jid.hpp"

namespace parley::http {

namespace {

constexpr std::string_view ns_disco_info = "http://jabber.org/protocol/disco#info";
constexpr std::string_view ns_disco_items = "http://jabber.org/protocol/disco#items";
constexpr std::string_view ns_data_forms = "jabber:x:data";
constexpr std::string_view default_content_type = "application/octet-stream";
constexpr auto longest_expiry_interval = std::chrono::seconds(60);

// Browsers must neither run nor sniff what users upload.
constexpr std::string_view content_security_policy = "default-src 'none'; frame-ancestors 'none'; sandbox";

bool is_file_id(std::string_view id) {
  return id.size() == 32 &&
         std::all_of(id.begin(), id.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  std::uint64_t value = 0;
  if (text.empty() || text.size() > 19) return std::nullopt;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

void add_cors(Response& response) {
  response.headers.emplace_back("Access-Control-Allow-Origin", "*");
  response.headers.emplace_back("Access-Control-Allow-Methods", "GET, HEAD, PUT, OPTIONS");
  response.headers.emplace_back("Access-Control-Allow-Headers", "Authorization, Content-Type");
}

Decision answer(unsigned status, std::string text) {
  auto response = Response::text(status, std::move(text));
  add_cors(response);
  return {std::move(response), std::nullopt};
}

xml::Element& error_element(xml::Element& reply) { return *reply.child("error", reply.ns()); }

}  // namespace

std::string url_path(std::string_view url) {
  const auto scheme = url.find("://");
  if (scheme == std::string_view::npos) return {};
  const auto slash = url.find('/', scheme + 3);
  if (slash == std::string_view::npos) return {};
  return std::string(url.substr(slash));
}

std::string content_disposition(std::string_view content_type, std::string_view filename) {
  const auto media_type = content_type.substr(0, content_type.find(';'));
  const bool shown = (media_type.starts_with("image/") && media_type != "image/svg+xml") ||
                     media_type.starts_with("video/") || media_type.starts_with("audio/") || media_type == "text/plain";
  std::string ascii;
  for (const char c : filename) {
    const auto byte = static_cast<unsigned char>(c);
    ascii += (byte < 0x20 || byte > 0x7e || c == '"' || c == '\\') ? '_' : c;
  }
  return std::string(shown ? "inline" : "attachment") + "; filename=\"" + ascii + "\"; filename*=UTF-8''" +
         percent_encode(filename);
}

UploadService::UploadService(router::Router& router, boost::asio::any_io_executor executor,
                             std::shared_ptr<UploadStore> store, std::vector<UploadDomain> domains)
    : router_(router),
      executor_(std::move(executor)),
      store_(std::move(store)),
      domains_(std::move(domains)),
      timer_(executor_) {
  if (domains_.empty()) throw std::invalid_argument("upload: no service domain");
  path_prefix_ = url_path(domains_.front().url_base);
  for (const auto& domain : domains_) {
    if (url_path(domain.url_base) != path_prefix_ || path_prefix_.empty() || path_prefix_.back() != '/') {
      throw std::invalid_argument("upload: every url_base must end with the same path, ending with '/'");
    }
  }
}

void UploadService::attach() {
  for (const auto& domain : domains_) {
    router_.add_domain_route(domain.domain, [self = shared_from_this()](xml::Element& stanza, const xmpp::Jid&) {
      auto reply = self->handle_stanza(stanza);
      if (reply) boost::asio::co_spawn(self->executor_, self->router_.route(std::move(*reply)), boost::asio::detached);
      return true;
    });
    for (const auto& name : domain.hosts) {
      if (auto* host = router_.host(name)) host->add_disco_item({domain.domain, "HTTP File Upload"});
    }
  }
}

void UploadService::start() {
  boost::asio::co_spawn(executor_, expiry_loop(shared_from_this()), boost::asio::detached);
}

void UploadService::stop() {
  boost::asio::post(executor_, [self = shared_from_this()] {
    self->stopped_ = true;
    self->timer_.cancel();
  });
}

// 'self' keeps the service alive while the loop waits.
router::Task<void> UploadService::expiry_loop(std::shared_ptr<UploadService> self) {
  const auto& limits = self->store_->limits();
  const auto interval = std::clamp(std::min(limits.expire_after, limits.slot_timeout), std::chrono::seconds(1),
                                   std::chrono::seconds(longest_expiry_interval));
  while (!self->stopped_) {
    try {
      if (const auto removed = self->store_->expire()) {
        spdlog::info("upload: {} expired file(s) or slot(s) removed", removed);
      }
    } catch (const std::exception& e) {
      spdlog::error("upload: expiry failed: {}", e.what());
    }
    self->timer_.expires_after(interval);
    boost::system::error_code ec;
    co_await self->timer_.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
  }
}

const UploadDomain* UploadService::domain_of(std::string_view jid_domain) const {
  for (const auto& domain : domains_) {
    if (domain.domain == jid_domain) return &domain;
  }
  return nullptr;
}

std::optional<xml::Element> UploadService::handle_stanza(const xml::Element& stanza) const {
  if (xmpp::is_error_stanza(stanza) || stanza.name() == "presence") return std::nullopt;
  const auto to = xmpp::Jid::parse(stanza.attr("to"));
  const auto* domain = to ? domain_of(to->domain()) : nullptr;
  if (stanza.name() != "iq" || domain == nullptr || !to->local().empty()) {
    return xmpp::stanza_error(stanza, "service-unavailable");
  }
  const auto type = stanza.attr("type");
  if (type == "result") return std::nullopt;
  const auto* payload = stanza.first_child_element();
  if (type == "get" && payload != nullptr && payload->is("query", ns_disco_info) && !payload->has_attr("node")) {
    return disco_info(stanza);
  }
  if (type == "get" && payload != nullptr && payload->is("query", ns_disco_items) && !payload->has_attr("node")) {
    auto reply = xmpp::iq_result(stanza);
    reply.add_child("query", std::string(ns_disco_items));
    return reply;
  }
  if (type == "get" && payload != nullptr && payload->is("request", ns_http_upload)) {
    return request_slot(stanza, *payload, *domain);
  }
  if (type != "get" && type != "set") return xmpp::stanza_error(stanza, "bad-request");
  return xmpp::stanza_error(stanza, "service-unavailable");
}

xml::Element UploadService::disco_info(const xml::Element& iq) const {
  auto reply = xmpp::iq_result(iq);
  auto& query = reply.add_child("query", std::string(ns_disco_info));
  auto& identity = query.add_child("identity", std::string(ns_disco_info));
  identity.set_attr("category", "store");
  identity.set_attr("type", "file");
  identity.set_attr("name", "HTTP File Upload");
  for (const auto feature : {ns_http_upload, ns_disco_info, ns_disco_items}) {
    query.add_child("feature", std::string(ns_disco_info)).set_attr("var", std::string(feature));
  }
  // XEP-0128 extended information: the size limit clients check before asking.
  auto& form = query.add_child("x", std::string(ns_data_forms));
  form.set_attr("type", "result");
  auto& form_type = form.add_child("field", std::string(ns_data_forms));
  form_type.set_attr("var", "FORM_TYPE");
  form_type.set_attr("type", "hidden");
  form_type.add_child("value", std::string(ns_data_forms)).add_text(std::string(ns_http_upload));
  auto& max_size = form.add_child("field", std::string(ns_data_forms));
  max_size.set_attr("var", "max-file-size");
  max_size.add_child("value", std::string(ns_data_forms)).add_text(std::to_string(store_->limits().max_file_size));
  return reply;
}

xml::Element UploadService::request_slot(const xml::Element& iq, const xml::Element& request,
                                         const UploadDomain& domain) const {
  const auto from = xmpp::Jid::parse(iq.attr("from"));
  if (!from || from->local().empty() ||
      std::find(domain.hosts.begin(), domain.hosts.end(), from->domain()) == domain.hosts.end()) {
    return xmpp::stanza_error(iq, "forbidden", "Only local users may upload files here");
  }
  const auto raw_name = request.attr("filename");
  if (raw_name.empty()) return xmpp::stanza_error(iq, "bad-request", "The filename attribute is missing");
  const auto filename = sanitise_filename(raw_name);
  if (filename.empty()) return xmpp::stanza_error(iq, "bad-request", "The filename is not usable");
  const auto size = parse_size(request.attr("size"));
  if (!size || *size == 0) {
    return xmpp::stanza_error(iq, "bad-request", "The size attribute must be a positive number of bytes");
  }
  std::string content_type(default_content_type);
  if (const auto given = request.attr("content-type"); !given.empty()) {
    auto normal = normalise_content_type(given);
    if (!normal) return xmpp::stanza_error(iq, "bad-request", "The content-type is not a valid media type");
    content_type = std::move(*normal);
  }
  const auto owner = from->bare().str();
  UploadStore::Reservation reservation;
  try {
    reservation = store_->reserve(owner, filename, *size, content_type);
  } catch (const std::exception& e) {
    spdlog::error("upload: cannot grant a slot to {}: {}", owner, e.what());
    return xmpp::stanza_error(iq, "internal-server-error");
  }
  const auto& limits = store_->limits();
  if (reservation.refusal == UploadStore::Refusal::too_large) {
    // XEP-0363 §5: not-acceptable with the limit, so the client can tell the user.
    auto reply = xmpp::stanza_error(
        iq, "not-acceptable",
        "File too large. The maximum file size is " + std::to_string(limits.max_file_size) + " bytes");
    auto& too_large = error_element(reply).add_child("file-too-large", std::string(ns_http_upload));
    too_large.add_child("max-file-size", std::string(ns_http_upload)).add_text(std::to_string(limits.max_file_size));
    return reply;
  }
  if (reservation.refusal == UploadStore::Refusal::over_quota) {
    return xmpp::stanza_error(iq, "resource-constraint",
                              "Quota reached: " + std::to_string(store_->usage(owner)) + " of " +
                                  std::to_string(limits.quota) + " bytes in use; files expire after " +
                                  std::to_string(limits.expire_after.count()) + " seconds");
  }
  if (reservation.refusal == UploadStore::Refusal::too_many_slots) {
    return xmpp::stanza_error(iq, "resource-constraint",
                              "Too many slots awaiting their upload: " + std::to_string(limits.max_open_slots) +
                                  "; use them or wait " + std::to_string(limits.slot_timeout.count()) +
                                  " seconds for them to expire");
  }
  const auto& record = reservation.record;
  const auto url = domain.url_base + record.id + "/" + percent_encode(record.filename);
  const auto token = sign_slot(
      store_->secret(), {record.id + "/" + record.filename, record.size, record.content_type, record.slot_expires});
  spdlog::info("upload: slot {} for {} ({} bytes, {})", record.id, owner, record.size, record.content_type);
  auto reply = xmpp::iq_result(iq);
  auto& slot = reply.add_child("slot", std::string(ns_http_upload));
  auto& put = slot.add_child("put", std::string(ns_http_upload));
  put.set_attr("url", url);
  auto& header = put.add_child("header", std::string(ns_http_upload));
  header.set_attr("name", "Authorization");
  header.add_text("Bearer " + token);
  slot.add_child("get", std::string(ns_http_upload)).set_attr("url", url);
  return reply;
}

Decision UploadService::handle_http(const Request& request) const {
  if (request.method == "OPTIONS") {  // a browser's CORS preflight
    Response response;
    response.status = 204;
    add_cors(response);
    return {std::move(response), std::nullopt};
  }
  const auto rest = std::string_view(request.path).substr(std::min(request.path.size(), path_prefix_.size()));
  const auto slash = rest.find('/');
  const auto id = rest.substr(0, slash);
  const auto name = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
  const bool known_method = request.method == "GET" || request.method == "HEAD" || request.method == "PUT";
  if (!known_method) {
    auto refusal = answer(405, "Method Not Allowed");
    refusal.response.headers.emplace_back("Allow", "GET, HEAD, PUT, OPTIONS");
    return refusal;
  }
  const auto record = is_file_id(id) ? store_->find(id) : std::nullopt;
  if (!record || record->filename != name) return answer(404, "Not Found");
  if (request.method == "PUT") return handle_put(request, *record);
  if (!record->complete()) return answer(404, "Not Found");
  Response response;
  response.file = store_->data_path(record->id).string();
  response.file_size = record->size;
  response.headers.emplace_back("Content-Type", record->content_type);
  response.headers.emplace_back("Content-Disposition", content_disposition(record->content_type, record->filename));
  response.headers.emplace_back("X-Content-Type-Options", "nosniff");
  response.headers.emplace_back("Content-Security-Policy", std::string(content_security_policy));
  response.headers.emplace_back("Cache-Control", "private, max-age=3600");
  add_cors(response);
  return {std::move(response), std::nullopt};
}

Decision UploadService::handle_put(const Request& request, const UploadRecord& record) const {
  if (!request.content_length) return answer(411, "Length Required");
  if (*request.content_length > store_->limits().max_file_size) return answer(413, "Payload Too Large");
  const SlotClaim claim{record.id + "/" + record.filename, record.size, record.content_type, 0};
  if (!verify_slot(store_->secret(), claim, bearer_token(request.header("authorization")), store_->now())) {
    return answer(403, "Forbidden: no valid upload authorisation for this slot");
  }
  const auto start = store_->begin_put(record.id);
  if (!start) return answer(404, "Not Found");
  if (start->busy) return answer(409, "Conflict: this slot has been used");
  const auto given_type = request.header("content-type");
  const auto content_type = given_type.empty() ? std::optional<std::string>(std::string(default_content_type))
                                               : normalise_content_type(given_type);
  std::optional<Decision> refusal;
  if (*request.content_length > record.size) {
    refusal = answer(413, "Payload Too Large: the slot is for " + std::to_string(record.size) + " bytes");
  } else if (*request.content_length < record.size) {
    refusal = answer(400, "Bad Request: the slot is for " + std::to_string(record.size) + " bytes");
  } else if (content_type != record.content_type) {
    refusal = answer(400, "Bad Request: the slot is for Content-Type " + record.content_type);
  }
  if (refusal) {
    store_->finish_put(record.id, false);
    return std::move(*refusal);
  }
  Upload upload;
  upload.file = store_->partial_path(record.id).string();
  upload.size = record.size;
  upload.finish = [store = store_, id = record.id, owner = record.owner](bool complete) {
    if (!complete) {
      store->finish_put(id, false);
      return Response::text(400, "Bad Request: incomplete body");
    }
    if (!store->finish_put(id, true)) return Response::text(500, "Internal Server Error: the file was not stored");
    spdlog::info("upload: {} stored for {}", id, owner);
    auto response = Response::text(201, "Created");
    add_cors(response);
    return response;
  };
  return {Response{}, std::move(upload)};
}

}  // namespace parley::http
