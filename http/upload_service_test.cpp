#include "http/upload_service.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <fstream>

#include "http/upload_token.hpp"
#include "xmpp/errors.hpp"

namespace parley::http {
namespace {

namespace fs = std::filesystem;
constexpr std::string_view ns_stanzas = "urn:ietf:params:xml:ns:xmpp-stanzas";
constexpr std::string_view ns_disco_info = "http://jabber.org/protocol/disco#info";
constexpr std::string_view ns_data_forms = "jabber:x:data";
constexpr std::string_view base = "https://upload.example.org:5443/upload/";

class UploadServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    directory = fs::temp_directory_path() / ("parley-upload-service-test-" + std::to_string(::getpid()) + "-" +
                                             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(directory);
    UploadLimits limits;
    limits.max_file_size = 1000;
    limits.quota = 1500;
    store = std::make_shared<UploadStore>(directory, limits);
    router.add_host("example.org");
    service = std::make_shared<UploadService>(
        router, io.get_executor(), store,
        std::vector<UploadDomain>{{{"example.org"}, "upload.example.org", std::string(base)}});
  }
  void TearDown() override { fs::remove_all(directory); }

  static xml::Element slot_request(std::string_view filename, std::string_view size, std::string_view content_type,
                                   std::string from = "alice@example.org/phone") {
    xml::Element iq("iq");
    iq.set_attr("type", "get");
    iq.set_attr("id", "r1");
    iq.set_attr("from", std::move(from));
    iq.set_attr("to", "upload.example.org");
    auto& request = iq.add_child("request", std::string(ns_http_upload));
    if (!filename.empty()) request.set_attr("filename", std::string(filename));
    if (!size.empty()) request.set_attr("size", std::string(size));
    if (!content_type.empty()) request.set_attr("content-type", std::string(content_type));
    return iq;
  }

  xml::Element ask(const xml::Element& stanza) {
    auto reply = service->handle_stanza(stanza);
    EXPECT_TRUE(reply);
    return reply ? *reply : xml::Element();
  }

  static std::string condition(const xml::Element& reply) { return std::string(xmpp::stanza_error_condition(reply)); }
  static std::string error_type(const xml::Element& reply) {
    const auto* error = reply.child("error", xml::ns_client);
    return error ? std::string(error->attr("type")) : std::string();
  }

  struct Slot {
    std::string put_url, get_url, authorization, path;
  };
  Slot slot(std::string_view filename = "photo.jpg", std::string_view size = "10",
            std::string_view content_type = "image/jpeg") {
    const auto reply = ask(slot_request(filename, size, content_type));
    EXPECT_EQ(reply.attr("type"), "result") << xml::serialize(reply);
    const auto* element = reply.child("slot", ns_http_upload);
    if (element == nullptr) return {};
    const auto* put = element->child("put", ns_http_upload);
    const auto* header = put->child("header", ns_http_upload);
    EXPECT_EQ(header->attr("name"), "Authorization");
    Slot result{std::string(put->attr("url")), std::string(element->child("get", ns_http_upload)->attr("url")),
                header->text(), ""};
    result.path = *percent_decode(url_path(result.put_url));
    return result;
  }

  static Request request(std::string method, std::string path, std::vector<std::pair<std::string, std::string>> headers,
                         std::optional<std::uint64_t> length = std::nullopt) {
    Request r;
    r.method = std::move(method);
    r.path = path;
    r.target = std::move(path);
    r.headers = std::move(headers);
    r.content_length = length;
    return r;
  }

  static Request put(const Slot& s, std::uint64_t length = 10, std::string content_type = "image/jpeg") {
    return request("PUT", s.path, {{"authorization", s.authorization}, {"content-type", std::move(content_type)}},
                   length);
  }

  // Runs an accepted PUT as the HTTP server would: the body lands in the file.
  Response upload(const Decision& decision, std::string_view body) {
    EXPECT_TRUE(decision.upload) << decision.response.status << " " << decision.response.body;
    if (!decision.upload) return decision.response;
    std::ofstream(decision.upload->file, std::ios::binary) << body;
    return decision.upload->finish(true);
  }

