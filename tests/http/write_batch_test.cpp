#include "http/write_batch.hpp"

#include <gtest/gtest.h>

#include <string_view>

#include "core/assert.hpp"

namespace sb::http {
namespace {

// Pieces up to kMaxBuffers are gathered in order; consume() drops written bytes.
TEST(WriteBatchTest, GathersPiecesUpToCapacity) {
  WriteBatch b;
  for (std::size_t i = 0; i < WriteBatch::kMaxBuffers; ++i) b.add("ab");
  EXPECT_EQ(b.buffers().size(), WriteBatch::kMaxBuffers);
  EXPECT_EQ(b.bytes(), 2 * WriteBatch::kMaxBuffers);
  b.consume(3);
  EXPECT_EQ(b.buffers().size(), WriteBatch::kMaxBuffers - 1);
  EXPECT_EQ(b.buffers()[0].size(), 1u);
}

// A piece past kMaxBuffers is a bug (a caller that did not flush when full()): a debug
// build aborts; a release build counts it and drops the piece instead of writing past
// the array.
TEST(WriteBatchTest, AddPastCapacityIsABug) {
  WriteBatch b;
  for (std::size_t i = 0; i < WriteBatch::kMaxBuffers; ++i) b.add("x");
#ifdef NDEBUG
  const auto before = core::bugs_seen();
  b.add("y");
  EXPECT_EQ(core::bugs_seen(), before + 1);
  EXPECT_EQ(b.buffers().size(), WriteBatch::kMaxBuffers);
  EXPECT_EQ(b.bytes(), WriteBatch::kMaxBuffers);
#else
  EXPECT_DEATH(b.add("y"), "past kMaxBuffers");
#endif
}

// The same for chunk-size lines past kMaxChunks.
TEST(WriteBatchTest, ChunkPastCapacityIsABug) {
  WriteBatch b;
  for (std::size_t i = 0; i < WriteBatch::kMaxChunks; ++i) b.add_chunk("x");
  EXPECT_TRUE(b.full());
#ifdef NDEBUG
  const auto before = core::bugs_seen();
  const auto pieces = b.buffers().size();
  b.add_chunk("y");
  EXPECT_EQ(core::bugs_seen(), before + 1);
  EXPECT_EQ(b.buffers().size(), pieces);
#else
  EXPECT_DEATH(b.add_chunk("y"), "past kMaxChunks");
#endif
}

}  // namespace
}  // namespace sb::http
