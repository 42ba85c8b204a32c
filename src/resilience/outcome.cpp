#include "resilience/outcome.hpp"

namespace sb::resilience {

const char* to_string(TransportError e) {
  switch (e) {
    case TransportError::kNone:
      return "none";
    case TransportError::kConnectFailure:
      return "connect failure";
    case TransportError::kReset:
      return "reset";
    case TransportError::kTimeout:
      return "timeout";
  }
  return "unknown";
}

}  // namespace sb::resilience
