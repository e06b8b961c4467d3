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
#include "support/spool_support.h"

namespace {

using otelagent_bench::DiscardServer;
using otelagent_test::stats;
using Received = otelagent_test::SeqReceiver;
using otelagent_test::emit_seq;
using otelagent_test::start_spooled;
using otelagent_test::wait_until;
namespace pb = opentelemetry::proto;

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
  ASSERT_EQ(start_spooled("http://127.0.0.1:1", spool_), OTELAGENT_OK);
  emit_seq(0, 3000);
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
  ASSERT_EQ(start_spooled("http://127.0.0.1:" + std::to_string(server.port()), spool_),
            OTELAGENT_OK);
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
  ASSERT_EQ(start_spooled("http://127.0.0.1:1", spool_), OTELAGENT_OK);
  emit_seq(0, 2000);  // the collector is away: all of it waits on disk
  ASSERT_TRUE(wait_until([&] { return since().spans_spooled >= 2000; }));
  EXPECT_EQ(since().spans_exported, 0u);
  otelagent_shutdown(100);
  // The same directory, the collector back: the backlog goes first, then
  // the new spans, and nothing twice.
  ASSERT_EQ(start_spooled("http://127.0.0.1:" + std::to_string(ok.port()), spool_), OTELAGENT_OK);
  emit_seq(2000, 3000);
  ASSERT_EQ(otelagent_flush(30000), OTELAGENT_OK);
  ASSERT_TRUE(wait_until([&] { return got.size() >= 3000; })) << got.size();
  EXPECT_EQ(got.unique(), 3000u);
  EXPECT_EQ(got.size(), 3000u);
  std::lock_guard<std::mutex> lk(order_mu);
  ASSERT_FALSE(first_of_request.empty());
  EXPECT_LT(first_of_request.front(), 2000) << "the backlog was not sent first";
}

TEST_F(Durable, TheCapDropsTheOldestAndCountsThem) {
  ASSERT_EQ(start_spooled("http://127.0.0.1:1", spool_, {{"OTELAGENT_SPOOL_MAX_BYTES", "65536"}}),
            OTELAGENT_OK);
  // About 300 KB of padding: far over the 64 KiB cap (compression none).
  emit_seq(0, 2000, 150);
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
  ASSERT_EQ(start_spooled("http://127.0.0.1:" + std::to_string(server.port()), spool_),
            OTELAGENT_OK);
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
  ASSERT_EQ(start_spooled("http://127.0.0.1:" + std::to_string(server.port()), file + "/spool"),
            OTELAGENT_OK);
  emit_seq(0, 50);
  ASSERT_EQ(otelagent_flush(30000), OTELAGENT_OK);
  EXPECT_EQ(got.unique(), 50u);
  EXPECT_EQ(since().spans_spooled, 0u);
}

}  // namespace
