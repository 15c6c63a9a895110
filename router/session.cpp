#include "router/session.hpp"

#include <chrono>
#include <cstdint>
#include <functional>

namespace parley::router {

namespace {

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// FNV-1a: it can hash "local@domain" from the two parts as well as whole.
constexpr std::uint64_t fnv_offset = 14695981039346656037ull;
constexpr std::uint64_t fnv_prime = 1099511628211ull;

std::uint64_t fnv_add(std::uint64_t hash, std::string_view bytes) {
  for (char c : bytes) hash = (hash ^ static_cast<unsigned char>(c)) * fnv_prime;
  return hash;
}

template <class Map, class Key>
auto* find_resource(Map& by_bare, const Key& bare, const xmpp::Jid& full) {
  using ResourcePtr = decltype(&by_bare.begin()->second.front());
  auto found = by_bare.find(bare);
  if (found == by_bare.end()) return ResourcePtr{nullptr};
  for (auto& resource : found->second) {
    if (resource.jid == full) return &resource;
  }
  return ResourcePtr{nullptr};
}

}  // namespace

std::size_t SessionRegistry::BareHash::operator()(std::string_view bare) const noexcept {
  return static_cast<std::size_t>(fnv_add(fnv_offset, bare));
}

std::size_t SessionRegistry::BareHash::operator()(const BareParts& bare) const noexcept {
  if (bare.local.empty()) return static_cast<std::size_t>(fnv_add(fnv_offset, bare.domain));
  return static_cast<std::size_t>(fnv_add(fnv_add(fnv_add(fnv_offset, bare.local), "@"), bare.domain));
}

bool SessionRegistry::BareEqual::operator()(const BareParts& a, std::string_view b) const noexcept {
  if (a.local.empty()) return b == a.domain;
  return b.size() == a.local.size() + 1 + a.domain.size() && b.starts_with(a.local) && b[a.local.size()] == '@' &&
         b.ends_with(a.domain);
}

SessionRegistry::Shard& SessionRegistry::shard_for(const BareParts& bare) const {
  return shards_[BareHash()(bare) % shard_count];
}

std::shared_ptr<Session> SessionRegistry::bind(const xmpp::Jid& full, std::shared_ptr<Session> session) {
  const BareParts bare = bare_parts(full);
  Shard& shard = shard_for(bare);
  std::lock_guard lock(shard.mutex);
  Resource fresh{full, std::move(session), false, 0, false, nullptr, now_seconds()};
  if (Resource* existing = find_resource(shard.by_bare, bare, full)) {
    auto replaced = std::move(existing->session);
    *existing = std::move(fresh);
    return replaced;
  }
  shard.by_bare[full.bare_str()].push_back(std::move(fresh));
  return nullptr;
}

std::optional<Resource> SessionRegistry::unbind(const xmpp::Jid& full, const Session* session) {
  const BareParts bare = bare_parts(full);
  Shard& shard = shard_for(bare);
  std::lock_guard lock(shard.mutex);
  auto found = shard.by_bare.find(bare);
  if (found == shard.by_bare.end()) return std::nullopt;
  auto& resources = found->second;
  for (auto it = resources.begin(); it != resources.end(); ++it) {
    if (it->jid == full && it->session.get() == session) {
      Resource last = std::move(*it);
      resources.erase(it);
      if (resources.empty()) shard.by_bare.erase(found);
      return last;
    }
  }
  return std::nullopt;
}

bool SessionRegistry::transfer(const xmpp::Jid& full, const Session* from, std::shared_ptr<Session> to) {
  const BareParts bare = bare_parts(full);
  Shard& shard = shard_for(bare);
  std::lock_guard lock(shard.mutex);
  Resource* resource = find_resource(shard.by_bare, bare, full);
  if (!resource || resource->session.get() != from) return false;
  resource->session = std::move(to);
  return true;
}

std::optional<Resource> SessionRegistry::find(const xmpp::Jid& full) const {
  const BareParts bare = bare_parts(full);
  Shard& shard = shard_for(bare);
  std::lock_guard lock(shard.mutex);
  if (const Resource* resource = find_resource(shard.by_bare, bare, full)) return *resource;
  return std::nullopt;
}

std::shared_ptr<Session> SessionRegistry::session(const xmpp::Jid& full) const {
  const BareParts bare = bare_parts(full);
  Shard& shard = shard_for(bare);
  std::lock_guard lock(shard.mutex);
  if (const Resource* resource = find_resource(shard.by_bare, bare, full)) return resource->session;
  return nullptr;
}

std::vector<Resource> SessionRegistry::resources(const xmpp::Jid& bare) const {
  const BareParts key = bare_parts(bare);
  Shard& shard = shard_for(key);
  std::lock_guard lock(shard.mutex);
  auto found = shard.by_bare.find(key);
  if (found == shard.by_bare.end()) return {};
  return found->second;
}

std::vector<Resource> SessionRegistry::all() const {
  std::vector<Resource> result;
  for (auto& shard : shards_) {
    std::lock_guard lock(shard.mutex);
    for (const auto& [bare, resources] : shard.by_bare) {
      result.insert(result.end(), resources.begin(), resources.end());
    }
  }
  return result;
}

std::size_t SessionRegistry::count() const {
  std::size_t total = 0;
  for (auto& shard : shards_) {
    std::lock_guard lock(shard.mutex);
    for (const auto& [bare, resources] : shard.by_bare) total += resources.size();
  }
  return total;
}

void SessionRegistry::set_presence(const xmpp::Jid& full, std::shared_ptr<const xml::Element> presence,
                                   int priority) {
  const BareParts bare = bare_parts(full);
  Shard& shard = shard_for(bare);
  std::lock_guard lock(shard.mutex);
  if (Resource* resource = find_resource(shard.by_bare, bare, full)) {
    resource->available = presence != nullptr;
    resource->priority = presence ? priority : 0;
    resource->presence = std::move(presence);
  }
}

void SessionRegistry::set_interested(const xmpp::Jid& full, bool interested) {
  const BareParts bare = bare_parts(full);
  Shard& shard = shard_for(bare);
  std::lock_guard lock(shard.mutex);
  if (Resource* resource = find_resource(shard.by_bare, bare, full)) resource->interested = interested;
}

}  // namespace parley::router
