// The rules for names that config files, the environment, the command line and the
// registration API all accept: service names and zones. One copy, so a name the config
// accepts is one the API accepts and the other way round; each caller words its message.
#pragma once

#include <cstdint>
#include <string_view>

namespace sb::core {

/// What is wrong with a service name.
enum class ServiceNameProblem : std::uint8_t {
  kNone,        // a valid name
  kLength,      // empty or longer than 63
  kCharacters,  // a character outside a-z, 0-9, '-'
  kReserved,    // "status" or "events": they are API paths (/api/services/status)
};

/// The rule, for messages: "1 to 63 characters of a-z, 0-9 and '-'".
inline constexpr std::string_view kServiceNameRule = "1 to 63 characters of a-z, 0-9 and '-'";
/// The rule, for messages: "up to 63 of A-Z, a-z, 0-9, '-', '_', '.'".
inline constexpr std::string_view kZoneRule = "up to 63 of A-Z, a-z, 0-9, '-', '_', '.'";

/// `[a-z0-9-]{1,63}`, and not a reserved name.
ServiceNameProblem service_name_problem(std::string_view name);
inline bool valid_service_name(std::string_view name) {
  return service_name_problem(name) == ServiceNameProblem::kNone;
}

/// `[A-Za-z0-9._-]{0,63}` ("" is no zone).
bool valid_zone(std::string_view zone);

}  // namespace sb::core
