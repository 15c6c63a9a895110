// A test-only helper for the storage end-to-end tests, working on any
// backend URI:
//   fill URI DOMAIN COUNT   COUNT accounts user0001... with password
//                           "pw-<username>" (real SCRAM keys at a low
//                           iteration count, so filling is fast), rosters
//                           with groups and a removed contact, pending
//                           subscriptions (every 10th user) and two offline
//                           messages (every 5th user)
//   dump URI                everything stored, one canonical line per record
//   check-passwords URI DOMAIN
//                           every account of DOMAIN accepts "pw-<username>"
//                           for both hashes
#include <cstdio>
#include <iostream>
#include <string>

#include "storage/storage.hpp"

namespace {

using namespace parley;

constexpr std::uint32_t fill_iterations = 64;

std::string username(int n) {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "user%04d", n);
  return buffer;
}

std::string describe(const sasl::ScramCredentials& credentials) {
  return sasl::hex_encode(credentials.salt) + ":" + std::to_string(credentials.iterations) + ":" +
         sasl::hex_encode(credentials.stored_key) + ":" + sasl::hex_encode(credentials.server_key);
}

void fill(storage::Storage& storage, const std::string& domain, int count) {
  for (int n = 1; n <= count; ++n) {
    const auto user = username(n);
    const auto password = "pw-" + user;
    storage::Account account{user, domain,
                             sasl::make_credentials(sasl::Hash::sha1, password, fill_iterations),
                             sasl::make_credentials(sasl::Hash::sha256, password, fill_iterations),
                             1700000000 + n};
    storage.accounts().create(account);
    const auto owner = user + "@" + domain;
    // Neighbours on a ring, with subscriptions that agree on both sides
    // (a login's presence exchange changes nothing): n±1 mutual, n+2 "to",
    // n−2 "from"; every third user also waits for an answer from a remote
    // contact; everyone has a removed item.
    const auto contact = [&](int offset) {
      return username(((n - 1 + offset) % count + count) % count + 1) + "@" + domain;
    };
    using storage::Subscription;
    storage.roster().put_item(owner, {contact(1), "Next " + std::to_string(n), Subscription::both, false,
                                      false, {"Friends", "Ring " + std::to_string(n % 7)}});
    storage.roster().put_item(owner, {contact(-1), "", Subscription::both, false, false, {"Friends"}});
    storage.roster().put_item(owner, {contact(2), "", Subscription::to, false, n % 4 == 0, {}});
    storage.roster().put_item(owner, {contact(-2), "Follower", Subscription::from, false, false, {}});
    if (n % 3 == 0) {
      storage.roster().put_item(owner, {"remote@elsewhere.example", "Remote", Subscription::none, true,
                                        false, {"Far"}});
    }
    storage.roster().put_item(owner, storage::RosterItem{"gone@elsewhere.example", "Gone", {}, false,
                                                         false, {"Old"}});
    storage.roster().remove_item(owner, "gone@elsewhere.example");
    if (n % 10 == 0) {
      storage.roster().add_pending_in(
          owner, "stranger@elsewhere.example",
          "<presence from='stranger@elsewhere.example' to='" + owner + "' type='subscribe'/>");
    }
    if (n % 5 == 0) {
      for (int k = 1; k <= 2; ++k) {
        storage.offline().push(owner,
                               "<message xmlns='jabber:client' from='" + contact(1) + "' to='" +
                                   owner + "' type='chat' id='offline-" + user + "-" +
                                   std::to_string(k) + "'><body>offline " + std::to_string(k) +
                                   " for " + user + "</body></message>",
                               100);
      }
    }
  }
}

void dump(storage::Storage& storage) {
  for (const auto& domain : storage.accounts().domains()) {
    for (const auto& user : storage.accounts().list(domain)) {
      const auto account = storage.accounts().find(user, domain);
      std::cout << "account " << user << "@" << domain << " " << account->created_at << " "
                << describe(account->sha1) << " " << describe(account->sha256) << '\n';
    }
  }
  for (const auto& owner : storage.roster().owners()) {
    std::cout << "roster " << owner << " version " << storage.roster().version(owner) << '\n';
    const auto changes = storage.roster().changes_since(owner, 0);
    for (const auto& change : changes.value()) {
      const auto& item = change.item;
      std::cout << "  item " << item.jid << (change.removed ? " removed" : "") << " name=" << item.name
                << " subscription=" << storage::subscription_name(item.subscription)
                << " ask=" << item.ask << " approved=" << item.approved << " groups=";
      for (const auto& group : item.groups) std::cout << "[" << group << "]";
      std::cout << '\n';
    }
    for (const auto& pending : storage.roster().pending_in(owner))
      std::cout << "  pending " << pending.from << " " << pending.stanza << '\n';
  }
  for (const auto& owner : storage.offline().owners()) {
    for (const auto& stanza : storage.offline().peek_all(owner))
      std::cout << "offline " << owner << " " << stanza << '\n';
  }
}

int check_passwords(storage::Storage& storage, const std::string& domain) {
  int checked = 0;
  int failed = 0;
  for (const auto& user : storage.accounts().list(domain)) {
    const auto account = storage.accounts().find(user, domain);
    const auto password = "pw-" + user;
    ++checked;
    if (!account || !sasl::verify_password(sasl::Hash::sha1, password, account->sha1) ||
        !sasl::verify_password(sasl::Hash::sha256, password, account->sha256)) {
      std::cerr << "password of " << user << "@" << domain << " does not verify\n";
      ++failed;
    }
  }
  std::cout << checked << " accounts checked, " << failed << " failed\n";
  return failed == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (args.size() == 4 && args[0] == "fill") {
      auto storage = storage::open(args[1]);
      fill(*storage, args[2], std::stoi(args[3]));
      storage->flush();
      return 0;
    }
    if (args.size() == 2 && args[0] == "dump") {
      dump(*storage::open(args[1]));
      return 0;
    }
    if (args.size() == 3 && args[0] == "check-passwords") {
      return check_passwords(*storage::open(args[1]), args[2]);
    }
  } catch (const std::exception& error) {
    std::cerr << "parley_storage_testtool: " << error.what() << '\n';
    return 1;
  }
  std::cerr << "usage: parley_storage_testtool fill URI DOMAIN COUNT | dump URI |"
               " check-passwords URI DOMAIN\n";
  return 2;
}
