#include "resilience/deadline.hpp"

#include <gtest/gtest.h>

namespace sb::resilience {
namespace {

using namespace std::chrono_literals;
using core::SteadyTime;

const SteadyTime t0 = SteadyTime{} + 1000s;

TEST(DeadlineTest, RequestTimeoutMsValid) {
  EXPECT_EQ(parse_request_timeout_ms("0").value, 0ms);
  EXPECT_EQ(parse_request_timeout_ms("1").value, 1ms);
  EXPECT_EQ(parse_request_timeout_ms("1500").value, 1500ms);
  EXPECT_EQ(parse_request_timeout_ms("007").value, 7ms);
  EXPECT_EQ(parse_request_timeout_ms("86400000").value, 86400000ms);
}

TEST(DeadlineTest, RequestTimeoutMsInvalid) {
  struct Case {
    const char* in;
    const char* error;
  };
  const Case cases[] = {
      {"", "empty"},
      {" 100", "not a decimal number of milliseconds"},
      {"100 ", "not a decimal number of milliseconds"},
      {"+100", "not a decimal number of milliseconds"},
      {"-1", "not a decimal number of milliseconds"},
      {"1.5", "not a decimal number of milliseconds"},
      {"100ms", "not a decimal number of milliseconds"},
      {"0x10", "not a decimal number of milliseconds"},
      {"1e3", "not a decimal number of milliseconds"},
      {"86400001", "too large (max 86400000)"},
      {"99999999999999999999", "too large (max 86400000)"},
  };
  for (const auto& c : cases) {
    auto r = parse_request_timeout_ms(c.in);
    EXPECT_FALSE(r) << c.in;
    EXPECT_EQ(r.error, c.error) << c.in;
  }
}

TEST(DeadlineTest, GrpcTimeoutValid) {
  EXPECT_EQ(parse_grpc_timeout("1H").value, 1h);
  EXPECT_EQ(parse_grpc_timeout("2M").value, 2min);
  EXPECT_EQ(parse_grpc_timeout("3S").value, 3s);
  EXPECT_EQ(parse_grpc_timeout("100m").value, 100ms);
  EXPECT_EQ(parse_grpc_timeout("5u").value, 5us);
  EXPECT_EQ(parse_grpc_timeout("7n").value, 7ns);
  EXPECT_EQ(parse_grpc_timeout("0S").value, 0s);
  EXPECT_EQ(parse_grpc_timeout("99999999n").value, 99999999ns);
  // The largest value saturates instead of overflowing.
  auto big = parse_grpc_timeout("99999999H");
  ASSERT_TRUE(big);
  EXPECT_GT(*big.value, 24h * 365 * 70);
}

TEST(DeadlineTest, GrpcTimeoutInvalid) {
  struct Case {
    const char* in;
    const char* error;
  };
  const Case cases[] = {
      {"", "empty"},
      {"100", "missing unit"},
      {"S", "not 1 to 8 digits"},
      {"1s", "bad unit"},
      {"1h", "bad unit"},
      {"123456789S", "not 1 to 8 digits"},
      {"-1S", "not 1 to 8 digits"},
      {" 1S", "not 1 to 8 digits"},
      {"1 S", "not 1 to 8 digits"},
      {"1S ", "bad unit"},
      {"1.5S", "not 1 to 8 digits"},
      {"+1S", "not 1 to 8 digits"},
  };
  for (const auto& c : cases) {
    auto r = parse_grpc_timeout(c.in);
    EXPECT_FALSE(r) << c.in;
    EXPECT_EQ(r.error, c.error) << c.in;
  }
}

TEST(DeadlineTest, RemainingAndExpired) {
  Deadline d(t0, 2s);
  EXPECT_EQ(d.at(), t0 + 2s);
  EXPECT_EQ(d.remaining(t0), 2s);
  EXPECT_EQ(d.remaining(t0 + 1500ms), 500ms);
  EXPECT_FALSE(d.expired(t0 + 2s - 1ns));
  EXPECT_TRUE(d.expired(t0 + 2s));
  EXPECT_EQ(d.remaining(t0 + 3s), 0s);
  EXPECT_EQ(Deadline(t0, -1s).budget(), 0s);
}

// The forwarded value is the remaining time, rounded down to whole milliseconds.
TEST(DeadlineTest, ForwardedValues) {
  Deadline d(t0, 1500ms);
  EXPECT_EQ(d.forward_header_value(t0), "1500");
  EXPECT_EQ(d.forward_header_value(t0 + 250ms + 1ns), "1249");
  EXPECT_EQ(d.forward_header_value(t0 + 2s), "0");
  EXPECT_EQ(d.grpc_timeout_value(t0 + 500ms), "1000m");
  Deadline long_one(t0, std::chrono::hours(24 * 1000));  // 8.64e10 ms: does not fit 8 digits
  EXPECT_EQ(long_one.grpc_timeout_value(t0), "86400000S");
  // The forwarded value parses back.
  EXPECT_EQ(parse_grpc_timeout(d.grpc_timeout_value(t0)).value, 1500ms);
  EXPECT_EQ(parse_request_timeout_ms(d.forward_header_value(t0)).value, 1500ms);
}

TEST(DeadlineTest, EffectiveBudgetNeverLengthens) {
  EXPECT_EQ(effective_budget(15s, std::nullopt), 15s);
  EXPECT_EQ(effective_budget(15s, 2s), 2s);
  EXPECT_EQ(effective_budget(15s, 60s), 15s);
}

}  // namespace
}  // namespace sb::resilience
