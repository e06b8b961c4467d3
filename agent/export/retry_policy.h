// What to do with an export attempt's outcome, and when to try again. Pure
// functions: the exporter supplies the randomness and the clock.
#pragma once

#include <cstdint>
#include <string_view>

namespace otelagent {

// The result of one HTTP request as the transport saw it.
struct Outcome {
  long http_status = 0;            // 0 when no response was received
  bool transport_error = false;    // connect failure, reset, timeout
  int64_t retry_after_ms = -1;     // parsed Retry-After, -1 when absent
  bool encoding_rejected = false;  // 400/415 naming the Content-Encoding
};

enum class Verdict { kSuccess, kRetry, kDrop, kFallbackGzip };

// sent_zstd: the body was zstd-compressed (a rejection of it falls back).
Verdict classify(const Outcome &o, bool sent_zstd);

// Exponential backoff with jitter for attempt `attempt` (1 for the first
// retry): initial * 1.5^(attempt-1), capped at max, then scaled by a factor in
// [0.5, 1.5) from `unit_random` (in [0, 1)); never less than Retry-After.
uint64_t backoff_ms(uint32_t attempt, uint64_t initial_ms, uint64_t max_ms, double unit_random,
                    int64_t retry_after_ms);

// Parses a Retry-After value: delta-seconds, or an HTTP-date relative to
// `now_unix_s`. Returns milliseconds, or -1 when unparseable.
int64_t parse_retry_after(std::string_view value, int64_t now_unix_s);

}  // namespace otelagent
