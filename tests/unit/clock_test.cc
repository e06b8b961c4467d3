#include "core/clock.h"

#include <gtest/gtest.h>

#include <thread>

namespace otelagent {
namespace {

TEST(Clock, InterpolationIsExactOnTheLine) {
  ClockPair a{1000, 5000000000ull}, b{3000, 5000001000ull};  // 2 ticks per ns
  EXPECT_EQ(tsc_to_unix(1000, a, b), 5000000000ull);
  EXPECT_EQ(tsc_to_unix(2000, a, b), 5000000500ull);
  EXPECT_EQ(tsc_to_unix(3000, a, b), 5000001000ull);
  EXPECT_EQ(tsc_to_unix(5000, a, b), 5000002000ull);  // beyond b: extrapolated
  EXPECT_EQ(tsc_to_unix(1000, a, a), 5000000000ull);  // degenerate pair
}

TEST(Clock, TscReadingsConvertToTheWallClock) {
  if (!tsc_usable()) GTEST_SKIP() << "no invariant TSC on this machine";
  ClockPair base = clock_pair();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  uint64_t tsc = read_tsc();
  uint64_t wall = now_unix_nano();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ClockPair later = clock_pair();
  uint64_t converted = tsc_to_unix(tsc, base, later);
  // Within 100 us of the wall clock read beside it (the reads are ~50 ns
  // apart; the margin absorbs a descheduling between them).
  EXPECT_LT(converted > wall ? converted - wall : wall - converted, 100000u);
}

}  // namespace
}  // namespace otelagent

// Issue 8: pairs and times read back from a damaged ring file may be any
// 64-bit values; converting them is defined (UBSan checks the arithmetic)
// and saturates instead of wrapping.
TEST(Clock, ConversionOfHostileValuesSaturates) {
  const otelagent::ClockPair a{1, 1};
  const otelagent::ClockPair b{2, UINT64_MAX};
  EXPECT_EQ(otelagent::tsc_to_unix(UINT64_MAX, a, b), UINT64_MAX);
  const otelagent::ClockPair c{UINT64_MAX, 0};
  EXPECT_EQ(otelagent::tsc_to_unix(0, a, c), 1u);
  EXPECT_EQ(otelagent::tsc_to_unix(0, a, b), 0u);
  // Ordinary values are untouched by the guard.
  const otelagent::ClockPair d{1000, 5000};
  const otelagent::ClockPair e{2000, 6000};
  EXPECT_EQ(otelagent::tsc_to_unix(1500, d, e), 5500u);
}
