// Concurrency stress, meant to run under ThreadSanitizer and AddressSanitizer
// (tests/run.sh with OTELAGENT_SANITIZERS=1): threads start spans and end
// them on other threads, threads exit with spans open, while others flush,
// shut the agent down, start it again and fork. Bounded in iterations; checks
// that nothing crashes or hangs and that every ended span is accounted for.
#include <gtest/gtest.h>
#include <otelagent/otelagent.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bench/discard_server.h"
#include "support/agent_stats.h"

namespace {

// ThreadSanitizer does not support starting threads in the child of a
// multi-threaded fork, and Debian 12's AddressSanitizer runtime does not lock
// its allocator around fork (a child's new thread can hang on a lock a parent
// thread held): under either, the fork child starts no thread.
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr bool kChildMayStartThreads = false;
#else
constexpr bool kChildMayStartThreads = true;
#endif

using otelagent_test::stats;

int start(int port) {
  otelagent_config *cfg = otelagent_config_new();
  auto set = [&](const std::string &k, const std::string &v) {
    otelagent_config_set(cfg, k.data(), k.size(), v.data(), v.size());
  };
  set("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:" + std::to_string(port));
  set("OTEL_BSP_SCHEDULE_DELAY", "5");
  set("OTEL_BSP_MAX_QUEUE_SIZE", "256");
  set("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "32");
  set("OTELAGENT_RING_BYTES", "131072");
  int rc = otelagent_start(cfg);
  otelagent_config_free(cfg);
  return rc;
}

// Spans handed from the threads that start them to the threads that end them.
class Handoff {
 public:
  void put(otelagent_span *s) {
    std::lock_guard<std::mutex> lk(mu_);
    q_.push_back(s);
  }
  otelagent_span *take() {
    std::lock_guard<std::mutex> lk(mu_);
    if (q_.empty()) return nullptr;
    otelagent_span *s = q_.front();
    q_.pop_front();
    return s;
  }

 private:
  std::mutex mu_;
  std::deque<otelagent_span *> q_;
};

TEST(Stress, SpansFlushShutdownRestartAndForkTogether) {
  otelagent_bench::DiscardServer server;
  ASSERT_EQ(start(server.port()), OTELAGENT_OK);
  std::atomic<bool> done{false}, starters_done{false};
  Handoff handoff;
  std::atomic<uint64_t> handed{0}, ended_elsewhere{0};
  std::vector<std::thread> starters, threads;
  // Starters: start spans, end half of them here, hand the rest over.
  for (int t = 0; t < 2; ++t)
    starters.emplace_back([&] {
      uint64_t i = 0;
      while (!done.load()) {
        otelagent_span *s = nullptr;
        if (otelagent_span_start("stress", 6, nullptr, &s) != OTELAGENT_OK) continue;
        otelagent_span_set_int64(s, "i", 1, static_cast<int64_t>(i));
        if (++i % 2 == 0) {
          otelagent_span_end(s, 0);
        } else {
          handoff.put(s);
          handed.fetch_add(1);
        }
      }
    });
  // Enders: end the handed-over spans on another thread.
  threads.emplace_back([&] {
    for (;;) {
      otelagent_span *s = handoff.take();
      if (s == nullptr) {
        // Only once no starter can hand over another span.
        if (starters_done.load() && ended_elsewhere.load() == handed.load()) return;
        std::this_thread::yield();
        continue;
      }
      EXPECT_EQ(otelagent_span_end(s, 0) == OTELAGENT_E_ENDED, false);
      ended_elsewhere.fetch_add(1);
    }
  });
  // Short-lived threads that exit with spans open.
  threads.emplace_back([&] {
    while (!done.load()) {
      std::thread([] {
        otelagent_span *s = nullptr;
        if (otelagent_span_start("orphan", 6, nullptr, &s) == OTELAGENT_OK) {
          otelagent_span *t = nullptr;
          if (otelagent_span_start("ended", 5, nullptr, &t) == OTELAGENT_OK)
            otelagent_span_end(t, 0);
        }
      }).join();
    }
  });
  // A flusher.
  threads.emplace_back([&] {
    while (!done.load()) {
      const int rc = otelagent_flush(5);
      EXPECT_TRUE(rc == OTELAGENT_OK || rc == OTELAGENT_E_TIMEOUT || rc == OTELAGENT_E_NOT_STARTED)
          << rc;
    }
  });
  // This thread: shutdown, start again, and fork now and then.
  for (int cycle = 0; cycle < 30; ++cycle) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let the others run
    const int rc = otelagent_shutdown(50);
    ASSERT_TRUE(rc == OTELAGENT_OK || rc == OTELAGENT_E_TIMEOUT) << rc;
    ASSERT_EQ(start(server.port()), OTELAGENT_OK);
    if (cycle % 10 == 5) {
      const pid_t pid = fork();
      if (pid == 0) {
        // Without sanitizers the child emits and flushes through its own
        // exporter; under them it only checks that the agent answers.
        int code = 0;
        if (kChildMayStartThreads) {
          for (int i = 0; i < 5; ++i) {
            otelagent_span *s = nullptr;
            if (otelagent_span_start("child", 5, nullptr, &s) == OTELAGENT_OK)
              otelagent_span_end(s, 0);
          }
          code = otelagent_flush(10000) == OTELAGENT_OK ? 0 : 3;
        } else {
          code = otelagent_flush(0) == OTELAGENT_OK ? 0 : 3;
        }
        _exit(code);
      }
      ASSERT_GT(pid, 0);
      int status = 0;
      ASSERT_EQ(waitpid(pid, &status, 0), pid);
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    }
  }
  done.store(true);
  for (auto &t : starters) t.join();
  starters_done.store(true);
  for (auto &t : threads) t.join();
  EXPECT_EQ(ended_elsewhere.load(), handed.load());
  // Everything that ended is exported or counted as dropped once the final
  // flush is through.
  ASSERT_EQ(otelagent_flush(30000), OTELAGENT_OK);
  const otelagent_stats s = stats();
  EXPECT_EQ(s.queue_depth, 0u);
  EXPECT_EQ(s.spans_ended, s.spans_exported + s.spans_dropped_ring_full +
                               s.spans_dropped_queue_full + s.spans_dropped_shutdown +
                               s.spans_dropped_export_failed + s.spans_dropped_rejected)
      << "exported " << s.spans_exported << ", ring full " << s.spans_dropped_ring_full
      << ", queue full " << s.spans_dropped_queue_full << ", shutdown " << s.spans_dropped_shutdown;
  EXPECT_GE(s.spans_started, s.spans_ended);
  otelagent_shutdown(1000);
}

}  // namespace
