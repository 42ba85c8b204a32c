#include "gateway/access_log.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cstdio>
#include <string>

#include "testing/manual_clock.hpp"

namespace sb::gateway {
namespace {

// Reads what the log wrote to a temporary file.
class AccessLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    file_ = std::tmpfile();
    ASSERT_NE(file_, nullptr);
  }
  void TearDown() override { std::fclose(file_); }
  int fd() { return fileno(file_); }
  std::string contents() {
    std::string out(4096, '\0');
    const ssize_t n = ::pread(fd(), out.data(), out.size(), 0);
    out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    return out;
  }
  AccessRecord record() {
    return AccessRecord{"GET", "/svc/llm/x?q=\"1\"", 200, 1.2345, "llm", "http://127.0.0.1:3003",
                        64, "abc-123", "127.0.0.1"};
  }
  std::FILE* file_ = nullptr;
  testing::ManualClock clock_;
};

// A text line has every field as key=value, and no quote survives in a value.
TEST_F(AccessLogTest, TextLineHasEveryField) {
  {
    AccessLog log(core::LogFormat::kText, true, clock_, fd());
    log.record(record());
    log.flush(clock_.wall_now());
  }
  const std::string line = contents();
  EXPECT_NE(line.find(" access method=GET path=/svc/llm/x?q=_1_ status=200 duration_ms=1.235 "
                      "service=llm instance=http://127.0.0.1:3003 bytes=64 correlation_id=abc-123 "
                      "client=127.0.0.1\n"),
            std::string::npos)
      << line;
}

// A JSON line parses and carries the documented keys.
TEST_F(AccessLogTest, JsonLineParses) {
  {
    AccessLog log(core::LogFormat::kJson, true, clock_, fd());
    log.record(record());
  }  // the destructor flushes
  const auto v = boost::json::parse(contents()).as_object();
  EXPECT_EQ(v.at("method").as_string(), "GET");
  EXPECT_EQ(v.at("path").as_string(), "/svc/llm/x?q=\"1\"");
  EXPECT_EQ(v.at("status").as_int64(), 200);
  EXPECT_NEAR(v.at("duration_ms").to_number<double>(), 1.235, 1e-9);
  EXPECT_EQ(v.at("service").as_string(), "llm");
  EXPECT_EQ(v.at("bytes_sent").as_int64(), 64);
  EXPECT_EQ(v.at("correlation_id").as_string(), "abc-123");
}

// Nothing is written while the log is disabled, and nothing before a flush.
TEST_F(AccessLogTest, BuffersUntilFlushAndHonoursDisabled) {
  AccessLog off(core::LogFormat::kText, false, clock_, fd());
  off.record(record());
  off.flush(clock_.wall_now());
  EXPECT_EQ(contents(), "");
  AccessLog on(core::LogFormat::kText, true, clock_, fd());
  on.record(record());
  EXPECT_EQ(contents(), "");
  on.flush(clock_.wall_now());
  EXPECT_NE(contents(), "");
}

}  // namespace
}  // namespace sb::gateway
