// The encoder against our schema: what it writes is parsed back with the
// protoc-generated classes of agent/proto and checked field by field.
#include "export/otlp_encoder.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "export/compressor.h"
#include "export/console.h"
#include "export/sanitize.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "support/record_builder.h"

namespace otelagent {
namespace {

using otelagent_test::RecordBuilder;
namespace pb = opentelemetry::proto;

pb::collector::trace::v1::ExportTraceServiceRequest encode(
    std::vector<std::vector<uint8_t>> &recs, const std::vector<ResourceAttr> &res = {}) {
  std::vector<RecordView> views;
  for (auto &r : recs) {
    if (load_u16(r.data() + rec::kInternal) == 0 && load_u32(r.data() + rec::kTruncated) == 0) {
      EXPECT_TRUE(record_validate(r.data(), r.size()));
    }
    views.push_back({r.data(), static_cast<uint32_t>(r.size())});
  }
  std::string out;
  EXPECT_TRUE(encode_request(encode_resource(res), views, &out));
  pb::collector::trace::v1::ExportTraceServiceRequest req;
  EXPECT_TRUE(req.ParseFromString(out));
  return req;
}

TEST(Encoder, EveryFieldOfASpanRoundTrips) {
  const uint8_t parent[8] = {9, 9, 9, 9, 9, 9, 9, 9};
  const uint8_t ltrace[16] = {7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7};
  const uint8_t lspan[8] = {6, 6, 6, 6, 6, 6, 6, 6};
  std::vector<std::vector<uint8_t>> recs;
  recs.push_back(RecordBuilder()
                     .name("GET /x")
                     .text(OTELAGENT_REC_SCOPE_NAME, "scope.a")
                     .text(OTELAGENT_REC_SCOPE_VERSION, "1.2")
                     .text(OTELAGENT_REC_TRACESTATE, "k=v")
                     .text(OTELAGENT_REC_STATUS_MESSAGE, "boom")
                     .parent_id(parent)
                     .kind(OTELAGENT_KIND_SERVER)
                     .status(OTELAGENT_STATUS_ERROR)
                     .flags(0x301)
                     .times(100, 250)
                     .attr_str("s", "v")
                     .attr_i64("i", -42)
                     .attr_f64("d", 2.5)
                     .attr_bool("b", false)
                     .attr_str_array("sa", {"x", "", "z"})
                     .attr_i64_array("ia", {1, -2, 3})
                     .event("ev", 200)
                     .attr_str("ek", "evv", OTELAGENT_REC_EVENT_ATTR)
                     .link(ltrace, lspan, 0x101, "lk=lv")
                     .attr_i64("lattr", 5, OTELAGENT_REC_LINK_ATTR)
                     .build());
  auto req = encode(recs, {{"service.name", "svc", 0, false}, {"process.pid", "", 1234, true}});
  ASSERT_EQ(req.resource_spans_size(), 1);
  const auto &rs = req.resource_spans(0);
  ASSERT_EQ(rs.resource().attributes_size(), 2);
  EXPECT_EQ(rs.resource().attributes(0).value().string_value(), "svc");
  EXPECT_EQ(rs.resource().attributes(1).value().int_value(), 1234);
  ASSERT_EQ(rs.scope_spans_size(), 1);
  EXPECT_EQ(rs.scope_spans(0).scope().name(), "scope.a");
  EXPECT_EQ(rs.scope_spans(0).scope().version(), "1.2");
  ASSERT_EQ(rs.scope_spans(0).spans_size(), 1);
  const auto &s = rs.scope_spans(0).spans(0);
  EXPECT_EQ(s.name(), "GET /x");
  EXPECT_EQ(s.trace_id().size(), 16u);
  EXPECT_EQ(static_cast<uint8_t>(s.trace_id()[0]), 1);
  EXPECT_EQ(static_cast<uint8_t>(s.span_id()[0]), 0xa0);
  EXPECT_EQ(s.parent_span_id(), std::string(8, '\x09'));
  EXPECT_EQ(s.trace_state(), "k=v");
  EXPECT_EQ(s.flags(), 0x301u);
  EXPECT_EQ(s.kind(), pb::trace::v1::Span::SPAN_KIND_SERVER);
  EXPECT_EQ(s.start_time_unix_nano(), 100u);
  EXPECT_EQ(s.end_time_unix_nano(), 250u);
  EXPECT_EQ(s.status().code(), pb::trace::v1::Status::STATUS_CODE_ERROR);
  EXPECT_EQ(s.status().message(), "boom");
  ASSERT_EQ(s.attributes_size(), 6);
  EXPECT_EQ(s.attributes(0).value().string_value(), "v");
  EXPECT_EQ(s.attributes(1).value().int_value(), -42);
  EXPECT_EQ(s.attributes(2).value().double_value(), 2.5);
  EXPECT_TRUE(s.attributes(3).value().has_bool_value());
  EXPECT_FALSE(s.attributes(3).value().bool_value());
  const auto &sa = s.attributes(4).value().array_value();
  ASSERT_EQ(sa.values_size(), 3);
  EXPECT_EQ(sa.values(1).string_value(), "");
  EXPECT_EQ(sa.values(2).string_value(), "z");
  const auto &ia = s.attributes(5).value().array_value();
  ASSERT_EQ(ia.values_size(), 3);
  EXPECT_EQ(ia.values(1).int_value(), -2);
  ASSERT_EQ(s.events_size(), 1);
  EXPECT_EQ(s.events(0).name(), "ev");
  EXPECT_EQ(s.events(0).time_unix_nano(), 200u);
  ASSERT_EQ(s.events(0).attributes_size(), 1);
  EXPECT_EQ(s.events(0).attributes(0).key(), "ek");
  ASSERT_EQ(s.links_size(), 1);
  EXPECT_EQ(s.links(0).trace_id(), std::string(16, '\x07'));
  EXPECT_EQ(s.links(0).span_id(), std::string(8, '\x06'));
  EXPECT_EQ(s.links(0).trace_state(), "lk=lv");
  EXPECT_EQ(s.links(0).flags(), 0x101u);
  ASSERT_EQ(s.links(0).attributes_size(), 1);
  EXPECT_EQ(s.links(0).attributes(0).value().int_value(), 5);
}

TEST(Encoder, SpansAreGroupedByScope) {
  std::vector<std::vector<uint8_t>> recs;
  for (int i = 0; i < 6; ++i)
    recs.push_back(RecordBuilder()
                       .name("s" + std::to_string(i))
                       .text(OTELAGENT_REC_SCOPE_NAME, i % 2 ? "odd" : "even")
                       .build());
  auto req = encode(recs);
  const auto &rs = req.resource_spans(0);
  ASSERT_EQ(rs.scope_spans_size(), 2);
  EXPECT_EQ(rs.scope_spans(0).scope().name(), "even");
  EXPECT_EQ(rs.scope_spans(0).spans_size(), 3);
  EXPECT_EQ(rs.scope_spans(1).spans(2).name(), "s5");
}

TEST(Encoder, StatusMessageOnlyWithErrorAndLastNameWins) {
  std::vector<std::vector<uint8_t>> recs;
  recs.push_back(RecordBuilder()
                     .name("first")
                     .name("renamed")
                     .status(OTELAGENT_STATUS_OK)
                     .text(OTELAGENT_REC_STATUS_MESSAGE, "ignored")
                     .build());
  auto req = encode(recs);
  const auto &s = req.resource_spans(0).scope_spans(0).spans(0);
  EXPECT_EQ(s.name(), "renamed");
  EXPECT_EQ(s.status().code(), pb::trace::v1::Status::STATUS_CODE_OK);
  EXPECT_EQ(s.status().message(), "");
}

TEST(Sanitize, RepairsUtf8AppliesLimitsAndDeduplicates) {
  Limits lim{3, 2, 1, 128, 128, 128};
  auto rec = RecordBuilder()
                 .name("bad\xFF")
                 .attr_str("k", "abcdef")
                 .attr_str("k", "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9")  // same key: replaces
                 .attr_i64("j", 1)
                 .attr_i64("over", 2)  // third distinct key: over the limit of 2
                 .event("e1", 1)
                 .event("e2", 2)  // over the event limit of 1
                 .build();
  RecordView v{rec.data(), static_cast<uint32_t>(rec.size())};
  EXPECT_FALSE(record_is_clean(v, lim));
  std::string clean;
  EXPECT_EQ(record_clean(v, lim, &clean), 1u);  // one value cut to 3 characters
  RecordView c{reinterpret_cast<const uint8_t *>(clean.data()),
               static_cast<uint32_t>(clean.size())};
  EXPECT_EQ(c.truncated(), 1u);  // the span remembers the cut
  std::string revalidated = clean;
  std::memset(revalidated.data() + rec::kTruncated, 0, 4);  // internal fields aside,
  EXPECT_TRUE(record_validate(reinterpret_cast<const uint8_t *>(revalidated.data()),
                              revalidated.size()));  // a well-formed record
  EXPECT_TRUE(record_is_clean(c, lim));
  std::vector<std::vector<uint8_t>> recs{std::vector<uint8_t>(clean.begin(), clean.end())};
  auto req = encode(recs);
  const auto &s = req.resource_spans(0).scope_spans(0).spans(0);
  EXPECT_EQ(s.name(), "bad\xEF\xBF\xBD");
  ASSERT_EQ(s.attributes_size(), 3);
  EXPECT_EQ(s.attributes(0).value().string_value(), "\xC3\xA9\xC3\xA9\xC3\xA9");
  EXPECT_EQ(s.attributes(2).key(), "otelagent.truncated_values");
  EXPECT_EQ(s.attributes(2).value().int_value(), 1);
  EXPECT_EQ(s.dropped_attributes_count(), 1u);
  EXPECT_EQ(s.events_size(), 1);
  EXPECT_EQ(s.dropped_events_count(), 1u);
}

// What the exporter does with a batch: records that are not clean are
// replaced by their cleaned copy before they are encoded.
pb::collector::trace::v1::ExportTraceServiceRequest sanitize_and_encode(
    std::vector<std::vector<uint8_t>> &recs, const Limits &lim = {}) {
  for (auto &r : recs) {
    RecordView v{r.data(), static_cast<uint32_t>(r.size())};
    if (record_is_clean(v, lim)) continue;
    std::string clean;
    record_clean(v, lim, &clean);
    r.assign(clean.begin(), clean.end());
  }
  return encode(recs);
}

TEST(Sanitize, KeepsTheLastOfEachTextAndTheStatusMessageOnlyWithError) {
  auto rec = RecordBuilder()
                 .name("first")
                 .text(OTELAGENT_REC_SCOPE_NAME, "old.scope")
                 .name("renamed")
                 .text(OTELAGENT_REC_SCOPE_NAME, "new.scope")
                 .status(OTELAGENT_STATUS_OK)
                 .text(OTELAGENT_REC_STATUS_MESSAGE, "not with OK")
                 .build();
  RecordView v{rec.data(), static_cast<uint32_t>(rec.size())};
  std::string clean;
  record_clean(v, Limits{}, &clean);
  RecordView c{reinterpret_cast<const uint8_t *>(clean.data()),
               static_cast<uint32_t>(clean.size())};
  std::vector<std::pair<uint8_t, std::string>> texts;
  EntryReader it = c.entries();
  Entry e;
  while (it.next(&e)) texts.emplace_back(e.tag, std::string(e.value));
  ASSERT_EQ(texts.size(), 2u);
  EXPECT_EQ(texts[0], std::make_pair(uint8_t{OTELAGENT_REC_NAME}, std::string("renamed")));
  EXPECT_EQ(texts[1], std::make_pair(uint8_t{OTELAGENT_REC_SCOPE_NAME}, std::string("new.scope")));
  // The encoder reads the raw record the same way.
  std::vector<std::vector<uint8_t>> recs{rec};
  auto req = encode(recs);
  EXPECT_EQ(req.resource_spans(0).scope_spans(0).scope().name(), "new.scope");
  EXPECT_EQ(req.resource_spans(0).scope_spans(0).spans(0).name(), "renamed");
}

TEST(Sanitize, KeysAndValuesAreCutToTheirCapsAfterRepair) {
  // 200 invalid bytes repair to 600: over the key cap, and each value over
  // the value cap in bytes though within the character limit.
  std::string bad_key(200, '\xFF');
  std::string long_value(3000, '\xFF');
  auto rec = RecordBuilder().name("n").attr_str(bad_key, long_value).build();
  std::vector<std::vector<uint8_t>> recs{rec};
  auto req = sanitize_and_encode(recs);
  const auto &s = req.resource_spans(0).scope_spans(0).spans(0);
  ASSERT_EQ(s.attributes_size(), 2);
  EXPECT_EQ(s.attributes(0).key().size(), 255u);  // 85 whole U+FFFD <= 256 bytes
  EXPECT_LE(s.attributes(0).value().string_value().size(),
            static_cast<size_t>(OTELAGENT_MAX_VALUE_BYTES));
  EXPECT_EQ(s.attributes(1).key(), "otelagent.truncated_values");
  EXPECT_EQ(s.attributes(1).value().int_value(), 2);
}

TEST(Sanitize, KeysThatRepairOrCutToTheSameKeyAreOneKey) {
  // Found by the record fuzzer: deduplicating before the repair let two keys
  // through that the repair made equal, and the cleaned copy was not clean.
  Limits lim;
  auto rec = RecordBuilder()
                 .name("n")
                 .attr_str("k\xC3", "first")
                 .attr_str("k\xFF", "second")
                 .attr_str(std::string(300, 'a') + "1", "third")
                 .attr_str(std::string(300, 'a') + "2", "fourth")
                 .build();
  RecordView v{rec.data(), static_cast<uint32_t>(rec.size())};
  std::string clean;
  record_clean(v, lim, &clean);
  RecordView c{reinterpret_cast<const uint8_t *>(clean.data()),
               static_cast<uint32_t>(clean.size())};
  EXPECT_TRUE(record_is_clean(c, lim));
  std::vector<std::vector<uint8_t>> recs{std::vector<uint8_t>(clean.begin(), clean.end())};
  auto req = encode(recs);
  const auto &s = req.resource_spans(0).scope_spans(0).spans(0);
  ASSERT_EQ(s.attributes_size(), 3);  // two keys and otelagent.truncated_values
  EXPECT_EQ(s.attributes(0).key(), "k\xEF\xBF\xBD");
  EXPECT_EQ(s.attributes(0).value().string_value(), "second");
  EXPECT_EQ(s.attributes(1).key(), std::string(256, 'a'));
  EXPECT_EQ(s.attributes(1).value().string_value(), "fourth");
}

TEST(Sanitize, TraceStatesOutsideTheTraceContextCharsetAreDropped) {
  const uint8_t lt[16] = {7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7};
  const uint8_t ls[8] = {6, 6, 6, 6, 6, 6, 6, 6};
  std::vector<std::vector<uint8_t>> recs;
  recs.push_back(RecordBuilder()
                     .name("n")
                     .text(OTELAGENT_REC_TRACESTATE, "a=\xC3\xA9")  // UTF-8, not tracestate
                     .link(lt, ls, 0x101, "bad=\xFF")               // not even UTF-8
                     .link(lt, ls, 0x101, "nl=a\nb")                // a control character
                     .link(lt, ls, 0x101, "ok=1,vendor@t=x y")
                     .build());
  auto req = sanitize_and_encode(recs);  // parsed by the generated (strict) classes
  const auto &s = req.resource_spans(0).scope_spans(0).spans(0);
  EXPECT_EQ(s.trace_state(), "");
  ASSERT_EQ(s.links_size(), 3);
  EXPECT_EQ(s.links(0).trace_state(), "");
  EXPECT_EQ(s.links(1).trace_state(), "");
  EXPECT_EQ(s.links(2).trace_state(), "ok=1,vendor@t=x y");
  EXPECT_EQ(s.links(0).span_id(), std::string(8, '\x06'));  // the links themselves stay
  ASSERT_EQ(s.attributes_size(), 1);
  EXPECT_EQ(s.attributes(0).key(), "otelagent.truncated_values");
  EXPECT_EQ(s.attributes(0).value().int_value(), 3);  // the dropped values are counted
}

TEST(Pipeline, CorruptRecordsThatWereNeverValidatedAreReadWithinBounds) {
  // What the exporter does to a batch (sanitize, encode, print), on records
  // that never passed validation: nothing may read past a record (ASan
  // checks it in CI) and whatever is encoded must parse.
  const uint8_t lt[16] = {7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7};
  const uint8_t ls[8] = {6, 6, 6, 6, 6, 6, 6, 6};
  auto base = RecordBuilder()
                  .name("name")
                  .text(OTELAGENT_REC_STATUS_MESSAGE, "m")
                  .attr_str("key", "value")
                  .attr_bool("b", true)
                  .attr_str_array("sa", {"p", "q"})
                  .event("e", 1)
                  .attr_i64("x", 3, OTELAGENT_REC_EVENT_ATTR)
                  .link(lt, ls, 1, "a=b")
                  .attr_f64("d", 1.5)
                  .build();
  std::mt19937 rng(11);
  for (int i = 0; i < 5000; ++i) {
    std::vector<uint8_t> r = base;
    int flips = 1 + static_cast<int>(rng() % 6);
    for (int f = 0; f < flips; ++f) r[rng() % r.size()] = static_cast<uint8_t>(rng());
    RecordView v{r.data(), static_cast<uint32_t>(r.size())};
    std::string clean;
    record_clean(v, Limits{}, &clean);
    RecordView c{reinterpret_cast<const uint8_t *>(clean.data()),
                 static_cast<uint32_t>(clean.size())};
    EntryReader walk = c.entries();
    Entry e;
    while (walk.next(&e)) {
    }
    ASSERT_TRUE(walk.complete());  // the cleaned copy is well-formed
    std::string out;
    ASSERT_TRUE(encode_request(encode_resource({}), {v, c}, &out));
    pb::collector::trace::v1::ExportTraceServiceRequest req;
    EXPECT_TRUE(req.ParseFromString(out) || !record_is_clean(v, Limits{}));
    encode_request(encode_resource({}), {c}, &out);
    EXPECT_TRUE(req.ParseFromString(out));
    (void)console_format({v, c});
  }
}

TEST(Encoder, RecordsOfANewerMinorEncodeAsTheirKnownParts) {
  auto build = [](bool newer) {
    RecordBuilder b;
    if (newer) b.header_extension(std::string(24, '\x7f'));
    b.name("n").attr_str("k", "v").event("e", 7);
    if (newer) b.extension(OTELAGENT_REC_FIRST_EXTENSION + 1, "ignored");
    b.attr_i64("x", 1, OTELAGENT_REC_EVENT_ATTR)
        .attr_str(std::string(300, 'k'), "over the key cap");
    return b.build();
  };
  std::vector<std::vector<uint8_t>> plain{build(false)}, newer{build(true)};
  EXPECT_EQ(encode(newer).SerializeAsString(), encode(plain).SerializeAsString());
  auto cleaned = sanitize_and_encode(newer);  // the cleaned copy has an 80-byte header
  EXPECT_EQ(cleaned.SerializeAsString(), sanitize_and_encode(plain).SerializeAsString());
  EXPECT_EQ(newer[0].size(), plain[0].size());
  const auto &s = cleaned.resource_spans(0).scope_spans(0).spans(0);
  ASSERT_EQ(s.events_size(), 1);
  EXPECT_EQ(s.events(0).attributes_size(), 1);
}

TEST(Encoder, TruncatedValuesAreRecordedInTheSpan) {
  std::vector<std::vector<uint8_t>> recs;
  recs.push_back(RecordBuilder().name("n").attr_str("k", "v").build());
  uint32_t two = 2;
  std::memcpy(recs[0].data() + 76, &two, 4);  // what the hot path counts
  auto req = encode(recs);
  const auto &s = req.resource_spans(0).scope_spans(0).spans(0);
  ASSERT_EQ(s.attributes_size(), 2);
  EXPECT_EQ(s.attributes(1).key(), "otelagent.truncated_values");
  EXPECT_EQ(s.attributes(1).value().int_value(), 2);
}

TEST(Encoder, ResponsePartialSuccessIsRead) {
  pb::collector::trace::v1::ExportTraceServiceResponse resp;
  resp.mutable_partial_success()->set_rejected_spans(7);
  resp.mutable_partial_success()->set_error_message("too old");
  PartialSuccess ps;
  ASSERT_TRUE(decode_export_response(resp.SerializeAsString(), &ps));
  EXPECT_EQ(ps.rejected_spans, 7);
  EXPECT_EQ(ps.error_message, "too old");
  PartialSuccess empty;
  EXPECT_TRUE(decode_export_response("", &empty));
  EXPECT_EQ(empty.rejected_spans, 0);
  EXPECT_FALSE(decode_export_response("\x0a\x05\x08", &empty));  // truncated
}

TEST(Compressor, ZstdAndGzipRoundTrip) {
  Compressor c;
  std::string in;
  for (int i = 0; i < 1000; ++i) in += "span-" + std::to_string(i % 17);
  std::string z, back, gz;
  ASSERT_TRUE(c.compress(Compression::kZstd, in, &z));
  EXPECT_LT(z.size(), in.size() / 3);
  ASSERT_TRUE(c.zstd_decompress(z, &back));
  EXPECT_EQ(back, in);
  ASSERT_TRUE(c.compress(Compression::kGzip, in, &gz));
  EXPECT_EQ(static_cast<uint8_t>(gz[0]), 0x1f);  // gzip magic
  EXPECT_EQ(static_cast<uint8_t>(gz[1]), 0x8b);
  EXPECT_LT(gz.size(), in.size() / 3);
}

}  // namespace
}  // namespace otelagent
