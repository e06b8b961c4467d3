// Faults injected through the C and C++ runtimes, which this binary replaces:
// - operator new, which when armed throws std::bad_alloc on the exporter
//   thread (the one named "otelagent-exp"): what happens there when memory is
//   short;
// - pthread_mutex_unlock, which when armed on a thread sleeps after every
//   unlock: that thread then stays a long while at every point just past an
//   unlock, as a preempted low-priority thread would.
#include <gtest/gtest.h>
#include <otelagent/otelagent.h>
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <thread>

#include "bench/discard_server.h"
#include "support/agent_stats.h"

namespace {

// 0: off; n: every n-th allocation on the exporter thread fails.
std::atomic<uint32_t> g_fail_every{0};
std::atomic<uint64_t> g_failed_allocations{0};
std::atomic<uint32_t> g_count{0};

bool on_exporter_thread() {
  char name[16] = {0};
  pthread_getname_np(pthread_self(), name, sizeof name);
  return std::strcmp(name, "otelagent-exp") == 0;
}

void *allocate(size_t n) {
  const uint32_t every = g_fail_every.load(std::memory_order_relaxed);
  if (every != 0 && on_exporter_thread() && g_count.fetch_add(1) % every == 0) {
    g_failed_allocations.fetch_add(1);
    throw std::bad_alloc();
  }
  void *p = std::malloc(n ? n : 1);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

thread_local bool t_slow_after_unlock = false;
// When set, the exporter thread stops for a minute after its next unlock:
// a thread stuck where shutdown cannot reach it (as in a blocking resolver).
std::atomic<bool> g_exporter_stuck{false};

}  // namespace

// glibc's own unlock, under its other exported name (bound by version, as
// it is not a default symbol).
extern "C" int glibc_mutex_unlock(pthread_mutex_t *m);
__asm__(".symver glibc_mutex_unlock, __pthread_mutex_unlock@GLIBC_2.2.5");
extern "C" int pthread_mutex_unlock(pthread_mutex_t *m) {
  const int rc = glibc_mutex_unlock(m);
  if (t_slow_after_unlock) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  if (g_exporter_stuck.load(std::memory_order_relaxed) && on_exporter_thread())
    std::this_thread::sleep_for(std::chrono::seconds(60));
  return rc;
}

void *operator new(size_t n) {
  return allocate(n);
}
void *operator new[](size_t n) {
  return allocate(n);
}
void operator delete(void *p) noexcept {
  std::free(p);
}
void operator delete[](void *p) noexcept {
  std::free(p);
}
void operator delete(void *p, size_t) noexcept {
  std::free(p);
}
void operator delete[](void *p, size_t) noexcept {
  std::free(p);
}

namespace {

using otelagent_test::stats;

void emit(int n) {
  for (int i = 0; i < n; ++i) {
    otelagent_span *s = nullptr;
    ASSERT_EQ(otelagent_span_start("fault", 5, nullptr, &s), OTELAGENT_OK);
    otelagent_span_set_str(s, "k", 1, "value", 5);
    ASSERT_EQ(otelagent_span_end(s, 0), OTELAGENT_OK);
  }
}

// Every span is exported or counted as failed; nothing is lost or doubled.
void expect_conserved() {
  const otelagent_stats s = stats();
  EXPECT_EQ(s.queue_depth, 0u);
  EXPECT_EQ(s.spans_ended, s.spans_exported + s.spans_dropped_export_failed +
                               s.spans_dropped_queue_full + s.spans_dropped_rejected);
}

// Issue 5, item 9: a std::bad_alloc on the exporter thread reached
// std::terminate and took the host down.
TEST(ExporterFault, AllocationFailuresDropTheBatchAndTheLoopGoesOn) {
  otelagent_bench::DiscardServer server;
  otelagent_config *cfg = otelagent_config_new();
  const std::string endpoint = "http://127.0.0.1:" + std::to_string(server.port());
  otelagent_config_set(cfg, "OTEL_EXPORTER_OTLP_ENDPOINT", 27, endpoint.data(), endpoint.size());
  otelagent_config_set(cfg, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 30, "64", 2);
  ASSERT_EQ(otelagent_start(cfg), OTELAGENT_OK);
  otelagent_config_free(cfg);

  emit(100);
  ASSERT_EQ(otelagent_flush(10000), OTELAGENT_OK);
  EXPECT_EQ(stats().spans_exported, 100u);

  // Every allocation fails, then every third one: draining, encoding,
  // compressing, sending and answering each meet a failure somewhere.
  for (uint32_t every : {1u, 3u, 7u}) {
    g_fail_every.store(every);
    emit(640);
    const int rc = otelagent_flush(10000);
    g_fail_every.store(0);
    EXPECT_EQ(rc, OTELAGENT_OK) << "fail every " << every;
    expect_conserved();
  }
  EXPECT_GT(g_failed_allocations.load(), 0u);
  EXPECT_GT(stats().spans_dropped_export_failed, 0u);

  // The loop is alive and exports again.
  const uint64_t before = stats().spans_exported;
  emit(100);
  ASSERT_EQ(otelagent_flush(10000), OTELAGENT_OK);
  EXPECT_EQ(stats().spans_exported, before + 100);
  expect_conserved();
  EXPECT_EQ(otelagent_shutdown(5000), OTELAGENT_OK);
}

// Issue 5, item 3: flush took the exporter under the lifecycle lock, let go
// of it and then woke a libuv handle that a concurrent shutdown had closed
// meanwhile: abort() inside libuv. The flusher here lingers after each unlock
// (as a preempted low-priority thread does), so shutdowns complete inside
// that window.
TEST(FlushRace, FlushRacingShutdownNeverTouchesAClosedHandle) {
  otelagent_bench::DiscardServer server;
  const std::string endpoint = "http://127.0.0.1:" + std::to_string(server.port());
  std::atomic<bool> done{false};
  std::atomic<uint64_t> flushes{0};
  std::thread flusher([&] {
    t_slow_after_unlock = true;
    while (!done.load()) {
      const int rc = otelagent_flush(1);
      EXPECT_TRUE(rc == OTELAGENT_OK || rc == OTELAGENT_E_TIMEOUT || rc == OTELAGENT_E_NOT_STARTED)
          << rc;
      flushes.fetch_add(1);
    }
  });
  for (int cycle = 0; cycle < 1000; ++cycle) {
    otelagent_config *cfg = otelagent_config_new();
    otelagent_config_set(cfg, "OTEL_EXPORTER_OTLP_ENDPOINT", 27, endpoint.data(), endpoint.size());
    ASSERT_EQ(otelagent_start(cfg), OTELAGENT_OK);
    otelagent_config_free(cfg);
    emit(1);  // the first span starts the exporter thread
    const int rc = otelagent_shutdown(2000);
    ASSERT_TRUE(rc == OTELAGENT_OK || rc == OTELAGENT_E_TIMEOUT) << rc;
  }
  done.store(true);
  flusher.join();
  EXPECT_GT(flushes.load(), 0u);
}

// Issue 5, item 15: shutdown joined the exporter thread without a bound.
TEST(ShutdownBound, AStuckExporterThreadIsLeftBehind) {
  otelagent_config *cfg = otelagent_config_new();
  // Connection refused: no connection a server would wait on.
  otelagent_config_set(cfg, "OTEL_EXPORTER_OTLP_ENDPOINT", 27, "http://127.0.0.1:1", 18);
  ASSERT_EQ(otelagent_start(cfg), OTELAGENT_OK);
  otelagent_config_free(cfg);
  emit(10);
  g_exporter_stuck.store(true);
  ASSERT_EQ(otelagent_flush(0), OTELAGENT_E_TIMEOUT);  // wakes it: it gets stuck
  std::mutex mu;
  std::condition_variable cv;
  bool returned = false;
  int rc = 0;
  std::thread stopper([&] {
    const int r = otelagent_shutdown(100);
    std::lock_guard<std::mutex> lk(mu);
    rc = r;
    returned = true;
    cv.notify_all();
  });
  std::unique_lock<std::mutex> lk(mu);
  // A hang check with a generous deadline (the bound is 100 + 250 ms).
  if (!cv.wait_for(lk, std::chrono::seconds(20), [&] { return returned; })) {
    ADD_FAILURE() << "shutdown did not return while the exporter thread was stuck";
    std::fflush(nullptr);
    std::_Exit(1);  // the stuck join would hang the test binary
  }
  lk.unlock();
  stopper.join();
  EXPECT_EQ(rc, OTELAGENT_E_TIMEOUT);
  // The agent starts again with a new exporter.
  g_exporter_stuck.store(false);
  cfg = otelagent_config_new();
  otelagent_config_set(cfg, "OTEL_EXPORTER_OTLP_ENDPOINT", 27, "http://127.0.0.1:1", 18);
  EXPECT_EQ(otelagent_start(cfg), OTELAGENT_OK);
  otelagent_config_free(cfg);
  emit(1);
  EXPECT_EQ(otelagent_shutdown(0), OTELAGENT_E_TIMEOUT);
}

}  // namespace
