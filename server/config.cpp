#include "server/config.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>
#include <set>
#include <string_view>

#include "modules/module.hpp"
#include "storage/storage.hpp"
#include "xmpp/jid.hpp"

namespace parley::server {

namespace {

std::string describe(const std::string& file, int line, const std::string& reason) {
  // Line 0 means "the file as a whole" (it could not be read at all).
  if (line <= 0) return file + ": " + reason;
  return file + ":" + std::to_string(line) + ": " + reason;
}

std::string join(const std::vector<std::string>& items, std::string_view separator = ", ") {
  std::string joined;
  for (const auto& item : items) {
    if (!joined.empty()) joined += separator;
    joined += item;
  }
  return joined;
}

// Reads and validates one document. Every check names the node it looked at,
// so errors carry the line the user has to fix.
class Loader {
 public:
  explicit Loader(std::string file) : file_(std::move(file)) {}

  Config load(const YAML::Node& root) {
    Config config;
    config.path = file_;
    if (!root.IsDefined() || root.IsNull()) {
      fail(1, "the file is empty: expected a mapping with at least 'hosts' and 'listen'");
    }
    if (!root.IsMap()) fail(root, "the top level must be a mapping of settings (hosts, listen, ...)");

    check_keys(root, "at top level",
               {"hosts", "listen", "certificates", "storage", "modules", "host_config", "limits", "log", "admin_socket",
                "shards", "workers", "s2s", "components", "proxy65", "http", "upload"});

    const auto hosts = require(root, "hosts", "at top level");
    read_hosts(hosts, config);
    read_listeners(require(root, "listen", "at top level"), config);
    read_certificates(root["certificates"], config);
    check_certificates_cover_hosts(hosts, config);
    if (const auto storage = root["storage"]) config.storage = read_storage(storage);
    if (const auto modules = root["modules"]) config.modules = read_modules(modules, "modules");
    if (const auto host_config = root["host_config"]) read_host_config(host_config, config);
    if (const auto limits = root["limits"]) read_limits(limits, config.limits);
    if (const auto log = root["log"]) read_log(log, config.log);
    if (const auto s2s = root["s2s"]) read_s2s(s2s, config.s2s);
    if (const auto components = root["components"]) read_components(components, config);
    if (const auto proxy65 = root["proxy65"]) read_proxy65(proxy65, config);
    if (const auto http = root["http"]) read_http(http, config.http);
    if (const auto upload = root["upload"]) read_upload(upload, config);
    if (const auto admin_socket = root["admin_socket"]) config.admin_socket = read_socket_path(admin_socket);
    if (const auto shards = root["shards"]) {
      config.shards =
          static_cast<unsigned>(read_integer(shards, 0, 1024, "shards must be an integer 0-1024 (0: one per core)"));
    }
    if (const auto workers = root["workers"]) {
      config.workers = static_cast<unsigned>(read_integer(workers, 1, 1024, "workers must be an integer 1-1024"));
    }
    return config;
  }

  [[noreturn]] void fail(int line, const std::string& reason) const { throw ConfigError(file_, line, reason); }
  [[noreturn]] void fail(const YAML::Node& node, const std::string& reason) const { fail(line_of(node), reason); }

 private:
  static int mark_line(const YAML::Node& node) {
    const auto mark = node.Mark();
    return mark.line >= 0 ? mark.line + 1 : 0;
  }

  // yaml-cpp marks an empty value ("storage:") where the next token starts,
  // often the following line; the key's line is the one to fix.
  int line_of(const YAML::Node& node) const {
    if (node.IsNull()) {
      for (const auto& [value, key_line] : empty_value_lines_) {
        if (value.is(node)) return key_line;
      }
    }
    return mark_line(node);
  }

  void remember_key_lines(const YAML::Node& map) {
    for (const auto& entry : map) {
      if (entry.second.IsNull()) empty_value_lines_.emplace_back(entry.second, mark_line(entry.first));
    }
  }

  // Refuses keys outside 'allowed' and keys given twice (yaml-cpp keeps both).
  void check_keys(const YAML::Node& map, const std::string& where, const std::vector<std::string>& allowed) {
    remember_key_lines(map);
    std::set<std::string> seen;
    for (const auto& entry : map) {
      const auto& key_node = entry.first;
      if (!key_node.IsScalar()) fail(key_node, "keys must be plain names " + where);
      const auto& key = key_node.Scalar();
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        fail(key_node, "unknown key '" + key + "' " + where + " (expected: " + join(allowed) + ")");
      }
      if (!seen.insert(key).second) fail(key_node, "duplicate key '" + key + "' " + where);
    }
  }

