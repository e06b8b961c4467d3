// W3C Baggage (w3c/baggage baggage/HTTP_HEADER_FORMAT.md). Section names in
// comments refer to that text.
#include "propagation/propagation.h"

namespace otelagent {

namespace {

// RFC 7230 token characters.
bool tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

bool token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!tchar(c)) return false;
  return true;
}

// baggage-octet: printable ASCII except space, '"', ',', ';' and '\'.
bool value_valid(std::string_view v) {
  for (size_t i = 0; i < v.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(v[i]);
    if (c < 0x21 || c > 0x7e || c == '"' || c == ',' || c == ';' || c == '\\') return false;
    if (c == '%') {
      auto hex = [](char h) {
        return (h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') || (h >= 'A' && h <= 'F');
      };
      if (i + 2 >= v.size() || !hex(v[i + 1]) || !hex(v[i + 2])) return false;
    }
  }
  return true;
}

// key "=" value *( ";" property ), property = key [ "=" value ].
bool member_valid(std::string_view m, std::string *normalized) {
  std::string out;
  size_t pos = 0;
  bool first = true;
  while (pos <= m.size()) {
    size_t semi = m.find(';', pos);
    std::string_view part =
        trim_ows(m.substr(pos, semi == std::string_view::npos ? m.npos : semi - pos));
    size_t eq = part.find('=');
    std::string_view k = trim_ows(part.substr(0, eq));
    std::string_view v =
        eq == std::string_view::npos ? std::string_view() : trim_ows(part.substr(eq + 1));
    if (first) {
      if (eq == std::string_view::npos || !token(k) || !value_valid(v)) return false;
    } else if (!token(k) || (eq != std::string_view::npos && !value_valid(v))) {
      return false;
    }
    if (!first) out += ';';
    out.append(k);
    if (eq != std::string_view::npos) {
      out += '=';
      out.append(v);
    }
    first = false;
    if (semi == std::string_view::npos) break;
    pos = semi + 1;
  }
  *normalized = std::move(out);
  return true;
}

}  // namespace

std::string baggage_combine(const std::string_view *lines, size_t n) {
  if (lines == nullptr) return {};
  size_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    if (lines[i].size() > kBaggageMaxInput - total) return {};
    total += lines[i].size();
  }
  std::string out, norm;
  size_t members = 0;
  for (size_t i = 0; i < n && members < kBaggageMaxMembers; ++i) {
    std::string_view rest = lines[i];
    while (members < kBaggageMaxMembers) {
      size_t comma = rest.find(',');
      std::string_view m = trim_ows(rest.substr(0, comma));
      // "Limits": whole members only, and which ones to drop is ours to
      // choose; skipping one that does not fit keeps later, smaller ones.
      if (!m.empty() && member_valid(m, &norm) &&
          out.size() + norm.size() + (out.empty() ? 0 : 1) <= kBaggageMaxOutput) {
        if (!out.empty()) out += ',';
        out += norm;
        ++members;
      }
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return out;
}

std::string baggage_normalize(std::string_view value) {
  return baggage_combine(&value, 1);
}

}  // namespace otelagent
