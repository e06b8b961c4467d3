// The propagation calls of the C ABI: extract and inject with the separate
// tracestate, bounded reads of callers' buffers, and refusals of contexts
// that must never become headers.
#include <gtest/gtest.h>
#include <otelagent/otelagent.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <string>

namespace {

const std::string kTp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST(ContextCApi, ExtractPrefersTraceContextAndNormalisesBaggage) {
  otelagent_header h[] = {
      {{"TraceParent", 11}, {kTp.data(), kTp.size()}},
      {{"tracestate", 10}, {"a=1", 3}},
      {{"baggage", 7}, {"k=v,bad key=1", 13}},
  };
  otelagent_span_context c{};
  char ts[OTELAGENT_TRACESTATE_MAX], bag[64];
  size_t ts_len = 99, bag_len = 99;
  ASSERT_EQ(otelagent_context_extract(h, 3, &c, ts, sizeof ts, &ts_len, bag, sizeof bag, &bag_len),
            OTELAGENT_OK);
  EXPECT_EQ(std::string(ts, ts_len), "a=1");
  EXPECT_EQ(std::string(bag, bag_len), "k=v");
  EXPECT_EQ(c.is_remote, 1);
  char out[256];
  size_t n = 0;
  ASSERT_EQ(otelagent_context_inject(&c, ts, ts_len, "k=v", 3, out, sizeof out, &n), OTELAGENT_OK);
  EXPECT_EQ(std::string(out, n), "traceparent: " + kTp + "\r\ntracestate: a=1\r\nbaggage: k=v\r\n");
  EXPECT_EQ(otelagent_context_inject(&c, nullptr, 0, nullptr, 0, out, 10, &n),
            OTELAGENT_E_NO_SPACE);
  EXPECT_EQ(otelagent_context_extract(nullptr, 1, &c, nullptr, 0, nullptr, nullptr, 0, nullptr),
            OTELAGENT_E_INVALID);
  EXPECT_EQ(otelagent_context_extract(h + 1, 2, &c, nullptr, 0, nullptr, nullptr, 0, nullptr),
            OTELAGENT_E_NOT_FOUND);
}

// Issue 5, item 10: several tracestate field lines are one list.
TEST(ContextCApi, SeveralTracestateLinesAreCombined) {
  otelagent_header h[] = {
      {{"traceparent", 11}, {kTp.data(), kTp.size()}},
      {{"tracestate", 10}, {"a=1,b=2", 7}},
      {{"Tracestate", 10}, {"c=3", 3}},
  };
  otelagent_span_context c{};
  char ts[OTELAGENT_TRACESTATE_MAX];
  size_t ts_len = 0;
  ASSERT_EQ(otelagent_context_extract(h, 3, &c, ts, sizeof ts, &ts_len, nullptr, 0, nullptr),
            OTELAGENT_OK);
  EXPECT_EQ(std::string(ts, ts_len), "a=1,b=2,c=3");
}

// Issue 5, item 12: an all-zero context never becomes a header.
TEST(ContextCApi, AllZeroContextIsRefused) {
  otelagent_span_context zero{};
  char buf[128];
  size_t n = 0;
  EXPECT_EQ(otelagent_traceparent_format(&zero, buf, sizeof buf, &n), OTELAGENT_E_INVALID);
  EXPECT_EQ(otelagent_xray_format(&zero, buf, sizeof buf, &n), OTELAGENT_E_INVALID);
  EXPECT_EQ(otelagent_context_inject(&zero, nullptr, 0, nullptr, 0, buf, sizeof buf, &n),
            OTELAGENT_E_INVALID);
  otelagent_span_context half{};
  half.trace_id[15] = 1;  // a trace id but no span id
  EXPECT_EQ(otelagent_traceparent_format(&half, buf, sizeof buf, &n), OTELAGENT_E_INVALID);
}

// A buffer that ends exactly at an unmapped page: reading one byte past it
// faults, so these tests prove how far each call reads.
class GuardedBuffer {
 public:
  explicit GuardedBuffer(const std::string &content) {
    page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    size_t pages = (content.size() + page_ - 1) / page_ + 1;
    base_ = static_cast<char *>(mmap(nullptr, (pages + 1) * page_, PROT_READ | PROT_WRITE,
                                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    total_ = (pages + 1) * page_;
    mprotect(base_ + pages * page_, page_, PROT_NONE);
    data_ = base_ + pages * page_ - content.size();
    std::memcpy(data_, content.data(), content.size());
  }
  ~GuardedBuffer() { munmap(base_, total_); }
  const char *data() const { return data_; }

 private:
  size_t page_, total_;
  char *base_, *data_;
};

// Issue 5, item 17: a valid pointer with a SIZE_MAX length (the ctypes
// "NUL-terminated" convention, here without any NUL before the guard page)
// is read no further than the call's maximum.
TEST(ContextCApi, HugeLengthsReadNoFurtherThanTheMaximum) {
  const std::string filler(100, 'a');  // no NUL: strnlen stops at the maximum
  GuardedBuffer g(filler + std::string(OTELAGENT_MAX_BAGGAGE + 10, 'b'));
  const char *p = g.data();
  otelagent_span_context c{};
  char buf[16384];
  size_t n = 0;
  EXPECT_EQ(otelagent_traceparent_parse(p, SIZE_MAX, &c), OTELAGENT_E_TOO_LONG);
  EXPECT_EQ(otelagent_xray_parse(p, SIZE_MAX, &c), OTELAGENT_E_TOO_LONG);
  EXPECT_EQ(otelagent_baggage_normalize(p, SIZE_MAX, buf, sizeof buf, &n), OTELAGENT_E_TOO_LONG);
  EXPECT_EQ(otelagent_tracestate_normalize(p, SIZE_MAX, buf, sizeof buf, &n), OTELAGENT_E_TOO_LONG);
  otelagent_span_context valid{};
  ASSERT_EQ(otelagent_traceparent_parse(kTp.data(), kTp.size(), &valid), OTELAGENT_OK);
  EXPECT_EQ(otelagent_context_inject(&valid, nullptr, 0, p, SIZE_MAX, buf, sizeof buf, &n),
            OTELAGENT_E_TOO_LONG);
  EXPECT_EQ(otelagent_context_inject(&valid, p, SIZE_MAX, nullptr, 0, buf, sizeof buf, &n),
            OTELAGENT_E_TOO_LONG);
  // Explicit lengths over the maximum are refused the same way.
  EXPECT_EQ(otelagent_traceparent_parse(p, OTELAGENT_MAX_TRACEPARENT + 1, &c),
            OTELAGENT_E_TOO_LONG);
  // In extract, an over-long header is ignored like an invalid one.
  otelagent_header h[] = {{{"traceparent", 11}, {p, SIZE_MAX}}, {{"baggage", 7}, {p, SIZE_MAX}}};
  size_t bag_len = 1;
  EXPECT_EQ(otelagent_context_extract(h, 2, &c, nullptr, 0, nullptr, buf, sizeof buf, &bag_len),
            OTELAGENT_E_NOT_FOUND);
  EXPECT_EQ(bag_len, 0u);
}

TEST(ContextCApi, NulTerminatedInputs) {
  const std::string tp_nul = kTp + '\0';
  otelagent_span_context c{};
  ASSERT_EQ(otelagent_traceparent_parse(tp_nul.c_str(), OTELAGENT_NTS, &c), OTELAGENT_OK);
  EXPECT_EQ(c.trace_flags, 1);
  EXPECT_EQ(otelagent_traceparent_parse(nullptr, OTELAGENT_NTS, &c), OTELAGENT_E_INVALID);
  char buf[64];
  size_t n = 0;
  ASSERT_EQ(otelagent_tracestate_normalize(" a=1 ,b=2", OTELAGENT_NTS, buf, sizeof buf, &n),
            OTELAGENT_OK);
  EXPECT_EQ(std::string(buf, n), "a=1,b=2");
}

// Issue 5, item 12, end to end through the C ABI: an X-Ray parent with
// Sampled=? is extracted as deferred, its child is sampled by the local
// sampler (not dropped), and the header it sends on carries the decision.
TEST(ContextCApi, XrayDeferredDecisionReachesTheSampler) {
  otelagent_config *cfg = otelagent_config_new();
  auto set = [&](const char *k, const char *v) {
    ASSERT_EQ(otelagent_config_set(cfg, k, std::strlen(k), v, std::strlen(v)), OTELAGENT_OK);
  };
  set("OTEL_PROPAGATORS", "xray");
  set("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1");
  ASSERT_EQ(otelagent_start(cfg), OTELAGENT_OK);
  otelagent_config_free(cfg);
  const std::string xray =
      "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=?";
  otelagent_header h[] = {{{"X-Amzn-Trace-Id", 15}, {xray.data(), xray.size()}}};
  otelagent_span_context parent{};
  ASSERT_EQ(otelagent_context_extract(h, 1, &parent, nullptr, 0, nullptr, nullptr, 0, nullptr),
            OTELAGENT_OK);
  EXPECT_EQ(parent.sampling, OTELAGENT_SAMPLING_DEFERRED);
  EXPECT_EQ(parent.trace_flags & 1, 0);
  char buf[256];
  size_t n = 0;
  ASSERT_EQ(otelagent_xray_format(&parent, buf, sizeof buf, &n), OTELAGENT_OK);
  EXPECT_EQ(std::string(buf, n), xray);  // a deferred decision is passed on as such
  otelagent_span_options o{};
  o.struct_size = sizeof o;
  o.parent = &parent;
  otelagent_span *s = nullptr;
  ASSERT_EQ(otelagent_span_start("downstream", OTELAGENT_NTS, &o, &s), OTELAGENT_OK);
  EXPECT_EQ(otelagent_span_is_recording(s), 1);
  otelagent_span_context child{};
  ASSERT_EQ(otelagent_span_get_context(s, &child), OTELAGENT_OK);
  ASSERT_EQ(otelagent_xray_format(&child, buf, sizeof buf, &n), OTELAGENT_OK);
  EXPECT_NE(std::string(buf, n).find(";Sampled=1"), std::string::npos);
  otelagent_span_end(s, 0);
  otelagent_shutdown(0);
}

}  // namespace
