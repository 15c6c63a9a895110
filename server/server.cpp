#include "server/server.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>
#include <algorithm>
#include <chrono>
#include <deque>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <thread>

#include "c2s/c2s.hpp"
#include "components/component.hpp"
#include "components/proxy65.hpp"
#include "http/http_server.hpp"
#include "http/upload_service.hpp"
#include "modules/module.hpp"
#include "router/router.hpp"
#include "router/workers.hpp"
#include "s2s/s2s.hpp"
#include "server/admin.hpp"
#include "storage/storage.hpp"
#include "xmpp/tls.hpp"

namespace parley::server {

namespace asio = boost::asio;

namespace {

constexpr auto shutdown_grace = std::chrono::seconds(5);

unsigned shard_count(unsigned configured) {
  if (configured != 0) return configured;
  return std::max(1u, std::thread::hardware_concurrency());
}

std::vector<tls::CertificateFiles> certificate_files(const Config& config) {
  std::vector<tls::CertificateFiles> files;
  for (const auto& c : config.certificates) files.push_back({c.domain, c.cert, c.key});
  return files;
}

c2s::Settings c2s_settings(const ListenerConfig& listener, const Limits& limits) {
  c2s::Settings settings;
  settings.direct_tls = listener.tls == TlsMode::direct;
  settings.tls_required = listener.tls != TlsMode::starttls_optional;
  settings.max_stanza_size = limits.max_stanza_size;
  settings.rate = limits.c2s_rate;
  settings.burst = limits.c2s_burst;
  settings.max_send_queue = limits.max_send_queue;
  settings.auth_timeout = limits.auth_timeout;
  settings.idle_timeout = limits.idle_timeout;
  settings.keepalive_interval = limits.keepalive_interval;
  settings.resume_timeout = limits.resume_timeout;
  return settings;
}

s2s::Settings s2s_settings(const Config& config) {
  s2s::Settings settings;
  const auto& s2s = config.s2s;
  settings.policy.secure_auth_required = s2s.secure_auth_required;
  settings.policy.ca_file = s2s.ca_file;
  settings.policy.allow = s2s.allow;
  settings.policy.deny = s2s.deny;
  for (const auto& [domain, override] : s2s.domains) {
    settings.policy.domains[domain] = s2s::DomainPolicy{override.ca_file, override.address, override.secure_auth_required};
  }
  for (const auto& server : s2s.dns_servers) {
    if (!settings.dns_servers.empty()) settings.dns_servers += ',';
    settings.dns_servers += server;
  }
  settings.connect_timeout = s2s.connect_timeout;
  settings.idle_timeout = s2s.idle_timeout;
  settings.secret = s2s.secret;
  settings.tls_min_version = s2s.tls_min_version;
  settings.ciphers = s2s.ciphers;
  settings.certificates = certificate_files(config);
  settings.max_stanza_size = config.limits.max_stanza_size;
  settings.max_send_queue = config.limits.max_send_queue;
  settings.read_rate = config.limits.s2s_rate;
  settings.read_burst = config.limits.s2s_burst;
  return settings;
}

std::vector<components::ComponentConfig> component_configs(const Config& config) {
  std::vector<components::ComponentConfig> list;
  for (const auto& c : config.components) list.push_back({c.domain, c.secret, c.replace});
  return list;
}

components::Settings component_settings(const Limits& limits) {
  components::Settings settings;
  settings.max_stanza_size = limits.max_stanza_size;
  settings.max_send_queue = limits.max_send_queue;
  settings.read_rate = limits.component_rate;
  settings.read_burst = limits.component_burst;
  settings.auth_timeout = limits.auth_timeout;
  settings.keepalive_interval = limits.keepalive_interval;
  return settings;
}

components::proxy65::Settings proxy65_settings(const Config& config) {
  const auto& proxy = *config.proxy65;
  components::proxy65::Settings settings;
  if (proxy.domain.empty()) {
    // One proxy.<host> per host, each listed on its own host.
    for (const auto& host : config.hosts) settings.domains.push_back("proxy." + host);
  } else {
    settings.domains = {proxy.domain};
  }
  settings.address = proxy.address;
  settings.port = proxy.port;
  settings.public_host = proxy.public_host;
  settings.public_port = proxy.public_port;
  settings.allow = proxy.allow;
  settings.rate = proxy.rate;
  settings.burst = proxy.burst;
  settings.activation_timeout = proxy.activation_timeout;
  settings.idle_timeout = proxy.idle_timeout;
  settings.max_pending = proxy.max_pending;
  return settings;
}

const ListenerConfig* first_http_listener(const Config& config) {
  for (const auto& listener : config.listeners) {
    if (listener.module == "http") return &listener;
  }
  return nullptr;
}

// One upload service per host (upload.<host>), or one configured domain for
// every host; load_config has checked there is an http listener.
std::vector<http::UploadDomain> upload_domains(const Config& config) {
  const auto& upload = *config.upload;
  const auto url_base = [&](const std::string& domain) {
    if (!upload.url_base.empty()) return upload.url_base;
    return "https://" + domain + ":" + std::to_string(first_http_listener(config)->port) + "/upload/";
  };
  std::vector<http::UploadDomain> domains;
  if (upload.domain.empty()) {
    for (const auto& host : config.hosts) domains.push_back({{host}, "upload." + host, url_base("upload." + host)});
  } else {
    domains.push_back({config.hosts, upload.domain, url_base(upload.domain)});
  }
  return domains;
}

http::UploadLimits upload_limits(const UploadConfig& upload) {
  http::UploadLimits limits;
  limits.max_file_size = upload.max_file_size;
  limits.quota = upload.quota;
  limits.expire_after = upload.expire_after;
  limits.slot_timeout = upload.slot_timeout;
  return limits;
}

// Runs 'bind'; an address that cannot be bound becomes one line naming it.
// Asio throws boost::system::system_error, the standard library
// std::system_error: both mean the same to the operator.
template <class Bind>
void bind_listener(const std::string& address, std::uint16_t port, std::string_view what, Bind&& bind) {
  const auto explain = [&](const std::string& reason) {
    return std::runtime_error("cannot listen on " + address + ":" + std::to_string(port) + std::string(what) + ": " +
                              reason);
  };
  try {
    bind();
  } catch (const boost::system::system_error& e) {
    throw explain(e.code().message());
  } catch (const std::system_error& e) {
    throw explain(e.code().message());
  }
}

std::string s2s_line(const s2s::ConnectionInfo& c) {
  const auto dash = [](const std::string& text) { return text.empty() ? std::string("-") : text; };
  return c.direction + '\t' + dash(c.local_domain) + '\t' + dash(c.peer_domain) + '\t' + c.auth + '\t' +
         dash(c.tls_version) + '\t' + dash(c.cipher) + '\t' + std::to_string(c.idle_seconds) + '\t' + c.id;
}

}  // namespace

struct Server::Impl {
  // Declared first so it is destroyed last: sessions still referenced by
  // the registry or by queued handlers need their io_context's services.
  std::deque<asio::io_context> shards;
  Config config;
  std::unique_ptr<storage::Storage> storage;
  router::Router router;
  router::WorkerPool workers;
  tls::CertificateStore certificates{{"xmpp-client"}};
  std::deque<modules::Context> module_contexts;
  std::vector<std::unique_ptr<modules::Module>> modules;
  std::vector<std::unique_ptr<c2s::Listener>> listeners;
  std::unique_ptr<s2s::Manager> s2s;
  std::unique_ptr<components::Manager> components;
  std::unique_ptr<components::proxy65::Proxy> proxy65;
  tls::CertificateStore http_certificates{{"http/1.1"}};
  std::vector<std::unique_ptr<http::Server>> http_servers;
  std::shared_ptr<http::UploadService> upload;
  std::unique_ptr<admin::AdminServer> admin;
  std::chrono::system_clock::time_point started = std::chrono::system_clock::now();
  int exit_code = 0;

