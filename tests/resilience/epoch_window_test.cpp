#include "resilience/epoch_window.hpp"

#include <gtest/gtest.h>

#include "testing/manual_clock.hpp"

namespace sb::resilience {
namespace {

using namespace std::chrono_literals;

// Two counters over 1 s in 10 steps of 100 ms; times come from a manual clock.
class EpochWindowTest : public ::testing::Test {
 protected:
  std::int64_t step() const { return w_.epoch_of(clock_.steady_now()); }
  EpochWindow<2>::Counts totals() const { return w_.totals(step()); }

  testing::ManualClock clock_;
  EpochWindow<2> w_{1s, 10};
};

// A count stays in the window for `buckets` steps and leaves as a whole at the next one.
TEST_F(EpochWindowTest, CountLeavesAfterTheWindow) {
  EXPECT_TRUE(w_.add(step(), 0));
  EXPECT_TRUE(w_.add(step(), 1, 3));
  EXPECT_EQ(totals(), (EpochWindow<2>::Counts{1, 3}));
  clock_.advance(999ms);  // still the tenth step counting this one
  EXPECT_EQ(totals(), (EpochWindow<2>::Counts{1, 3}));
  clock_.advance(1ms);  // the step that held them is now 10 steps old
  EXPECT_EQ(totals(), (EpochWindow<2>::Counts{0, 0}));
}

// The window slides by steps: counts of each step leave one by one.
TEST_F(EpochWindowTest, SlidesStepByStep) {
  for (int i = 0; i < 10; ++i) {
    w_.add(step(), 0);
    clock_.advance(100ms);
  }
  EXPECT_EQ(totals()[0], 9u);  // the first step left as this one began
  clock_.advance(500ms);
  EXPECT_EQ(totals()[0], 4u);
}

// A bucket reused for a newer step starts from zero.
TEST_F(EpochWindowTest, RecycledBucketStartsEmpty) {
  w_.add(step(), 0, 5);
  clock_.advance(1s);  // same bucket, ten steps later
  w_.add(step(), 0);
  EXPECT_EQ(totals()[0], 1u);
}

// A late sample for a step older than its bucket holds is dropped, never misfiled.
TEST_F(EpochWindowTest, LateSampleIsDropped) {
  const std::int64_t old = step();
  clock_.advance(1s);
  w_.add(step(), 0);
  EXPECT_FALSE(w_.add(old, 0));
  EXPECT_EQ(totals()[0], 1u);
}

// sub() takes back what add() counted, and nothing once the bucket moved on.
TEST_F(EpochWindowTest, SubTakesBack) {
  const std::int64_t s = step();
  w_.add(s, 1, 2);
  w_.sub(s, 1);
  EXPECT_EQ(totals()[1], 1u);
  clock_.advance(1s);
  w_.add(step(), 1);
  w_.sub(s, 1);  // s's bucket now holds a later step
  EXPECT_EQ(totals()[1], 1u);
}

// clear() empties every bucket.
TEST_F(EpochWindowTest, ClearEmpties) {
  w_.add(step(), 0);
  clock_.advance(300ms);
  w_.add(step(), 1);
  w_.clear();
  EXPECT_EQ(totals(), (EpochWindow<2>::Counts{0, 0}));
}

// Steps before the clock's epoch are negative and floor-divided (-1 ns is step -1).
TEST(EpochWindowStepTest, NegativeTimesFloor) {
  EpochWindow<1> w(1s, 10);
  EXPECT_EQ(w.epoch_of(core::SteadyTime(-1ns)), -1);
  EXPECT_EQ(w.epoch_of(core::SteadyTime(-100ms)), -1);
  EXPECT_EQ(w.epoch_of(core::SteadyTime(-100ms - 1ns)), -2);
  EXPECT_EQ(w.epoch_of(core::SteadyTime(99ms)), 0);
  w.add(-1, 0);
  EXPECT_EQ(w.totals(0)[0], 1u);
}

// Zero buckets or a window narrower than the buckets still give a usable window.
TEST(EpochWindowStepTest, DegenerateSettings) {
  EpochWindow<1> w(5ns, 0);
  EXPECT_EQ(w.steps(), 1u);
  EXPECT_EQ(w.step(), 5ns);
  EpochWindow<1> narrow(5ns, 10);
  EXPECT_EQ(narrow.step(), 1ns);
}

}  // namespace
}  // namespace sb::resilience
