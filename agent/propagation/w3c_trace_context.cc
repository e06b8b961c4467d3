// W3C Trace Context (Level 2 Recommendation and the current editor's draft,
// w3c/trace-context spec/20-http_request_header_format.md and
// spec/30-processing-model.md). Section names in comments refer to that text.
#include <array>
#include <bit>
#include <cstring>

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
// Each byte's value as a hex digit: 0-15 for 0-9 and a-f, 0x10 | 10-15 for
// A-F (refused where the spec says lower case), 0xff for every other byte.
constexpr std::array<uint8_t, 256> kHexValue = [] {
  std::array<uint8_t, 256> t{};
  t.fill(0xff);
  for (int c = '0'; c <= '9'; ++c) t[c] = static_cast<uint8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c) t[c] = static_cast<uint8_t>(c - 'a' + 10);
  for (int c = 'A'; c <= 'F'; ++c) t[c] = static_cast<uint8_t>(0x10 | (c - 'A' + 10));
  return t;
}();

constexpr uint64_t kOnes = 0x0101010101010101ull;
constexpr uint64_t kHigh = 0x8080808080808080ull;

// The bytes of x (each below 0x80) that lie in [lo, hi], as their high
// bits: adding 0x80 - lo sets a byte's high bit when it is >= lo, adding
// 0x7f - hi when it is > hi, and neither sum carries into the next byte.
constexpr uint64_t in_range(uint64_t x, uint8_t lo, uint8_t hi) {
  return (x + (0x80 - lo) * kOnes) & ~(x + (0x7f - hi) * kOnes) & kHigh;
}

// Eight digits into four bytes, all eight at once: a traceparent has 48
// digits to decode on every incoming request.
bool hex_decode8(const char *p, uint8_t *out, bool allow_upper) {
  uint64_t x;  // the first digit in the lowest byte
  std::memcpy(&x, p, 8);
  if constexpr (std::endian::native == std::endian::big) x = __builtin_bswap64(x);
  if (x & kHigh) return false;
  // Upper case folded to lower where allowed: only A-F land on a-f.
  if (allow_upper) x |= (x & 0x4040404040404040ull) >> 1;
  const uint64_t letters = in_range(x, 'a', 'f');
  if ((in_range(x, '0', '9') | letters) != kHigh) return false;
  // Each byte's value (a letter's low bits are 1-6), then each pair of
  // values into the byte of the first one, and those four bytes together.
  uint64_t v = (x & 0x0f0f0f0f0f0f0f0full) + (letters >> 7) * 9;
  v = ((v << 4) | (v >> 8)) & 0x00ff00ff00ff00ffull;
  v = (v | (v >> 8)) & 0x0000ffff0000ffffull;
  auto bytes = static_cast<uint32_t>(v | (v >> 16));
  if constexpr (std::endian::native == std::endian::big) bytes = __builtin_bswap32(bytes);
  std::memcpy(out, &bytes, 4);
  return true;
}
// Two digits into one byte through the table: upper case is marked 0x10 in
// it, refused where the spec says lower case.
bool hex_decode2(const char *p, uint8_t *out, bool allow_upper) {
  const uint8_t hi = kHexValue[static_cast<uint8_t>(p[0])];
  const uint8_t lo = kHexValue[static_cast<uint8_t>(p[1])];
  *out = static_cast<uint8_t>((hi & 0x0f) << 4 | (lo & 0x0f));
  return ((hi | lo) & (allow_upper ? 0xe0 : 0xf0)) == 0;
}
}  // namespace

bool hex_decode(std::string_view hex, uint8_t *out, bool allow_upper) {
  if (hex.size() % 2 != 0) return false;
  size_t i = 0;
  for (; i + 8 <= hex.size(); i += 8)
    if (!hex_decode8(hex.data() + i, out + i / 2, allow_upper)) return false;
  for (; i < hex.size(); i += 2)
    if (!hex_decode2(hex.data() + i, out + i / 2, allow_upper)) return false;
  return true;  // out may be written even when false: callers decode into scratch
}

bool traceparent_parse(std::string_view value, otelagent_span_context *out) {
  if (value.size() > kTraceparentMaxInput) return false;
  std::string_view v = trim_ows(value);
  // version "-" trace-id "-" parent-id "-" flags: 2+1+32+1+16+1+2 = 55; a
  // future version shorter than that is not parsed either ("Versioning").
  if (v.size() < 55) return false;
  const char *d = v.data();
  uint8_t version;
  if (!hex_decode2(d, &version, false) || version == 0xff) return false;
  if (v[2] != '-' || v[35] != '-' || v[52] != '-') return false;
  // Version 00 ends at the flags; a higher version may go on, but only after
  // a '-' that ends the flags.
  if (version == 0 ? v.size() != 55 : v.size() > 55 && v[55] != '-') return false;
  // The ids word by word (hex_decode would loop over them).
  uint8_t trace_id[16], span_id[8], flags;
  if (!hex_decode8(d + 3, trace_id, false) || !hex_decode8(d + 11, trace_id + 4, false) ||
      !hex_decode8(d + 19, trace_id + 8, false) || !hex_decode8(d + 27, trace_id + 12, false) ||
      !hex_decode8(d + 36, span_id, false) || !hex_decode8(d + 44, span_id + 4, false) ||
      !hex_decode2(d + 53, &flags, false))
    return false;
  if (all_zero(trace_id, 16) || all_zero(span_id, 8)) return false;
  std::memcpy(out->trace_id, trace_id, 16);
  std::memcpy(out->span_id, span_id, 8);
  // "Vendors will set all unparsed / unknown trace-flags to 0" (processing
  // model), and we re-emit what we keep.
  out->trace_flags = flags & kTraceFlagsKnown;
  out->is_remote = 1;
  return true;
}

