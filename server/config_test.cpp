#include "server/config.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "modules/module.hpp"

namespace parley::server {
namespace {

namespace fs = std::filesystem;

// Each test runs in a fresh directory holding placeholder certificate files,
// so relative paths in the configs resolve there.
class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    previous_ = fs::current_path();
    std::string pattern = (fs::temp_directory_path() / "parley-config-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    fs::current_path(dir_);
    write("example.crt", "certificate\n");
    write("example.key", "key\n");
  }
  void TearDown() override {
    fs::current_path(previous_);
    fs::remove_all(dir_);
  }

  static void write(const std::string& name, const std::string& text) { std::ofstream(name, std::ios::binary) << text; }
  static Config load(const std::string& text) {
    write("parley.yml", text);
    return load_config("parley.yml");
  }

  fs::path previous_;
  fs::path dir_;
};

const std::string minimal_prefix =
    "hosts: [example.org]\n"
    "listen:\n"
    "  - {module: c2s, address: 127.0.0.1, port: 5222, tls: starttls}\n"
    "certificates:\n"
    "  - {domain: example.org, cert: example.crt, key: example.key}\n";

TEST_F(ConfigTest, MinimalConfigGetsDefaults) {
  const auto config = load(minimal_prefix);
  EXPECT_EQ(config.path, "parley.yml");
  EXPECT_EQ(config.hosts, std::vector<std::string>{"example.org"});
  ASSERT_EQ(config.listeners.size(), 1u);
  EXPECT_EQ(config.listeners[0].tls, TlsMode::starttls_required);
  EXPECT_EQ(config.storage, "sqlite:var/parley.db");
  EXPECT_TRUE(config.modules.empty());
  EXPECT_EQ(config.limits.max_stanza_size, 262144u);
  EXPECT_EQ(config.limits.idle_timeout, std::chrono::seconds(900));
  EXPECT_EQ(config.log.level, "info");
  EXPECT_EQ(config.admin_socket, "var/parleyd.sock");
  EXPECT_EQ(config.workers, 4u);
}

TEST_F(ConfigTest, FullConfigRoundTrip) {
  fs::create_directories("certs");
  write("certs/wild.crt", "c");
  write("certs/wild.key", "k");
  const auto config = load(
      "hosts:\n"
      "  - Example.ORG\n"
      "  - chat.example.net\n"
      "listen:\n"
      "  - {module: c2s, address: 127.0.0.1, port: 5222, tls: starttls}\n"
      "  - {address: '::1', port: 5223, tls: direct}\n"
      "  - {address: 0.0.0.0, port: 15222, tls: starttls_optional}\n"
      "certificates:\n"
      "  - {domain: example.org, cert: example.crt, key: example.key}\n"
      "  - {domain: '*.example.net', cert: certs/wild.crt, key: certs/wild.key}\n"
      "storage: memory\n"
      "modules:\n"
      "  roster:\n"
      "  ping: {}\n"
      "  offline: {max_messages: 500}\n"
      "host_config:\n"
      "  chat.example.net:\n"
      "    modules:\n"
      "      disco:\n"
      "limits:\n"
      "  max_stanza_size: 128KiB\n"
      "  c2s_rate: 50000\n"
      "  c2s_burst: 1MiB\n"
      "  s2s_rate: 1MiB\n"
      "  s2s_burst: 8MiB\n"
      "  component_rate: 2MiB\n"
      "  component_burst: 16MiB\n"
      "  max_send_queue: 8MiB\n"
      "  auth_timeout: 30\n"
      "  idle_timeout: 600\n"
      "  keepalive_interval: 60\n"
      "log: {level: debug, file: var/parley.log}\n"
      "admin_socket: run/admin.sock\n"
      "shards: 2\n"
      "workers: 3\n");

  EXPECT_EQ(config.hosts, (std::vector<std::string>{"example.org", "chat.example.net"}));
  ASSERT_EQ(config.listeners.size(), 3u);
  EXPECT_EQ(config.listeners[0].module, "c2s");
  EXPECT_EQ(config.listeners[0].address, "127.0.0.1");
  EXPECT_EQ(config.listeners[0].port, 5222);
  EXPECT_EQ(config.listeners[1].address, "::1");
  EXPECT_EQ(config.listeners[1].port, 5223);
  EXPECT_EQ(config.listeners[1].tls, TlsMode::direct);
  EXPECT_EQ(config.listeners[2].tls, TlsMode::starttls_optional);
  ASSERT_EQ(config.certificates.size(), 2u);
  EXPECT_EQ(config.certificates[1].domain, "*.example.net");
  // Relative paths stay as written: they are relative to the working directory.
  EXPECT_EQ(config.certificates[1].cert, "certs/wild.crt");
  EXPECT_EQ(config.certificates[1].key, "certs/wild.key");
  EXPECT_EQ(config.storage, "memory:");

  ASSERT_EQ(config.modules.size(), 3u);
  EXPECT_TRUE(config.modules.at("roster").IsNull());
  EXPECT_EQ(config.modules.at("offline")["max_messages"].as<int>(), 500);
  EXPECT_EQ(config.modules_for("example.org").size(), 3u);
  const auto& chat_modules = config.modules_for("chat.example.net");
  ASSERT_EQ(chat_modules.size(), 1u);
  EXPECT_TRUE(chat_modules.contains("disco"));

  EXPECT_EQ(config.limits.max_stanza_size, 128u * 1024);
  EXPECT_EQ(config.limits.c2s_rate, 50000u);
  EXPECT_EQ(config.limits.c2s_burst, 1024u * 1024);
  EXPECT_EQ(config.limits.s2s_rate, 1024u * 1024);
  EXPECT_EQ(config.limits.s2s_burst, 8u * 1024 * 1024);
  EXPECT_EQ(config.limits.component_rate, 2u * 1024 * 1024);
  EXPECT_EQ(config.limits.component_burst, 16u * 1024 * 1024);
  EXPECT_EQ(config.limits.max_send_queue, 8u * 1024 * 1024);
  EXPECT_EQ(config.limits.auth_timeout, std::chrono::seconds(30));
  EXPECT_EQ(config.limits.idle_timeout, std::chrono::seconds(600));
  EXPECT_EQ(config.limits.keepalive_interval, std::chrono::seconds(60));
  EXPECT_EQ(config.log.level, "debug");
  EXPECT_EQ(config.log.file, "var/parley.log");
  EXPECT_EQ(config.admin_socket, "run/admin.sock");
  EXPECT_EQ(config.shards, 2u);
  EXPECT_EQ(config.workers, 3u);
}

TEST_F(ConfigTest, ComponentListenerAndComponents) {
  const auto config = load(
      "hosts: [example.org]\n"
      "listen:\n"
      "  - {module: c2s}\n"
      "  - {module: component}\n"
      "  - {module: component, address: '::1', port: 5348, tls: direct}\n"
      "certificates:\n"
      "  - {domain: example.org, cert: example.crt, key: example.key}\n"
      "components:\n"
      "  - {domain: IRC.example.org, secret: s3cret}\n"
      "  - {domain: bridge.example.org, secret: 1234, replace: true}\n");
  ASSERT_EQ(config.listeners.size(), 3u);
  EXPECT_EQ(config.listeners[1].module, "component");
  EXPECT_EQ(config.listeners[1].address, "127.0.0.1");
  EXPECT_EQ(config.listeners[1].port, 5347);
  EXPECT_EQ(config.listeners[1].tls, TlsMode::none);
  EXPECT_EQ(config.listeners[2].port, 5348);
  EXPECT_EQ(config.listeners[2].tls, TlsMode::direct);
  ASSERT_EQ(config.components.size(), 2u);
  EXPECT_EQ(config.components[0].domain, "irc.example.org");
  EXPECT_EQ(config.components[0].secret, "s3cret");
  EXPECT_FALSE(config.components[0].replace);
  EXPECT_EQ(config.components[1].secret, "1234");
  EXPECT_TRUE(config.components[1].replace);
}

// The showcase config ./run.sh starts must stay valid, with every module on.
TEST_F(ConfigTest, ExampleConfigLoads) {
  fs::create_directories("var/certs");
  write("var/certs/localhost.crt", "certificate\n");
  write("var/certs/localhost.key", "key\n");
  const auto config = load_config(PARLEY_EXAMPLE_CONFIG);
  EXPECT_EQ(config.hosts, std::vector<std::string>{"localhost"});
  ASSERT_GE(config.listeners.size(), 2u);
  EXPECT_EQ(config.listeners[0].port, 5222);
  EXPECT_EQ(config.listeners[0].tls, TlsMode::starttls_required);
  EXPECT_EQ(config.listeners[1].port, 5223);
  EXPECT_EQ(config.listeners[1].tls, TlsMode::direct);
  EXPECT_EQ(config.storage, "sqlite:var/parley.db");
  for (const auto& name : modules::names()) {
    EXPECT_TRUE(config.modules.contains(name)) << "the example config is the showcase: enable '" << name << "'";
  }
  EXPECT_EQ(config.modules.at("offline")["max_messages"].as<int>(), 500);
  EXPECT_TRUE(config.modules.at("register")["open"].as<bool>());
  const Limits defaults;
  EXPECT_EQ(config.limits.max_stanza_size, defaults.max_stanza_size);
  EXPECT_EQ(config.limits.c2s_rate, defaults.c2s_rate);
  EXPECT_EQ(config.limits.c2s_burst, defaults.c2s_burst);
  EXPECT_EQ(config.limits.max_send_queue, defaults.max_send_queue);
  EXPECT_EQ(config.limits.auth_timeout, defaults.auth_timeout);
  EXPECT_EQ(config.limits.idle_timeout, defaults.idle_timeout);
  EXPECT_EQ(config.limits.keepalive_interval, defaults.keepalive_interval);
  EXPECT_EQ(config.log.level, "info");
  EXPECT_EQ(config.admin_socket, "var/parleyd.sock");
}

TEST_F(ConfigTest, ExampleConfigNeedsItsCertificates) {
  try {
    load_config(PARLEY_EXAMPLE_CONFIG);
    FAIL() << "loaded without certificate files";
  } catch (const ConfigError& e) {
    EXPECT_NE(e.reason.find("cannot read cert file 'var/certs/localhost.crt'"), std::string::npos) << e.what();
  }
}

TEST_F(ConfigTest, HostConfigWithEmptyModulesDisablesEveryModule) {
  const auto config = load(minimal_prefix +
                           "modules: {roster: , ping: }\n"
                           "host_config:\n"
                           "  example.org: {modules: {}}\n");
  EXPECT_TRUE(config.modules_for("example.org").empty());
  EXPECT_EQ(config.modules_for("other.example").size(), 2u);
}

TEST_F(ConfigTest, StorageUris) {
  EXPECT_EQ(load(minimal_prefix + "storage: memory\n").storage, "memory:");
  EXPECT_EQ(load(minimal_prefix + "storage: 'memory:'\n").storage, "memory:");
  EXPECT_EQ(load(minimal_prefix + "storage: sqlite:data/parley.db\n").storage, "sqlite:data/parley.db");
  EXPECT_EQ(load(minimal_prefix + "storage: mysql://parley:p%40ss@127.0.0.1:3306/parley?pool=8\n").storage,
            "mysql://parley:p%40ss@127.0.0.1:3306/parley?pool=8");
}

TEST_F(ConfigTest, EmptyLogFileMeansStandardError) {
  EXPECT_EQ(load(minimal_prefix + "log: {file: ''}\n").log.file, "");
  EXPECT_EQ(load(minimal_prefix + "log: {file: }\n").log.file, "");
  EXPECT_EQ(load(minimal_prefix + "log: {level: warn}\n").log.level, "warn");
}

TEST_F(ConfigTest, MissingFileReportsStrerrorWithoutLine) {
  try {
    load_config("does-not-exist.yml");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.file, "does-not-exist.yml");
    EXPECT_EQ(e.line, 0);
    EXPECT_EQ(e.reason, "cannot read: No such file or directory");
    EXPECT_STREQ(e.what(), "does-not-exist.yml: cannot read: No such file or directory");
  }
}

