// Parsing and writing of the context propagation headers: W3C traceparent,
// tracestate and baggage, and AWS X-Ray's X-Amzn-Trace-Id. Pure functions of
// their input: no agent state, usable before start.
#pragma once

#include <otelagent/otelagent.h>

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
bool tracestate_parse(std::string_view value, std::string *out);

// W3C baggage: the valid members of `value`, at most 64 members and 8192
// bytes, whole members only; empty when there is none.
std::string baggage_normalize(std::string_view value);

// AWS X-Ray X-Amzn-Trace-Id.
bool xray_parse(std::string_view value, otelagent_span_context *out);
std::string xray_format(const otelagent_span_context &ctx);

// Lower-case hex of `n` bytes.
void hex_encode(const uint8_t *bytes, size_t n, char *out);
// Parses exactly 2n hex digits (lower case only unless `allow_upper`).
bool hex_decode(std::string_view hex, uint8_t *out, bool allow_upper);

// Trims the optional white space (spaces and tabs) HTTP allows around values.
std::string_view trim_ows(std::string_view s);

}  // namespace otelagent
