// parleyctl: the administration command line of Parley. Everything except
// check-config and migrate talks to the running parleyd over its admin socket
// (see server/admin_protocol.hpp); check-config only reads the file, migrate
// opens the two storage backends itself.
#include <termios.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "server/admin_protocol.hpp"
#include "server/config.hpp"
#include "storage/copy.hpp"

namespace {

namespace admin = parley::admin;

enum ExitCode { success = 0, failure = 1, usage_error = 2, not_running = 3 };

const char* const default_socket = "var/parleyd.sock";

struct Failure {
  std::string message;
};

std::string default_config_path() {
  const std::string local = "config/parley.yml";
  return std::filesystem::exists(local) ? local : "/etc/parley/parley.yml";
}

// Only admin_socket is needed to reach the server, so a config that fails
// full validation (a certificate being replaced, say) still lets the
// administrator talk to the running server.
std::string socket_from_config(const std::string& config_path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(config_path);
  } catch (const YAML::BadFile&) {
    throw Failure{"cannot read " + config_path + " to find the admin socket (use --config or --socket)"};
  } catch (const YAML::Exception& e) {
    throw Failure{config_path + ": " + e.what()};
  }
  if (root.IsMap() && root["admin_socket"] && root["admin_socket"].IsScalar()) {
    return root["admin_socket"].Scalar();
  }
  return default_socket;
}

// Restores the terminal's echo however the prompt ends.
class EchoOff {
 public:
  EchoOff() : active_(::tcgetattr(STDIN_FILENO, &saved_) == 0) {
    if (!active_) return;
    termios quiet = saved_;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  }
  ~EchoOff() {
    if (active_) ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_);
  }
  EchoOff(const EchoOff&) = delete;
  EchoOff& operator=(const EchoOff&) = delete;

 private:
  termios saved_{};
  bool active_;
};

std::string prompt_hidden(const std::string& prompt) {
  std::cerr << prompt << std::flush;
  std::string line;
  {
    EchoOff echo_off;
    if (!std::getline(std::cin, line)) line.clear();
  }
  std::cerr << '\n';
  return line;
}

// The password from the command line, else from the terminal (asked twice,
// without echo), else the first line of stdin (for scripts).
std::string obtain_password(const std::optional<std::string>& given, const std::string& account) {
  if (given) return *given;
  if (::isatty(STDIN_FILENO)) {
    const auto first = prompt_hidden("New password for " + account + ": ");
    const auto second = prompt_hidden("Repeat the password: ");
    if (first != second) throw Failure{"the passwords do not match"};
    if (first.empty()) throw Failure{"the password may not be empty"};
    return first;
  }
  std::string line;
  if (!std::getline(std::cin, line)) throw Failure{"no password given on the command line or stdin"};
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.empty()) throw Failure{"the password read from stdin is empty"};
  return line;
}

int check_config(const std::string& config_path) {
  try {
    const auto config = parley::server::load_config(config_path);
    std::cout << "config OK: " << config.hosts.size() << (config.hosts.size() == 1 ? " host, " : " hosts, ")
              << config.listeners.size() << (config.listeners.size() == 1 ? " listener" : " listeners") << '\n';
    return success;
  } catch (const parley::server::ConfigError& e) {
    std::cerr << e.what() << '\n';
    return failure;
  }
}

void print_counts(const std::string& label, const parley::storage::CopyCounts& counts) {
  std::cout << label << ": " << counts.accounts << " accounts, " << counts.rosters << " rosters with "
            << counts.roster_items << " items and " << counts.pending << " pending subscriptions, "
            << counts.offline << " offline messages, " << counts.rooms << " rooms with " << counts.affiliations
            << " affiliations, " << counts.archives << " message archives with " << counts.archived
            << " messages\n";
}

