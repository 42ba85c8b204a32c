#include "core/ip_network.hpp"

#include <gtest/gtest.h>

#include <string>

namespace sb::core {
namespace {

IpAddress addr(std::string_view text) {
  auto a = IpAddress::parse(text);
  EXPECT_TRUE(a.has_value()) << text;
  return a.value_or(IpAddress{});
}

IpNetwork net(std::string_view text) {
  std::string why;
  auto n = IpNetwork::parse(text, &why);
  EXPECT_TRUE(n.has_value()) << text << ": " << why;
  return n.value_or(IpNetwork{});
}

std::string why_not(std::string_view text) {
  std::string why;
  auto n = IpNetwork::parse(text, &why);
  EXPECT_FALSE(n.has_value()) << text << " parsed as " << (n ? n->text : "");
  return why;
}

// Addresses: IPv4, IPv6 in any spelling, IPv4-mapped IPv6 taken as IPv4; nothing else.
TEST(IpAddressTest, ParsesBothFamilies) {
  EXPECT_TRUE(addr("10.9.9.9").v4);
  EXPECT_EQ(addr("10.9.9.9").str(), "10.9.9.9");
  EXPECT_FALSE(addr("FD00:0:0::1").v4);
  EXPECT_EQ(addr("FD00:0:0::1").str(), "fd00::1");
  EXPECT_EQ(addr("::ffff:10.9.9.9"), addr("10.9.9.9"));
  for (const char* bad : {"", "10.9.9", "10.9.9.9.9", "256.1.1.1", "[::1]", "::1%eth0",
                          "fe80::1::2", "localhost", "10.9.9.9:80", " 10.9.9.9", "1.2.3.04x"})
    EXPECT_FALSE(IpAddress::parse(bad).has_value()) << bad;
}

TEST(IpAddressTest, Loopback) {
  EXPECT_TRUE(addr("127.0.0.1").is_loopback());
  EXPECT_TRUE(addr("127.255.0.9").is_loopback());
  EXPECT_TRUE(addr("::1").is_loopback());
  EXPECT_TRUE(addr("::ffff:127.0.0.1").is_loopback());
  EXPECT_FALSE(addr("128.0.0.1").is_loopback());
  EXPECT_FALSE(addr("::2").is_loopback());
  EXPECT_FALSE(addr("::").is_loopback());
  EXPECT_FALSE(addr("0.0.0.0").is_loopback());
}

// Networks: a prefix or a bare address (/32, /128), canonical text.
TEST(IpNetworkTest, ParsesCidrAndBareAddresses) {
  EXPECT_EQ(net("10.0.0.0/8").text, "10.0.0.0/8");
  EXPECT_EQ(net("10.0.0.0/8").prefix, 8u);
  EXPECT_EQ(net("192.168.1.7").text, "192.168.1.7/32");
  EXPECT_EQ(net("0.0.0.0/0").text, "0.0.0.0/0");
  EXPECT_EQ(net("FD00:0::/8").text, "fd00::/8");
  EXPECT_EQ(net("::1").text, "::1/128");
  EXPECT_EQ(net("::/0").text, "::/0");
  EXPECT_EQ(net("172.16.0.0/12").text, "172.16.0.0/12");
}

// Each kind of bad network is refused with a reason.
TEST(IpNetworkTest, RefusesBadInputWithAReason) {
  EXPECT_EQ(why_not("10.0.0.1/8"), "host bits are set: did you mean 10.0.0.0/8?");
  EXPECT_EQ(why_not("172.17.0.0/12"), "host bits are set: did you mean 172.16.0.0/12?");
  EXPECT_EQ(why_not("fd00::1/8"), "host bits are set: did you mean fd00::/8?");
  EXPECT_EQ(why_not("10.0.0.0/33"), "the prefix length after '/' must be a number from 0 to 32");
  EXPECT_EQ(why_not("fd00::/129"), "the prefix length after '/' must be a number from 0 to 128");
  for (const char* bad : {"10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/08", "10.0.0.0/8/8",
                          "10.0.0.0/ 8", "10.0.0.0/1000"})
    EXPECT_NE(why_not(bad).find("prefix length"), std::string::npos) << bad;
  for (const char* bad : {"", "/8", "example.com/8", "10.0.0/8", "[::1]/128", "any"})
    EXPECT_EQ(why_not(bad), "not an IP address (expected e.g. 10.0.0.0/8 or fd00::/8)") << bad;
  EXPECT_EQ(why_not("::ffff:10.0.0.0/104"),
            "an IPv4-mapped IPv6 address: write the IPv4 network (e.g. 10.0.0.0/8)");
  EXPECT_FALSE(IpNetwork::parse("junk").has_value());  // `why` may be left out
}

// Matching at the edges of a prefix, in both families; families never cross.
TEST(IpNetworkTest, ContainsAtThePrefixEdges) {
  const IpNetwork p12 = net("172.16.0.0/12");
  EXPECT_TRUE(p12.contains(addr("172.16.0.0")));
  EXPECT_TRUE(p12.contains(addr("172.31.255.255")));
  EXPECT_FALSE(p12.contains(addr("172.32.0.0")));
  EXPECT_FALSE(p12.contains(addr("172.15.255.255")));
  EXPECT_TRUE(net("10.9.9.9").contains(addr("10.9.9.9")));
  EXPECT_FALSE(net("10.9.9.9").contains(addr("10.9.9.8")));
  EXPECT_TRUE(net("0.0.0.0/0").contains(addr("203.0.113.5")));
  EXPECT_FALSE(net("0.0.0.0/0").contains(addr("::1")));
  EXPECT_FALSE(net("::/0").contains(addr("10.0.0.1")));
  EXPECT_TRUE(net("::/0").contains(addr("2001:db8::1")));
  // An IPv4-mapped address is its IPv4 address.
  EXPECT_TRUE(net("10.0.0.0/8").contains(addr("::ffff:10.1.2.3")));
  const IpNetwork p127 = net("fd00::/127");
  EXPECT_TRUE(p127.contains(addr("fd00::1")));
  EXPECT_FALSE(p127.contains(addr("fd00::2")));
  const IpNetwork p9 = net("fd80::/9");
  EXPECT_TRUE(p9.contains(addr("fdff:ffff::1")));
  EXPECT_FALSE(p9.contains(addr("fd7f::1")));
  EXPECT_TRUE(net("::1/128").contains(addr("::1")));
  EXPECT_FALSE(net("::1/128").contains(addr("::")));
}

TEST(IpNetworkTest, LoopbackNetworksAreTheDefault) {
  const auto l = loopback_networks();
  ASSERT_EQ(l.size(), 2u);
  EXPECT_EQ(l[0].text, "127.0.0.0/8");
  EXPECT_EQ(l[1].text, "::1/128");
}

}  // namespace
}  // namespace sb::core
