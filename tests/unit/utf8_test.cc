#include "core/utf8.h"

#include <gtest/gtest.h>

namespace otelagent {
namespace {

TEST(Utf8, Validity) {
  EXPECT_TRUE(utf8_valid(""));
  EXPECT_TRUE(utf8_valid("plain ascii that is longer than eight bytes"));
  EXPECT_TRUE(utf8_valid("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));
  EXPECT_FALSE(utf8_valid("\xC3"));              // truncated
  EXPECT_FALSE(utf8_valid("\xC0\xAF"));          // overlong
  EXPECT_FALSE(utf8_valid("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(utf8_valid("\xF4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(utf8_valid("abcdefgh\xFF"));      // after the fast path
}

TEST(Utf8, RepairReplacesEachBadSequence) {
  std::string out;
  utf8_repair(
      "a\xFF"
      "b\xC3",
      &out);
  EXPECT_EQ(out,
            "a\xEF\xBF\xBD"
            "b\xEF\xBF\xBD");
  EXPECT_TRUE(utf8_valid(out));
  out.clear();
  utf8_repair("caf\xC3\xA9", &out);
  EXPECT_EQ(out, "caf\xC3\xA9");
}

TEST(Utf8, CutNeverSplitsASequence) {
  std::string s = "ab\xE2\x82\xAC";  // 5 bytes, the euro sign is 3
  EXPECT_EQ(utf8_cut(s.data(), s.size(), 10), 5u);
  EXPECT_EQ(utf8_cut(s.data(), s.size(), 4), 2u);
  EXPECT_EQ(utf8_cut(s.data(), s.size(), 3), 2u);
  EXPECT_EQ(utf8_cut(s.data(), s.size(), 2), 2u);
  EXPECT_EQ(utf8_cut(s.data(), s.size(), 1), 1u);
}

TEST(Utf8, PrefixCountsCharactersNotBytes) {
  std::string s = "\xC3\xA9\xC3\xA9\xC3\xA9";  // three characters, six bytes
  EXPECT_EQ(utf8_length(s), 3u);
  EXPECT_EQ(utf8_prefix_chars(s, 2), "\xC3\xA9\xC3\xA9");
  EXPECT_EQ(utf8_prefix_chars(s, 5), s);
  EXPECT_EQ(utf8_prefix_chars(s, 0), "");
}

}  // namespace
}  // namespace otelagent
