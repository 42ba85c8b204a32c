#include "registry/sqlite_store.hpp"

#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <system_error>
#include <utility>

namespace sb::registry {

namespace {

constexpr const char* kCreateSchema = R"sql(
CREATE TABLE instances (
  service          TEXT    NOT NULL,
  id               TEXT    NOT NULL,
  url              TEXT    NOT NULL,
  zone             TEXT    NOT NULL,
  weight           INTEGER NOT NULL CHECK (weight BETWEEN 0 AND 4294967295),
  metadata_json    TEXT    NOT NULL,
  check_json       TEXT    NOT NULL,
  ttl_ms           INTEGER NOT NULL CHECK (ttl_ms >= 0),
  deadline_unix_ms INTEGER NOT NULL CHECK (deadline_unix_ms >= 0),
  registered_unix_ms INTEGER NOT NULL DEFAULT 0 CHECK (registered_unix_ms >= 0),
  PRIMARY KEY (service, id)
) WITHOUT ROWID;
)sql";

constexpr const char* kPut = R"sql(
INSERT INTO instances
  (service, id, url, zone, weight, metadata_json, check_json, ttl_ms, deadline_unix_ms,
   registered_unix_ms)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
ON CONFLICT (service, id) DO UPDATE SET
  url = excluded.url, zone = excluded.zone, weight = excluded.weight,
  metadata_json = excluded.metadata_json, check_json = excluded.check_json,
  ttl_ms = excluded.ttl_ms, deadline_unix_ms = excluded.deadline_unix_ms,
  registered_unix_ms = excluded.registered_unix_ms
)sql";

constexpr const char* kRemove = "DELETE FROM instances WHERE service = ?1 AND id = ?2";
constexpr const char* kRenew =
    "UPDATE instances SET deadline_unix_ms = ?3 WHERE service = ?1 AND id = ?2";
constexpr const char* kLoadAll =
    "SELECT service, id, url, zone, weight, metadata_json, check_json, ttl_ms, deadline_unix_ms, "
    "registered_unix_ms FROM instances ORDER BY service, id";

void bind_text(sqlite3_stmt* stmt, int index, std::string_view text) {
  // SQLITE_STATIC: the caller's strings outlive the statement's step and reset.
  sqlite3_bind_text64(stmt, index, text.data(), text.size(), SQLITE_STATIC, SQLITE_UTF8);
}

std::string column_text(sqlite3_stmt* stmt, int index) {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, index));
  if (text == nullptr) return {};
  return std::string(text, static_cast<std::size_t>(sqlite3_column_bytes(stmt, index)));
}

/// Runs a statement that returns at most one integer (a PRAGMA or a count).
int query_int(sqlite3* db, const char* sql, int* out) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr);
  if (rc != SQLITE_OK) return rc;
  rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) *out = sqlite3_column_int(stmt, 0);
  if (rc == SQLITE_ROW || rc == SQLITE_DONE) rc = SQLITE_OK;
  sqlite3_finalize(stmt);  // keeps the step's error message for sqlite3_errmsg()
  return rc;
}

/// Runs a statement that returns at most one text value (e.g. PRAGMA journal_mode=WAL).
int query_text(sqlite3* db, const char* sql, std::string* out) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr);
  if (rc != SQLITE_OK) return rc;
  rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) *out = column_text(stmt, 0);
  if (rc == SQLITE_ROW || rc == SQLITE_DONE) rc = SQLITE_OK;
  sqlite3_finalize(stmt);
  return rc;
}

}  // namespace

SqliteStore::SqliteStore(std::string path) : path_(std::move(path)) {}

SqliteStore::~SqliteStore() {
  for (sqlite3_stmt* stmt : {begin_, commit_, rollback_, put_, remove_, renew_, load_all_})
    sqlite3_finalize(stmt);  // null is a no-op
  sqlite3_close_v2(db_);     // null is a no-op
}

std::string SqliteStore::failure(std::string_view what) const {
  std::string out = path_;
  out += ": ";
  out += what;
  out += ": ";
  out += db_ != nullptr ? sqlite3_errmsg(db_) : "out of memory";
  return out;
}

