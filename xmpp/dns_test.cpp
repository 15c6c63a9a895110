#include "xmpp/dns.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <set>

namespace parley::dns {
namespace {

namespace fs = std::filesystem;
using boost::asio::ip::make_address;

constexpr const char* kDnsAddress = "127.0.0.53";

// A socket bound to kDnsAddress on a port free for both UDP and TCP, held
// until unbound is about to bind it.
int reserve_port() {
  for (int attempt = 0; attempt < 20; ++attempt) {
    const int udp = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    inet_pton(AF_INET, kDnsAddress, &address.sin_addr);
    socklen_t length = sizeof address;
    if (bind(udp, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        getsockname(udp, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      close(udp);
      continue;
    }
    const int tcp = socket(AF_INET, SOCK_STREAM, 0);
    const bool tcp_free = bind(tcp, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    close(tcp);
    close(udp);
    if (tcp_free) return ntohs(address.sin_port);
  }
  throw std::runtime_error("no free UDP+TCP port on 127.0.0.53");
}

// A DNS query for "test. SOA" with id 0x7e57: any answer proves the server is up.
const std::vector<unsigned char> kProbe = {0x7e, 0x57, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
                                           4,    't',  'e',  's',  't', 0, 0, 6, 0, 1};

// unbound as an authoritative server for 'test.' on loopback (GUIDE §11),
// started as a child process and killed by PID.
class Unbound {
 public:
  // local_data: unbound record lines; refused: names answered REFUSED.
  explicit Unbound(const std::vector<std::string>& local_data,
                   const std::vector<std::string>& refused = {}) {
    std::string pattern = (fs::temp_directory_path() / "parley-dns-test-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
    for (int attempt = 0; attempt < 3 && pid_ < 0; ++attempt) {
      port_ = reserve_port();
      write_config(local_data, refused);
      start();
      if (!wait_until_answering()) kill_child();
    }
    if (pid_ < 0) throw std::runtime_error("unbound did not start: " + log());
  }
  ~Unbound() {
    kill_child();
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }
  Unbound(const Unbound&) = delete;
  Unbound& operator=(const Unbound&) = delete;

  std::string server() const { return std::string(kDnsAddress) + ":" + std::to_string(port_); }

  void kill_child() {
    if (pid_ < 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  void write_config(const std::vector<std::string>& local_data,
                    const std::vector<std::string>& refused) const {
    std::ofstream config(dir_ / "unbound.conf");
    config << "server:\n"
           << "  interface: " << kDnsAddress << "@" << port_ << "\n"
           << "  port: " << port_ << "\n"
           << "  access-control: 127.0.0.0/8 allow\n"
           << "  chroot: \"\"\n  username: \"\"\n  directory: \"" << dir_.string() << "\"\n"
           << "  pidfile: \"" << (dir_ / "unbound.pid").string() << "\"\n"
           << "  do-daemonize: no\n  use-syslog: no\n  logfile: \"\"\n  verbosity: 1\n"
           << "  num-threads: 1\n  do-ip6: no\n"
           << "  do-not-query-address: 0.0.0.0/0\n  module-config: \"iterator\"\n"
           << "  local-zone: \".\" refuse\n  local-zone: \"test.\" static\n"
           << "  local-data: \"test. 300 IN SOA ns.test. admin.test. 1 3600 600 86400 60\"\n";
    for (const auto& line : local_data) config << "  local-data: \"" << line << "\"\n";
    for (const auto& name : refused) config << "  local-zone: \"" << name << "\" refuse\n";
    config << "remote-control:\n  control-enable: no\n";
  }

  void start() {
    const auto config = (dir_ / "unbound.conf").string();
    const auto log_path = (dir_ / "unbound.log").string();
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (const int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644); log >= 0) {
        dup2(log, STDOUT_FILENO);
        dup2(log, STDERR_FILENO);
      }
      execl("/usr/sbin/unbound", "unbound", "-d", "-c", config.c_str(), nullptr);
      execlp("unbound", "unbound", "-d", "-c", config.c_str(), nullptr);
      _exit(127);
    }
  }

  // Waits for an answer to a probe (resent every 100 ms), up to 10 s.
  bool wait_until_answering() const {
    const int probe = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port_));
    inet_pton(AF_INET, kDnsAddress, &address.sin_addr);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    bool answered = false;
    while (!answered && std::chrono::steady_clock::now() < deadline &&
           waitpid(pid_, nullptr, WNOHANG) == 0) {
      sendto(probe, kProbe.data(), kProbe.size(), 0, reinterpret_cast<sockaddr*>(&address),
             sizeof address);
      pollfd ready{probe, POLLIN, 0};
      if (poll(&ready, 1, 100) == 1 && (ready.revents & POLLIN)) {
        std::array<unsigned char, 512> reply{};
        answered = recv(probe, reply.data(), reply.size(), 0) > 0;
      }
    }
    close(probe);
    return answered;
  }

  std::string log() const {
    std::ifstream in(dir_ / "unbound.log");
    return {std::istreambuf_iterator<char>(in), {}};
  }

  fs::path dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

const std::vector<std::string> kRecords = {
    // priority order, no Direct TLS
    "_xmpp-server._tcp.prio.test. SRV 20 0 5269 second.prio.test.",
    "_xmpp-server._tcp.prio.test. SRV 30 0 5300 third.prio.test.",
    "_xmpp-server._tcp.prio.test. SRV 10 0 5269 first.prio.test.",
    // one priority, weights 90/10
    "_xmpp-server._tcp.weight.test. SRV 10 90 5269 heavy.weight.test.",
    "_xmpp-server._tcp.weight.test. SRV 10 10 5269 light.weight.test.",
    // Direct TLS and STARTTLS merged
    "_xmpps-server._tcp.tls.test. SRV 10 5 5270 xmpp.tls.test.",
    "_xmpp-server._tcp.tls.test. SRV 10 5 5269 xmpp.tls.test.",
    "_xmpp-server._tcp.tls.test. SRV 5 0 5269 backup.tls.test.",
    "_xmpps-server._tcp.tls.test. SRV 20 0 5271 last.tls.test.",
    // "." means no service; alongside real records of the other name it is ignored
    "_xmpp-server._tcp.dot.test. SRV 0 0 0 .",
    "_xmpps-server._tcp.halfdot.test. SRV 0 0 0 .",
    "_xmpp-server._tcp.halfdot.test. SRV 0 0 5269 xmpp.halfdot.test.",
    // Direct TLS only
    "_xmpps-server._tcp.direct.test. SRV 0 0 5270 xmpp.direct.test.",
    // no SRV at all
    "plain.test. A 127.0.0.10",
    // addresses
    "v4.test. A 127.0.0.11",
    "v6.test. AAAA fd00::11",
    "both.test. A 127.0.0.12",
    "both.test. A 127.0.0.13",
    "both.test. AAAA fd00::12",
    "both.test. AAAA fd00::13",
};

// More SRV records than fit a 512-byte UDP answer: the truncated answer
// makes c-ares ask again over TCP.
std::vector<std::string> with_large_answer(std::vector<std::string> records) {
  for (int i = 0; i < 24; ++i) {
    records.push_back("_xmpp-server._tcp.large.test. SRV " + std::to_string(i) +
                      " 0 5269 a-rather-long-host-name-for-record-number-" + std::to_string(i) +
                      ".large.test.");
  }
  return records;
}

class DnsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    unbound_ = new Unbound(with_large_answer(kRecords),
                           {"_xmpps-server._tcp.halfbroken.test.", "_xmpp-server._tcp.broken.test.",
                            "broken.test."});
  }
  static void TearDownTestSuite() {
    delete unbound_;
    unbound_ = nullptr;
  }

  template <typename T>
  T run(boost::asio::awaitable<T> operation) {
    std::optional<T> result;
    std::exception_ptr failure;
    boost::asio::co_spawn(io_, std::move(operation), [&](std::exception_ptr error, T value) {
      failure = error;
      if (!error) result = std::move(value);
    });
    io_.restart();
    io_.run();
    if (failure) std::rethrow_exception(failure);
    return std::move(*result);
  }

  std::vector<Target> targets(Resolver& resolver, const std::string& domain) {
    return run(resolver.server_targets(domain));
  }
  std::vector<boost::asio::ip::address> addresses(Resolver& resolver, const std::string& host) {
    return run(resolver.addresses(host));
  }

  template <typename Operation>
  Error::Kind failure_kind(Operation operation) {
    try {
      operation();
    } catch (const Error& error) {
      return error.kind;
    }
    ADD_FAILURE() << "no dns::Error thrown";
    return Error::Kind::failure;
  }

  static Unbound* unbound_;
  boost::asio::io_context io_;
  Resolver resolver_{io_.get_executor(), unbound_->server(), std::chrono::seconds(5)};
};

Unbound* DnsTest::unbound_ = nullptr;

TEST_F(DnsTest, SrvRecordsComeInPriorityOrder) {
  const std::vector<Target> expected = {
      {"first.prio.test", 5269, false},
      {"second.prio.test", 5269, false},
      {"third.prio.test", 5300, false},
  };
  EXPECT_EQ(targets(resolver_, "prio.test"), expected);
  EXPECT_EQ(targets(resolver_, "PRIO.test."), expected) << "names are case-insensitive";
}

TEST_F(DnsTest, SamePriorityIsAWeightedRandomOrder) {
  int heavy_first = 0;
  constexpr int kDraws = 200;
  for (int i = 0; i < kDraws; ++i) {
    const auto order = targets(resolver_, "weight.test");
    ASSERT_EQ(order.size(), 2u);
    if (order[0].host == "heavy.weight.test") ++heavy_first;
  }
  // Expected 180 of 200 (p = 91/101); both bounds are many deviations away.
  EXPECT_GT(heavy_first, 150);
  EXPECT_LT(heavy_first, kDraws) << "the light record must sometimes come first";
}

TEST_F(DnsTest, DirectTlsComesFirstAtEqualPriority) {
  const std::vector<Target> expected = {
      {"backup.tls.test", 5269, false},
      {"xmpp.tls.test", 5270, true},
      {"xmpp.tls.test", 5269, false},
      {"last.tls.test", 5271, true},
  };
  EXPECT_EQ(targets(resolver_, "tls.test"), expected);
}

TEST_F(DnsTest, DotTargetMeansNoService) {
  EXPECT_EQ(failure_kind([&] { targets(resolver_, "dot.test"); }), Error::Kind::no_service);
  const std::vector<Target> expected = {{"xmpp.halfdot.test", 5269, false}};
  EXPECT_EQ(targets(resolver_, "halfdot.test"), expected);
}

TEST_F(DnsTest, WithoutSrvRecordsTheDomainItselfOnPort5269) {
  const std::vector<Target> plain = {{"plain.test", 5269, false}};
  EXPECT_EQ(targets(resolver_, "plain.test"), plain);
  const std::vector<Target> missing = {{"missing.test", 5269, false}};
  EXPECT_EQ(targets(resolver_, "missing.test"), missing);
  const std::vector<Target> literal = {{"127.0.0.9", 5269, false}};
  EXPECT_EQ(targets(resolver_, "127.0.0.9"), literal);
  const std::vector<Target> v6_literal = {{"::1", 5269, false}};
  EXPECT_EQ(targets(resolver_, "[::1]"), v6_literal);
}

TEST_F(DnsTest, DirectTlsRecordsAloneAreEnough) {
  const std::vector<Target> expected = {{"xmpp.direct.test", 5270, true}};
  EXPECT_EQ(targets(resolver_, "direct.test"), expected);
}

TEST_F(DnsTest, OnlyTheStarttlsNameDecidesTheFallback) {
  // _xmpps-server refused, _xmpp-server NXDOMAIN: the domain itself.
  const std::vector<Target> fallback = {{"halfbroken.test", 5269, false}};
  EXPECT_EQ(targets(resolver_, "halfbroken.test"), fallback);
  // _xmpp-server refused: no fallback, the failure is reported.
  EXPECT_EQ(failure_kind([&] { targets(resolver_, "broken.test"); }), Error::Kind::failure);
}

TEST_F(DnsTest, TruncatedAnswersAreFetchedOverTcp) {
  const auto found = targets(resolver_, "large.test");
  ASSERT_EQ(found.size(), 24u);
  for (std::size_t i = 0; i < found.size(); ++i) {
    EXPECT_EQ(found[i].host,
              "a-rather-long-host-name-for-record-number-" + std::to_string(i) + ".large.test");
  }
}

TEST_F(DnsTest, ConcurrentLookupsOnOneResolver) {
  const std::vector<std::string> hosts = {"v4.test", "v6.test", "both.test", "missing.test"};
  std::vector<std::size_t> counts(hosts.size() * 5, 0);
  std::vector<std::optional<Error::Kind>> failures(counts.size());
  for (std::size_t i = 0; i < counts.size(); ++i) {
    boost::asio::co_spawn(io_, resolver_.addresses(hosts[i % hosts.size()]),
                          [&, i](std::exception_ptr error, std::vector<boost::asio::ip::address> found) {
                            try {
                              if (error) std::rethrow_exception(error);
                              counts[i] = found.size();
                            } catch (const Error& failure) {
                              failures[i] = failure.kind;
                            }
                          });
  }
  io_.restart();
  io_.run();
  for (std::size_t i = 0; i < counts.size(); ++i) {
    const std::size_t expected[] = {1, 1, 4, 0};
    EXPECT_EQ(counts[i], expected[i % hosts.size()]) << hosts[i % hosts.size()];
    if (i % hosts.size() == 3) {
      EXPECT_EQ(failures[i], Error::Kind::not_found);
    }
  }
}

TEST_F(DnsTest, AddressesOfOneFamily) {
  EXPECT_EQ(addresses(resolver_, "v4.test"),
            std::vector<boost::asio::ip::address>{make_address("127.0.0.11")});
  EXPECT_EQ(addresses(resolver_, "v6.test"),
            std::vector<boost::asio::ip::address>{make_address("fd00::11")});
}

TEST_F(DnsTest, BothFamiliesInterleavedIpv6First) {
  const auto found = addresses(resolver_, "both.test");
  ASSERT_EQ(found.size(), 4u);
  EXPECT_TRUE(found[0].is_v6());
  EXPECT_TRUE(found[1].is_v4());
  EXPECT_TRUE(found[2].is_v6());
  EXPECT_TRUE(found[3].is_v4());
  const std::set<boost::asio::ip::address> expected = {
      make_address("127.0.0.12"), make_address("127.0.0.13"), make_address("fd00::12"),
      make_address("fd00::13")};
  EXPECT_EQ(std::set<boost::asio::ip::address>(found.begin(), found.end()), expected);
}

TEST_F(DnsTest, IpLiteralsNeedNoLookup) {
  Resolver nowhere(io_.get_executor(), "127.0.0.1:9", std::chrono::milliseconds(200));
  EXPECT_EQ(addresses(nowhere, "127.0.0.7"),
            std::vector<boost::asio::ip::address>{make_address("127.0.0.7")});
  EXPECT_EQ(addresses(nowhere, "::1"), std::vector<boost::asio::ip::address>{make_address("::1")});
  EXPECT_EQ(addresses(nowhere, "[::1]"), std::vector<boost::asio::ip::address>{make_address("::1")});
  EXPECT_THROW(addresses(nowhere, "[127.0.0.1]"), Error) << "brackets hold IPv6 only";
}

TEST_F(DnsTest, UnknownNameIsNotFound) {
  EXPECT_EQ(failure_kind([&] { addresses(resolver_, "missing.test"); }), Error::Kind::not_found);
  // A name that exists with other records only: no data in either family.
  EXPECT_EQ(failure_kind([&] { addresses(resolver_, "_xmpp-server._tcp.prio.test"); }),
            Error::Kind::not_found);
}

TEST_F(DnsTest, RefusedZoneIsAFailure) {
  EXPECT_EQ(failure_kind([&] { addresses(resolver_, "example.org"); }), Error::Kind::failure);
}

TEST_F(DnsTest, SilentServerTimesOutWithinTheTimeout) {
  // A bound UDP socket that never answers (no ICMP "port unreachable" either).
  const int silent = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  socklen_t length = sizeof address;
  ASSERT_EQ(bind(silent, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(getsockname(silent, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const auto server = "127.0.0.1:" + std::to_string(ntohs(address.sin_port));

  Resolver resolver(io_.get_executor(), server, std::chrono::milliseconds(400));
  for (const auto& lookup : std::vector<std::function<void()>>{
           [&] { addresses(resolver, "v4.test"); }, [&] { targets(resolver, "prio.test"); }}) {
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(failure_kind(lookup), Error::Kind::timeout);
    const auto elapsed = std::chrono::steady_clock::now() - start;
    EXPECT_GE(elapsed, std::chrono::milliseconds(350));
    EXPECT_LT(elapsed, std::chrono::seconds(2));
  }
  close(silent);
}

TEST_F(DnsTest, AnswersAreCachedForTheirTtl) {
  Unbound own({"cached.test. 300 IN A 127.0.0.20",
               "_xmpp-server._tcp.cached.test. 300 IN SRV 0 0 5269 cached.test.",
               "uncached.test. 0 IN A 127.0.0.21"});
  Resolver resolver(io_.get_executor(), own.server(), std::chrono::milliseconds(400));
  const std::vector<Target> srv = {{"cached.test", 5269, false}};
  const std::vector<boost::asio::ip::address> address = {make_address("127.0.0.20")};
  EXPECT_EQ(targets(resolver, "cached.test"), srv);
  EXPECT_EQ(addresses(resolver, "cached.test"), address);
  EXPECT_EQ(addresses(resolver, "uncached.test"),
            std::vector<boost::asio::ip::address>{make_address("127.0.0.21")});
  EXPECT_EQ(failure_kind([&] { addresses(resolver, "missing.test"); }), Error::Kind::not_found);

  own.kill_child();
  EXPECT_EQ(targets(resolver, "cached.test"), srv);
  EXPECT_EQ(addresses(resolver, "Cached.Test."), address);
  // The negative answer is kept for the SOA's minimum (60 s).
  EXPECT_EQ(failure_kind([&] { addresses(resolver, "missing.test"); }), Error::Kind::not_found);
  // TTL 0 is never cached: with the server gone, the lookup fails.
  EXPECT_NE(failure_kind([&] { addresses(resolver, "uncached.test"); }), Error::Kind::not_found);
}

TEST_F(DnsTest, DestroyingTheResolverEndsPendingLookups) {
  const int silent = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  socklen_t length = sizeof address;
  ASSERT_EQ(bind(silent, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(getsockname(silent, reinterpret_cast<sockaddr*>(&address), &length), 0);

  auto resolver = std::make_unique<Resolver>(
      io_.get_executor(), "127.0.0.1:" + std::to_string(ntohs(address.sin_port)),
      std::chrono::seconds(30));
  std::optional<Error::Kind> outcome;
  const std::string host = "v4.test";
  boost::asio::co_spawn(
      io_, resolver->addresses(host),
      [&](std::exception_ptr error, std::vector<boost::asio::ip::address>) {
        try {
          if (error) std::rethrow_exception(error);
        } catch (const Error& failure) {
          outcome = failure.kind;
        }
      });
  io_.restart();
  io_.poll();  // the queries are sent
  const auto start = std::chrono::steady_clock::now();
  resolver.reset();
  io_.run();
  EXPECT_EQ(outcome, Error::Kind::failure);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  close(silent);
}

}  // namespace
}  // namespace parley::dns
