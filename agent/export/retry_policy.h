// What to do with an export attempt's outcome, and when to try again. Pure
// functions: the exporter supplies the randomness and the clock.
#pragma once

#include <cstdint>
#include <string_view>

namespace otelagent {

// The result of one HTTP request (or OTLP/gRPC call) as the transport saw it.
struct Outcome {
  long http_status = 0;          // 0 when no response was received
  bool transport_error = false;  // connect failure, reset (RST_STREAM, GOAWAY), timeout
  // Retry-After, or a gRPC RetryInfo's delay; -1 when absent.
  int64_t retry_after_ms = -1;
  // HTTP: 400/415 naming the Content-Encoding. gRPC: UNIMPLEMENTED naming
  // the encoding, or a grpc-accept-encoding that lacks the one sent, or a
  // zstd call whose stream was reset before any answer.
  bool encoding_rejected = false;
  // gRPC only.
  bool grpc = false;
  int grpc_status = -1;     // grpc-status from trailers or headers; -1 when absent
  bool retry_info = false;  // grpc-status-details-bin carried a RetryInfo
  bool not_http2 = false;   // the peer answered in HTTP/1.x (a TLS peer without ALPN h2)
};

enum class Verdict { kSuccess, kRetry, kDrop, kFallbackGzip };

// sent_zstd: the body was zstd-compressed (a rejection of it falls back).
// HTTP: 2xx succeed; 429, 502, 503, 504 and transport errors are retried.
// gRPC (the OTLP specification): OK succeeds; CANCELLED, DEADLINE_EXCEEDED,
// ABORTED, OUT_OF_RANGE, UNAVAILABLE and DATA_LOSS are retried, and
// RESOURCE_EXHAUSTED only with a RetryInfo; an answer without grpc-status
// takes the code of its HTTP status (grpc_code_from_http), so a proxy's 429,
// 502, 503 or 504 is UNAVAILABLE; 200 without grpc-status is INTERNAL.
Verdict classify(const Outcome &o, bool sent_zstd);

// The gRPC status an outcome stands for (see classify).
int grpc_effective_status(const Outcome &o);

// Exponential backoff with jitter for attempt `attempt` (1 for the first
// retry): initial * 1.5^(attempt-1), capped at max, then scaled by a factor in
// [0.5, 1.5) from `unit_random` (in [0, 1)); never less than Retry-After.
uint64_t backoff_ms(uint32_t attempt, uint64_t initial_ms, uint64_t max_ms, double unit_random,
                    int64_t retry_after_ms);

// Parses a Retry-After value: delta-seconds, or an HTTP-date relative to
// `now_unix_s`. Returns milliseconds, or -1 when unparseable.
int64_t parse_retry_after(std::string_view value, int64_t now_unix_s);

}  // namespace otelagent
