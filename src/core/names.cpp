#include "core/names.hpp"

#include "core/text.hpp"

namespace sb::core {

ServiceNameProblem service_name_problem(std::string_view name) {
  if (name.empty() || name.size() > 63) return ServiceNameProblem::kLength;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || is_digit(c) || c == '-'))
      return ServiceNameProblem::kCharacters;
  }
  if (name == "status" || name == "events") return ServiceNameProblem::kReserved;
  return ServiceNameProblem::kNone;
}

bool valid_zone(std::string_view zone) {
  if (zone.size() > 63) return false;
  for (char c : zone)
    if (!is_alnum(c) && c != '-' && c != '_' && c != '.') return false;
  return true;
}

}  // namespace sb::core