TEST_F(ConfigTest, DirectoryIsNotReadableAsConfig) {
  fs::create_directories("adir");
  try {
    load_config("adir");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.line, 0);
    EXPECT_EQ(e.reason, "cannot read: Is a directory");
  }
}

TEST_F(ConfigTest, WhatHasFileLineAndReason) {
  try {
    load(minimal_prefix + "bogus: 1\n");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.line, 6);
    EXPECT_EQ(std::string(e.what()), "parley.yml:6: " + e.reason);
    EXPECT_EQ(e.reason.find('\n'), std::string::npos);
  }
}

TEST_F(ConfigTest, S2sSectionAndListeners) {
  write("ca.pem", "ca\n");
  const auto config = load(
      "hosts: [example.org]\n"
      "listen:\n"
      "  - {module: c2s, address: 127.0.0.1, port: 5222, tls: starttls}\n"
      "  - {module: s2s, address: 127.0.0.1, port: 5269, tls: starttls}\n"
      "  - {module: s2s, address: 127.0.0.1, port: 5270, tls: direct}\n"
      "certificates:\n"
      "  - {domain: example.org, cert: example.crt, key: example.key}\n"
      "s2s:\n"
                           "  secure_auth: optional\n"
                           "  dns_servers: ['127.0.0.53:5300', '[::1]:53']\n"
                           "  ca_file: ca.pem\n"
                           "  connect_timeout: 7\n"
                           "  idle_timeout: 120\n"
                           "  secret: s3cr3t\n"
                           "  allow: [a.example, B.example]\n"
                           "  deny: [bad.example]\n"
                           "  tls_min_version: '1.3'\n"
                           "  domains:\n"
                           "    legacy.example: {secure_auth: required, address: '127.0.0.9:5299', ca_file: ca.pem}\n");
  ASSERT_EQ(config.listeners.size(), 3u);
  EXPECT_EQ(config.listeners[1].module, "s2s");
  EXPECT_EQ(config.listeners[2].tls, TlsMode::direct);
  EXPECT_FALSE(config.s2s.secure_auth_required);
  EXPECT_EQ(config.s2s.dns_servers, (std::vector<std::string>{"127.0.0.53:5300", "[::1]:53"}));
  EXPECT_EQ(config.s2s.ca_file, "ca.pem");
  EXPECT_EQ(config.s2s.connect_timeout, std::chrono::seconds(7));
  EXPECT_EQ(config.s2s.idle_timeout, std::chrono::seconds(120));
  EXPECT_EQ(config.s2s.secret, "s3cr3t");
  EXPECT_EQ(config.s2s.allow, (std::vector<std::string>{"a.example", "b.example"}));
  EXPECT_EQ(config.s2s.deny, std::vector<std::string>{"bad.example"});
  EXPECT_EQ(config.s2s.tls_min_version, "1.3");
  const auto& legacy = config.s2s.domains.at("legacy.example");
  EXPECT_EQ(legacy.address, "127.0.0.9:5299");
  EXPECT_EQ(legacy.secure_auth_required, std::optional<bool>(true));
}

