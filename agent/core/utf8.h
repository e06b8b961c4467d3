// UTF-8 checks, repair and truncation. OTLP strings must be valid UTF-8.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace otelagent {

// True when `s` is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
bool utf8_valid(std::string_view s);

// Appends `s` to `out` with every invalid sequence replaced by U+FFFD.
void utf8_repair(std::string_view s, std::string *out);

// Number of code points in valid UTF-8 `s`.
size_t utf8_length(std::string_view s);

// Longest prefix of valid UTF-8 `s` with at most `max_chars` code points.
std::string_view utf8_prefix_chars(std::string_view s, size_t max_chars);

// Largest n <= max_bytes such that s[0..n) does not end inside a multi-byte
// sequence (assuming `s` is UTF-8; for invalid input it still never grows).
size_t utf8_cut(const char *s, size_t len, size_t max_bytes);

}  // namespace otelagent
