#include "core/config_text.hpp"

#include <fmt/format.h>

#include <boost/url/ipv4_address.hpp>
#include <boost/url/ipv6_address.hpp>
#include <boost/url/parse.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/text.hpp"

namespace sb::core {
namespace {

constexpr std::size_t kMaxReadBytes = 4u << 20;

// Splits "123unit" into the number and the unit; false when there are no leading digits.
bool split_number_unit(std::string_view text, std::uint64_t* n, std::string_view* unit) {
  std::size_t i = 0;
  while (i < text.size() && is_digit(text[i])) ++i;
  if (!parse_digits(text.substr(0, i), n)) return false;
  *unit = text.substr(i);
  return true;
}

}  // namespace

bool valid_host_name(std::string_view h) {
  if (h.empty() || h.size() > 253 || h.front() == '-' || h.front() == '.') return false;
  bool only_digits_and_dots = true;
  for (char c : h) {
    if (!is_alnum(c) && c != '-' && c != '.' && c != '_') return false;
    if (!is_digit(c) && c != '.') only_digits_and_dots = false;
  }
  return !only_digits_and_dots;
}

bool valid_ipv4(std::string_view h) {
  return static_cast<bool>(boost::urls::parse_ipv4_address(h));
}
bool valid_ipv6(std::string_view h) {
  return static_cast<bool>(boost::urls::parse_ipv6_address(h));
}

std::optional<std::string> read_file(const std::string& path, std::string* why) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    *why = std::strerror(errno);
    return std::nullopt;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    *why = "not a regular file";
    ::close(fd);
    return std::nullopt;
  }
  if (static_cast<std::uint64_t>(st.st_size) > kMaxReadBytes) {
    *why = fmt::format("larger than {} MiB", kMaxReadBytes >> 20);
    ::close(fd);
    return std::nullopt;
  }
  std::string out;
  char buf[16384];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *why = std::strerror(errno);
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > kMaxReadBytes) {  // grew while we read
      *why = fmt::format("larger than {} MiB", kMaxReadBytes >> 20);
      ::close(fd);
      return std::nullopt;
    }
  }
  ::close(fd);
  return out;
}

std::optional<std::string> check_route_path(std::string_view p) {
  if (p.empty() || p.front() != '/') return fmt::format("must start with '/', got \"{}\"", p);
  for (unsigned char c : p) {
    if (c <= 0x20 || c == 0x7f || c == '?' || c == '#')
      return fmt::format("must be a plain path (no blanks, '?' or '#'), got \"{}\"", p);
  }
  return std::nullopt;
}