TEST_F(ConfigTest, S2sDefaultsAndBadValues) {
  const auto defaults = load(minimal_prefix);
  EXPECT_TRUE(defaults.s2s.secure_auth_required);
  EXPECT_TRUE(defaults.s2s.dns_servers.empty());
  EXPECT_EQ(defaults.s2s.connect_timeout, std::chrono::seconds(30));
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"s2s:\n  secure_auth: maybe\n", "secure_auth must be required or optional"},
      {"s2s:\n  dns_servers: ['localhost:53']\n", "a DNS server must be ip:port"},
      {"s2s:\n  dns_servers: ['::1:53']\n", "a DNS server must be ip:port"},
      {"s2s:\n  tls_min_version: '1.1'\n", "tls_min_version must be 1.2 or 1.3"},
      {"s2s:\n  domains: {x.example: {port: 5}}\n", "unknown key 'port' in s2s.domains.x.example"},
      {"s2s:\n  ca_file: missing.pem\n", "cannot read ca_file file 'missing.pem'"},
      {"s2s:\n  deny: bad.example\n", "deny must be a list of domain names"},
  };
  for (const auto& [text, reason] : bad) {
    try {
      load(minimal_prefix + text);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const ConfigError& e) {
      EXPECT_NE(e.reason.find(reason), std::string::npos) << e.what();
      EXPECT_EQ(e.line, 7) << e.what();
    }
  }
  try {
    load("hosts: [example.org]\nlisten:\n  - {module: c2s, port: 5222}\n  - {module: s2s, port: 5269, tls: starttls_optional}\n");
    ADD_FAILURE() << "accepted an s2s listener without TLS";
  } catch (const ConfigError& e) {
    EXPECT_NE(e.reason.find("s2s listeners require TLS"), std::string::npos) << e.what();
    EXPECT_EQ(e.line, 4) << e.what();
  }
}

