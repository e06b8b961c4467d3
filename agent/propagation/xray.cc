// AWS X-Ray trace header (X-Ray developer guide, "Tracing header"):
// Root=1-<8 hex epoch>-<24 hex>;Parent=<16 hex>;Sampled=<0|1|?>, fields in
// any order, others (Self, Lineage, custom data) ignored.
#include <cstring>

#include "core/record.h"
#include "propagation/propagation.h"

namespace otelagent {

bool xray_parse(std::string_view value, otelagent_span_context *out, bool *sampling_deferred) {
  if (value.size() > kXrayMaxInput) return false;
  uint8_t trace_id[16], span_id[8];
  bool have_root = false, have_parent = false, have_sampled = false, sampled = false,
       deferred = true;
  std::string_view rest = value;
  while (!rest.empty()) {
    size_t semi = rest.find(';');
    std::string_view field = trim_ows(rest.substr(0, semi));
    rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
    size_t eq = field.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view k = trim_ows(field.substr(0, eq)), v = trim_ows(field.substr(eq + 1));
    // A field given twice leaves no way to tell which one the sender meant.
    if (k == "Root") {
      if (have_root || v.size() != 35 || v.substr(0, 2) != "1-" || v[10] != '-') return false;
      if (!hex_decode(v.substr(2, 8), trace_id, true) ||
          !hex_decode(v.substr(11, 24), trace_id + 4, true))
        return false;
      have_root = true;
    } else if (k == "Parent") {
      if (have_parent || v.size() != 16 || !hex_decode(v, span_id, true)) return false;
      have_parent = true;
    } else if (k == "Sampled") {
      // "?" asks the receiver to decide; any value other than 0, 1 and ? is
      // malformed, like a W3C traceparent with bad flags.
      if (have_sampled || (v != "0" && v != "1" && v != "?")) return false;
      have_sampled = true;
      sampled = v == "1";
      deferred = v == "?";
    }
  }
  if (!have_root || !have_parent || all_zero(trace_id, 16) || all_zero(span_id, 8)) return false;
  std::memcpy(out->trace_id, trace_id, 16);
  std::memcpy(out->span_id, span_id, 8);
  out->trace_flags = sampled ? 1 : 0;
  out->is_remote = 1;
  *sampling_deferred = deferred;
  return true;
}

std::string xray_format(const otelagent_span_context &ctx, bool sampling_deferred) {
  if (all_zero(ctx.trace_id, 16) || all_zero(ctx.span_id, 8)) return {};
  std::string s = "Root=1-";
  char hex[32];
  hex_encode(ctx.trace_id, 4, hex);
  s.append(hex, 8);
  s += '-';
  hex_encode(ctx.trace_id + 4, 12, hex);
  s.append(hex, 24);
  s += ";Parent=";
  hex_encode(ctx.span_id, 8, hex);
  s.append(hex, 16);
  s += sampling_deferred ? ";Sampled=?" : (ctx.trace_flags & 1) ? ";Sampled=1" : ";Sampled=0";
  return s;
}

}  // namespace otelagent
