#include "gateway/gateway.hpp"

#include <sys/resource.h>

#include <signal.h>

#include <cerrno>
#include <cstdlib>
#include <ctime>

#include <boost/asio/thread_pool.hpp>

#include "core/logging.hpp"

#ifndef SB_VERSION
#define SB_VERSION "0.0.0"
#endif
#ifndef SB_COMMIT
#define SB_COMMIT "unknown"
#endif
#include "gateway/api_access.hpp"
#include "gateway/guards.hpp"
#include "gateway/health_checker.hpp"
#include "gateway/metrics.hpp"
#include "gateway/proxy.hpp"
#include "gateway/webhooks.hpp"
#include "http/exchange.hpp"
#include "http/server.hpp"
#include "http/upstream.hpp"
#include "registry/registry.hpp"
#include "registry/sqlite_store.hpp"
#include "telemetry/metrics.hpp"

namespace sb::gateway {
namespace {

sigset_t shutdown_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

// Waits up to `timeout` for SIGTERM/SIGINT; returns the signal or 0.
int wait_signal(std::chrono::nanoseconds timeout) {
  const sigset_t set = shutdown_signals();
  if (timeout < std::chrono::nanoseconds::zero()) timeout = std::chrono::nanoseconds::zero();
  timespec ts{static_cast<time_t>(timeout.count() / 1'000'000'000),
              static_cast<long>(timeout.count() % 1'000'000'000)};
  for (;;) {
    const int sig = sigtimedwait(&set, nullptr, &ts);
    if (sig > 0) return sig;
    if (errno == EINTR) continue;
    return 0;  // EAGAIN: timed out
  }
}

[[noreturn]] void exit_now(int sig) {
  spdlog::warn("second signal ({}) during drain: exiting now", strsignal(sig));
  spdlog::default_logger()->flush();
  std::_Exit(1);
}

}  // namespace

Gateway::Gateway(core::Config config, core::Clock& clock, std::string data_dir)
    : config_(std::move(config)),
      clock_(clock),
      router_(config_.services, config_.routes),
      data_dir_(std::move(data_dir)),
      api_access_(std::make_unique<ApiAccess>(
          ApiAccess::Settings{config_.api, config_.server.admin_listen.has_value()})),
      // Shard 0 for the threads that are not workers, one per worker after it.
      telemetry_(std::make_unique<telemetry::Registry>(telemetry::RegistryOptions{
          std::max(1u, config_.server.threads) + 1, config_.telemetry.series_limit,
          config_.telemetry.series_idle_ttl})),
      metrics_(std::make_unique<GatewayMetrics>(*telemetry_, config_.telemetry)) {
  telemetry::register_process_metrics(*telemetry_, SB_VERSION, SB_COMMIT);
}

Gateway::~Gateway() {
  if (checker_) checker_->stop();
  if (webhooks_) webhooks_->stop();
  if (server_) server_->stop();
  stop_registry_writer();
}

void Gateway::stop_registry_writer() {
  if (scraper_) {
    scraper_->stop();
    scraper_->join();
    scraper_.reset();
  }
  if (!registry_writer_) return;
  registry_writer_->stop();
  registry_writer_->join();
  registry_writer_.reset();
}

const std::shared_ptr<boost::asio::ssl::context>& Gateway::tls_context_for(
    std::string_view service) const {
  const auto it = tls_contexts_.find(service);
  return it != tls_contexts_.end() ? it->second : default_tls_;
}

std::optional<std::string> Gateway::prepare() {
  // Every client connection, pooled upstream connection and kept health-check connection
  // is a descriptor: take the whole hard limit rather than the soft default (often 1024).
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    const rlim_t was = files.rlim_cur;
    files.rlim_cur = files.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &files) == 0)
      spdlog::debug("open files limit raised from {} to {}", was, files.rlim_cur);
  }
  tls_contexts_.clear();
  std::string error;
  default_tls_ = http::make_client_tls_context(config_.upstream.tls, &error);
  if (!default_tls_) return "upstream." + error;
  for (const auto& s : config_.services) {
    auto ctx = http::make_client_tls_context(s.tls, &error);
    if (!ctx) return "services." + s.name + "." + error;
    tls_contexts_.emplace(s.name, std::move(ctx));
  }
  if (!data_dir_.empty()) {
    store_ = registry::SqliteStore::open(data_dir_, &error);
    if (!store_) return error;
  }
  http::ServerSettings settings{config_.server.listen, config_.server.admin_listen,
                                config_.server.threads, config_.limits};
  // Room to keep request bodies whole for retries: the largest retry.max_replay_body of any
  // service or route (services registered through the API get the defaults).
  std::uint64_t replay = core::RetryConfig{}.max_replay_body;
  for (const auto& s : config_.services) replay = std::max(replay, s.policy.retry.max_replay_body);
  for (const auto& r : config_.routes)
    if (r.policy) replay = std::max(replay, r.policy->retry.max_replay_body);
  settings.replay_body_max = static_cast<std::size_t>(replay);
  settings.merge_slashes = config_.server.merge_slashes;
  if (config_.telemetry.prometheus_exporter && config_.telemetry.prometheus_port != 0)
    settings.metrics_listen =
        core::HostPort{config_.server.listen.host, config_.telemetry.prometheus_port};
  server_ = std::make_unique<http::Server>(
      settings, clock_, [this](http::Worker& w) { return make_proxy_handler(*this, w); });
  return std::nullopt;
}

std::optional<std::string> Gateway::bind() { return server_->bind(); }

std::optional<std::string> Gateway::open_registry() {
  // Switchboard registers itself, at the address it really listens on.
  core::UpstreamUrl self;
  self.host = server_->proxy_address().host;
  self.port = server_->proxy_address().port;
  self.text = "http://" + server_->proxy_address().str();
  registry_ = std::make_unique<registry::Registry>(config_, clock_, store_.get(), self);
  guards_ = std::make_unique<Guards>(*registry_);
  control_metrics_ = std::make_unique<ControlMetrics>(*metrics_, *registry_, *guards_,
                                                      config_.health.metrics_collection_interval);
  if (auto err = registry_->load()) return err;
  drop_disallowed_registrations();
  return std::nullopt;
}

void Gateway::drop_disallowed_registrations() {
  // Registrations kept in the data directory follow today's api.allowed_networks: a range
  // taken out of it, or a registration kept by a version that did not check, must not get
  // traffic. A name that does not resolve now is kept (DNS may not be up yet at boot).
  const auto snap = registry_->snapshot();
  for (const auto& s : snap->services) {
    for (const auto& i : s.instances) {
      if (i.source != core::Source::kApi) continue;
      const auto refused = api_access_->check_destination(i.config.url);
      if (!refused) continue;
      if (refused->status != 403) {
        spdlog::warn("registry: keeping stored registration {}/{} ({}) unchecked: {}", s.name, i.id,
                     i.config.url.text, refused->detail);
        continue;
      }
      spdlog::warn("registry: dropping stored registration {}/{} ({}): {}", s.name, i.id,
                   i.config.url.text, refused->detail);
      if (auto err = registry_->remove(s.name, i.id))
        spdlog::warn("registry: could not drop {}/{}: {}", s.name, i.id, err->detail);
    }
  }
}

void Gateway::start() {
  // Block the shutdown signals before the workers exist so that every thread inherits the
  // mask and only run_until_signalled() receives them. SIGPIPE is ignored: a closed stdout
  // must not kill the process.
  const sigset_t set = shutdown_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  started_at_ = clock_.steady_now();
  checker_ = std::make_unique<HealthChecker>(
      *registry_, clock_, [this](std::string_view service) { return tls_context_for(service); },
      config_.health.max_concurrent_checks, metrics_.get());
  checker_->start();
  webhooks_ = std::make_unique<WebhookDispatcher>(*registry_, clock_, config_.webhooks,
                                                  default_tls_, config_.upstream.tls, SB_VERSION);
  webhooks_->start();
  registry_writer_ = std::make_unique<boost::asio::thread_pool>(1);
  scraper_ = std::make_unique<boost::asio::thread_pool>(1);
  server_->start();
  const auto admin = server_->admin_address();
  const auto metrics = server_->metrics_address();
  spdlog::info("switchboard listening on proxy={}{}{}{}{} workers={} services={}",
               server_->proxy_address().str(), admin ? " admin=" : "", admin ? admin->str() : "",
               metrics ? " metrics=" : "", metrics ? metrics->str() : "", server_->workers().size(),
               registry_->snapshot()->services.size());
  if (!api_access_->has_token())
    spdlog::warn(
        "api.token is not set: registry API writes (register, heartbeat, deregister, breaker "
        "actions) are accepted from loopback clients only");
}

int Gateway::run_until_signalled() {
  // This thread is the control loop until a signal comes: TTL expiry runs here.
  int sig = 0;
  while ((sig = wait_signal(std::chrono::milliseconds(250))) == 0) {
    registry_->expire();
    guards_->tick(clock_.steady_now());           // outlier analysis, forgotten guards
    control_metrics_->tick(clock_.steady_now());  // event counters, status windows, idle series
  }
  spdlog::info("{} received: draining (delay {} ms, timeout {} ms)", strsignal(sig),
               config_.drain.delay.count(), config_.drain.timeout.count());
  server_->begin_drain();

  // Listeners stay open for drain.delay so that load balancers see readiness fail first.
  const auto delay_end = clock_.steady_now() + config_.drain.delay;
  while (clock_.steady_now() < delay_end) {
    if (int again = wait_signal(delay_end - clock_.steady_now())) exit_now(again);
  }
  return drain_and_stop();
}

int Gateway::drain_and_stop() {
  if (checker_) checker_->stop();
  server_->begin_drain();
  server_->stop_accepting();
  const auto deadline = clock_.steady_now() + config_.drain.timeout;
  int status = 0;
  while (server_->connections() > 0) {
    if (clock_.steady_now() >= deadline) {
      // Connections with no request in flight were closed when the listeners closed; what
      // is left is cut, and the exit says so only when that cut a request.
      const std::uint32_t cut = server_->in_flight();
      spdlog::warn("drain timeout ({} ms): cutting {} connection(s), {} request(s) in flight",
                   config_.drain.timeout.count(), server_->connections(), cut);
      status = cut > 0 ? 1 : 0;
      break;
    }
    if (int again = wait_signal(std::chrono::milliseconds(20))) exit_now(again);
  }
  server_->stop();
  stop_registry_writer();
  // Events still queued for webhooks are not sent: a dead sink must not hold up the exit.
  if (webhooks_) webhooks_->stop();
  if (status == 0) spdlog::info("drained: every request finished; exiting");
  return status;
}

}  // namespace sb::gateway
