#include "core/config.hpp"

#include <fmt/format.h>

namespace sb::core {

std::string HostPort::str() const {
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

std::string UpstreamUrl::authority() const {
  const bool default_port = (tls && port == 443) || (!tls && port == 80);
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return default_port ? h : fmt::format("{}:{}", h, port);
}

const char* to_string(Source s) {
  switch (s) {
    case Source::kDefault:
      return "default";
    case Source::kFile:
      return "config";
    case Source::kEnvironment:
      return "env";
    case Source::kCommandLine:
      return "cli";
    case Source::kApi:
      return "api";
  }
  return "unknown";
}

const ServiceConfig* Config::find_service(std::string_view name) const {
  for (const auto& s : services)
    if (s.name == name) return &s;
  return nullptr;
}

}  // namespace sb::core
