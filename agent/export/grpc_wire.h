// The parts of gRPC over HTTP/2 that OTLP/gRPC needs, without the gRPC
// library (grpc/grpc doc/PROTOCOL-HTTP2.md): the length-prefixed message
// framing, the grpc-timeout and grpc-message header formats, the status codes
// and the google.rpc.Status carried base64-encoded in grpc-status-details-bin.
// Pure functions; the HTTP/2 itself is libcurl's (see http_transport.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace otelagent {

// The one method OTLP/gRPC trace export calls.
inline constexpr std::string_view kGrpcExportPath =
    "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

// The status codes of gRPC (grpc/grpc doc/statuscodes.md).
enum GrpcCode : int {
  kGrpcOk = 0,
  kGrpcCancelled = 1,
  kGrpcUnknown = 2,
  kGrpcInvalidArgument = 3,
  kGrpcDeadlineExceeded = 4,
  kGrpcNotFound = 5,
  kGrpcAlreadyExists = 6,
  kGrpcPermissionDenied = 7,
  kGrpcResourceExhausted = 8,
  kGrpcFailedPrecondition = 9,
  kGrpcAborted = 10,
  kGrpcOutOfRange = 11,
  kGrpcUnimplemented = 12,
  kGrpcInternal = 13,
  kGrpcUnavailable = 14,
  kGrpcDataLoss = 15,
  kGrpcUnauthenticated = 16,
};

// "UNAVAILABLE" and so on; "UNKNOWN_CODE" for a number outside 0..16.
const char *grpc_code_name(int code);

// The code a client infers from an HTTP status when the response carries no
// grpc-status (an HTTP proxy answering in the server's stead), as
// doc/http-grpc-status-mapping.md gives it: 429, 502, 503 and 504 are
// UNAVAILABLE, so they are retried.
int grpc_code_from_http(long http_status);

// Writes the 5-byte prefix of a length-prefixed message: the compressed
// flag, then the message length as a big-endian 32-bit number.
void grpc_frame_prefix(bool compressed, uint32_t length, char out[5]);

// Reads the first length-prefixed message of a response body. False when
// the body is shorter than the prefix says (a truncated response).
bool grpc_first_message(std::string_view body, bool *compressed, std::string_view *message);

// The grpc-timeout value for `ms` milliseconds ("10000m"). The format
// allows at most 8 digits: a longer timeout is written in seconds.
std::string grpc_timeout_value(uint64_t ms);

// Percent-decodes a grpc-message value. Lenient, as the protocol asks of
// clients: a malformed escape is kept as it is.
std::string grpc_message_decode(std::string_view value);

// What grpc-status-details-bin (a google.rpc.Status) says about retrying.
struct GrpcStatusDetails {
  int32_t code = 0;
  bool retry_info = false;      // a google.rpc.RetryInfo detail was present
  int64_t retry_delay_ms = -1;  // its retry_delay, rounded up; -1 when absent
};

// The longest grpc-status-details-bin value read; a longer one is ignored
// (the details are an optional hint, and the input comes from the network).
inline constexpr size_t kGrpcMaxDetails = 8192;

// Parses a grpc-status-details-bin value: base64 (padded or not) of a
// google.rpc.Status whose details (google.protobuf.Any) may hold a
// RetryInfo. False on any malformed or oversized input; never reads past
// `value`. The delay is clamped to [0, 1 day].
bool grpc_parse_status_details(std::string_view value, GrpcStatusDetails *out);

}  // namespace otelagent