  static std::string header(const Response& response, std::string_view name) {
    for (const auto& [key, value] : response.headers) {
      if (key == name) return value;
    }
    return {};
  }

  fs::path directory;
  boost::asio::io_context io;
  router::Router router;
  std::shared_ptr<UploadStore> store;
  std::shared_ptr<UploadService> service;
};

TEST_F(UploadServiceTest, AttachRoutesTheDomainAndListsItOnTheHost) {
  EXPECT_FALSE(router.serves("upload.example.org"));
  service->attach();
  EXPECT_TRUE(router.serves("upload.example.org"));
  const auto items = router.host("example.org")->disco_items();
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].jid, "upload.example.org");
}

TEST_F(UploadServiceTest, DiscoInfoAnnouncesTheServiceAndItsSizeLimit) {
  xml::Element iq("iq");
  iq.set_attr("type", "get");
  iq.set_attr("id", "d1");
  iq.set_attr("from", "someone@elsewhere.net/x");
  iq.set_attr("to", "upload.example.org");
  iq.add_child("query", std::string(ns_disco_info));
  const auto reply = ask(iq);
  ASSERT_EQ(reply.attr("type"), "result");
  const auto* query = reply.child("query", ns_disco_info);
  ASSERT_NE(query, nullptr);
  const auto* identity = query->child("identity", ns_disco_info);
  EXPECT_EQ(identity->attr("category"), "store");
  EXPECT_EQ(identity->attr("type"), "file");
  bool feature = false;
  for (const auto& child : query->children()) feature |= child.attr("var") == ns_http_upload;
  EXPECT_TRUE(feature);
  const auto* form = query->child("x", ns_data_forms);
  ASSERT_NE(form, nullptr);
  std::map<std::string, std::string> fields;
  for (const auto& field : form->children())
    fields[std::string(field.attr("var"))] = field.child_text("value", ns_data_forms);
  EXPECT_EQ(fields["FORM_TYPE"], ns_http_upload);
  EXPECT_EQ(fields["max-file-size"], "1000");
}

TEST_F(UploadServiceTest, SlotHasUnguessablePutAndGetUrlsAndASignedAuthorization) {
  const auto first = slot("my photo.jpg");
  EXPECT_TRUE(first.put_url.starts_with(base));
  EXPECT_EQ(first.put_url, first.get_url);
  EXPECT_TRUE(first.put_url.ends_with("/my%20photo.jpg"));
  EXPECT_EQ(first.path.substr(0, 8), "/upload/");
  EXPECT_TRUE(first.authorization.starts_with("Bearer "));
  const auto id = first.path.substr(8, 32);
  EXPECT_TRUE(verify_slot(store->secret(), {id + "/my photo.jpg", 10, "image/jpeg", 0},
                          bearer_token(first.authorization), store->now()));
  EXPECT_NE(slot("my photo.jpg").put_url, first.put_url);
}

TEST_F(UploadServiceTest, FileTooLargeCarriesTheLimit) {
  const auto reply = ask(slot_request("big.bin", "1001", ""));
  EXPECT_EQ(condition(reply), "not-acceptable");
  EXPECT_EQ(error_type(reply), "modify");
  const auto* too_large = reply.child("error", xml::ns_client)->child("file-too-large", ns_http_upload);
  ASSERT_NE(too_large, nullptr) << xml::serialize(reply);
  EXPECT_EQ(too_large->child_text("max-file-size", ns_http_upload), "1000");
}

TEST_F(UploadServiceTest, OverQuotaIsResourceConstraint) {
  slot("a", "1000");
  const auto reply = ask(slot_request("b", "501", ""));
  EXPECT_EQ(condition(reply), "resource-constraint");
  EXPECT_EQ(error_type(reply), "wait");
  EXPECT_NE(reply.child("error", xml::ns_client)->child_text("text", ns_stanzas).find("Quota"), std::string::npos);
  EXPECT_EQ(ask(slot_request("b", "500", "")).attr("type"), "result");
}

