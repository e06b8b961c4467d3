#include <cstring>
#include <vector>

#include "core/record.h"
#include "propagation/propagation.h"

namespace otelagent {

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

void hex_encode(const uint8_t *bytes, size_t n, char *out) {
  static const char kDigits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 15];
  }
}

namespace {
int hex_digit(char c, bool allow_upper) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (allow_upper && c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

bool hex_decode(std::string_view hex, uint8_t *out, bool allow_upper) {
  if (hex.size() % 2 != 0) return false;
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = hex_digit(hex[i], allow_upper), lo = hex_digit(hex[i + 1], allow_upper);
    if (hi < 0 || lo < 0) return false;
    out[i / 2] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

bool traceparent_parse(std::string_view value, otelagent_span_context *out) {
  std::string_view v = trim_ows(value);
  // version "-" trace-id "-" parent-id "-" flags: 2+1+32+1+16+1+2 = 55.
  if (v.size() < 55) return false;
  uint8_t version;
  if (!hex_decode(v.substr(0, 2), &version, false) || version == 0xff) return false;
  if (v[2] != '-' || v[35] != '-' || v[52] != '-') return false;
  if (version == 0 && v.size() != 55) return false;
  // A future version may append fields, each after a '-'.
  if (version != 0 && v.size() > 55 && v[55] != '-') return false;
  otelagent_span_context c;
  std::memset(&c, 0, sizeof c);
  uint8_t flags;
  if (!hex_decode(v.substr(3, 32), c.trace_id, false) ||
      !hex_decode(v.substr(36, 16), c.span_id, false) ||
      !hex_decode(v.substr(53, 2), &flags, false))
    return false;
  if (all_zero(c.trace_id, 16) || all_zero(c.span_id, 8)) return false;
  c.trace_flags = flags;
  c.is_remote = 1;
  *out = c;
  return true;
}

std::string traceparent_format(const otelagent_span_context &ctx) {
  std::string s(55, '-');
  s[0] = s[1] = '0';
  hex_encode(ctx.trace_id, 16, &s[3]);
  hex_encode(ctx.span_id, 8, &s[36]);
  hex_encode(&ctx.trace_flags, 1, &s[53]);
  return s;
}

namespace {

bool lc_or_digit(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
bool key_char(char c) {
  return lc_or_digit(c) || c == '_' || c == '-' || c == '*' || c == '/';
}

// simple-key, or tenant-id "@" system-id (W3C Trace Context level 2).
bool tracestate_key_valid(std::string_view k) {
  if (k.empty() || k.size() > 256) return false;
  size_t at = k.find('@');
  if (at == std::string_view::npos) {
    if (!lc_or_digit(k[0])) return false;
    for (char c : k)
      if (!key_char(c)) return false;
    return true;
  }
  std::string_view tenant = k.substr(0, at), system = k.substr(at + 1);
  if (tenant.empty() || tenant.size() > 241 || system.empty() || system.size() > 14) return false;
  if (!lc_or_digit(tenant[0]) || !(system[0] >= 'a' && system[0] <= 'z')) return false;
  for (char c : tenant)
    if (!key_char(c)) return false;
  for (char c : system)
    if (!key_char(c)) return false;
  return true;
}

bool tracestate_value_valid(std::string_view v) {
  if (v.empty() || v.size() > 256 || v.back() == ' ') return false;
  for (char c : v)
    if (c < 0x20 || c > 0x7e || c == ',' || c == '=') return false;
  return true;
}

}  // namespace

bool tracestate_parse(std::string_view value, std::string *out) {
  out->clear();
  std::vector<std::string_view> members;
  std::string_view rest = value;
  while (true) {
    size_t comma = rest.find(',');
    std::string_view m = trim_ows(rest.substr(0, comma));
    if (!m.empty()) {
      size_t eq = m.find('=');
      if (eq == std::string_view::npos || !tracestate_key_valid(m.substr(0, eq)) ||
          !tracestate_value_valid(m.substr(eq + 1)))
        return false;
      for (auto prev : members)
        if (prev.substr(0, prev.find('=')) == m.substr(0, eq)) return false;  // duplicate key
      members.push_back(m);
      if (members.size() > 32) return false;
    }
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  // Keep whole members from the front while they fit.
  for (auto m : members) {
    size_t add = m.size() + (out->empty() ? 0 : 1);
    if (out->size() + add > OTELAGENT_TRACESTATE_MAX) break;
    if (!out->empty()) *out += ',';
    out->append(m);
  }
  return !members.empty();
}

}  // namespace otelagent