std::unique_ptr<SqliteStore> SqliteStore::open(const std::string& data_dir, std::string* error) {
  const auto fail = [&](std::string message) -> std::unique_ptr<SqliteStore> {
    if (error != nullptr) *error = std::move(message);
    return nullptr;
  };

  namespace fs = std::filesystem;
  const fs::path dir = data_dir.empty() ? fs::path(".") : fs::path(data_dir);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!ec && !fs::is_directory(dir, ec) && !ec)
    ec = std::make_error_code(std::errc::not_a_directory);
  if (ec) return fail(dir.string() + ": cannot create the data directory: " + ec.message());

  // SQLite would only say "unable to open database file" (it retries read-only and reports
  // that attempt's error), so name the real reason first.
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    return fail(dir.string() +
                ": the data directory is not writable: " + std::generic_category().message(errno));

  std::unique_ptr<SqliteStore> store(new SqliteStore((dir / kFileName).string()));
  const std::string& path = store->path_;
  // NOMUTEX: the connection has one owner thread (see the class comment).
  int rc =
      sqlite3_open_v2(path.c_str(), &store->db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) return fail(store->failure("cannot open the registry database"));
  sqlite3* db = store->db_;
  sqlite3_extended_result_codes(db, 1);
  if (sqlite3_db_readonly(db, "main") == 1)
    return fail(path + ": cannot open the registry database for writing: it is read-only");

  // Sorts a setup failure into what a person can act on.
  const auto setup_failure = [&](std::string_view what) {
    switch (sqlite3_errcode(db) & 0xFF) {
      case SQLITE_NOTADB:
      case SQLITE_CORRUPT:
        return fail(store->failure("not a valid Switchboard registry database"));
      case SQLITE_BUSY:
      case SQLITE_LOCKED:
        return fail(store->failure(
            "in use by another process (another Switchboard with the same data directory?)"));
      default:
        return fail(store->failure(what));
    }
  };

  // EXCLUSIVE before WAL: WAL then needs no shared-memory file, and the connection keeps
  // its file lock until closed, so a second process on this data directory cannot start.
  if (sqlite3_exec(db, "PRAGMA locking_mode = EXCLUSIVE", nullptr, nullptr, nullptr) != SQLITE_OK)
    return setup_failure("cannot open the registry database");
  std::string journal_mode;
  if (query_text(db, "PRAGMA journal_mode = WAL", &journal_mode) != SQLITE_OK)
    return setup_failure("cannot switch the registry database to WAL mode");
  // A filesystem that refuses WAL leaves the rollback journal, which is as durable with
  // synchronous=FULL; only concurrent readers would be slower, and there are none.
  // synchronous=FULL: a commit is on disk (WAL fsynced) before the API answers 2xx.
  if (sqlite3_exec(db, "PRAGMA synchronous = FULL", nullptr, nullptr, nullptr) != SQLITE_OK)
    return setup_failure("cannot open the registry database");
  if (sqlite3_exec(db, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr) != SQLITE_OK)
    return setup_failure("cannot lock the registry database");

  int application_id = 0;
  int version = 0;
  int tables = 0;
  if (query_int(db, "PRAGMA application_id", &application_id) != SQLITE_OK ||
      query_int(db, "PRAGMA user_version", &version) != SQLITE_OK ||
      query_int(db, "SELECT count(*) FROM sqlite_schema", &tables) != SQLITE_OK)
    return setup_failure("cannot read the registry database");

  const bool fresh = application_id == 0 && version == 0 && tables == 0;
  if (fresh) {
    const std::string create = std::string(kCreateSchema) +
                               "PRAGMA application_id = " + std::to_string(kApplicationId) +
                               "; PRAGMA user_version = " + std::to_string(kSchemaVersion) + ";";
    if (sqlite3_exec(db, create.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK)
      return setup_failure("cannot create the registry schema");
  } else if (application_id != kApplicationId) {
    return fail(path +
                ": not a valid Switchboard registry database: it is an SQLite database of "
                "another application");
  } else if (version > kSchemaVersion) {
    return fail(path + ": written by a newer Switchboard (schema " + std::to_string(version) +
                ", this one reads " + std::to_string(kSchemaVersion) + ")");
  } else if (version < 1) {
    return fail(path + ": not a valid Switchboard registry database: schema version " +
                std::to_string(version));
  }
  // Migrations from older schema versions, inside this transaction.
  if (!fresh && version == 1 &&
      sqlite3_exec(db,
                   "ALTER TABLE instances ADD COLUMN registered_unix_ms INTEGER NOT NULL "
                   "DEFAULT 0 CHECK (registered_unix_ms >= 0); PRAGMA user_version = 2;",
                   nullptr, nullptr, nullptr) != SQLITE_OK)
    return setup_failure("cannot migrate the registry schema from version 1");
  if (sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK)
    return setup_failure("cannot create the registry schema");

  // Finds damage now, as a startup error, rather than on some later write. The registry is
  // small (thousands of rows), so this takes milliseconds.
  std::string check;
  if (query_text(db, "PRAGMA quick_check(1)", &check) != SQLITE_OK)
    return setup_failure("cannot check the registry database");
  if (check != "ok") return fail(path + ": not a valid Switchboard registry database: " + check);

  const std::pair<sqlite3_stmt**, const char*> statements[] = {
      {&store->begin_, "BEGIN IMMEDIATE"}, {&store->commit_, "COMMIT"},
      {&store->rollback_, "ROLLBACK"},     {&store->put_, kPut},
      {&store->remove_, kRemove},          {&store->renew_, kRenew},
      {&store->load_all_, kLoadAll}};
  for (const auto& [stmt, sql] : statements) {
    // SQLITE_PREPARE_PERSISTENT: these live as long as the connection.
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, stmt, nullptr) != SQLITE_OK)
      return fail(store->failure("not a valid Switchboard registry database"));
  }
  return store;
}

