#include "modules/mam_query.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <optional>

#include "modules/datetime.hpp"
#include "modules/im_util.hpp"
#include "xmpp/errors.hpp"
#include "xmpp/jid.hpp"

namespace parley::modules::mam {
namespace {

constexpr std::string_view ns_data = "jabber:x:data";
constexpr std::string_view ns_delay = "urn:xmpp:delay";

std::int64_t micros(std::chrono::system_clock::time_point when) {
  return std::chrono::duration_cast<std::chrono::microseconds>(when.time_since_epoch()).count();
}

std::chrono::system_clock::time_point from_micros(std::int64_t value) {
  return std::chrono::system_clock::time_point(std::chrono::microseconds(value));
}

std::optional<std::size_t> parse_size(std::string_view text) {
  std::size_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

xml::Element result_message(const std::string& owner, const std::string& requester, const std::string& query_id,
                            const storage::ArchivedMessage& archived, xml::Element original) {
  xml::Element result("message");
  result.set_attr("from", owner);
  result.set_attr("to", requester);
  auto& wrapper = result.add_child("result", std::string(ns_mam));
  if (!query_id.empty()) wrapper.set_attr("queryid", query_id);
  wrapper.set_attr("id", archived.id);
  auto& forwarded = wrapper.add_child("forwarded", std::string(ns_forward));
  forwarded.add_child("delay", std::string(ns_delay))
      .set_attr("stamp", format_datetime(from_micros(archived.timestamp)));
  forwarded.add_child(std::move(original));
  return result;
}

}  // namespace

xml::Element query_form(const xml::Element& request) {
  auto reply = xmpp::iq_result(request);
  auto& form = reply.add_child("query", std::string(ns_mam)).add_child("x", std::string(ns_data));
  form.set_attr("type", "form");
  auto field = [&](std::string_view var, std::string_view type) -> xml::Element& {
    auto& element = form.add_child("field", std::string(ns_data));
    element.set_attr("var", std::string(var));
    element.set_attr("type", std::string(type));
    return element;
  };
  field("FORM_TYPE", "hidden").add_child("value", std::string(ns_data)).add_text(std::string(ns_mam));
  field("with", "jid-single");
  field("start", "text-single");
  field("end", "text-single");
  field("before-id", "text-single");
  field("after-id", "text-single");
  return reply;
}

std::string read_query(const xml::Element& payload, const QueryOptions& options, storage::ArchiveQuery& query) {
  if (const auto* form = payload.child("x", ns_data)) {
    for (const auto& field : form->children()) {
      if (!field.is("field", ns_data)) continue;
      const auto var = field.attr("var");
      const std::string value = field.child_text("value", ns_data);
      if (var == "FORM_TYPE") {
        if (value != ns_mam) return "bad-request";
      } else if (var == "with") {
        const auto jid = xmpp::Jid::parse(value);
        if (!jid) return "jid-malformed";
        query.with = options.with_form == WithForm::bare ? jid->bare_str() : jid->str();
      } else if (var == "start" || var == "end") {
        const auto when = parse_datetime(value);
        if (!when) return "bad-request";
        (var == "start" ? query.start : query.end) = micros(*when);
      } else if (var == "after-id") {
        query.after_id = value;
      } else if (var == "before-id") {
        query.before_id = value;
      } else {
        return "feature-not-implemented";
      }
    }
  }
  query.max = options.max_page;
  if (const auto* set = payload.child("set", ns_rsm)) {
    if (set->child("index", ns_rsm) != nullptr) return "feature-not-implemented";
    if (const auto* max = set->child("max", ns_rsm)) {
      const auto value = parse_size(max->text());
      if (!value) return "bad-request";
      query.max = std::min(*value, options.max_page);
    }
    if (const auto* after = set->child("after", ns_rsm)) query.after_id = after->text();
    if (const auto* before = set->child("before", ns_rsm)) {
      if (before->text().empty()) {
        query.last = true;
      } else {
        query.before_id = before->text();
      }
    }
  }
  return {};
}

std::vector<xml::Element> answer_query(storage::ArchiveStore& store, const std::string& owner,
                                       const std::string& requester, const xml::Element& request,
                                       const QueryOptions& options) {
  std::vector<xml::Element> answer;
  const xml::Element* payload = request.first_child_element();
  if (payload == nullptr || !payload->is("query", ns_mam)) {
    answer.push_back(xmpp::stanza_error(request, "bad-request"));
    return answer;
  }
  storage::ArchiveQuery query;
  if (auto condition = read_query(*payload, options, query); !condition.empty()) {
    answer.push_back(xmpp::stanza_error(request, condition));
    return answer;
  }
  std::optional<storage::ArchivePage> page;
  try {
    page = store.query(owner, query);
  } catch (const storage::Error& e) {
    spdlog::error("mam: querying the archive of {} failed: {}", owner, e.what());
    answer.push_back(xmpp::stanza_error(request, "internal-server-error"));
    return answer;
  }
  if (!page) {
    answer.push_back(xmpp::stanza_error(request, "item-not-found", "no such message in the archive"));
    return answer;
  }

  const std::string query_id(payload->attr("queryid"));
  for (const auto& archived : page->messages) {
    auto original = im::parse_stored_stanza(archived.stanza);
    if (!original) {
      spdlog::warn("mam: skipping archived message {} of {}: it does not parse", archived.id, owner);
      continue;
    }
    answer.push_back(result_message(owner, requester, query_id, archived, std::move(*original)));
  }
  auto reply = xmpp::iq_result(request);
  auto& fin = reply.add_child("fin", std::string(ns_mam));
  if (page->complete) fin.set_attr("complete", "true");
  if (!query_id.empty()) fin.set_attr("queryid", query_id);
  auto& set = fin.add_child("set", std::string(ns_rsm));
  if (!page->messages.empty()) {
    set.add_child("first", std::string(ns_rsm)).add_text(page->messages.front().id);
    set.add_child("last", std::string(ns_rsm)).add_text(page->messages.back().id);
  }
  set.add_child("count", std::string(ns_rsm)).add_text(std::to_string(page->count));
  answer.push_back(std::move(reply));
  return answer;
}

}  // namespace parley::modules::mam