int migrate(const std::string& from_uri, const std::string& to_uri, bool force) {
  namespace storage = parley::storage;
  if (from_uri == to_uri) {
    std::cerr << "parleyctl: --from and --to name the same storage\n";
    return usage_error;
  }
  try {
    auto from = storage::open(from_uri);
    auto to = storage::open(to_uri);
    storage::CopyOptions options{force, [](std::string_view line) { std::cerr << line << "...\n"; }};
    const auto report = storage::copy_all(*from, *to, options);
    if (!report.written) {
      std::cerr << "parleyctl: the target already holds different data for " << report.conflicts.size()
                << (report.conflicts.size() == 1 ? " record" : " records") << "; nothing was written:\n";
      for (const auto& conflict : report.conflicts) std::cerr << "  " << conflict << '\n';
      std::cerr << "Use --force to replace them with the source's (records only the target has stay).\n";
      return failure;
    }
    for (const auto& conflict : report.conflicts) std::cerr << "replaced: " << conflict << '\n';
    print_counts("source", report.source);
    print_counts("copied", report.copied);
    print_counts("already in the target", report.unchanged);
    print_counts("verified in the target", report.verified);
    to->flush();
    if (report.verified != report.source) {
      std::cerr << "parleyctl: verification failed: the target does not hold everything the source holds "
                   "(was the source changed during the copy? run migrate again)\n";
      return failure;
    }
    std::cout << "migration complete: the target holds everything the source holds\n";
    return success;
  } catch (const storage::Error& error) {
    std::cerr << "parleyctl: " << error.what() << '\n';
    return failure;
  }
}