struct BadConfig {
  const char* name;
  std::string text;
  int line;
  const char* reason;  // a fragment of the expected reason
};

void PrintTo(const BadConfig& bad, std::ostream* out) { *out << bad.name; }

class BadConfigTest : public ConfigTest, public ::testing::WithParamInterface<BadConfig> {};

TEST_P(BadConfigTest, IsRefusedWithLineAndReason) {
  const auto& bad = GetParam();
  try {
    load(bad.text);
    FAIL() << "accepted: " << bad.text;
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.line, bad.line) << e.what();
    EXPECT_NE(e.reason.find(bad.reason), std::string::npos) << e.what();
    EXPECT_EQ(e.reason.find('\n'), std::string::npos) << e.what();
  }
}

const std::string listen_and_cert =
    "listen:\n"
    "  - {port: 5222}\n"
    "certificates:\n"
    "  - {domain: example.org, cert: example.crt, key: example.key}\n";

INSTANTIATE_TEST_SUITE_P(
    Table, BadConfigTest,
    ::testing::Values(
        BadConfig{"empty_file", "", 1, "the file is empty"},
        BadConfig{"top_level_list", "- a\n- b\n", 1, "top level must be a mapping"},
        BadConfig{"yaml_syntax", minimal_prefix + "modules: {roster: [\n", 7, "YAML syntax error"},
        BadConfig{"unknown_top_key", minimal_prefix + "storag: memory\n", 6,
                  "unknown key 'storag' at top level (expected: hosts, listen, certificates"},
        BadConfig{"duplicate_top_key", minimal_prefix + "storage: memory\nstorage: 'memory:'\n", 7,
                  "duplicate key 'storage'"},
        BadConfig{"missing_hosts", listen_and_cert, 1, "missing required key 'hosts'"},
        BadConfig{"missing_listen",
                  "hosts: [example.org]\n"
                  "certificates:\n"
                  "  - {domain: example.org, cert: example.crt, key: example.key}\n",
                  1, "missing required key 'listen'"},
        BadConfig{"hosts_empty", "hosts: []\n" + listen_and_cert, 1, "hosts must be a non-empty list"},
        BadConfig{"hosts_scalar", "hosts: example.org\n" + listen_and_cert, 1, "hosts must be a non-empty list"},
        BadConfig{"host_invalid", "hosts:\n  - example.org\n  - 'bad@host'\n" + listen_and_cert, 3,
                  "invalid host name 'bad@host'"},
        BadConfig{"host_duplicate_after_nameprep", "hosts:\n  - example.org\n  - EXAMPLE.org\n" + listen_and_cert, 3,
                  "duplicate host 'example.org'"},
        BadConfig{"host_without_certificate", "hosts:\n  - example.org\n  - other.example\n" + listen_and_cert, 3,
                  "host 'other.example' has no certificate"},
        BadConfig{"wildcard_covers_one_label_only",
                  "hosts: [a.b.example.org]\n"
                  "listen: [{port: 5222}]\n"
                  "certificates:\n"
                  "  - {domain: '*.example.org', cert: example.crt, key: example.key}\n",
                  1, "or '*.b.example.org'"},
        BadConfig{"listen_not_list", "hosts: [example.org]\nlisten: {port: 5222}\n", 2,
                  "listen must be a non-empty list"},
        BadConfig{"listener_unknown_key",
                  "hosts: [example.org]\n"
                  "listen:\n"
                  "  - port: 5222\n"
                  "    bind: 127.0.0.1\n",
                  4, "unknown key 'bind' in listen[0] (expected: module, address, port, tls)"},
        BadConfig{"listener_port_range", "hosts: [example.org]\nlisten:\n  - {port: 70000}\n", 3,
                  "port must be an integer 1-65535"},
        BadConfig{"listener_port_text", "hosts: [example.org]\nlisten:\n  - port: http\n", 3,
                  "port must be an integer 1-65535"},
        BadConfig{"listener_port_negative", "hosts: [example.org]\nlisten:\n  - port: -1\n", 3,
                  "port must be an integer 1-65535"},
        BadConfig{"listener_port_list", "hosts: [example.org]\nlisten:\n  - port: [1]\n", 3,
                  "port must be an integer 1-65535"},
        BadConfig{"listener_tls", "hosts: [example.org]\nlisten:\n  - {port: 5222, tls: yes}\n", 3,
                  "tls must be one of: starttls, starttls_optional, direct"},
        BadConfig{"listener_address", "hosts: [example.org]\nlisten:\n  - {address: localhost}\n", 3,
                  "address must be an IPv4 or IPv6 address"},
        BadConfig{"listener_module", "hosts: [example.org]\nlisten:\n  - {module: s3s}\n", 3,
                  "unsupported listener module 's3s' (expected: c2s"},
        BadConfig{"listener_component_starttls",
                  "hosts: [example.org]\nlisten:\n  - {module: component, tls: starttls}\n", 3,
                  "component listeners take tls: none or direct"},
        BadConfig{"listener_c2s_without_tls", "hosts: [example.org]\nlisten:\n  - {tls: none}\n", 3,
                  "tls: none is only for component listeners"},
        BadConfig{"component_is_a_host", minimal_prefix + "components:\n  - {domain: Example.org, secret: x}\n", 7,
                  "component domain 'example.org' is one of the hosts"},
        BadConfig{"component_duplicate",
                  minimal_prefix + "components:\n  - {domain: irc.example.org, secret: x}\n"
                                   "  - {domain: irc.example.org, secret: y}\n",
                  8, "duplicate component 'irc.example.org'"},
        BadConfig{"component_without_secret", minimal_prefix + "components:\n  - {domain: irc.example.org}\n", 7,
                  "missing required key 'secret' in components[0]"},
        BadConfig{"component_empty_secret", minimal_prefix + "components:\n  - domain: irc.example.org\n    secret: ''\n",
                  8, "secret must be a non-empty string"},
        BadConfig{"component_bad_replace",
                  minimal_prefix + "components:\n  - {domain: irc.example.org, secret: x, replace: maybe}\n", 7,
                  "replace must be true or false"},
        BadConfig{"component_unknown_key",
                  minimal_prefix + "components:\n  - {domain: irc.example.org, secret: x, password: y}\n", 7,
                  "unknown key 'password' in components[0]"},
        BadConfig{"component_bad_domain", minimal_prefix + "components:\n  - {domain: 'a@b', secret: x}\n", 7,
                  "invalid component domain"},
        BadConfig{"listener_duplicate",
                  "hosts: [example.org]\n"
                  "listen:\n"
                  "  - {address: '::1', port: 5222}\n"
                  "  - {address: '0:0::1', port: 5222, tls: direct}\n",
                  4, "duplicate listener [::1]:5222"},
        BadConfig{"certificate_unknown_key",
                  "hosts: [example.org]\n"
                  "listen: [{port: 5222}]\n"
                  "certificates:\n"
                  "  - {domain: example.org, cert: example.crt, key: example.key, chain: x}\n",
                  4, "unknown key 'chain' in certificates[0] (expected: domain, cert, key)"},
        BadConfig{"certificate_missing_key",
                  "hosts: [example.org]\n"
                  "listen: [{port: 5222}]\n"
                  "certificates:\n"
                  "  - {domain: example.org, cert: example.crt}\n",
                  4, "missing required key 'key' in certificates[0]"},
        BadConfig{"certificate_file_missing",
                  "hosts: [example.org]\n"
                  "listen: [{port: 5222}]\n"
                  "certificates:\n"
                  "  - domain: example.org\n"
                  "    cert: missing.crt\n"
                  "    key: example.key\n",
                  5, "cannot read cert file 'missing.crt': No such file or directory"},
        BadConfig{"certificate_is_directory",
                  "hosts: [example.org]\n"
                  "listen: [{port: 5222}]\n"
                  "certificates:\n"
                  "  - domain: example.org\n"
                  "    cert: example.crt\n"
                  "    key: .\n",
                  6, "key file '.' is not a regular file"},
        BadConfig{"certificate_duplicate",
                  "hosts: [example.org]\n"
                  "listen: [{port: 5222}]\n"
                  "certificates:\n"
                  "  - {domain: example.org, cert: example.crt, key: example.key}\n"
                  "  - {domain: Example.org, cert: example.crt, key: example.key}\n",
                  5, "duplicate certificate for 'example.org'"},
        BadConfig{"storage_postgres", minimal_prefix + "storage: postgres://db/parley\n", 6,
                  "unsupported storage 'postgres://db/parley' (expected: memory, sqlite:PATH or "
                  "mysql://USER:PASSWORD@HOST:PORT/DATABASE)"},
        BadConfig{"storage_mysql_without_user", minimal_prefix + "storage: mysql://db/parley\n", 6,
                  "mysql storage URI has no user"},
        BadConfig{"storage_mysql_bad_pool", minimal_prefix + "storage: mysql://u:p@db/parley?pool=x\n", 6,
                  "pool must be a number"},
        BadConfig{"storage_sqlite_without_path", minimal_prefix + "storage: 'sqlite:'\n", 6, "needs a database path"},
        BadConfig{"module_unknown", minimal_prefix + "modules:\n  roster:\n  rooster: {}\n", 8,
                  "unknown module 'rooster' in modules (known: roster, presence, "},
        BadConfig{"module_options_scalar", minimal_prefix + "modules:\n  ping: true\n", 7,
                  "options of module 'ping' must be a mapping"},
        BadConfig{"modules_list", minimal_prefix + "modules: [roster, ping]\n", 6,
                  "modules must be a mapping of module name to its options"},
        BadConfig{"host_config_unknown_host", minimal_prefix + "host_config:\n  other.example: {modules: {}}\n", 7,
                  "host_config names 'other.example', which is not in hosts"},
        BadConfig{"host_config_unknown_key", minimal_prefix + "host_config:\n  example.org: {moduls: {}}\n", 7,
                  "unknown key 'moduls' in host_config.example.org (expected: modules)"},
        BadConfig{"host_config_unknown_module",
                  minimal_prefix + "host_config:\n  example.org:\n    modules:\n      mucc:\n", 9,
                  "unknown module 'mucc' in host_config.example.org.modules"},
        BadConfig{"limits_unknown_key", minimal_prefix + "limits:\n  max_stanza: 10\n", 7,
                  "unknown key 'max_stanza' in limits (expected: max_stanza_size, c2s_rate"},
        BadConfig{"limits_stanza_too_small", minimal_prefix + "limits:\n  max_stanza_size: 9999\n", 7,
                  "max_stanza_size must be a positive integer of at least 10000 bytes"},
        BadConfig{"limits_bad_suffix", minimal_prefix + "limits:\n  max_stanza_size: 4GB\n", 7,
                  "optionally with a KiB or MiB suffix"},
        BadConfig{"limits_zero_rate", minimal_prefix + "limits:\n  c2s_rate: 0\n", 7, "c2s_rate must be"},
        BadConfig{"limits_zero_s2s_rate", minimal_prefix + "limits:\n  s2s_rate: 0\n", 7, "s2s_rate must be"},
        BadConfig{"limits_zero_component_burst", minimal_prefix + "limits:\n  component_burst: 0\n", 7,
                  "component_burst must be"},
        BadConfig{"limits_queue_below_stanza", minimal_prefix + "limits:\n  max_send_queue: 64KiB\n", 7,
                  "max_send_queue (65536) must be at least max_stanza_size (262144)"},
        BadConfig{"limits_timeout_zero", minimal_prefix + "limits:\n  idle_timeout: 0\n", 7,
                  "idle_timeout must be a number of seconds 1-86400"},
        BadConfig{"limits_timeout_with_unit", minimal_prefix + "limits:\n  auth_timeout: 60s\n", 7,
                  "auth_timeout must be a number of seconds 1-3600"},
        BadConfig{"log_level", minimal_prefix + "log:\n  level: verbose\n", 7,
                  "log level must be one of: trace, debug, info, warn, error (got 'verbose')"},
        BadConfig{"log_unknown_key", minimal_prefix + "log:\n  level: info\n  path: x.log\n", 8,
                  "unknown key 'path' in log (expected: level, file)"},
        BadConfig{"admin_socket_too_long", minimal_prefix + "admin_socket: " + std::string(120, 'a') + "\n", 6,
                  "admin_socket path is too long for a unix socket"},
        BadConfig{"storage_null", minimal_prefix + "storage:\n", 6, "storage must be a URI"},
        BadConfig{"listen_null", "hosts: [example.org]\nlisten:\n", 2, "listen must be a non-empty list"},
        BadConfig{"log_file_list", minimal_prefix + "log:\n  file: [a, b]\n", 7, "log file must be a file path"},
        BadConfig{"workers_zero", minimal_prefix + "workers: 0\n", 6, "workers must be an integer 1-1024"},
        BadConfig{"shards_negative", minimal_prefix + "shards: -2\n", 6, "shards must be an integer 0-1024"}),
    [](const ::testing::TestParamInfo<BadConfig>& info) { return std::string(info.param.name); });