bool same_endpoint(const UpstreamUrl& a, const UpstreamUrl& b) {
  auto lower = [](std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  return a.tls == b.tls && a.port == b.port && a.base_path == b.base_path &&
         lower(a.host) == lower(b.host);
}

std::optional<bool> parse_env_bool(std::string_view v) {
  std::string s(v);
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (s == "true" || s == "1" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "0" || s == "no" || s == "off") return false;
  return std::nullopt;
}

std::optional<double> parse_unit_interval(std::string_view v) {
  double d = 0;
  const auto* end = v.data() + v.size();
  const auto [ptr, ec] = std::from_chars(v.data(), end, d);
  if (v.empty() || ec != std::errc() || ptr != end || !std::isfinite(d) || d < 0 || d > 1)
    return std::nullopt;
  return d;
}

std::optional<Millis> parse_duration(std::string_view text, bool bare_unit_ms) {
  std::uint64_t n = 0;
  std::string_view unit;
  if (!split_number_unit(text, &n, &unit)) return std::nullopt;
  std::uint64_t ms_per_unit;
  if (unit.empty() && bare_unit_ms)
    ms_per_unit = 1;
  else if (unit == "ms")
    ms_per_unit = 1;
  else if (unit == "s")
    ms_per_unit = 1'000;
  else if (unit == "m")
    ms_per_unit = 60'000;
  else if (unit == "h")
    ms_per_unit = 3'600'000;
  else
    return std::nullopt;
  if (n > static_cast<std::uint64_t>(std::numeric_limits<Millis::rep>::max()) / ms_per_unit)
    return std::nullopt;
  return Millis(static_cast<Millis::rep>(n * ms_per_unit));
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  std::uint64_t n = 0;
  std::string_view unit;
  if (!split_number_unit(text, &n, &unit)) return std::nullopt;
  std::uint64_t mult;
  if (unit.empty())
    mult = 1;
  else if (unit == "KiB")
    mult = kKiB;
  else if (unit == "MiB")
    mult = kMiB;
  else if (unit == "GiB")
    mult = kGiB;
  else if (unit == "TiB")
    mult = kTiB;
  else
    return std::nullopt;
  if (n > std::numeric_limits<std::uint64_t>::max() / mult) return std::nullopt;
  return n * mult;
}

std::optional<HostPort> parse_host_port(std::string_view text) {
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = text.substr(1, close - 1);
    const auto rest = text.substr(close + 1);
    if (rest.size() < 2 || rest.front() != ':' || !valid_ipv6(host)) return std::nullopt;
    port = rest.substr(1);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (!valid_ipv4(host) && !valid_host_name(host)) return std::nullopt;
  }
  std::uint64_t p = 0;
  if (!parse_digits(port, &p) || p > 65535) return std::nullopt;
  HostPort hp;
  hp.host = std::string(host);
  hp.port = static_cast<std::uint16_t>(p);
  return hp;
}

std::optional<UpstreamUrl> parse_upstream_url(std::string_view text, std::string* why,
                                              bool allow_query) {
  std::string ignored;
  if (why == nullptr) why = &ignored;
  auto parsed = boost::urls::parse_uri(text);
  if (!parsed) {
    *why = "not a URL (expected e.g. http://127.0.0.1:3000)";
    return std::nullopt;
  }
  const auto& u = *parsed;
  const auto scheme = u.scheme_id();
  if (scheme != boost::urls::scheme::http && scheme != boost::urls::scheme::https) {
    *why = "scheme must be http or https";
    return std::nullopt;
  }
  if (!u.has_authority() || u.encoded_host().empty()) {
    *why = "host required";
    return std::nullopt;
  }
  if (u.has_userinfo()) {
    *why = "user info (user@) is not allowed";
    return std::nullopt;
  }
  if (u.has_query() && !allow_query) {
    *why = "a query (?...) is not allowed";
    return std::nullopt;
  }
  if (u.has_fragment()) {
    *why = "a fragment (#...) is not allowed";
    return std::nullopt;
  }
  const std::string_view path = u.encoded_path();
  const std::string_view host = u.encoded_host_address();
  // Boost.URL 1.81 reads "http://1.2.3.4.5" as host 1.2.3.4 and path ".5".
  const bool host_ok = (path.empty() || path.front() == '/') &&
                       (u.host_type() == boost::urls::host_type::ipv4 ||
                        u.host_type() == boost::urls::host_type::ipv6 ||
                        (u.host_type() == boost::urls::host_type::name && valid_host_name(host)));
  if (!host_ok) {
    *why = "bad host";
    return std::nullopt;
  }
  UpstreamUrl out;
  out.text = std::string(text);
  out.tls = scheme == boost::urls::scheme::https;
  out.host = std::string(host);
  out.port = out.tls ? 443 : 80;
  if (u.has_port()) {
    std::uint64_t p = 0;
    if (!parse_digits(u.port(), &p) || p < 1 || p > 65535) {
      *why = "port must be between 1 and 65535";
      return std::nullopt;
    }
    out.port = static_cast<std::uint16_t>(p);
  }
  std::string_view base = path;
  while (!base.empty() && base.back() == '/') base.remove_suffix(1);
  out.base_path = std::string(base);
  if (u.has_query()) out.query = std::string(u.encoded_query());
  return out;
}

}  // namespace sb::core
