#include "export/retry_policy.h"

#include "export/grpc_wire.h"

#include <curl/curl.h>

#include <algorithm>
#include <cmath>
#include <string>

namespace otelagent {

int grpc_effective_status(const Outcome &o) {
  if (o.grpc_status >= 0) return o.grpc_status;
  return o.http_status == 200 ? kGrpcInternal : grpc_code_from_http(o.http_status);
}

namespace {

Verdict classify_grpc(const Outcome &o, bool sent_zstd) {
  // A peer that is not speaking gRPC at all: no retry will change that.
  if (o.not_http2) return Verdict::kDrop;
  switch (grpc_effective_status(o)) {
    case kGrpcOk:
      return Verdict::kSuccess;
    case kGrpcCancelled:
    case kGrpcDeadlineExceeded:
    case kGrpcAborted:
    case kGrpcOutOfRange:
    case kGrpcUnavailable:
    case kGrpcDataLoss:
      return Verdict::kRetry;
    case kGrpcResourceExhausted:
      return o.retry_info ? Verdict::kRetry : Verdict::kDrop;
    case kGrpcUnimplemented:
      return sent_zstd && o.encoding_rejected ? Verdict::kFallbackGzip : Verdict::kDrop;
    default:
      return Verdict::kDrop;
  }
}

}  // namespace

Verdict classify(const Outcome &o, bool sent_zstd) {
  if (o.transport_error)
    return sent_zstd && o.encoding_rejected ? Verdict::kFallbackGzip : Verdict::kRetry;
  if (o.grpc) return classify_grpc(o, sent_zstd);
  const long s = o.http_status;
  if (s >= 200 && s < 300) return Verdict::kSuccess;
  if (sent_zstd && o.encoding_rejected) return Verdict::kFallbackGzip;
  if (s == 429 || s == 502 || s == 503 || s == 504) return Verdict::kRetry;
  return Verdict::kDrop;
}

uint64_t backoff_ms(uint32_t attempt, uint64_t initial_ms, uint64_t max_ms, double unit_random,
                    int64_t retry_after_ms) {
  double base = static_cast<double>(initial_ms) * std::pow(1.5, attempt > 0 ? attempt - 1 : 0);
  base = std::min(base, static_cast<double>(max_ms));
  double jittered = base * (0.5 + std::clamp(unit_random, 0.0, 1.0));
  uint64_t ms = static_cast<uint64_t>(jittered);
  if (retry_after_ms >= 0) ms = std::max<uint64_t>(ms, static_cast<uint64_t>(retry_after_ms));
  return ms;
}

int64_t parse_retry_after(std::string_view value, int64_t now_unix_s) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t' || value.back() == '\r' ||
                            value.back() == '\n'))
    value.remove_suffix(1);
  if (value.empty()) return -1;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (value.size() > 9) return -1;
    return std::stoll(std::string(value)) * 1000;
  }
  // An HTTP-date; curl_getdate parses the three formats HTTP allows.
  time_t t = curl_getdate(std::string(value).c_str(), nullptr);
  if (t < 0) return -1;
  return std::max<int64_t>(0, (static_cast<int64_t>(t) - now_unix_s) * 1000);
}

}  // namespace otelagent
