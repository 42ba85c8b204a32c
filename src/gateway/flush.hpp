// Writing to the client: SB_FLUSH sends the exchange's write batch, send_scratch sends a
// prepared answer. Internal to the gateway.
#pragma once

#include "http/exchange.hpp"

/// Writes the whole batch to the client (one writev unless the socket takes less);
/// `ok` becomes false when the client is gone. A macro rather than a coroutine: one
/// frame fewer per write on the hot path.
#define SB_FLUSH(ex, ok)                                                                  \
  do {                                                                                    \
    ::sb::http::WriteBatch& flush_batch_ = (ex).batch();                                  \
    bool flush_failed_ = false;                                                           \
    const std::size_t flush_now_ = (ex).write_now(flush_batch_.buffers(), flush_failed_); \
    (ex).count_sent(flush_now_);                                                          \
    flush_batch_.consume(flush_now_);                                                     \
    if (flush_failed_) ok = false;                                                        \
    while (ok && !flush_batch_.empty()) {                                                 \
      auto [flush_ec_, flush_n_] = co_await (ex).write_some(flush_batch_.buffers());      \
      (ex).count_sent(flush_n_);                                                          \
      if (flush_ec_) {                                                                    \
        ok = false;                                                                       \
        break;                                                                            \
      }                                                                                   \
      flush_batch_.consume(flush_n_);                                                     \
    }                                                                                     \
    flush_batch_.clear();                                                                 \
  } while (0)

namespace sb::gateway {

/// Sends what ex.scratch() holds; cuts the connection when the response has begun (too
/// late for a status) or there is nothing to send.
http::Task<void> send_scratch(http::Exchange& ex);

}  // namespace sb::gateway
