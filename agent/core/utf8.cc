#include "utf8.h"

namespace otelagent {

namespace {
// Length of the valid sequence at s[i..], or 0 when it is invalid.
size_t seq_len(const unsigned char *s, size_t n, size_t i) {
  unsigned char c = s[i];
  if (c < 0x80) return 1;
  size_t len;
  uint32_t cp;
  if ((c & 0xE0) == 0xC0) {
    len = 2;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > n) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((s[i + k] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i + k] & 0x3F);
  }
  static const uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}
}  // namespace

bool utf8_valid(std::string_view s) {
  const auto *p = reinterpret_cast<const unsigned char *>(s.data());
  size_t i = 0, n = s.size();
  while (i < n) {
    // ASCII fast path, eight bytes at a time.
    while (i + 8 <= n) {
      uint64_t w;
      __builtin_memcpy(&w, p + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    size_t l = seq_len(p, n, i);
    if (l == 0) return false;
    i += l;
  }
  return true;
}

void utf8_repair(std::string_view s, std::string *out) {
  const auto *p = reinterpret_cast<const unsigned char *>(s.data());
  size_t i = 0, n = s.size();
  while (i < n) {
    size_t l = seq_len(p, n, i);
    if (l == 0) {
      *out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    out->append(s.data() + i, l);
    i += l;
  }
}

size_t utf8_length(std::string_view s) {
  size_t count = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++count;
  return count;
}

std::string_view utf8_prefix_chars(std::string_view s, size_t max_chars) {
  size_t count = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
      if (count == max_chars) return s.substr(0, i);
      ++count;
    }
  }
  return s;
}

size_t utf8_cut(const char *s, size_t len, size_t max_bytes) {
  if (len <= max_bytes) return len;
  size_t n = max_bytes;
  // Step back over continuation bytes to the start of the cut sequence.
  size_t back = 0;
  while (n > 0 && back < 3 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) {
    --n;
    ++back;
  }
  return n;
}

}  // namespace otelagent
