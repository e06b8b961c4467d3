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

otelagent_span_context context(uint8_t flags) {
  otelagent_span_context c{};
  EXPECT_TRUE(traceparent_parse(tp("00"), &c));
  c.trace_flags = flags;
  return c;
}

TEST(TraceParent, ValidVersion00) {
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

TEST(TraceParent, SurroundingSpacesAndTabsAreAllowed) {
  EXPECT_TRUE(parses("  " + tp("00") + "\t "));
  EXPECT_TRUE(parses("\t" + tp("00")));
}

TEST(TraceParent, FutureVersionsParseFixedFieldsAndIgnoreTheRest) {
  otelagent_span_context c{};
  ASSERT_TRUE(traceparent_parse(tp("cc") + "-what-the-future-will-be-like", &c));
  EXPECT_EQ(traceparent_format(c), tp("00"));  // re-emitted as version 00
  EXPECT_TRUE(parses(tp("cc")));
  EXPECT_FALSE(parses(tp("cc") + "what"));             // the rest must follow a '-'
  EXPECT_FALSE(parses(tp("cc", kTrace, kSpan, "0")));  // flags too short
}

TEST(TraceParent, InvalidValuesAreRejected) {
  EXPECT_FALSE(parses(""));
  EXPECT_FALSE(parses(tp("ff")));                                      // forbidden version
  EXPECT_FALSE(parses(tp("00") + "-extra"));                           // 00 must end at flags
  EXPECT_FALSE(parses(tp("00", std::string(32, '0'))));                // all-zero trace id
  EXPECT_FALSE(parses(tp("00", kTrace, std::string(16, '0'))));        // all-zero parent id
  EXPECT_FALSE(parses(tp("00", "4BF92F3577B34DA6A3CE929D0E0E4736")));  // uppercase
  EXPECT_FALSE(parses(tp("00", kTrace, "00F067AA0BA902B7")));
  EXPECT_FALSE(parses(tp("0A")));                       // uppercase version
  EXPECT_FALSE(parses(tp("00", kTrace, kSpan, "0G")));  // non-hex flags
  EXPECT_FALSE(parses(tp("00", kTrace.substr(1))));     // short trace id
  EXPECT_FALSE(parses(tp("00", kTrace + "0")));         // long trace id
  EXPECT_FALSE(parses(tp("00", kTrace, kSpan.substr(1))));
  EXPECT_FALSE(parses(tp("0")));                               // short version
  EXPECT_FALSE(parses("00_" + kTrace + "-" + kSpan + "-01"));  // wrong separator
  EXPECT_FALSE(parses(tp("00", "4bf92f3577b34da6a3ce929d0e0e473g")));
}

TEST(TraceState, ValidMembersAreKeptTrimmed) {
  otelagent_span_context c{};
  ASSERT_TRUE(tracestate_parse(" rojo=00f067aa0ba902b7 ,, congo=t61rcWkgMzE,tenant@sys=v", &c));
  EXPECT_EQ(std::string(c.tracestate, c.tracestate_len),
            "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE,tenant@sys=v");
}

TEST(TraceState, InvalidHeadersAreDiscardedWhole) {
  otelagent_span_context c{};
  EXPECT_FALSE(tracestate_parse("Rojo=1", &c));  // uppercase key
  EXPECT_EQ(c.tracestate_len, 0);
  EXPECT_FALSE(tracestate_parse("rojo=1,rojo=2", &c));        // duplicate key
  EXPECT_FALSE(tracestate_parse("rojo=a=b", &c));             // '=' in value
  EXPECT_FALSE(tracestate_parse("rojo", &c));                 // no value
  EXPECT_FALSE(tracestate_parse("rojo=", &c));                // empty value
  EXPECT_FALSE(tracestate_parse("@sys=1", &c));               // empty tenant
  EXPECT_FALSE(tracestate_parse("t@sysverylongname=1", &c));  // system id over 14
  std::string many;
  for (int i = 0; i < 33; ++i) many += "k" + std::to_string(i) + "=v,";
  EXPECT_FALSE(tracestate_parse(many, &c));  // 33 members
  std::string thirty_two;
  for (int i = 0; i < 32; ++i) thirty_two += "k" + std::to_string(i) + "=v,";
  EXPECT_TRUE(tracestate_parse(thirty_two, &c));
}

TEST(TraceState, LongHeadersKeepWholeMembersUpToTheCap) {
  otelagent_span_context c{};
  std::string v;
  for (int i = 0; i < 10; ++i) v += "key" + std::to_string(i) + "=" + std::string(100, 'x') + ",";
  ASSERT_TRUE(tracestate_parse(v, &c));
  EXPECT_LE(c.tracestate_len, OTELAGENT_TRACESTATE_MAX);
  std::string kept(c.tracestate, c.tracestate_len);
  EXPECT_EQ(kept.back(), 'x');  // ends on a whole member
  EXPECT_EQ(kept.find("key0="), 0u);
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

// The current C ABI: the two-argument form also empties the tracestate.
TEST(XRay, ParseForTheCurrentAbiEmptiesTheTracestate) {
  otelagent_span_context c{};
  c.tracestate_len = 3;
  ASSERT_TRUE(xray_parse(kRoot + ";" + kParent + ";Sampled=1", &c));
  EXPECT_EQ(c.tracestate_len, 0);
  EXPECT_EQ(c.trace_flags, 1);
}

// ------------------------------------------------------------ the current C ABI

TEST(ContextCApi, ExtractPrefersTraceContextAndNormalisesBaggage) {
  const std::string tpv = tp("00");
  otelagent_header h[] = {
      {{"TraceParent", 11}, {tpv.data(), tpv.size()}},
      {{"tracestate", 10}, {"a=1", 3}},
      {{"baggage", 7}, {"k=v,bad key=1", 13}},
  };
  otelagent_span_context c{};
  char bag[64];
  size_t bag_len = 0;
  ASSERT_EQ(otelagent_context_extract(h, 3, &c, bag, sizeof bag, &bag_len), OTELAGENT_OK);
  EXPECT_EQ(std::string(c.tracestate, c.tracestate_len), "a=1");
  EXPECT_EQ(std::string(bag, bag_len), "k=v");
  char out[256];
  size_t n = 0;
  ASSERT_EQ(otelagent_context_inject(&c, "k=v", 3, out, sizeof out, &n), OTELAGENT_OK);
  EXPECT_EQ(std::string(out, n), "traceparent: " + tpv + "\r\ntracestate: a=1\r\nbaggage: k=v\r\n");
  EXPECT_EQ(otelagent_context_inject(&c, nullptr, 0, out, 10, &n), OTELAGENT_E_NO_SPACE);
  EXPECT_EQ(otelagent_context_extract(nullptr, 1, &c, nullptr, 0, nullptr), OTELAGENT_E_INVALID);
  EXPECT_EQ(otelagent_context_extract(h + 1, 2, &c, nullptr, 0, nullptr), OTELAGENT_E_NOT_FOUND);
}

}  // namespace
}  // namespace otelagent
