// parley-bench: a single-threaded XMPP load generator for any server.
// Scenarios: register, login, hold, chat, presence. Prints one
// human-readable summary line and one JSON line (starting with '{').
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "bench/accounting.hpp"
#include "bench/connection.hpp"
#include "bench/histogram.hpp"
#include "bench/process_sample.hpp"

namespace parley::bench {
namespace {

using asio::use_awaitable;
using Clock = std::chrono::steady_clock;
using ConnectionPtr = std::shared_ptr<Connection>;

constexpr std::string_view ns_roster = "jabber:iq:roster";

struct Options {
  std::string host = "127.0.0.1";
  unsigned short port = 5222;
  std::string domain = "localhost";
  std::string tls = "none";
  std::string mechanism = "SCRAM-SHA-1";
  unsigned min_iterations = 1;
  std::string user_prefix = "user";
  std::string password = "bench-password";
  std::size_t first_user = 1;
  unsigned sources = 1;
  std::string scenario;
  std::size_t sessions = 100;
  double rate = 0;  // per second; 0: flat out
  std::size_t concurrency = 100;
  double duration = 10;
  std::size_t pairs = 10;
  std::size_t window = 8;
  std::size_t messages = 0;  // chat: stop after this many messages in all (0: after duration)
  std::string after_login;   // chat: a shell command run once every session is logged in
  std::size_t body_bytes = 0;
  std::size_t contacts = 20;
  bool skip_setup = false;
  pid_t server_pid = 0;
  std::vector<std::size_t> checkpoints;
  double hold = 0;
  double settle = 2;
  double timeout = 600;
  std::string label;
};

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

// Minimal JSON object writer for the summary line.
class Json {
 public:
  Json& add(const std::string& key, double value) {
    std::ostringstream text;
    text.precision(10);
    text << value;
    return raw(key, text.str());
  }
  Json& add(const std::string& key, std::uint64_t value) { return raw(key, std::to_string(value)); }
  Json& add(const std::string& key, const std::string& value) {
    std::string quoted = "\"";
    for (char c : value) {
      if (c == '"' || c == '\\') quoted += '\\';
      if (static_cast<unsigned char>(c) < 0x20) continue;
      quoted += c;
    }
    return raw(key, quoted + "\"");
  }
  Json& add(const std::string& key, bool value) { return raw(key, value ? "true" : "false"); }
  Json& raw(const std::string& key, const std::string& value) {
    text_ += text_.empty() ? "{" : ",";
    text_ += "\"" + key + "\":" + value;
    return *this;
  }
  std::string str() const { return text_.empty() ? "{}" : text_ + "}"; }

 private:
  std::string text_;
};

// Counts outstanding coroutines; wait() resumes when the count reaches zero.
class Latch {
 public:
  explicit Latch(asio::io_context& io) : timer_(io) {}
  void add(std::size_t count = 1) { count_ += count; }
  void done() {
    if (--count_ == 0) timer_.cancel();
  }
  asio::awaitable<void> wait() {
    while (count_ > 0) {
      timer_.expires_at(Clock::time_point::max());
      boost::system::error_code ignored;
      co_await timer_.async_wait(asio::redirect_error(use_awaitable, ignored));
    }
  }

 private:
  asio::steady_timer timer_;
  std::size_t count_ = 0;
};

asio::awaitable<void> sleep_until(Clock::time_point when) {
  asio::steady_timer timer(co_await asio::this_coro::executor, when);
  co_await timer.async_wait(use_awaitable);
}

class Bench {
 public:
  explicit Bench(Options options) : options_(std::move(options)), tls_context_(asio::ssl::context::tls_client) {
    target_.server = asio::ip::tcp::endpoint(asio::ip::make_address(options_.host), options_.port);
    target_.domain = options_.domain;
    target_.tls = options_.tls == "starttls" ? TlsMode::starttls : TlsMode::none;
    target_.mechanism = options_.mechanism == "PLAIN"           ? Mechanism::plain
                        : options_.mechanism == "SCRAM-SHA-256" ? Mechanism::scram_sha256
                                                                : Mechanism::scram_sha1;
    target_.min_iterations = options_.min_iterations;
    // A benchmark talks to test servers with self-signed certificates.
    tls_context_.set_verify_mode(asio::ssl::verify_none);
    SSL_CTX_set_mode(tls_context_.native_handle(), SSL_MODE_RELEASE_BUFFERS);
    auto loopback = asio::ip::make_address_v4(options_.host).to_bytes();
    for (unsigned i = 0; i < std::max(1u, options_.sources); ++i) {
      auto bytes = loopback;
      if (options_.sources > 1) bytes[3] = static_cast<unsigned char>(1 + i);
      sources_.emplace_back(asio::ip::address_v4(bytes));
    }
  }