  explicit Impl(Config c) : config(std::move(c)), workers(config.workers) {
    storage = storage::open(config.storage);
    spdlog::info("storage: {} ({})", storage->backend_name(), storage::printable_uri(config.storage));
    for (const auto& host : config.hosts) router.add_host(host);
    start_modules();
    try {
      certificates.load(certificate_files(config));
      http_certificates.load(certificate_files(config));
    } catch (const std::exception& e) {
      throw ConfigError(config.path, 0, std::string("certificates: ") + e.what());
    }
    const unsigned count = shard_count(config.shards);
    for (unsigned i = 0; i < count; ++i) shards.emplace_back(1);
    std::vector<asio::io_context*> shard_pointers;
    for (auto& shard : shards) shard_pointers.push_back(&shard);
    c2s::Services services{router, *storage, workers, certificates, std::string(version)};
    try {
      s2s = std::make_unique<s2s::Manager>(shard_pointers, router, s2s_settings(config));
    } catch (const std::exception& e) {
      throw ConfigError(config.path, 0, std::string("s2s: ") + e.what());
    }
    router.set_remote_route([this](xml::Element& stanza, const xmpp::Jid& to) { return s2s->route(stanza, to); });
    components = std::make_unique<components::Manager>(shard_pointers, router, certificates, component_configs(config),
                                                       component_settings(config.limits));
    if (config.proxy65) {
      const auto settings = proxy65_settings(config);
      bind_listener(settings.address, settings.port, " (proxy65)", [&] {
        proxy65 = std::make_unique<components::proxy65::Proxy>(shard_pointers, router, settings);
      });
    }
    for (const auto& listener : config.listeners) {
      bind_listener(listener.address, listener.port, "", [&] {
        if (listener.module == "component") {
          components->add_listener(listener.address, listener.port, listener.tls == TlsMode::direct);
        } else if (listener.module == "http") {
          http_servers.push_back(std::make_unique<http::Server>(shard_pointers, listener.address, listener.port,
                                                                http_settings(listener)));
        } else if (listener.module == "s2s") {
          s2s->add_listener(listener.address, listener.port, listener.tls == TlsMode::direct);
        } else {
          listeners.push_back(std::make_unique<c2s::Listener>(shard_pointers, listener.address, listener.port,
                                                              c2s_settings(listener, config.limits), services));
        }
      });
    }
    if (config.upload) start_upload();
    admin = std::make_unique<admin::AdminServer>(shards.front(), config.admin_socket, router, *storage, workers,
                                                 [this] { return reload(); }, config.hosts, std::string(version));
    admin->set_s2s_lister([this] {
      std::vector<std::string> lines;
      for (const auto& connection : s2s->connections()) lines.push_back(s2s_line(connection));
      return lines;
    });
    if (!config.components.empty()) admin->set_component_lister([this] { return component_lines(); });
  }