  YAML::Node require(const YAML::Node& map, const std::string& key, const std::string& where) const {
    auto node = map[key];
    if (!node) fail(map, "missing required key '" + key + "' " + where);
    return node;
  }

  std::string read_string(const YAML::Node& node, const std::string& reason) const {
    if (!node.IsScalar() || node.Scalar().empty()) fail(node, reason);
    return node.Scalar();
  }

  std::uint64_t read_integer(const YAML::Node& node, std::uint64_t min, std::uint64_t max,
                             const std::string& reason) const {
    if (!node.IsScalar()) fail(node, reason);
    const auto& text = node.Scalar();
    std::uint64_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || error != std::errc() || end != text.data() + text.size() || value < min || value > max) {
      fail(node, reason);
    }
    return value;
  }

  // A byte count: an integer, optionally with a KiB or MiB suffix ("256KiB").
  std::size_t read_size(const YAML::Node& node, std::size_t min, const std::string& name) const {
    const auto reason = name + " must be a positive integer of at least " + std::to_string(min) +
                        " bytes, optionally with a KiB or MiB suffix";
    if (!node.IsScalar()) fail(node, reason);
    std::string_view text = node.Scalar();
    std::uint64_t unit = 1;
    if (text.ends_with("KiB")) {
      unit = 1024;
      text.remove_suffix(3);
    } else if (text.ends_with("MiB")) {
      unit = 1024 * 1024;
      text.remove_suffix(3);
    }
    while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
    std::uint64_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    constexpr std::uint64_t max_bytes = std::uint64_t{1} << 40;
    if (text.empty() || error != std::errc() || end != text.data() + text.size() || value > max_bytes / unit ||
        value * unit < min) {
      fail(node, reason);
    }
    return static_cast<std::size_t>(value * unit);
  }

  std::string read_domain(const YAML::Node& node, const std::string& what) const {
    const auto text = read_string(node, what + " must be a domain name");
    auto domain = xmpp::nameprep(text);
    if (!domain || domain->empty() || domain->find_first_of("@/ \t") != std::string::npos) {
      fail(node, "invalid " + what + " '" + text + "'");
    }
    return *domain;
  }

  void read_hosts(const YAML::Node& node, Config& config) {
    if (!node.IsSequence() || node.size() == 0) fail(node, "hosts must be a non-empty list of domain names");
    for (const auto& item : node) {
      auto host = read_domain(item, "host name");
      if (std::find(config.hosts.begin(), config.hosts.end(), host) != config.hosts.end()) {
        fail(item, "duplicate host '" + host + "'");
      }
      config.hosts.push_back(std::move(host));
    }
  }

  void read_listeners(const YAML::Node& node, Config& config) {
    if (!node.IsSequence() || node.size() == 0) {
      fail(node, "listen must be a non-empty list of listeners ({module, address, port, tls})");
    }
    std::set<std::pair<std::string, std::uint16_t>> endpoints;
    for (std::size_t i = 0; i < node.size(); ++i) {
      const auto item = node[i];
      const auto where = "listen[" + std::to_string(i) + "]";
      if (!item.IsMap()) fail(item, where + " must be a mapping with module, address, port and tls");
      check_keys(item, "in " + where, {"module", "address", "port", "tls"});
      ListenerConfig listener;
      if (const auto module = item["module"]) {
        listener.module = read_string(module, "module must be c2s, s2s, component or http");
        if (listener.module != "c2s" && listener.module != "s2s" && listener.module != "component" &&
            listener.module != "http")
          fail(module,
               "unsupported listener module '" + listener.module + "' (expected: c2s, s2s, component or http)");
      }
      if (listener.module == "http") {
        listener.port = 5443;
        listener.tls = TlsMode::direct;
      }
      if (listener.module == "component") {
        listener.port = 5347;
        listener.tls = TlsMode::none;
      }
      if (const auto address = item["address"]) listener.address = read_address(address);
      if (const auto port = item["port"]) {
        listener.port = static_cast<std::uint16_t>(read_integer(port, 1, 65535, "port must be an integer 1-65535"));
      }
      if (const auto tls = item["tls"]) listener.tls = read_tls_mode(tls);
      if (listener.module == "s2s" && listener.tls == TlsMode::starttls_optional) {
        fail(item["tls"], "s2s listeners require TLS: tls must be starttls or direct");
      }
      if (listener.module == "component" && listener.tls != TlsMode::none && listener.tls != TlsMode::direct) {
        fail(item["tls"], "component listeners take tls: none or direct");
      }
      if (listener.module == "http" && listener.tls != TlsMode::none && listener.tls != TlsMode::direct) {
        fail(item["tls"], "http listeners take tls: direct (HTTPS) or none (behind a TLS-terminating proxy)");
      }
      if (listener.module != "component" && listener.module != "http" && listener.tls == TlsMode::none) {
        fail(item["tls"], "tls: none is only for component listeners (and http listeners behind a proxy)");
      }
      if (!endpoints.emplace(listener.address, listener.port).second) {
        fail(item, "duplicate listener " + endpoint_name(listener));
      }
      config.listeners.push_back(std::move(listener));
    }
  }

