// The registration and operator API on a worker: its body read, the call run on the
// registry's writer thread and answered back on the worker; and the registry's event
// stream (Server-Sent Events). Internal to the gateway.
#pragma once

#include "gateway/answers.hpp"
#include "http/exchange.hpp"

namespace sb::http {
class Worker;
}

namespace sb::gateway {

class Gateway;

/// Answers an /api/ request (the path is one: see is_api_path).
http::Task<void> answer_api(Gateway& gw, http::Worker& worker, http::Exchange& ex,
                            RequestOutcome& out);

}  // namespace sb::gateway
