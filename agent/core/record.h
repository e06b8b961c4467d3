// Reading and writing the packed span record (format documented in
// otelagent.h). The same bytes are built by the span calls in a span slot,
// passed whole by otelagent_record_span(), carried through the rings and read
// by the exporter, so this is the one place that knows the layout.
#pragma once

#include <otelagent/otelagent.h>

#include <cstdint>
#include <cstring>
#include <string_view>

namespace otelagent {

inline uint16_t load_u16(const uint8_t *p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline uint32_t load_u32(const uint8_t *p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline uint64_t load_u64(const uint8_t *p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store_u16(uint8_t *p, uint16_t v) {
  std::memcpy(p, &v, sizeof v);
}
inline void store_u32(uint8_t *p, uint32_t v) {
  std::memcpy(p, &v, sizeof v);
}
inline void store_u64(uint8_t *p, uint64_t v) {
  std::memcpy(p, &v, sizeof v);
}

// Offsets of the fixed header fields.
namespace rec {
constexpr size_t kTotalLen = 0;
constexpr size_t kVersion = 4;
constexpr size_t kKind = 6;
constexpr size_t kStatus = 7;
constexpr size_t kTraceId = 8;
constexpr size_t kSpanId = 24;
constexpr size_t kParentId = 32;
constexpr size_t kStart = 40;
constexpr size_t kEnd = 48;
constexpr size_t kFlags = 56;
constexpr size_t kDroppedAttrs = 60;
constexpr size_t kDroppedEvents = 64;
constexpr size_t kDroppedLinks = 68;
// Reserved in the ABI (zero from outside); inside the agent, bits saying
// that start/end hold raw TSC readings the exporter must convert.
constexpr size_t kInternal = 72;
constexpr uint32_t kStartIsTsc = 1;
constexpr uint32_t kEndIsTsc = 2;
// Also internal: how many values were cut to a cap or limit (exported as the
// span attribute otelagent.truncated_values).
constexpr size_t kTruncated = 76;
constexpr size_t kHeader = OTELAGENT_RECORD_HEADER_SIZE;
constexpr size_t kEntryHeader = OTELAGENT_RECORD_ENTRY_HEADER_SIZE;
constexpr size_t kLinkFixed = 16 + 8 + 4;  // ids and flags before tracestate
static_assert(kInternal + 8 == kHeader);

// OTLP Span.flags bits above the W3C trace flags.
constexpr uint32_t kFlagHasIsRemote = 0x100;
constexpr uint32_t kFlagIsRemote = 0x200;
}  // namespace rec

// Zeroes a record header and sets its version (the span calls build records
// in place).
inline void record_header_init(uint8_t *b) {
  std::memset(b, 0, rec::kHeader);
  store_u16(b + rec::kVersion, OTELAGENT_RECORD_VERSION);
}

// One decoded entry; the views point into the record.
struct Entry {
  uint8_t tag;
  uint8_t type;
  std::string_view key;
  std::string_view value;
};

// Walks the entries of a record that has been validated.
class EntryReader {
 public:
  EntryReader(const uint8_t *rec, size_t len) : p_(rec + rec::kHeader), end_(rec + len) {}
  bool next(Entry *e) {
    if (p_ >= end_) return false;
    e->tag = p_[0];
    e->type = p_[1];
    uint16_t klen = load_u16(p_ + 2);
    uint32_t vlen = load_u32(p_ + 4);
    const char *k = reinterpret_cast<const char *>(p_ + rec::kEntryHeader);
    e->key = std::string_view(k, klen);
    e->value = std::string_view(k + klen, vlen);
    p_ += rec::kEntryHeader + klen + vlen;
    return true;
  }
  // The next entry's tag without consuming it, or 0 at the end.
  uint8_t peek_tag() const { return p_ < end_ ? p_[0] : 0; }

 private:
  const uint8_t *p_;
  const uint8_t *end_;
};

// A read-only view of a whole record.
struct RecordView {
  const uint8_t *data = nullptr;
  uint32_t len = 0;

  uint8_t kind() const { return data[rec::kKind]; }
  uint8_t status() const { return data[rec::kStatus]; }
  const uint8_t *trace_id() const { return data + rec::kTraceId; }
  const uint8_t *span_id() const { return data + rec::kSpanId; }
  const uint8_t *parent_id() const { return data + rec::kParentId; }
  bool has_parent() const;
  uint64_t start() const { return load_u64(data + rec::kStart); }
  uint64_t end() const { return load_u64(data + rec::kEnd); }
  uint32_t flags() const { return load_u32(data + rec::kFlags); }
  uint32_t dropped_attrs() const { return load_u32(data + rec::kDroppedAttrs); }
  uint32_t dropped_events() const { return load_u32(data + rec::kDroppedEvents); }
  uint32_t dropped_links() const { return load_u32(data + rec::kDroppedLinks); }
  EntryReader entries() const { return EntryReader(data, len); }
  // The value of the first entry with `tag` (NAME, SCOPE_*, ...), or empty.
  std::string_view find(uint8_t tag) const;
};

// Checks a record from outside (otelagent_record_span) completely: sizes,
// tags, value lengths by type, ids. Returns true when the exporter may read it.
bool record_validate(const uint8_t *data, size_t len);

// True when the n bytes at p are all zero (an invalid trace or span id).
bool all_zero(const uint8_t *p, size_t n);

}  // namespace otelagent
