// HTTPS upstreams: verified against a CA given in the config, refused when unverifiable.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "testing/gateway_fixture.hpp"

namespace sb::testing {
namespace {

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_ = make_test_pki(dir_.path());
    ASSERT_TRUE(pki_.ok()) << pki_.error;
    UpstreamOptions options;
    options.name = "tls-up";
    options.tls_cert = pki_.server_cert;
    options.tls_key = pki_.server_key;
    up_ = std::make_unique<Upstream>(std::move(options));
    ASSERT_TRUE(up_->started()) << up_->error();
  }

  // GET /svc/x/echo through a gateway started with `yaml` and `args`.
  Response echo_through(const std::string& yaml, std::vector<std::string> args) {
    args.push_back("--config");
    args.push_back(dir_.write_file("switchboard.yaml", yaml));
    sb_ = std::make_unique<Switchboard>(std::move(args));
    EXPECT_TRUE(sb_->started()) << sb_->error();
    if (!sb_->started()) return {};
    HttpClient c(sb_->port());
    return c.get("/svc/x/echo");
  }

  TempDir dir_;
  TestPki pki_;
  std::unique_ptr<Upstream> up_;
  std::unique_ptr<Switchboard> sb_;
};

// upstream.tls.ca_file makes an https:// instance with a certificate from that CA work.
TEST_F(TlsTest, CaFileFromUpstreamDefaults) {
  Response r = echo_through("upstream:\n  tls:\n    ca_file: \"" + pki_.ca_cert + "\"\n",
                            {"--service", "x=" + up_->url()});
  ASSERT_EQ(r.status, 200) << r.error << r.raw;
  auto doc = parse_json(r.body);
  ASSERT_TRUE(doc) << r.body;
  EXPECT_EQ(json_string(*doc, "name"), "tls-up");
}

// A service's own tls.ca_file works the same way.
TEST_F(TlsTest, CaFilePerService) {
  Response r = echo_through(
      "services:\n"
      "  x:\n"
      "    instances: [\"" +
          up_->url() +
          "\"]\n"
          "    tls:\n"
          "      ca_file: \"" +
          pki_.ca_cert + "\"\n",
      {});
  ASSERT_EQ(r.status, 200) << r.error << r.raw;
  auto doc = parse_json(r.body);
  ASSERT_TRUE(doc) << r.body;
  EXPECT_EQ(json_string(*doc, "name"), "tls-up");
}

// Without the CA the certificate does not verify: 502, and nothing reaches the upstream.
TEST_F(TlsTest, UnverifiableCertificateIs502) {
  Response r = echo_through("logging:\n  level: info\n", {"--service", "x=" + up_->url()});
  expect_problem(r, 502);
  EXPECT_EQ(up_->requests_logged("/echo"), 0u);
}

// Health checks of https instances complete the TLS handshake with the service's settings:
// verified against the CA, the instance takes traffic; unverifiable, it never does, and the
// registry says why.
TEST_F(TlsTest, HttpsChecksVerifyTheCertificate) {
  SwitchboardOptions options;
  options.env["HEALTH_CHECK_INTERVAL"] = "100";
  options.args = {"--config", dir_.write_file("switchboard.yaml",
                                              "services:\n"
                                              "  good:\n"
                                              "    instances: [\"" +
                                                  up_->url() +
                                                  "\"]\n"
                                                  "    tls: {ca_file: \"" +
                                                  pki_.ca_cert +
                                                  "\"}\n"
                                                  "    health_check: {path: /echo/hc}\n"
                                                  "  bad:\n"
                                                  "    instances: [\"" +
                                                  up_->url() +
                                                  "\"]\n"
                                                  "    health_check: {type: tcp}\n")};
  sb_ = std::make_unique<Switchboard>(std::move(options));
  ASSERT_TRUE(sb_->started()) << sb_->error();
  HttpClient c(sb_->port());
  const auto deadline = std::chrono::steady_clock::now() + scaled(std::chrono::seconds(10));
  Response good, bad;
  while (std::chrono::steady_clock::now() < deadline) {
    good = c.get("/svc/good/echo");
    bad = c.get("/api/services/bad");
    if (good.status == 200 && bad.body.find("certificate verification failed") != std::string::npos)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(good.status, 200) << good.raw;
  EXPECT_NE(bad.body.find("TLS handshake: certificate verification failed"), std::string::npos)
      << bad.body;
  EXPECT_GE(up_->wait_logged("/echo/hc", 2), 2u);  // rise 2: the HTTP check went over TLS
  expect_problem(c.get("/svc/bad/echo"), 503);
}

}  // namespace
}  // namespace sb::testing
