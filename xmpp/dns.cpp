// c-ares driven by Asio: c-ares tells us (sock_state_cb) which sockets it
// wants watched; each becomes a non-owning posix::stream_descriptor whose
// async_wait calls ares_process_fd, and one steady_timer follows
// ares_timeout() for retransmissions. Everything runs on the executor given
// to the constructor, so the channel needs no lock: a Resolver belongs to one
// shard and is used only from coroutines running on that shard's executor.
//
// TTLs: c-ares 1.18's ares_parse_srv_reply drops them, so every answer's
// lifetime is read from the raw DNS message here (smallest TTL of the answer
// section; negative answers by the SOA of the authority section, RFC 2308 §5)
// and capped at five minutes, which keeps a moved peer reachable soon after
// its records change. An answer with no TTL to go by is not cached.
#include "xmpp/dns.hpp"

#include <ares.h>
#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <boost/asio/ip/address_v6.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cctype>
#include <mutex>
#include <optional>
#include <random>
#include <span>
#include <unordered_map>

namespace parley::dns {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kClassIn = 1;
constexpr int kTypeA = 1;
constexpr int kTypeSoa = 6;
constexpr int kTypeAaaa = 28;
constexpr int kTypeSrv = 33;

constexpr std::chrono::seconds kMaxCacheLifetime{300};
constexpr std::size_t kCacheMaxEntries = 4096;
constexpr std::size_t kCacheMaxBytes = 4 * 1024 * 1024;
constexpr int kMaxAddressesPerAnswer = 64;

void initialise_library() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (const int status = ares_library_init(ARES_LIB_INIT_ALL); status != ARES_SUCCESS) {
      throw std::runtime_error(std::string("c-ares: ") + ares_strerror(status));
    }
  });
}

struct Question {
  std::string name;
  int type;
};

const char* type_name(int type) {
  switch (type) {
    case kTypeA: return "A";
    case kTypeAaaa: return "AAAA";
    case kTypeSrv: return "SRV";
    default: return "?";
  }
}

// What c-ares reported for one question, with the raw response when there
// was one (negative answers carry their SOA).
struct Answer {
  int status = ARES_ETIMEOUT;
  std::vector<unsigned char> message;
};

bool has_no_records(int status) { return status == ARES_ENODATA || status == ARES_ENOTFOUND; }

Error error_for(const Question& question, int status) {
  const auto text =
      std::string(type_name(question.type)) + " lookup of " + question.name + ": " + ares_strerror(status);
  if (status == ARES_ETIMEOUT) return Error(Error::Kind::timeout, text);
  if (has_no_records(status)) return Error(Error::Kind::not_found, text);
  return Error(Error::Kind::failure, text);
}

// Just enough of RFC 1035 §4.1 to find TTLs; every read is bounds-checked and
// a short or malformed message only sets 'failed'.
class MessageReader {
 public:
  explicit MessageReader(std::span<const unsigned char> data) : data_(data) {}

  std::uint32_t number(std::size_t bytes) {
    if (data_.size() - position_ < bytes) {
      failed_ = true;
      return 0;
    }
    std::uint32_t value = 0;
    for (std::size_t i = 0; i < bytes; ++i) value = (value << 8) | data_[position_++];
    return value;
  }
  void skip(std::size_t bytes) {
    if (data_.size() - position_ < bytes) {
      failed_ = true;
    } else {
      position_ += bytes;
    }
  }
  void skip_name() {
    while (!failed_) {
      if (position_ >= data_.size()) {
        failed_ = true;
        return;
      }
      const unsigned length = data_[position_];
      if (length == 0) {
        ++position_;
        return;
      }
      if ((length & 0xC0) == 0xC0) {  // compression pointer ends the name
        skip(2);
        return;
      }
      if ((length & 0xC0) != 0) {
        failed_ = true;
        return;
      }
      skip(1 + length);
    }
  }
  std::size_t position() const { return position_; }
  void seek(std::size_t position) {
    if (position > data_.size()) {
      failed_ = true;
    } else {
      position_ = position;
    }
  }
  bool failed() const { return failed_; }