std::string traceparent_format(const otelagent_span_context &ctx) {
  if (all_zero(ctx.trace_id, 16) || all_zero(ctx.span_id, 8)) return {};
  std::string s(55, '-');
  s[0] = s[1] = '0';
  hex_encode(ctx.trace_id, 16, &s[3]);
  hex_encode(ctx.span_id, 8, &s[36]);
  uint8_t flags = ctx.trace_flags & kTraceFlagsKnown;
  hex_encode(&flags, 1, &s[53]);
  return s;
}

namespace {

bool lc_or_digit(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// key = ( lcalpha / DIGIT ) 0*255 ( keychar ), keychar adding "_-*/@". Level 1
// had a separate tenant@system form; this grammar accepts every Level 1 key.
bool key_valid(std::string_view k) {
  if (k.empty() || k.size() > 256 || !lc_or_digit(k[0])) return false;
  for (char c : k)
    if (!lc_or_digit(c) && c != '_' && c != '-' && c != '*' && c != '/' && c != '@') return false;
  return true;
}

// value = 0*255(chr) nblk-chr: printable ASCII without ',' and '=', not
// ending in a space. Leading spaces belong to the value.
bool value_valid(std::string_view v) {
  if (v.empty() || v.size() > 256 || v.back() == ' ') return false;
  for (char c : v)
    if (c < 0x20 || c > 0x7e || c == ',' || c == '=') return false;
  return true;
}

struct Member {
  std::string_view text;  // key=value, white space around it removed
  size_t key_len;
};

// The members of one list made of several field lines. Empty and blank
// members are allowed ("list"), and a key seen before is dropped: the
// leftmost entry is the most recent position of that vendor ("Combined Header
// Value"), and "vendors MAY also discard duplicate keys" ("Mutating the
// tracestate Field"). Returns false for an invalid list.
struct MemberList {
  Member m[kTracestateMaxMembers];
  size_t n = 0;         // distinct keys, in m
  size_t received = 0;  // non-empty members, duplicates included

  bool parse(const std::string_view *lines, size_t count) {
    size_t total = 0;
    for (size_t i = 0; i < count; ++i) {
      if (lines[i].size() > kTracestateMaxInput - total) return false;
      total += lines[i].size();
    }
    for (size_t i = 0; i < count; ++i) {
      std::string_view rest = lines[i];
      while (true) {
        size_t comma = rest.find(',');
        std::string_view text = trim_ows(rest.substr(0, comma));
        if (!text.empty()) {
          // "There can be a maximum of 32 list-members in a list"; the test
          // suite discards a 33-member list whole.
          if (++received > kTracestateMaxMembers) return false;
          size_t eq = text.find('=');
          if (eq == std::string_view::npos || !key_valid(text.substr(0, eq)) ||
              !value_valid(text.substr(eq + 1)))
            return false;
          if (!seen(text.substr(0, eq))) m[n++] = {text, eq};
        }
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
      }
    }
    return true;
  }

  bool seen(std::string_view key) const {
    for (size_t i = 0; i < n; ++i)
      if (m[i].text.substr(0, m[i].key_len) == key) return true;
    return false;
  }
};

}  // namespace

std::string tracestate_combine(const std::string_view *lines, size_t n) {
  MemberList list;
  if (lines == nullptr || !list.parse(lines, n) || list.n == 0) return {};
  bool keep[kTracestateMaxMembers];
  size_t kept = list.n, chars = 0;
  for (size_t i = 0; i < list.n; ++i) {
    keep[i] = true;
    chars += list.m[i].text.size();
  }
  auto joined = [&] { return kept == 0 ? 0 : chars + kept - 1; };
  // "Tracestate Limits": whole entries only; entries over 128 characters
  // first, then from the end. Each pass drops from the right only as many as
  // needed, so that as much as possible is propagated.
  for (bool long_only : {true, false}) {
    for (size_t i = list.n; i-- > 0 && joined() > kTracestateMaxOutput;) {
      size_t size = list.m[i].text.size();
      if (!keep[i] || (long_only && size <= 128)) continue;
      keep[i] = false;
      --kept;
      chars -= size;
    }
  }
  std::string out;
  out.reserve(kTracestateMaxOutput);
  for (size_t i = 0; i < list.n; ++i) {
    if (!keep[i]) continue;
    if (!out.empty()) out += ',';
    out.append(list.m[i].text);
  }
  return out;
}

std::string tracestate_normalize(std::string_view value) {
  return tracestate_combine(&value, 1);
}

bool tracestate_valid(std::string_view value) {
  MemberList list;
  // A duplicate key parses (and is dropped); as given, the value is not valid.
  return list.parse(&value, 1) && list.received == list.n;
}

}  // namespace otelagent
