// The relays: an upstream response's body to the client by its framing (Content-Length,
// chunked, until close), re-chunked for HTTP/1.1 clients when the upstream's body has no
// length. A cut upstream body (reset, error, timeout, TLS truncation) cuts the client's
// response: no last chunk, and the client connection is reset. Internal to the gateway.
#pragma once

#include <memory>

#include "core/clock.hpp"
#include "gateway/answers.hpp"
#include "gateway/view.hpp"
#include "http/exchange.hpp"
#include "http/server.hpp"
#include "http/upstream.hpp"

namespace sb::gateway {

/// True when the response's body is all in the buffer already: a Content-Length body that
/// came whole with its head.
bool whole_in_buffer(http::UpstreamConnection& conn, const http::ResponseInfo& ri);

/// The client's response head into scratch2 (the caller adds it to the batch); returns
/// whether the body is to be re-chunked.
bool start_relay(http::Exchange& ex, RequestOutcome& out, http::UpstreamConnection& conn,
                 const http::ResponseInfo& ri);

/// After a relay: the connection goes back to the pool when it is `reusable` (the
/// upstream keeps it and its message ended at the last byte read); a cut relay (`ok`
/// false) cuts the client connection too (the status is out: nothing else can tell).
void end_relay(http::Exchange& ex, const Service& svc, const Instance& inst,
               std::unique_ptr<http::UpstreamConnection> conn, bool ok, bool reusable,
               core::SteadyTime now);

/// Relays the response whose head is in conn's buffer: the head, then the body as its
/// framing says; then end_relay().
http::Task<void> relay(http::Worker& worker, http::Exchange& ex, RequestOutcome& out,
                       Service& svc, Instance& inst,
                       std::unique_ptr<http::UpstreamConnection> conn,
                       const http::ResponseInfo& ri);

}  // namespace sb::gateway
