// What tests of the running agent share: its statistics, and waiting on a
// condition with a deadline (never sleeping and hoping).
#pragma once

#include <gtest/gtest.h>
#include <otelagent/otelagent.h>

#include <chrono>
#include <thread>

namespace otelagent_test {

inline otelagent_stats stats() {
  otelagent_stats s{};
  s.struct_size = sizeof s;
  EXPECT_EQ(otelagent_stats_get(&s), OTELAGENT_OK);
  return s;
}

// Polls `cond` until it holds (true) or `seconds` pass (false).
template <typename Cond>
bool wait_until(Cond cond, int seconds = 30) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace otelagent_test
