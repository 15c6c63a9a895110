// The server side of SOCKS5 (RFC 1928) as SOCKS5 Bytestreams (XEP-0065)
// use it, and the address hash. Kept free of Asio so it can be tested byte
// by byte.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace parley::components::proxy65 {

// RFC 1928 §6 reply codes.
enum class Reply : std::uint8_t {
  succeeded = 0x00,
  general_failure = 0x01,
  not_allowed = 0x02,
  command_not_supported = 0x07,
  address_type_not_supported = 0x08,
};

// The DST.ADDR both parties send: hex SHA-1 of SID + requester JID + target
// JID (XEP-0065 §5.3.2), lower case.
std::string stream_hash(std::string_view sid, std::string_view requester, std::string_view target);

// Feeds on what a client sends: the method greeting (only "no
// authentication" is offered), then a CONNECT request whose address is a
// 40-digit hex hash (ATYP 3, the only type XEP-0065 uses). Never reads past
// the request, so bytes sent after it stay in the socket until the stream
// is activated.
class Negotiation {
 public:
  enum class State {
    greeting,  // reading the version/methods message
    request,   // reading the CONNECT request
    accepted,  // request complete: address() holds the hash; answer with reply()
    failed,    // refused; the output of the last feed() holds whatever reply is due
  };

  // Consumes bytes from 'input', no more than the current message needs, and
  // appends what the server must send to 'output'. Returns the number of
  // bytes consumed: less than input.size() only once accepted or failed.
  std::size_t feed(std::string_view input, std::string& output);

  // How many more bytes the next step needs (0 once accepted or failed):
  // reading exactly this many never swallows bytes after the request.
  std::size_t wanted() const;

  State state() const { return state_; }
  // Why the negotiation failed, for the logs.
  const std::string& error() const { return error_; }
  // The normalised (lower-case) hash, once accepted.
  const std::string& address() const { return address_; }
  // The answer to an accepted request: BND.ADDR and BND.PORT echo the
  // request's (XEP-0065 §6.3.2).
  std::string reply(Reply code) const;

 private:
  enum class Step { greeting_header, greeting_methods, request_header, request_length, request_address, done };

  void process(std::string& output);
  void fail(std::string& output, Reply code, std::string reason);
  void refuse(std::string reason);

  State state_ = State::greeting;
  Step step_ = Step::greeting_header;
  std::size_t need_ = 2;
  std::string piece_;  // the bytes of the current step so far
  std::string address_;
  std::uint16_t port_ = 0;
  std::string error_;
};

}  // namespace parley::components::proxy65