 private:
  std::span<const unsigned char> data_;
  std::size_t position_ = 0;
  bool failed_ = false;
};

// RFC 2181 §8: a TTL with the top bit set is treated as zero.
std::uint32_t sane_ttl(std::uint32_t ttl) { return ttl > 0x7FFFFFFFu ? 0 : ttl; }

std::optional<std::chrono::seconds> cache_lifetime(const Answer& answer) {
  const bool negative = has_no_records(answer.status);
  if ((answer.status != ARES_SUCCESS && !negative) || answer.message.empty()) return std::nullopt;

  MessageReader reader(answer.message);
  reader.skip(4);  // id, flags
  const auto questions = reader.number(2);
  const auto answers = reader.number(2);
  const auto authorities = reader.number(2);
  reader.skip(2);
  for (std::uint32_t i = 0; i < questions && !reader.failed(); ++i) {
    reader.skip_name();
    reader.skip(4);
  }
  std::optional<std::uint32_t> lowest;
  const auto consider = [&lowest](std::uint32_t ttl) {
    lowest = lowest ? std::min(*lowest, sane_ttl(ttl)) : sane_ttl(ttl);
  };
  for (std::uint32_t i = 0; i < answers && !reader.failed(); ++i) {
    reader.skip_name();
    reader.skip(4);  // type, class
    const auto ttl = reader.number(4);
    reader.skip(reader.number(2));
    if (!negative) consider(ttl);
  }
  if (negative) {
    for (std::uint32_t i = 0; i < authorities && !reader.failed(); ++i) {
      reader.skip_name();
      const auto type = reader.number(2);
      reader.skip(2);
      const auto ttl = reader.number(4);
      const auto length = reader.number(2);
      const auto end = reader.position() + length;
      if (type == kTypeSoa) {
        reader.skip_name();  // MNAME
        reader.skip_name();  // RNAME
        reader.skip(16);     // SERIAL, REFRESH, RETRY, EXPIRE
        const auto minimum = reader.number(4);
        consider(std::min(ttl, minimum));
      }
      reader.seek(end);
    }
  }
  if (reader.failed() || !lowest || *lowest == 0) return std::nullopt;
  return std::min(std::chrono::seconds(*lowest), kMaxCacheLifetime);
}

