#include "xmpp/sasl.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <map>

namespace parley::sasl {
namespace {

std::string decoded(std::string_view base64) {
  auto bytes = base64_decode(base64);
  EXPECT_TRUE(bytes.has_value()) << base64;
  return bytes.value_or("");
}

// The client side of SCRAM written straight on OpenSSL, independent of the
// server code under test.
class ScramClient {
 public:
  ScramClient(Hash hash, std::string username, std::string password, std::string gs2_header,
              std::string client_nonce)
      : hash_(hash),
        username_(std::move(username)),
        password_(std::move(password)),
        gs2_header_(std::move(gs2_header)),
        client_nonce_(std::move(client_nonce)) {}

  std::string first_bare() const { return "n=" + username_ + ",r=" + client_nonce_; }
  std::string first() const { return gs2_header_ + first_bare(); }

  std::string final_message(const std::string& server_first, const std::string& cb_data) {
    std::map<char, std::string> fields;
    std::size_t start = 0;
    while (start < server_first.size()) {
      auto end = server_first.find(',', start);
      if (end == std::string::npos) end = server_first.size();
      fields[server_first[start]] = server_first.substr(start + 2, end - start - 2);
      start = end + 1;
    }
    const auto salt = decoded(fields['s']);
    const int iterations = std::stoi(fields['i']);
    const EVP_MD* md = hash_ == Hash::sha1 ? EVP_sha1() : EVP_sha256();
    const auto size = static_cast<std::size_t>(EVP_MD_get_size(md));
    std::string salted(size, '\0');
    PKCS5_PBKDF2_HMAC(password_.data(), static_cast<int>(password_.size()),
                      reinterpret_cast<const unsigned char*>(salt.data()),
                      static_cast<int>(salt.size()), iterations, md, static_cast<int>(size),
                      reinterpret_cast<unsigned char*>(salted.data()));
    const auto client_key = mac(md, salted, "Client Key");
    std::string stored_key(size, '\0');
    EVP_Digest(client_key.data(), client_key.size(),
               reinterpret_cast<unsigned char*>(stored_key.data()), nullptr, md, nullptr);
    const auto without_proof = "c=" + base64_encode(gs2_header_ + cb_data) + ",r=" + fields['r'];
    const auto auth_message = first_bare() + "," + server_first + "," + without_proof;
    const auto signature = mac(md, stored_key, auth_message);
    std::string proof(size, '\0');
    for (std::size_t i = 0; i < size; ++i)
      proof[i] = static_cast<char>(client_key[i] ^ signature[i]);
    expected_server_final_ =
        "v=" + base64_encode(mac(md, mac(md, salted, "Server Key"), auth_message));
    return without_proof + ",p=" + base64_encode(proof);
  }

  const std::string& expected_server_final() const { return expected_server_final_; }

 private:
  static std::string mac(const EVP_MD* md, const std::string& key, const std::string& data) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
    unsigned int length = 0;
    HMAC(md, key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &length);
    return {reinterpret_cast<const char*>(out.data()), length};
  }

