#include "core/correlation_id.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace sb::core {
namespace {

std::string id_string(const CorrelationIdGenerator::Id& id) { return {id.data(), id.size()}; }

// Ids of 1 and of exactly 128 allowed characters are kept.
TEST(CorrelationIdTest, AcceptsLengthsOneTo128) {
  EXPECT_TRUE(is_valid_correlation_id("a"));
  EXPECT_TRUE(is_valid_correlation_id(std::string(kMaxCorrelationIdLength, 'x')));
}

// Empty and 129-character ids are replaced.
TEST(CorrelationIdTest, RejectsEmptyAndTooLong) {
  EXPECT_FALSE(is_valid_correlation_id(""));
  EXPECT_FALSE(is_valid_correlation_id(std::string(kMaxCorrelationIdLength + 1, 'x')));
}

// Every character of the allowed set passes, alone and together.
TEST(CorrelationIdTest, AcceptsEveryAllowedCharacter) {
  const std::string allowed =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:@/+=";
  EXPECT_TRUE(is_valid_correlation_id(allowed));
  for (char c : allowed) EXPECT_TRUE(is_valid_correlation_id(std::string(1, c))) << c;
}

// Common id shapes: UUID, ULID, W3C trace id, base64.
TEST(CorrelationIdTest, AcceptsCommonFormats) {
  EXPECT_TRUE(is_valid_correlation_id("0b9f5c3e-8d1a-4c7e-9f00-1234567890ab"));
  EXPECT_TRUE(is_valid_correlation_id("01ARZ3NDEKTSV4RRFFQ69G5FAV"));
  EXPECT_TRUE(is_valid_correlation_id("4bf92f3577b34da6a3ce929d0e0e4736"));
  EXPECT_TRUE(is_valid_correlation_id("dGVzdC1pZA=="));
}

// Anything that could split a header or a log line, or is not ASCII, is rejected,
// wherever it appears.
TEST(CorrelationIdTest, RejectsOtherCharacters) {
  const std::string bad[] = {" ",    "\t",   "\r",   "\n",   ",",
                             ";",    "\"",   "'",    "\\",   "<",
                             ">",    "{",    "}",    "%",    "?",
                             "#",    "*",    "&",    "!",    "~",
                             "\x7f", "\x01", "\x80", "\xff", std::string(1, '\0')};
  for (const auto& b : bad) {
    EXPECT_FALSE(is_valid_correlation_id(b)) << static_cast<int>(b[0]);
    EXPECT_FALSE(is_valid_correlation_id("abc" + b)) << static_cast<int>(b[0]);
    EXPECT_FALSE(is_valid_correlation_id(b + "abc")) << static_cast<int>(b[0]);
  }
  EXPECT_FALSE(is_valid_correlation_id("id\r\nX-Injected: 1"));
}

// A generated id is a lowercase version-4 UUID with the RFC 4122 variant, and valid.
TEST(CorrelationIdTest, GeneratedIdIsVersion4Uuid) {
  CorrelationIdGenerator gen(42);
  for (int n = 0; n < 1000; ++n) {
    CorrelationIdGenerator::Id id;
    gen.next(id);
    const std::string s = id_string(id);
    ASSERT_EQ(s.size(), 36u);
    EXPECT_TRUE(is_valid_correlation_id(s)) << s;
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (i == 8 || i == 13 || i == 18 || i == 23) {
        EXPECT_EQ(s[i], '-') << s;
      } else {
        EXPECT_TRUE((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')) << s;
      }
    }
    EXPECT_EQ(s[14], '4') << s;                                          // version nibble
    EXPECT_NE(std::string("89ab").find(s[19]), std::string::npos) << s;  // variant 10xx
  }
}

// The digits are the generator's bits in order (pinned from the byte-by-byte formatter the
// word-at-a-time one replaced).
TEST(CorrelationIdTest, GeneratedIdsAreStable) {
  CorrelationIdGenerator gen(42);
  CorrelationIdGenerator::Id id;
  for (const char* want :
       {"15780b2e-0c2e-4716-a104-d9866d113a7e", "ae175332-39e4-49a1-acb8-ad4703b360a1",
        "fde6dc7f-e2ec-4e64-850d-a53101795238"}) {
    gen.next(id);
    EXPECT_EQ(id_string(id), want);
  }
}

// Ids from one generator do not repeat.
TEST(CorrelationIdTest, GeneratedIdsAreDistinct) {
  CorrelationIdGenerator gen(7);
  std::set<std::string> seen;
  for (int n = 0; n < 100'000; ++n) {
    CorrelationIdGenerator::Id id;
    gen.next(id);
    EXPECT_TRUE(seen.insert(id_string(id)).second);
  }
}

// The same seed gives the same sequence; different seeds give different ones.
TEST(CorrelationIdTest, SeedDeterminesSequence) {
  CorrelationIdGenerator a(1), b(1), c(2);
  CorrelationIdGenerator::Id ia, ib, ic;
  for (int n = 0; n < 10; ++n) {
    a.next(ia);
    b.next(ib);
    c.next(ic);
    EXPECT_EQ(id_string(ia), id_string(ib));
    EXPECT_NE(id_string(ia), id_string(ic));
  }
}

}  // namespace
}  // namespace sb::core