  static std::string endpoint_name(const ListenerConfig& listener) {
    if (listener.address.find(':') != std::string::npos) {
      return "[" + listener.address + "]:" + std::to_string(listener.port);
    }
    return listener.address + ":" + std::to_string(listener.port);
  }

  // An IP address in its canonical text form, so that duplicates compare equal.
  std::string read_address(const YAML::Node& node) const {
    const auto reason = "address must be an IPv4 or IPv6 address such as 127.0.0.1 or ::1";
    const auto text = read_string(node, reason);
    unsigned char bytes[sizeof(in6_addr)];
    char canonical[INET6_ADDRSTRLEN];
    for (const int family : {AF_INET, AF_INET6}) {
      if (inet_pton(family, text.c_str(), bytes) == 1 && inet_ntop(family, bytes, canonical, sizeof canonical)) {
        return canonical;
      }
    }
    fail(node, std::string(reason) + ", got '" + text + "'");
  }

  TlsMode read_tls_mode(const YAML::Node& node) const {
    const auto reason = "tls must be one of: starttls, starttls_optional, direct, none";
    const auto text = read_string(node, reason);
    if (text == "none") return TlsMode::none;
    if (text == "starttls") return TlsMode::starttls_required;
    if (text == "starttls_optional") return TlsMode::starttls_optional;
    if (text == "direct") return TlsMode::direct;
    fail(node, std::string(reason) + " (got '" + text + "')");
  }

  void read_certificates(const YAML::Node& node, Config& config) {
    if (!node) return;
    if (!node.IsSequence()) fail(node, "certificates must be a list of {domain, cert, key}");
    for (std::size_t i = 0; i < node.size(); ++i) {
      const auto item = node[i];
      const auto where = "certificates[" + std::to_string(i) + "]";
      if (!item.IsMap()) fail(item, where + " must be a mapping with domain, cert and key");
      check_keys(item, "in " + where, {"domain", "cert", "key"});
      CertificateConfig certificate;
      const auto domain = require(item, "domain", "in " + where);
      const auto domain_text = read_string(domain, "domain must be a domain name or *.parent");
      if (domain_text.starts_with("*.")) {
        certificate.domain = "*." + read_domain_text(domain, domain_text.substr(2), "certificate domain");
      } else {
        certificate.domain = read_domain(domain, "certificate domain");
      }
      for (const auto& existing : config.certificates) {
        if (existing.domain == certificate.domain)
          fail(domain, "duplicate certificate for '" + certificate.domain + "'");
      }
      certificate.cert = read_readable_file(require(item, "cert", "in " + where), "cert");
      certificate.key = read_readable_file(require(item, "key", "in " + where), "key");
      config.certificates.push_back(std::move(certificate));
    }
  }

  std::string read_domain_text(const YAML::Node& node, const std::string& text, const std::string& what) const {
    auto domain = xmpp::nameprep(text);
    if (!domain || domain->empty() || domain->find_first_of("@/ \t*") != std::string::npos) {
      fail(node, "invalid " + what + " '*." + text + "'");
    }
    return *domain;
  }

  // Certificates are read at start (and on SIGHUP): a path that cannot be
  // opened now would only fail later, in the middle of a TLS handshake.
  std::string read_readable_file(const YAML::Node& node, const std::string& key) const {
    const auto path = read_string(node, key + " must be a file path");
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(node, "cannot read " + key + " file '" + path + "': " + std::strerror(errno));
    struct stat info {};
    const bool regular = ::fstat(fd, &info) == 0 && S_ISREG(info.st_mode);
    ::close(fd);
    if (!regular) fail(node, key + " file '" + path + "' is not a regular file");
    return path;
  }

  void check_certificates_cover_hosts(const YAML::Node& hosts, const Config& config) const {
    for (std::size_t i = 0; i < config.hosts.size(); ++i) {
      const auto& host = config.hosts[i];
      const auto dot = host.find('.');
      const auto wildcard = dot == std::string::npos ? std::string() : "*" + host.substr(dot);
      const bool covered = std::any_of(config.certificates.begin(), config.certificates.end(), [&](const auto& c) {
        return c.domain == host || (!wildcard.empty() && c.domain == wildcard);
      });
      if (!covered) {
        fail(hosts[i], "host '" + host + "' has no certificate (add an entry for '" + host + "'" +
                           (wildcard.empty() ? "" : " or '" + wildcard + "'") + " to certificates)");
      }
    }
  }

