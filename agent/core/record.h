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

// Offsets of the fixed header fields (format version 2).
namespace rec {
constexpr size_t kTotalLen = 0;
constexpr size_t kVersion = 4;
constexpr size_t kHeaderLen = 6;
constexpr size_t kKind = 8;
constexpr size_t kStatus = 9;
// A u16 reserved in the ABI (zero from outside); inside the agent, bits
// saying that start/end hold raw TSC readings the exporter must convert.
constexpr size_t kInternal = 10;
constexpr uint16_t kStartIsTsc = 1;
constexpr uint16_t kEndIsTsc = 2;
constexpr size_t kFlags = 12;
constexpr size_t kTraceId = 16;
constexpr size_t kSpanId = 32;
constexpr size_t kParentId = 40;
constexpr size_t kStart = 48;
constexpr size_t kEnd = 56;
constexpr size_t kDroppedAttrs = 64;
constexpr size_t kDroppedEvents = 68;
constexpr size_t kDroppedLinks = 72;
// A u32 also reserved in the ABI; inside the agent, how many values were cut
// to a cap or limit (exported as the span attribute otelagent.truncated_values).
constexpr size_t kTruncated = 76;
// The header this version writes; readers accept longer ones (header_len).
constexpr size_t kHeader = OTELAGENT_RECORD_HEADER_SIZE;
constexpr size_t kEntryHeader = OTELAGENT_RECORD_ENTRY_HEADER_SIZE;
constexpr size_t kLinkFixed = 16 + 8 + 4;  // ids and flags before tracestate
// Tags from here on are optional extensions, skipped by readers.
constexpr uint8_t kFirstExtensionTag = OTELAGENT_REC_FIRST_EXTENSION;
static_assert(kTruncated + 4 == kHeader);

// OTLP Span.flags bits above the W3C trace flags.
constexpr uint32_t kFlagHasIsRemote = 0x100;
constexpr uint32_t kFlagIsRemote = 0x200;
}  // namespace rec

// Zeroes a record header and sets its version (the span calls build records
// in place).
inline void record_header_init(uint8_t *b) {
  std::memset(b, 0, rec::kHeader);
  store_u16(b + rec::kVersion, OTELAGENT_RECORD_VERSION);
  store_u16(b + rec::kHeaderLen, rec::kHeader);
}

// Calls fn(std::string_view item) for each item of a STRING_ARRAY value (a
// sequence of u32 length + bytes); fn returns false to stop. The walk is
// bounded by the value itself: a length past its end stops it (false
// returned), so a value that was never validated can neither be read past
// nor loop (a u32 length near 2^32 must not wrap the offset).
template <typename Fn>
bool for_each_array_string(std::string_view v, Fn &&fn) {
  const auto *p = reinterpret_cast<const uint8_t *>(v.data());
  size_t off = 0;
  while (off < v.size()) {
    if (v.size() - off < 4) return false;
    const size_t n = load_u32(p + off);
    off += 4;
    if (n > v.size() - off) return false;
    if (!fn(v.substr(off, n))) return false;
    off += n;
  }
  return true;
}

// One decoded entry; the views point into the record.
struct Entry {
  uint8_t tag;
  uint8_t type;
  std::string_view key;
  std::string_view value;
};

// True when `e` has the shape its readers rely on: a known tag, a value type
// that tag allows, and the exact size of every fixed-size value (an EVENT's
// time, a LINK's ids and flags, a BOOL, an INT64...).
bool entry_shape_ok(const Entry &e);

// Walks the entries of a record within its `len` bytes. A record that passed
// record_validate once is not trusted blindly again (it has since been copied
// through a ring, repaired, cut): every entry is bounds-checked and
// shape-checked as it is read, and the walk ends at the first one that is
// not whole or not well-formed, so no reader ever looks past the record.
class EntryReader {
 public:
  // Entries start at the record's header_len; a header_len out of bounds
  // makes the record malformed (no entries, complete() false).
  EntryReader(const uint8_t *rec, size_t len);
  // The next entry, or false at the end or at a malformed entry. Extension
  // entries (tags from rec::kFirstExtensionTag) are skipped: to the reader
  // they are not there.
  bool next(Entry *e);
  // The next entry's tag without consuming it, or 0 where next() is false.
  uint8_t peek_tag() const {
    EntryReader ahead = *this;
    Entry e;
    return ahead.next(&e) ? e.tag : 0;
  }
  // After next() returned false: whether the walk ended exactly at the end
  // of the record rather than at a malformed entry.
  bool complete() const { return !malformed_; }

 private:
  const uint8_t *p_;
  const uint8_t *end_;
  bool malformed_ = false;
};

// A read-only view of a whole record. Header fields read as zero when the
// record is shorter than its header, so a view never reads past `len`.
struct RecordView {
  const uint8_t *data = nullptr;
  uint32_t len = 0;

  bool header_whole() const { return data != nullptr && len >= rec::kHeader; }
  uint8_t kind() const { return *field(rec::kKind); }
  uint8_t status() const { return *field(rec::kStatus); }
  const uint8_t *trace_id() const { return field(rec::kTraceId); }
  const uint8_t *span_id() const { return field(rec::kSpanId); }
  const uint8_t *parent_id() const { return field(rec::kParentId); }
  bool has_parent() const;
  uint64_t start() const { return load_u64(field(rec::kStart)); }
  uint64_t end() const { return load_u64(field(rec::kEnd)); }
  uint32_t flags() const { return load_u32(field(rec::kFlags)); }
  uint32_t dropped_attrs() const { return load_u32(field(rec::kDroppedAttrs)); }
  uint32_t dropped_events() const { return load_u32(field(rec::kDroppedEvents)); }
  uint32_t dropped_links() const { return load_u32(field(rec::kDroppedLinks)); }
  // Values cut on the way (the agent's internal count).
  uint32_t truncated() const { return load_u32(field(rec::kTruncated)); }
  EntryReader entries() const { return EntryReader(data, len); }
  // The value of the last entry with `tag` (NAME, SCOPE_*, ...), or empty:
  // when a text entry repeats, the last one counts (otelagent.h).
  std::string_view find(uint8_t tag) const;

 private:
  const uint8_t *field(size_t off) const;
};

// Checks a record from outside (otelagent_record_span) completely: sizes,
// tags, value lengths by type, ids. Returns true when the exporter may read it.
bool record_validate(const uint8_t *data, size_t len);

// True when the n bytes at p are all zero (an invalid trace or span id).
bool all_zero(const uint8_t *p, size_t n);

}  // namespace otelagent
