// Parsing and writing of the context propagation headers: W3C traceparent,
// tracestate and baggage, and AWS X-Ray's X-Amzn-Trace-Id. Pure functions of
// their input: no agent state, usable before start.
#pragma once

#include <otelagent/otelagent.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace otelagent {

// W3C Trace Context. parse: true and *out filled (tracestate emptied,
// is_remote = 1) for a valid value. format: the 55-character version-00 form.
bool traceparent_parse(std::string_view value, otelagent_span_context *out);
std::string traceparent_format(const otelagent_span_context &ctx);

// Validates `value` and stores its normalised form (members trimmed, empty
// members removed, cut from the end to fit OTELAGENT_TRACESTATE_MAX) in
// ctx->tracestate. Invalid: ctx->tracestate emptied, false returned.
bool tracestate_parse(std::string_view value, otelagent_span_context *ctx);

// Sum of the lengths of all baggage field lines, refused whole (unread) when
// longer. W3C baggage sets no maximum on what is received; it requires
// propagating 64 members and 8192 bytes. Eight times that leaves room for
// white space and invalid members.
inline constexpr size_t kBaggageMaxInput = 65536;
inline constexpr size_t kBaggageMaxOutput = 8192;
inline constexpr size_t kBaggageMaxMembers = 64;

// W3C baggage. The valid members of all `baggage` field lines of one request
// (one list, like tracestate), white space removed, in order; at most 64
// members and 8192 bytes, whole members only (a member that does not fit is
// skipped, later smaller ones are kept). Empty when there is none or when the
// lines together exceed kBaggageMaxInput.
std::string baggage_combine(const std::string_view *lines, size_t n);
// baggage_combine of a single value.
std::string baggage_normalize(std::string_view value);

// AWS's own APIs accept X-Ray trace headers of up to 8192 characters
// (for example Lambda's TraceHeader.XAmznTraceId); a longer input is refused
// before any of its bytes is read.
inline constexpr size_t kXrayMaxInput = 8192;

// AWS X-Ray X-Amzn-Trace-Id. True and out's ids, trace_flags and is_remote = 1
// set for a value with a valid Root and Parent; false and *out untouched
// otherwise. `Sampled=?` or no Sampled field means the caller left the
// decision to us: *sampling_deferred = true and the sampled flag is clear, and
// the caller must then ask its own sampler instead of treating the parent as
// not sampled.
bool xray_parse(std::string_view value, otelagent_span_context *out, bool *sampling_deferred);
// Compatibility with the current C ABI: xray_parse that also empties
// out->tracestate (an X-Ray header carries none) and drops the deferral.
bool xray_parse(std::string_view value, otelagent_span_context *out);
// Root=1-<8 hex>-<24 hex>;Parent=<16 hex>;Sampled=<0|1>, or Sampled=? when
// `sampling_deferred`; empty when the trace id or the span id is all zero.
std::string xray_format(const otelagent_span_context &ctx, bool sampling_deferred = false);

// Lower-case hex of `n` bytes.
void hex_encode(const uint8_t *bytes, size_t n, char *out);
// Parses exactly 2n hex digits (lower case only unless `allow_upper`).
bool hex_decode(std::string_view hex, uint8_t *out, bool allow_upper);

// Trims the optional white space (spaces and tabs) HTTP allows around values.
std::string_view trim_ows(std::string_view s);

}  // namespace otelagent
