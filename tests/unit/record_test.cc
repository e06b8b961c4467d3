#include "core/record.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <string_view>

#include "support/record_builder.h"

namespace otelagent {
namespace {

using otelagent_test::RecordBuilder;

TEST(Record, ValidRecordsPass) {
  auto r = RecordBuilder()
               .name("n")
               .attr_str("k", "v")
               .event("e", 5)
               .attr_i64("x", 1, OTELAGENT_REC_EVENT_ATTR)
               .build();
  EXPECT_TRUE(record_validate(r.data(), r.size()));
}

TEST(Record, MalformedRecordsAreRefused) {
  auto good = RecordBuilder().name("n").attr_str("k", "v").build();
  EXPECT_FALSE(record_validate(nullptr, 0));
  EXPECT_FALSE(record_validate(good.data(), good.size() - 1));  // total_len disagrees
  auto nameless = RecordBuilder().attr_str("k", "v").build();
  EXPECT_FALSE(record_validate(nameless.data(), nameless.size()));
  auto empty_key = RecordBuilder().name("n").attr_str("", "v").build();
  EXPECT_FALSE(record_validate(empty_key.data(), empty_key.size()));
  auto orphan = RecordBuilder().name("n").attr_str("k", "v", OTELAGENT_REC_EVENT_ATTR).build();
  EXPECT_FALSE(record_validate(orphan.data(), orphan.size()));
  auto bad_int =
      RecordBuilder().name("n").entry(OTELAGENT_REC_ATTR, OTELAGENT_TYPE_INT64, "k", "123").build();
  EXPECT_FALSE(record_validate(bad_int.data(), bad_int.size()));
  auto bad_tag = RecordBuilder().name("n").entry(99, OTELAGENT_TYPE_STRING, {}, "x").build();
  EXPECT_FALSE(record_validate(bad_tag.data(), bad_tag.size()));
  auto bad_array = RecordBuilder()
                       .name("n")
                       .entry(OTELAGENT_REC_ATTR, OTELAGENT_TYPE_STRING_ARRAY, "k", "\x05\0\0\0ab")
                       .build();
  EXPECT_FALSE(record_validate(bad_array.data(), bad_array.size()));
  uint8_t zero[8] = {0};
  auto zero_span = RecordBuilder().name("n").span_id(zero).build();
  EXPECT_FALSE(record_validate(zero_span.data(), zero_span.size()));
  for (uint16_t version : {1, 3}) {
    auto other = good;
    std::memcpy(other.data() + 4, &version, 2);
    EXPECT_FALSE(record_validate(other.data(), other.size())) << version;
  }
  auto reserved_mid = good;
  reserved_mid[11] = 1;  // the u16 at 10
  EXPECT_FALSE(record_validate(reserved_mid.data(), reserved_mid.size()));
  auto reserved_end = good;
  reserved_end[79] = 1;  // the u32 at 76
  EXPECT_FALSE(record_validate(reserved_end.data(), reserved_end.size()));
  for (size_t header_len : {size_t{0}, size_t{79}, good.size() + 1}) {
    auto bad_header = good;
    const auto field = static_cast<uint16_t>(header_len);
    std::memcpy(bad_header.data() + 6, &field, 2);
    EXPECT_FALSE(record_validate(bad_header.data(), bad_header.size())) << header_len;
  }
  // A required tag this library does not know (below 128): refused whole.
  for (uint8_t tag : {0, 12, 127}) {
    auto unknown = RecordBuilder().name("n").entry(tag, OTELAGENT_TYPE_BYTES, {}, "x").build();
    EXPECT_FALSE(record_validate(unknown.data(), unknown.size())) << int{tag};
  }
}

TEST(Record, HeaderFieldsAndExtensionTagsOfANewerMinorAreSkipped) {
  auto r = RecordBuilder()
               .header_extension(std::string(16, '\x5a'))  // fields this library does not know
               .extension(OTELAGENT_REC_FIRST_EXTENSION, "hint")
               .name("n")
               .event("e", 5)
               .extension(255, std::string(3, '\0'))
               .attr_i64("x", 1, OTELAGENT_REC_EVENT_ATTR)  // still the event's attribute
               .build();
  ASSERT_TRUE(record_validate(r.data(), r.size()));
  RecordView v{r.data(), static_cast<uint32_t>(r.size())};
  std::vector<uint8_t> tags;
  EntryReader it = v.entries();
  Entry e;
  while (it.next(&e)) tags.push_back(e.tag);
  EXPECT_TRUE(it.complete());
  EXPECT_EQ(tags, (std::vector<uint8_t>{OTELAGENT_REC_NAME, OTELAGENT_REC_EVENT,
                                        OTELAGENT_REC_EVENT_ATTR}));
  EXPECT_EQ(v.find(OTELAGENT_REC_NAME), "n");
  // An extension entry is still checked for bounds.
  auto overlong = RecordBuilder().name("n").extension(200, "abc").build();
  overlong.pop_back();
  uint32_t len = static_cast<uint32_t>(overlong.size());
  std::memcpy(overlong.data(), &len, 4);
  EXPECT_FALSE(record_validate(overlong.data(), overlong.size()));
}

TEST(Record, HeaderLayoutIsTheDocumentedOne) {
  // The agent's offsets against the ones the builder takes from otelagent.h.
  EXPECT_EQ(rec::kVersion, RecordBuilder::kVersionAt);
  EXPECT_EQ(rec::kHeaderLen, RecordBuilder::kHeaderLenAt);
  EXPECT_EQ(rec::kKind, RecordBuilder::kKindAt);
  EXPECT_EQ(rec::kStatus, RecordBuilder::kStatusAt);
  EXPECT_EQ(rec::kFlags, RecordBuilder::kFlagsAt);
  EXPECT_EQ(rec::kTraceId, RecordBuilder::kTraceIdAt);
  EXPECT_EQ(rec::kSpanId, RecordBuilder::kSpanIdAt);
  EXPECT_EQ(rec::kParentId, RecordBuilder::kParentIdAt);
  EXPECT_EQ(rec::kStart, RecordBuilder::kStartAt);
  EXPECT_EQ(rec::kEnd, RecordBuilder::kEndAt);
  EXPECT_EQ(OTELAGENT_RECORD_VERSION, 2);
  EXPECT_EQ(rec::kHeader, 80u);
}

TEST(Record, RandomCorruptionNeverReadsOutOfBounds) {
  // Flip bytes of a valid record at random; validation must either refuse it
  // or accept something whose entries all lie inside the buffer (run under
  // ASan in CI to catch any stray read).
  auto base = RecordBuilder()
                  .name("name")
                  .attr_str("key", "value")
                  .event("e", 1)
                  .attr_i64("x", 3, OTELAGENT_REC_EVENT_ATTR)
                  .attr_str_array("a", {"p", "q"})
                  .build();
  std::mt19937 rng(42);
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    auto r = base;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) r[rng() % r.size()] = static_cast<uint8_t>(rng());
    std::vector<uint8_t> exact(r.begin(), r.end());  // no slack after the end
    if (record_validate(exact.data(), exact.size())) {
      ++accepted;
      RecordView v{exact.data(), static_cast<uint32_t>(exact.size())};
      EntryReader it = v.entries();
      Entry e;
      while (it.next(&e)) {
        ASSERT_GE(reinterpret_cast<const uint8_t *>(e.value.data()), exact.data());
        ASSERT_LE(reinterpret_cast<const uint8_t *>(e.value.data()) + e.value.size(),
                  exact.data() + exact.size());
      }
    }
  }
  EXPECT_GT(accepted, 0);  // value-byte flips keep the record valid
}