std::string normalised_name(const std::string& name) {
  std::string result = name;
  if (!result.empty() && result.back() == '.') result.pop_back();
  std::transform(result.begin(), result.end(), result.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return result;
}

// An IPv4 or IPv6 address, the latter also in brackets as a JID's domain
// part writes it (RFC 7622 §3.2).
std::optional<boost::asio::ip::address> ip_literal(const std::string& host) {
  const bool bracketed = host.size() > 2 && host.front() == '[' && host.back() == ']';
  boost::system::error_code error;
  auto address = boost::asio::ip::make_address(
      bracketed ? host.substr(1, host.size() - 2) : host, error);
  if (error || (bracketed && !address.is_v6())) return std::nullopt;
  return address;
}

struct ServiceRecord {
  Target target;
  unsigned priority;
  unsigned weight;
};

std::vector<ServiceRecord> parse_srv(const Question& question, const Answer& answer,
                                     bool direct_tls) {
  ares_srv_reply* replies = nullptr;
  const int status = ares_parse_srv_reply(answer.message.data(),
                                          static_cast<int>(answer.message.size()), &replies);
  if (status == ARES_ENODATA) return {};
  if (status != ARES_SUCCESS) throw error_for(question, status);
  std::vector<ServiceRecord> records;
  for (const auto* reply = replies; reply != nullptr; reply = reply->next) {
    records.push_back({{normalised_name(reply->host), reply->port, direct_tls},
                       reply->priority,
                       reply->weight});
  }
  ares_free_data(replies);
  return records;
}

std::vector<boost::asio::ip::address> parse_addresses(const Question& question,
                                                      const Answer& answer) {
  const auto* data = answer.message.data();
  const auto size = static_cast<int>(answer.message.size());
  int count = kMaxAddressesPerAnswer;
  std::vector<boost::asio::ip::address> addresses;
  int status;
  if (question.type == kTypeAaaa) {
    std::array<ares_addr6ttl, kMaxAddressesPerAnswer> records{};
    status = ares_parse_aaaa_reply(data, size, nullptr, records.data(), &count);
    for (int i = 0; status == ARES_SUCCESS && i < count; ++i) {
      boost::asio::ip::address_v6::bytes_type bytes;
      std::copy_n(records[i].ip6addr._S6_un._S6_u8, bytes.size(), bytes.begin());
      addresses.emplace_back(boost::asio::ip::address_v6(bytes));
    }
  } else {
    std::array<ares_addrttl, kMaxAddressesPerAnswer> records{};
    status = ares_parse_a_reply(data, size, nullptr, records.data(), &count);
    for (int i = 0; status == ARES_SUCCESS && i < count; ++i) {
      addresses.emplace_back(boost::asio::ip::address_v4(ntohl(records[i].ipaddr.s_addr)));
    }
  }
  if (status != ARES_SUCCESS && status != ARES_ENODATA) throw error_for(question, status);
  return addresses;
}

// RFC 2782 ordering of one set of records that share priority and transport:
// repeatedly pick at random, each record with a chance proportional to its
// weight; zero-weight records sit first so they keep a small chance of
// coming early (the RFC's arrangement).
void append_weighted(std::vector<ServiceRecord> group, std::mt19937& random,
                     std::vector<Target>& out) {
  std::stable_partition(group.begin(), group.end(),
                        [](const ServiceRecord& record) { return record.weight == 0; });
  while (!group.empty()) {
    unsigned total = 0;
    for (const auto& record : group) total += record.weight;
    const unsigned pick = std::uniform_int_distribution<unsigned>(0, total)(random);
    unsigned running = 0;
    auto chosen = group.begin();
    for (auto it = group.begin(); it != group.end(); ++it) {
      running += it->weight;
      if (running >= pick) {
        chosen = it;
        break;
      }
    }
    out.push_back(chosen->target);
    group.erase(chosen);
  }
}

}  // namespace

struct Resolver::Impl : std::enable_shared_from_this<Impl> {
  // A socket c-ares asked us to watch. The descriptor never owns the fd:
  // c-ares closes it after telling us to stop watching.
  struct Watch {
    Watch(const boost::asio::any_io_executor& executor, ares_socket_t fd)
        : descriptor(executor, fd), fd(fd) {}
    boost::asio::posix::stream_descriptor descriptor;
    ares_socket_t fd;
    bool want_read = false;
    bool want_write = false;
    bool reading = false;
    bool writing = false;
    bool closed = false;
  };

  // One round of questions asked together; the deadline timer doubles as
  // the completion signal (cancelled when the last answer arrives).
  struct Lookup {
    Lookup(const boost::asio::any_io_executor& executor, std::size_t questions)
        : deadline(executor), answers(questions) {}
    boost::asio::steady_timer deadline;
    std::vector<Answer> answers;
    std::size_t pending = 0;
    bool finished = false;
  };
  struct QueryContext {
    std::shared_ptr<Lookup> lookup;
    std::size_t index;
  };

  struct CacheEntry {
    Clock::time_point expires;
    Answer answer;
  };

  Impl(boost::asio::any_io_executor executor, const std::string& servers,
       std::chrono::milliseconds timeout)
      : executor(std::move(executor)), timeout(timeout), process_timer(this->executor),
        random(std::random_device{}()) {
    initialise_library();
    ares_options options{};
    options.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
    // Two tries, the second with c-ares' doubled wait, fit in 'timeout';
    // the lookup's own deadline is the real bound.
    options.timeout = static_cast<int>(std::max<std::int64_t>(timeout.count() / 3, 50));
    options.tries = 2;
    options.sock_state_cb = &Impl::on_socket_state;
    options.sock_state_cb_data = this;
    const int mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB;
    if (const int status = ares_init_options(&channel, &options, mask); status != ARES_SUCCESS) {
      throw std::runtime_error(std::string("c-ares initialisation: ") + ares_strerror(status));
    }
    if (!servers.empty()) {
      if (const int status = ares_set_servers_ports_csv(channel, servers.c_str());
          status != ARES_SUCCESS) {
        ares_destroy(channel);
        channel = nullptr;
        throw std::invalid_argument("DNS servers '" + servers + "': " + ares_strerror(status));
      }
    }
  }

