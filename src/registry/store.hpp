// The registry's persistent store: where API registrations and their TTL deadlines are kept
// so that they survive a restart. SQLite (sqlite_store.hpp) by default; an etcd-backed store,
// shared by several Switchboard replicas, can implement the same interface later.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sb::registry {

/// One instance registered through the API, as stored. The registry owns validation; the
/// store keeps the values as given (JSON fields as serialized text).
struct StoredInstance {
  std::string service{};
  std::string id{};
  std::string url{};
  std::string zone{};  ///< empty when none
  std::uint32_t weight = 1;
  std::string metadata_json = "{}";     ///< serialized JSON object
  std::string check_json{};             ///< serialized JSON object, empty when no check
  std::int64_t ttl_ms = 0;              ///< 0: no TTL
  std::int64_t deadline_unix_ms = 0;    ///< TTL deadline in Unix milliseconds, 0: none
  std::int64_t registered_unix_ms = 0;  ///< when it was (re)registered, 0: unknown

  friend bool operator==(const StoredInstance&, const StoredInstance&) = default;
};

/// Durable storage of API registrations. A call returns only once its change is durable,
/// so the API can answer 2xx after it. Errors are returned as messages for people (they
/// name the file and the reason); nullopt means success.
///
/// Implementations need not be thread-safe: the registry's control thread owns the store.
class RegistryStore {
 public:
  virtual ~RegistryStore() = default;

  /// Inserts or replaces the instance keyed by (service, id).
  virtual std::optional<std::string> put(const StoredInstance& instance) = 0;
  /// Removes (service, id). Removing what is not stored is not an error.
  virtual std::optional<std::string> remove(std::string_view service, std::string_view id) = 0;
  /// Sets the TTL deadline of (service, id). Renewing what is not stored is not an error
  /// (the registry's memory is authoritative; it only renews what it holds).
  virtual std::optional<std::string> renew(std::string_view service, std::string_view id,
                                           std::int64_t deadline_unix_ms) = 0;
  /// Every stored instance, ordered by (service, id). On failure sets *error (when not
  /// null) and returns an empty vector.
  virtual std::vector<StoredInstance> load_all(std::string* error) = 0;
};

}  // namespace sb::registry