const std::string upload_prefix =
    "hosts: [example.org]\n"
    "listen:\n"
    "  - {module: c2s, address: 127.0.0.1, port: 5222, tls: starttls}\n"
    "  - {module: http, address: 127.0.0.1}\n"
    "certificates:\n"
    "  - {domain: example.org, cert: example.crt, key: example.key}\n";

TEST_F(ConfigTest, HttpListenerAndUploadDefaults) {
  const auto config = load(upload_prefix + "upload:\n");
  ASSERT_EQ(config.listeners.size(), 2u);
  EXPECT_EQ(config.listeners[1].module, "http");
  EXPECT_EQ(config.listeners[1].port, 5443);
  EXPECT_EQ(config.listeners[1].tls, TlsMode::direct);
  ASSERT_TRUE(config.upload);
  EXPECT_EQ(config.upload->domain, "");
  EXPECT_EQ(config.upload->directory, "upload");
  EXPECT_EQ(config.upload->max_file_size, 10u * 1024 * 1024);
  EXPECT_EQ(config.upload->quota, 1024u * 1024 * 1024);
  EXPECT_EQ(config.upload->expire_after, std::chrono::seconds(7 * 24 * 3600));
  EXPECT_EQ(config.upload->slot_timeout, std::chrono::seconds(300));
  EXPECT_EQ(config.upload->url_base, "");
  EXPECT_EQ(config.http.max_connections, 512u);
  EXPECT_FALSE(load(upload_prefix).upload);
}