TEST(Record, ReadersStayInsideRecordsThatWereNeverValidated) {
  // The same corruptions, read without validation first: every entry the
  // reader yields lies inside the record, and a header cut short reads as
  // zeros instead of past the end.
  auto base = RecordBuilder()
                  .name("name")
                  .attr_str("key", "value")
                  .event("e", 1)
                  .attr_i64("x", 3, OTELAGENT_REC_EVENT_ATTR)
                  .build();
  std::mt19937 rng(7);
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> r = base;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) r[rng() % r.size()] = static_cast<uint8_t>(rng());
    r.resize(rng() % (r.size() + 1));
    RecordView v{r.data(), static_cast<uint32_t>(r.size())};
    (void)v.find(OTELAGENT_REC_NAME);
    EntryReader it = v.entries();
    Entry e;
    while (it.next(&e)) {
      ASSERT_TRUE(entry_shape_ok(e));
      ASSERT_GE(reinterpret_cast<const uint8_t *>(e.key.data()), r.data() + rec::kHeader);
      ASSERT_LE(reinterpret_cast<const uint8_t *>(e.value.data()) + e.value.size(),
                r.data() + r.size());
    }
    if (r.size() < rec::kHeader) {
      EXPECT_EQ(v.start(), 0u);
      EXPECT_TRUE(all_zero(v.span_id(), 8));
    }
  }
}

