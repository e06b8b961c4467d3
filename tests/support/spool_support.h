// What the tests of the durable exporter share (durable_test, the review's
// spool_review_test): an agent started on a spool directory with short
// delays, spans that carry a unique `seq`, and a receiver that decodes them.
#pragma once

#include <gtest/gtest.h>
#include <otelagent/otelagent.h>

#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"

namespace otelagent_test {

// Starts the agent exporting to `endpoint` with `spool` as its spool
// directory (none when empty); big rings, as the tests emit in tight loops.
inline int start_spooled(const std::string &endpoint, const std::string &spool,
                         std::vector<std::pair<std::string, std::string>> extra = {}) {
  otelagent_config *cfg = otelagent_config_new();
  auto set = [&](const std::string &k, const std::string &v) {
    EXPECT_EQ(otelagent_config_set(cfg, k.data(), k.size(), v.data(), v.size()), OTELAGENT_OK);
  };
  set("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint);
  if (!spool.empty()) set("OTELAGENT_SPOOL_DIR", spool);
  set("OTEL_BSP_SCHEDULE_DELAY", "20");
  set("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "100");
  set("OTELAGENT_RETRY_INITIAL_MS", "10");
  set("OTELAGENT_RETRY_MAX_MS", "50");
  set("OTELAGENT_RING_BYTES", "4194304");
  for (auto &[k, v] : extra) set(k, v);
  const int rc = otelagent_start(cfg);
  otelagent_config_free(cfg);
  return rc;
}

// Spans `from` .. `to` - 1, each with its int attribute `seq` (and, when
// `padding` is not 0, a string of that many bytes, to fill disk).
inline void emit_seq(int from, int to, size_t padding = 0) {
  const std::string pad(padding, 'p');
  for (int i = from; i < to; ++i) {
    otelagent_span *s = nullptr;
    ASSERT_EQ(otelagent_span_start("spooled", 7, nullptr, &s), OTELAGENT_OK);
    ASSERT_EQ(otelagent_span_set_int64(s, "seq", 3, i), OTELAGENT_OK);
    if (padding != 0) {
      ASSERT_EQ(otelagent_span_set_str(s, "pad", 3, pad.data(), pad.size()), OTELAGENT_OK);
    }
    ASSERT_EQ(otelagent_span_end(s, 0), OTELAGENT_OK);
  }
}

// Decodes every request body and keeps each span's seq, repeats included.
struct SeqReceiver {
  std::mutex mu;
  std::multiset<int64_t> seqs;
  void add(std::string_view body) {
    opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest req;
    EXPECT_TRUE(req.ParseFromArray(body.data(), static_cast<int>(body.size())));
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

}  // namespace otelagent_test
