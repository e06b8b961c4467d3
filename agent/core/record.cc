#include "record.h"

namespace otelagent {

bool all_zero(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (p[i] != 0) return false;
  return true;
}

bool RecordView::has_parent() const {
  return !all_zero(parent_id(), 8);
}

std::string_view RecordView::find(uint8_t tag) const {
  EntryReader r = entries();
  Entry e;
  while (r.next(&e))
    if (e.tag == tag) return e.value;
  return {};
}

namespace {

bool value_fits_type(uint8_t type, std::string_view v) {
  switch (type) {
    case OTELAGENT_TYPE_STRING:
    case OTELAGENT_TYPE_BYTES:
    case OTELAGENT_TYPE_BOOL_ARRAY:
      return true;
    case OTELAGENT_TYPE_BOOL:
      return v.size() == 1;
    case OTELAGENT_TYPE_INT64:
    case OTELAGENT_TYPE_DOUBLE:
      return v.size() == 8;
    case OTELAGENT_TYPE_INT64_ARRAY:
    case OTELAGENT_TYPE_DOUBLE_ARRAY:
      return v.size() % 8 == 0;
    case OTELAGENT_TYPE_STRING_ARRAY: {
      const auto *p = reinterpret_cast<const uint8_t *>(v.data());
      size_t off = 0;
      while (off < v.size()) {
        if (v.size() - off < 4) return false;
        uint32_t n = load_u32(p + off);
        off += 4;
        if (n > v.size() - off) return false;
        off += n;
      }
      return true;
    }
    default:
      return false;
  }
}

bool entry_valid(const Entry &e, uint8_t prev_group) {
  switch (e.tag) {
    case OTELAGENT_REC_NAME:
    case OTELAGENT_REC_SCOPE_NAME:
    case OTELAGENT_REC_SCOPE_VERSION:
    case OTELAGENT_REC_TRACESTATE:
    case OTELAGENT_REC_STATUS_MESSAGE:
      return e.type == OTELAGENT_TYPE_STRING && e.key.empty();
    case OTELAGENT_REC_ATTR:
      return !e.key.empty() && value_fits_type(e.type, e.value);
    case OTELAGENT_REC_EVENT:
      return e.type == OTELAGENT_TYPE_INT64 && e.value.size() == 8;
    case OTELAGENT_REC_EVENT_ATTR:
      return prev_group == OTELAGENT_REC_EVENT && !e.key.empty() &&
             value_fits_type(e.type, e.value);
    case OTELAGENT_REC_GROUP_DROPPED:
      return prev_group != 0 && e.key.empty() && e.type == OTELAGENT_TYPE_INT64 &&
             e.value.size() == 8;
    case OTELAGENT_REC_LINK:
      return e.type == OTELAGENT_TYPE_BYTES && e.value.size() >= rec::kLinkFixed;
    case OTELAGENT_REC_LINK_ATTR:
      return prev_group == OTELAGENT_REC_LINK && !e.key.empty() && value_fits_type(e.type, e.value);
    default:
      return false;
  }
}

}  // namespace

bool record_validate(const uint8_t *data, size_t len) {
  if (data == nullptr || len < rec::kHeader || len > OTELAGENT_RECORD_MAX) return false;
  if (load_u32(data + rec::kTotalLen) != len) return false;
  if (load_u16(data + rec::kVersion) != OTELAGENT_RECORD_VERSION) return false;
  if (data[rec::kKind] > OTELAGENT_KIND_CONSUMER) return false;
  if (data[rec::kStatus] > OTELAGENT_STATUS_ERROR) return false;
  if (load_u64(data + rec::kInternal) != 0) return false;  // reserved
  if (all_zero(data + rec::kTraceId, 16) || all_zero(data + rec::kSpanId, 8)) return false;
  // Walk the entries with explicit bounds checks before trusting them.
  size_t off = rec::kHeader;
  bool have_name = false;
  uint8_t group = 0;  // EVENT or LINK while their attributes may follow
  while (off < len) {
    if (len - off < rec::kEntryHeader) return false;
    size_t klen = load_u16(data + off + 2);
    size_t vlen = load_u32(data + off + 4);
    if (klen + vlen > len - off - rec::kEntryHeader) return false;
    Entry e;
    e.tag = data[off];
    e.type = data[off + 1];
    const char *k = reinterpret_cast<const char *>(data + off + rec::kEntryHeader);
    e.key = std::string_view(k, klen);
    e.value = std::string_view(k + klen, vlen);
    if (!entry_valid(e, group)) return false;
    if (e.tag == OTELAGENT_REC_NAME) have_name = true;
    if (e.tag == OTELAGENT_REC_EVENT || e.tag == OTELAGENT_REC_LINK)
      group = e.tag;
    else if (e.tag != OTELAGENT_REC_EVENT_ATTR && e.tag != OTELAGENT_REC_LINK_ATTR &&
             e.tag != OTELAGENT_REC_GROUP_DROPPED)
      group = 0;
    off += rec::kEntryHeader + klen + vlen;
  }
  return have_name;
}

}  // namespace otelagent
