// The Asio vocabulary of the data path: one fixed executor type (a worker's io_context),
// operations that yield [error_code, value] tuples instead of throwing, and sockets bound
// to that executor. kUse is as_tuple(deferred): `co_await op(kUse)` launches the operation
// straight from the awaiting coroutine, where use_awaitable would add a coroutine frame
// (a malloc once frames outgrow Asio's small per-thread cache) to every read and write. Internal to
// src/http and src/gateway .cpp files: keep it out of public headers so most translation units
// never see Asio.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/basic_resolver.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <span>

namespace boost::asio::detail {
class epoll_reactor;
}

namespace sb::http {

namespace asio = boost::asio;
using error_code = boost::system::error_code;
using Executor = asio::io_context::executor_type;
template <class T = void>
using Task = asio::awaitable<T, Executor>;
inline constexpr auto kUse = asio::as_tuple(asio::deferred);
using Socket = asio::basic_stream_socket<asio::ip::tcp, Executor>;
using Acceptor = asio::basic_socket_acceptor<asio::ip::tcp, Executor>;
using Buffers = std::span<const asio::const_buffer>;
using Timer = asio::basic_waitable_timer<std::chrono::steady_clock,
                                         asio::wait_traits<std::chrono::steady_clock>, Executor>;
using Resolver = asio::ip::basic_resolver<asio::ip::tcp, Executor>;
/// The io_context's epoll reactor, for recv_some (http/recv.hpp).
using Reactor = asio::detail::epoll_reactor;

/// One non-blocking write of `buffers` on `fd` (at most 64 of them; send() for one,
/// sendmsg() for more). Returns the bytes written; 0 with `failed` false when the socket
/// would block.
std::size_t send_now(int fd, Buffers buffers, bool& failed);

}  // namespace sb::http
