// The propagation headers on arbitrary bytes: every parser must stay within
// its input, and what a parser accepts must come back unchanged through the
// matching formatter (or normaliser) and parser.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

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

// A normalised tracestate is valid and normalises to itself.
void check_normal_tracestate(const std::string &norm) {
  if (norm.empty()) return;
  if (!otelagent::tracestate_valid(norm) || otelagent::tracestate_normalize(norm) != norm ||
      norm.size() > OTELAGENT_TRACESTATE_MAX)
    std::abort();
}

void tracestate(std::string_view in) {
  check_normal_tracestate(otelagent::tracestate_normalize(in));
  // The input's lines as several header field lines of one request.
  std::vector<std::string_view> lines;
  for (size_t start = 0; start <= in.size();) {
    const size_t nl = std::min(in.find('\n', start), in.size());
    lines.push_back(in.substr(start, nl - start));
    start = nl + 1;
  }
  check_normal_tracestate(otelagent::tracestate_combine(lines.data(), lines.size()));
}

void baggage(std::string_view in) {
  std::string norm = baggage_normalize(in);
  if (baggage_normalize(norm) != norm) std::abort();
}

void xray(std::string_view in) {
  otelagent_span_context c{}, back{};
  bool deferred = false, back_deferred = false;
  if (!otelagent::xray_parse(in, &c, &deferred)) return;
  std::string text = otelagent::xray_format(c, deferred);
  if (!otelagent::xray_parse(text, &back, &back_deferred) || !same_ids(c, back) ||
      (back.trace_flags & 1) != (c.trace_flags & 1) || back_deferred != deferred)
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
