#include "http/upload_store.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include "xmpp/sasl.hpp"

namespace parley::http {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t id_bytes = 16;  // 128 bits
constexpr std::size_t secret_bytes = 32;

bool is_id(std::string_view id) {
  if (id.size() != id_bytes * 2) return false;
  for (const char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// Length of the valid UTF-8 sequence at text[i] (no overlongs, no
// surrogates, at most U+10FFFF), or 0.
std::size_t utf8_sequence(std::string_view text, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  unsigned char min_second = 0x80, max_second = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    if (lead == 0xe0) min_second = 0xa0;
    if (lead == 0xed) max_second = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    if (lead == 0xf0) min_second = 0x90;
    if (lead == 0xf4) max_second = 0x8f;
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  if (byte(i + 1) < min_second || byte(i + 1) > max_second) return 0;
  for (std::size_t k = 2; k < length; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80) return 0;
  }
  return length;
}

bool is_token_char(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view text) {
  if (text.empty()) return false;
  for (const char c : text) {
    if (!is_token_char(c)) return false;
  }
  return true;
}

std::string read_small_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Written beside, then renamed over: a crash leaves the old or the new file.
void write_file_atomically(const fs::path& path, std::string_view content, mode_t mode) {
  const auto temporary = path.string() + ".new";
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) throw std::runtime_error("cannot write " + temporary + ": " + std::strerror(errno));
  std::size_t written = 0;
  while (written < content.size()) {
    const auto count = ::write(fd, content.data() + written, content.size() - written);
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) {
      const int error = errno;
      ::close(fd);
      ::unlink(temporary.c_str());
      throw std::runtime_error("cannot write " + temporary + ": " + std::strerror(error));
    }
    written += static_cast<std::size_t>(count);
  }
  ::close(fd);
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(temporary.c_str());
    throw std::runtime_error("cannot rename " + temporary + ": " + std::strerror(error));
  }
}

template <class T>
bool parse_number(std::string_view text, T& value) {
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  return !text.empty() && error == std::errc() && end == text.data() + text.size();
}

}  // namespace

std::string sanitise_filename(std::string_view name) {
  const auto slash = name.find_last_of("/\\");
  if (slash != std::string_view::npos) name.remove_prefix(slash + 1);
  std::string clean;
  for (std::size_t i = 0; i < name.size();) {
    const auto length = utf8_sequence(name, i);
    if (length == 0) {
      clean += '_';
      ++i;
      continue;
    }
    const auto c = static_cast<unsigned char>(name[i]);
    if (length == 1 && (c < 0x20 || c == 0x7f)) {
      clean += '_';
    } else if (clean.size() + length <= max_filename_bytes) {
      clean.append(name.substr(i, length));
    } else {
      break;
    }
    i += length;
  }
  const auto first = clean.find_first_not_of(". ");
  if (first == std::string::npos) return {};
  clean.erase(0, first);
  clean.erase(clean.find_last_not_of(". ") + 1);
  return clean;
}

std::optional<std::string> normalise_content_type(std::string_view content_type) {
  const auto semicolon = content_type.find(';');
  auto media_type = content_type.substr(0, semicolon);
  while (!media_type.empty() && media_type.back() == ' ') media_type.remove_suffix(1);
  const auto slash = media_type.find('/');
  if (slash == std::string_view::npos || !is_token(media_type.substr(0, slash)) ||
      !is_token(media_type.substr(slash + 1))) {
    return std::nullopt;
  }
  if (content_type.size() > 255) return std::nullopt;
  for (const char c : content_type) {
    if (c < 0x20 || c > 0x7e) return std::nullopt;
  }
  std::string normal(media_type);
  for (auto& c : normal) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  if (semicolon != std::string_view::npos) normal += content_type.substr(semicolon);
  return normal;
}

std::string format_meta(const UploadRecord& record) {
  return "id=" + record.id + "\nowner=" + record.owner + "\nfilename=" + record.filename +
         "\nsize=" + std::to_string(record.size) + "\ncontent_type=" + record.content_type +
         "\nslot_expires=" + std::to_string(record.slot_expires) + "\nstored_at=" + std::to_string(record.stored_at) +
         "\n";
}

