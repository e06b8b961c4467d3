// What tests of the running agent share: its statistics, and waiting on a
// condition with a deadline (never sleeping and hoping).
#pragma once

#include <gtest/gtest.h>
#include <otelagent/otelagent.h>
#include <sys/resource.h>
#include <unistd.h>

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

// While it lives, no new file descriptor can be opened (RLIMIT_NOFILE is
// lowered to the lowest free one): the exporter cannot start.
class NoNewFds {
 public:
  NoNewFds() {
    getrlimit(RLIMIT_NOFILE, &saved_);
    const int lowest_free = dup(0);
    close(lowest_free);
    rlimit low = saved_;
    low.rlim_cur = static_cast<rlim_t>(lowest_free);
    limited_ = lowest_free >= 0 && setrlimit(RLIMIT_NOFILE, &low) == 0;
    EXPECT_TRUE(limited_);
  }
  ~NoNewFds() { restore(); }
  NoNewFds(const NoNewFds &) = delete;
  NoNewFds &operator=(const NoNewFds &) = delete;
  void restore() {
    if (limited_) {
      EXPECT_EQ(setrlimit(RLIMIT_NOFILE, &saved_), 0);
    }
    limited_ = false;
  }

 private:
  rlimit saved_{};
  bool limited_ = false;
};

}  // namespace otelagent_test