TEST_F(UploadServiceTest, MalformedRequestsAreBadRequest) {
  const std::vector<std::tuple<std::string, std::string, std::string>> bad = {
      {"", "10", ""},
      {"..", "10", ""},
      {"/", "10", ""},
      {"a.txt", "", ""},
      {"a.txt", "0", ""},
      {"a.txt", "-1", ""},
      {"a.txt", "1e3", ""},
      {"a.txt", " 10", ""},
      {"a.txt", "99999999999999999999999", ""},
      {"a.txt", "10", "text"},
      {"a.txt", "10", "text/plain\r\nX: y"},
  };
  for (const auto& [filename, size, type] : bad) {
    const auto reply = ask(slot_request(filename, size, type));
    EXPECT_EQ(condition(reply), "bad-request") << filename << " " << size << " " << type;
    EXPECT_EQ(error_type(reply), "modify");
  }
  EXPECT_EQ(store->record_count(), 0u);
}

TEST_F(UploadServiceTest, OnlyLocalUsersOfTheHostGetSlots) {
  for (const std::string from : {"mallory@elsewhere.net/x", "example.org", "upload.example.org"}) {
    const auto reply = ask(slot_request("a.txt", "10", "", from));
    EXPECT_EQ(condition(reply), "forbidden") << from;
  }
}

TEST_F(UploadServiceTest, OtherStanzas) {
  xml::Element message("message");
  message.set_attr("from", "alice@example.org/x");
  message.set_attr("to", "upload.example.org");
  EXPECT_EQ(condition(ask(message)), "service-unavailable");
  xml::Element presence("presence");
  presence.set_attr("from", "alice@example.org/x");
  presence.set_attr("to", "upload.example.org");
  EXPECT_FALSE(service->handle_stanza(presence));
  auto unknown = slot_request("a", "1", "");
  unknown.children().clear();
  unknown.add_child("query", "jabber:iq:version");
  EXPECT_EQ(condition(ask(unknown)), "service-unavailable");
  auto result = unknown;
  result.set_attr("type", "result");
  EXPECT_FALSE(service->handle_stanza(result));
  auto error = unknown;
  error.set_attr("type", "error");
  EXPECT_FALSE(service->handle_stanza(error));
  auto to_a_user = slot_request("a", "1", "");
  to_a_user.set_attr("to", "someone@upload.example.org");
  EXPECT_EQ(condition(ask(to_a_user)), "service-unavailable");
}