  std::string read_storage(const YAML::Node& node) const {
    const auto reason = "storage must be a URI: memory, sqlite:PATH or mysql://USER:PASSWORD@HOST:PORT/DATABASE";
    const auto uri = read_string(node, reason);
    // "memory:" followed by a line break is a YAML mapping, so the bare name
    // is accepted too.
    if (uri == "memory:" || uri == "memory") return "memory:";
    if (uri.starts_with("sqlite:")) {
      if (uri.size() == std::string_view("sqlite:").size())
        fail(node, "storage sqlite: needs a database path (sqlite:PATH)");
      return uri;
    }
    if (uri.starts_with("mysql://")) {
      try {
        storage::check_uri(uri);
      } catch (const storage::Error& error) {
        fail(node, error.what());
      }
      return uri;
    }
    fail(node, "unsupported storage '" + uri +
                   "' (expected: memory, sqlite:PATH or mysql://USER:PASSWORD@HOST:PORT/DATABASE)");
  }

  std::map<std::string, YAML::Node> read_modules(const YAML::Node& node, const std::string& where) const {
    std::map<std::string, YAML::Node> modules;
    if (node.IsNull()) return modules;
    if (!node.IsMap()) fail(node, where + " must be a mapping of module name to its options");
    const auto known = modules::names();
    for (const auto& entry : node) {
      const auto& name_node = entry.first;
      if (!name_node.IsScalar()) fail(name_node, "module names in " + where + " must be plain names");
      const auto& name = name_node.Scalar();
      if (std::find(known.begin(), known.end(), name) == known.end()) {
        fail(name_node, "unknown module '" + name + "' in " + where + " (known: " + join(known) + ")");
      }
      if (!entry.second.IsNull() && !entry.second.IsMap()) {
        fail(entry.second, "options of module '" + name + "' must be a mapping (or empty)");
      }
      if (!modules.emplace(name, entry.second).second) {
        fail(name_node, "module '" + name + "' is listed twice in " + where);
      }
    }
    return modules;
  }

  void read_host_config(const YAML::Node& node, Config& config) {
    if (node.IsNull()) return;
    if (!node.IsMap()) fail(node, "host_config must be a mapping of host to its settings");
    std::set<std::string> seen;
    for (const auto& entry : node) {
      const auto host = read_domain(entry.first, "host name");
      if (std::find(config.hosts.begin(), config.hosts.end(), host) == config.hosts.end()) {
        fail(entry.first, "host_config names '" + host + "', which is not in hosts");
      }
      if (!seen.insert(host).second) fail(entry.first, "duplicate host_config entry for '" + host + "'");
      const auto& settings = entry.second;
      const auto where = "host_config." + host;
      if (settings.IsNull()) continue;
      if (!settings.IsMap()) fail(settings, where + " must be a mapping (modules: ...)");
      check_keys(settings, "in " + where, {"modules"});
      if (const auto modules = settings["modules"])
        config.host_modules[host] = read_modules(modules, where + ".modules");
    }
  }

  void read_limits(const YAML::Node& node, Limits& limits) {
    if (node.IsNull()) return;
    if (!node.IsMap()) fail(node, "limits must be a mapping");
    check_keys(node, "in limits",
               {"max_stanza_size", "c2s_rate", "c2s_burst", "s2s_rate", "s2s_burst", "component_rate",
                "component_burst", "max_send_queue", "auth_timeout", "idle_timeout", "keepalive_interval",
                "resume_timeout"});
    // RFC 6120 §13.12: servers must accept stanzas of at least 10000 bytes.
    if (const auto n = node["max_stanza_size"]) limits.max_stanza_size = read_size(n, 10000, "max_stanza_size");
    if (const auto n = node["c2s_rate"]) limits.c2s_rate = read_size(n, 1, "c2s_rate");
    if (const auto n = node["c2s_burst"]) limits.c2s_burst = read_size(n, 1, "c2s_burst");
    if (const auto n = node["s2s_rate"]) limits.s2s_rate = read_size(n, 1, "s2s_rate");
    if (const auto n = node["s2s_burst"]) limits.s2s_burst = read_size(n, 1, "s2s_burst");
    if (const auto n = node["component_rate"]) limits.component_rate = read_size(n, 1, "component_rate");
    if (const auto n = node["component_burst"]) limits.component_burst = read_size(n, 1, "component_burst");
    if (const auto n = node["max_send_queue"]) limits.max_send_queue = read_size(n, 1, "max_send_queue");
    if (limits.max_send_queue < limits.max_stanza_size) {
      const auto n = node["max_send_queue"] ? node["max_send_queue"] : node["max_stanza_size"];
      fail(n, "max_send_queue (" + std::to_string(limits.max_send_queue) + ") must be at least max_stanza_size (" +
                  std::to_string(limits.max_stanza_size) + "), or every large stanza would end the session");
    }
    const auto seconds = [&](const char* key, std::uint64_t max, std::chrono::seconds& out) {
      if (const auto n = node[key]) {
        out = std::chrono::seconds(
            read_integer(n, 1, max, std::string(key) + " must be a number of seconds 1-" + std::to_string(max)));
      }
    };
    seconds("auth_timeout", 3600, limits.auth_timeout);
    seconds("idle_timeout", 86400, limits.idle_timeout);
    seconds("keepalive_interval", 86400, limits.keepalive_interval);
    seconds("resume_timeout", 86400, limits.resume_timeout);
  }

