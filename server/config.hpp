// parley.yml (GUIDE §7): loaded and validated once at start and on SIGHUP.
#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace parley::server {

// "FILE:LINE: reason" — every problem in the config file is reported this way.
struct ConfigError : std::runtime_error {
  ConfigError(const std::string& file, int line, const std::string& reason);
  std::string file;
  int line;
  std::string reason;
};

enum class TlsMode {
  starttls_required,  // "starttls" (default): STARTTLS offered and required before auth
  starttls_optional,  // "starttls_optional": offered, not required (PLAIN stays refused without TLS)
  direct,             // "direct": TLS from the first byte (XEP-0368), ALPN xmpp-client
  none,               // "none": no TLS (component listeners only, the default there)
};

struct ListenerConfig {
  std::string module = "c2s";  // "c2s", "s2s" (tls: starttls or direct), "component" (tls: none or direct; port 5347)
                               // or "http" (tls: direct or none; port 5443)
  std::string address = "127.0.0.1";
  std::uint16_t port = 5222;
  TlsMode tls = TlsMode::starttls_required;
};

struct CertificateConfig {
  std::string domain;
  std::string cert;  // PEM chain
  std::string key;   // PEM key
};

struct Limits {
  std::size_t max_stanza_size = 262144;           // bytes; policy-violation above
  std::size_t c2s_rate = 102400;                  // bytes/s read per connection (token bucket)
  std::size_t c2s_burst = 524288;                 // bucket size in bytes
  std::size_t s2s_rate = 524288;                  // bytes/s read per server-to-server stream
  std::size_t s2s_burst = 2097152;
  std::size_t component_rate = 1048576;           // bytes/s read per component connection
  std::size_t component_burst = 4194304;
  std::size_t max_send_queue = 4 * 1024 * 1024;   // bytes queued to a slow reader before resource-constraint
  std::chrono::seconds auth_timeout{60};          // connect → bound resource
  std::chrono::seconds idle_timeout{900};         // nothing read for this long → connection-timeout
  std::chrono::seconds keepalive_interval{120};   // whitespace sent after this long without writing
  std::chrono::seconds resume_timeout{300};       // XEP-0198: how long a lost stream may be resumed
};

// Federation (the s2s section); see docs/configuration.md.
struct S2sDomainConfig {
  std::string ca_file;                      // empty: s2s.ca_file
  std::string address;                      // "ip:port" to connect to without DNS
  std::optional<bool> secure_auth_required;  // unset: s2s.secure_auth
};

struct S2sConfig {
  bool secure_auth_required = true;  // "required": certificates only; "optional": dialback allowed
  std::vector<std::string> dns_servers;  // "ip:port"; empty: /etc/resolv.conf
  std::string ca_file;                   // empty: the system's trust store
  std::chrono::seconds connect_timeout{30};
  std::chrono::seconds idle_timeout{600};
  std::string secret;  // dialback secret; empty: random per start
  std::vector<std::string> allow;
  std::vector<std::string> deny;
  std::map<std::string, S2sDomainConfig> domains;
  std::string tls_min_version = "1.2";  // "1.2" or "1.3"
  std::string ciphers;                  // OpenSSL cipher list (TLS 1.2); empty: the default
};

// An external component (XEP-0114) allowed to connect to a component listener.
struct ComponentConfig {
  std::string domain;  // the component's own domain, not one of the hosts
  std::string secret;  // shared secret of the handshake
  bool replace = false;  // a new connection replaces a connected one instead of being refused
};

// The SOCKS5 Bytestreams proxy (XEP-0065), on when the proxy65 section is present.
struct Proxy65Config {
  std::string domain;                  // empty: proxy.<host> for every host
  std::string address = "127.0.0.1";  // where the SOCKS5 listener binds
  std::uint16_t port = 7777;
  std::string public_host;             // advertised to clients; empty: address
  std::uint16_t public_port = 0;       // advertised; 0: port
  std::vector<std::string> allow;      // domains whose users may use it; empty: the hosts
  std::size_t rate = 10 * 1024 * 1024;  // bytes/s read from each connection; 0: unlimited
  std::size_t burst = 1024 * 1024;
  std::chrono::seconds activation_timeout{60};  // connect → activated
  std::chrono::seconds idle_timeout{300};       // a relay without traffic
  std::size_t max_pending = 1000;               // connections waiting for activation
};

// Every HTTP listener (listen: module http); see docs/file-transfer.md.
struct HttpConfig {
  std::size_t max_connections = 512;        // per listener; more are closed at once
  std::chrono::seconds header_timeout{30};  // TLS handshake and request header
  std::chrono::seconds idle_timeout{60};    // between body reads/writes, and between requests
};

// HTTP File Upload (XEP-0363), on when the upload section is present.
struct UploadConfig {
  std::string domain;                 // empty: upload.<host> for every host
  std::string directory = "upload";   // relative to the working directory
  std::uint64_t max_file_size = 10 * 1024 * 1024;
  std::uint64_t quota = std::uint64_t{1} << 30;       // bytes per user: stored files and open slots
  std::chrono::seconds expire_after{7 * 24 * 3600};  // a stored file's lifetime
  std::chrono::seconds slot_timeout{300};            // a slot's wait for its PUT
  std::string url_base;  // public URL of the files, ends with '/'; empty: https://<domain>:<first http port>/upload/
};

struct LogConfig {
  std::string level = "info";  // trace, debug (shows XML), info, warn, error
  std::string file;            // empty: stderr
};

struct Config {
  std::string path;  // the file it came from
  std::vector<std::string> hosts;
  std::vector<ListenerConfig> listeners;
  std::vector<CertificateConfig> certificates;
  std::string storage = "sqlite:var/parley.db";  // storage URI (storage::open)
  // Module name → its options (a map, possibly empty), for every host;
  // host_modules overrides the whole set for one host.
  std::map<std::string, YAML::Node> modules;
  std::map<std::string, std::map<std::string, YAML::Node>> host_modules;
  Limits limits;
  LogConfig log;
  S2sConfig s2s;
  std::vector<ComponentConfig> components;
  std::optional<Proxy65Config> proxy65;
  HttpConfig http;
  std::optional<UploadConfig> upload;
  std::string admin_socket = "var/parleyd.sock";
  unsigned shards = 0;   // I/O threads; 0 = one per core
  unsigned workers = 4;  // blocking-work threads (storage)

  // The modules enabled for a host.
  const std::map<std::string, YAML::Node>& modules_for(const std::string& host) const;
};

// Reads and validates. Relative paths in the file (certificates, sqlite
// database, admin socket, log file) are kept as written: they are relative
// to the working directory. Unknown keys, wrong types, bad values, unknown
// module names, a host without a certificate and duplicate listeners throw
// ConfigError with the offending line.
Config load_config(const std::string& path);

}  // namespace parley::server