std::optional<UploadRecord> parse_meta(std::string_view text) {
  UploadRecord record;
  unsigned seen = 0;
  while (!text.empty()) {
    const auto newline = text.find('\n');
    if (newline == std::string_view::npos) return std::nullopt;  // a truncated file
    const auto line = text.substr(0, newline);
    text.remove_prefix(newline + 1);
    const auto equals = line.find('=');
    if (equals == std::string_view::npos) return std::nullopt;
    const auto key = line.substr(0, equals);
    const auto value = line.substr(equals + 1);
    bool ok = true;
    if (key == "id") {
      record.id = value;
      ok = is_id(value);
      seen |= 1;
    } else if (key == "owner") {
      record.owner = value;
      ok = !value.empty();
      seen |= 2;
    } else if (key == "filename") {
      record.filename = value;
      ok = !value.empty() && sanitise_filename(value) == value;
      seen |= 4;
    } else if (key == "size") {
      ok = parse_number(value, record.size);
      seen |= 8;
    } else if (key == "content_type") {
      record.content_type = value;
      ok = normalise_content_type(value) == record.content_type;
      seen |= 16;
    } else if (key == "slot_expires") {
      ok = parse_number(value, record.slot_expires);
      seen |= 32;
    } else if (key == "stored_at") {
      ok = parse_number(value, record.stored_at);
      seen |= 64;
    }
    if (!ok) return std::nullopt;
  }
  if (seen != 127) return std::nullopt;
  return record;
}

UploadStore::UploadStore(fs::path directory, UploadLimits limits, Clock clock)
    : directory_(std::move(directory)), limits_(limits), clock_(std::move(clock)) {
  if (!clock_) clock_ = [] { return std::chrono::system_clock::now(); };
  std::error_code error;
  fs::create_directories(directory_, error);
  if (error || !fs::is_directory(directory_)) {
    throw std::runtime_error("upload directory " + directory_.string() + ": " +
                             (error ? error.message() : std::string("not a directory")));
  }
  secret_ = load_secret();
}

std::string UploadStore::load_secret() {
  const auto path = directory_ / "secret";
  if (fs::exists(path)) {
    auto text = read_small_file(path);
    if (text.size() == secret_bytes * 2) return text;
    spdlog::warn("upload: {} is malformed; replacing it (open slots become invalid)", path.string());
  }
  auto secret = sasl::hex_encode(sasl::random_bytes(secret_bytes));
  write_file_atomically(path, secret, 0600);
  return secret;
}

std::int64_t UploadStore::now() const {
  return std::chrono::duration_cast<std::chrono::seconds>(clock_().time_since_epoch()).count();
}

bool UploadStore::expired(const UploadRecord& record, std::int64_t now) const {
  if (record.complete()) return record.stored_at + limits_.expire_after.count() <= now;
  return record.slot_expires <= now;
}

fs::path UploadStore::partial_path(std::string_view id) const { return directory_ / std::string(id) / "data.part"; }
fs::path UploadStore::data_path(std::string_view id) const { return directory_ / std::string(id) / "data"; }

void UploadStore::write_meta(const UploadRecord& record) const {
  write_file_atomically(directory_ / record.id / "meta", format_meta(record), 0644);
}

std::size_t UploadStore::load() {
  std::lock_guard lock(mutex_);
  const auto now_seconds = now();
  std::error_code error;
  for (const auto& item : fs::directory_iterator(directory_, error)) {
    const auto name = item.path().filename().string();
    if (!item.is_directory() || !is_id(name) || entries_.contains(name)) continue;
    auto record = parse_meta(read_small_file(item.path() / "meta"));
    std::error_code ignored;
    fs::remove(item.path() / "data.part", ignored);
    const char* problem = nullptr;
    if (!record || record->id != name) {
      problem = "unreadable metadata";
    } else if (expired(*record, now_seconds)) {
      problem = "expired";
    } else if (record->complete()) {
      const auto size = fs::file_size(item.path() / "data", ignored);
      if (ignored || size != record->size) problem = "data missing or truncated";
    }
    if (problem != nullptr) {
      spdlog::info("upload: removing {} ({})", name, problem);
      fs::remove_all(item.path(), ignored);
      continue;
    }
    count(*record, true);
    entries_.emplace(name, Entry{std::move(*record), false});
  }
  if (error) throw std::runtime_error("upload directory " + directory_.string() + ": " + error.message());
  return entries_.size();
}

