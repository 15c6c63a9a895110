// XEP-0198 stream management bookkeeping for one client stream: what the
// client has acknowledged, what it has not, and how many stanzas we handled.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace parley::c2s {

inline constexpr std::string_view ns_sm = "urn:xmpp:sm:3";

class StreamManagement {
 public:
  bool enabled() const { return enabled_; }
  bool resumable() const { return resumable_; }
  const std::string& id() const { return id_; }
  void enable(bool resumable, std::string id);

  // A stanza from the client was handled (its 'h' in our <a/>).
  void count_inbound() {
    if (enabled_) ++inbound_;
  }
  std::uint32_t inbound() const { return inbound_; }

  // A stanza went to the client: kept until acknowledged.
  void sent(std::string serialized) {
    if (enabled_) unacked_.push_back(std::move(serialized));
  }
  // The client's <a h='..'/> (or a resume's h). False when h acknowledges
  // more stanzas than were sent (XEP-0198 §5: a stream error).
  bool acknowledge(std::uint32_t handled);
  const std::vector<std::string>& unacked() const { return unacked_; }

  // 'h' of <a/> and <resume/>: an unsigned 32-bit decimal.
  static std::optional<std::uint32_t> parse_h(std::string_view text);

 private:
  bool enabled_ = false;
  bool resumable_ = false;
  std::string id_;
  std::uint32_t inbound_ = 0;
  std::uint32_t acknowledged_ = 0;     // the client's last h (counts wrap at 2^32)
  // Oldest first. A vector, not a deque: an empty deque allocates, and
  // every session without stream management would carry one.
  std::vector<std::string> unacked_;
};

}  // namespace parley::c2s
