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

const uint8_t *RecordView::field(size_t off) const {
  static const uint8_t kZeroHeader[rec::kHeader] = {};
  return (header_whole() ? data : kZeroHeader) + off;
}

std::string_view RecordView::find(uint8_t tag) const {
  std::string_view last;
  EntryReader r = entries();
  Entry e;
  while (r.next(&e))
    if (e.tag == tag) last = e.value;
  return last;
}

EntryReader::EntryReader(const uint8_t *rec, size_t len) : p_(nullptr), end_(nullptr) {
  if (rec == nullptr || len < rec::kHeader) return;
  const size_t header = load_u16(rec + rec::kHeaderLen);
  if (header < rec::kHeader || header > len) {
    malformed_ = true;
    return;
  }
  p_ = rec + header;
  end_ = rec + len;
}

bool EntryReader::next(Entry *e) {
  while (p_ != end_) {
    const size_t left = static_cast<size_t>(end_ - p_);
    if (left < rec::kEntryHeader) break;
    const size_t klen = load_u16(p_ + 2);
    const size_t vlen = load_u32(p_ + 4);
    if (klen + vlen > left - rec::kEntryHeader) break;
    e->tag = p_[0];
    e->type = p_[1];
    const char *k = reinterpret_cast<const char *>(p_ + rec::kEntryHeader);
    e->key = std::string_view(k, klen);
    e->value = std::string_view(k + klen, vlen);
    if (e->tag >= rec::kFirstExtensionTag) {
      p_ += rec::kEntryHeader + klen + vlen;
      continue;
    }
    if (!entry_shape_ok(*e)) break;
    p_ += rec::kEntryHeader + klen + vlen;
    return true;
  }
  if (p_ == end_) return false;
  malformed_ = true;
  p_ = end_;
  return false;
}

namespace {

// Whether a STRING_ARRAY value is a whole sequence of (u32 length, bytes).
bool string_array_whole(std::string_view v) {
  return for_each_array_string(v, [](std::string_view) { return true; });
}

// The rules of otelagent.h beyond an entry's shape: which entries have keys,
// and which may follow which.
bool entry_valid(const Entry &e, uint8_t prev_group) {
  switch (e.tag) {
    case OTELAGENT_REC_NAME:
    case OTELAGENT_REC_SCOPE_NAME:
    case OTELAGENT_REC_SCOPE_VERSION:
    case OTELAGENT_REC_TRACESTATE:
    case OTELAGENT_REC_STATUS_MESSAGE:
    case OTELAGENT_REC_LINK:
      return e.key.empty();
    case OTELAGENT_REC_ATTR:
      return !e.key.empty();
    case OTELAGENT_REC_EVENT:
      return true;
    case OTELAGENT_REC_EVENT_ATTR:
      return prev_group == OTELAGENT_REC_EVENT && !e.key.empty();
    case OTELAGENT_REC_LINK_ATTR:
      return prev_group == OTELAGENT_REC_LINK && !e.key.empty();
    case OTELAGENT_REC_GROUP_DROPPED:
      return prev_group != 0 && e.key.empty();
  }
  return false;
}

bool value_fits_type(uint8_t type, size_t size) {
  switch (type) {
    case OTELAGENT_TYPE_STRING:
    case OTELAGENT_TYPE_BYTES:
    case OTELAGENT_TYPE_BOOL_ARRAY:
    case OTELAGENT_TYPE_STRING_ARRAY:
      return true;
    case OTELAGENT_TYPE_BOOL:
      return size == 1;
    case OTELAGENT_TYPE_INT64:
    case OTELAGENT_TYPE_DOUBLE:
      return size == 8;
    case OTELAGENT_TYPE_INT64_ARRAY:
    case OTELAGENT_TYPE_DOUBLE_ARRAY:
      return size % 8 == 0;
  }
  return false;
}

}  // namespace

bool entry_shape_ok(const Entry &e) {
  switch (e.tag) {
    case OTELAGENT_REC_NAME:
    case OTELAGENT_REC_SCOPE_NAME:
    case OTELAGENT_REC_SCOPE_VERSION:
    case OTELAGENT_REC_TRACESTATE:
    case OTELAGENT_REC_STATUS_MESSAGE:
      return e.type == OTELAGENT_TYPE_STRING;
    case OTELAGENT_REC_ATTR:
    case OTELAGENT_REC_EVENT_ATTR:
    case OTELAGENT_REC_LINK_ATTR:
      return value_fits_type(e.type, e.value.size());
    case OTELAGENT_REC_EVENT:
    case OTELAGENT_REC_GROUP_DROPPED:
      return e.type == OTELAGENT_TYPE_INT64 && e.value.size() == 8;
    case OTELAGENT_REC_LINK:
      return e.type == OTELAGENT_TYPE_BYTES && e.value.size() >= rec::kLinkFixed;
  }
  return false;
}

bool record_validate(const uint8_t *data, size_t len) {
  if (data == nullptr || len < rec::kHeader || len > OTELAGENT_RECORD_MAX) return false;
  if (load_u32(data + rec::kTotalLen) != len) return false;
  if (load_u16(data + rec::kVersion) != OTELAGENT_RECORD_VERSION) return false;
  if (data[rec::kKind] > OTELAGENT_KIND_CONSUMER) return false;
  if (data[rec::kStatus] > OTELAGENT_STATUS_ERROR) return false;
  if (load_u16(data + rec::kInternal) != 0 || load_u32(data + rec::kTruncated) != 0)
    return false;  // reserved
  if (all_zero(data + rec::kTraceId, 16) || all_zero(data + rec::kSpanId, 8)) return false;
  bool have_name = false;
  uint8_t group = 0;  // EVENT or LINK while their attributes may follow
  EntryReader it(data, len);
  Entry e;
  while (it.next(&e)) {
    if (!entry_valid(e, group)) return false;
    if (e.type == OTELAGENT_TYPE_STRING_ARRAY && !string_array_whole(e.value)) return false;
    if (e.tag == OTELAGENT_REC_NAME) have_name = true;
    if (e.tag == OTELAGENT_REC_EVENT || e.tag == OTELAGENT_REC_LINK)
      group = e.tag;
    else if (e.tag != OTELAGENT_REC_EVENT_ATTR && e.tag != OTELAGENT_REC_LINK_ATTR &&
             e.tag != OTELAGENT_REC_GROUP_DROPPED)
      group = 0;
  }
  return it.complete() && have_name;
}

}  // namespace otelagent
