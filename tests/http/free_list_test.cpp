#include "http/free_list.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

namespace sb::http {
namespace {

struct Block {
  int id = 0;
};

// Blocks put back are taken again, newest first; nothing is kept past the cap.
TEST(FreeListTest, KeepsUpToTheCap) {
  FreeList<Block> list(2);
  EXPECT_EQ(list.take(), nullptr);
  list.put(std::make_unique<Block>(Block{1}));
  list.put(std::make_unique<Block>(Block{2}));
  list.put(std::make_unique<Block>(Block{3}));  // over the cap: freed
  EXPECT_EQ(list.size(), 2u);
  EXPECT_EQ(list.take()->id, 2);
  EXPECT_EQ(list.take()->id, 1);
  EXPECT_EQ(list.take(), nullptr);
}

// An idle list halves on each trim, rounding up, down to none.
TEST(FreeListTest, IdleListDrainsByHalves) {
  FreeList<Block> list(1024);
  for (int i = 0; i < 8; ++i) list.put(std::make_unique<Block>());
  list.trim();  // the first trim has seen no low mark above 0 yet: keeps all
  EXPECT_EQ(list.size(), 8u);
  list.trim();
  EXPECT_EQ(list.size(), 4u);
  list.trim();
  EXPECT_EQ(list.size(), 2u);
  list.trim();
  EXPECT_EQ(list.size(), 1u);
  list.trim();
  EXPECT_EQ(list.size(), 0u);
}

// Blocks the load cycles through are kept: a worker that takes all of them between two
// trims (and puts them back) keeps every one, so it allocates nothing.
TEST(FreeListTest, BlocksInUseBetweenTrimsAreKept) {
  FreeList<Block> list(1024);
  for (int i = 0; i < 6; ++i) list.put(std::make_unique<Block>());
  list.trim();
  for (int round = 0; round < 5; ++round) {
    std::vector<std::unique_ptr<Block>> leased;
    for (int i = 0; i < 6; ++i) leased.push_back(list.take());
    for (auto& b : leased) list.put(std::move(b));
    list.trim();
    EXPECT_EQ(list.size(), 6u) << "round " << round;
  }
}

// Only the part never taken since the last trim counts as unused: with 2 of 6 taken at
// the busiest moment, half of the other 4 go.
TEST(FreeListTest, TrimDropsHalfOfWhatStayedUnused) {
  FreeList<Block> list(1024);
  for (int i = 0; i < 6; ++i) list.put(std::make_unique<Block>());
  list.trim();
  auto a = list.take();
  auto b = list.take();
  list.put(std::move(a));
  list.put(std::move(b));
  list.trim();
  EXPECT_EQ(list.size(), 4u);
}

}  // namespace
}  // namespace sb::http
