#include "registry/sqlite_store.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace sb::registry {
namespace {

namespace fs = std::filesystem;

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "sb_sqlite_store_XXXXXX").string();
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    tmp_ = templ;
    dir_ = (tmp_ / "data").string();
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }

  std::unique_ptr<SqliteStore> open_ok() {
    std::string error;
    auto store = SqliteStore::open(dir_, &error);
    EXPECT_NE(store, nullptr) << error;
    return store;
  }
  std::string open_error() {
    std::string error;
    EXPECT_EQ(SqliteStore::open(dir_, &error), nullptr);
    return error;
  }
  std::string db_path() const { return dir_ + "/registry.sqlite3"; }

  fs::path tmp_;
  std::string dir_;
};

StoredInstance sample(std::string service = "api", std::string id = "i-1") {
  return StoredInstance{.service = std::move(service),
                        .id = std::move(id),
                        .url = "http://10.0.0.1:8080/base",
                        .zone = "eu-1a",
                        .weight = 4000000000u,
                        .metadata_json = R"({"version":"1.2.3","note":"Zürich \"q\""})",
                        .check_json = R"({"type":"http","path":"/healthz"})",
                        .ttl_ms = 30000,
                        .deadline_unix_ms = 1795952811123};
}

// Opening creates the data directory (with parents) and the database file.
TEST_F(SqliteStoreTest, OpenCreatesDirectoryAndFile) {
  dir_ = (tmp_ / "a" / "b").string();
  auto store = open_ok();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->path(), db_path());
  EXPECT_TRUE(fs::is_regular_file(db_path()));
  std::string error = "unset";
  EXPECT_TRUE(store->load_all(&error).empty());
  EXPECT_EQ(error, "unset");
}

// Every field survives put and load_all unchanged, including a weight above 2^31.
TEST_F(SqliteStoreTest, PutLoadRoundTripsEveryField) {
  auto store = open_ok();
  const StoredInstance in = sample();
  EXPECT_EQ(store->put(in), std::nullopt);
  std::string error;
  const auto rows = store->load_all(&error);
  ASSERT_EQ(rows.size(), 1u) << error;
  EXPECT_EQ(rows[0], in);
}

// Empty zone, empty check and zero TTL/deadline round-trip as empty and zero.
TEST_F(SqliteStoreTest, EmptyOptionalFieldsRoundTrip) {
  auto store = open_ok();
  const StoredInstance in{.service = "llm", .id = "x", .url = "http://llm", .weight = 0};
  ASSERT_EQ(store->put(in), std::nullopt);
  const auto rows = store->load_all(nullptr);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0], in);
}

// Putting the same (service, id) twice keeps one row holding the new values.
TEST_F(SqliteStoreTest, PutTwiceReplaces) {
  auto store = open_ok();
  ASSERT_EQ(store->put(sample()), std::nullopt);
  StoredInstance changed = sample();
  changed.url = "https://10.0.0.2";
  changed.zone = "";
  changed.weight = 1;
  changed.metadata_json = "{}";
  changed.check_json = "";
  changed.ttl_ms = 0;
  changed.deadline_unix_ms = 0;
  ASSERT_EQ(store->put(changed), std::nullopt);
  const auto rows = store->load_all(nullptr);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0], changed);
}

// Rows come back ordered by service, then id; the same id in two services is two rows.
TEST_F(SqliteStoreTest, LoadAllOrdersByServiceThenId) {
  auto store = open_ok();
  for (auto [s, i] : {std::pair{"web", "b"}, {"api", "z"}, {"web", "a"}, {"api", "b"}})
    ASSERT_EQ(store->put(sample(s, i)), std::nullopt);
  const auto rows = store->load_all(nullptr);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0].service + "/" + rows[0].id, "api/b");
  EXPECT_EQ(rows[1].service + "/" + rows[1].id, "api/z");
  EXPECT_EQ(rows[2].service + "/" + rows[2].id, "web/a");
  EXPECT_EQ(rows[3].service + "/" + rows[3].id, "web/b");
}

// remove deletes only its row; removing what is not stored succeeds and changes nothing.
TEST_F(SqliteStoreTest, Remove) {
  auto store = open_ok();
  ASSERT_EQ(store->put(sample("api", "a")), std::nullopt);
  ASSERT_EQ(store->put(sample("api", "b")), std::nullopt);
  EXPECT_EQ(store->remove("api", "a"), std::nullopt);
  EXPECT_EQ(store->remove("api", "missing"), std::nullopt);
  const auto rows = store->load_all(nullptr);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].id, "b");
}

// renew changes only the deadline; renewing what is not stored succeeds and adds nothing.
TEST_F(SqliteStoreTest, Renew) {
  auto store = open_ok();
  ASSERT_EQ(store->put(sample()), std::nullopt);
  EXPECT_EQ(store->renew("api", "i-1", 1795952900000), std::nullopt);
  EXPECT_EQ(store->renew("api", "missing", 1), std::nullopt);
  const auto rows = store->load_all(nullptr);
  ASSERT_EQ(rows.size(), 1u);
  StoredInstance expected = sample();
  expected.deadline_unix_ms = 1795952900000;
  EXPECT_EQ(rows[0], expected);
}

// A value the schema rejects is an error naming the file and the instance, and stores nothing.
TEST_F(SqliteStoreTest, RejectedWriteIsAnErrorAndRollsBack) {
  auto store = open_ok();
  StoredInstance bad = sample();
  bad.ttl_ms = -1;
  const auto error = store->put(bad);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->rfind(db_path() + ": cannot store api/i-1: ", 0), 0u) << *error;
  EXPECT_TRUE(store->load_all(nullptr).empty());
  // The store is still usable afterwards.
  EXPECT_EQ(store->put(sample()), std::nullopt);
  EXPECT_EQ(store->load_all(nullptr).size(), 1u);
}