  ~Impl() { shutdown(); }

  // Pending lookups complete with ARES_EDESTRUCTION; sockets are released.
  void shutdown() {
    if (channel == nullptr) return;
    auto* closing = channel;
    channel = nullptr;
    ares_destroy(closing);
    for (auto& [fd, watch] : watches) release(*watch);
    watches.clear();
    process_timer.cancel();
  }

  static void release(Watch& watch) {
    watch.closed = true;
    watch.descriptor.release();  // aborts its waits; the fd stays open for c-ares
  }

  static void on_socket_state(void* data, ares_socket_t fd, int readable, int writable) {
    static_cast<Impl*>(data)->socket_state(fd, readable != 0, writable != 0);
  }

  void socket_state(ares_socket_t fd, bool readable, bool writable) {
    if (!readable && !writable) {
      if (auto it = watches.find(fd); it != watches.end()) {
        release(*it->second);
        watches.erase(it);
      }
      return;
    }
    auto& watch = watches[fd];
    if (!watch) watch = std::make_shared<Watch>(executor, fd);
    watch->want_read = readable;
    watch->want_write = writable;
    arm(watch);
  }

  void arm(const std::shared_ptr<Watch>& watch) {
    using boost::asio::posix::descriptor_base;
    if (watch->want_read && !watch->reading) {
      watch->reading = true;
      watch->descriptor.async_wait(
          descriptor_base::wait_read,
          [weak = weak_from_this(), watch](const boost::system::error_code& error) {
            watch->reading = false;
            if (!error && !watch->closed && watch->want_read) {
              if (auto self = weak.lock()) self->process(watch, watch->fd, ARES_SOCKET_BAD);
            }
          });
    }
    if (watch->want_write && !watch->writing) {
      watch->writing = true;
      watch->descriptor.async_wait(
          descriptor_base::wait_write,
          [weak = weak_from_this(), watch](const boost::system::error_code& error) {
            watch->writing = false;
            if (!error && !watch->closed && watch->want_write) {
              if (auto self = weak.lock()) self->process(watch, ARES_SOCKET_BAD, watch->fd);
            }
          });
    }
  }

  void process(const std::shared_ptr<Watch>& watch, ares_socket_t read_fd, ares_socket_t write_fd) {
    if (channel == nullptr) return;
    ares_process_fd(channel, read_fd, write_fd);
    if (!watch->closed) arm(watch);
    schedule_retransmissions();
  }