  void read_log(const YAML::Node& node, LogConfig& log) {
    if (node.IsNull()) return;
    if (!node.IsMap()) fail(node, "log must be a mapping (level, file)");
    check_keys(node, "in log", {"level", "file"});
    if (const auto level = node["level"]) {
      const auto reason = "log level must be one of: trace, debug, info, warn, error";
      log.level = read_string(level, reason);
      static const std::set<std::string> levels = {"trace", "debug", "info", "warn", "error"};
      if (!levels.contains(log.level)) fail(level, std::string(reason) + " (got '" + log.level + "')");
    }
    if (const auto file = node["file"]) {
      if (!file.IsNull() && !file.IsScalar()) fail(file, "log file must be a file path (or empty for stderr)");
      log.file = file.IsScalar() ? file.Scalar() : std::string();
    }
  }

  std::vector<std::string> read_domain_list(const YAML::Node& node, const std::string& what) const {
    if (!node.IsSequence()) fail(node, what + " must be a list of domain names");
    std::vector<std::string> domains;
    for (const auto& item : node) domains.push_back(read_domain(item, what + " entry"));
    return domains;
  }

  // "ip:port", with IPv6 addresses in brackets.
  std::string read_endpoint(const YAML::Node& node, const std::string& what) const {
    const auto reason = what + " must be ip:port, such as 127.0.0.1:5269 or [::1]:5269";
    const auto text = read_string(node, reason);
    const auto colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0) fail(node, reason + ", got '" + text + "'");
    std::string address = text.substr(0, colon);
    if (address.front() == '[' && address.back() == ']') address = address.substr(1, address.size() - 2);
    unsigned char bytes[sizeof(in6_addr)];
    const bool ip = inet_pton(AF_INET, address.c_str(), bytes) == 1 || inet_pton(AF_INET6, address.c_str(), bytes) == 1;
    const bool bracketed_if_v6 = address.find(':') == std::string::npos || text.front() == '[';
    std::uint64_t port = 0;
    const auto port_text = std::string_view(text).substr(colon + 1);
    const auto [end, error] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (!ip || !bracketed_if_v6 || port_text.empty() || error != std::errc() ||
        end != port_text.data() + port_text.size() || port == 0 || port > 65535) {
      fail(node, reason + ", got '" + text + "'");
    }
    return text;
  }

  bool read_secure_auth(const YAML::Node& node) const {
    const auto reason = "secure_auth must be required or optional";
    const auto text = read_string(node, reason);
    if (text == "required") return true;
    if (text == "optional") return false;
    fail(node, std::string(reason) + " (got '" + text + "')");
  }

  void read_s2s(const YAML::Node& node, S2sConfig& s2s) {
    if (node.IsNull()) return;
    if (!node.IsMap()) fail(node, "s2s must be a mapping");
    check_keys(node, "in s2s",
               {"secure_auth", "dns_servers", "ca_file", "connect_timeout", "idle_timeout", "secret", "allow", "deny",
                "domains", "tls_min_version", "ciphers"});
    if (const auto n = node["secure_auth"]) s2s.secure_auth_required = read_secure_auth(n);
    if (const auto n = node["dns_servers"]) {
      if (!n.IsSequence()) fail(n, "dns_servers must be a list of ip:port");
      for (const auto& item : n) s2s.dns_servers.push_back(read_endpoint(item, "a DNS server"));
    }
    if (const auto n = node["ca_file"]) s2s.ca_file = read_readable_file(n, "ca_file");
    if (const auto n = node["connect_timeout"]) {
      s2s.connect_timeout =
          std::chrono::seconds(read_integer(n, 1, 3600, "connect_timeout must be a number of seconds 1-3600"));
    }
    if (const auto n = node["idle_timeout"]) {
      s2s.idle_timeout = std::chrono::seconds(read_integer(n, 1, 86400, "idle_timeout must be a number of seconds 1-86400"));
    }
    if (const auto n = node["secret"]) s2s.secret = read_string(n, "secret must be a non-empty string");
    if (const auto n = node["allow"]) s2s.allow = read_domain_list(n, "allow");
    if (const auto n = node["deny"]) s2s.deny = read_domain_list(n, "deny");
    if (const auto n = node["tls_min_version"]) {
      s2s.tls_min_version = read_string(n, "tls_min_version must be 1.2 or 1.3");
      if (s2s.tls_min_version != "1.2" && s2s.tls_min_version != "1.3") {
        fail(n, "tls_min_version must be 1.2 or 1.3 (got '" + s2s.tls_min_version + "')");
      }
    }
    if (const auto n = node["ciphers"]) s2s.ciphers = read_string(n, "ciphers must be an OpenSSL cipher list");
    if (const auto domains = node["domains"]) {
      if (!domains.IsMap()) fail(domains, "s2s.domains must be a mapping of domain to its settings");
      for (const auto& entry : domains) {
        const auto domain = read_domain(entry.first, "s2s.domains name");
        const auto where = "s2s.domains." + domain;
        const auto& settings = entry.second;
        if (!settings.IsMap()) fail(settings, where + " must be a mapping (ca_file, address, secure_auth)");
        check_keys(settings, "in " + where, {"ca_file", "address", "secure_auth"});
        S2sDomainConfig domain_config;
        if (const auto n = settings["ca_file"]) domain_config.ca_file = read_readable_file(n, "ca_file");
        if (const auto n = settings["address"]) domain_config.address = read_endpoint(n, "address");
        if (const auto n = settings["secure_auth"]) domain_config.secure_auth_required = read_secure_auth(n);
        if (!s2s.domains.emplace(domain, std::move(domain_config)).second) {
          fail(entry.first, "duplicate s2s.domains entry for '" + domain + "'");
        }
      }
    }
  }

  void read_components(const YAML::Node& node, Config& config) {
    if (node.IsNull()) return;
    if (!node.IsSequence()) fail(node, "components must be a list of {domain, secret, replace}");
    for (std::size_t i = 0; i < node.size(); ++i) {
      const auto item = node[i];
      const auto where = "components[" + std::to_string(i) + "]";
      if (!item.IsMap()) fail(item, where + " must be a mapping with domain, secret and replace");
      check_keys(item, "in " + where, {"domain", "secret", "replace"});
      ComponentConfig component;
      const auto domain = require(item, "domain", "in " + where);
      component.domain = read_domain(domain, "component domain");
      if (std::find(config.hosts.begin(), config.hosts.end(), component.domain) != config.hosts.end()) {
        fail(domain, "component domain '" + component.domain + "' is one of the hosts");
      }
      for (const auto& existing : config.components) {
        if (existing.domain == component.domain) fail(domain, "duplicate component '" + component.domain + "'");
      }
      component.secret = read_string(require(item, "secret", "in " + where), "secret must be a non-empty string");
      if (const auto replace = item["replace"]) {
        if (!replace.IsScalar() || (replace.Scalar() != "true" && replace.Scalar() != "false")) {
          fail(replace, "replace must be true or false");
        }
        component.replace = replace.Scalar() == "true";
      }
      config.components.push_back(std::move(component));
    }
  }

  void read_proxy65(const YAML::Node& node, Config& config) {
    Proxy65Config proxy;
    if (!node.IsNull()) {
      if (!node.IsMap()) fail(node, "proxy65 must be a mapping (or empty for the defaults)");
      check_keys(node, "in proxy65",
                 {"domain", "address", "port", "public_host", "public_port", "allow", "rate", "burst",
                  "activation_timeout", "idle_timeout", "max_pending"});
      if (const auto n = node["domain"]) {
        proxy.domain = read_domain(n, "proxy65 domain");
        if (std::find(config.hosts.begin(), config.hosts.end(), proxy.domain) != config.hosts.end()) {
          fail(n, "proxy65 domain '" + proxy.domain + "' is one of the hosts; the proxy needs a domain of its own");
        }
      }
      if (const auto n = node["address"]) proxy.address = read_address(n);
      if (const auto n = node["port"]) {
        proxy.port = static_cast<std::uint16_t>(read_integer(n, 1, 65535, "port must be an integer 1-65535"));
      }
      if (const auto n = node["public_host"]) {
        proxy.public_host = read_string(n, "public_host must be a host name or IP address");
        if (proxy.public_host.find_first_of(" \t/@'\"<>") != std::string::npos) {
          fail(n, "public_host must be a host name or IP address, got '" + proxy.public_host + "'");
        }
      }
      if (const auto n = node["public_port"]) {
        proxy.public_port =
            static_cast<std::uint16_t>(read_integer(n, 1, 65535, "public_port must be an integer 1-65535"));
      }
      if (const auto n = node["allow"]) proxy.allow = read_domain_list(n, "proxy65 allow");
      if (const auto n = node["rate"]) {
        proxy.rate = n.IsScalar() && n.Scalar() == "unlimited" ? 0 : read_size(n, 1, "rate (or 'unlimited')");
      }
      if (const auto n = node["burst"]) proxy.burst = read_size(n, 1, "burst");
      if (const auto n = node["activation_timeout"]) {
        proxy.activation_timeout = std::chrono::seconds(
            read_integer(n, 1, 3600, "activation_timeout must be a number of seconds 1-3600"));
      }
      if (const auto n = node["idle_timeout"]) {
        proxy.idle_timeout =
            std::chrono::seconds(read_integer(n, 1, 86400, "idle_timeout must be a number of seconds 1-86400"));
      }
      if (const auto n = node["max_pending"]) {
        proxy.max_pending = read_integer(n, 2, 1000000, "max_pending must be an integer 2-1000000");
      }
    }
    std::vector<std::string> domains{proxy.domain};
    if (proxy.domain.empty()) {
      domains.clear();
      for (const auto& host : config.hosts) domains.push_back("proxy." + host);
    }
    for (const auto& component : config.components) {
      if (std::find(domains.begin(), domains.end(), component.domain) != domains.end()) {
        fail(node["domain"] ? node["domain"] : node,
             "proxy65 domain '" + component.domain + "' is also a component's domain");
      }
    }
    for (const auto& listener : config.listeners) {
      if (listener.address == proxy.address && listener.port == proxy.port) {
        fail(node["port"] ? node["port"] : node,
             "proxy65 listens on " + endpoint_name(listener) + ", which is also a " + listener.module + " listener");
      }
    }
    config.proxy65 = std::move(proxy);
  }

  void read_http(const YAML::Node& node, HttpConfig& http) {
    if (node.IsNull()) return;
    if (!node.IsMap()) fail(node, "http must be a mapping (max_connections, header_timeout, idle_timeout)");
    check_keys(node, "in http", {"max_connections", "header_timeout", "idle_timeout"});
    if (const auto n = node["max_connections"]) {
      http.max_connections = read_integer(n, 1, 1000000, "max_connections must be an integer 1-1000000");
    }
    if (const auto n = node["header_timeout"]) {
      http.header_timeout =
          std::chrono::seconds(read_integer(n, 1, 3600, "header_timeout must be a number of seconds 1-3600"));
    }
    if (const auto n = node["idle_timeout"]) {
      http.idle_timeout =
          std::chrono::seconds(read_integer(n, 1, 86400, "idle_timeout must be a number of seconds 1-86400"));
    }
  }

  void read_upload(const YAML::Node& node, Config& config) {
    UploadConfig upload;
    if (!node.IsNull()) {
      if (!node.IsMap()) fail(node, "upload must be a mapping (or empty for the defaults)");
      check_keys(node, "in upload",
                 {"domain", "directory", "max_file_size", "quota", "expire_after", "slot_timeout", "url_base"});
      if (const auto n = node["domain"]) {
        upload.domain = read_domain(n, "upload domain");
        if (std::find(config.hosts.begin(), config.hosts.end(), upload.domain) != config.hosts.end()) {
          fail(n, "upload domain '" + upload.domain + "' is one of the hosts; the service needs a domain of its own");
        }
      }
      if (const auto n = node["directory"]) upload.directory = read_string(n, "directory must be a directory path");
      if (const auto n = node["max_file_size"]) upload.max_file_size = read_upload_size(n, "max_file_size");
      if (const auto n = node["quota"]) upload.quota = read_upload_size(n, "quota");
      if (const auto n = node["expire_after"]) {
        upload.expire_after = std::chrono::seconds(
            read_integer(n, 1, 10ull * 365 * 86400, "expire_after must be a number of seconds 1-315360000"));
      }
      if (const auto n = node["slot_timeout"]) {
        upload.slot_timeout =
            std::chrono::seconds(read_integer(n, 1, 86400, "slot_timeout must be a number of seconds 1-86400"));
      }
      if (const auto n = node["url_base"]) upload.url_base = read_url_base(n);
      if (upload.quota < upload.max_file_size) {
        fail(node["quota"] ? node["quota"] : node["max_file_size"],
             "quota (" + std::to_string(upload.quota) + ") must be at least max_file_size (" +
                 std::to_string(upload.max_file_size) + ")");
      }
    }
    const YAML::Node where = node.IsNull() || !node["url_base"] ? node : node["url_base"];
    const auto http = std::find_if(config.listeners.begin(), config.listeners.end(),
                                   [](const ListenerConfig& listener) { return listener.module == "http"; });
    if (http == config.listeners.end()) {
      fail(where, "upload needs an http listener (listen: - module: http) to take and serve the files");
    }
    if (upload.url_base.empty() && http->tls == TlsMode::none) {
      fail(where, "the first http listener has tls: none: set upload.url_base to the public https:// URL of the "
                  "proxy in front of it");
    }
    std::vector<std::string> domains{upload.domain};
    if (upload.domain.empty()) {
      domains.clear();
      for (const auto& host : config.hosts) domains.push_back("upload." + host);
    }
    std::vector<std::string> taken;  // domains another service routes already
    for (const auto& component : config.components) taken.push_back(component.domain);
    if (config.proxy65) {
      if (!config.proxy65->domain.empty()) taken.push_back(config.proxy65->domain);
      for (const auto& host : config.hosts) {
        if (config.proxy65->domain.empty()) taken.push_back("proxy." + host);
      }
    }
    for (const auto& domain : domains) {
      if (std::find(taken.begin(), taken.end(), domain) != taken.end()) {
        fail(node.IsNull() || !node["domain"] ? node : node["domain"],
             "upload domain '" + domain + "' is already served by a component or the proxy65 service");
      }
    }
    config.upload = std::move(upload);
  }

  // A byte count as read_size, or a whole number of GiB ("1GiB"): upload sizes run larger.
  std::uint64_t read_upload_size(const YAML::Node& node, const std::string& name) const {
    if (node.IsScalar() && node.Scalar().ends_with("GiB")) {
      std::string_view text = node.Scalar();
      text.remove_suffix(3);
      while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
      std::uint64_t value = 0;
      const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
      if (text.empty() || error != std::errc() || end != text.data() + text.size() || value == 0 || value > 1024) {
        fail(node, name + " must be a positive integer of bytes, optionally with a KiB, MiB or GiB suffix (at most "
                          "1024GiB)");
      }
      return value << 30;
    }
    return read_size(node, 1, name);
  }

  // An http(s) URL ending with '/', under which files are published.
  std::string read_url_base(const YAML::Node& node) const {
    const auto reason = "url_base must be an http:// or https:// URL with a path ending in '/', such as "
                        "https://upload.example.org:5443/upload/";
    const auto url = read_string(node, reason);
    const bool scheme = url.starts_with("https://") || url.starts_with("http://");
    const auto authority_end = scheme ? url.find('/', url.find("//") + 2) : std::string::npos;
    const bool printable = std::all_of(url.begin(), url.end(), [](char c) {
      return c > 0x20 && c < 0x7f && c != '"' && c != '\'' && c != '<' && c != '>' && c != '?' && c != '#';
    });
    if (!scheme || authority_end == std::string::npos || authority_end == url.find("//") + 2 || url.back() != '/' ||
        !printable) {
      fail(node, std::string(reason) + ", got '" + url + "'");
    }
    return url;
  }

  std::string read_socket_path(const YAML::Node& node) const {
    const auto path = read_string(node, "admin_socket must be a file path");
    constexpr auto max_length = sizeof(sockaddr_un::sun_path) - 1;
    if (path.size() > max_length) {
      fail(node, "admin_socket path is too long for a unix socket (" + std::to_string(path.size()) +
                     " bytes, at most " + std::to_string(max_length) + ")");
    }
    return path;
  }

  std::string file_;
  std::vector<std::pair<YAML::Node, int>> empty_value_lines_;
};

}  // namespace

ConfigError::ConfigError(const std::string& file_, int line_, const std::string& reason_)
    : std::runtime_error(describe(file_, line_, reason_)), file(file_), line(line_), reason(reason_) {}

const std::map<std::string, YAML::Node>& Config::modules_for(const std::string& host) const {
  const auto found = host_modules.find(host);
  return found != host_modules.end() ? found->second : modules;
}

static std::string read_file(const std::string& path) {
  const auto cannot_read = [&](int error) {
    return ConfigError(path, 0, std::string("cannot read: ") + std::strerror(error));
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw cannot_read(errno);
  std::string text;
  char buffer[16384];
  for (;;) {
    const auto count = ::read(fd, buffer, sizeof buffer);
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) {
      const int error = errno;
      ::close(fd);
      throw cannot_read(error);
    }
    if (count == 0) break;
    text.append(buffer, static_cast<std::size_t>(count));
  }
  ::close(fd);
  return text;
}

Config load_config(const std::string& path) {
  const auto text = read_file(path);
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    throw ConfigError(path, e.mark.line >= 0 ? e.mark.line + 1 : 1, "YAML syntax error: " + e.msg);
  }
  return Loader(path).load(root);
}

}  // namespace parley::server
