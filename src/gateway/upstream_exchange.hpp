// One upstream exchange: a request sent on a connection and the final response head read
// back (interim 1xx heads dropped; a small Content-Length body read whole with its head).
// The same code serves a request's attempts and its hedge; what bounds the waits is the
// caller's (an AttemptWatch). Internal to the gateway.
#pragma once

#include <memory>
#include <string>

#include "core/clock.hpp"
#include "gateway/answers.hpp"
#include "gateway/plan.hpp"
#include "http/exchange.hpp"
#include "http/upstream.hpp"

namespace sb::gateway {

/// How one attempt on an upstream ended, with what it holds.
struct Try {
  AttemptKind kind = AttemptKind::kReset;
  http::AcquireError acquire = http::AcquireError::kNone;
  const char* why = nullptr;
  std::string detail;
  std::unique_ptr<http::UpstreamConnection> conn;
  http::ResponseInfo info;  // kResponse: the head's framing and fields to drop

  AttemptFailure failure() const { return AttemptFailure{kind, acquire, why, detail}; }
  /// What the plan learns from it (the status, and a 429/503's Retry-After).
  AttemptEnd end() const;
  /// The response's status (0 when there is none).
  int status() const { return kind == AttemptKind::kResponse ? conn->head().status : 0; }
};

/// Bounds an exchange's waits on the upstream. The request's attempts arm the client
/// exchange's deadline timer; a hedge has a timer of its own that closes its socket.
class AttemptWatch {
 public:
  virtual ~AttemptWatch() = default;
  virtual void arm(http::Socket& socket, core::SteadyTime until) = 0;
  virtual void disarm() = 0;
  /// Whether the deadline ended the last wait.
  virtual bool fired() const = 0;
};

/// The client exchange's own deadline timer (one socket at a time).
class ExchangeWatch final : public AttemptWatch {
 public:
  explicit ExchangeWatch(http::Exchange& ex) : ex_(ex) {}
  void arm(http::Socket& socket, core::SteadyTime until) override {
    ex_.arm(socket, until, http::TimeoutKind::kUpstreamResponse);
  }
  void disarm() override { ex_.disarm(); }
  bool fired() const override { return ex_.fired() == http::TimeoutKind::kUpstreamResponse; }

 private:
  http::Exchange& ex_;
};

/// What one exchange sends: the head, then (with_body) the client's request body, read as
/// it comes. The response head must come within `per_try` of the request's end, and
/// before `deadline`.
struct ExchangeRequest {
  const http::HeadBuffer& head;
  bool with_body = true;
  core::SteadyTime started;  // the attempt's start (the clock is not read again unless
                             // the body had to be waited for)
  core::Duration per_try;
  core::SteadyTime deadline;
};

/// Sends the request on `conn` and reads the final response head into conn's buffer. A
/// client body that fails is answered into ex.scratch() (kClient). `why` says what was
/// malformed (kBadResponse).
http::Task<AttemptKind> exchange(http::Exchange& ex, RequestOutcome& out,
                                 http::UpstreamConnection& conn, const ExchangeRequest& req,
                                 AttemptWatch& watch, core::Clock& clock, const char*& why,
                                 http::ResponseInfo& ri);

}  // namespace sb::gateway
