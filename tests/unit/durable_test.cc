// The exporter with a disk spool (issue 8): what the collector has not
// acknowledged is kept on disk, counted, and sent by the next agent started
// with the same directory, exactly once when nothing else goes wrong.
#include <gtest/gtest.h>
#include <otelagent/otelagent.h>
#include <stdlib.h>

#include <cstdio>

#include <filesystem>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "bench/discard_server.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "support/agent_stats.h"

namespace {

using otelagent_bench::DiscardServer;
using otelagent_test::stats;
using otelagent_test::wait_until;
namespace pb = opentelemetry::proto;

int start(const std::string &endpoint, const std::string &spool,
          std::vector<std::pair<std::string, std::string>> extra = {}) {
  otelagent_config *cfg = otelagent_config_new();
  auto set = [&](const std::string &k, const std::string &v) {
    EXPECT_EQ(otelagent_config_set(cfg, k.data(), k.size(), v.data(), v.size()), OTELAGENT_OK);
  };
  set("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint);
  set("OTELAGENT_SPOOL_DIR", spool);
  set("OTEL_BSP_SCHEDULE_DELAY", "20");
  set("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "100");
  set("OTELAGENT_RETRY_INITIAL_MS", "10");
  set("OTELAGENT_RETRY_MAX_MS", "50");
  // Room for a burst: the tests emit in tight loops.
  set("OTELAGENT_RING_BYTES", "4194304");
  for (auto &[k, v] : extra) set(k, v);
  int rc = otelagent_start(cfg);
  otelagent_config_free(cfg);
  return rc;
}

// Spans carrying `seq` (and optionally a padding attribute, to fill disk).
void emit(int from, int to, size_t padding = 0) {
  const std::string pad(padding, 'p');
  for (int i = from; i < to; ++i) {
    otelagent_span *s = nullptr;
    ASSERT_EQ(otelagent_span_start("durable", 7, nullptr, &s), OTELAGENT_OK);
    ASSERT_EQ(otelagent_span_set_int64(s, "seq", 3, i), OTELAGENT_OK);
    if (padding != 0) {
      ASSERT_EQ(otelagent_span_set_str(s, "pad", 3, pad.data(), pad.size()), OTELAGENT_OK);
    }
    ASSERT_EQ(otelagent_span_end(s, 0), OTELAGENT_OK);
  }
}

// Decodes every request and keeps each span's seq, counting repeats.
struct Received {
  std::mutex mu;
  std::multiset<int64_t> seqs;
  void add(std::string_view body) {
    pb::collector::trace::v1::ExportTraceServiceRequest req;
    ASSERT_TRUE(req.ParseFromArray(body.data(), static_cast<int>(body.size())));
    std::lock_guard<std::mutex> lk(mu);
    for (auto &rs : req.resource_spans())
      for (auto &ss : rs.scope_spans())
        for (auto &sp : ss.spans())
          for (auto &kv : sp.attributes())
            if (kv.key() == "seq") seqs.insert(kv.value().int_value());
  }
  size_t size() {
    std::lock_guard<std::mutex> lk(mu);
    return seqs.size();
  }
  size_t unique() {
    std::lock_guard<std::mutex> lk(mu);
    return std::set<int64_t>(seqs.begin(), seqs.end()).size();
  }
};

// Shuts the agent down when it goes out of scope: declared after a local
// server, so that the agent has let go of its connection before the
// server's destructor waits for it.
struct AgentScope {
  ~AgentScope() { otelagent_shutdown(1000); }
};

class Durable : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/otelagent-durable-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    spool_ = dir_ + "/spool";  // created by the agent
    s0_ = stats();
  }
  void TearDown() override {
    otelagent_shutdown(1000);
    std::filesystem::remove_all(dir_);
  }
  size_t segments() {
    size_t n = 0;
    if (!std::filesystem::exists(spool_)) return 0;
    for (auto &e : std::filesystem::directory_iterator(spool_)) n += e.path().extension() == ".seg";
    return n;
  }
  // The counters since the test began (the process's run on from the tests
  // before); gauges (spool_bytes, ...) are read from stats() directly.
  otelagent_stats since() const {
    otelagent_stats s = stats();
    auto *now = reinterpret_cast<uint64_t *>(reinterpret_cast<char *>(&s) + 8);
    auto *then = reinterpret_cast<const uint64_t *>(reinterpret_cast<const char *>(&s0_) + 8);
    for (size_t i = 0; i < (sizeof s - 8) / 8; ++i) now[i] -= then[i];
    return s;
  }
  std::string dir_, spool_;
  otelagent_stats s0_{};
};

TEST_F(Durable, CollectorDownKeepsEverySpanOnDiskForTheNextAgent) {
  ASSERT_EQ(start("http://127.0.0.1:1", spool_), OTELAGENT_OK);
  emit(0, 3000);
  ASSERT_TRUE(wait_until([&] { return since().spans_spooled >= 3000; }))
      << since().spans_spooled << " spooled";
  EXPECT_EQ(otelagent_shutdown(200), OTELAGENT_E_TIMEOUT);  // nothing was answered
  otelagent_stats s = since();
  EXPECT_EQ(s.spans_exported, 0u);
  EXPECT_EQ(s.spans_dropped_shutdown + s.spans_dropped_export_failed + s.spans_dropped_queue_full +
                s.spans_dropped_spool_full,
            0u);
  EXPECT_GT(segments(), 0u);
  EXPECT_GT(stats().spool_bytes, 0u);

  Received got;
  DiscardServer server(200, 0, [&](std::string_view b) { got.add(b); });
  AgentScope agent_scope;
  ASSERT_EQ(start("http://127.0.0.1:" + std::to_string(server.port()), spool_), OTELAGENT_OK);
  // The new agent has no span of its own: it finds the segments of the one
  // before (its writer lock is free) and sends them.
  ASSERT_TRUE(wait_until([&] { return got.size() >= 3000; })) << got.size() << " received";
  ASSERT_TRUE(wait_until([&] { return segments() == 0; }));
  EXPECT_EQ(got.unique(), 3000u);
  EXPECT_EQ(got.size(), 3000u) << "sent twice";
  s = since();
  EXPECT_EQ(s.spans_replayed, 3000u);
  EXPECT_EQ(s.spans_exported, 3000u);
}

TEST_F(Durable, TheBacklogGoesFirstThenNewSpansAndNothingTwice) {
  Received got;
  std::vector<int64_t> first_of_request;
  std::mutex order_mu;
  DiscardServer ok(200, 0, [&](std::string_view b) {
    got.add(b);
    pb::collector::trace::v1::ExportTraceServiceRequest req;
    req.ParseFromArray(b.data(), static_cast<int>(b.size()));
    std::lock_guard<std::mutex> lk(order_mu);
    first_of_request.push_back(
        req.resource_spans(0).scope_spans(0).spans(0).attributes(0).value().int_value());
  });
  AgentScope agent_scope;
  ASSERT_EQ(start("http://127.0.0.1:1", spool_), OTELAGENT_OK);
  emit(0, 2000);  // the collector is away: all of it waits on disk
  ASSERT_TRUE(wait_until([&] { return since().spans_spooled >= 2000; }));
  EXPECT_EQ(since().spans_exported, 0u);
  otelagent_shutdown(100);
  // The same directory, the collector back: the backlog goes first, then
  // the new spans, and nothing twice.
  ASSERT_EQ(start("http://127.0.0.1:" + std::to_string(ok.port()), spool_), OTELAGENT_OK);
  emit(2000, 3000);
  ASSERT_EQ(otelagent_flush(30000), OTELAGENT_OK);
  ASSERT_TRUE(wait_until([&] { return got.size() >= 3000; })) << got.size();
  EXPECT_EQ(got.unique(), 3000u);
  EXPECT_EQ(got.size(), 3000u);
  std::lock_guard<std::mutex> lk(order_mu);
  ASSERT_FALSE(first_of_request.empty());
  EXPECT_LT(first_of_request.front(), 2000) << "the backlog was not sent first";
}

TEST_F(Durable, TheCapDropsTheOldestAndCountsThem) {
  ASSERT_EQ(start("http://127.0.0.1:1", spool_, {{"OTELAGENT_SPOOL_MAX_BYTES", "65536"}}),
            OTELAGENT_OK);
  // About 300 KB of padding: far over the 64 KiB cap (compression none).
  emit(0, 2000, 150);
  ASSERT_TRUE(wait_until([&] {
    const otelagent_stats s = since();
    return s.spans_spooled + s.spans_spool_write_failed >= 2000;
  }));
  otelagent_shutdown(100);
  const otelagent_stats first = since();
  // Nothing dropped any other way: the cap is the only bound.
  EXPECT_EQ(first.spans_dropped_queue_full + first.spans_dropped_shutdown, 0u);
  EXPECT_GT(first.spans_dropped_spool_full, 0u);
  EXPECT_LE(first.spool_bytes, 65536u);

  Received got;
  DiscardServer server(200, 0, [&](std::string_view b) { got.add(b); });
  AgentScope agent_scope;
  ASSERT_EQ(start("http://127.0.0.1:" + std::to_string(server.port()), spool_), OTELAGENT_OK);
  ASSERT_TRUE(wait_until([&] { return segments() == 0; }));
  ASSERT_TRUE(wait_until([&] { return got.size() + first.spans_dropped_spool_full >= 2000; }));
  // Lost is exactly what was counted: the newest survived.
  EXPECT_EQ(got.size() + first.spans_dropped_spool_full, 2000u);
  EXPECT_EQ(got.unique(), got.size());
  std::lock_guard<std::mutex> lk(got.mu);
  EXPECT_EQ(*got.seqs.rbegin(), 1999);
}

TEST_F(Durable, AnUnusableDirectoryMeansNoSpoolAndAWorkingAgent) {
  // A regular file where the directory's parent should be.
  const std::string file = dir_ + "/file";
  std::FILE *f = std::fopen(file.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fclose(f);
  Received got;
  DiscardServer server(200, 0, [&](std::string_view b) { got.add(b); });
  AgentScope agent_scope;
  ASSERT_EQ(start("http://127.0.0.1:" + std::to_string(server.port()), file + "/spool"),
            OTELAGENT_OK);
  emit(0, 50);
  ASSERT_EQ(otelagent_flush(30000), OTELAGENT_OK);
  EXPECT_EQ(got.unique(), 50u);
  EXPECT_EQ(since().spans_spooled, 0u);
}

}  // namespace
