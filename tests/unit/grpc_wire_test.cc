// OTLP/gRPC's wire pieces: framing, header formats, the status mapping of
// the OTLP specification, and grpc-status-details-bin.
#include "export/grpc_wire.h"

#include <gtest/gtest.h>

#include <string>

#include "export/retry_policy.h"

namespace otelagent {
namespace {

// Protobuf writers for the test inputs, kept apart from the parser.
std::string varint(uint64_t v) {
  std::string out;
  do {
    uint8_t b = v & 0x7f;
    v >>= 7;
    out += static_cast<char>(v ? b | 0x80 : b);
  } while (v);
  return out;
}
std::string len_field(int number, const std::string &payload) {
  return varint(static_cast<uint64_t>(number) << 3 | 2) + varint(payload.size()) + payload;
}
std::string varint_field(int number, uint64_t v) {
  return varint(static_cast<uint64_t>(number) << 3) + varint(v);
}

std::string base64(const std::string &in, bool pad) {
  static const char *abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t n = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int k = 18; k >= 0; k -= 6) out += abc[(n >> k) & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t n = uint8_t(in[i]) << 16;
    out += abc[(n >> 18) & 63];
    out += abc[(n >> 12) & 63];
    if (pad) out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t n = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += abc[(n >> 18) & 63];
    out += abc[(n >> 12) & 63];
    out += abc[(n >> 6) & 63];
    if (pad) out += "=";
  }
  return out;
}

std::string retry_info_any(int64_t seconds, int32_t nanos) {
  std::string duration = varint_field(1, static_cast<uint64_t>(seconds)) +
                         varint_field(2, static_cast<uint64_t>(static_cast<int64_t>(nanos)));
  return len_field(1, "type.googleapis.com/google.rpc.RetryInfo") +
         len_field(2, len_field(1, duration));
}

std::string status_with(const std::string &any) {
  return varint_field(1, 8) + len_field(2, "slow down") + len_field(3, any);
}

TEST(GrpcWire, FramePrefixIsTheFlagAndABigEndianLength) {
  char p[5];
  grpc_frame_prefix(false, 0x01020304, p);
  EXPECT_EQ(std::string(p, 5), std::string("\x00\x01\x02\x03\x04", 5));
  grpc_frame_prefix(true, 70000, p);
  EXPECT_EQ(std::string(p, 5), std::string("\x01\x00\x01\x11\x70", 5));
}

TEST(GrpcWire, FirstMessageIsBoundedByTheBody) {
  bool compressed = true;
  std::string_view msg;
  const std::string empty("\x00\x00\x00\x00\x00", 5);
  ASSERT_TRUE(grpc_first_message(empty, &compressed, &msg));
  EXPECT_FALSE(compressed);
  EXPECT_TRUE(msg.empty());
  const std::string two = std::string("\x01\x00\x00\x00\x02", 5) + "ab" + "trailing";
  ASSERT_TRUE(grpc_first_message(two, &compressed, &msg));
  EXPECT_TRUE(compressed);
  EXPECT_EQ(msg, "ab");
  EXPECT_FALSE(
      grpc_first_message(std::string("\x00\x00\x00\x00\x03", 5) + "ab", &compressed, &msg));
  EXPECT_FALSE(grpc_first_message(std::string("\x00\xff\xff\xff\xff", 5), &compressed, &msg));
  EXPECT_FALSE(grpc_first_message("\x00\x00", &compressed, &msg));
}

TEST(GrpcWire, TimeoutHasAtMostEightDigits) {
  EXPECT_EQ(grpc_timeout_value(10000), "10000m");
  EXPECT_EQ(grpc_timeout_value(99999999), "99999999m");
  EXPECT_EQ(grpc_timeout_value(100000000), "100000S");
  EXPECT_EQ(grpc_timeout_value(100000001), "100001S");  // rounded up
}

TEST(GrpcWire, MessageIsPercentDecodedLeniently) {
  EXPECT_EQ(grpc_message_decode("caf%C3%A9 50%25"), "caf\xC3\xA9 50%");
  EXPECT_EQ(grpc_message_decode("bad %zz and %4"), "bad %zz and %4");
}

TEST(GrpcWire, HttpStatusesMapAsGrpcClientsDo) {
  for (long s : {429L, 502L, 503L, 504L}) EXPECT_EQ(grpc_code_from_http(s), kGrpcUnavailable) << s;
  EXPECT_EQ(grpc_code_from_http(400), kGrpcInternal);
  EXPECT_EQ(grpc_code_from_http(401), kGrpcUnauthenticated);
  EXPECT_EQ(grpc_code_from_http(403), kGrpcPermissionDenied);
  EXPECT_EQ(grpc_code_from_http(404), kGrpcUnimplemented);
  EXPECT_EQ(grpc_code_from_http(500), kGrpcUnknown);
  EXPECT_STREQ(grpc_code_name(14), "UNAVAILABLE");
  EXPECT_STREQ(grpc_code_name(17), "UNKNOWN_CODE");
  EXPECT_STREQ(grpc_code_name(-1), "UNKNOWN_CODE");
}

Outcome grpc_status(int code) {
  Outcome o;
  o.grpc = true;
  o.http_status = 200;
  o.grpc_status = code;
  return o;
}

TEST(GrpcWire, StatusesAreRetriedAsTheOtlpSpecificationSays) {
  EXPECT_EQ(classify(grpc_status(kGrpcOk), false), Verdict::kSuccess);
  for (int c : std::initializer_list<int>{kGrpcCancelled, kGrpcDeadlineExceeded, kGrpcAborted,
                                          kGrpcOutOfRange, kGrpcUnavailable, kGrpcDataLoss})
    EXPECT_EQ(classify(grpc_status(c), false), Verdict::kRetry) << c;
  for (int c : std::initializer_list<int>{
           kGrpcUnknown, kGrpcInvalidArgument, kGrpcNotFound, kGrpcAlreadyExists,
           kGrpcPermissionDenied, kGrpcResourceExhausted, kGrpcFailedPrecondition,
           kGrpcUnimplemented, kGrpcInternal, kGrpcUnauthenticated, 17, 99})
    EXPECT_EQ(classify(grpc_status(c), false), Verdict::kDrop) << c;
  Outcome exhausted = grpc_status(kGrpcResourceExhausted);
  exhausted.retry_info = true;
  EXPECT_EQ(classify(exhausted, false), Verdict::kRetry);
  // No grpc-status: the HTTP status speaks (a proxy answering), and 200
  // without one is INTERNAL.
  for (long s : {429L, 502L, 503L, 504L}) {
    Outcome o = grpc_status(-1);
    o.http_status = s;
    EXPECT_EQ(classify(o, false), Verdict::kRetry) << s;
  }
  for (long s : {200L, 400L, 404L, 500L}) {
    Outcome o = grpc_status(-1);
    o.http_status = s;
    EXPECT_EQ(classify(o, false), Verdict::kDrop) << s;
  }
  // A grpc-status wins over the HTTP status.
  Outcome proxied = grpc_status(kGrpcOk);
  proxied.http_status = 503;
  EXPECT_EQ(classify(proxied, false), Verdict::kSuccess);
  // An HTTP/1.1 peer is dropped whatever it answered.
  Outcome h1 = grpc_status(-1);
  h1.not_http2 = true;
  EXPECT_EQ(classify(h1, false), Verdict::kDrop);
  // zstd refused: fall back; the same refusal of gzip is final.
  Outcome unimplemented = grpc_status(kGrpcUnimplemented);
  unimplemented.encoding_rejected = true;
  EXPECT_EQ(classify(unimplemented, true), Verdict::kFallbackGzip);
  EXPECT_EQ(classify(unimplemented, false), Verdict::kDrop);
  Outcome reset;
  reset.transport_error = true;
  reset.encoding_rejected = true;
  EXPECT_EQ(classify(reset, true), Verdict::kFallbackGzip);
  EXPECT_EQ(classify(reset, false), Verdict::kRetry);
}

TEST(GrpcWire, StatusDetailsCarryRetryInfo) {
  GrpcStatusDetails d;
  const std::string status = status_with(retry_info_any(1, 500000000));
  for (bool pad : {false, true}) {
    ASSERT_TRUE(grpc_parse_status_details(base64(status, pad), &d)) << pad;
    EXPECT_EQ(d.code, 8);
    EXPECT_TRUE(d.retry_info);
    EXPECT_EQ(d.retry_delay_ms, 1500);
  }
  // A nanosecond is rounded up to a millisecond: the delay is a lower bound.
  ASSERT_TRUE(grpc_parse_status_details(base64(status_with(retry_info_any(0, 1)), false), &d));
  EXPECT_EQ(d.retry_delay_ms, 1);
  // Negative and huge delays are clamped.
  ASSERT_TRUE(grpc_parse_status_details(base64(status_with(retry_info_any(-5, 0)), false), &d));
  EXPECT_EQ(d.retry_delay_ms, 0);
  ASSERT_TRUE(
      grpc_parse_status_details(base64(status_with(retry_info_any(INT64_MAX, 0)), false), &d));
  EXPECT_EQ(d.retry_delay_ms, 24 * 3600 * 1000);
  // An empty RetryInfo still says "retry".
  const std::string bare = len_field(1, "type.googleapis.com/google.rpc.RetryInfo");
  ASSERT_TRUE(grpc_parse_status_details(base64(status_with(bare), false), &d));
  EXPECT_TRUE(d.retry_info);
  EXPECT_EQ(d.retry_delay_ms, -1);
  // Another detail type is not RetryInfo.
  const std::string other = len_field(1, "type.googleapis.com/google.rpc.DebugInfo") +
                            len_field(2, len_field(2, "stack"));
  ASSERT_TRUE(grpc_parse_status_details(base64(status_with(other), false), &d));
  EXPECT_FALSE(d.retry_info);
  // No details at all.
  ASSERT_TRUE(grpc_parse_status_details(base64(varint_field(1, 8), false), &d));
  EXPECT_FALSE(d.retry_info);
}

TEST(GrpcWire, MalformedStatusDetailsAreRefused) {
  GrpcStatusDetails d;
  const std::string status = status_with(retry_info_any(2, 0));
  EXPECT_FALSE(grpc_parse_status_details("not base64!", &d));
  EXPECT_FALSE(grpc_parse_status_details("A", &d));  // an impossible length
  // Truncated protobuf: every prefix that cuts a field fails, none reads
  // past the end (ASan builds check that).
  for (size_t n = 1; n < status.size(); ++n) {
    GrpcStatusDetails part;
    const bool ok = grpc_parse_status_details(base64(status.substr(0, n), false), &part);
    if (ok) {
      EXPECT_FALSE(part.retry_info && part.retry_delay_ms != 2000) << n;
    }
  }
  // A length past the end of the Any.
  EXPECT_FALSE(grpc_parse_status_details(base64(varint_field(1, 8) + "\x1a\x7f", false), &d));
  // Over the bound: ignored without being decoded.
  EXPECT_FALSE(grpc_parse_status_details(std::string(kGrpcMaxDetails + 1, 'A'), &d));
}

}  // namespace
}  // namespace otelagent