// Rows written before closing are there after reopening, with later changes applied.
TEST_F(SqliteStoreTest, PersistsAcrossReopen) {
  {
    auto store = open_ok();
    ASSERT_EQ(store->put(sample("api", "a")), std::nullopt);
    ASSERT_EQ(store->put(sample("api", "b")), std::nullopt);
    ASSERT_EQ(store->renew("api", "a", 123), std::nullopt);
    ASSERT_EQ(store->remove("api", "b"), std::nullopt);
  }
  auto store = open_ok();
  ASSERT_NE(store, nullptr);
  const auto rows = store->load_all(nullptr);
  ASSERT_EQ(rows.size(), 1u);
  StoredInstance expected = sample("api", "a");
  expected.deadline_unix_ms = 123;
  EXPECT_EQ(rows[0], expected);
}

// A second store on the same data directory fails while the first is open, then succeeds.
TEST_F(SqliteStoreTest, SecondOpenWhileInUseFails) {
  auto first = open_ok();
  ASSERT_NE(first, nullptr);
  const std::string error = open_error();
  EXPECT_EQ(error.rfind(db_path() + ": in use by another process", 0), 0u) << error;
  first.reset();
  EXPECT_NE(open_ok(), nullptr);
}

// A file of garbage bytes is reported as not a Switchboard registry database.
TEST_F(SqliteStoreTest, CorruptFileIsAClearError) {
  fs::create_directories(dir_);
  {
    std::ofstream out(db_path(), std::ios::binary);
    for (int i = 0; i < 4096; ++i) out.put(static_cast<char>((i * 131 + 7) & 0xFF));
  }
  EXPECT_EQ(open_error(),
            db_path() + ": not a valid Switchboard registry database: file is not a database");
}

// An SQLite database of some other application is refused, not reused.
TEST_F(SqliteStoreTest, ForeignSqliteDatabaseIsRefused) {
  fs::create_directories(dir_);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path().c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE t (x)", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  const std::string error = open_error();
  EXPECT_EQ(error.rfind(db_path() + ": not a valid Switchboard registry database", 0), 0u) << error;
}

// A data directory that cannot be created (a path under a regular file) is a clear error;
// tests run as root, so a permission-denied directory would not fail.
TEST_F(SqliteStoreTest, UncreatableDirectoryIsAClearError) {
  std::ofstream(tmp_ / "file") << "x";
  dir_ = (tmp_ / "file" / "sub").string();
  EXPECT_EQ(open_error(), dir_ + ": cannot create the data directory: Not a directory");
}

// A data directory path that names a regular file is a clear error too.
TEST_F(SqliteStoreTest, DataDirIsAFile) {
  std::ofstream(tmp_ / "file") << "x";
  dir_ = (tmp_ / "file").string();
  EXPECT_EQ(open_error(), dir_ + ": cannot create the data directory: Not a directory");
}

// A database whose schema version is above ours names both versions.
TEST_F(SqliteStoreTest, NewerSchemaVersionIsRefused) {
  open_ok().reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path().c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  EXPECT_EQ(open_error(), db_path() +
                              ": written by a newer Switchboard (schema 99, this one reads " +
                              std::to_string(SqliteStore::kSchemaVersion) + ")");
}

// The database is in WAL mode with the Switchboard application id and schema version.
TEST_F(SqliteStoreTest, FileHasWalModeAndVersion) {
  open_ok().reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path().c_str(), &db), SQLITE_OK);
  const auto pragma = [&](const char* sql) {
    sqlite3_stmt* stmt = nullptr;
    std::string out;
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW)
      out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    return out;
  };
  EXPECT_EQ(pragma("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(pragma("PRAGMA user_version"), std::to_string(SqliteStore::kSchemaVersion));
  EXPECT_EQ(pragma("PRAGMA application_id"), std::to_string(SqliteStore::kApplicationId));
  sqlite3_close(db);
}

}  // namespace
}  // namespace sb::registry

namespace sb::registry {
namespace {

// A version-1 database (no registered_unix_ms column) is migrated in place on open and
// keeps its rows.
TEST(SqliteStoreMigrationTest, MigratesSchemaOneToTwo) {
  char tmpl[] = "/tmp/sb-store-mig-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const std::string path = dir + "/registry.sqlite3";
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  const char* v1 =
      "CREATE TABLE instances (service TEXT NOT NULL, id TEXT NOT NULL, url TEXT NOT NULL, "
      "zone TEXT NOT NULL, weight INTEGER NOT NULL, metadata_json TEXT NOT NULL, check_json TEXT "
      "NOT NULL, ttl_ms INTEGER NOT NULL, deadline_unix_ms INTEGER NOT NULL, PRIMARY KEY "
      "(service, id)) WITHOUT ROWID;"
      "INSERT INTO instances VALUES ('s','i','http://h:1','',1,'{}','',0,0);"
      "PRAGMA application_id = 1400324708; PRAGMA user_version = 1;";
  ASSERT_EQ(sqlite3_exec(db, v1, nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  std::string error;
  auto store = SqliteStore::open(dir, &error);
  ASSERT_NE(store, nullptr) << error;
  auto rows = store->load_all(&error);
  ASSERT_EQ(rows.size(), 1u) << error;
  EXPECT_EQ(rows[0].url, "http://h:1");
  EXPECT_EQ(rows[0].registered_unix_ms, 0);
  StoredInstance again = rows[0];
  again.registered_unix_ms = 1234;
  ASSERT_FALSE(store->put(again).has_value());
  EXPECT_EQ(store->load_all(&error).at(0).registered_unix_ms, 1234);
  store.reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sb::registry
