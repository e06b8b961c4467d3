// Builds span records in the documented otelagent.h format, the way a binding
// (Python's struct.pack) would: independently of the agent's own span calls.
#pragma once

#include <otelagent/otelagent.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace otelagent_test {

class RecordBuilder {
 public:
  // Offsets as otelagent.h documents them (format version 2), written out
  // here rather than taken from the agent's own constants.
  enum : size_t {
    kVersionAt = 4,
    kHeaderLenAt = 6,
    kKindAt = 8,
    kStatusAt = 9,
    kFlagsAt = 12,
    kTraceIdAt = 16,
    kSpanIdAt = 32,
    kParentIdAt = 40,
    kStartAt = 48,
    kEndAt = 56,
  };

  RecordBuilder() : buf_(OTELAGENT_RECORD_HEADER_SIZE, 0) {
    put16(kVersionAt, OTELAGENT_RECORD_VERSION);
    put16(kHeaderLenAt, OTELAGENT_RECORD_HEADER_SIZE);
    buf_[kKindAt] = OTELAGENT_KIND_INTERNAL;
    for (int i = 0; i < 16; ++i) buf_[kTraceIdAt + i] = static_cast<uint8_t>(i + 1);
    for (int i = 0; i < 8; ++i) buf_[kSpanIdAt + i] = static_cast<uint8_t>(0xa0 + i);
    put64(kStartAt, 1700000000000000000ull);
    put64(kEndAt, 1700000000000001000ull);
    put32(kFlagsAt, 0x101);  // sampled, parent remoteness known (local)
  }
  RecordBuilder &trace_id(const uint8_t id[16]) { return raw(kTraceIdAt, id, 16); }
  RecordBuilder &span_id(const uint8_t id[8]) { return raw(kSpanIdAt, id, 8); }
  RecordBuilder &parent_id(const uint8_t id[8]) { return raw(kParentIdAt, id, 8); }
  RecordBuilder &times(uint64_t start, uint64_t end) {
    put64(kStartAt, start);
    put64(kEndAt, end);
    return *this;
  }
  RecordBuilder &kind(uint8_t k) {
    buf_[kKindAt] = k;
    return *this;
  }
  RecordBuilder &status(uint8_t s) {
    buf_[kStatusAt] = s;
    return *this;
  }
  RecordBuilder &flags(uint32_t f) {
    put32(kFlagsAt, f);
    return *this;
  }
  // Appends `extra` to the header (fields of a newer minor version); call
  // before adding any entry.
  RecordBuilder &header_extension(std::string_view extra) {
    buf_.insert(buf_.end(), extra.begin(), extra.end());
    put16(kHeaderLenAt, static_cast<uint16_t>(buf_.size()));
    return *this;
  }
  RecordBuilder &entry(uint8_t tag, uint8_t type, std::string_view key, std::string_view value) {
    uint8_t h[8] = {tag, type};
    uint16_t kl = static_cast<uint16_t>(key.size());
    uint32_t vl = static_cast<uint32_t>(value.size());
    std::memcpy(h + 2, &kl, 2);
    std::memcpy(h + 4, &vl, 4);
    buf_.insert(buf_.end(), h, h + 8);
    buf_.insert(buf_.end(), key.begin(), key.end());
    buf_.insert(buf_.end(), value.begin(), value.end());
    return *this;
  }
  RecordBuilder &text(uint8_t tag, std::string_view v) {
    return entry(tag, OTELAGENT_TYPE_STRING, {}, v);
  }
  RecordBuilder &name(std::string_view v) { return text(OTELAGENT_REC_NAME, v); }
  RecordBuilder &attr_str(std::string_view k, std::string_view v,
                          uint8_t tag = OTELAGENT_REC_ATTR) {
    return entry(tag, OTELAGENT_TYPE_STRING, k, v);
  }
  RecordBuilder &attr_i64(std::string_view k, int64_t v, uint8_t tag = OTELAGENT_REC_ATTR) {
    return entry(tag, OTELAGENT_TYPE_INT64, k, std::string_view(reinterpret_cast<char *>(&v), 8));
  }
  RecordBuilder &attr_f64(std::string_view k, double v) {
    return entry(OTELAGENT_REC_ATTR, OTELAGENT_TYPE_DOUBLE, k,
                 std::string_view(reinterpret_cast<char *>(&v), 8));
  }
  RecordBuilder &attr_bool(std::string_view k, bool v) {
    char b = v ? 1 : 0;
    return entry(OTELAGENT_REC_ATTR, OTELAGENT_TYPE_BOOL, k, std::string_view(&b, 1));
  }
  RecordBuilder &attr_str_array(std::string_view k, const std::vector<std::string> &items) {
    std::string v;
    for (const auto &s : items) {
      uint32_t n = static_cast<uint32_t>(s.size());
      v.append(reinterpret_cast<char *>(&n), 4);
      v += s;
    }
    return entry(OTELAGENT_REC_ATTR, OTELAGENT_TYPE_STRING_ARRAY, k, v);
  }
  RecordBuilder &attr_i64_array(std::string_view k, const std::vector<int64_t> &items) {
    return entry(OTELAGENT_REC_ATTR, OTELAGENT_TYPE_INT64_ARRAY, k,
                 std::string_view(reinterpret_cast<const char *>(items.data()), items.size() * 8));
  }
  RecordBuilder &event(std::string_view name, uint64_t t) {
    return entry(OTELAGENT_REC_EVENT, OTELAGENT_TYPE_INT64, name,
                 std::string_view(reinterpret_cast<char *>(&t), 8));
  }
  RecordBuilder &link(const uint8_t trace[16], const uint8_t span[8], uint32_t flags,
                      std::string_view tracestate) {
    std::string v(reinterpret_cast<const char *>(trace), 16);
    v.append(reinterpret_cast<const char *>(span), 8);
    v.append(reinterpret_cast<char *>(&flags), 4);
    v += tracestate;
    return entry(OTELAGENT_REC_LINK, OTELAGENT_TYPE_BYTES, {}, v);
  }
  // An optional extension entry (a tag from OTELAGENT_REC_FIRST_EXTENSION).
  RecordBuilder &extension(uint8_t tag, std::string_view value) {
    return entry(tag, OTELAGENT_TYPE_BYTES, {}, value);
  }
  // The finished record (total_len filled in).
  std::vector<uint8_t> build() {
    put32(0, static_cast<uint32_t>(buf_.size()));
    return buf_;
  }

 private:
  RecordBuilder &raw(size_t off, const uint8_t *p, size_t n) {
    std::memcpy(buf_.data() + off, p, n);
    return *this;
  }
  void put16(size_t off, uint16_t v) { std::memcpy(buf_.data() + off, &v, 2); }
  void put32(size_t off, uint32_t v) { std::memcpy(buf_.data() + off, &v, 4); }
  void put64(size_t off, uint64_t v) { std::memcpy(buf_.data() + off, &v, 8); }
  std::vector<uint8_t> buf_;
};

}  // namespace otelagent_test
