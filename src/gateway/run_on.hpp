// Runs a job on another thread and resumes the awaiting coroutine on its worker with what
// the job returned. Internal to the gateway (includes Asio).
#pragma once

#include <memory>
#include <type_traits>
#include <utility>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include "http/io.hpp"
#include "http/server.hpp"

namespace sb::gateway {

/// `auto [r] = co_await run_on(pool, worker, job)`. `job` must own what it uses: the
/// coroutine's frame may go (its worker stopping) while `job` runs. The answer goes back
/// through the worker's mailbox (its io_context takes no posts from other threads).
template <class Job>
auto run_on(boost::asio::thread_pool& where, http::Worker& home, Job job) {
  using Result = std::invoke_result_t<Job&>;
  return boost::asio::async_initiate<decltype(http::kUse), void(Result)>(
      [&where, &home](auto handler, Job work) {
        boost::asio::post(
            where, [handler = std::move(handler), work = std::move(work), &home]() mutable {
              // std::function wants a copyable letter; the handler is move-only.
              auto resume = std::make_shared<decltype(handler)>(std::move(handler));
              home.deliver([resume, r = work()]() mutable { std::move (*resume)(std::move(r)); });
            });
      },
      http::kUse, std::move(job));
}

}  // namespace sb::gateway
