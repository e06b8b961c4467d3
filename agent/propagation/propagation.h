// Parsing and writing of the context propagation headers: W3C traceparent,
// tracestate and baggage, and AWS X-Ray's X-Amzn-Trace-Id. Pure functions of
// their input: no agent state, usable before start, safe from any thread.
//
// Every parser has a documented maximum input length (the k*MaxInput
// constants). A longer input is refused whole before any of its bytes is read,
// so a caller's wrong length (SIZE_MAX for "NUL-terminated") costs nothing and
// reads nothing; within the maximum the work is linear in the input. The C ABI
// maps a length over these maxima to OTELAGENT_E_TOO_LONG.
//
// tracestate travels as a string, never through otelagent_span_context:
// the span context functions here read and write only the ids, trace_flags
// and is_remote.
#pragma once

#include <otelagent/otelagent.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace otelagent {

// A version-00 traceparent is 55 characters; a future version may append
// fields, and the spec asks only that "prohibitively large" values be refused.
inline constexpr size_t kTraceparentMaxInput = OTELAGENT_MAX_TRACEPARENT;
// Sum of the lengths of all tracestate field lines of one request. The longest
// valid list is 32 members of 256 + 1 + 256 characters and 31 commas (16447);
// twice that leaves room for optional white space and empty members.
inline constexpr size_t kTracestateMaxInput = OTELAGENT_MAX_TRACESTATE_INPUT;
// What the agent propagates of a tracestate (W3C: "SHOULD propagate at least
// 512 characters"; longer lists are truncated by whole members).
inline constexpr size_t kTracestateMaxOutput = OTELAGENT_TRACESTATE_MAX;
inline constexpr size_t kTracestateMaxMembers = 32;
// Sum of the lengths of all baggage field lines. W3C baggage sets no maximum
// on what is received; it requires propagating 64 members and 8192 bytes.
// Eight times that leaves room for white space and invalid members.
inline constexpr size_t kBaggageMaxInput = OTELAGENT_MAX_BAGGAGE;
inline constexpr size_t kBaggageMaxOutput = 8192;
inline constexpr size_t kBaggageMaxMembers = 64;
// AWS's own APIs accept X-Ray trace headers of up to 8192 characters
// (for example Lambda's TraceHeader.XAmznTraceId).
inline constexpr size_t kXrayMaxInput = OTELAGENT_MAX_XRAY;

// W3C trace-flags this agent understands: sampled (bit 0) and random trace id
// (bit 1, Trace Context Level 2). The spec reserves the others and requires
// senders to set them to zero.
inline constexpr uint8_t kTraceFlagsKnown = 0x03;

// W3C traceparent. True and out's ids, trace_flags (unknown bits cleared) and
// is_remote = 1 set for a valid value, future versions included; false and
// *out untouched otherwise.
bool traceparent_parse(std::string_view value, otelagent_span_context *out);
// The 55-character version-00 form, unknown flags cleared; empty when the
// trace id or the span id is all zero (such a header would be invalid).
std::string traceparent_format(const otelagent_span_context &ctx);

// W3C tracestate. `lines` are the values of every `tracestate` field line of
// one request, in order; they form one list (RFC 9110 section 5.3). Returns
// the normalised list (members without white space, empty members dropped,
// a key seen again dropped after its first appearance, cut by whole members
// to kTracestateMaxOutput: members over 128 characters first, then from the
// right). Empty when there is no member, when the list is invalid (any invalid
// member, or more than 32 members counting repeated keys) or when the lines
// together exceed kTracestateMaxInput.
std::string tracestate_combine(const std::string_view *lines, size_t n);
// tracestate_combine of a single value.
std::string tracestate_normalize(std::string_view value);
// True when `value` may be stored or sent as given: at most
// kTracestateMaxInput characters, every non-empty member valid, at most 32
// members, no key twice. The empty string is valid (no tracestate).
bool tracestate_valid(std::string_view value);

// W3C baggage. The valid members of all `baggage` field lines of one request
// (one list, like tracestate), white space removed, in order; at most 64
// members and 8192 bytes, whole members only (a member that does not fit is
// skipped, later smaller ones are kept). Empty when there is none or when the
// lines together exceed kBaggageMaxInput.
std::string baggage_combine(const std::string_view *lines, size_t n);
// baggage_combine of a single value.
std::string baggage_normalize(std::string_view value);

// AWS X-Ray X-Amzn-Trace-Id. True and out's ids, trace_flags and is_remote = 1
// set for a value with a valid Root and Parent; false and *out untouched
// otherwise. `Sampled=?` or no Sampled field means the caller left the
// decision to us: *sampling_deferred = true and the sampled flag is clear, and
// the caller must then ask its own sampler instead of treating the parent as
// not sampled.
bool xray_parse(std::string_view value, otelagent_span_context *out, bool *sampling_deferred);
// Root=1-<8 hex>-<24 hex>;Parent=<16 hex>;Sampled=<0|1>, or Sampled=? when
// `sampling_deferred`; empty when the trace id or the span id is all zero.
std::string xray_format(const otelagent_span_context &ctx, bool sampling_deferred = false);

// Lower-case hex of `n` bytes.
void hex_encode(const uint8_t *bytes, size_t n, char *out);
// Parses exactly 2n hex digits (lower case only unless `allow_upper`); `out`
// (n bytes) is written even when that fails.
bool hex_decode(std::string_view hex, uint8_t *out, bool allow_upper);

// Trims the optional white space (spaces and tabs) HTTP allows around values.
std::string_view trim_ows(std::string_view s);

}  // namespace otelagent
