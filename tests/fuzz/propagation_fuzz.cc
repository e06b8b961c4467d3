// The propagation headers on arbitrary bytes: every parser must stay within
// its input, and what a parser accepts must come back unchanged through the
// matching formatter (or normaliser) and parser.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "propagation/propagation.h"

namespace {

using otelagent::baggage_normalize;

bool same_ids(const otelagent_span_context &a, const otelagent_span_context &b) {
  return std::memcmp(a.trace_id, b.trace_id, 16) == 0 && std::memcmp(a.span_id, b.span_id, 8) == 0;
}

void traceparent(std::string_view in) {
  otelagent_span_context c{}, back{};
  if (!otelagent::traceparent_parse(in, &c)) return;
  std::string text = otelagent::traceparent_format(c);
  if (!otelagent::traceparent_parse(text, &back) || !same_ids(c, back) ||
      back.trace_flags != c.trace_flags)
    std::abort();
}

void tracestate(std::string_view in) {
  otelagent_span_context c{}, again{};
  if (!otelagent::tracestate_parse(in, &c)) return;
  // The normalised form is a valid tracestate that normalises to itself.
  std::string_view norm(c.tracestate, c.tracestate_len);
  if (!otelagent::tracestate_parse(norm, &again)) std::abort();
  if (std::string_view(again.tracestate, again.tracestate_len) != norm) std::abort();
}

void baggage(std::string_view in) {
  std::string norm = baggage_normalize(in);
  if (baggage_normalize(norm) != norm) std::abort();
}

void xray(std::string_view in) {
  otelagent_span_context c{}, back{};
  if (!otelagent::xray_parse(in, &c)) return;
  std::string text = otelagent::xray_format(c);
  if (!otelagent::xray_parse(text, &back) || !same_ids(c, back) ||
      (back.trace_flags & 1) != (c.trace_flags & 1))
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string_view in(reinterpret_cast<const char *>(data), size);
  traceparent(in);
  tracestate(in);
  baggage(in);
  xray(in);
  return 0;
}