  // Every configured component, connected or not, in config order.
  std::vector<std::string> component_lines() const {
    const auto connected = components->connections();
    std::vector<std::string> lines;
    for (const auto& configured : config.components) {
      const auto found = std::ranges::find(connected, configured.domain, &components::ConnectionInfo::domain);
      if (found == connected.end()) {
        lines.push_back(configured.domain + "\tdisconnected\t-\t-\t-");
      } else {
        lines.push_back(configured.domain + "\tconnected\t" + found->remote_address + '\t' +
                        (found->tls_version.empty() ? std::string("-") : found->tls_version) + '\t' + found->id);
      }
    }
    return lines;
  }

  http::Settings http_settings(const ListenerConfig& listener) {
    http::Settings settings;
    settings.max_connections = config.http.max_connections;
    settings.header_timeout = config.http.header_timeout;
    settings.idle_timeout = config.http.idle_timeout;
    if (listener.tls == TlsMode::direct) {
      settings.certificates = &http_certificates;
      // The certificate for clients that send no SNI.
      settings.tls_domain = config.upload ? upload_domains(config).front().domain : config.hosts.front();
    }
    return settings;
  }

  void start_upload() {
    auto domains = upload_domains(config);
    auto store = std::make_shared<http::UploadStore>(config.upload->directory, upload_limits(*config.upload));
    const auto kept = store->load();
    upload = std::make_shared<http::UploadService>(router, shards.front().get_executor(), store, domains);
    upload->attach();
    for (auto& server : http_servers) {
      server->route(upload->path_prefix(), [service = upload](const http::Request& request) {
        return service->handle_http(request);
      });
    }
    for (const auto& domain : domains) {
      spdlog::info("upload: {} serves {} (files in {}, {} kept)", domain.domain, domain.url_base,
                   config.upload->directory, kept);
    }
  }

