// Overload: a collector that is down or slower than the spans come must not
// make the host threads' rings fill (the drops happen, counted, at the
// exporter's queue), and the spans that are kept come fairly from every
// thread.
#include <gtest/gtest.h>
#include <otelagent/otelagent.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "bench/discard_server.h"
#include "core/thread_state.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "support/agent_stats.h"

namespace {

using otelagent_bench::DiscardServer;
namespace pb = opentelemetry::proto;

using otelagent_test::stats;

int start(const std::string &endpoint, std::vector<std::pair<std::string, std::string>> extra) {
  otelagent_config *cfg = otelagent_config_new();
  auto set = [&](const std::string &k, const std::string &v) {
    EXPECT_EQ(otelagent_config_set(cfg, k.data(), k.size(), v.data(), v.size()), OTELAGENT_OK);
  };
  set("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint);
  set("OTEL_BSP_SCHEDULE_DELAY", "3600000");
  for (auto &[k, v] : extra) set(k, v);
  int rc = otelagent_start(cfg);
  otelagent_config_free(cfg);
  return rc;
}

void emit(const char *name, int n) {
  for (int i = 0; i < n; ++i) {
    otelagent_span *s = nullptr;
    ASSERT_EQ(otelagent_span_start(name, 1, nullptr, &s), OTELAGENT_OK);
    ASSERT_EQ(otelagent_span_end(s, 0), OTELAGENT_OK);
  }
}

using otelagent_test::wait_until;

// Issue 5, "Overload and faults": the exporter stopped draining while its
// queue was full, so with the collector down the rings filled and every
// further span cost the host a drop and a wake-up.
TEST(Overload, CollectorDownDropsAtTheQueueNotInTheRings) {
  // Port 1 on loopback: connection refused; retried with a long backoff.
  ASSERT_EQ(start("http://127.0.0.1:1", {{"OTEL_BSP_MAX_QUEUE_SIZE", "128"},
                                         {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "64"},
                                         {"OTELAGENT_RING_BYTES", "131072"}}),
            OTELAGENT_OK);
  // 40 rounds of 256 spans: ten times what a 128 KiB ring holds. Each round
  // is a multiple of the batch, so its last span wakes the exporter; the next
  // round waits until the exporter has brought every ring back to at most
  // half full.
  auto rings_at_most_half_full = [] {
    for (otelagent::ThreadState *t = otelagent::thread_states(); t != nullptr; t = t->next)
      if (t->ring.used() > t->ring.capacity() / 2) return false;
    return true;
  };
  for (int round = 0; round < 40; ++round) {
    emit("x", 256);
    ASSERT_TRUE(wait_until(rings_at_most_half_full))
        << "the exporter lets the rings fill: " << stats().queue_depth << " queued";
  }
  const otelagent_stats s = stats();
  EXPECT_EQ(s.spans_dropped_ring_full, 0u);
  EXPECT_GT(s.spans_dropped_queue_full, 0u);
  EXPECT_EQ(s.spans_exported, 0u);
  // Every span is queued or counted as dropped.
  EXPECT_EQ(s.spans_ended,
            s.queue_depth + s.spans_dropped_queue_full + s.spans_dropped_export_failed);
  otelagent_shutdown(0);
}

// Issue 5: draining visited threads newest-first and stopped when the queue
// was full, so under overload the older threads took all the drops.
TEST(Overload, KeptSpansComeFairlyFromEveryThread) {
  std::mutex mu;
  uint64_t kept[2] = {0, 0};
  // A collector that takes 5 ms per request: slower than the threads emit.
  DiscardServer server(200, 5, [&](std::string_view body) {
    pb::collector::trace::v1::ExportTraceServiceRequest req;
    if (!req.ParseFromArray(body.data(), static_cast<int>(body.size()))) return;
    std::lock_guard<std::mutex> lk(mu);
    for (const auto &rs : req.resource_spans())
      for (const auto &ss : rs.scope_spans())
        for (const auto &sp : ss.spans())
          if (sp.name() == "A" || sp.name() == "B") ++kept[sp.name() == "A" ? 0 : 1];
  });
  ASSERT_EQ(start("http://127.0.0.1:" + std::to_string(server.port()),
                  {{"OTEL_BSP_MAX_QUEUE_SIZE", "128"},
                   {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "64"},
                   {"OTELAGENT_RING_BYTES", "131072"}}),
            OTELAGENT_OK);
  constexpr int kRounds = 60;
  std::barrier sync(2);
  auto worker = [&](const char *name) {
    for (int round = 0; round < kRounds; ++round) {
      emit(name, 128);
      sync.arrive_and_wait();
      // Pace the rounds by the collector: one more request per round.
      const uint64_t requests = server.requests();
      if (name[0] == 'A') wait_until([&] { return server.requests() > requests; });
      sync.arrive_and_wait();
    }
  };
  std::thread a(worker, "A");
  std::thread b(worker, "B");
  a.join();
  b.join();
  uint64_t ka, kb;
  {
    std::lock_guard<std::mutex> lk(mu);
    ka = kept[0];
    kb = kept[1];
  }
  otelagent_shutdown(0);
  ASSERT_GT(ka + kb, 0u);
  // Equal producers: each should get about half of what was kept.
  EXPECT_GE(ka * 4, ka + kb) << "A kept " << ka << ", B kept " << kb;
  EXPECT_GE(kb * 4, ka + kb) << "A kept " << ka << ", B kept " << kb;
  EXPECT_EQ(stats().spans_dropped_ring_full, 0u);
}

}  // namespace
