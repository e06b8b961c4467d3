#include "export/otlp_encoder.h"

#include "export/wire_reader.h"

#include <google/protobuf/io/coded_stream.h>

#include <cstring>
#include <unordered_map>

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "opentelemetry/proto/common/v1/common.pb.h"
#include "opentelemetry/proto/resource/v1/resource.pb.h"
#include "opentelemetry/proto/trace/v1/trace.pb.h"

namespace otelagent {

namespace {

using google::protobuf::io::CodedOutputStream;
namespace pb_common = opentelemetry::proto::common::v1;
namespace pb_trace = opentelemetry::proto::trace::v1;
namespace pb_svc = opentelemetry::proto::collector::trace::v1;
using PbSpan = pb_trace::Span;
using PbEvent = pb_trace::Span_Event;
using PbLink = pb_trace::Span_Link;

// Wire types.
constexpr uint32_t kVarint = 0, kFixed64 = 1, kLen = 2, kFixed32 = 5;

constexpr uint32_t tag(int field, uint32_t wire) {
  return static_cast<uint32_t>(field) << 3 | wire;
}
size_t tag_size(int field) {
  return CodedOutputStream::VarintSize32(tag(field, 0));
}
size_t len_field_size(int field, size_t n) {
  return tag_size(field) + CodedOutputStream::VarintSize32(static_cast<uint32_t>(n)) + n;
}

// A cursor over the pre-sized output buffer.
struct Out {
  uint8_t *p;
  void varint(uint64_t v) { p = CodedOutputStream::WriteVarint64ToArray(v, p); }
  void key(int field, uint32_t wire) {
    p = CodedOutputStream::WriteTagToArray(tag(field, wire), p);
  }
  void len_header(int field, size_t n) {
    key(field, kLen);
    p = CodedOutputStream::WriteVarint32ToArray(static_cast<uint32_t>(n), p);
  }
  void bytes(int field, const void *data, size_t n) {
    len_header(field, n);
    if (n != 0) std::memcpy(p, data, n);
    p += n;
  }
  void bytes(int field, std::string_view s) { bytes(field, s.data(), s.size()); }
  void fixed64(int field, uint64_t v) {
    key(field, kFixed64);
    p = CodedOutputStream::WriteLittleEndian64ToArray(v, p);
  }
  void fixed32(int field, uint32_t v) {
    key(field, kFixed32);
    p = CodedOutputStream::WriteLittleEndian32ToArray(v, p);
  }
  void uint(int field, uint64_t v) {
    key(field, kVarint);
    varint(v);
  }
};

// ---- AnyValue ------------------------------------------------------------

template <typename Fn>
void for_each_string(std::string_view v, Fn &&fn) {
  for_each_array_string(v, [&](std::string_view item) {
    fn(item);
    return true;
  });
}

size_t scalar_any_size(uint8_t type, std::string_view v) {
  using AV = pb_common::AnyValue;
  switch (type) {
    case OTELAGENT_TYPE_STRING:
      return len_field_size(AV::kStringValueFieldNumber, v.size());
    case OTELAGENT_TYPE_BYTES:
      return len_field_size(AV::kBytesValueFieldNumber, v.size());
    case OTELAGENT_TYPE_BOOL:
      return tag_size(AV::kBoolValueFieldNumber) + 1;
    case OTELAGENT_TYPE_INT64:
      return tag_size(AV::kIntValueFieldNumber) +
             CodedOutputStream::VarintSize64(load_u64(reinterpret_cast<const uint8_t *>(v.data())));
    case OTELAGENT_TYPE_DOUBLE:
      return tag_size(AV::kDoubleValueFieldNumber) + 8;
  }
  return 0;
}

// Body size of the ArrayValue of an array attribute.
size_t array_body_size(uint8_t type, std::string_view v) {
  const int f = pb_common::ArrayValue::kValuesFieldNumber;
  size_t n = 0;
  switch (type) {
    case OTELAGENT_TYPE_STRING_ARRAY:
      for_each_string(v, [&](std::string_view s) {
        n += len_field_size(f, scalar_any_size(OTELAGENT_TYPE_STRING, s));
      });
      break;
    case OTELAGENT_TYPE_BOOL_ARRAY:
      for (size_t i = 0; i < v.size(); ++i)
        n += len_field_size(f, scalar_any_size(OTELAGENT_TYPE_BOOL, v.substr(i, 1)));
      break;
    case OTELAGENT_TYPE_INT64_ARRAY:
    case OTELAGENT_TYPE_DOUBLE_ARRAY: {
      uint8_t item =
          type == OTELAGENT_TYPE_INT64_ARRAY ? OTELAGENT_TYPE_INT64 : OTELAGENT_TYPE_DOUBLE;
      for (size_t i = 0; i + 8 <= v.size(); i += 8)
        n += len_field_size(f, scalar_any_size(item, v.substr(i, 8)));
      break;
    }
  }
  return n;
}

bool is_array(uint8_t type) {
  return type >= OTELAGENT_TYPE_STRING_ARRAY;
}

size_t any_size(uint8_t type, std::string_view v) {
  if (is_array(type))
    return len_field_size(pb_common::AnyValue::kArrayValueFieldNumber, array_body_size(type, v));
  return scalar_any_size(type, v);
}

void write_scalar_any(Out &o, uint8_t type, std::string_view v) {
  using AV = pb_common::AnyValue;
  const auto *raw = reinterpret_cast<const uint8_t *>(v.data());
  switch (type) {
    case OTELAGENT_TYPE_STRING:
      o.bytes(AV::kStringValueFieldNumber, v);
      break;
    case OTELAGENT_TYPE_BYTES:
      o.bytes(AV::kBytesValueFieldNumber, v);
      break;
    case OTELAGENT_TYPE_BOOL:
      o.uint(AV::kBoolValueFieldNumber, raw[0] != 0);
      break;
    case OTELAGENT_TYPE_INT64:
      o.uint(AV::kIntValueFieldNumber, load_u64(raw));
      break;
    case OTELAGENT_TYPE_DOUBLE:
      o.fixed64(AV::kDoubleValueFieldNumber, load_u64(raw));
      break;
  }
}

void write_any(Out &o, uint8_t type, std::string_view v) {
  if (!is_array(type)) {
    write_scalar_any(o, type, v);
    return;
  }
  const int f = pb_common::ArrayValue::kValuesFieldNumber;
  o.len_header(pb_common::AnyValue::kArrayValueFieldNumber, array_body_size(type, v));
  auto item = [&](uint8_t t, std::string_view s) {
    o.len_header(f, scalar_any_size(t, s));
    write_scalar_any(o, t, s);
  };
  switch (type) {
    case OTELAGENT_TYPE_STRING_ARRAY:
      for_each_string(v, [&](std::string_view s) { item(OTELAGENT_TYPE_STRING, s); });
      break;
    case OTELAGENT_TYPE_BOOL_ARRAY:
      for (size_t i = 0; i < v.size(); ++i) item(OTELAGENT_TYPE_BOOL, v.substr(i, 1));
      break;
    default: {
      uint8_t t = type == OTELAGENT_TYPE_INT64_ARRAY ? OTELAGENT_TYPE_INT64 : OTELAGENT_TYPE_DOUBLE;
      for (size_t i = 0; i + 8 <= v.size(); i += 8) item(t, v.substr(i, 8));
    }
  }
}

// ---- KeyValue --------------------------------------------------------------

size_t kv_body_size(const Entry &e) {
  using KV = pb_common::KeyValue;
  return len_field_size(KV::kKeyFieldNumber, e.key.size()) +
         len_field_size(KV::kValueFieldNumber, any_size(e.type, e.value));
}

void write_kv(Out &o, int field, const Entry &e) {
  using KV = pb_common::KeyValue;
  o.len_header(field, kv_body_size(e));
  o.bytes(KV::kKeyFieldNumber, e.key);
  o.len_header(KV::kValueFieldNumber, any_size(e.type, e.value));
  write_any(o, e.type, e.value);
}

// ---- Span --------------------------------------------------------------------

// Sizes of the parts of an event or link group that starts at the entry just
// read: the fixed fields are the caller's; this adds attributes and dropped.
struct GroupSize {
  size_t attrs = 0;
  int64_t dropped = 0;
};

GroupSize group_size(EntryReader r, uint8_t attr_tag, int attr_field) {
  GroupSize g;
  Entry e;
  while (r.peek_tag() == attr_tag || r.peek_tag() == OTELAGENT_REC_GROUP_DROPPED) {
    r.next(&e);
    if (e.tag == attr_tag)
      g.attrs += len_field_size(attr_field, kv_body_size(e));
    else
      g.dropped +=
          static_cast<int64_t>(load_u64(reinterpret_cast<const uint8_t *>(e.value.data())));
  }
  return g;
}

size_t event_body_size(const Entry &ev, const GroupSize &g) {
  size_t n = tag_size(PbEvent::kTimeUnixNanoFieldNumber) + 8 + g.attrs;
  if (!ev.key.empty()) n += len_field_size(PbEvent::kNameFieldNumber, ev.key.size());
  if (g.dropped)
    n += tag_size(PbEvent::kDroppedAttributesCountFieldNumber) +
         CodedOutputStream::VarintSize64(static_cast<uint64_t>(g.dropped));
  return n;
}

size_t link_body_size(const Entry &ln, const GroupSize &g) {
  size_t n = len_field_size(PbLink::kTraceIdFieldNumber, 16) +
             len_field_size(PbLink::kSpanIdFieldNumber, 8) + tag_size(PbLink::kFlagsFieldNumber) +
             4 + g.attrs;
  size_t ts = ln.value.size() - rec::kLinkFixed;
  if (ts) n += len_field_size(PbLink::kTraceStateFieldNumber, ts);
  if (g.dropped)
    n += tag_size(PbLink::kDroppedAttributesCountFieldNumber) +
         CodedOutputStream::VarintSize64(static_cast<uint64_t>(g.dropped));
  return n;
}

// The parts of a record the span message needs beyond the header.
struct SpanParts {
  std::string_view name, tracestate, status_message;
};

SpanParts parts_of(const RecordView &r) {
  SpanParts p;
  EntryReader it = r.entries();
  Entry e;
  while (it.next(&e)) {
    if (e.tag == OTELAGENT_REC_NAME)
      p.name = e.value;
    else if (e.tag == OTELAGENT_REC_TRACESTATE)
      p.tracestate = e.value;
    else if (e.tag == OTELAGENT_REC_STATUS_MESSAGE)
      p.status_message = e.value;
  }
  if (r.status() != OTELAGENT_STATUS_ERROR) p.status_message = {};
  return p;
}

size_t varint_field_size(int field, uint64_t v) {
  return v == 0 ? 0 : tag_size(field) + CodedOutputStream::VarintSize64(v);
}

size_t status_body_size(const RecordView &r, const SpanParts &p) {
  size_t n = 0;
  if (!p.status_message.empty())
    n += len_field_size(pb_trace::Status::kMessageFieldNumber, p.status_message.size());
  n += varint_field_size(pb_trace::Status::kCodeFieldNumber, r.status());
  return n;
}

// The attribute that says how many values of the span were cut.
constexpr std::string_view kTruncatedKey = "otelagent.truncated_values";

Entry truncated_attr(const RecordView &r, uint64_t *storage) {
  *storage = r.truncated();
  return Entry{OTELAGENT_REC_ATTR, OTELAGENT_TYPE_INT64, kTruncatedKey,
               std::string_view(reinterpret_cast<const char *>(storage), 8)};
}

size_t span_body_size(const RecordView &r) {
  SpanParts p = parts_of(r);
  size_t n = len_field_size(PbSpan::kTraceIdFieldNumber, 16) +
             len_field_size(PbSpan::kSpanIdFieldNumber, 8) +
             len_field_size(PbSpan::kNameFieldNumber, p.name.size()) +
             tag_size(PbSpan::kStartTimeUnixNanoFieldNumber) + 8 +
             tag_size(PbSpan::kEndTimeUnixNanoFieldNumber) + 8;
  if (!p.tracestate.empty())
    n += len_field_size(PbSpan::kTraceStateFieldNumber, p.tracestate.size());
  if (r.has_parent()) n += len_field_size(PbSpan::kParentSpanIdFieldNumber, 8);
  if (r.flags()) n += tag_size(PbSpan::kFlagsFieldNumber) + 4;
  n += varint_field_size(PbSpan::kKindFieldNumber, r.kind());
  n += varint_field_size(PbSpan::kDroppedAttributesCountFieldNumber, r.dropped_attrs());
  n += varint_field_size(PbSpan::kDroppedEventsCountFieldNumber, r.dropped_events());
  n += varint_field_size(PbSpan::kDroppedLinksCountFieldNumber, r.dropped_links());
  size_t st = status_body_size(r, p);
  if (st) n += len_field_size(PbSpan::kStatusFieldNumber, st);
  uint64_t truncated;
  if (r.truncated() != 0)
    n +=
        len_field_size(PbSpan::kAttributesFieldNumber, kv_body_size(truncated_attr(r, &truncated)));
  EntryReader it = r.entries();
  Entry e;
  while (it.next(&e)) {
    if (e.tag == OTELAGENT_REC_ATTR) {
      n += len_field_size(PbSpan::kAttributesFieldNumber, kv_body_size(e));
    } else if (e.tag == OTELAGENT_REC_EVENT) {
      GroupSize g = group_size(it, OTELAGENT_REC_EVENT_ATTR, PbEvent::kAttributesFieldNumber);
      n += len_field_size(PbSpan::kEventsFieldNumber, event_body_size(e, g));
    } else if (e.tag == OTELAGENT_REC_LINK) {
      GroupSize g = group_size(it, OTELAGENT_REC_LINK_ATTR, PbLink::kAttributesFieldNumber);
      n += len_field_size(PbSpan::kLinksFieldNumber, link_body_size(e, g));
    }
  }
  return n;
}

void write_group_rest(Out &o, EntryReader &it, uint8_t attr_tag, int attr_field, int dropped_field,
                      const GroupSize &g) {
  Entry e;
  while (it.peek_tag() == attr_tag || it.peek_tag() == OTELAGENT_REC_GROUP_DROPPED) {
    it.next(&e);
    if (e.tag == attr_tag) write_kv(o, attr_field, e);
  }
  if (g.dropped) o.uint(dropped_field, static_cast<uint64_t>(g.dropped));
}

void write_span(Out &o, const RecordView &r, size_t body) {
  SpanParts p = parts_of(r);
  o.len_header(pb_trace::ScopeSpans::kSpansFieldNumber, body);
  o.bytes(PbSpan::kTraceIdFieldNumber, r.trace_id(), 16);
  o.bytes(PbSpan::kSpanIdFieldNumber, r.span_id(), 8);
  if (!p.tracestate.empty()) o.bytes(PbSpan::kTraceStateFieldNumber, p.tracestate);
  if (r.has_parent()) o.bytes(PbSpan::kParentSpanIdFieldNumber, r.parent_id(), 8);
  if (r.flags()) o.fixed32(PbSpan::kFlagsFieldNumber, r.flags());
  o.bytes(PbSpan::kNameFieldNumber, p.name);
  if (r.kind()) o.uint(PbSpan::kKindFieldNumber, r.kind());
  o.fixed64(PbSpan::kStartTimeUnixNanoFieldNumber, r.start());
  o.fixed64(PbSpan::kEndTimeUnixNanoFieldNumber, r.end());
  EntryReader it = r.entries();
  Entry e;
  while (it.next(&e)) {
    if (e.tag == OTELAGENT_REC_ATTR) {
      write_kv(o, PbSpan::kAttributesFieldNumber, e);
    } else if (e.tag == OTELAGENT_REC_EVENT) {
      GroupSize g = group_size(it, OTELAGENT_REC_EVENT_ATTR, PbEvent::kAttributesFieldNumber);
      o.len_header(PbSpan::kEventsFieldNumber, event_body_size(e, g));
      o.fixed64(PbEvent::kTimeUnixNanoFieldNumber,
                load_u64(reinterpret_cast<const uint8_t *>(e.value.data())));
      if (!e.key.empty()) o.bytes(PbEvent::kNameFieldNumber, e.key);
      write_group_rest(o, it, OTELAGENT_REC_EVENT_ATTR, PbEvent::kAttributesFieldNumber,
                       PbEvent::kDroppedAttributesCountFieldNumber, g);
    } else if (e.tag == OTELAGENT_REC_LINK) {
      GroupSize g = group_size(it, OTELAGENT_REC_LINK_ATTR, PbLink::kAttributesFieldNumber);
      o.len_header(PbSpan::kLinksFieldNumber, link_body_size(e, g));
      const auto *v = reinterpret_cast<const uint8_t *>(e.value.data());
      o.bytes(PbLink::kTraceIdFieldNumber, v, 16);
      o.bytes(PbLink::kSpanIdFieldNumber, v + 16, 8);
      if (e.value.size() > rec::kLinkFixed)
        o.bytes(PbLink::kTraceStateFieldNumber, e.value.substr(rec::kLinkFixed));
      write_group_rest(o, it, OTELAGENT_REC_LINK_ATTR, PbLink::kAttributesFieldNumber,
                       PbLink::kDroppedAttributesCountFieldNumber, g);
      o.fixed32(PbLink::kFlagsFieldNumber, load_u32(v + 24));
    }
  }
  uint64_t truncated;
  if (r.truncated() != 0)
    write_kv(o, PbSpan::kAttributesFieldNumber, truncated_attr(r, &truncated));
  if (r.dropped_attrs()) o.uint(PbSpan::kDroppedAttributesCountFieldNumber, r.dropped_attrs());
  if (r.dropped_events()) o.uint(PbSpan::kDroppedEventsCountFieldNumber, r.dropped_events());
  if (r.dropped_links()) o.uint(PbSpan::kDroppedLinksCountFieldNumber, r.dropped_links());
  size_t st = status_body_size(r, p);
  if (st) {
    o.len_header(PbSpan::kStatusFieldNumber, st);
    if (!p.status_message.empty()) o.bytes(pb_trace::Status::kMessageFieldNumber, p.status_message);
    if (r.status()) o.uint(pb_trace::Status::kCodeFieldNumber, r.status());
  }
}

struct ScopeGroup {
  std::string_view name, version;
  std::vector<uint32_t> spans;  // indices into the batch
  size_t body = 0;              // ScopeSpans body size
};

size_t scope_body_size(std::string_view name, std::string_view version) {
  using IS = pb_common::InstrumentationScope;
  size_t n = 0;
  if (!name.empty()) n += len_field_size(IS::kNameFieldNumber, name.size());
  if (!version.empty()) n += len_field_size(IS::kVersionFieldNumber, version.size());
  return n;
}

}  // namespace

bool decode_export_response(std::string_view body, PartialSuccess *out) {
  using PS = pb_svc::ExportTracePartialSuccess;
  const auto *b = reinterpret_cast<const uint8_t *>(body.data());
  WireReader in{b, b + body.size()};
  bool ok = true;
  bool parsed = in.fields([&](int field, uint32_t wire) {
    if (field != pb_svc::ExportTraceServiceResponse::kPartialSuccessFieldNumber || wire != kLen)
      return false;
    WireReader ps;
    if (!in.sub(&ps)) {
      ok = false;
      in.p = in.end;
      return true;
    }
    ok = ok && ps.fields([&](int f, uint32_t w) {
      if (f == PS::kRejectedSpansFieldNumber && w == kVarint) {
        uint64_t v = 0;
        ok = ok && ps.varint(&v);
        out->rejected_spans = static_cast<int64_t>(v);
        return true;
      }
      if (f == PS::kErrorMessageFieldNumber && w == kLen) {
        WireReader str;
        if (ps.sub(&str))
          out->error_message.assign(reinterpret_cast<const char *>(str.p), str.end - str.p);
        else
          ok = false;
        return true;
      }
      return false;
    });
    return true;
  });
  return parsed && ok;
}

std::string encode_resource(const std::vector<ResourceAttr> &attrs) {
  using KV = pb_common::KeyValue;
  using AV = pb_common::AnyValue;
  const int f = opentelemetry::proto::resource::v1::Resource::kAttributesFieldNumber;
  std::vector<size_t> sizes;
  size_t total = 0;
  for (const auto &a : attrs) {
    size_t any = a.is_int ? tag_size(AV::kIntValueFieldNumber) +
                                CodedOutputStream::VarintSize64(static_cast<uint64_t>(a.i64))
                          : len_field_size(AV::kStringValueFieldNumber, a.str.size());
    size_t kv = len_field_size(KV::kKeyFieldNumber, a.key.size()) +
                len_field_size(KV::kValueFieldNumber, any);
    sizes.push_back(any);
    total += len_field_size(f, kv);
  }
  std::string out(total, '\0');
  Out o{reinterpret_cast<uint8_t *>(out.data())};
  for (size_t i = 0; i < attrs.size(); ++i) {
    const auto &a = attrs[i];
    o.len_header(f, len_field_size(KV::kKeyFieldNumber, a.key.size()) +
                        len_field_size(KV::kValueFieldNumber, sizes[i]));
    o.bytes(KV::kKeyFieldNumber, a.key);
    o.len_header(KV::kValueFieldNumber, sizes[i]);
    if (a.is_int)
      o.uint(AV::kIntValueFieldNumber, static_cast<uint64_t>(a.i64));
    else
      o.bytes(AV::kStringValueFieldNumber, a.str);
  }
  return out;
}

bool encode_request(std::string_view resource_body, const std::vector<RecordView> &spans,
                    std::string *out) {
  // Group by scope, keeping first-seen order.
  std::vector<ScopeGroup> groups;
  std::unordered_map<std::string, uint32_t> index;
  std::string key;
  std::vector<size_t> span_sizes(spans.size());
  for (uint32_t i = 0; i < spans.size(); ++i) {
    std::string_view name = spans[i].find(OTELAGENT_REC_SCOPE_NAME);
    std::string_view version = spans[i].find(OTELAGENT_REC_SCOPE_VERSION);
    key.assign(name);
    key += '\0';
    key.append(version);
    auto [it, fresh] = index.emplace(key, static_cast<uint32_t>(groups.size()));
    if (fresh) groups.push_back({name, version, {}, 0});
    ScopeGroup &g = groups[it->second];
    g.spans.push_back(i);
    span_sizes[i] = span_body_size(spans[i]);
    g.body += len_field_size(pb_trace::ScopeSpans::kSpansFieldNumber, span_sizes[i]);
  }
  using RS = pb_trace::ResourceSpans;
  size_t rs_body = len_field_size(RS::kResourceFieldNumber, resource_body.size());
  for (auto &g : groups) {
    g.body +=
        len_field_size(pb_trace::ScopeSpans::kScopeFieldNumber, scope_body_size(g.name, g.version));
    rs_body += len_field_size(RS::kScopeSpansFieldNumber, g.body);
  }
  const int req_field = pb_svc::ExportTraceServiceRequest::kResourceSpansFieldNumber;
  const size_t total = len_field_size(req_field, rs_body);
  out->assign(total, '\0');
  Out o{reinterpret_cast<uint8_t *>(out->data())};
  o.len_header(req_field, rs_body);
  o.bytes(RS::kResourceFieldNumber, resource_body);
  for (auto &g : groups) {
    using IS = pb_common::InstrumentationScope;
    o.len_header(RS::kScopeSpansFieldNumber, g.body);
    o.len_header(pb_trace::ScopeSpans::kScopeFieldNumber, scope_body_size(g.name, g.version));
    if (!g.name.empty()) o.bytes(IS::kNameFieldNumber, g.name);
    if (!g.version.empty()) o.bytes(IS::kVersionFieldNumber, g.version);
    for (uint32_t i : g.spans) write_span(o, spans[i], span_sizes[i]);
  }
  // The sizes computed above must match what was written exactly; a mismatch
  // is a bug, reported by dropping the batch rather than sending bad bytes.
  if (o.p != reinterpret_cast<uint8_t *>(out->data()) + total) {
    out->clear();
    return false;
  }
  return true;
}

}  // namespace otelagent