TEST_F(ConfigTest, UploadAndHttpOptions) {
  const auto config = load(
      "hosts: [example.org]\n"
      "listen:\n"
      "  - {module: http, address: 127.0.0.1, port: 8080, tls: none}\n"
      "certificates:\n"
      "  - {domain: example.org, cert: example.crt, key: example.key}\n"
      "http:\n"
      "  max_connections: 100\n"
      "  header_timeout: 10\n"
      "  idle_timeout: 20\n"
      "upload:\n"
      "  domain: files.example.org\n"
      "  directory: /srv/parley/upload\n"
      "  max_file_size: 100MiB\n"
      "  quota: 2GiB\n"
      "  expire_after: 86400\n"
      "  slot_timeout: 60\n"
      "  url_base: https://files.example.org/parley/upload/\n");
  EXPECT_EQ(config.listeners[0].tls, TlsMode::none);
  EXPECT_EQ(config.http.max_connections, 100u);
  EXPECT_EQ(config.http.header_timeout, std::chrono::seconds(10));
  EXPECT_EQ(config.http.idle_timeout, std::chrono::seconds(20));
  EXPECT_EQ(config.upload->domain, "files.example.org");
  EXPECT_EQ(config.upload->directory, "/srv/parley/upload");
  EXPECT_EQ(config.upload->max_file_size, 100u * 1024 * 1024);
  EXPECT_EQ(config.upload->quota, 2ull << 30);
  EXPECT_EQ(config.upload->expire_after, std::chrono::seconds(86400));
  EXPECT_EQ(config.upload->slot_timeout, std::chrono::seconds(60));
  EXPECT_EQ(config.upload->url_base, "https://files.example.org/parley/upload/");
}

