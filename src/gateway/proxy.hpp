// The per-worker proxy handler: operations endpoints, routing, and forwarding to upstream
// instances over the worker's own keep-alive pools. Internal to the gateway.
#pragma once

#include <memory>

namespace sb::http {
class Handler;
class Worker;
}  // namespace sb::http

namespace sb::gateway {

class Gateway;

std::unique_ptr<http::Handler> make_proxy_handler(Gateway& gateway, http::Worker& worker);

}  // namespace sb::gateway
