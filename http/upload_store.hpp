// The files of HTTP File Upload (XEP-0363) on disk, and who uses how much.
//
// Layout under the configured directory:
//   secret          the HMAC key of the PUT tokens (created on first start, 0600)
//   <id>/meta       owner, name, size, content type, times (key=value lines)
//   <id>/data       the stored bytes, once a PUT completed
//   <id>/data.part  the bytes of a PUT in progress
// <id> is 32 hex digits from 128 random bits, the unguessable part of the URL.
// Names on disk never come from the client; the client's file name only
// appears, sanitised, in the URL and in Content-Disposition.
//
// A slot reserves its size against the owner's quota from the moment it is
// granted until it expires unused; a stored file counts until it expires.
// Thread-safe: slots are granted on XMPP threads, PUTs and GETs are served on
// HTTP threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace parley::http {

struct UploadLimits {
  std::uint64_t max_file_size = 10 * 1024 * 1024;
  std::uint64_t quota = std::uint64_t{1} << 30;      // bytes per user: stored files plus open slots
  std::chrono::seconds expire_after{7 * 24 * 3600};  // a stored file's lifetime
  std::chrono::seconds slot_timeout{300};            // how long a slot waits for its PUT
  // Slots of one user awaiting their PUT: each costs a directory, so a
  // client asking for many tiny slots must not fill the disk with them.
  std::size_t max_open_slots = 100;
};

struct UploadRecord {
  std::string id;
  std::string owner;     // bare JID of the uploader
  std::string filename;  // sanitised
  std::uint64_t size = 0;
  std::string content_type;
  std::int64_t slot_expires = 0;  // Unix seconds; the PUT must come before
  std::int64_t stored_at = 0;     // Unix seconds; 0 while no PUT completed
  bool complete() const { return stored_at != 0; }
};

// A client's file name made safe to keep: the last path component, valid
// UTF-8 without control characters, no leading dots or spaces, no trailing
// dots or spaces, at most max_filename_bytes. Empty when nothing is left.
inline constexpr std::size_t max_filename_bytes = 200;
std::string sanitise_filename(std::string_view name);

// A Content-Type as given in a slot request: "type/subtype" of RFC 9110 token
// characters, optionally followed by parameters of printable ASCII. Returns
// the type lower-cased (parameters kept as given), nullopt when malformed.
std::optional<std::string> normalise_content_type(std::string_view content_type);

class UploadStore {
 public:
  using Clock = std::function<std::chrono::system_clock::time_point()>;

  // Creates the directory (and its secret) when missing. Throws
  // std::runtime_error naming the path when it cannot.
  UploadStore(std::filesystem::path directory, UploadLimits limits, Clock clock = {});

  const UploadLimits& limits() const { return limits_; }
  const std::string& secret() const { return secret_; }

  // Reads every record left by an earlier run, dropping the expired and the
  // broken ones and partial uploads. Returns how many records were kept.
  std::size_t load();

  enum class Refusal { none, too_large, over_quota, too_many_slots };
  struct Reservation {
    Refusal refusal = Refusal::none;
    UploadRecord record;  // the new slot when refusal is none
  };
  // Grants a slot (writes its meta file) unless the size is above the
  // per-file limit, the owner's quota would be exceeded or the owner has
  // max_open_slots slots awaiting their PUT. filename and
  // content_type must be sanitised/normalised already. Throws
  // std::runtime_error when the disk refuses.
  Reservation reserve(const std::string& owner, const std::string& filename, std::uint64_t size,
                      const std::string& content_type);

  // The record of an id (complete or not), when it exists and has not expired.
  std::optional<UploadRecord> find(std::string_view id) const;

  // Starts the one PUT a slot allows. nullopt when the id is unknown or
  // expired; otherwise the record, with 'busy' set when it is stored already
  // or another PUT is running.
  struct PutStart {
    UploadRecord record;
    bool busy = false;
  };
  std::optional<PutStart> begin_put(std::string_view id);
  std::filesystem::path partial_path(std::string_view id) const;
  std::filesystem::path data_path(std::string_view id) const;
  // Ends a PUT begun with begin_put. complete: the whole body is in
  // partial_path(id); it becomes the stored file. Otherwise the partial file
  // is removed and the slot can be used again until it expires. Returns
  // false when storing failed.
  bool finish_put(std::string_view id, bool complete);

  // Deletes stored files past expire_after and slots past their timeout.
  // Returns how many records went.
  std::size_t expire();

  // Bytes counted against owner's quota.
  std::uint64_t usage(std::string_view owner) const;
  std::size_t record_count() const;

  std::int64_t now() const;

 private:
  struct Entry {
    UploadRecord record;
    bool uploading = false;
  };
  bool expired(const UploadRecord& record, std::int64_t now) const;
  void write_meta(const UploadRecord& record) const;
  void remove_entry(const std::string& id);
  std::string load_secret();

  std::filesystem::path directory_;
  UploadLimits limits_;
  Clock clock_;
  std::string secret_;
  mutable std::mutex mutex_;
  std::map<std::string, Entry, std::less<>> entries_;
  struct Usage {
    std::uint64_t bytes = 0;
    std::size_t open_slots = 0;
  };
  void count(const UploadRecord& record, bool add);
  std::map<std::string, Usage, std::less<>> usage_;
};

// Parses a meta file's text; nullopt when a field is missing or malformed.
std::optional<UploadRecord> parse_meta(std::string_view text);
std::string format_meta(const UploadRecord& record);

}  // namespace parley::http