TEST(Record, EntryLengthsPastTheEndStopTheWalk) {
  auto r = RecordBuilder().name("n").attr_str("k", "v").build();
  const size_t attr = rec::kHeader + rec::kEntryHeader + 1;  // after the NAME entry
  uint32_t huge = 0x7fffffff;
  std::memcpy(r.data() + attr + 4, &huge, 4);
  RecordView v{r.data(), static_cast<uint32_t>(r.size())};
  EntryReader it = v.entries();
  Entry e;
  ASSERT_TRUE(it.next(&e));
  EXPECT_EQ(e.value, "n");
  EXPECT_EQ(it.peek_tag(), 0);
  EXPECT_FALSE(it.next(&e));
  EXPECT_FALSE(it.complete());
  EXPECT_FALSE(record_validate(r.data(), r.size()));
}

// ---- Issue 5, item 1: a key that UTF-8 repair grows past 65535 bytes -------

// The attack: a key of ~64 KiB whose invalid bytes each become a 3-byte
// U+FFFD, so that the repaired key is exactly 2^17 bytes longer than the
// ASCII prefix before the fake entry. A u16 key length then wraps to the
// prefix's length and a reader walks into the planted entry, whose 2 GiB
// value reaches far past the record.
std::vector<uint8_t> wrapping_key_record() {
  const size_t prefix = 21000;
  std::string key(prefix, 'k');
  const char fake[8] = {
      OTELAGENT_REC_ATTR, OTELAGENT_TYPE_STRING, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f};
  key.append(fake, sizeof fake);
  key.append((131072 - sizeof fake) / 3, '\xFF');
  return RecordBuilder().name("n").attr_str(key, "").build();
}

// Starts the agent with `exporter`, records the attack and waits until the
// exporter has been through it (printed, or encoded and its send failed).
// Runs in a child process: on a vulnerable agent it dies there.
[[noreturn]] void record_attack_and_exit(const char *exporter) {
  auto rec = wrapping_key_record();
  otelagent_config *cfg = otelagent_config_new();
  auto set = [&](std::string_view k, std::string_view v) {
    otelagent_config_set(cfg, k.data(), k.size(), v.data(), v.size());
  };
  set("OTEL_TRACES_EXPORTER", exporter);
  set("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1");
  set("OTELAGENT_RETRY_MAX_ELAPSED_MS", "1");  // the first failed send drops the batch
  int rc = otelagent_start(cfg);
  otelagent_config_free(cfg);
  if (rc != OTELAGENT_OK) std::_Exit(10);
  if (otelagent_record_span(rec.data(), rec.size()) != OTELAGENT_OK) std::_Exit(11);
  if (otelagent_flush(60000) != OTELAGENT_OK) std::_Exit(12);
  otelagent_stats s{};
  s.struct_size = sizeof s;
  otelagent_stats_get(&s);
  const bool otlp = std::string_view(exporter) == "otlp";
  if (otlp && s.spans_dropped_export_failed != 1) std::_Exit(13);
  if (s.values_truncated == 0) std::_Exit(14);  // the key was cut to its cap
  otelagent_shutdown(0);
  std::_Exit(0);
}

TEST(RecordSpanDeathTest, KeyGrownByRepairCannotCrashTheOtlpExporter) {
  EXPECT_EXIT(record_attack_and_exit("otlp"), ::testing::ExitedWithCode(0), "");
}

TEST(RecordSpanDeathTest, KeyGrownByRepairCannotCrashTheConsoleExporter) {
  EXPECT_EXIT(record_attack_and_exit("console"), ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace otelagent
