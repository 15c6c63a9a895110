#include "components/proxy65_socks5.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <stdexcept>

#include "xmpp/sasl.hpp"

namespace parley::components::proxy65 {

namespace {

constexpr std::uint8_t socks_version = 0x05;
constexpr std::uint8_t method_no_authentication = 0x00;
constexpr std::uint8_t no_acceptable_methods = 0xFF;
constexpr std::uint8_t command_connect = 0x01;
constexpr std::uint8_t address_domain_name = 0x03;
constexpr std::size_t hash_length = 40;  // hex SHA-1

std::uint8_t byte_at(const std::string& bytes, std::size_t index) { return static_cast<std::uint8_t>(bytes[index]); }

char lower_hex_digit(char c) {
  if (c >= '0' && c <= '9') return c;
  if (c >= 'a' && c <= 'f') return c;
  if (c >= 'A' && c <= 'F') return static_cast<char>(c - 'A' + 'a');
  return 0;
}

}  // namespace

std::string stream_hash(std::string_view sid, std::string_view requester, std::string_view target) {
  const std::string input = std::string(sid) + std::string(requester) + std::string(target);
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  if (EVP_Digest(input.data(), input.size(), digest.data(), &length, EVP_sha1(), nullptr) != 1) {
    throw std::runtime_error("SHA-1 failed");
  }
  return sasl::hex_encode(std::string_view(reinterpret_cast<const char*>(digest.data()), length));
}

std::size_t Negotiation::feed(std::string_view input, std::string& output) {
  std::size_t consumed = 0;
  while (consumed < input.size() && (state_ == State::greeting || state_ == State::request)) {
    const std::size_t take = std::min(need_ - piece_.size(), input.size() - consumed);
    piece_.append(input.substr(consumed, take));
    consumed += take;
    if (piece_.size() == need_) process(output);
  }
  return consumed;
}

std::size_t Negotiation::wanted() const {
  if (state_ != State::greeting && state_ != State::request) return 0;
  return need_ - piece_.size();
}

void Negotiation::process(std::string& output) {
  const std::string piece = std::exchange(piece_, {});
  switch (step_) {
    case Step::greeting_header:
      // A client speaking another SOCKS version cannot read a version 5
      // answer: the connection is just closed.
      if (byte_at(piece, 0) != socks_version) return refuse("not SOCKS version 5");
      if (byte_at(piece, 1) == 0) {
        output += {static_cast<char>(socks_version), static_cast<char>(no_acceptable_methods)};
        return refuse("greeting offers no authentication method");
      }
      step_ = Step::greeting_methods;
      need_ = byte_at(piece, 1);
      return;
    case Step::greeting_methods:
      if (piece.find(static_cast<char>(method_no_authentication)) == std::string::npos) {
        output += {static_cast<char>(socks_version), static_cast<char>(no_acceptable_methods)};
        return refuse("the client does not offer 'no authentication'");
      }
      output += {static_cast<char>(socks_version), static_cast<char>(method_no_authentication)};
      state_ = State::request;
      step_ = Step::request_header;
      need_ = 4;
      return;
    case Step::request_header:
      if (byte_at(piece, 0) != socks_version) return fail(output, Reply::general_failure, "request is not version 5");
      if (byte_at(piece, 1) != command_connect) {
        return fail(output, Reply::command_not_supported, "only CONNECT is supported");
      }
      if (byte_at(piece, 3) != address_domain_name) {
        return fail(output, Reply::address_type_not_supported, "the address must be a domain name (ATYP 3)");
      }
      step_ = Step::request_length;
      need_ = 1;
      return;
    case Step::request_length:
      if (byte_at(piece, 0) != hash_length) {
        return fail(output, Reply::general_failure,
                    "the address is " + std::to_string(byte_at(piece, 0)) + " bytes, not a 40-digit SHA-1");
      }
      step_ = Step::request_address;
      need_ = hash_length + 2;  // and DST.PORT
      return;
    case Step::request_address: {
      std::string hash;
      for (std::size_t i = 0; i < hash_length; ++i) {
        const char digit = lower_hex_digit(piece[i]);
        if (digit == 0) return fail(output, Reply::general_failure, "the address is not hexadecimal");
        hash += digit;
      }
      address_ = std::move(hash);
      port_ = static_cast<std::uint16_t>(byte_at(piece, hash_length) << 8 | byte_at(piece, hash_length + 1));
      state_ = State::accepted;
      step_ = Step::done;
      need_ = 0;
      return;
    }
    case Step::done:
      return;
  }
}

void Negotiation::fail(std::string& output, Reply code, std::string reason) {
  // BND.ADDR of a failure carries no meaning: IPv4 0.0.0.0, port 0.
  output += {static_cast<char>(socks_version), static_cast<char>(code), 0, 0x01, 0, 0, 0, 0, 0, 0};
  refuse(std::move(reason));
}

void Negotiation::refuse(std::string reason) {
  state_ = State::failed;
  step_ = Step::done;
  need_ = 0;
  error_ = std::move(reason);
}

std::string Negotiation::reply(Reply code) const {
  std::string out{static_cast<char>(socks_version), static_cast<char>(code), 0,
                  static_cast<char>(address_domain_name), static_cast<char>(address_.size())};
  out += address_;
  out += static_cast<char>(port_ >> 8);
  out += static_cast<char>(port_ & 0xFF);
  return out;
}

}  // namespace parley::components::proxy65