UploadStore::Reservation UploadStore::reserve(const std::string& owner, const std::string& filename, std::uint64_t size,
                                              const std::string& content_type) {
  Reservation reservation;
  if (size > limits_.max_file_size) {
    reservation.refusal = Refusal::too_large;
    return reservation;
  }
  std::lock_guard lock(mutex_);
  const auto usage = usage_.find(owner);
  const auto used = usage == usage_.end() ? Usage{} : usage->second;
  if (used.bytes + size > limits_.quota) {
    reservation.refusal = Refusal::over_quota;
    return reservation;
  }
  if (used.open_slots >= limits_.max_open_slots) {
    reservation.refusal = Refusal::too_many_slots;
    return reservation;
  }
  auto& record = reservation.record;
  do {
    record.id = sasl::hex_encode(sasl::random_bytes(id_bytes));
  } while (entries_.contains(record.id));
  record.owner = owner;
  record.filename = filename;
  record.size = size;
  record.content_type = content_type;
  record.slot_expires = now() + limits_.slot_timeout.count();
  std::error_code error;
  fs::create_directory(directory_ / record.id, error);
  if (error) throw std::runtime_error("cannot create " + (directory_ / record.id).string() + ": " + error.message());
  try {
    write_meta(record);
  } catch (...) {
    fs::remove_all(directory_ / record.id, error);
    throw;
  }
  count(record, true);
  entries_.emplace(record.id, Entry{record, false});
  return reservation;
}

std::optional<UploadRecord> UploadStore::find(std::string_view id) const {
  std::lock_guard lock(mutex_);
  const auto found = entries_.find(id);
  if (found == entries_.end() || expired(found->second.record, now())) return std::nullopt;
  return found->second.record;
}

std::optional<UploadStore::PutStart> UploadStore::begin_put(std::string_view id) {
  std::lock_guard lock(mutex_);
  const auto found = entries_.find(id);
  if (found == entries_.end() || expired(found->second.record, now())) return std::nullopt;
  auto& entry = found->second;
  PutStart start{entry.record, entry.uploading || entry.record.complete()};
  if (!start.busy) entry.uploading = true;
  return start;
}

bool UploadStore::finish_put(std::string_view id, bool complete) {
  std::lock_guard lock(mutex_);
  const auto found = entries_.find(id);
  std::error_code error;
  if (found == entries_.end()) {
    fs::remove(partial_path(id), error);
    return false;
  }
  auto& entry = found->second;
  entry.uploading = false;
  if (complete) {
    auto stored = entry.record;
    stored.stored_at = now();
    fs::rename(partial_path(id), data_path(id), error);
    if (!error) {
      try {
        write_meta(stored);
        count(entry.record, false);
        entry.record = std::move(stored);
        count(entry.record, true);
        return true;
      } catch (const std::exception& e) {
        spdlog::error("upload: {}", e.what());
      }
      fs::remove(data_path(id), error);
    } else {
      spdlog::error("upload: cannot store {}: {}", std::string(id), error.message());
    }
  }
  fs::remove(partial_path(id), error);
  return false;
}

void UploadStore::remove_entry(const std::string& id) {
  const auto found = entries_.find(id);
  if (found == entries_.end()) return;
  count(found->second.record, false);
  entries_.erase(found);
  std::error_code error;
  fs::remove_all(directory_ / id, error);
  if (error) spdlog::warn("upload: cannot remove {}: {}", (directory_ / id).string(), error.message());
}

std::size_t UploadStore::expire() {
  std::lock_guard lock(mutex_);
  const auto now_seconds = now();
  std::vector<std::string> gone;
  for (const auto& [id, entry] : entries_) {
    if (!entry.uploading && expired(entry.record, now_seconds)) gone.push_back(id);
  }
  for (const auto& id : gone) remove_entry(id);
  return gone.size();
}

void UploadStore::count(const UploadRecord& record, bool add) {
  auto& usage = usage_[record.owner];
  const std::size_t slots = record.complete() ? 0 : 1;
  if (add) {
    usage.bytes += record.size;
    usage.open_slots += slots;
  } else {
    usage.bytes -= std::min(usage.bytes, record.size);
    usage.open_slots -= std::min(usage.open_slots, slots);
  }
  if (usage.bytes == 0 && usage.open_slots == 0) usage_.erase(record.owner);
}

std::uint64_t UploadStore::usage(std::string_view owner) const {
  std::lock_guard lock(mutex_);
  const auto found = usage_.find(owner);
  return found == usage_.end() ? 0 : found->second.bytes;
}

std::size_t UploadStore::record_count() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

}  // namespace parley::http
