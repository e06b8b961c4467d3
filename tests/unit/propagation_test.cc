// Propagation headers, one test per rule of the specs. "TC" cites W3C Trace
// Context (w3c/trace-context spec/20-http_request_header_format.md and
// spec/30-processing-model.md, Level 2 and the current editor's draft; the
// conformance suite is test/test.py there); "BG" cites W3C Baggage
// (w3c/baggage baggage/HTTP_HEADER_FORMAT.md).
#include "propagation/propagation.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

namespace otelagent {
namespace {

const std::string kTrace = "4bf92f3577b34da6a3ce929d0e0e4736";
const std::string kSpan = "00f067aa0ba902b7";
const std::string kRoot = "Root=1-5759e988-bd862e3fe1be46a994272793";
const std::string kParent = "Parent=53995c3f42cd8ad8";

std::string tp(const std::string &version, const std::string &trace = kTrace,
               const std::string &span = kSpan, const std::string &flags = "01") {
  return version + "-" + trace + "-" + span + "-" + flags;
}

bool parses(const std::string &v) {
  otelagent_span_context c{};
  return traceparent_parse(v, &c);
}

std::string combine(std::vector<std::string_view> lines) {
  return tracestate_combine(lines.data(), lines.size());
}

// key=<value> with `size` characters in all.
std::string member(const std::string &key, size_t size, char fill = 'x') {
  return key + "=" + std::string(size - key.size() - 1, fill);
}

otelagent_span_context context(uint8_t flags) {
  otelagent_span_context c{};
  EXPECT_TRUE(traceparent_parse(tp("00"), &c));
  c.trace_flags = flags;
  return c;
}

// ---------------------------------------------------------------- traceparent

TEST(TraceParent, ValidVersion00) {  // TC "traceparent Header Field Values"
  otelagent_span_context c{};
  ASSERT_TRUE(traceparent_parse(tp("00"), &c));
  EXPECT_EQ(c.trace_flags, 1);
  EXPECT_EQ(c.is_remote, 1);
  EXPECT_EQ(c.trace_id[0], 0x4b);
  EXPECT_EQ(c.span_id[7], 0xb7);
  EXPECT_EQ(traceparent_format(c), tp("00"));
  ASSERT_TRUE(traceparent_parse(tp("00", kTrace, kSpan, "00"), &c));
  EXPECT_EQ(c.trace_flags, 0);
}

TEST(TraceParent, VersionFfIsInvalid) {  // TC "version": Version ff is forbidden
  EXPECT_FALSE(parses(tp("ff")));
}

TEST(TraceParent, VersionIsTwoLowerCaseHexDigits) {  // TC "version": 2HEXDIGLC
  EXPECT_FALSE(parses(tp("0A")));
  EXPECT_FALSE(parses(tp(".0")));
  EXPECT_FALSE(parses(tp("0.")));
  EXPECT_FALSE(parses(tp("0")));
  EXPECT_FALSE(parses(tp("000")));
  EXPECT_FALSE(parses(tp("0000")));
  EXPECT_FALSE(parses("00_" + kTrace + "-" + kSpan + "-01"));  // not followed by '-'
}

TEST(TraceParent, AllZeroTraceIdIsInvalid) {  // TC "trace-id": all zeroes forbidden
  EXPECT_FALSE(parses(tp("00", std::string(32, '0'))));
}

TEST(TraceParent, AllZeroParentIdIsInvalid) {  // TC "parent-id": all zeroes forbidden
  EXPECT_FALSE(parses(tp("00", kTrace, std::string(16, '0'))));
}

TEST(TraceParent, IdsAndFlagsAreLowerCaseHex) {  // TC "version-format": HEXDIGLC
  EXPECT_FALSE(parses(tp("00", "4BF92F3577B34DA6A3CE929D0E0E4736")));
  EXPECT_FALSE(parses(tp("00", kTrace, "00F067AA0BA902B7")));
  EXPECT_FALSE(parses(tp("00", kTrace, kSpan, "0A")));
  EXPECT_FALSE(parses(tp("00", ".2345678901234567890123456789012")));
  EXPECT_FALSE(parses(tp("00", "4bf92f3577b34da6a3ce929d0e0e473g")));
  EXPECT_FALSE(parses(tp("00", kTrace, ".0f067aa0ba902b7")));
  EXPECT_FALSE(parses(tp("00", kTrace, kSpan, ".0")));
  EXPECT_FALSE(parses(tp("00", kTrace, kSpan, "0.")));
}

namespace {
// The rule written out: 0-9, a-f, and A-F only where upper case is allowed.
int hex_digit(int c, bool upper) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (upper && c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

// Short inputs are decoded through a table: every pair of bytes, in both
// modes, against the rule.
TEST(Hex, EveryBytePairDecodesAsTheRuleSays) {
  for (bool upper : {false, true}) {
    for (int a = 0; a < 256; ++a) {
      for (int b = 0; b < 256; ++b) {
        const char pair[2] = {static_cast<char>(a), static_cast<char>(b)};
        uint8_t out = 0;
        bool ok = hex_decode(std::string_view(pair, 2), &out, upper);
        int hi = hex_digit(a, upper), lo = hex_digit(b, upper);
        ASSERT_EQ(ok, hi >= 0 && lo >= 0) << a << " " << b << " upper " << upper;
        if (ok) {
          ASSERT_EQ(out, hi << 4 | lo) << a << " " << b;
        }
      }
    }
  }
  uint8_t out[2];
  EXPECT_FALSE(hex_decode("abc", out, false));  // an odd number of digits
}

// Eight digits at a time: every pair of byte values at every two
// neighbouring places of 16 digits (two words and their seam), in both
// modes and over digits, lower and upper case around them, against the rule.
TEST(Hex, EveryBytePairAnywhereInTwoWordsDecodesAsTheRuleSays) {
  const std::string backgrounds[] = {"0123456789abcdef", "fedcba9876543210", "9a0F5cB1e7D2f3A8"};
  for (bool upper : {false, true}) {
    for (const std::string &bg : backgrounds) {
      for (size_t pos = 0; pos + 1 < bg.size(); ++pos) {
        for (int a = 0; a < 256; ++a) {
          for (int b = 0; b < 256; ++b) {
            std::string s = bg;
            s[pos] = static_cast<char>(a);
            s[pos + 1] = static_cast<char>(b);
            uint8_t want[8];
            bool valid = true;
            for (size_t i = 0; i < 16; i += 2) {
              int hi = hex_digit(static_cast<uint8_t>(s[i]), upper);
              int lo = hex_digit(static_cast<uint8_t>(s[i + 1]), upper);
              valid = valid && hi >= 0 && lo >= 0;
              want[i / 2] = static_cast<uint8_t>(hi << 4 | (lo & 0x0f));
            }
            uint8_t out[8];
            bool ok = hex_decode(s, out, upper);
            ASSERT_EQ(ok, valid) << pos << " " << a << " " << b << " upper " << upper;
            if (ok) {
              ASSERT_EQ(std::memcmp(out, want, 8), 0) << pos << " " << a << " " << b;
            }
          }
        }
      }
    }
  }
}

TEST(TraceParent, FieldLengthsAreExact) {  // TC "version-format": 32, 16 and 2 digits
  EXPECT_FALSE(parses(tp("00", kTrace.substr(1))));
  EXPECT_FALSE(parses(tp("00", kTrace + "0")));
  EXPECT_FALSE(parses(tp("00", kTrace, kSpan.substr(1))));
  EXPECT_FALSE(parses(tp("00", kTrace, kSpan + "0")));
  EXPECT_FALSE(parses(tp("00", kTrace, kSpan, "1")));
  EXPECT_FALSE(parses(tp("00", kTrace, kSpan, "001")));
  EXPECT_FALSE(parses(""));
}

TEST(TraceParent, Version00EndsAtTheFlags) {  // TC conformance test_traceparent_version_0x00
  EXPECT_FALSE(parses(tp("00") + "."));
  EXPECT_FALSE(parses(tp("00") + "-what-the-future-will-be-like"));
  EXPECT_FALSE(parses(tp("00") + "-"));
}

TEST(TraceParent, HigherVersionsParseTheFixedFieldsAndIgnoreTheRest) {  // TC "Versioning"
  otelagent_span_context c{};
  ASSERT_TRUE(traceparent_parse(tp("cc") + "-what-the-future-will-be-like", &c));
  EXPECT_EQ(traceparent_format(c), tp("00"));  // re-emitted as version 00
  EXPECT_TRUE(parses(tp("cc")));
  EXPECT_TRUE(parses(tp("01") + "-"));
  // The flags must be followed by '-' or the end.
  EXPECT_FALSE(parses(tp("cc") + ".what-the-future-will-be-like"));
  EXPECT_FALSE(parses(tp("cc") + "what"));
  // Shorter than 55 characters: not parsed.
  EXPECT_FALSE(parses(tp("cc", kTrace, kSpan, "0")));
  // The ids keep their rules in a higher version.
  EXPECT_FALSE(parses(tp("cc", std::string(32, '0')) + "-x"));
  EXPECT_FALSE(parses(tp("cc", kTrace, "00F067AA0BA902B7")));
}

TEST(TraceParent,
     SurroundingSpacesAndTabsAreAllowed) {  // TC conformance test_traceparent_ows_handling
  EXPECT_TRUE(parses(" " + tp("00")));
  EXPECT_TRUE(parses("\t" + tp("00")));
  EXPECT_TRUE(parses(tp("00") + " "));
  EXPECT_TRUE(parses(tp("00") + "\t"));
  EXPECT_TRUE(parses("\t " + tp("00") + " \t"));
}

TEST(TraceParent, OtherWhiteSpaceIsNotAllowed) {  // RFC 9110 OWS is spaces and tabs only
  EXPECT_FALSE(parses("\n" + tp("00")));
  EXPECT_FALSE(parses(tp("00") + "\r\n"));
  EXPECT_FALSE(parses("00 -" + kTrace + "-" + kSpan + "-01"));
}

TEST(TraceParent, RandomTraceIdFlagIsKept) {  // TC "Random Trace ID Flag": keep it when continuing
  otelagent_span_context c{};
  ASSERT_TRUE(traceparent_parse(tp("00", kTrace, kSpan, "03"), &c));
  EXPECT_EQ(c.trace_flags, 3);
  EXPECT_EQ(traceparent_format(c), tp("00", kTrace, kSpan, "03"));
  ASSERT_TRUE(traceparent_parse(tp("00", kTrace, kSpan, "02"), &c));
  EXPECT_EQ(traceparent_format(c), tp("00", kTrace, kSpan, "02"));
}

// TC "Other Flags": vendors MUST set them to zero; processing model: unknown
// trace-flags are set to 0 on outgoing requests.
TEST(TraceParent, UnknownFlagsAreCleared) {
  otelagent_span_context c{};
  ASSERT_TRUE(traceparent_parse(tp("00", kTrace, kSpan, "ff"), &c));
  EXPECT_EQ(c.trace_flags, 3);
  ASSERT_TRUE(traceparent_parse(tp("cc", kTrace, kSpan, "05") + "-x", &c));
  EXPECT_EQ(c.trace_flags, 1);
  EXPECT_EQ(traceparent_format(context(0xfd)), tp("00", kTrace, kSpan, "01"));
}

TEST(TraceParent, FormatRefusesAnAllZeroContext) {  // TC "trace-id", "parent-id"; issue 5 item 12
  otelagent_span_context c{};
  EXPECT_EQ(traceparent_format(c), "");
  c = context(1);
  std::memset(c.span_id, 0, 8);
  EXPECT_EQ(traceparent_format(c), "");
  c = context(1);
  std::memset(c.trace_id, 0, 16);
  EXPECT_EQ(traceparent_format(c), "");
}

TEST(TraceParent, InvalidValueLeavesTheContextUntouched) {
  otelagent_span_context c = context(1);
  EXPECT_FALSE(traceparent_parse(tp("ff"), &c));
  EXPECT_EQ(traceparent_format(c), tp("00"));
}

// ----------------------------------------------------------------- tracestate

TEST(TraceState, ValidMembersAreKeptWithoutWhiteSpace) {  // TC "tracestate Header Field Values"
  EXPECT_EQ(tracestate_normalize(" rojo=00f067aa0ba902b7 ,, congo=t61rcWkgMzE,tenant@sys=v"),
            "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE,tenant@sys=v");
}

TEST(TraceState, SpacesAndTabsAroundMembersAreIgnored) {  // TC "list"; test_tracestate_ows_handling
  EXPECT_EQ(tracestate_normalize("foo=1 \t , \t bar=2, \t baz=3"), "foo=1,bar=2,baz=3");
  EXPECT_EQ(tracestate_normalize("foo=1\t \t,\t \tbar=2,\t \tbaz=3"), "foo=1,bar=2,baz=3");
  EXPECT_EQ(tracestate_normalize("\t foo=1 \t"), "foo=1");
}

TEST(TraceState, EmptyHeadersAndEmptyMembersAreAccepted) {  // TC "list": MUST accept empty headers
  EXPECT_EQ(tracestate_normalize(""), "");
  EXPECT_EQ(tracestate_normalize(" , ,\t,"), "");
  EXPECT_EQ(combine({"foo=1", ""}), "foo=1");
  EXPECT_EQ(combine({"", "foo=1"}), "foo=1");
  EXPECT_TRUE(tracestate_valid(""));
  EXPECT_TRUE(tracestate_valid("foo=1, ,bar=2"));
}

// TC "tracestate Header Field Values": several field lines MUST be combined
// (RFC 9110 section 5.3), in order; issue 5 item 10.
TEST(TraceState, SeveralFieldLinesAreOneList) {
  EXPECT_EQ(combine({"foo=1,bar=2", "rojo=1,congo=2", "baz=3"}),
            "foo=1,bar=2,rojo=1,congo=2,baz=3");
  EXPECT_EQ(combine({"foo=1", "Bad=1"}), "");  // one list: one invalid member discards it
  EXPECT_EQ(combine({}), "");
}

TEST(TraceState, KeysMayContainAtSignsAfterTheFirstCharacter) {  // TC "Key"; conformance #584
  EXPECT_EQ(tracestate_normalize("foo@=1,bar=2"), "foo@=1,bar=2");
  EXPECT_EQ(tracestate_normalize("foo@@bar=1,bar=2"), "foo@@bar=1,bar=2");
  EXPECT_EQ(tracestate_normalize("foo@bar@baz=1,bar=2"), "foo@bar@baz=1,bar=2");
  // Level 1's tenant and system limits (241 and 14) no longer apply.
  const std::string long_system = "t@" + std::string(15, 'v');
  EXPECT_EQ(combine({"foo=1", long_system + "=1"}), "foo=1," + long_system + "=1");
  const std::string long_tenant = std::string(242, 't') + "@v";
  EXPECT_EQ(combine({"foo=1", long_tenant + "=1"}), "foo=1," + long_tenant + "=1");
  EXPECT_EQ(tracestate_normalize("1special=x"), "1special=x");  // a digit may come first
  EXPECT_EQ(tracestate_normalize("@foo=1,bar=2"), "");          // '@' may not
}

TEST(TraceState, KeysAreLowerCaseLettersDigitsAndUnderscoreDashStarSlashAt) {  // TC "Key"
  const std::string key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/@a-z0-9_-*/";
  EXPECT_EQ(tracestate_normalize(key + "=1"), key + "=1");
  EXPECT_EQ(tracestate_normalize("foo =1"), "");
  EXPECT_EQ(tracestate_normalize("FOO=1"), "");
  EXPECT_EQ(tracestate_normalize("foo.bar=1"), "");
  EXPECT_EQ(tracestate_normalize("_foo=1"), "");
  EXPECT_EQ(tracestate_normalize("=1"), "");
  EXPECT_EQ(tracestate_normalize("foo"), "");  // no '='
}

TEST(TraceState, KeysHaveAtMost256Characters) {  // TC "Key"; test_tracestate_key_length_limit
  const std::string key(256, 'z');
  EXPECT_EQ(combine({"foo=1", key + "=1"}), "foo=1," + key + "=1");
  const std::string too_long = std::string(257, 'z').append("=1");
  EXPECT_EQ(combine({"foo=1", too_long}), "");
}

TEST(TraceState, ValuesArePrintableAsciiWithoutCommaOrEquals) {  // TC "Value"
  std::string all;
  for (char c = 0x20; c <= 0x7e; ++c)
    if (c != ',' && c != '=') all += c;
  EXPECT_EQ(tracestate_normalize("foo=" + all),
            "foo=" + all);  // test_tracestate_all_allowed_characters
  EXPECT_EQ(tracestate_normalize("foo=bar=baz"), "");
  EXPECT_EQ(tracestate_normalize("foo=,bar=3"), "");  // a value is at least one character
  EXPECT_EQ(tracestate_normalize("foo=a\tb"), "");
  EXPECT_EQ(tracestate_normalize("foo=a\x7f"), "");
  EXPECT_EQ(tracestate_normalize("foo=caf\xc3\xa9"), "");
}

TEST(TraceState, ValuesHaveAtMost256Characters) {  // TC "Value": 0*255(chr) nblk-chr
  EXPECT_EQ(tracestate_normalize("foo=" + std::string(256, 'v')), "foo=" + std::string(256, 'v'));
  EXPECT_EQ(tracestate_normalize("foo=" + std::string(257, 'v')), "");
}

// TC "Value": leading spaces are part of the value; trailing spaces are
// optional white space and may be left out.
TEST(TraceState, LeadingSpacesOfAValueAreKeptTrailingOnesDropped) {
  EXPECT_EQ(tracestate_normalize("foo=  x  ,bar= y"), "foo=  x,bar= y");
}

TEST(TraceState, AtMost32Members) {  // TC "list"; test_tracestate_member_count_limit
  std::string lines[4];
  for (int i = 1; i <= 33; ++i)
    lines[(i - 1) / 10] += (i % 10 == 1 ? "" : ",") + std::string("bar") + std::to_string(i) + "=1";
  std::string_view with_32[4] = {lines[0], lines[1], lines[2], "bar31=1,bar32=1"};
  std::string kept = tracestate_combine(with_32, 4);
  EXPECT_EQ(std::count(kept.begin(), kept.end(), ','), 31);
  std::string_view with_33[4] = {lines[0], lines[1], lines[2], lines[3]};
  EXPECT_EQ(lines[3], "bar31=1,bar32=1,bar33=1");
  EXPECT_EQ(tracestate_combine(with_33, 4), "");
  EXPECT_FALSE(
      tracestate_valid(std::string(lines[0]) + "," + lines[1] + "," + lines[2] + "," + lines[3]));
}

// TC "Mutating the tracestate Field": vendors MAY discard duplicate keys;
// test_tracestate_duplicated_keys: the list is kept, with the duplicates or
// one of them. The first (leftmost, most recent) entry is kept.
TEST(TraceState, DuplicateKeysKeepTheFirstEntry) {
  EXPECT_EQ(tracestate_normalize("foo=1,foo=1"), "foo=1");
  EXPECT_EQ(tracestate_normalize("foo=1,bar=2,foo=3"), "foo=1,bar=2");
  EXPECT_EQ(combine({"foo=1", "foo=2"}), "foo=1");
  // "Adding a key/value pair MUST NOT result in the same key being present
  // multiple times": as given, such a value is not one to send.
  EXPECT_FALSE(tracestate_valid("foo=1,foo=2"));
  EXPECT_TRUE(tracestate_valid("foo=1,bar=2"));
}

// TC "tracestate Limits": whole entries, those over 128 characters first,
// then from the end. We propagate 512 characters.
TEST(TraceState, TruncationDropsEntriesOver128CharactersFirst) {
  const std::string a = member("a", 100), b = member("b", 200), c = member("c", 100),
                    d = member("d", 100), e = member("e", 100);
  EXPECT_EQ(combine({a, b, c, d, e}), a + "," + c + "," + d + "," + e);
  // Only as many long entries as needed go, from the right.
  const std::string l1 = member("l1", 200), l2 = member("l2", 200), s = member("s", 110);
  EXPECT_EQ(combine({l1, l2, s, "t=1"}), l1 + "," + s + ",t=1");
}

TEST(TraceState, TruncationThenDropsEntriesFromTheEnd) {  // TC "tracestate Limits"
  std::string v;
  for (int i = 0; i < 10; ++i) v += member("key" + std::to_string(i), 105) + ",";
  std::string kept = tracestate_normalize(v);
  EXPECT_LE(kept.size(), kTracestateMaxOutput);
  EXPECT_EQ(kept, v.substr(0, 4 * 106 - 1));  // key0..key3 whole
  const std::string exactly = member("a", 255) + "," + member("b", 256);
  ASSERT_EQ(exactly.size(), kTracestateMaxOutput);
  EXPECT_EQ(tracestate_normalize(exactly), exactly);
  // One member longer than what we propagate cannot be kept.
  EXPECT_EQ(tracestate_normalize(std::string(256, 'k') + "=" + std::string(256, 'v')), "");
}

TEST(TraceState, CombinedInputOverTheMaximumIsRefused) {
  std::string pad(kTracestateMaxInput - 5, ' ');
  EXPECT_EQ(combine({pad, "foo=1"}), "foo=1");
  EXPECT_EQ(combine({pad, " foo=1"}), "");
  EXPECT_FALSE(tracestate_valid(pad + " foo=1"));
}

// -------------------------------------------------------------------- baggage

TEST(Baggage, KeepsValidMembersOnly) {  // BG "Mutating baggage": invalid members MAY be removed
  EXPECT_EQ(baggage_normalize(
                "userId=alice, serverNode = DF%2028 ;prop=1;flag,bad key=x,isProduction=false"),
            "userId=alice,serverNode=DF%2028;prop=1;flag,isProduction=false");
  EXPECT_EQ(baggage_normalize("novalue"), "");
}

TEST(Baggage, WhiteSpaceAroundKeysValuesAndPropertiesIsDropped) {  // BG "Definition": OWS
  EXPECT_EQ(baggage_normalize("userId =   alice"), "userId=alice");
  EXPECT_EQ(baggage_normalize("key3=value3; propertyKey=propertyValue"),
            "key3=value3;propertyKey=propertyValue");
  EXPECT_EQ(baggage_normalize("k\t=\tv\t;\tp\t"), "k=v;p");
}

TEST(Baggage, KeysAreTokens) {  // BG "key": token (RFC 7230)
  EXPECT_EQ(baggage_normalize("a!#$%&'*+-.^_`|~Z9=1"), "a!#$%&'*+-.^_`|~Z9=1");
  EXPECT_EQ(baggage_normalize("bad key=1"), "");
  EXPECT_EQ(baggage_normalize("k(=1"), "");
  EXPECT_EQ(baggage_normalize("=1"), "");
}

TEST(Baggage, ValuesAreBaggageOctets) {            // BG "Definition": baggage-octet
  EXPECT_EQ(baggage_normalize("k=a=b"), "k=a=b");  // BG "value": any number of '='
  EXPECT_EQ(baggage_normalize("k="), "k=");        // value = *baggage-octet
  EXPECT_EQ(baggage_normalize("k=a\"b"), "");
  EXPECT_EQ(baggage_normalize("k=a\\b"), "");
  EXPECT_EQ(baggage_normalize("k=a b"), "");
  EXPECT_EQ(baggage_normalize("k=caf\xc3\xa9"), "");
}

TEST(Baggage, PercentMustBeEncoded) {  // BG "value": U+0025 MUST be percent-encoded
  EXPECT_EQ(baggage_normalize("k=Am%C3%A9lie"), "k=Am%C3%A9lie");
  EXPECT_EQ(baggage_normalize("k=50%"), "");
  EXPECT_EQ(baggage_normalize("k=v%zz"), "");
  EXPECT_EQ(baggage_normalize("k=v%2"), "");
}

TEST(Baggage, PropertiesAreKeysOrKeyValuePairs) {  // BG "property"
  EXPECT_EQ(baggage_normalize("key1=value1;property1;property2"),
            "key1=value1;property1;property2");
  EXPECT_EQ(baggage_normalize("k=v;p=%41;q="), "k=v;p=%41;q=");
  EXPECT_EQ(baggage_normalize("k=v;p=50%"), "");  // same encoding rules as values
  EXPECT_EQ(baggage_normalize("k=v;bad key"), "");
  EXPECT_EQ(baggage_normalize("k=v;"), "");  // a property needs a key
}

TEST(Baggage, DuplicateKeysKeepTheirOrder) {  // BG "baggage-string": order SHOULD be preserved
  EXPECT_EQ(baggage_normalize("k=1,j=2,k=3"), "k=1,j=2,k=3");
}

TEST(Baggage, SeveralFieldLinesAreOneList) {  // BG "Header Content" and its multi-header example
  std::string_view lines[] = {"userId =   alice", "serverNode = DF%2028, isProduction = false"};
  EXPECT_EQ(baggage_combine(lines, 2), "userId=alice,serverNode=DF%2028,isProduction=false");
}

// BG "Limits": 64 members and 8192 bytes, of all field lines together; whole
// members only.
TEST(Baggage, LimitsApplyToAllLinesTogether) {
  std::string a, b;
  for (int i = 0; i < 40; ++i) a += "a" + std::to_string(i) + "=v,";
  for (int i = 0; i < 40; ++i) b += "b" + std::to_string(i) + "=v,";
  std::string_view lines[] = {a, b};
  std::string out = baggage_combine(lines, 2);
  EXPECT_EQ(std::count(out.begin(), out.end(), ','), 63);
  EXPECT_EQ(out.substr(out.rfind(',') + 1), "b23=v");

  std::string big;
  for (int i = 0; i < 20; ++i) big += "k" + std::to_string(i) + "=" + std::string(1000, 'a') + ",";
  out = baggage_normalize(big);
  EXPECT_LE(out.size(), kBaggageMaxOutput);
  EXPECT_EQ(out.back(), 'a');
  EXPECT_EQ(std::count(out.begin(), out.end(), ','), 7);  // 8 whole members of 1003 bytes
}

// BG "Limits": which members to drop is the implementer's choice, and it
// SHOULD propagate as much as is reasonable: a member that does not fit is
// skipped and later ones are still kept.
TEST(Baggage, AMemberThatDoesNotFitIsSkippedNotTheRest) {
  const std::string huge = "big=" + std::string(kBaggageMaxOutput, 'x');
  EXPECT_EQ(baggage_normalize(huge + ",b=1"), "b=1");
  const std::string fill = "f=" + std::string(kBaggageMaxOutput - 10, 'x');
  EXPECT_EQ(baggage_normalize(fill + ",long=123456789,s=1"), fill + ",s=1");
}

TEST(Baggage, CombinedInputOverTheMaximumIsRefused) {
  std::string pad(kBaggageMaxInput - 3, ' ');
  std::string_view fits[] = {pad, "k=1"}, over[] = {pad, "k=12"};
  EXPECT_EQ(baggage_combine(fits, 2), "k=1");
  EXPECT_EQ(baggage_combine(over, 2), "");
}

// ---------------------------------------------------------------------- X-Ray

TEST(XRay, ParseAndFormatRoundTrip) {
  const std::string h = kRoot + ";" + kParent + ";Sampled=1";
  otelagent_span_context c{};
  bool deferred = true;
  ASSERT_TRUE(xray_parse(h, &c, &deferred));
  char hex[33];
  hex_encode(c.trace_id, 16, hex);
  EXPECT_EQ(std::string(hex, 32), "5759e988bd862e3fe1be46a994272793");
  EXPECT_EQ(c.trace_flags, 1);
  EXPECT_EQ(c.is_remote, 1);
  EXPECT_FALSE(deferred);
  EXPECT_EQ(xray_format(c), h);
  ASSERT_TRUE(xray_parse(" Sampled=0 ; " + kParent + ";" + kRoot + ";Lineage=a:1", &c, &deferred));
  EXPECT_EQ(c.trace_flags, 0);
  EXPECT_FALSE(deferred);
}

// "Sampled=?" leaves the decision to the receiver; with a parent-based
// sampler it must not read as "not sampled" (issue 5 item 12).
TEST(XRay, SampledQuestionMarkDefersTheDecision) {
  otelagent_span_context c{};
  bool deferred = false;
  ASSERT_TRUE(xray_parse(kRoot + ";" + kParent + ";Sampled=?", &c, &deferred));
  EXPECT_TRUE(deferred);
  EXPECT_EQ(c.trace_flags & 1, 0);
  EXPECT_EQ(xray_format(c, true), kRoot + ";" + kParent + ";Sampled=?");
}

TEST(XRay, NoSampledFieldDefersTheDecision) {
  otelagent_span_context c{};
  bool deferred = false;
  ASSERT_TRUE(xray_parse(kRoot + ";" + kParent, &c, &deferred));
  EXPECT_TRUE(deferred);
}

TEST(XRay, MalformedOrRepeatedFieldsAreInvalid) {
  otelagent_span_context c{};
  bool deferred;
  EXPECT_FALSE(xray_parse(kRoot + ";" + kParent + ";Sampled=2", &c, &deferred));
  EXPECT_FALSE(xray_parse(kRoot + ";" + kParent + ";Sampled=", &c, &deferred));
  EXPECT_FALSE(xray_parse(kRoot + ";" + kParent + ";Sampled=1;Sampled=0", &c, &deferred));
  EXPECT_FALSE(xray_parse(kRoot + ";" + kParent + ";Parent=1111111111111111", &c, &deferred));
  EXPECT_FALSE(xray_parse(kRoot + ";" + kParent + ";Root=1-5759e988-bd862e3fe1be46a994272794", &c,
                          &deferred));
}

TEST(XRay, InvalidHeaders) {
  otelagent_span_context c{};
  bool deferred;
  EXPECT_FALSE(xray_parse(kRoot, &c, &deferred));  // no parent
  EXPECT_FALSE(xray_parse("Root=2-5759e988-bd862e3fe1be46a994272793;" + kParent, &c, &deferred));
  EXPECT_FALSE(xray_parse("Root=1-5759e988-bd862e3fe1be46a99427279;" + kParent, &c, &deferred));
  EXPECT_FALSE(xray_parse(kRoot + ";Parent=0000000000000000", &c, &deferred));
  EXPECT_FALSE(xray_parse("Root=1-00000000-000000000000000000000000;" + kParent, &c, &deferred));
  EXPECT_FALSE(xray_parse("", &c, &deferred));
}

TEST(XRay, FormatRefusesAnAllZeroContext) {  // issue 5 item 12
  otelagent_span_context c{};
  EXPECT_EQ(xray_format(c), "");
  c = context(1);
  std::memset(c.span_id, 0, 8);
  EXPECT_EQ(xray_format(c), "");
}

// ------------------------------------------------- input bounds (issue 5 item 17)

// Two pages, the second inaccessible: any read past the first faults.
class GuardedPage {
 public:
  GuardedPage() {
    page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    void *p = mmap(nullptr, 2 * page_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    EXPECT_NE(p, MAP_FAILED);
    base_ = static_cast<char *>(p);
    EXPECT_EQ(mprotect(base_ + page_, page_, PROT_NONE), 0);
  }
  ~GuardedPage() { munmap(base_, 2 * page_); }
  // `s` copied so that it ends exactly where the guard page begins.
  std::string_view at_end(std::string_view s) {
    char *p = base_ + page_ - s.size();
    std::memcpy(p, s.data(), s.size());
    return {p, s.size()};
  }

 private:
  size_t page_ = 0;
  char *base_ = nullptr;
};

TEST(PropagationBounds, NothingIsReadPastTheEndOfTheInput) {
  GuardedPage g;
  otelagent_span_context c{};
  bool deferred;
  EXPECT_TRUE(traceparent_parse(g.at_end(tp("00")), &c));
  EXPECT_FALSE(traceparent_parse(g.at_end(tp("00").substr(0, 54)), &c));
  EXPECT_TRUE(traceparent_parse(g.at_end(tp("cc") + "-"), &c));
  std::string_view ts = g.at_end("foo=1,bar=2 ");
  EXPECT_EQ(tracestate_combine(&ts, 1), "foo=1,bar=2");
  ts = g.at_end("foo");
  EXPECT_EQ(tracestate_combine(&ts, 1), "");
  EXPECT_EQ(baggage_normalize(g.at_end("k=v;p=%4")), "");
  EXPECT_EQ(baggage_normalize(g.at_end("k=v;p")), "k=v;p");
  EXPECT_TRUE(xray_parse(g.at_end(kRoot + ";" + kParent + ";Sampled=1"), &c, &deferred));
  EXPECT_FALSE(xray_parse(g.at_end(kRoot + ";Parent=53995c3f42cd8ad"), &c, &deferred));
}

// A length over a parser's maximum (SIZE_MAX from a binding that means
// "NUL-terminated") is refused before any byte is read: the bytes past the
// first page are not there.
TEST(PropagationBounds, LengthsOverTheMaximumAreRefusedUnread) {
  GuardedPage g;
  const char *p = g.at_end("x").data();
  otelagent_span_context c{};
  bool deferred;
  for (size_t len : {size_t{1} << 20, SIZE_MAX / 2, SIZE_MAX}) {
    std::string_view huge(p, len);
    EXPECT_FALSE(traceparent_parse(huge, &c));
    EXPECT_EQ(tracestate_combine(&huge, 1), "");
    EXPECT_FALSE(tracestate_valid(huge));
    EXPECT_EQ(baggage_normalize(huge), "");
    EXPECT_FALSE(xray_parse(huge, &c, &deferred));
    // Several lines whose lengths wrap around when added.
    std::string_view lines[] = {std::string_view(p, 1), huge};
    EXPECT_EQ(tracestate_combine(lines, 2), "");
    EXPECT_EQ(baggage_combine(lines, 2), "");
  }
}

// 1 MiB of plausible input: refused whole, like any length over the maximum.
TEST(PropagationBounds, MegabyteInputsAreRefused) {
  std::string big;
  while (big.size() < (1u << 20)) big += "k" + std::to_string(big.size()) + "=v,";
  otelagent_span_context c{};
  bool deferred;
  EXPECT_EQ(tracestate_normalize(big), "");
  EXPECT_EQ(baggage_normalize(big), "");
  EXPECT_FALSE(traceparent_parse(tp("00") + std::string(1 << 20, ' '), &c));
  EXPECT_FALSE(xray_parse(kRoot + ";" + kParent + ";" + std::string(1 << 20, ' '), &c, &deferred));
  // At the maximum the work is done.
  EXPECT_TRUE(traceparent_parse(tp("00") + std::string(kTraceparentMaxInput - 55, ' '), &c));
  EXPECT_TRUE(
      xray_parse(kRoot + ";" + kParent + std::string(kXrayMaxInput - 64, ' '), &c, &deferred));
}

}  // namespace
}  // namespace otelagent
