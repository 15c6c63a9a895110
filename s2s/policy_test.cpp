#include "s2s/policy.hpp"

#include <gtest/gtest.h>

namespace parley::s2s {
namespace {

TEST(Endpoint, ParsesIpv4AndBracketedIpv6) {
  auto v4 = parse_endpoint("127.0.0.2:5269");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->address, "127.0.0.2");
  EXPECT_EQ(v4->port, 5269);
  auto v6 = parse_endpoint("[::1]:5270");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->address, "::1");
  EXPECT_EQ(v6->port, 5270);
  for (const char* bad :
       {"127.0.0.1", "127.0.0.1:", ":5269", "127.0.0.1:0", "127.0.0.1:65536", "::1:5269", "[::1]5269", "host:52x9"}) {
    EXPECT_FALSE(parse_endpoint(bad)) << bad;
  }
}

TEST(Policy, DenyWinsAndAllowListRestricts) {
  Policy open;
  EXPECT_TRUE(open.allowed("anywhere.example"));
  Policy policy;
  policy.deny = {"bad.example"};
  EXPECT_FALSE(policy.allowed("bad.example"));
  EXPECT_TRUE(policy.allowed("good.example"));
  policy.allow = {"good.example", "bad.example"};
  EXPECT_TRUE(policy.allowed("good.example"));
  EXPECT_FALSE(policy.allowed("bad.example"));
  EXPECT_FALSE(policy.allowed("other.example"));
}

TEST(Policy, PerDomainOverrides) {
  Policy policy;
  policy.secure_auth_required = true;
  policy.ca_file = "/etc/ca.pem";
  policy.domains["legacy.example"] = DomainPolicy{"/etc/legacy-ca.pem", "127.0.0.9:5299", false};
  policy.domains["addressed.example"] = DomainPolicy{{}, "127.0.0.8:5269", std::nullopt};
  EXPECT_TRUE(policy.requires_secure_auth("other.example"));
  EXPECT_FALSE(policy.requires_secure_auth("legacy.example"));
  EXPECT_TRUE(policy.requires_secure_auth("addressed.example"));
  EXPECT_EQ(policy.ca_file_for("legacy.example"), "/etc/legacy-ca.pem");
  EXPECT_EQ(policy.ca_file_for("addressed.example"), "/etc/ca.pem");
  ASSERT_TRUE(policy.address_for("legacy.example"));
  EXPECT_EQ(policy.address_for("legacy.example")->port, 5299);
  EXPECT_FALSE(policy.address_for("other.example"));
}

TEST(Policy, OutboundMethodPrefersExternalAndHonoursSecureAuth) {
  Policy required;
  required.secure_auth_required = true;
  // A peer whose certificate we cannot trust is refused, whatever it offers.
  EXPECT_EQ(required.outbound_method("p.example", true, false, true, true), AuthMethod::none);
  EXPECT_EQ(required.outbound_method("p.example", true, true, true, true), AuthMethod::sasl_external);
  // Our own certificate does not name our domain: EXTERNAL would fail.
  EXPECT_EQ(required.outbound_method("p.example", false, true, true, true), AuthMethod::dialback);
  EXPECT_EQ(required.outbound_method("p.example", false, true, true, false), AuthMethod::none);

  Policy optional;
  optional.secure_auth_required = false;
  EXPECT_EQ(optional.outbound_method("p.example", true, false, false, true), AuthMethod::dialback);
  EXPECT_EQ(optional.outbound_method("p.example", true, false, true, true), AuthMethod::sasl_external);
  EXPECT_EQ(optional.outbound_method("p.example", true, false, false, false), AuthMethod::none);
}

TEST(Policy, InboundDialbackDecision) {
  Policy policy;
  policy.secure_auth_required = true;
  policy.domains["legacy.example"].secure_auth_required = false;
  policy.deny = {"bad.example"};
  using D = Policy::DialbackDecision;
  EXPECT_EQ(policy.inbound_dialback("p.example", true), D::accept_certificate);
  EXPECT_EQ(policy.inbound_dialback("p.example", false), D::refuse);
  EXPECT_EQ(policy.inbound_dialback("legacy.example", false), D::verify);
  EXPECT_EQ(policy.inbound_dialback("bad.example", true), D::refuse);
}

TEST(AuthMethod, NamesForParleyctl) {
  EXPECT_EQ(describe(AuthMethod::sasl_external), "SASL EXTERNAL");
  EXPECT_EQ(describe(AuthMethod::dialback), "dialback");
}

}  // namespace
}  // namespace parley::s2s
