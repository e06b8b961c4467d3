#include <cstring>

#include "core/record.h"
#include "propagation/propagation.h"

namespace otelagent {

// Root=1-<8 hex epoch>-<24 hex>;Parent=<16 hex>;Sampled=<0|1|?>, in any order,
// other fields (Self, Lineage) ignored.
bool xray_parse(std::string_view value, otelagent_span_context *out) {
  otelagent_span_context c;
  std::memset(&c, 0, sizeof c);
  bool have_root = false, have_parent = false;
  std::string_view rest = value;
  while (!rest.empty()) {
    size_t semi = rest.find(';');
    std::string_view field = trim_ows(rest.substr(0, semi));
    rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
    size_t eq = field.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view k = trim_ows(field.substr(0, eq)), v = trim_ows(field.substr(eq + 1));
    if (k == "Root") {
      if (v.size() != 35 || v.substr(0, 2) != "1-" || v[10] != '-') return false;
      if (!hex_decode(v.substr(2, 8), c.trace_id, true) ||
          !hex_decode(v.substr(11, 24), c.trace_id + 4, true))
        return false;
      have_root = true;
    } else if (k == "Parent") {
      if (v.size() != 16 || !hex_decode(v, c.span_id, true)) return false;
      have_parent = true;
    } else if (k == "Sampled") {
      c.trace_flags = v == "1" ? 1 : 0;
    }
  }
  if (!have_root || !have_parent || all_zero(c.trace_id, 16) || all_zero(c.span_id, 8))
    return false;
  c.is_remote = 1;
  *out = c;
  return true;
}

std::string xray_format(const otelagent_span_context &ctx) {
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
  s += (ctx.trace_flags & 1) ? ";Sampled=1" : ";Sampled=0";
  return s;
}

}  // namespace otelagent
