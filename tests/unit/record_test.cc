#include "core/record.h"

#include <gtest/gtest.h>

#include <random>

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
  auto bad_version = good;
  bad_version[4] = 2;
  EXPECT_FALSE(record_validate(bad_version.data(), bad_version.size()));
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

}  // namespace
}  // namespace otelagent
