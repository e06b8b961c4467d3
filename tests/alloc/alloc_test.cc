// Heap allocations on the host thread while it emits: the goal is zero, for
// the span calls and for the one-crossing record call. malloc and operator
// new are both hooked (support/alloc_hooks.cc).
#include <gtest/gtest.h>
#include <otelagent/otelagent.h>

#include <cstring>

#include "support/alloc_hooks.h"
#include "support/span_shape.h"

namespace {

class Alloc : public ::testing::Test {
 protected:
  void SetUp() override {
    otelagent_config *cfg = otelagent_config_new();
    const char *ep = "http://127.0.0.1:1";
    otelagent_config_set(cfg, "OTEL_EXPORTER_OTLP_ENDPOINT", 27, ep, std::strlen(ep));
    // Room for every span of a test: this test counts allocations, not drops.
    otelagent_config_set(cfg, "OTELAGENT_RING_BYTES", 20, "8388608", 7);
    ASSERT_EQ(otelagent_start(cfg), OTELAGENT_OK);
    otelagent_config_free(cfg);
    // The first span registers this thread and starts the exporter: the
    // one-time cold path, not measured.
    otelagent_test::emit_reference_span(0);
  }
  void TearDown() override { otelagent_shutdown(0); }
};

TEST_F(Alloc, SpanCallsAllocateNothing) {
  otelagent_test::alloc_count_begin();
  int ok = 0;
  for (uint64_t i = 0; i < 2000; ++i) ok += otelagent_test::emit_reference_span(i) == OTELAGENT_OK;
  auto c = otelagent_test::alloc_count_end();
  EXPECT_EQ(ok, 2000);
  EXPECT_EQ(c.mallocs, 0u);
  EXPECT_EQ(c.news, 0u);
}

TEST_F(Alloc, RichSpansAllocateNothing) {
  otelagent_span_context parent{};
  otelagent_span_context_new(nullptr, &parent);
  otelagent_attr ev{};
  ev.key = "k";
  ev.key_len = 1;
  ev.type = OTELAGENT_TYPE_INT64;
  otelagent_link link{&parent, {"k=v", 3}, &ev, 1};
  otelagent_span_options o{};
  o.struct_size = sizeof o;
  o.parent = &parent;
  o.links = &link;
  o.link_count = 1;
  o.scope_name = {"scope", 5};
  int64_t arr[3] = {1, 2, 3};
  otelagent_test::alloc_count_begin();
  for (int i = 0; i < 500; ++i) {
    otelagent_span *s = nullptr;
    ASSERT_EQ(otelagent_span_start("rich", 4, &o, &s), OTELAGENT_OK);
    otelagent_attr a{};
    a.key = "arr";
    a.key_len = 3;
    a.type = OTELAGENT_TYPE_INT64_ARRAY;
    a.value.array = {arr, 3};
    otelagent_span_set_attr(s, &a);
    otelagent_span_add_event(s, "ev", 2, 0, &ev, 1);
    otelagent_span_record_exception(s, "E", 1, "m", 1, "st", 2, 0);
    otelagent_span_set_status(s, OTELAGENT_STATUS_ERROR, "x", 1);
    otelagent_span_context c{};
    otelagent_span_get_context(s, &c);
    otelagent_span_end(s, 0);
  }
  auto c = otelagent_test::alloc_count_end();
  EXPECT_EQ(c.mallocs, 0u);
  EXPECT_EQ(c.news, 0u);
}

TEST_F(Alloc, RecordCallAllocatesNothing) {
  auto rec = otelagent_test::reference_record();
  otelagent_span_context ids{};
  otelagent_test::alloc_count_begin();
  for (int i = 0; i < 2000; ++i) {
    otelagent_span_context_new(nullptr, &ids);
    std::memcpy(rec.data() + otelagent_test::RecordBuilder::kTraceIdAt, ids.trace_id, 16);
    std::memcpy(rec.data() + otelagent_test::RecordBuilder::kSpanIdAt, ids.span_id, 8);
    ASSERT_EQ(otelagent_record_span(rec.data(), rec.size()), OTELAGENT_OK);
  }
  auto c = otelagent_test::alloc_count_end();
  EXPECT_EQ(c.mallocs, 0u);
  EXPECT_EQ(c.news, 0u);
}

TEST_F(Alloc, TheHooksDoCount) {
  // The counter itself must work, or the tests above prove nothing.
  otelagent_test::alloc_count_begin();
  void *volatile p = std::malloc(10);
  int *volatile q = new int(3);
  auto c = otelagent_test::alloc_count_end();
  std::free(p);
  delete q;
  EXPECT_EQ(c.mallocs, 1u);
  EXPECT_EQ(c.news, 1u);
}

}  // namespace