  int run() {
    asio::co_spawn(io_, main(), [this](std::exception_ptr error) {
      if (error) {
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          json_.add("error", std::string(e.what()));
          failed_ = true;
        }
      }
      finished_ = true;
      io_.stop();
    });
    asio::steady_timer deadline(io_, std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>(options_.timeout)));
    deadline.async_wait([this](boost::system::error_code error) {
      if (!error && !finished_) {
        timed_out_ = true;
        io_.stop();
      }
    });
    io_.run();
    if (timed_out_) {
      json_.add("timed_out", true);
      human_ << " TIMED OUT after " << options_.timeout << " s";
    }
    std::cout << options_.scenario << (options_.label.empty() ? "" : " [" + options_.label + "]") << ":"
              << human_.str() << "\n"
              << json_.str() << std::endl;
    return failed_ || timed_out_ ? 1 : 0;
  }

 private:
  asio::awaitable<void> main() {
    json_.add("scenario", options_.scenario).add("label", options_.label).add("tls", options_.tls)
        .add("mechanism", options_.mechanism);
    if (options_.scenario == "register") co_await scenario_register();
    else if (options_.scenario == "login") co_await scenario_login();
    else if (options_.scenario == "hold") co_await scenario_hold();
    else if (options_.scenario == "chat") co_await scenario_chat();
    else if (options_.scenario == "presence") co_await scenario_presence();
    else throw std::invalid_argument("unknown scenario " + options_.scenario);
  }

  std::string user(std::size_t index) const {
    return options_.user_prefix + std::to_string(options_.first_user + index);
  }

  ConnectionPtr make_connection() { return std::make_shared<Connection>(io_, tls_context_, target_); }

  asio::awaitable<ConnectionPtr> logged_in(std::size_t index) {
    auto connection = make_connection();
    co_await connection->connect(sources_[index % sources_.size()]);
    co_await connection->login(user(index), options_.password, "bench");
    co_return connection;
  }

  void note_failure(const std::string& what) {
    ++failures_;
    if (first_error_.empty()) first_error_ = what;
  }