std::optional<std::string> SqliteStore::write(std::string_view what, sqlite3_stmt* stmt) {
  std::optional<std::string> result;
  if (sqlite3_step(begin_) != SQLITE_DONE) {
    result = failure(what);
    sqlite3_reset(begin_);
  } else {
    sqlite3_reset(begin_);
    if (sqlite3_step(stmt) != SQLITE_DONE) {
      result = failure(what);
    } else if (sqlite3_step(commit_) != SQLITE_DONE) {
      result = failure(what);
    }
    sqlite3_reset(commit_);
    if (result && sqlite3_get_autocommit(db_) == 0) {
      sqlite3_step(rollback_);
      sqlite3_reset(rollback_);
    }
  }
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  return result;
}

std::optional<std::string> SqliteStore::put(const StoredInstance& instance) {
  bind_text(put_, 1, instance.service);
  bind_text(put_, 2, instance.id);
  bind_text(put_, 3, instance.url);
  bind_text(put_, 4, instance.zone);
  sqlite3_bind_int64(put_, 5, instance.weight);
  bind_text(put_, 6, instance.metadata_json);
  bind_text(put_, 7, instance.check_json);
  sqlite3_bind_int64(put_, 8, instance.ttl_ms);
  sqlite3_bind_int64(put_, 9, instance.deadline_unix_ms);
  sqlite3_bind_int64(put_, 10, instance.registered_unix_ms);
  return write("cannot store " + instance.service + "/" + instance.id, put_);
}

std::optional<std::string> SqliteStore::remove(std::string_view service, std::string_view id) {
  bind_text(remove_, 1, service);
  bind_text(remove_, 2, id);
  return write("cannot remove " + std::string(service) + "/" + std::string(id), remove_);
}

std::optional<std::string> SqliteStore::renew(std::string_view service, std::string_view id,
                                              std::int64_t deadline_unix_ms) {
  bind_text(renew_, 1, service);
  bind_text(renew_, 2, id);
  sqlite3_bind_int64(renew_, 3, deadline_unix_ms);
  return write("cannot renew " + std::string(service) + "/" + std::string(id), renew_);
}

std::vector<StoredInstance> SqliteStore::load_all(std::string* error) {
  std::vector<StoredInstance> out;
  int rc;
  while ((rc = sqlite3_step(load_all_)) == SQLITE_ROW) {
    StoredInstance row;
    row.service = column_text(load_all_, 0);
    row.id = column_text(load_all_, 1);
    row.url = column_text(load_all_, 2);
    row.zone = column_text(load_all_, 3);
    // The schema's CHECK keeps weight within 0..2^32-1.
    row.weight = static_cast<std::uint32_t>(sqlite3_column_int64(load_all_, 4));
    row.metadata_json = column_text(load_all_, 5);
    row.check_json = column_text(load_all_, 6);
    row.ttl_ms = sqlite3_column_int64(load_all_, 7);
    row.registered_unix_ms = sqlite3_column_int64(load_all_, 9);
    row.deadline_unix_ms = sqlite3_column_int64(load_all_, 8);
    out.push_back(std::move(row));
  }
  if (rc != SQLITE_DONE) {
    if (error != nullptr) *error = failure("cannot read the registry");
    out.clear();
  }
  sqlite3_reset(load_all_);
  return out;
}

}  // namespace sb::registry
