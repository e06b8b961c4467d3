#include "export/grpc_wire.h"

#include <algorithm>

#include "export/wire_reader.h"

namespace otelagent {

namespace {

// google.rpc.Status, google.protobuf.Any, google.rpc.RetryInfo and
// google.protobuf.Duration field numbers (googleapis google/rpc/status.proto,
// error_details.proto; protobuf any.proto, duration.proto).
constexpr int kStatusCode = 1, kStatusDetails = 3;
constexpr int kAnyTypeUrl = 1, kAnyValue = 2;
constexpr int kRetryInfoDelay = 1;
constexpr int kDurationSeconds = 1, kDurationNanos = 2;
constexpr std::string_view kRetryInfoType = "google.rpc.RetryInfo";
constexpr int64_t kMaxDelayMs = 24 * 3600 * 1000;

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Standard base64, padding optional (gRPC senders omit it; receivers must
// accept both). False on any other character or an impossible length.
bool base64_decode(std::string_view in, std::string *out) {
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  if (in.size() % 4 == 1) return false;
  out->clear();
  out->reserve(in.size() / 4 * 3 + 2);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const int v = base64_value(c);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return true;
}

bool read_duration_ms(WireReader d, int64_t *ms) {
  uint64_t seconds = 0, nanos = 0;
  const bool ok = d.fields([&](int f, uint32_t w) {
    if (w != kWireVarint || (f != kDurationSeconds && f != kDurationNanos)) return false;
    return d.varint(f == kDurationSeconds ? &seconds : &nanos);
  });
  if (!ok) return false;
  // int64 and int32 on the wire: a negative value is a huge unsigned one.
  const auto s = static_cast<int64_t>(seconds);
  const auto n = static_cast<int32_t>(static_cast<uint32_t>(nanos));
  if (s < 0 || n < 0 || s > kMaxDelayMs / 1000) {
    *ms = s > 0 ? kMaxDelayMs : 0;
    return true;
  }
  *ms = std::min<int64_t>(kMaxDelayMs, s * 1000 + (static_cast<int64_t>(n) + 999999) / 1000000);
  return true;
}

// One google.protobuf.Any of the details: a RetryInfo is read, anything
// else skipped.
bool read_detail(WireReader any, GrpcStatusDetails *out) {
  std::string_view type_url;
  WireReader value{nullptr, nullptr};
  bool bad = false;
  const bool ok = any.fields([&](int f, uint32_t w) {
    if (w != kWireLen || (f != kAnyTypeUrl && f != kAnyValue)) return false;
    WireReader s;
    if (!any.sub(&s)) {
      bad = true;
      any.p = any.end;
    } else if (f == kAnyTypeUrl) {
      type_url = std::string_view(reinterpret_cast<const char *>(s.p), s.end - s.p);
    } else {
      value = s;
    }
    return true;
  });
  if (!ok || bad) return false;
  // "type.googleapis.com/google.rpc.RetryInfo": the part after the last '/'.
  const size_t slash = type_url.rfind('/');
  if (type_url.substr(slash == std::string_view::npos ? 0 : slash + 1) != kRetryInfoType)
    return true;
  out->retry_info = true;
  // An empty RetryInfo (no value, or no delay): retry, with our own backoff.
  int64_t delay = -1;
  const bool parsed = value.p == nullptr || value.fields([&](int f, uint32_t w) {
    if (f != kRetryInfoDelay || w != kWireLen) return false;
    WireReader d;
    if (!value.sub(&d) || !read_duration_ms(d, &delay)) {
      bad = true;
      value.p = value.end;
    }
    return true;
  });
  if (!parsed || bad) return false;
  if (delay >= 0) out->retry_delay_ms = delay;
  return true;
}

}  // namespace

const char *grpc_code_name(int code) {
  static const char *const kNames[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  return code >= 0 && code <= 16 ? kNames[code] : "UNKNOWN_CODE";
}

int grpc_code_from_http(long http_status) {
  switch (http_status) {
    case 400:
      return kGrpcInternal;
    case 401:
      return kGrpcUnauthenticated;
    case 403:
      return kGrpcPermissionDenied;
    case 404:
      return kGrpcUnimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return kGrpcUnavailable;
    default:
      return kGrpcUnknown;
  }
}

void grpc_frame_prefix(bool compressed, uint32_t length, char out[5]) {
  out[0] = compressed ? 1 : 0;
  out[1] = static_cast<char>(length >> 24);
  out[2] = static_cast<char>(length >> 16);
  out[3] = static_cast<char>(length >> 8);
  out[4] = static_cast<char>(length);
}

bool grpc_first_message(std::string_view body, bool *compressed, std::string_view *message) {
  if (body.size() < 5) return false;
  const auto *b = reinterpret_cast<const uint8_t *>(body.data());
  const uint32_t len =
      (uint32_t{b[1]} << 24) | (uint32_t{b[2]} << 16) | (uint32_t{b[3]} << 8) | b[4];
  if (len > body.size() - 5) return false;
  *compressed = b[0] != 0;
  *message = body.substr(5, len);
  return true;
}

std::string grpc_timeout_value(uint64_t ms) {
  if (ms <= 99999999) return std::to_string(ms) + "m";
  // Rounded up: the deadline the server sees is never shorter than ours.
  return std::to_string(std::min<uint64_t>(99999999, (ms + 999) / 1000)) + "S";
}

std::string grpc_message_decode(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    int hi, lo;
    if (value[i] == '%' && i + 2 < value.size() && (hi = hex_value(value[i + 1])) >= 0 &&
        (lo = hex_value(value[i + 2])) >= 0) {
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += value[i];
    }
  }
  return out;
}

bool grpc_parse_status_details(std::string_view value, GrpcStatusDetails *out) {
  *out = GrpcStatusDetails{};
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (value.size() > kGrpcMaxDetails) return false;
  std::string bytes;
  if (!base64_decode(value, &bytes)) return false;
  const auto *b = reinterpret_cast<const uint8_t *>(bytes.data());
  WireReader status{b, b + bytes.size()};
  bool ok = true;
  const bool parsed = status.fields([&](int f, uint32_t w) {
    if (f == kStatusCode && w == kWireVarint) {
      uint64_t code = 0;
      ok = ok && status.varint(&code);
      out->code = static_cast<int32_t>(static_cast<uint32_t>(code));
      return true;
    }
    if (f == kStatusDetails && w == kWireLen) {
      WireReader any;
      if (!status.sub(&any)) {
        ok = false;
        status.p = status.end;
        return true;
      }
      ok = ok && read_detail(any, out);
      return true;
    }
    return false;
  });
  return parsed && ok;
}

}  // namespace otelagent
