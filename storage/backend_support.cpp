#include "storage/backend_support.hpp"

#include <unordered_set>

namespace parley::storage {

std::string owner_jid(std::string_view username, std::string_view domain) {
  std::string jid;
  jid.reserve(username.size() + 1 + domain.size());
  jid.append(username).append("@").append(domain);
  return jid;
}

std::vector<std::string> unique_groups(const std::vector<std::string>& groups) {
  std::vector<std::string> unique;
  unique.reserve(groups.size());
  std::unordered_set<std::string_view> seen;
  for (const auto& group : groups) {
    if (seen.insert(group).second) unique.push_back(group);
  }
  return unique;
}

RosterItem removed_item(std::string jid) {
  RosterItem item;
  item.jid = std::move(jid);
  return item;
}

void check_roster_import(std::int64_t version, const std::vector<RosterChange>& changes) {
  if (version < static_cast<std::int64_t>(changes.size())) {
    throw Error("a roster of " + std::to_string(changes.size()) +
                " entries cannot be at version " + std::to_string(version) +
                ": every entry took at least one change");
  }
  std::unordered_set<std::string_view> seen;
  for (const auto& change : changes) {
    if (!seen.insert(change.item.jid).second)
      throw Error("roster import names '" + change.item.jid + "' twice");
  }
}

std::string_view subscription_name(Subscription subscription) {
  switch (subscription) {
    case Subscription::none:
      return "none";
    case Subscription::to:
      return "to";
    case Subscription::from:
      return "from";
    case Subscription::both:
      return "both";
  }
  return "none";
}

std::optional<Subscription> parse_subscription(std::string_view name) {
  if (name == "none") return Subscription::none;
  if (name == "to") return Subscription::to;
  if (name == "from") return Subscription::from;
  if (name == "both") return Subscription::both;
  return std::nullopt;
}

}  // namespace parley::storage