TEST_F(UploadServiceTest, PutThenGet) {
  const auto s = slot("photo.jpg", "10", "image/jpeg");
  EXPECT_EQ(service->handle_http(request("GET", s.path, {})).response.status, 404u);  // nothing stored yet
  EXPECT_EQ(upload(service->handle_http(put(s)), "0123456789").status, 201u);
  const auto got = service->handle_http(request("GET", s.path, {})).response;
  EXPECT_EQ(got.status, 200u);
  EXPECT_EQ(got.file_size, 10u);
  std::ifstream in(got.file, std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "0123456789");
  EXPECT_EQ(header(got, "Content-Type"), "image/jpeg");
  EXPECT_EQ(header(got, "X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(header(got, "Content-Disposition"), "inline; filename=\"photo.jpg\"; filename*=UTF-8''photo.jpg");
  EXPECT_FALSE(header(got, "Content-Security-Policy").empty());
  EXPECT_EQ(service->handle_http(request("HEAD", s.path, {})).response.status, 200u);
  EXPECT_EQ(service->handle_http(put(s)).response.status, 409u);  // a slot takes one PUT
}

TEST_F(UploadServiceTest, PutRefusals) {
  const auto s = slot("a.txt", "10", "text/plain");
  auto forged = s;
  forged.authorization = "Bearer 99999999999." + std::string(64, '0');
  EXPECT_EQ(service->handle_http(put(forged, 10, "text/plain")).response.status, 403u);
  auto missing = put(s, 10, "text/plain");
  missing.headers.erase(missing.headers.begin());
  EXPECT_EQ(service->handle_http(missing).response.status, 403u);
  auto other = slot("b.txt", "10", "text/plain");
  other.authorization = s.authorization;  // another slot's token
  EXPECT_EQ(service->handle_http(put(other, 10, "text/plain")).response.status, 403u);
  EXPECT_EQ(service->handle_http(put(s, 1001, "text/plain")).response.status, 413u);  // above the per-file limit
  EXPECT_EQ(service->handle_http(put(s, 11, "text/plain")).response.status, 413u);    // above the slot's size
  EXPECT_EQ(service->handle_http(put(s, 9, "text/plain")).response.status, 400u);
  EXPECT_EQ(service->handle_http(put(s, 10, "text/html")).response.status, 400u);
  EXPECT_EQ(service->handle_http(request("PUT", s.path, {{"authorization", s.authorization}})).response.status, 411u);
  // None of that used the slot up.
  EXPECT_EQ(upload(service->handle_http(put(s, 10, "text/plain")), "0123456789").status, 201u);
}

TEST_F(UploadServiceTest, AnInterruptedPutLeavesTheSlotUsable) {
  const auto s = slot("a.txt", "10", "text/plain");
  const auto first = service->handle_http(put(s, 10, "text/plain"));
  ASSERT_TRUE(first.upload);
  EXPECT_EQ(service->handle_http(put(s, 10, "text/plain")).response.status, 409u);  // while it runs
  EXPECT_EQ(first.upload->finish(false).status, 400u);
  EXPECT_FALSE(fs::exists(first.upload->file));
  EXPECT_EQ(service->handle_http(request("GET", s.path, {})).response.status, 404u);
  EXPECT_EQ(upload(service->handle_http(put(s, 10, "text/plain")), "0123456789").status, 201u);
}

TEST_F(UploadServiceTest, UnknownPathsAndMethods) {
  const auto s = slot("a.txt", "10", "text/plain");
  ASSERT_EQ(upload(service->handle_http(put(s, 10, "text/plain")), "0123456789").status, 201u);
  const auto id = s.path.substr(8, 32);
  for (const std::string& path : std::vector<std::string>{
           "/upload/", "/upload/" + id, "/upload/" + id + "/", "/upload/" + id + "/b.txt", "/upload/" + id + "/a.txt/x",
           "/upload/../" + id + "/a.txt", "/upload/0123456789abcdef0123456789abcdef/a.txt",
           "/upload/" + id.substr(0, 31) + "/a.txt"}) {
    EXPECT_EQ(service->handle_http(request("GET", path, {})).response.status, 404u) << path;
  }
  const auto removal = service->handle_http(request("DELETE", s.path, {})).response;
  EXPECT_EQ(removal.status, 405u);
  EXPECT_EQ(header(removal, "Allow"), "GET, HEAD, PUT, OPTIONS");
  const auto preflight = service->handle_http(request("OPTIONS", s.path, {})).response;
  EXPECT_EQ(preflight.status, 204u);
  EXPECT_EQ(header(preflight, "Access-Control-Allow-Headers"), "Authorization, Content-Type");
}

TEST_F(UploadServiceTest, DangerousTypesAreServedAsAttachments) {
  EXPECT_TRUE(content_disposition("text/html", "x.html").starts_with("attachment;"));
  EXPECT_TRUE(content_disposition("image/svg+xml", "x.svg").starts_with("attachment;"));
  EXPECT_TRUE(content_disposition("image/png", "x.png").starts_with("inline;"));
  EXPECT_EQ(content_disposition("application/pdf", "a\"b\xc3\xa9.pdf"),
            "attachment; filename=\"a_b__.pdf\"; filename*=UTF-8''a%22b%C3%A9.pdf");
}

TEST(UrlPath, OfUrls) {
  EXPECT_EQ(url_path("https://h:1/a/b/"), "/a/b/");
  EXPECT_EQ(url_path("https://h/"), "/");
  EXPECT_EQ(url_path("https://h"), "");
  EXPECT_EQ(url_path("h/a"), "");
}

}  // namespace
}  // namespace parley::http