INSTANTIATE_TEST_SUITE_P(
    Upload, BadConfigTest,
    ::testing::Values(
        BadConfig{"upload_unknown_key", upload_prefix + "upload:\n  max_size: 10\n", 8, "unknown key 'max_size'"},
        BadConfig{"upload_without_http_listener", minimal_prefix + "upload:\n", 6, "needs an http listener"},
        BadConfig{"upload_plain_http_without_url_base",
                  "hosts: [example.org]\nlisten:\n  - {module: http, tls: none}\ncertificates:\n"
                  "  - {domain: example.org, cert: example.crt, key: example.key}\nupload:\n  directory: up\n",
                  7, "set upload.url_base"},
        BadConfig{"upload_url_base_without_slash", upload_prefix + "upload:\n  url_base: https://x.org/up\n", 8,
                  "url_base must be"},
        BadConfig{"upload_url_base_ftp", upload_prefix + "upload:\n  url_base: ftp://x.org/up/\n", 8,
                  "url_base must be"},
        BadConfig{"upload_url_base_no_host", upload_prefix + "upload:\n  url_base: https:///up/\n", 8,
                  "url_base must be"},
        BadConfig{"upload_zero_size", upload_prefix + "upload:\n  max_file_size: 0\n", 8, "max_file_size must be"},
        BadConfig{"upload_bad_gib", upload_prefix + "upload:\n  quota: 2000GiB\n", 8, "at most 1024GiB"},
        BadConfig{"upload_quota_below_file_size",
                  upload_prefix + "upload:\n  max_file_size: 10MiB\n  quota: 1MiB\n", 9, "quota (1048576)"},
        BadConfig{"upload_domain_is_a_host", upload_prefix + "upload:\n  domain: example.org\n", 8,
                  "is one of the hosts"},
        BadConfig{"upload_domain_is_a_component",
                  upload_prefix + "components:\n  - {domain: upload.example.org, secret: s}\nupload:\n", 9,
                  "already served by a component"},
        BadConfig{"upload_expire_zero", upload_prefix + "upload:\n  expire_after: 0\n", 8, "expire_after must be"},
        BadConfig{"http_listener_starttls", minimal_prefix.substr(0, minimal_prefix.find("certificates")) +
                                                "  - {module: http, port: 5443, tls: starttls}\n"
                                                "certificates:\n"
                                                "  - {domain: example.org, cert: example.crt, key: example.key}\n",
                  4, "http listeners take tls: direct"},
        BadConfig{"http_unknown_key", upload_prefix + "http:\n  timeout: 10\n", 8, "unknown key 'timeout'"},
        BadConfig{"http_zero_connections", upload_prefix + "http:\n  max_connections: 0\n", 8,
                  "max_connections must be"}),
    [](const ::testing::TestParamInfo<BadConfig>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace parley::server