int send(const std::string& socket_path, const std::vector<std::string>& request) {
  for (const auto& field : request) {
    if (!admin::valid_field(field)) {
      std::cerr << "parleyctl: arguments may not contain tabs or line breaks\n";
      return usage_error;
    }
  }
  const auto result = admin::send_request(socket_path, request);
  switch (result.status) {
    case admin::ClientResult::Status::not_running:
      std::cerr << "parleyctl: parleyd is not running (no admin socket at " << socket_path << ")\n";
      return not_running;
    case admin::ClientResult::Status::failed:
      std::cerr << "parleyctl: " << result.message << '\n';
      return failure;
    case admin::ClientResult::Status::answered:
      break;
  }
  if (!result.response.ok) {
    std::cerr << "parleyctl: " << result.response.error << '\n';
    return failure;
  }
  for (const auto& line : result.response.lines) std::cout << line << '\n';
  return success;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "parleyctl: administer a Parley XMPP server.\n"
      "Every command except check-config and migrate talks to the running parleyd over its admin socket."};
  app.footer(
      "Exit status: 0 success, 1 the command failed, 2 usage error, 3 parleyd is not running.\n"
      "Run 'parleyctl COMMAND --help' for a command's details.");
  app.require_subcommand(1);
  app.fallthrough();

  std::string config_path;
  std::string socket_path;
  app.add_option("-c,--config", config_path,
                 "Config file, read for admin_socket and by check-config\n"
                 "(default: ./config/parley.yml if it exists, else /etc/parley/parley.yml)");
  app.add_option("-s,--socket", socket_path, "Admin socket path (overrides admin_socket from the config)");

  std::string user, host, jid, reason;
  std::optional<std::string> password;
  std::vector<std::string> request;

  auto* status = app.add_subcommand("status", "Show version, uptime, hosts, session count and storage backend");
  status->callback([&] { request = {"status"}; });

  auto* reg = app.add_subcommand("register", "Create an account");
  reg->add_option("USER", user, "Username (localpart), e.g. alice")->required();
  reg->add_option("HOST", host, "One of the server's hosts, e.g. localhost")->required();
  reg->add_option("PASSWORD", password,
                  "Password; when omitted it is asked twice on a terminal, or read as one line from stdin.\n"
                  "Prefer omitting it: arguments are visible to other local users in the process list");
  reg->callback([&] { request = {"register", user, host}; });

  auto* unreg =
      app.add_subcommand("unregister", "Delete an account with its roster and offline messages, and disconnect it");
  unreg->add_option("USER", user, "Username")->required();
  unreg->add_option("HOST", host, "Host")->required();
  unreg->callback([&] { request = {"unregister", user, host}; });

  auto* passwd = app.add_subcommand("passwd", "Change an account's password");
  passwd->add_option("USER", user, "Username")->required();
  passwd->add_option("HOST", host, "Host")->required();
  passwd->add_option("PASSWORD", password, "New password; asked or read from stdin when omitted (see register)");
  passwd->callback([&] { request = {"passwd", user, host}; });

  auto* users = app.add_subcommand("users", "List a host's accounts, one per line");
  users->add_option("HOST", host, "Host")->required();
  users->callback([&] { request = {"users", host}; });

  auto* sessions = app.add_subcommand(
      "sessions",
      "List connected resources, one per line, TAB-separated:\n"
      "full JID, remote address, TLS version (- if none), bound since (UTC), priority, available|unavailable");
  sessions->callback([&] { request = {"sessions"}; });

  auto* kick = app.add_subcommand(
      "kick", "Disconnect a session (full JID) or all sessions of an account (bare JID) with <policy-violation/>");
  kick->add_option("JID", jid, "user@host/resource or user@host")->required();
  kick->add_option("REASON", reason, "Text sent with the stream error (default: kicked by administrator)");
  kick->callback([&] {
    request = {"kick", jid};
    if (!reason.empty()) request.push_back(reason);
  });

  auto* s2s = app.add_subcommand(
      "s2s",
      "List server-to-server streams, one per line, TAB-separated: direction (in|out), local domain, peer domain,\n"
      "authentication (SASL EXTERNAL|dialback|none), TLS version, cipher, idle seconds, stream id");
  s2s->callback([&] { request = {"s2s"}; });

  auto* components = app.add_subcommand(
      "components",
      "List the configured external components (XEP-0114), one per line, TAB-separated: domain,\n"
      "connected|disconnected, remote address, TLS version, stream id (- where not connected)");
  components->callback([&] { request = {"components"}; });

  auto* reload = app.add_subcommand("reload", "Reload certificates and the config file (like SIGHUP)");
  reload->callback([&] { request = {"reload"}; });

  bool checking_config = false;
  auto* check = app.add_subcommand("check-config", "Validate the config file without contacting the server");
  check->callback([&] { checking_config = true; });

  bool migrating = false;
  bool force = false;
  std::string from_uri, to_uri;
  auto* migrate_command = app.add_subcommand(
      "migrate",
      "Copy accounts, rosters, pending subscriptions, offline messages, message archives and rooms\n"
      "from one storage to another, "
      "without the server (stop parleyd first). Storage URIs as in the config: sqlite:PATH,\n"
      "mysql://USER:PASSWORD@HOST:PORT/DATABASE. Running it again copies only what is missing.\n"
      "Refuses, writing nothing, when the target holds different data for the same record");
  migrate_command->add_option("--from", from_uri, "Source storage URI")->required();
  migrate_command->add_option("--to", to_uri, "Target storage URI")->required();
  migrate_command->add_flag("--force", force, "Replace the target's differing records with the source's");
  migrate_command->callback([&] { migrating = true; });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? success : usage_error;
  }

  try {
    if (config_path.empty()) config_path = default_config_path();
    if (checking_config) return check_config(config_path);
    if (migrating) return migrate(from_uri, to_uri, force);
    if (socket_path.empty()) socket_path = socket_from_config(config_path);
    if (request.front() == "register" || request.front() == "passwd") {
      request.push_back(obtain_password(password, user + "@" + host));
    }
    return send(socket_path, request);
  } catch (const Failure& failed) {
    std::cerr << "parleyctl: " << failed.message << '\n';
    return failure;
  }
}
