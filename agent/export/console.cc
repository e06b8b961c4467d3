#include "export/console.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <map>
#include <string_view>

#include "propagation/propagation.h"

namespace otelagent {

namespace {

const char *kind_name(uint8_t k) {
  static const char *kNames[] = {"unspecified", "internal", "server",
                                 "client",      "producer", "consumer"};
  return k <= 5 ? kNames[k] : "?";
}

std::string hex(const uint8_t *p, size_t n) {
  std::string s(2 * n, '0');
  hex_encode(p, n, s.data());
  return s;
}

void append_value(std::string *out, uint8_t type, std::string_view v) {
  const auto *raw = reinterpret_cast<const uint8_t *>(v.data());
  char buf[64];
  switch (type) {
    case OTELAGENT_TYPE_STRING:
      *out += '"';
      out->append(v);
      *out += '"';
      return;
    case OTELAGENT_TYPE_BYTES:
      *out += "0x" + hex(raw, v.size());
      return;
    case OTELAGENT_TYPE_BOOL:
      *out += raw[0] ? "true" : "false";
      return;
    case OTELAGENT_TYPE_INT64:
      snprintf(buf, sizeof buf, "%" PRId64, static_cast<int64_t>(load_u64(raw)));
      *out += buf;
      return;
    case OTELAGENT_TYPE_DOUBLE: {
      double d;
      std::memcpy(&d, raw, 8);
      snprintf(buf, sizeof buf, "%g", d);
      *out += buf;
      return;
    }
    case OTELAGENT_TYPE_STRING_ARRAY: {
      *out += '[';
      bool first = true;
      for_each_array_string(v, [&](std::string_view item) {
        if (!first) *out += ", ";
        first = false;
        append_value(out, OTELAGENT_TYPE_STRING, item);
        return true;
      });
      *out += ']';
      return;
    }
    default: {
      *out += '[';
      size_t item = type == OTELAGENT_TYPE_BOOL_ARRAY ? 1 : 8;
      uint8_t t = type == OTELAGENT_TYPE_BOOL_ARRAY    ? OTELAGENT_TYPE_BOOL
                  : type == OTELAGENT_TYPE_INT64_ARRAY ? OTELAGENT_TYPE_INT64
                                                       : OTELAGENT_TYPE_DOUBLE;
      for (size_t i = 0; i + item <= v.size(); i += item) {
        if (i) *out += ", ";
        append_value(out, t, v.substr(i, item));
      }
      *out += ']';
    }
  }
}

// Deeper spans are printed at this indentation: a pathological chain must
// not make the output grow with the square of its length.
constexpr size_t kMaxIndent = 32;

void print_span(std::string *out, const RecordView &r, size_t depth) {
  std::string pad(std::min(depth, kMaxIndent) * 2 + 2, ' ');
  char head[160];
  double ms = r.end() >= r.start() ? static_cast<double>(r.end() - r.start()) / 1e6 : 0.0;
  *out += pad;
  out->append(r.find(OTELAGENT_REC_NAME));
  snprintf(head, sizeof head, "  %.3f ms  [%s] span=%s", ms, kind_name(r.kind()),
           hex(r.span_id(), 8).c_str());
  *out += head;
  if (r.status() == OTELAGENT_STATUS_OK) *out += "  status=OK";
  if (r.status() == OTELAGENT_STATUS_ERROR) {
    *out += "  status=ERROR";
    std::string_view msg;
    EntryReader it = r.entries();
    Entry e;
    while (it.next(&e))
      if (e.tag == OTELAGENT_REC_STATUS_MESSAGE) msg = e.value;
    if (!msg.empty()) {
      *out += " \"";
      out->append(msg);
      *out += '"';
    }
  }
  *out += '\n';
  EntryReader it = r.entries();
  Entry e;
  while (it.next(&e)) {
    switch (e.tag) {
      case OTELAGENT_REC_ATTR:
      case OTELAGENT_REC_EVENT_ATTR:
      case OTELAGENT_REC_LINK_ATTR:
        *out += pad + (e.tag == OTELAGENT_REC_ATTR ? "  " : "      ");
        out->append(e.key);
        *out += '=';
        append_value(out, e.type, e.value);
        *out += '\n';
        break;
      case OTELAGENT_REC_EVENT: {
        uint64_t t = load_u64(reinterpret_cast<const uint8_t *>(e.value.data()));
        snprintf(head, sizeof head, "  event at +%.3f ms: ",
                 t >= r.start() ? static_cast<double>(t - r.start()) / 1e6 : 0.0);
        *out += pad + head;
        out->append(e.key);
        *out += '\n';
        break;
      }
      case OTELAGENT_REC_LINK:
        *out += pad +
                "  link to trace=" + hex(reinterpret_cast<const uint8_t *>(e.value.data()), 16) +
                " span=" + hex(reinterpret_cast<const uint8_t *>(e.value.data()) + 16, 8) + '\n';
        break;
    }
  }
}

}  // namespace

std::string console_format(const std::vector<RecordView> &spans) {
  // trace id -> spans of that trace in the batch, in arrival order.
  std::map<std::string, std::vector<size_t>> traces;
  for (size_t i = 0; i < spans.size(); ++i) traces[hex(spans[i].trace_id(), 16)].push_back(i);
  std::string out;
  std::vector<bool> printed(spans.size());
  for (const auto &[trace, members] : traces) {
    std::map<std::string, size_t> present;
    for (size_t i : members) present.emplace(hex(spans[i].span_id(), 8), i);
    // parent span id -> its children in the batch, in arrival order.
    std::map<std::string, std::vector<size_t>> children;
    std::vector<size_t> roots;
    for (size_t i : members) {
      const RecordView &r = spans[i];
      std::string parent = hex(r.parent_id(), 8);
      if (r.has_parent() && parent != hex(r.span_id(), 8) && present.count(parent))
        children[parent].push_back(i);
      else
        roots.push_back(i);
    }
    // Depth first with an explicit stack, each span once: parent ids come
    // from outside (a binding may link a span to itself, or spans in a loop),
    // so neither the depth nor the shape of the "tree" can be trusted.
    auto print_tree = [&](size_t root) {
      std::vector<std::pair<size_t, size_t>> stack{{root, 0}};  // span, depth
      while (!stack.empty()) {
        auto [i, depth] = stack.back();
        stack.pop_back();
        if (printed[i]) continue;
        printed[i] = true;
        print_span(&out, spans[i], depth);
        auto kids = children.find(hex(spans[i].span_id(), 8));
        if (kids == children.end()) continue;
        for (auto k = kids->second.rbegin(); k != kids->second.rend(); ++k)
          stack.emplace_back(*k, depth + 1);
      }
    };
    out += "trace " + trace + "\n";
    for (size_t i : roots) print_tree(i);
    // Spans in a loop of parent links are reached from no root: each loop is
    // printed from its first span in arrival order.
    for (size_t i : members) print_tree(i);
  }
  return out;
}

}  // namespace otelagent
