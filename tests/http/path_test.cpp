#include "http/path.hpp"

#include <gtest/gtest.h>

#include <string>

namespace sb::http {
namespace {

struct Normalized {
  PathError error;
  std::string path;
};

Normalized normalize(std::string s, bool merge = false) {
  std::size_t size = s.size();
  const PathError e = normalize_path(s.data(), size, merge);
  s.resize(size);
  return {e, s};
}

std::string ok(const std::string& s, bool merge = false) {
  const Normalized n = normalize(s, merge);
  EXPECT_EQ(n.error, PathError::kNone) << s;
  // The result is in normal form, and normalising it again changes nothing.
  EXPECT_TRUE(path_is_normal(n.path, merge)) << s << " -> " << n.path;
  EXPECT_EQ(normalize(n.path, merge).path, n.path) << s;
  return n.path;
}

// RFC 3986 section 5.2.4 dot-segment removal, on absolute paths.
TEST(NormalizePathTest, RemovesDotSegments) {
  EXPECT_EQ(ok("/a/b/c/./../../g"), "/a/g");  // the RFC's own example
  EXPECT_EQ(ok("/public/../admin/secret"), "/admin/secret");
  EXPECT_EQ(ok("/a/./b"), "/a/b");
  EXPECT_EQ(ok("/a/."), "/a/");
  EXPECT_EQ(ok("/a/b/.."), "/a/");
  EXPECT_EQ(ok("/a/.."), "/");
  EXPECT_EQ(ok("/."), "/");
  EXPECT_EQ(ok("/./"), "/");
  EXPECT_EQ(ok("/a/b/../c/./d/"), "/a/c/d/");
  // Not dot segments.
  EXPECT_EQ(ok("/a/.b/..c/.../b."), "/a/.b/..c/.../b.");
}

// "%2e" is "." before dot segments are looked for.
TEST(NormalizePathTest, DecodedDotsCountAsDotSegments) {
  EXPECT_EQ(ok("/public/%2e%2e/admin"), "/admin");
  EXPECT_EQ(ok("/public/%2E%2e/admin"), "/admin");
  EXPECT_EQ(ok("/public/.%2e/admin"), "/admin");
  EXPECT_EQ(ok("/a/%2e/b"), "/a/b");
  EXPECT_EQ(ok("/a/%2e%2e%2e"), "/a/...");
}

// Unreserved characters are decoded; every other escape keeps its bytes with upper-case hex.
TEST(NormalizePathTest, PercentEncodingIsNormalised) {
  EXPECT_EQ(ok("/%7euser/%41%62%30%2d%5f%2E"), "/~user/Ab0-_.");
  EXPECT_EQ(ok("/a%3ab%3Ac%20d%e2%82%ac"), "/a%3Ab%3Ac%20d%E2%82%AC");
  EXPECT_EQ(ok("/%25%2541"), "/%25%2541");  // "%25" stays: decoding it would make a new escape
  EXPECT_EQ(ok("/a%0d%0a"), "/a%0D%0A");
}

TEST(NormalizePathTest, EmptySegmentsKeptUnlessMerging) {
  EXPECT_EQ(ok("/a//b"), "/a//b");
  EXPECT_EQ(ok("//"), "//");
  EXPECT_EQ(ok("/a//.."), "/a/");  // ".." takes the empty segment
  EXPECT_EQ(ok("/a//b", true), "/a/b");
  EXPECT_EQ(ok("///a///b///", true), "/a/b/");
  EXPECT_EQ(ok("/a//../b", true), "/b");  // merged first: ".." takes "a"
  EXPECT_EQ(ok("//", true), "/");
}

TEST(NormalizePathTest, Refusals) {
  EXPECT_EQ(normalize("/..").error, PathError::kAboveRoot);
  EXPECT_EQ(normalize("/../a").error, PathError::kAboveRoot);
  EXPECT_EQ(normalize("/a/../../b").error, PathError::kAboveRoot);
  EXPECT_EQ(normalize("/%2e%2e/a").error, PathError::kAboveRoot);
  EXPECT_EQ(normalize("/a%2fb").error, PathError::kEscapedSlash);
  EXPECT_EQ(normalize("/a%2F..%2F..%2Fb").error, PathError::kEscapedSlash);
  EXPECT_EQ(normalize("/a%5cb").error, PathError::kEscapedSlash);
  EXPECT_EQ(normalize("/a\\b").error, PathError::kBackslash);
  EXPECT_EQ(normalize("/a%00").error, PathError::kNul);
  EXPECT_EQ(normalize("/a%").error, PathError::kBadEscape);
  EXPECT_EQ(normalize("/a%4").error, PathError::kBadEscape);
  EXPECT_EQ(normalize("/a%zz").error, PathError::kBadEscape);
  EXPECT_EQ(normalize("/a%4g").error, PathError::kBadEscape);
  EXPECT_EQ(normalize("/a%g4").error, PathError::kBadEscape);
}

// The one-scan test agrees with normalisation: exactly the paths it leaves unchanged.
TEST(PathIsNormalTest, AgreesWithNormalizePath) {
  for (const bool merge : {false, true}) {
    for (const std::string s :
         {"/",   "/a/b",  "/a/b/", "/a%20b", "/a%3A",  "/a%3a",       "/a%41",      "/.",
          "/..", "/a/.",  "/a/..", "/.a",    "/..a",   "/a/./b",      "/a//b",      "//",
          "/a%", "/a%2F", "/a\\b", "/a%00",  "/~user", "/a/b.c/d..e", "/%E2%82%AC", "/%e2%82%ac"}) {
      const Normalized n = normalize(s, merge);
      const bool unchanged = n.error == PathError::kNone && n.path == s;
      EXPECT_EQ(path_is_normal(s, merge), unchanged) << s << " merge " << merge;
    }
  }
}

// The same on longer paths (the scan goes sixteen bytes at a time there), with each kind of
// stop at every offset, at a block's end included.
TEST(PathIsNormalTest, AgreesAtEveryOffsetOfLongPaths) {
  for (const bool merge : {false, true}) {
    for (const std::string piece :
         {"/.", "/..", "/./", "/../", "%41", "%2F", "%3A", "%3a", "\\", "//", "/.a", "/..a", "%"}) {
      for (std::size_t at = 1; at <= 40; ++at) {
        std::string s = "/seg/" + std::string(40, 'x');
        s.insert(at, piece);
        const Normalized n = normalize(s, merge);
        const bool unchanged = n.error == PathError::kNone && n.path == s;
        EXPECT_EQ(path_is_normal(s, merge), unchanged) << s << " merge " << merge;
      }
    }
  }
}

}  // namespace
}  // namespace sb::http