  void start_modules() {
    const auto& known = modules::registry();
    for (const auto& host : config.hosts) {
      const auto& enabled = config.modules_for(host);
      for (const auto& name : modules::names()) {
        auto options = enabled.find(name);
        if (options == enabled.end()) continue;
        auto& context = module_contexts.emplace_back(modules::Context{
            *router.host(host), router, *storage, workers, options->second, "Parley", std::string(version)});
        try {
          auto module = known.at(name)(context);
          module->start();
          modules.push_back(std::move(module));
        } catch (const modules::OptionError& e) {
          throw ConfigError(config.path, e.mark.line + 1, "module " + name + ": " + e.what());
        }
      }
      spdlog::info("host {}: {} modules", host, enabled.size());
    }
  }

  // Throws with the reason when the file or a certificate is bad; the
  // running configuration then stays as it was.
  std::string reload() {
    Config fresh = load_config(config.path);
    certificates.load(certificate_files(fresh));
    s2s->reload_certificates(certificate_files(fresh));
    http_certificates.load(certificate_files(fresh));
    spdlog::default_logger()->set_level(spdlog::level::from_str(fresh.log.level));
    spdlog::info("reload: certificates reloaded, log level {}, from {}", fresh.log.level, fresh.path);
    return "certificates reloaded, log level " + fresh.log.level;
  }

  std::size_t open_streams() const {
    std::size_t total = 0;
    for (const auto& listener : listeners) total += listener->open_streams();
    total += s2s->open_streams();
    total += components->open_streams();
    return total;
  }

  asio::awaitable<void> graceful_stop() {
    spdlog::info("shutting down: closing {} streams", open_streams());
    admin->stop();
    for (auto& listener : listeners) listener->stop();
    for (auto& listener : listeners) listener->close_all("system-shutdown");
    s2s->stop();
    s2s->close_all("system-shutdown");
    components->stop();
    components->close_all("system-shutdown");
    if (proxy65) {
      proxy65->stop();
      proxy65->close_all();
    }
    for (auto& server : http_servers) {
      server->stop();
      server->close_all();
    }
    if (upload) upload->stop();
    asio::steady_timer wait(shards.front());
    const auto deadline = std::chrono::steady_clock::now() + shutdown_grace;
    while (open_streams() > 0 && std::chrono::steady_clock::now() < deadline) {
      wait.expires_after(std::chrono::milliseconds(20));
      co_await wait.async_wait(asio::use_awaitable);
    }
    try {
      storage->flush();
    } catch (const std::exception& e) {
      spdlog::error("storage flush failed: {}", e.what());
      exit_code = 1;
    }
    for (auto& shard : shards) shard.stop();
  }

  asio::awaitable<void> handle_signals() {
    asio::signal_set signals(shards.front(), SIGTERM, SIGINT, SIGHUP);
    for (;;) {
      const int signal = co_await signals.async_wait(asio::use_awaitable);
      if (signal == SIGHUP) {
        try {
          reload();
        } catch (const std::exception& e) {
          spdlog::error("reload failed, keeping the running configuration: {}", e.what());
        }
        continue;
      }
      co_await graceful_stop();
      co_return;
    }
  }

  int run() {
    std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
    for (auto& shard : shards) guards.push_back(asio::make_work_guard(shard));
    asio::co_spawn(shards.front(), handle_signals(), asio::detached);
    for (auto& listener : listeners) listener->start();
    s2s->start();
    components->start();
    if (proxy65) proxy65->start();
    if (upload) upload->start();
    for (auto& server : http_servers) server->start();
    admin->start();
    std::vector<std::thread> threads;
    for (std::size_t i = 1; i < shards.size(); ++i) threads.emplace_back([&shard = shards[i]] { shard.run(); });
    spdlog::info("parleyd ready: {} hosts, {} listeners, {} shards", config.hosts.size(), listeners.size(),
                 shards.size());
    shards.front().run();
    for (auto& thread : threads) thread.join();
    workers.stop();
    spdlog::info("parleyd stopped");
    return exit_code;
  }
};

Server::Server(Config config) : impl_(std::make_unique<Impl>(std::move(config))) {}
Server::~Server() = default;
int Server::run() { return impl_->run(); }

}  // namespace parley::server