  // Runs job(0..count-1) with at most `concurrency` at a time and, when
  // rate > 0, starts job i no earlier than start + i/rate.
  asio::awaitable<void> run_pool(std::size_t count, const std::function<asio::awaitable<void>(std::size_t)>& job) {
    std::size_t next = 0;
    auto start = Clock::now();
    Latch latch(io_);
    auto workers = std::min(count, std::max<std::size_t>(1, options_.concurrency));
    latch.add(workers);
    auto worker = [&]() -> asio::awaitable<void> {
      while (next < count) {
        auto index = next++;
        if (options_.rate > 0) {
          co_await sleep_until(start + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(static_cast<double>(index) / options_.rate)));
        }
        try {
          co_await job(index);
        } catch (const std::exception& error) {
          note_failure(user(index) + ": " + error.what());
        }
      }
      latch.done();
    };
    for (std::size_t i = 0; i < workers; ++i) asio::co_spawn(io_, worker, asio::detached);
    co_await latch.wait();
  }

  void report_failures() {
    json_.add("failures", std::uint64_t{failures_});
    if (!first_error_.empty()) {
      json_.add("first_error", first_error_);
      human_ << " first error: " << first_error_;
    }
  }

  // --- register --------------------------------------------------------------

  asio::awaitable<void> scenario_register() {
    std::uint64_t created = 0;
    auto start = Clock::now();
    co_await run_pool(options_.sessions, [&](std::size_t index) -> asio::awaitable<void> {
      auto connection = make_connection();
      co_await connection->connect(sources_[index % sources_.size()]);
      co_await connection->register_account(user(index), options_.password);
      connection->close();
      ++created;
    });
    auto elapsed = seconds_since(start);
    human_ << " " << created << " accounts ready in " << elapsed << " s, " << failures_ << " failures";
    json_.add("accounts", created).add("seconds", elapsed);
    report_failures();
    failed_ = failures_ > 0;
  }

  // --- login -----------------------------------------------------------------

  asio::awaitable<void> scenario_login() {
    std::uint64_t succeeded = 0;
    Histogram login_ms;
    auto start = Clock::now();
    co_await run_pool(options_.sessions, [&](std::size_t index) -> asio::awaitable<void> {
      auto begin = Clock::now();
      auto connection = co_await logged_in(index);
      login_ms.record(static_cast<std::uint64_t>(seconds_since(begin) * 1000.0));
      connection->close();
      ++succeeded;
    });
    auto elapsed = seconds_since(start);
    double per_second = static_cast<double>(succeeded) / elapsed;
    human_ << " " << succeeded << " logins in " << elapsed << " s = " << per_second << "/s, " << failures_
           << " failures, login time p50 " << login_ms.percentile(50) << " ms p99 " << login_ms.percentile(99)
           << " ms";
    json_.add("logins", succeeded).add("seconds", elapsed).add("logins_per_second", per_second)
        .add("login_ms_p50", login_ms.percentile(50)).add("login_ms_p99", login_ms.percentile(99));
    report_failures();
    failed_ = failures_ > 0;
  }

  // --- hold ------------------------------------------------------------------

  std::optional<ProcessSample> sample() const {
    if (options_.server_pid == 0) return std::nullopt;
    return sample_process(options_.server_pid);
  }

  asio::awaitable<void> scenario_hold() {
    std::vector<ConnectionPtr> held;
    auto checkpoints = options_.checkpoints;
    if (checkpoints.empty()) checkpoints.push_back(options_.sessions);
    auto baseline = sample();
    std::string points = "[";
    auto start = Clock::now();
    for (auto checkpoint : checkpoints) {
      if (checkpoint <= held.size()) continue;
      auto from = held.size();
      held.resize(checkpoint);
      co_await run_pool(checkpoint - from, [&](std::size_t offset) -> asio::awaitable<void> {
        auto connection = co_await logged_in(from + offset);
        connection->send("<presence/>");
        held[from + offset] = connection;
      });
      std::erase(held, nullptr);
      co_await sleep_until(Clock::now() + std::chrono::milliseconds(static_cast<long>(options_.settle * 1000)));
      auto now = sample();
      Json point;
      point.add("target", std::uint64_t{checkpoint}).add("sessions", std::uint64_t{held.size()})
          .add("seconds", seconds_since(start));
      human_ << " [" << held.size() << "/" << checkpoint << " sessions";
      if (baseline && now && !held.empty()) {
        double per_session = (static_cast<double>(now->rss_bytes) - static_cast<double>(baseline->rss_bytes)) /
                             static_cast<double>(held.size());
        point.add("server_rss_bytes", std::uint64_t{now->rss_bytes})
            .add("bytes_per_session", per_session)
            .add("server_cpu_seconds", now->cpu_seconds - baseline->cpu_seconds);
        human_ << ": server RSS " << now->rss_bytes / 1048576 << " MiB, " << per_session / 1024.0
               << " KiB/session";
      }
      human_ << "]";
      points += (points.size() > 1 ? "," : "") + point.str();
      if (held.size() < checkpoint) break;  // the next level would not be reached either
    }
    points += "]";
    if (baseline) json_.add("baseline_rss_bytes", std::uint64_t{baseline->rss_bytes});
    json_.raw("points", points).add("sessions", std::uint64_t{held.size()});
    report_failures();
    if (options_.hold > 0) {
      co_await sleep_until(Clock::now() + std::chrono::milliseconds(static_cast<long>(options_.hold * 1000)));
    }
    for (auto& connection : held) connection->close();
  }

  // --- chat ------------------------------------------------------------------

  struct Chatter {
    ConnectionPtr connection;
    std::string partner_jid;
    StreamAccounting outgoing;  // the messages this chatter sends to its partner
    std::unique_ptr<asio::steady_timer> wake;
    bool waiting_for_window = false;
  };

  asio::awaitable<void> scenario_chat() {
    auto count = options_.pairs * 2;
    std::vector<Chatter> chatters(count);
    co_await run_pool(count, [&](std::size_t index) -> asio::awaitable<void> {
      chatters[index].connection = co_await logged_in(index);
      chatters[index].connection->send("<presence/>");
    });
    if (failures_ > 0) {
      report_failures();
      failed_ = true;
      co_return;
    }
    for (std::size_t i = 0; i < count; ++i) {
      chatters[i].partner_jid = chatters[i ^ 1].connection->jid();
      chatters[i].wake = std::make_unique<asio::steady_timer>(io_);
    }
    if (!options_.after_login.empty() && std::system(options_.after_login.c_str()) != 0) {
      throw std::runtime_error("--after-login command failed: " + options_.after_login);
    }

    Histogram latency_us;
    std::uint64_t received_in_window = 0;
    std::uint64_t stanza_errors = 0;
    std::uint64_t foreign = 0;
    bool sending = true;
    bool measuring = true;
    const std::string padding(options_.body_bytes, 'x');
    const bool paced = options_.rate > 0;
    const auto interval = paced ? std::chrono::duration<double>(static_cast<double>(count) / options_.rate)
                                : std::chrono::duration<double>(0);
    // Paced: a generous window so a slow server shows up as latency, not as a stall.
    const std::size_t window = paced ? std::max<std::size_t>(options_.window, 1000) : options_.window;
    Latch readers(io_);
    Latch senders(io_);
    readers.add(count);
    senders.add(count);

    auto reader = [&](std::size_t index) -> asio::awaitable<void> {
      auto& self = chatters[index];
      auto& partner = chatters[index ^ 1];
      try {
        for (;;) {
          auto stanza = co_await self.connection->next();
          if (!stanza.is("message", xml::ns_client)) continue;
          if (stanza.attr("type") == "error") {
            ++stanza_errors;
            continue;
          }
          MessageStamp stamp;
          if (!parse_stamp(stanza.child_text("body", xml::ns_client), stamp) ||
              stanza.attr("from") != partner.connection->jid()) {
            ++foreign;
            continue;
          }
          if (partner.outgoing.receive(stamp.sequence) != StreamAccounting::Arrival::first) continue;
          latency_us.record(static_cast<std::uint64_t>(std::max<std::int64_t>(0, now_ns() - stamp.sent_ns) / 1000));
          if (measuring) ++received_in_window;
          if (partner.waiting_for_window && partner.outgoing.missing() < window) partner.wake->cancel();
        }
      } catch (const ProtocolError&) {
        // the connection ended: normal at the end of the run
      }
      readers.done();
    };

    auto start = Clock::now();
    auto sender = [&](std::size_t index) -> asio::awaitable<void> {
      auto& self = chatters[index];
      std::string stanza;
      const std::uint64_t quota = options_.messages == 0 ? UINT64_MAX
                                  : options_.messages / count + (index < options_.messages % count ? 1 : 0);
      for (std::uint64_t k = 0; sending && k < quota; ++k) {
        // Each sender has its own phase, so the offered load is smooth
        // instead of every sender firing at the same instants.
        auto intended = start + std::chrono::duration_cast<Clock::duration>(
                                    interval * (static_cast<double>(k) +
                                                static_cast<double>(index) / static_cast<double>(count)));
        if (paced && intended > Clock::now()) {
          self.wake->expires_at(intended);
          boost::system::error_code ignored;
          co_await self.wake->async_wait(asio::redirect_error(use_awaitable, ignored));
          if (!sending) break;
        }
        while (self.outgoing.missing() >= window && sending) {
          self.waiting_for_window = true;
          self.wake->expires_at(Clock::time_point::max());
          boost::system::error_code ignored;
          co_await self.wake->async_wait(asio::redirect_error(use_awaitable, ignored));
          self.waiting_for_window = false;
        }
        if (!sending) break;
        MessageStamp stamp{self.outgoing.next_to_send(),
                           paced ? std::chrono::duration_cast<std::chrono::nanoseconds>(intended.time_since_epoch()).count()
                                 : now_ns()};
        stanza.clear();
        stanza += "<message type='chat' to='";
        xml::escape_to(stanza, self.partner_jid);
        stanza += "'><body>";
        append_stamp(padding, stamp, stanza);
        stanza += "</body></message>";
        self.connection->send(stanza);
        if (!paced && k % 64 == 63) {
          // Flat out: let readers run between bursts of sends.
          co_await asio::post(io_, use_awaitable);
        }
      }
      senders.done();
    };
    for (std::size_t i = 0; i < count; ++i) {
      asio::co_spawn(io_, [&reader, i] { return reader(i); }, asio::detached);
    }
    for (std::size_t i = 0; i < count; ++i) {
      asio::co_spawn(io_, [&sender, i] { return sender(i); }, asio::detached);
    }
    auto cpu_before = sample();
    asio::steady_timer stop_timer(
        io_, start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options_.duration)));
    stop_timer.async_wait([&](boost::system::error_code error) {
      if (error) return;
      sending = false;
      for (auto& chatter : chatters) chatter.wake->cancel();
    });
    co_await senders.wait();
    stop_timer.cancel();
    measuring = false;
    auto elapsed = seconds_since(start);
    auto cpu_after = sample();

    // Drain: wait until everything sent has arrived, or 10 s without progress.
    auto missing = [&] {
      std::uint64_t total = 0;
      for (auto& chatter : chatters) total += chatter.outgoing.missing();
      return total;
    };
    auto last_missing = missing();
    auto last_progress = Clock::now();
    while (last_missing > 0 && seconds_since(last_progress) < 10) {
      co_await sleep_until(Clock::now() + std::chrono::milliseconds(20));
      auto now_missing = missing();
      if (now_missing != last_missing) last_progress = Clock::now();
      last_missing = now_missing;
    }
    for (auto& chatter : chatters) chatter.connection->close();
    co_await readers.wait();

    std::uint64_t sent = 0, delivered = 0, duplicates = 0, unknown = 0, reordered = 0;
    for (auto& chatter : chatters) {
      sent += chatter.outgoing.sent();
      delivered += chatter.outgoing.delivered();
      duplicates += chatter.outgoing.duplicates();
      unknown += chatter.outgoing.unknown();
      reordered += chatter.outgoing.out_of_order();
    }
    auto lost = sent - delivered;
    double throughput = static_cast<double>(received_in_window) / elapsed;
    human_ << " " << options_.pairs << " pairs, " << throughput << " msg/s delivered (offered "
           << (paced ? std::to_string(static_cast<long>(options_.rate)) + "/s" : std::string("flat out"))
           << "), latency p50 " << latency_us.percentile(50) / 1000.0 << " ms p95 "
           << latency_us.percentile(95) / 1000.0 << " ms p99 " << latency_us.percentile(99) / 1000.0 << " ms max "
           << latency_us.max() / 1000.0 << " ms; sent " << sent << " delivered " << delivered << " lost " << lost
           << " duplicated " << duplicates << " errors " << stanza_errors;
    json_.add("pairs", std::uint64_t{options_.pairs}).add("offered_rate", options_.rate)
        .add("seconds", elapsed).add("messages_per_second", throughput)
        .add("sent", sent).add("delivered", delivered).add("lost", lost).add("duplicated", duplicates)
        .add("unknown", unknown + foreign).add("reordered", reordered).add("stanza_errors", stanza_errors)
        .add("latency_us_p50", latency_us.percentile(50)).add("latency_us_p95", latency_us.percentile(95))
        .add("latency_us_p99", latency_us.percentile(99)).add("latency_us_max", latency_us.max());
    if (cpu_before && cpu_after) {
      double cpu = cpu_after->cpu_seconds - cpu_before->cpu_seconds;
      json_.add("server_cpu_seconds", cpu).add("server_rss_bytes", std::uint64_t{cpu_after->rss_bytes});
      human_ << ", server CPU " << cpu << " s";
    }
    report_failures();
    failed_ = failures_ > 0 || lost > 0 || duplicates > 0 || unknown + foreign > 0 || stanza_errors > 0;
  }

  // --- presence --------------------------------------------------------------

  struct Member {
    ConnectionPtr connection;
    std::set<std::string> confirmed;  // contacts (bare JIDs) with a mutual subscription (setup) or seen available
    std::uint64_t presences = 0;
  };

  // Users form cliques of contacts+1: everyone's contacts are the others of its clique.
  std::size_t clique_of(std::size_t index) const { return index / (options_.contacts + 1); }

  asio::awaitable<bool> presence_phase(std::vector<Member>& members, bool setup, double& seconds,
                                       std::uint64_t& delivered) {
    auto count = members.size();
    auto group = options_.contacts + 1;
    std::uint64_t complete = 0;
    Latch all_complete(io_);
    all_complete.add(1);
    Latch readers(io_);
    auto start = Clock::now();
    auto reader = [&](std::size_t index) -> asio::awaitable<void> {
      auto& self = members[index];
      const auto own_bare = self.connection->jid().substr(0, self.connection->jid().find('/'));
      try {
        auto confirm = [&](const std::string& bare) {
          if (bare != own_bare && self.confirmed.insert(bare).second && self.confirmed.size() == options_.contacts) {
            if (++complete == count) all_complete.done();
          }
        };
        for (;;) {
          auto stanza = co_await self.connection->next();
          if (setup && stanza.is("iq", xml::ns_client)) {
            // Setup is done when the roster (result or pushes) shows every
            // contact with subscription "both": that holds on a second run too,
            // when no subscription presence flows any more.
            const auto* query = stanza.child("query", ns_roster);
            if (query == nullptr) continue;
            if (stanza.attr("type") == "set") {
              self.connection->send("<iq type='result' id='" + xml::escape(stanza.attr("id")) + "'/>");
            }
            for (const auto& item : query->children()) {
              if (item.is("item", ns_roster) && item.attr("subscription") == "both") {
                confirm(std::string(item.attr("jid")));
              }
            }
            continue;
          }
          if (!stanza.is("presence", xml::ns_client)) continue;
          auto from = std::string(stanza.attr("from"));
          auto bare = from.substr(0, from.find('/'));
          auto type = stanza.attr("type");
          if (bare == own_bare) continue;
          if (setup) {
            if (type == "subscribe") {
              self.connection->send("<presence type='subscribed' to='" + xml::escape(bare) + "'/>");
            }
          } else {
            ++self.presences;
            if (type.empty()) confirm(bare);
          }
        }
      } catch (const ProtocolError&) {
      }
      readers.done();
    };
    co_await run_pool(count, [&](std::size_t index) -> asio::awaitable<void> {
      members[index].connection = co_await logged_in(index);
      readers.add();
      asio::co_spawn(io_, [&reader, index] { return reader(index); }, asio::detached);
      auto& connection = *members[index].connection;
      // As real clients do: fetch the roster (some servers deliver
      // subscription requests only to "interested" resources, RFC 6121
      // §1.3), then become available.
      connection.send("<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq><presence/>");
      if (setup) {
        auto first = clique_of(index) * group;
        for (auto other = first; other < first + group && other < count; ++other) {
          if (other == index) continue;
          connection.send("<presence type='subscribe' to='" + user(other) + "@" + options_.domain + "'/>");
        }
      }
    });
    bool ok = failures_ == 0;
    if (ok) {
      asio::steady_timer limit(io_, std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options_.duration)));
      bool expired = false;
      limit.async_wait([&](boost::system::error_code error) {
        if (!error && complete < count) {
          expired = true;
          all_complete.done();
        }
      });
      co_await all_complete.wait();
      limit.cancel();
      ok = !expired;
    }
    seconds = seconds_since(start);
    delivered = 0;
    for (auto& member : members) {
      delivered += member.presences;
      if (member.connection) member.connection->close();
    }
    co_await readers.wait();
    if (!ok && first_error_.empty()) {
      first_error_ = std::to_string(count - complete) + " users did not see all their contacts within " +
                     std::to_string(options_.duration) + " s";
    }
    co_return ok;
  }

  asio::awaitable<void> scenario_presence() {
    auto group = options_.contacts + 1;
    auto count = std::max<std::size_t>(group, options_.sessions / group * group);
    double seconds = 0;
    std::uint64_t delivered = 0;
    if (!options_.skip_setup) {
      std::vector<Member> members(count);
      if (!co_await presence_phase(members, true, seconds, delivered)) {
        human_ << " roster setup failed";
        report_failures();
        failed_ = true;
        co_return;
      }
      human_ << " rosters set up in " << seconds << " s;";
      json_.add("setup_seconds", seconds);
    }
    std::vector<Member> members(count);
    bool ok = co_await presence_phase(members, false, seconds, delivered);
    double per_second = static_cast<double>(delivered) / seconds;
    human_ << " " << count << " users with " << options_.contacts << " contacts each: " << delivered
           << " presence stanzas in " << seconds << " s = " << per_second << "/s"
           << (ok ? "" : " (INCOMPLETE)");
    json_.add("users", std::uint64_t{count}).add("contacts", std::uint64_t{options_.contacts})
        .add("presences", delivered).add("seconds", seconds).add("presences_per_second", per_second)
        .add("complete", ok);
    report_failures();
    failed_ = !ok || failures_ > 0;
  }

  Options options_;
  asio::io_context io_{1};
  asio::ssl::context tls_context_;
  Target target_;
  std::vector<asio::ip::address> sources_;
  std::size_t failures_ = 0;
  std::string first_error_;
  Json json_;
  std::ostringstream human_;
  bool failed_ = false;
  bool finished_ = false;
  bool timed_out_ = false;
};