  void schedule_retransmissions() {
    if (channel == nullptr) return;
    timeval buffer{};
    const timeval* next = ares_timeout(channel, nullptr, &buffer);
    if (next == nullptr) {
      process_timer.cancel();
      return;
    }
    process_timer.expires_after(std::chrono::seconds(next->tv_sec) +
                                std::chrono::microseconds(next->tv_usec));
    process_timer.async_wait([weak = weak_from_this()](const boost::system::error_code& error) {
      if (error) return;
      auto self = weak.lock();
      if (!self || self->channel == nullptr) return;
      ares_process_fd(self->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
      self->schedule_retransmissions();
    });
  }

  static void on_answer(void* argument, int status, int, unsigned char* message, int length) {
    std::unique_ptr<QueryContext> context(static_cast<QueryContext*>(argument));
    auto& lookup = *context->lookup;
    if (lookup.finished) return;
    auto& answer = lookup.answers[context->index];
    answer.status = status;
    if (message != nullptr && length > 0) answer.message.assign(message, message + length);
    if (--lookup.pending == 0) lookup.deadline.cancel();
  }

  static std::string cache_key(const Question& question) {
    return std::to_string(question.type) + ' ' + question.name;
  }

  const Answer* cached(const Question& question, Clock::time_point now) {
    auto it = cache.find(cache_key(question));
    if (it == cache.end()) return nullptr;
    if (it->second.expires <= now) {
      forget(it);
      return nullptr;
    }
    return &it->second.answer;
  }

  void forget(std::unordered_map<std::string, CacheEntry>::iterator it) {
    cache_bytes -= it->first.size() + it->second.answer.message.size();
    cache.erase(it);
  }

  // Bounded by entries and bytes: names to look up can come from remote
  // users, so the cache must not grow with them.
  void remember(const Question& question, const Answer& answer, Clock::time_point now) {
    const auto lifetime = cache_lifetime(answer);
    if (!lifetime) return;
    auto key = cache_key(question);
    const auto bytes = key.size() + answer.message.size();
    if (bytes > kCacheMaxBytes / 16) return;
    if (auto it = cache.find(key); it != cache.end()) forget(it);
    if (cache.size() >= kCacheMaxEntries || cache_bytes + bytes > kCacheMaxBytes) {
      for (auto it = cache.begin(); it != cache.end();) {
        const auto current = it++;
        if (current->second.expires <= now) forget(current);
      }
      if (cache.size() >= kCacheMaxEntries || cache_bytes + bytes > kCacheMaxBytes) {
        cache.clear();
        cache_bytes = 0;
      }
    }
    cache.emplace(std::move(key), CacheEntry{now + *lifetime, answer});
    cache_bytes += bytes;
  }

  // Answers for every question, asked concurrently, from the cache where it
  // is fresh. Unanswered questions read ARES_ETIMEOUT after 'timeout'.
  boost::asio::awaitable<std::vector<Answer>> ask(const std::vector<Question>& questions) {
    auto self = shared_from_this();
    auto lookup = std::make_shared<Lookup>(executor, questions.size());
    std::vector<bool> asked(questions.size(), false);
    const auto start = Clock::now();
    for (std::size_t i = 0; i < questions.size(); ++i) {
      if (const auto* answer = cached(questions[i], start)) {
        lookup->answers[i] = *answer;
        continue;
      }
      if (channel == nullptr) throw Error(Error::Kind::failure, "DNS resolver is shut down");
      asked[i] = true;
      ++lookup->pending;  // before ares_query: it may answer at once
      ares_query(channel, questions[i].name.c_str(), kClassIn, questions[i].type, &Impl::on_answer,
                 new QueryContext{lookup, i});
    }
    if (lookup->pending > 0) {
      schedule_retransmissions();
      lookup->deadline.expires_after(timeout);
      boost::system::error_code ignored;
      co_await lookup->deadline.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ignored));
    }
    lookup->finished = true;
    const auto now = Clock::now();
    for (std::size_t i = 0; i < questions.size(); ++i) {
      if (asked[i]) remember(questions[i], lookup->answers[i], now);
    }
    co_return std::move(lookup->answers);
  }

  std::vector<Target> order(std::vector<ServiceRecord> records) {
    std::stable_sort(records.begin(), records.end(), [](const auto& a, const auto& b) {
      if (a.priority != b.priority) return a.priority < b.priority;
      return a.target.direct_tls && !b.target.direct_tls;
    });
    std::vector<Target> targets;
    for (auto begin = records.begin(); begin != records.end();) {
      const auto end = std::find_if(begin, records.end(), [&](const ServiceRecord& record) {
        return record.priority != begin->priority ||
               record.target.direct_tls != begin->target.direct_tls;
      });
      append_weighted({begin, end}, random, targets);
      begin = end;
    }
    return targets;
  }

  boost::asio::any_io_executor executor;
  std::chrono::milliseconds timeout;
  ares_channel channel = nullptr;
  boost::asio::steady_timer process_timer;
  std::unordered_map<ares_socket_t, std::shared_ptr<Watch>> watches;
  std::unordered_map<std::string, CacheEntry> cache;
  std::size_t cache_bytes = 0;
  std::mt19937 random;
};