  Hash hash_;
  std::string username_;
  std::string password_;
  std::string gs2_header_;
  std::string client_nonce_;
  std::string expected_server_final_;
};

const std::string exporter_data = std::string("\x01\x02\x03\x00\xfe\xff", 6) + "exporter-bytes";

std::optional<std::string> fake_tls(std::string_view type) {
  if (type == "tls-exporter") return exporter_data;
  return std::nullopt;
}

std::string failure_condition(const std::variant<std::string, Failure>& result) {
  const auto* failure = std::get_if<Failure>(&result);
  return failure ? failure->condition : "success: " + std::get<std::string>(result);
}

std::string failure_condition(const std::variant<ScramServer::ClientFirst, Failure>& result) {
  const auto* failure = std::get_if<Failure>(&result);
  return failure ? failure->condition : "success";
}

// Runs a whole exchange for a client whose account has `stored_password`.
std::variant<std::string, Failure> exchange(ScramServer& server, ScramClient& client,
                                            const std::optional<ScramCredentials>& credentials,
                                            const std::string& cb_data) {
  const auto first = server.client_first(client.first());
  if (const auto* failure = std::get_if<Failure>(&first)) return *failure;
  const auto challenge = server.server_first(credentials);
  return server.client_final(client.final_message(challenge, cb_data));
}

TEST(Scram, Rfc5802Sha1TestVector) {
  const auto credentials =
      derive_credentials(Hash::sha1, "pencil", decoded("QSXCR+Q6sek8bf92"), 4096);
  ScramServer server(Hash::sha1, false, nullptr, false);
  server.set_server_nonce_for_testing("3rfcNHYJY1ZVvWVs7j");

  const auto first = server.client_first("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
  ASSERT_TRUE(std::holds_alternative<ScramServer::ClientFirst>(first));
  EXPECT_EQ(std::get<ScramServer::ClientFirst>(first).username, "user");
  EXPECT_EQ(std::get<ScramServer::ClientFirst>(first).authzid, "");

  EXPECT_EQ(server.server_first(credentials),
            "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096");
  const auto result = server.client_final(
      "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=");
  ASSERT_TRUE(std::holds_alternative<std::string>(result)) << failure_condition(result);
  EXPECT_EQ(std::get<std::string>(result), "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=");
}

TEST(Scram, Rfc7677Sha256TestVector) {
  const auto credentials =
      derive_credentials(Hash::sha256, "pencil", decoded("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096);
  ScramServer server(Hash::sha256, false, nullptr, false);
  server.set_server_nonce_for_testing("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");

  ASSERT_EQ(failure_condition(server.client_first("n,,n=user,r=rOprNGfwEbeRWgbNEkqO")), "success");
  EXPECT_EQ(
      server.server_first(credentials),
      "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
  const auto result = server.client_final(
      "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
      "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
  ASSERT_TRUE(std::holds_alternative<std::string>(result)) << failure_condition(result);
  EXPECT_EQ(std::get<std::string>(result), "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
}

TEST(Scram, RandomServerNonceExtendsClientNonce) {
  ScramServer a(Hash::sha256, false, nullptr, false);
  ScramServer b(Hash::sha256, false, nullptr, false);
  const auto credentials = make_credentials(Hash::sha256, "pw");
  ASSERT_EQ(failure_condition(a.client_first("n,,n=u,r=clientnonce")), "success");
  ASSERT_EQ(failure_condition(b.client_first("n,,n=u,r=clientnonce")), "success");
  const auto first_a = a.server_first(credentials);
  const auto first_b = b.server_first(credentials);
  EXPECT_EQ(first_a.rfind("r=clientnonce", 0), 0u);
  EXPECT_GT(first_a.find(",s="), std::string("r=clientnonce").size() + 16);
  EXPECT_NE(first_a, first_b);
}

TEST(Scram, FullExchangeSucceedsForBothHashes) {
  for (const auto hash : {Hash::sha1, Hash::sha256}) {
    ScramServer server(hash, false, fake_tls, true);
    ScramClient client(hash, "juliet", "r0m30myr0m30", "n,,", "abcdefghijklmnop");
    const auto result = exchange(server, client, make_credentials(hash, "r0m30myr0m30"), "");
    ASSERT_TRUE(std::holds_alternative<std::string>(result)) << failure_condition(result);
    EXPECT_EQ(std::get<std::string>(result), client.expected_server_final());
  }
}

TEST(Scram, WrongPasswordIsNotAuthorized) {
  ScramServer server(Hash::sha256, false, nullptr, false);
  ScramClient client(Hash::sha256, "juliet", "wrong", "n,,", "abcdefghijklmnop");
  const auto result = exchange(server, client, make_credentials(Hash::sha256, "right"), "");
  EXPECT_EQ(failure_condition(result), "not-authorized");
}

TEST(Scram, ChannelBindingWithTlsExporterSucceeds) {
  ScramServer server(Hash::sha256, true, fake_tls, true);
  ScramClient client(Hash::sha256, "juliet", "pw", "p=tls-exporter,,", "abcdefghijklmnop");
  const auto result = exchange(server, client, make_credentials(Hash::sha256, "pw"), exporter_data);
  ASSERT_TRUE(std::holds_alternative<std::string>(result)) << failure_condition(result);
  EXPECT_EQ(std::get<std::string>(result), client.expected_server_final());
}

TEST(Scram, ChannelBindingWithAuthzidSucceeds) {
  ScramServer server(Hash::sha1, true, fake_tls, true);
  ScramClient client(Hash::sha1, "juliet", "pw", "p=tls-exporter,a=juliet@example.com,", "nonce");
  const auto result = exchange(server, client, make_credentials(Hash::sha1, "pw"), exporter_data);
  EXPECT_TRUE(std::holds_alternative<std::string>(result)) << failure_condition(result);
}

TEST(Scram, ChannelBindingMismatchIsNotAuthorized) {
  // A man in the middle terminates TLS himself: the client sees other data.
  ScramServer server(Hash::sha256, true, fake_tls, true);
  ScramClient client(Hash::sha256, "juliet", "pw", "p=tls-exporter,,", "abcdefghijklmnop");
  const auto result = exchange(server, client, make_credentials(Hash::sha256, "pw"), "other bytes");
  EXPECT_EQ(failure_condition(result), "not-authorized");
}

TEST(Scram, ChannelBindingDataMissingFromCIsNotAuthorized) {
  ScramServer server(Hash::sha256, true, fake_tls, true);
  ScramClient client(Hash::sha256, "juliet", "pw", "p=tls-exporter,,", "abcdefghijklmnop");
  const auto result = exchange(server, client, make_credentials(Hash::sha256, "pw"), "");
  EXPECT_EQ(failure_condition(result), "not-authorized");
}

TEST(Scram, ClientSayingYWhilePlusWasOfferedIsADowngrade) {
  ScramServer server(Hash::sha256, false, fake_tls, true);
  EXPECT_EQ(failure_condition(server.client_first("y,,n=juliet,r=abc")), "not-authorized");
}

TEST(Scram, ClientSayingYWithoutPlusOfferedSucceeds) {
  ScramServer server(Hash::sha256, false, nullptr, false);
  ScramClient client(Hash::sha256, "juliet", "pw", "y,,", "abcdefghijklmnop");
  const auto result = exchange(server, client, make_credentials(Hash::sha256, "pw"), "");
  EXPECT_TRUE(std::holds_alternative<std::string>(result)) << failure_condition(result);
}

TEST(Scram, UnsupportedChannelBindingTypeFails) {
  ScramServer server(Hash::sha256, true, fake_tls, true);
  EXPECT_EQ(failure_condition(server.client_first("p=tls-unique,,n=juliet,r=abc")),
            "not-authorized");
  ScramServer without_provider(Hash::sha256, true, nullptr, true);
  EXPECT_EQ(failure_condition(without_provider.client_first("p=tls-exporter,,n=juliet,r=abc")),
            "not-authorized");
}

TEST(Scram, ChannelBindingOnlyOnThePlusMechanism) {
  ScramServer plain_mechanism(Hash::sha256, false, fake_tls, true);
  EXPECT_EQ(failure_condition(plain_mechanism.client_first("p=tls-exporter,,n=juliet,r=abc")),
            "malformed-request");
  ScramServer plus_mechanism(Hash::sha256, true, fake_tls, true);
  EXPECT_EQ(failure_condition(plus_mechanism.client_first("n,,n=juliet,r=abc")),
            "malformed-request");
}

TEST(Scram, UnknownUserFailsOnlyAtTheEnd) {
  ScramServer server(Hash::sha256, false, nullptr, false);
  ScramClient client(Hash::sha256, "nobody", "pw", "n,,", "abcdefghijklmnop");
  ASSERT_EQ(failure_condition(server.client_first(client.first())), "success");
  const auto challenge = server.server_first(std::nullopt);
  EXPECT_EQ(challenge.rfind("r=abcdefghijklmnop", 0), 0u);
  const auto salt_start = challenge.find(",s=") + 3;
  const auto salt_end = challenge.find(",i=");
  EXPECT_EQ(decoded(challenge.substr(salt_start, salt_end - salt_start)).size(), 16u);
  EXPECT_EQ(challenge.substr(salt_end), ",i=4096");
  EXPECT_EQ(failure_condition(server.client_final(client.final_message(challenge, ""))),
            "not-authorized");
}

TEST(Scram, UnknownUserGetsTheSameSaltEveryTime) {
  auto salt_for = [](std::string_view username) {
    ScramServer server(Hash::sha256, false, nullptr, false);
    server.client_first("n,,n=" + std::string(username) + ",r=abc");
    const auto challenge = server.server_first(std::nullopt);
    const auto start = challenge.find(",s=");
    return challenge.substr(start, challenge.find(",i=") - start);
  };
  EXPECT_EQ(salt_for("nobody"), salt_for("nobody"));
  EXPECT_NE(salt_for("nobody"), salt_for("somebody"));
}

TEST(Scram, DamagedCredentialsBehaveLikeAnUnknownUser) {
  auto credentials = make_credentials(Hash::sha256, "pw");
  credentials.stored_key.pop_back();
  ScramServer server(Hash::sha256, false, nullptr, false);
  ScramClient client(Hash::sha256, "juliet", "pw", "n,,", "abcdefghijklmnop");
  EXPECT_EQ(failure_condition(exchange(server, client, credentials, "")), "not-authorized");
}

TEST(Scram, AuthzidAndUsernameEscapesAreDecoded) {
  ScramServer server(Hash::sha256, false, nullptr, false);
  const auto first = server.client_first("n,a=ad=2Cmin=3D,n=us=3Der=2C,r=abc");
  ASSERT_TRUE(std::holds_alternative<ScramServer::ClientFirst>(first)) << failure_condition(first);
  EXPECT_EQ(std::get<ScramServer::ClientFirst>(first).authzid, "ad,min=");
  EXPECT_EQ(std::get<ScramServer::ClientFirst>(first).username, "us=er,");
}

TEST(Scram, UsernameIsSaslpreped) {
  ScramServer server(Hash::sha256, false, nullptr, false);
  const auto first = server.client_first("n,,n=I\xC2\xADX,r=abc");
  ASSERT_TRUE(std::holds_alternative<ScramServer::ClientFirst>(first)) << failure_condition(first);
  EXPECT_EQ(std::get<ScramServer::ClientFirst>(first).username, "IX");

  ScramServer prohibited(Hash::sha256, false, nullptr, false);
  EXPECT_EQ(failure_condition(prohibited.client_first("n,,n=a\x07,r=abc")), "not-authorized");
  ScramServer empty_after_prep(Hash::sha256, false, nullptr, false);
  EXPECT_EQ(failure_condition(empty_after_prep.client_first("n,,n=\xC2\xAD,r=abc")),
            "not-authorized");
}

TEST(Scram, ExtensionsAfterTheNonceAreIgnored) {
  ScramServer server(Hash::sha256, false, nullptr, false);
  EXPECT_EQ(failure_condition(server.client_first("n,,n=user,r=abc,x=ext")), "success");
}

TEST(Scram, MalformedClientFirstMessages) {
  for (const auto& message : std::vector<std::string>{"",
                                                      "n",
                                                      "n,",
                                                      "n,,",
                                                      "x,,n=user,r=abc",
                                                      "nn,,n=user,r=abc",
                                                      "p=,,n=user,r=abc",
                                                      "p=tls exporter,,n=user,r=abc",
                                                      "n,x=admin,n=user,r=abc",
                                                      "n,a=,n=user,r=abc",
                                                      "n,a=bad=escape,n=user,r=abc",
                                                      "n,,m=ext,n=user,r=abc",
                                                      "n,,r=abc",
                                                      "n,,n=,r=abc",
                                                      "n,,n=us=er,r=abc",
                                                      "n,,n=us=2,r=abc",
                                                      "n,,n=user",
                                                      "n,,n=user,r=",
                                                      "n,,n=user,r=a\x01"
                                                      "b",
                                                      "n,,n=user,r=abc,",
                                                      "n,,n=user,r=abc,1=x",
                                                      "n,,n=user,x=abc",
                                                      "n,,n=\xff,r=abc",
                                                      std::string("n,,n=us\0er,r=abc", 16)}) {
    ScramServer server(Hash::sha256, false, nullptr, false);
    EXPECT_EQ(failure_condition(server.client_first(message)), "malformed-request") << message;
  }
}

TEST(Scram, MalformedClientFinalMessages) {
  const auto credentials = make_credentials(Hash::sha256, "pw");
  ScramClient client(Hash::sha256, "user", "pw", "n,,", "abc");
  for (const std::string message :
       {"", "c=biws", "c=biws,r=x", "c=biws,p=AAAA", "r=x,c=biws,p=AAAA", "c=b!ws,r=NONCE,p=PROOF",
        "c=biws,r=NONCE,p=not*base64", "c=biws,r=NONCE,p=AAAA", "c=biws,r=NONCE,1=ext,p=PROOF",
        "c=biws,r=NONCE,p=PROOF,"}) {
    ScramServer server(Hash::sha256, false, nullptr, false);
    server.set_server_nonce_for_testing("server");
    server.client_first(client.first());
    const auto challenge = server.server_first(credentials);
    const auto valid = client.final_message(challenge, "");
    const auto proof = valid.substr(valid.find(",p=") + 3);
    std::string final_message = message;
    if (auto at = final_message.find("NONCE"); at != std::string::npos)
      final_message.replace(at, 5, "abcserver");
    if (auto at = final_message.find("PROOF"); at != std::string::npos)
      final_message.replace(at, 5, proof);
    EXPECT_EQ(failure_condition(server.client_final(final_message)), "malformed-request")
        << message;
  }
}

TEST(Scram, NonceMismatchIsNotAuthorized) {
  const auto credentials = make_credentials(Hash::sha256, "pw");
  ScramServer server(Hash::sha256, false, nullptr, false);
  ScramClient client(Hash::sha256, "user", "pw", "n,,", "abc");
  server.client_first(client.first());
  auto challenge = server.server_first(credentials);
  const auto nonce_end = challenge.find(',');
  challenge.replace(nonce_end - 1, 1, challenge[nonce_end - 1] == 'A' ? "B" : "A");
  EXPECT_EQ(failure_condition(server.client_final(client.final_message(challenge, ""))),
            "not-authorized");
}

TEST(Scram, StepsOutOfOrderFailGracefully) {
  const auto credentials = make_credentials(Hash::sha256, "pw");

  ScramServer final_first(Hash::sha256, false, nullptr, false);
  EXPECT_EQ(failure_condition(final_first.client_final("c=biws,r=abc,p=AAAA")),
            "malformed-request");

  ScramServer final_before_challenge(Hash::sha256, false, nullptr, false);
  final_before_challenge.client_first("n,,n=user,r=abc");
  EXPECT_EQ(failure_condition(final_before_challenge.client_final("c=biws,r=abc,p=AAAA")),
            "malformed-request");

  ScramServer challenge_first(Hash::sha256, false, nullptr, false);
  EXPECT_EQ(challenge_first.server_first(credentials), "");
  EXPECT_EQ(failure_condition(challenge_first.client_first("n,,n=user,r=abc")),
            "malformed-request");

  ScramServer twice(Hash::sha256, false, nullptr, false);
  ASSERT_EQ(failure_condition(twice.client_first("n,,n=user,r=abc")), "success");
  EXPECT_EQ(failure_condition(twice.client_first("n,,n=user,r=abc")), "malformed-request");

  ScramServer after_failure(Hash::sha256, false, nullptr, false);
  EXPECT_EQ(failure_condition(after_failure.client_first("garbage")), "malformed-request");
  EXPECT_EQ(after_failure.server_first(credentials), "");
}

TEST(Scram, SuccessfulProofCannotBeReplayed) {
  ScramServer server(Hash::sha256, false, nullptr, false);
  ScramClient client(Hash::sha256, "user", "pw", "n,,", "abc");
  server.client_first(client.first());
  const auto final_message =
      client.final_message(server.server_first(make_credentials(Hash::sha256, "pw")), "");
  ASSERT_TRUE(std::holds_alternative<std::string>(server.client_final(final_message)));
  EXPECT_EQ(failure_condition(server.client_final(final_message)), "malformed-request");
}

TEST(Scram, MechanismNames) {
  EXPECT_EQ(mechanism_name(Hash::sha1, false), "SCRAM-SHA-1");
  EXPECT_EQ(mechanism_name(Hash::sha1, true), "SCRAM-SHA-1-PLUS");
  EXPECT_EQ(mechanism_name(Hash::sha256, false), "SCRAM-SHA-256");
  EXPECT_EQ(mechanism_name(Hash::sha256, true), "SCRAM-SHA-256-PLUS");
}

TEST(Credentials, MakeCredentialsUsesAFreshSalt) {
  const auto a = make_credentials(Hash::sha256, "pw", 1000);
  const auto b = make_credentials(Hash::sha256, "pw", 1000);
  EXPECT_EQ(a.salt.size(), 16u);
  EXPECT_EQ(a.iterations, 1000u);
  EXPECT_EQ(a.stored_key.size(), 32u);
  EXPECT_EQ(a.server_key.size(), 32u);
  EXPECT_NE(a.salt, b.salt);
  EXPECT_NE(a.stored_key, b.stored_key);
  EXPECT_EQ(make_credentials(Hash::sha1, "pw").stored_key.size(), 20u);
}

TEST(Credentials, DeriveIsDeterministicAndRejectsBadInput) {
  EXPECT_EQ(derive_credentials(Hash::sha1, "pw", "salt", 10),
            derive_credentials(Hash::sha1, "pw", "salt", 10));
  EXPECT_NE(derive_credentials(Hash::sha1, "pw", "salt", 10),
            derive_credentials(Hash::sha1, "pw", "salt", 11));
  EXPECT_THROW(derive_credentials(Hash::sha1, "pw", "salt", 0), std::invalid_argument);
  EXPECT_THROW(derive_credentials(Hash::sha1, "bell\x07", "salt", 10), std::invalid_argument);
}

TEST(Credentials, VerifyPassword) {
  const auto credentials = make_credentials(Hash::sha256, "secret");
  EXPECT_TRUE(verify_password(Hash::sha256, "secret", credentials));
  EXPECT_FALSE(verify_password(Hash::sha256, "Secret", credentials));
  EXPECT_FALSE(verify_password(Hash::sha256, "", credentials));
  EXPECT_FALSE(verify_password(Hash::sha1, "secret", credentials));
  EXPECT_FALSE(verify_password(Hash::sha256, "bell\x07", credentials));
  auto broken = credentials;
  broken.iterations = 0;
  EXPECT_FALSE(verify_password(Hash::sha256, "secret", broken));
}

TEST(Credentials, PasswordsAreSaslpreped) {
  // U+00A0 NO-BREAK SPACE maps to a space, U+00AD SOFT HYPHEN to nothing.
  const auto credentials = make_credentials(Hash::sha1, "a b");
  EXPECT_TRUE(verify_password(Hash::sha1,
                              "a\xC2\xA0"
                              "b",
                              credentials));
  EXPECT_TRUE(verify_password(Hash::sha1,
                              "a \xC2\xAD"
                              "b",
                              credentials));
}

TEST(Saslprep, Rfc4013Examples) {
  EXPECT_EQ(saslprep("I\xC2\xADX"), "IX");
  EXPECT_EQ(saslprep("user"), "user");
  EXPECT_EQ(saslprep("USER"), "USER");
  EXPECT_EQ(saslprep("\xC2\xAA"), "a");
  EXPECT_EQ(saslprep("\xE2\x85\xA8"), "IX");
  EXPECT_EQ(saslprep("\x07"), std::nullopt);
  EXPECT_EQ(saslprep("\xD8\xA7"
                     "1"),
            std::nullopt);
}

TEST(Saslprep, RejectsInvalidUtf8AndNul) {
  EXPECT_EQ(saslprep("\xff"), std::nullopt);
  EXPECT_EQ(saslprep("\xC0\xAF"), std::nullopt);      // overlong '/'
  EXPECT_EQ(saslprep("\xED\xA0\x80"), std::nullopt);  // surrogate
  EXPECT_EQ(saslprep("\xE2\x85"), std::nullopt);      // truncated
  EXPECT_EQ(saslprep(std::string_view("a\0b", 3)), std::nullopt);
}

TEST(Saslprep, HandlesLargeExpansion) {
  // U+FDFA expands to 18 code points under NFKC.
  std::string input;
  for (int i = 0; i < 50; ++i) input += "\xEF\xB7\xBA";
  const auto prepared = saslprep(input);
  ASSERT_TRUE(prepared.has_value());
  EXPECT_GT(prepared->size(), input.size() * 10);
}

TEST(HexEncode, TwoLowerCaseDigitsPerByte) {
  EXPECT_EQ(hex_encode(""), "");
  EXPECT_EQ(hex_encode(std::string("\x00\x0f\xa5\xff", 4)), "000fa5ff");
}

TEST(Base64, Rfc4648Vectors) {
  const std::vector<std::pair<std::string, std::string>> vectors = {{"", ""},
                                                                    {"f", "Zg=="},
                                                                    {"fo", "Zm8="},
                                                                    {"foo", "Zm9v"},
                                                                    {"foob", "Zm9vYg=="},
                                                                    {"fooba", "Zm9vYmE="},
                                                                    {"foobar", "Zm9vYmFy"}};
  for (const auto& [bytes, text] : vectors) {
    EXPECT_EQ(base64_encode(bytes), text);
    EXPECT_EQ(base64_decode(text), bytes);
  }
}

TEST(Base64, RoundTripsEveryByte) {
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes += static_cast<char>(i);
  for (std::size_t length = 0; length <= bytes.size(); length += 37) {
    const auto prefix = bytes.substr(0, length);
    EXPECT_EQ(base64_decode(base64_encode(prefix)), prefix);
  }
  EXPECT_EQ(base64_encode("\xfb\xff"), "+/8=");
}

TEST(Base64, RejectsInvalidInput) {
  for (const auto& text :
       std::vector<std::string>{"Zg=", "Zg", "Z", "Z===", "====", "Zh==", "Zm9=", "Zm 9v", "Zm9v\n",
                                "Zg==Zg==", "=Zg=", "Zm9v====", "Zm9!", "Zm=v", "Zm8=Zm9v", "Zm9-",
                                "Zm9_", std::string("Zm\0v", 4)}) {
    EXPECT_EQ(base64_decode(text), std::nullopt) << text;
  }
}

TEST(ConstantTimeEqual, ComparesContentAndLength) {
  EXPECT_TRUE(constant_time_equal("", ""));
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "ab"));
}

TEST(RandomBytes, HasTheRequestedSizeAndVaries) {
  EXPECT_EQ(random_bytes(0), "");
  EXPECT_EQ(random_bytes(32).size(), 32u);
  EXPECT_NE(random_bytes(32), random_bytes(32));
}

PlainCredentials plain_ok(std::string_view message) {
  auto result = parse_plain(message);
  EXPECT_TRUE(std::holds_alternative<PlainCredentials>(result));
  if (const auto* credentials = std::get_if<PlainCredentials>(&result)) return *credentials;
  return {};
}

std::string plain_failure(std::string_view message) {
  const auto result = parse_plain(message);
  const auto* failure = std::get_if<Failure>(&result);
  return failure ? failure->condition : "success";
}

TEST(Plain, ParsesWithAndWithoutAuthzid) {
  using namespace std::string_view_literals;
  const auto simple = plain_ok("\0juliet\0r0m30"sv);
  EXPECT_EQ(simple.authzid, "");
  EXPECT_EQ(simple.username, "juliet");
  EXPECT_EQ(simple.password, "r0m30");

  const auto with_authzid = plain_ok("admin@example.com\0juliet\0pass word"sv);
  EXPECT_EQ(with_authzid.authzid, "admin@example.com");
  EXPECT_EQ(with_authzid.username, "juliet");
  EXPECT_EQ(with_authzid.password, "pass word");
}

TEST(Plain, UsernameIsSaslprepedPasswordKeptAsSent) {
  using namespace std::string_view_literals;
  const auto credentials = plain_ok(
      "\0I\xC2\xAD"
      "X\0a\xC2\xA0"
      "b"sv);
  EXPECT_EQ(credentials.username, "IX");
  EXPECT_EQ(credentials.password,
            "a\xC2\xA0"
            "b");
  EXPECT_EQ(plain_failure("\0bell\x07\0pw"sv), "not-authorized");
}

TEST(Plain, RejectsMalformedMessages) {
  using namespace std::string_view_literals;
  EXPECT_EQ(plain_failure(""sv), "malformed-request");
  EXPECT_EQ(plain_failure("juliet"sv), "malformed-request");
  EXPECT_EQ(plain_failure("juliet\0pw"sv), "malformed-request");
  EXPECT_EQ(plain_failure("\0\0pw"sv), "malformed-request");
  EXPECT_EQ(plain_failure("\0juliet\0"sv), "malformed-request");
  EXPECT_EQ(plain_failure("\0juliet\0pw\0"sv), "malformed-request");
  EXPECT_EQ(plain_failure("a\0juliet\0p\0w"sv), "malformed-request");
  EXPECT_EQ(plain_failure("\0jul\xffiet\0pw"sv), "malformed-request");
  EXPECT_EQ(plain_failure("\0juliet\0p\xC0\xAFw"sv), "malformed-request");
}

}  // namespace
}  // namespace parley::sasl