void raise_file_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  rlimit wanted{1048576, 1048576};
  if (setrlimit(RLIMIT_NOFILE, &wanted) == 0) return;
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
}

}  // namespace
}  // namespace parley::bench

int main(int argc, char** argv) {
  using parley::bench::Options;
  Options options;
  CLI::App app{"parley-bench: XMPP load generator (login, hold, chat, presence) for any server"};
  app.add_option("scenario", options.scenario, "register | login | hold | chat | presence")->required()
      ->check(CLI::IsMember({"register", "login", "hold", "chat", "presence"}));
  app.add_option("--host", options.host, "server address (IPv4)")->capture_default_str();
  app.add_option("--port", options.port, "server c2s port")->capture_default_str();
  app.add_option("--domain", options.domain, "XMPP domain of the users")->capture_default_str();
  app.add_option("--tls", options.tls, "none (plain TCP) or starttls")->check(CLI::IsMember({"none", "starttls"}))
      ->capture_default_str();
  app.add_option("--mechanism", options.mechanism, "SCRAM-SHA-1, SCRAM-SHA-256 or PLAIN")
      ->check(CLI::IsMember({"SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"}))->capture_default_str();
  app.add_option("--min-iterations", options.min_iterations, "refuse SCRAM challenges with fewer iterations");
  app.add_option("--user-prefix", options.user_prefix, "users are PREFIX1..PREFIXn")->capture_default_str();
  app.add_option("--password", options.password, "the password of every user")->capture_default_str();
  app.add_option("--first-user", options.first_user, "number of the first user")->capture_default_str();
  app.add_option("--sources", options.sources, "loopback source addresses 127.0.0.1..127.0.0.N (past 64k connections)")
      ->capture_default_str();
  app.add_option("--sessions,-n", options.sessions, "sessions (register, login, hold) or users (presence)")
      ->capture_default_str();
  app.add_option("--rate", options.rate, "logins/s (login) or total messages/s (chat); 0 = flat out")
      ->capture_default_str();
  app.add_option("--concurrency", options.concurrency, "logins in progress at once")->capture_default_str();
  app.add_option("--duration", options.duration, "seconds of sending (chat) or the limit for a presence phase")
      ->capture_default_str();
  app.add_option("--pairs", options.pairs, "chatting pairs")->capture_default_str();
  app.add_option("--window", options.window, "flat-out chat: messages in flight per sender")->capture_default_str();
  app.add_option("--messages", options.messages, "chat: stop after this many messages in all (default: after --duration)");
  app.add_option("--after-login", options.after_login, "chat: shell command to run once all sessions are logged in");
  app.add_option("--body-bytes", options.body_bytes, "padding added to each message body")->capture_default_str();
  app.add_option("--contacts", options.contacts, "presence: contacts per user")->capture_default_str();
  app.add_flag("--skip-setup", options.skip_setup, "presence: the rosters already exist");
  app.add_option("--server-pid", options.server_pid, "read the server's RSS and CPU from /proc/PID");
  app.add_option("--checkpoints", options.checkpoints, "hold: session counts at which to sample (e.g. 1000 10000)")
      ->delimiter(',');
  app.add_option("--hold", options.hold, "hold: seconds to keep the sessions after the last checkpoint");
  app.add_option("--settle", options.settle, "hold: seconds to wait before sampling")->capture_default_str();
  app.add_option("--timeout", options.timeout, "give up after this many seconds")->capture_default_str();
  app.add_option("--label", options.label, "free text copied into the summary");
  CLI11_PARSE(app, argc, argv);
  parley::bench::raise_file_limit();
  try {
    return parley::bench::Bench(std::move(options)).run();
  } catch (const std::exception& error) {
    std::cerr << "parley-bench: " << error.what() << "\n";
    return 2;
  }
}
