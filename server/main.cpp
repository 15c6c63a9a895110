// parleyd: loads the config, wires storage, router, modules and listeners,
// and runs one I/O thread per shard until SIGTERM.
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <deque>
#include <iostream>
#include <thread>

#include "server/server.hpp"

namespace {

constexpr int exit_config_error = 2;
constexpr int exit_start_failure = 1;

void configure_logging(const parley::server::LogConfig& log) {
  std::shared_ptr<spdlog::logger> logger;
  if (log.file.empty()) {
    logger = spdlog::stderr_color_mt("parleyd");
  } else {
    logger = spdlog::basic_logger_mt("parleyd", log.file);
  }
  logger->set_level(spdlog::level::from_str(log.level));
  logger->flush_on(spdlog::level::trace);
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  spdlog::set_default_logger(logger);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"parleyd: the Parley XMPP server"};
  std::string config_path = "config/parley.yml";
  app.add_option("-c,--config", config_path, "configuration file (YAML)")->capture_default_str();
  app.set_version_flag("--version", std::string(parley::server::version));
  CLI11_PARSE(app, argc, argv);

  parley::server::Config config;
  try {
    config = parley::server::load_config(config_path);
  } catch (const parley::server::ConfigError& e) {
    std::cerr << "parleyd: " << e.what() << "\n";
    return exit_config_error;
  }
  configure_logging(config.log);

  try {
    parley::server::Server server(std::move(config));
    return server.run();
  } catch (const parley::server::ConfigError& e) {
    spdlog::critical("{}", e.what());
    std::cerr << "parleyd: " << e.what() << "\n";
    return exit_config_error;
  } catch (const std::exception& e) {
    spdlog::critical("cannot start: {}", e.what());
    std::cerr << "parleyd: cannot start: " << e.what() << "\n";
    return exit_start_failure;
  }
}
