// The C ABI as a host sees it: calls before start, bad arguments, caps,
// statuses and the statistics that account for every span.
#include <gtest/gtest.h>
#include <otelagent/otelagent.h>

#include <dirent.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "support/agent_stats.h"
#include "support/record_builder.h"

namespace {

using otelagent_test::stats;

// An agent whose collector is a closed loopback port: spans queue and
// nothing is printed or sent anywhere.
class Agent : public ::testing::Test {
 protected:
  void SetUp() override { start({}); }
  void TearDown() override { otelagent_shutdown(0); }
  void start(std::vector<std::pair<std::string, std::string>> extra) {
    otelagent_config *cfg = otelagent_config_new();
    set(cfg, "OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1");
    set(cfg, "OTEL_BSP_SCHEDULE_DELAY", "3600000");
    for (auto &[k, v] : extra) set(cfg, k, v);
    ASSERT_EQ(otelagent_start(cfg), OTELAGENT_OK);
    otelagent_config_free(cfg);
  }
  static void set(otelagent_config *cfg, const std::string &k, const std::string &v) {
    ASSERT_EQ(otelagent_config_set(cfg, k.data(), k.size(), v.data(), v.size()), OTELAGENT_OK) << k;
  }
};

TEST(CApiUnstarted, EveryCallIsSafeBeforeStart) {
  otelagent_span *s = reinterpret_cast<otelagent_span *>(0x1);
  EXPECT_EQ(otelagent_span_start("x", 1, nullptr, &s), OTELAGENT_E_NOT_STARTED);
  EXPECT_EQ(s, nullptr);
  EXPECT_EQ(otelagent_span_start("x", 1, nullptr, nullptr), OTELAGENT_E_INVALID);
  EXPECT_EQ(otelagent_span_end(nullptr, 0), OTELAGENT_E_INVALID);
  EXPECT_EQ(otelagent_span_set_str(nullptr, "k", 1, "v", 1), OTELAGENT_E_INVALID);
  EXPECT_EQ(otelagent_span_add_event(nullptr, "e", 1, 0, nullptr, 0), OTELAGENT_E_INVALID);
  EXPECT_EQ(otelagent_span_set_status(nullptr, 2, nullptr, 0), OTELAGENT_E_INVALID);
  EXPECT_EQ(otelagent_span_is_recording(nullptr), 0);
  EXPECT_EQ(otelagent_flush(10), OTELAGENT_E_NOT_STARTED);
  EXPECT_EQ(otelagent_shutdown(10), OTELAGENT_E_NOT_STARTED);
  EXPECT_EQ(otelagent_record_span(nullptr, 0), OTELAGENT_E_NOT_STARTED);
  otelagent_span_context c{};
  EXPECT_EQ(otelagent_span_context_new(nullptr, &c), OTELAGENT_E_NOT_STARTED);
  EXPECT_EQ(otelagent_stats_get(nullptr), OTELAGENT_E_INVALID);
  EXPECT_STREQ(otelagent_status_name(OTELAGENT_E_RING_FULL), "RING_FULL");
  EXPECT_STREQ(otelagent_strerror(-999), "unknown status");
  EXPECT_EQ(otelagent_abi_version() >> 16, static_cast<uint32_t>(OTELAGENT_ABI_MAJOR));
  EXPECT_STREQ(otelagent_version(), OTELAGENT_VERSION_STRING);
}

TEST(CApiUnstarted, ConfigObjectRejectsUnknownKeysAndBadArguments) {
  otelagent_config *cfg = otelagent_config_new();
  EXPECT_EQ(otelagent_config_set(cfg, "OTEL_NOPE", 9, "1", 1), OTELAGENT_E_UNKNOWN_KEY);
  EXPECT_EQ(otelagent_config_set(cfg, "OTEL_SERVICE_NAME", 17, nullptr, 3), OTELAGENT_E_INVALID);
  EXPECT_EQ(otelagent_config_set(nullptr, "OTEL_SERVICE_NAME", 17, "a", 1), OTELAGENT_E_INVALID);
  otelagent_config_free(cfg);
  otelagent_config_free(nullptr);
}

TEST(CApiUnstarted, DisabledAgentMakesSpanCallsNoOps) {
  otelagent_config *cfg = otelagent_config_new();
  otelagent_config_set(cfg, "OTEL_SDK_DISABLED", 17, "true", 4);
  EXPECT_EQ(otelagent_start(cfg), OTELAGENT_E_DISABLED);
  otelagent_config_free(cfg);
  otelagent_span *s = nullptr;
  EXPECT_EQ(otelagent_span_start("x", 1, nullptr, &s), OTELAGENT_E_DISABLED);
  EXPECT_EQ(s, nullptr);
  EXPECT_EQ(otelagent_shutdown(0), OTELAGENT_OK);
}

int thread_count() {
  int n = 0;
  if (DIR *d = opendir("/proc/self/task")) {
    while (dirent *e = readdir(d))
      if (e->d_name[0] != '.') ++n;
    closedir(d);
  }
  return n;
}

TEST(CApiUnstarted, NoThreadUntilTheFirstSpanEnds) {
  // In a child process, which has one thread whatever the test runner did.
  pid_t pid = fork();
  if (pid == 0) {
    otelagent_shutdown(0);  // an agent inherited from the runner, if any
    int before = thread_count();
    otelagent_config *cfg = otelagent_config_new();
    otelagent_config_set(cfg, "OTEL_EXPORTER_OTLP_ENDPOINT", 27, "http://127.0.0.1:1", 18);
    otelagent_start(cfg);
    otelagent_config_free(cfg);
    int started = thread_count();
    otelagent_span *s = nullptr;
    otelagent_span_start("x", 1, nullptr, &s);
    int open = thread_count();
    otelagent_span_end(s, 0);
    int ended = thread_count();
    // Relative counts: a sanitizer runtime may run a thread of its own, and
    // TSan's starts with the first thread we create.
#if defined(__SANITIZE_THREAD__)
    const bool one_more = ended > before;
#else
    const bool one_more = ended == before + 1;
#endif
    _exit(started == before && open == before && one_more ? 0 : 10 + ended - before);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(CApiUnstarted, FlushRacingShutdownIsSafe) {
  for (int round = 0; round < 20; ++round) {
    otelagent_config *cfg = otelagent_config_new();
    otelagent_config_set(cfg, "OTEL_EXPORTER_OTLP_ENDPOINT", 27, "http://127.0.0.1:1", 18);
    ASSERT_EQ(otelagent_start(cfg), OTELAGENT_OK);
    otelagent_config_free(cfg);
    otelagent_span *s = nullptr;
    otelagent_span_start("x", 1, nullptr, &s);
    otelagent_span_end(s, 0);  // the exporter thread is running
    std::thread flusher([] {
      for (int i = 0; i < 5; ++i) {
        int rc = otelagent_flush(5);
        EXPECT_TRUE(rc == OTELAGENT_E_TIMEOUT || rc == OTELAGENT_E_NOT_STARTED ||
                    rc == OTELAGENT_OK)
            << rc;
      }
    });
    int rc = otelagent_shutdown(1);
    EXPECT_TRUE(rc == OTELAGENT_OK || rc == OTELAGENT_E_TIMEOUT) << rc;
    flusher.join();
    otelagent_shutdown(0);
  }
}

TEST_F(Agent, StartTwiceIsRefused) {
  EXPECT_EQ(otelagent_start(nullptr), OTELAGENT_E_ALREADY_STARTED);
}

TEST_F(Agent, SpanLifecycleAndContexts) {
  otelagent_span *root = nullptr;
  ASSERT_EQ(otelagent_span_start("root", 4, nullptr, &root), OTELAGENT_OK);
  ASSERT_NE(root, nullptr);
  EXPECT_EQ(otelagent_span_is_recording(root), 1);
  otelagent_span_context rc{};
  ASSERT_EQ(otelagent_span_get_context(root, &rc), OTELAGENT_OK);
  EXPECT_EQ(rc.trace_flags & 1, 1);
  otelagent_span_options o{};
  o.struct_size = sizeof o;
  o.parent = &rc;
  otelagent_span *child = nullptr;
  ASSERT_EQ(otelagent_span_start("child", 5, &o, &child), OTELAGENT_OK);
  otelagent_span_context cc{};
  otelagent_span_get_context(child, &cc);
  EXPECT_EQ(std::memcmp(cc.trace_id, rc.trace_id, 16), 0);
  EXPECT_NE(std::memcmp(cc.span_id, rc.span_id, 8), 0);
  // Ended on another thread.
  std::thread([&] { EXPECT_EQ(otelagent_span_end(child, 0), OTELAGENT_OK); }).join();
  EXPECT_EQ(otelagent_span_end(root, 0), OTELAGENT_OK);
  EXPECT_EQ(otelagent_span_end(root, 0), OTELAGENT_E_ENDED);  // double end detected
  auto s = stats();
  EXPECT_EQ(s.spans_started, 2u);
  EXPECT_EQ(s.spans_ended, 2u);
  EXPECT_EQ(s.spans_open, 0u);
}

TEST_F(Agent, BadArgumentsGetAStatusAndTheSpanStillWorks) {
  otelagent_span *s = nullptr;
  EXPECT_EQ(otelagent_span_start(nullptr, 5, nullptr, &s), OTELAGENT_E_INVALID);
  otelagent_span_options bad{};
  bad.struct_size = 2;  // too small to hold `kind`
  EXPECT_EQ(otelagent_span_start("x", 1, &bad, &s), OTELAGENT_E_INVALID);
  ASSERT_EQ(otelagent_span_start("x", 1, nullptr, &s), OTELAGENT_OK);
  EXPECT_EQ(otelagent_span_set_str(s, nullptr, 3, "v", 1), OTELAGENT_E_INVALID);
  EXPECT_EQ(otelagent_span_set_str(s, "k", 1, nullptr, 1), OTELAGENT_E_INVALID);
  EXPECT_EQ(otelagent_span_set_str(s, "", 0, "v", 1), OTELAGENT_E_INVALID);
  otelagent_attr a{};
  a.key = "k";
  a.key_len = 1;
  a.type = 77;
  EXPECT_EQ(otelagent_span_set_attr(s, &a), OTELAGENT_E_INVALID);
  EXPECT_EQ(otelagent_span_set_attr(s, nullptr), OTELAGENT_E_INVALID);
  EXPECT_EQ(otelagent_span_set_status(s, 9, nullptr, 0), OTELAGENT_E_INVALID);
  EXPECT_EQ(otelagent_span_set_str(s, "ok", 2, "\xFF\xFE", 2), OTELAGENT_OK);  // repaired later
  EXPECT_EQ(otelagent_span_set_name(s, nullptr, 2), OTELAGENT_E_INVALID);
  EXPECT_EQ(otelagent_span_set_name(s, "renamed", 7), OTELAGENT_OK);
  EXPECT_EQ(otelagent_span_end(s, 0), OTELAGENT_OK);
}

TEST_F(Agent, OverlongValuesAreTruncatedAndCounted) {
  otelagent_span *s = nullptr;
  ASSERT_EQ(otelagent_span_start("x", 1, nullptr, &s), OTELAGENT_OK);
  std::string big(OTELAGENT_MAX_VALUE_BYTES + 100, 'a');
  EXPECT_EQ(otelagent_span_set_str(s, "big", 3, big.data(), big.size()), OTELAGENT_OK);
  for (int i = 0; i < OTELAGENT_MAX_ATTRS + 10; ++i) {
    std::string k = "k" + std::to_string(i);
    otelagent_span_set_int64(s, k.data(), k.size(), i);
  }
  EXPECT_EQ(otelagent_span_end(s, 0), OTELAGENT_OK);
  EXPECT_EQ(stats().values_truncated, 1u);
}

TEST_F(Agent, OpenSpanLimitIsEnforcedAndCounted) {
  std::vector<otelagent_span *> open;
  int refused = 0;
  for (int i = 0; i < OTELAGENT_MAX_OPEN_SPANS_PER_THREAD + 5; ++i) {
    otelagent_span *s = nullptr;
    int rc = otelagent_span_start("x", 1, nullptr, &s);
    if (rc == OTELAGENT_OK)
      open.push_back(s);
    else if (rc == OTELAGENT_E_SPAN_LIMIT)
      ++refused;
  }
  EXPECT_EQ(open.size(), static_cast<size_t>(OTELAGENT_MAX_OPEN_SPANS_PER_THREAD));
  EXPECT_EQ(refused, 5);
  EXPECT_EQ(stats().spans_open, static_cast<uint64_t>(OTELAGENT_MAX_OPEN_SPANS_PER_THREAD));
  EXPECT_EQ(stats().spans_dropped_span_limit, 5u);
  for (auto *s : open) otelagent_span_end(s, 0);
  EXPECT_EQ(stats().spans_open, 0u);
}

TEST_F(Agent, RecordSpanValidatesAndQueues) {
  auto rec = otelagent_test::RecordBuilder().name("whole").attr_str("k", "v").build();
  EXPECT_EQ(otelagent_record_span(rec.data(), rec.size()), OTELAGENT_OK);
  EXPECT_EQ(otelagent_record_span(rec.data(), rec.size() - 1), OTELAGENT_E_BAD_RECORD);
  EXPECT_EQ(otelagent_record_span(nullptr, 10), OTELAGENT_E_BAD_RECORD);
  auto s = stats();
  EXPECT_EQ(s.spans_recorded, 1u);
  EXPECT_EQ(s.queue_depth, 1u);
}

TEST_F(Agent, ContextNewInheritsTraceAndSamples) {
  otelagent_span_context root{}, child{};
  ASSERT_EQ(otelagent_span_context_new(nullptr, &root), OTELAGENT_OK);
  EXPECT_EQ(root.trace_flags & 1, 1);
  ASSERT_EQ(otelagent_span_context_new(&root, &child), OTELAGENT_OK);
  EXPECT_EQ(std::memcmp(root.trace_id, child.trace_id, 16), 0);
  EXPECT_EQ(child.sampling, OTELAGENT_SAMPLING_DECIDED);
}

class SampledOff : public Agent {
 protected:
  void SetUp() override { start({{"OTEL_TRACES_SAMPLER", "always_off"}}); }
};

TEST_F(SampledOff, UnsampledSpansHaveContextButRecordNothing) {
  otelagent_span *s = nullptr;
  ASSERT_EQ(otelagent_span_start("x", 1, nullptr, &s), OTELAGENT_OK);
  EXPECT_EQ(otelagent_span_is_recording(s), 0);
  otelagent_span_context c{};
  ASSERT_EQ(otelagent_span_get_context(s, &c), OTELAGENT_OK);
  EXPECT_EQ(c.trace_flags & 1, 0);
  EXPECT_EQ(otelagent_span_set_str(s, "k", 1, "v", 1), OTELAGENT_OK);
  EXPECT_EQ(otelagent_span_end(s, 0), OTELAGENT_OK);
  auto st = stats();
  EXPECT_EQ(st.spans_sampled_out, 1u);
  EXPECT_EQ(st.queue_depth, 0u);
}

class SmallRing : public Agent {
 protected:
  // The smallest ring and a queue of one span: most spans must be dropped
  // while the exporter cannot reach its collector.
  void SetUp() override {
    start({{"OTELAGENT_RING_BYTES", "131072"},
           {"OTEL_BSP_MAX_QUEUE_SIZE", "1"},
           {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1"}});
  }
};

TEST_F(SmallRing, FullRingDropsAreCountedExactly) {
  // The exporter drains rings even while it drops at its queue, so only one
  // that cannot run lets a ring fill: no file descriptor is left for it to
  // start (it is retried later; spans stay in the ring meanwhile).
  otelagent_test::NoNewFds no_fds;
  std::thread t([] {  // a fresh thread gets a ring of the configured size
    int ok = 0, full = 0;
    for (int i = 0; i < 5000; ++i) {
      otelagent_span *s = nullptr;
      ASSERT_EQ(otelagent_span_start("span", 4, nullptr, &s), OTELAGENT_OK);
      otelagent_span_set_str(s, "payload", 7, std::string(200, 'p').data(), 200);
      int rc = otelagent_span_end(s, 0);
      rc == OTELAGENT_OK ? ++ok : (rc == OTELAGENT_E_RING_FULL ? ++full : 0);
    }
    EXPECT_GT(full, 0);
    auto st = stats();
    EXPECT_EQ(st.spans_dropped_ring_full, static_cast<uint64_t>(full));
    EXPECT_EQ(st.spans_ended, 5000u);
  });
  t.join();
}

}  // namespace
