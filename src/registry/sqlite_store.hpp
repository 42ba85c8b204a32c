// The default registry store: one SQLite file, <data_dir>/registry.sqlite3, written in WAL
// mode with synchronous=FULL so that a change is on disk before the API answers 2xx.
#pragma once

#include <memory>
#include <string>

#include "registry/store.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace sb::registry {

/// RegistryStore on SQLite. The database holds one connection for the process lifetime and
/// locks the file exclusively, so a second Switchboard on the same data directory fails to
/// start instead of silently diverging. Not thread-safe: the control thread owns it.
class SqliteStore final : public RegistryStore {
 public:
  /// The schema version this build reads and writes (PRAGMA user_version).
  static constexpr int kSchemaVersion = 2;  // 2: registered_unix_ms
  /// PRAGMA application_id of a Switchboard registry database ("SwBd").
  static constexpr int kApplicationId = 0x53774264;
  /// The database file's name inside the data directory.
  static constexpr const char* kFileName = "registry.sqlite3";

  /// Opens (creating when missing) `data_dir` and `<data_dir>/registry.sqlite3`. On failure
  /// returns null and sets *error to a message for people, e.g.
  /// "./data/registry.sqlite3: not a valid Switchboard registry database: file is not a database",
  /// "./data: cannot create the data directory: Permission denied",
  /// "./data: the data directory is not writable: Permission denied",
  /// "./data/registry.sqlite3: in use by another process (another Switchboard with the same
  /// data directory?): database is locked",
  /// "./data/registry.sqlite3: written by a newer Switchboard (schema 7, this one reads 2)".
  static std::unique_ptr<SqliteStore> open(const std::string& data_dir, std::string* error);

  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  /// The database file's path.
  const std::string& path() const { return path_; }

  // RegistryStore
  std::optional<std::string> put(const StoredInstance& instance) override;
  std::optional<std::string> remove(std::string_view service, std::string_view id) override;
  std::optional<std::string> renew(std::string_view service, std::string_view id,
                                   std::int64_t deadline_unix_ms) override;
  std::vector<StoredInstance> load_all(std::string* error) override;

 private:
  explicit SqliteStore(std::string path);

  /// Steps the bound write statement `stmt` between BEGIN IMMEDIATE and COMMIT (ROLLBACK on
  /// failure), then resets it. Returns "<path>: <what>: <reason>" on failure.
  std::optional<std::string> write(std::string_view what, sqlite3_stmt* stmt);
  /// "<path>: <what>: <sqlite's message for the last failure>".
  std::string failure(std::string_view what) const;

  std::string path_;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* begin_ = nullptr;
  sqlite3_stmt* commit_ = nullptr;
  sqlite3_stmt* rollback_ = nullptr;
  sqlite3_stmt* put_ = nullptr;
  sqlite3_stmt* remove_ = nullptr;
  sqlite3_stmt* renew_ = nullptr;
  sqlite3_stmt* load_all_ = nullptr;
};

}  // namespace sb::registry