Resolver::Resolver(boost::asio::any_io_executor executor, std::string servers,
                   std::chrono::milliseconds timeout)
    : impl_(std::make_shared<Impl>(std::move(executor), servers, timeout)) {}

Resolver::~Resolver() { impl_->shutdown(); }

boost::asio::awaitable<std::vector<Target>> Resolver::server_targets(const std::string& domain) {
  auto impl = impl_;
  const auto name = normalised_name(domain);
  if (name.empty()) throw Error(Error::Kind::failure, "empty domain name");
  if (const auto literal = ip_literal(name)) {
    co_return std::vector<Target>{{literal->to_string(), 5269, false}};
  }

  // Index 0 is Direct TLS (XEP-0368), index 1 STARTTLS (RFC 6120 §3.2.1).
  const std::vector<Question> questions{{"_xmpps-server._tcp." + name, kTypeSrv},
                                        {"_xmpp-server._tcp." + name, kTypeSrv}};
  const auto answers = co_await impl->ask(questions);

  std::vector<ServiceRecord> records;
  bool saw_no_service = false;
  for (std::size_t i = 0; i < questions.size(); ++i) {
    if (answers[i].status != ARES_SUCCESS) continue;
    for (auto& record : parse_srv(questions[i], answers[i], i == 0)) {
      if (record.target.host.empty() || record.target.host == ".") {
        saw_no_service = true;
      } else {
        records.push_back(std::move(record));
      }
    }
  }
  if (!records.empty()) co_return impl->order(std::move(records));
  if (saw_no_service) {
    throw Error(Error::Kind::no_service,
                name + " publishes no XMPP server service (SRV target \".\")");
  }
  // No records at all: RFC 6120 §3.2.2's fallback to the domain itself.
  // The STARTTLS name decides: a Direct TLS lookup that failed outright does
  // not block the fallback, but an unanswered _xmpp-server one does.
  if (!has_no_records(answers[1].status)) throw error_for(questions[1], answers[1].status);
  co_return std::vector<Target>{{name, 5269, false}};
}

boost::asio::awaitable<std::vector<boost::asio::ip::address>> Resolver::addresses(
    const std::string& host) {
  auto impl = impl_;
  if (auto literal = ip_literal(host)) co_return std::vector<boost::asio::ip::address>{*literal};
  const auto name = normalised_name(host);
  if (name.empty()) throw Error(Error::Kind::failure, "empty host name");

  const std::vector<Question> questions{{name, kTypeAaaa}, {name, kTypeA}};
  const auto answers = co_await impl->ask(questions);

  std::array<std::vector<boost::asio::ip::address>, 2> found;
  for (std::size_t i = 0; i < questions.size(); ++i) {
    if (answers[i].status == ARES_SUCCESS) found[i] = parse_addresses(questions[i], answers[i]);
  }
  // RFC 8305 §4: alternate families, IPv6 first.
  std::vector<boost::asio::ip::address> interleaved;
  for (std::size_t i = 0; i < std::max(found[0].size(), found[1].size()); ++i) {
    if (i < found[0].size()) interleaved.push_back(found[0][i]);
    if (i < found[1].size()) interleaved.push_back(found[1][i]);
  }
  if (!interleaved.empty()) co_return interleaved;

  for (std::size_t i = 0; i < questions.size(); ++i) {
    if (answers[i].status == ARES_ETIMEOUT) throw error_for(questions[i], answers[i].status);
  }
  for (std::size_t i = 0; i < questions.size(); ++i) {
    if (answers[i].status != ARES_SUCCESS && !has_no_records(answers[i].status)) {
      throw error_for(questions[i], answers[i].status);
    }
  }
  throw Error(Error::Kind::not_found, "no AAAA or A record for " + name);
}

}  // namespace parley::dns
