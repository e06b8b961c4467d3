// The console exporter's formatter on batches a binding could produce:
// parent links that loop, repeated names, status messages.
#include "export/console.h"
#include "export/otlp_encoder.h"
#include "export/sanitize.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "support/record_builder.h"

namespace otelagent {
namespace {

using otelagent_test::RecordBuilder;

std::string format(std::vector<std::vector<uint8_t>> &recs) {
  std::vector<RecordView> views;
  for (auto &r : recs) views.push_back({r.data(), static_cast<uint32_t>(r.size())});
  return console_format(views);
}

size_t count(const std::string &text, const std::string &what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

const uint8_t kA[8] = {0xa, 0xa, 0xa, 0xa, 0xa, 0xa, 0xa, 0xa};
const uint8_t kB[8] = {0xb, 0xb, 0xb, 0xb, 0xb, 0xb, 0xb, 0xb};
const uint8_t kC[8] = {0xc, 0xc, 0xc, 0xc, 0xc, 0xc, 0xc, 0xc};

TEST(Console, SpanThatIsItsOwnParentIsPrintedOnce) {
  std::vector<std::vector<uint8_t>> recs;
  recs.push_back(RecordBuilder().name("self").span_id(kA).parent_id(kA).build());
  EXPECT_EQ(count(format(recs), "self"), 1u);
}

TEST(Console, SelfParentBesideASpanWithTheSameIdDoesNotRecurse) {
  std::vector<std::vector<uint8_t>> recs;
  recs.push_back(RecordBuilder().name("root").span_id(kA).build());
  recs.push_back(RecordBuilder().name("loop").span_id(kA).parent_id(kA).build());
  std::string text = format(recs);
  EXPECT_EQ(count(text, "root"), 1u);
  EXPECT_EQ(count(text, "loop"), 1u);
}

TEST(Console, EverySpanOfACycleIsPrintedOnce) {
  std::vector<std::vector<uint8_t>> recs;
  recs.push_back(RecordBuilder().name("span-a").span_id(kA).parent_id(kC).build());
  recs.push_back(RecordBuilder().name("span-b").span_id(kB).parent_id(kA).build());
  recs.push_back(RecordBuilder().name("span-c").span_id(kC).parent_id(kB).build());
  std::string text = format(recs);
  EXPECT_EQ(count(text, "span-a"), 1u);
  EXPECT_EQ(count(text, "span-b"), 1u);
  EXPECT_EQ(count(text, "span-c"), 1u);
}

TEST(Console, ChildrenAreIndentedUnderTheirParent) {
  std::vector<std::vector<uint8_t>> recs;
  recs.push_back(RecordBuilder().name("child").span_id(kB).parent_id(kA).build());
  recs.push_back(RecordBuilder().name("parent").span_id(kA).build());
  std::string text = format(recs);
  size_t parent = text.find("\n  parent "), child = text.find("\n    child ");
  ASSERT_NE(parent, std::string::npos) << text;
  ASSERT_NE(child, std::string::npos) << text;
  EXPECT_LT(parent, child);
}

TEST(Console, LongChainsDoNotExhaustTheStack) {
  // Each span the parent of the next: deeper than any real trace, and deep
  // enough that one stack frame per level would overflow a thread's stack.
  std::vector<std::vector<uint8_t>> recs;
  const int depth = 200000;
  for (int i = 0; i < depth; ++i) {
    uint8_t id[8] = {1}, parent[8] = {1};
    std::memcpy(id + 4, &i, 4);
    int p = i - 1;
    std::memcpy(parent + 4, &p, 4);
    RecordBuilder b;
    b.name("s").span_id(id);
    if (i != 0) b.parent_id(parent);
    recs.push_back(b.build());
  }
  std::string text = format(recs);
  EXPECT_EQ(count(text, "\n"), static_cast<size_t>(depth) + 1);  // "trace" + one line each
}

TEST(Console, ShowsTheLastNameAndTheStatusMessageOnlyWithError) {
  std::vector<std::vector<uint8_t>> recs;
  recs.push_back(RecordBuilder()
                     .name("first")
                     .name("renamed")
                     .status(OTELAGENT_STATUS_OK)
                     .text(OTELAGENT_REC_STATUS_MESSAGE, "not shown")
                     .build());
  recs.push_back(RecordBuilder()
                     .span_id(kB)
                     .name("failing")
                     .status(OTELAGENT_STATUS_ERROR)
                     .text(OTELAGENT_REC_STATUS_MESSAGE, "old")
                     .text(OTELAGENT_REC_STATUS_MESSAGE, "boom")
                     .build());
  std::string text = format(recs);
  EXPECT_EQ(count(text, "renamed"), 1u) << text;
  EXPECT_EQ(count(text, "first"), 0u) << text;
  EXPECT_EQ(count(text, "not shown"), 0u) << text;
  EXPECT_EQ(count(text, "status=ERROR \"boom\""), 1u) << text;
  EXPECT_EQ(count(text, "old"), 0u) << text;
}

}  // namespace
}  // namespace otelagent

namespace otelagent {
namespace {

// Found by the record fuzzer in CI: a string-array item whose u32 length is
// near 2^32 wrapped the reader's offset (4 + n in 32 bits) and the encoder,
// the console and the sanitizer looped for ever on a record that was never
// validated. Every reader now shares one bounded walk.
TEST(ArrayReaders, ItemLengthsNear4GiBStopTheWalk) {
  std::string value(
      "\xFC\xFF\xFF\xFF"
      "abcd",
      8);
  int items = 0;
  EXPECT_FALSE(for_each_array_string(value, [&](std::string_view) { return ++items, true; }));
  EXPECT_EQ(items, 0);
  std::vector<std::vector<uint8_t>> recs;
  recs.push_back(RecordBuilder()
                     .name("wrap")
                     .span_id(kA)
                     .entry(OTELAGENT_REC_ATTR, OTELAGENT_TYPE_STRING_ARRAY, "k", value)
                     .build());
  EXPECT_EQ(count(format(recs), "wrap"), 1u);  // returns: no endless loop
  std::vector<RecordView> views{{recs[0].data(), static_cast<uint32_t>(recs[0].size())}};
  std::string encoded;
  encode_request("", views, &encoded);  // returns
  std::string cleaned;
  record_clean(views[0], Limits{}, &cleaned);  // returns
}

}  // namespace
}  // namespace otelagent
