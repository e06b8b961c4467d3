#include "host/span_ops.h"

#include <algorithm>
#include <cstring>

#include "core/clock.h"
#include "core/log.h"
#include "core/record.h"
#include "core/thread_state.h"
#include "core/utf8.h"
#include "host/sampler.h"
#include "propagation/propagation.h"
#include "runtime.h"

namespace otelagent {

namespace {

bool bad_str(const void *p, size_t len) {
  return p == nullptr && len != 0;
}

// The length of a caller's string: OTELAGENT_NTS means NUL-terminated, read
// no further than one byte past `max` (so a caller's cap check still sees
// "too long"). Returns false for a NULL pointer with a length.
inline bool str_len(const char *p, size_t len, size_t max, size_t *out) {
  if (__builtin_expect(len == OTELAGENT_NTS, 0)) {
    if (p == nullptr) return false;
    *out = strnlen(p, max + 1);
    return true;
  }
  *out = len;
  return !bad_str(p, len);
}

bool context_valid(const otelagent_span_context *c) {
  return c != nullptr && !all_zero(c->trace_id, 16) && !all_zero(c->span_id, 8);
}

// The slot of a live span, or nullptr with *rc = INVALID (not a handle) or
// ENDED (the span has ended; its slot may serve another span by now).
__attribute__((always_inline)) inline SpanSlot *live_slot(const otelagent_span *span, int *rc) {
  uint32_t seq;
  SpanSlot *s = span_slot_of(span, &seq);
  if (__builtin_expect(s == nullptr, 0)) {
    *rc = OTELAGENT_E_INVALID;
    return nullptr;
  }
  // Pairs with the release store that ended the span (when it was ended on
  // another thread and handed back, the hand-off orders it anyway).
  if (__builtin_expect(s->seq.load(std::memory_order_acquire) != seq, 0)) {
    *rc = OTELAGENT_E_ENDED;
    return nullptr;
  }
  *rc = OTELAGENT_OK;
  return s;
}

// Writes an entry header and key, returning where `vlen` value bytes go, or
// nullptr when the span has no room left. `klen` and `vlen` are within the
// caps, so the record's u16/u32 length fields cannot wrap.
uint8_t *reserve_entry(SpanSlot *s, uint8_t tag, uint8_t type, const char *key, size_t klen,
                       size_t vlen) {
  const size_t need = rec::kEntryHeader + klen + vlen;
  if (need > sizeof s->buf - s->len) return nullptr;
  uint8_t *p = s->buf + s->len;
  p[0] = tag;
  p[1] = type;
  store_u16(p + 2, static_cast<uint16_t>(klen));
  store_u32(p + 4, static_cast<uint32_t>(vlen));
  if (klen != 0) std::memcpy(p + rec::kEntryHeader, key, klen);
  s->len += static_cast<uint32_t>(need);
  return p + rec::kEntryHeader + klen;
}

bool put_string(SpanSlot *s, uint8_t tag, const char *v, size_t len) {
  uint8_t *p = reserve_entry(s, tag, OTELAGENT_TYPE_STRING, nullptr, 0, len);
  if (p == nullptr) return false;
  if (len != 0) std::memcpy(p, v, len);
  return true;
}

// Counts a value cut to an internal cap, in the statistics and in the span
// (exported as the attribute otelagent.truncated_values).
__attribute__((cold, noinline)) void note_truncation(SpanSlot *s) {
  if (ThreadState *st = this_thread_state()) st->truncated.add();
  store_u32(s->buf + rec::kTruncated, load_u32(s->buf + rec::kTruncated) + 1);
}

// Cut a string to the internal byte cap at a UTF-8 boundary.
size_t capped(SpanSlot *s, const char *p, size_t len, size_t cap) {
  if (__builtin_expect(len <= cap, 1)) return len;
  note_truncation(s);
  return utf8_cut(p, len, cap);
}

// Replaces the span's own NAME or STATUS_MESSAGE entry (at most one of each
// exists), so that setting it again takes no more room however often it is
// done. The new value is cut to the room there will be once the old entry is
// gone, so the span never ends up without one. Rare (a rename, an error
// status), so moving the span's bytes is fine.
__attribute__((noinline)) void replace_string(SpanSlot *s, uint8_t tag, const char *v, size_t len,
                                              size_t cap) {
  uint32_t off = rec::kHeader, old = 0, old_size = 0;
  while (off + rec::kEntryHeader <= s->len) {
    const uint8_t *p = s->buf + off;
    const uint32_t n = static_cast<uint32_t>(rec::kEntryHeader) + load_u16(p + 2) + load_u32(p + 4);
    if (p[0] == tag) {
      old = off;
      old_size = n;
      break;
    }
    off += n;
  }
  const size_t free_bytes = sizeof s->buf - s->len + old_size;
  if (free_bytes < rec::kEntryHeader) {  // a full span keeps what it has
    note_truncation(s);
    return;
  }
  const size_t room = free_bytes - rec::kEntryHeader;
  size_t n = capped(s, v, len, cap);
  if (n > room) {
    note_truncation(s);
    n = utf8_cut(v, n, room);
  }
  if (old_size != 0) {
    std::memmove(s->buf + old, s->buf + old + old_size, s->len - old - old_size);
    s->len -= old_size;
  }
  put_string(s, tag, v, n);
}

// Whether an attribute is well-formed: the one check of a caller's
// attribute, made before anything is written, whether the span records or not
// (so the status never depends on sampling). It reads no more of the caller's
// memory than put_attr will: keys and strings up to their caps, at most
// OTELAGENT_MAX_ITEMS strings of an array.
bool attr_valid(const otelagent_attr *a) {
  size_t n;
  if (a == nullptr || !str_len(a->key, a->key_len, OTELAGENT_MAX_KEY_BYTES, &n) || n == 0)
    return false;
  const auto &v = a->value;
  switch (a->type) {
    case OTELAGENT_TYPE_STRING:
    case OTELAGENT_TYPE_BYTES:
      return str_len(v.str.ptr, v.str.len, OTELAGENT_MAX_VALUE_BYTES, &n);
    case OTELAGENT_TYPE_BOOL:
    case OTELAGENT_TYPE_INT64:
    case OTELAGENT_TYPE_DOUBLE:
      return true;
    case OTELAGENT_TYPE_BOOL_ARRAY:
    case OTELAGENT_TYPE_INT64_ARRAY:
    case OTELAGENT_TYPE_DOUBLE_ARRAY:
      return !(v.array.items == nullptr && v.array.count != 0);
    case OTELAGENT_TYPE_STRING_ARRAY: {
      const auto *items = static_cast<const otelagent_str *>(v.array.items);
      if (items == nullptr) return v.array.count == 0;
      const size_t count = std::min<size_t>(v.array.count, OTELAGENT_MAX_ITEMS);
      for (size_t i = 0; i < count; ++i)
        if (!str_len(items[i].ptr, items[i].len, OTELAGENT_MAX_VALUE_BYTES, &n)) return false;
      return true;
    }
    default:
      return false;
  }
}

bool link_valid(const otelagent_link *l) {
  if (l == nullptr || !context_valid(l->context) || bad_str(l->tracestate.ptr, l->tracestate.len) ||
      (l->attrs == nullptr && l->attr_count != 0) || l->attr_count > OTELAGENT_MAX_ITEMS)
    return false;
  for (size_t i = 0; i < l->attr_count; ++i)
    if (!attr_valid(&l->attrs[i])) return false;
  return true;
}

// 1: written; 0: no room or over the count (caller counts it dropped);
// -1: the attribute itself is invalid.
int put_attr(SpanSlot *s, uint8_t tag, const otelagent_attr *a) {
  size_t key_len;
  if (!str_len(a->key, a->key_len, OTELAGENT_MAX_KEY_BYTES, &key_len) || key_len == 0) return -1;
  const size_t klen = capped(s, a->key, key_len, OTELAGENT_MAX_KEY_BYTES);
  const auto &v = a->value;
  uint8_t *p;
  switch (a->type) {
    case OTELAGENT_TYPE_STRING:
    case OTELAGENT_TYPE_BYTES: {
      size_t len;
      if (!str_len(v.str.ptr, v.str.len, OTELAGENT_MAX_VALUE_BYTES, &len)) return -1;
      size_t n = a->type == OTELAGENT_TYPE_STRING
                     ? capped(s, v.str.ptr, len, OTELAGENT_MAX_VALUE_BYTES)
                     : std::min<size_t>(len, OTELAGENT_MAX_VALUE_BYTES);
      if ((p = reserve_entry(s, tag, static_cast<uint8_t>(a->type), a->key, klen, n)) == nullptr)
        return 0;
      if (n != 0) std::memcpy(p, v.str.ptr, n);
      return 1;
    }
    case OTELAGENT_TYPE_BOOL:
      if ((p = reserve_entry(s, tag, OTELAGENT_TYPE_BOOL, a->key, klen, 1)) == nullptr) return 0;
      *p = v.boolean != 0;
      return 1;
    case OTELAGENT_TYPE_INT64:
    case OTELAGENT_TYPE_DOUBLE:
      if ((p = reserve_entry(s, tag, static_cast<uint8_t>(a->type), a->key, klen, 8)) == nullptr)
        return 0;
      std::memcpy(p, &v.i64, 8);
      return 1;
    case OTELAGENT_TYPE_BOOL_ARRAY:
    case OTELAGENT_TYPE_INT64_ARRAY:
    case OTELAGENT_TYPE_DOUBLE_ARRAY: {
      if (v.array.items == nullptr && v.array.count != 0) return -1;
      const size_t item = a->type == OTELAGENT_TYPE_BOOL_ARRAY ? 1 : 8;
      size_t count = v.array.count;
      // Compared by division: count * item may not fit in size_t.
      if (count > OTELAGENT_MAX_VALUE_BYTES / item) {
        count = OTELAGENT_MAX_VALUE_BYTES / item;
        note_truncation(s);
      }
      if ((p = reserve_entry(s, tag, static_cast<uint8_t>(a->type), a->key, klen, count * item)) ==
          nullptr)
        return 0;
      if (item == 1) {
        const auto *b = static_cast<const uint8_t *>(v.array.items);
        for (size_t i = 0; i < count; ++i) p[i] = b[i] != 0;
      } else if (count != 0) {
        std::memcpy(p, v.array.items, count * 8);
      }
      return 1;
    }
    case OTELAGENT_TYPE_STRING_ARRAY: {
      const auto *items = static_cast<const otelagent_str *>(v.array.items);
      if (items == nullptr && v.array.count != 0) return -1;
      // Whole items up to the value cap (the first one is cut when alone it
      // is too long). Each length is resolved once and bounded by the cap
      // before any arithmetic, so no sum can overflow.
      constexpr size_t kCap = OTELAGENT_MAX_VALUE_BYTES;
      uint32_t lens[OTELAGENT_MAX_VALUE_BYTES / 4];
      size_t total = 0, count = 0;
      for (; count < v.array.count; ++count) {
        size_t n;
        if (!str_len(items[count].ptr, items[count].len, kCap, &n)) return -1;
        if (count == kCap / 4 || total + 4 > kCap || n > kCap - 4 - total) {
          note_truncation(s);
          if (count == 0) {
            lens[0] = static_cast<uint32_t>(utf8_cut(items[0].ptr, n, kCap - 4));
            total = 4 + lens[0];
            count = 1;
          }
          break;
        }
        lens[count] = static_cast<uint32_t>(n);
        total += 4 + n;
      }
      if ((p = reserve_entry(s, tag, OTELAGENT_TYPE_STRING_ARRAY, a->key, klen, total)) == nullptr)
        return 0;
      size_t off = 0;
      for (size_t i = 0; i < count; ++i) {
        store_u32(p + off, lens[i]);
        if (lens[i] != 0) std::memcpy(p + off + 4, items[i].ptr, lens[i]);
        off += 4 + lens[i];
      }
      return 1;
    }
    default:
      return -1;
  }
}

void bump(uint8_t *field) {
  store_u32(field, load_u32(field) + 1);
}

// Adds the attributes of the EVENT or LINK just written, then its dropped
// count when there is one.
int put_group_attrs(SpanSlot *s, uint8_t tag, const otelagent_attr *attrs, size_t count,
                    uint32_t limit) {
  if (attrs == nullptr && count != 0) return OTELAGENT_E_INVALID;
  int rc = OTELAGENT_OK;
  int64_t dropped = 0;
  for (size_t i = 0; i < count; ++i) {
    if (i >= limit) {
      dropped += static_cast<int64_t>(count - i);
      break;
    }
    int r = put_attr(s, tag, &attrs[i]);
    if (r < 0) rc = OTELAGENT_E_INVALID;
    if (r == 0) ++dropped;
  }
  if (dropped != 0) {
    uint8_t *p = reserve_entry(s, OTELAGENT_REC_GROUP_DROPPED, OTELAGENT_TYPE_INT64, nullptr, 0, 8);
    if (p != nullptr) std::memcpy(p, &dropped, 8);
  }
  return rc;
}

// The length of a caller's tracestate, or 0 when it is to be dropped: over
// the W3C maximum, or not a valid list (then it must not be passed on). Only
// spans with a tracestate (remote parents, mostly) pay for the check.
size_t tracestate_len(const otelagent_str &ts) {
  size_t n;
  if (!str_len(ts.ptr, ts.len, OTELAGENT_TRACESTATE_MAX, &n) || n == 0 ||
      n > OTELAGENT_TRACESTATE_MAX || !tracestate_valid(std::string_view(ts.ptr, n)))
    return 0;
  return n;
}

// The link was checked by link_valid.
void put_link(SpanSlot *s, const Limits &lim, const otelagent_link *l) {
  const otelagent_span_context *c = l->context;
  if (s->links >= lim.link_count) {
    bump(s->buf + rec::kDroppedLinks);
    return;
  }
  const size_t ts = tracestate_len(l->tracestate);
  uint8_t *p =
      reserve_entry(s, OTELAGENT_REC_LINK, OTELAGENT_TYPE_BYTES, nullptr, 0, rec::kLinkFixed + ts);
  if (p == nullptr) {
    bump(s->buf + rec::kDroppedLinks);
    return;
  }
  std::memcpy(p, c->trace_id, 16);
  std::memcpy(p + 16, c->span_id, 8);
  store_u32(p + 24,
            c->trace_flags | rec::kFlagHasIsRemote | (c->is_remote ? rec::kFlagIsRemote : 0));
  if (ts != 0) std::memcpy(p + rec::kLinkFixed, l->tracestate.ptr, ts);
  ++s->links;
  put_group_attrs(s, OTELAGENT_REC_LINK_ATTR, l->attrs, l->attr_count, lim.link_attr_count);
}

int add_attr(SpanSlot *s, const Limits &lim, const otelagent_attr *a) {
  if (a == nullptr) return OTELAGENT_E_INVALID;
  // put_attr checks what it writes; an attribute it does not write whole (one
  // over the count, a string array cut at the cap) is checked here, so the
  // status never depends on where the caps fall.
  if (__builtin_expect(s->attrs >= lim.attr_count || a->type == OTELAGENT_TYPE_STRING_ARRAY, 0)) {
    if (!attr_valid(a)) return OTELAGENT_E_INVALID;
    if (s->attrs >= lim.attr_count) {
      bump(s->buf + rec::kDroppedAttrs);
      return OTELAGENT_OK;
    }
  }
  int r = put_attr(s, OTELAGENT_REC_ATTR, a);
  if (r < 0) return OTELAGENT_E_INVALID;
  if (r == 0) {
    bump(s->buf + rec::kDroppedAttrs);
  } else {
    ++s->attrs;
  }
  return OTELAGENT_OK;
}

// Shared checks of the span setters: a live, recording span. Returns
// nullptr with *rc set when there is nothing to do. (After shutdown a setter
// still writes into its own span, which span_end then drops and counts.)
SpanSlot *writable(otelagent_span *span, int *rc) {
  SpanSlot *s = live_slot(span, rc);
  return s != nullptr && s->recording ? s : nullptr;
}

// Ends the use of a slot: the handle that named it becomes stale.
void release_slot(SpanSlot *s, ThreadState *st) {
  ThreadState *home = s->home;
  const uint16_t index = s->index;
  // Pairs with the acquire load in acquire_slot (our writes to the slot are
  // done before its owner reuses it) and in live_slot.
  s->seq.store(s->seq.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  if (home == st && index < home->free_hint) home->free_hint = index;
}

}  // namespace

int span_start(const char *name, size_t name_len, const otelagent_span_options *opts,
               otelagent_span **out) {
  if (out == nullptr) return OTELAGENT_E_INVALID;
  *out = nullptr;
  if (!str_len(name, name_len, OTELAGENT_MAX_VALUE_BYTES, &name_len)) return OTELAGENT_E_INVALID;
  const Runtime *rt = runtime();
  if (rt == nullptr) return OTELAGENT_E_NOT_STARTED;
  if (rt->disabled) return OTELAGENT_E_DISABLED;

  otelagent_span_options o{};
  if (opts != nullptr) {
    if (opts->struct_size < offsetof(otelagent_span_options, kind) + sizeof opts->kind)
      return OTELAGENT_E_INVALID;
    std::memcpy(&o, opts, std::min<size_t>(opts->struct_size, sizeof o));
  }
  size_t scope_len = 0, scope_version_len = 0;
  if (o.kind < 0 || o.kind > OTELAGENT_KIND_CONSUMER ||
      !str_len(o.scope_name.ptr, o.scope_name.len, OTELAGENT_MAX_KEY_BYTES, &scope_len) ||
      !str_len(o.scope_version.ptr, o.scope_version.len, OTELAGENT_MAX_KEY_BYTES,
               &scope_version_len) ||
      bad_str(o.parent_tracestate.ptr, o.parent_tracestate.len) ||
      (o.links == nullptr && o.link_count) || (o.attrs == nullptr && o.attr_count))
    return OTELAGENT_E_INVALID;
  if (o.link_count > OTELAGENT_MAX_ITEMS || o.attr_count > OTELAGENT_MAX_ITEMS)
    return OTELAGENT_E_TOO_LONG;
  // Links and initial attributes are checked before anything is started, so
  // that the status and the handle agree (INVALID: no span).
  for (size_t i = 0; i < o.link_count; ++i)
    if (!link_valid(&o.links[i])) return OTELAGENT_E_INVALID;
  for (size_t i = 0; i < o.attr_count; ++i)
    if (!attr_valid(&o.attrs[i])) return OTELAGENT_E_INVALID;

  ThreadState *st = this_thread_state();
  if (st == nullptr) return OTELAGENT_E_INTERNAL;
  SpanSlot *s = st->acquire_slot();
  if (s == nullptr) {
    st->span_limit.add();
    log_warn_once(Once::kSpanLimit,
                  "a thread holds %d open spans; new spans on it are not started (counted in "
                  "spans_dropped_span_limit)",
                  OTELAGENT_MAX_OPEN_SPANS_PER_THREAD);
    return OTELAGENT_E_SPAN_LIMIT;
  }
  st->started.add();

  const otelagent_span_context *parent = context_valid(o.parent) ? o.parent : nullptr;
  uint8_t *b = s->buf;
  record_header_init(b);
  b[rec::kKind] = static_cast<uint8_t>(o.kind == 0 ? OTELAGENT_KIND_INTERNAL : o.kind);
  uint64_t start = o.start_time_unix_nano;
  if (start == 0) {
    if (rt->use_tsc) {
      start = read_tsc();
      store_u16(b + rec::kInternal, rec::kStartIsTsc);
    } else {
      start = now_unix_nano();
    }
  }
  store_u64(b + rec::kStart, start);
  uint32_t flags;
  if (parent != nullptr) {
    std::memcpy(b + rec::kTraceId, parent->trace_id, 16);
    std::memcpy(b + rec::kParentId, parent->span_id, 8);
    flags = parent->trace_flags & ~1u;
    flags |= rec::kFlagHasIsRemote | (parent->is_remote ? rec::kFlagIsRemote : 0);
  } else {
    st->ids.trace_id(b + rec::kTraceId,
                     rt->cfg.xray_ids ? static_cast<uint32_t>(now_unix_nano() / 1000000000u) : 0);
    flags = rec::kFlagHasIsRemote;
  }
  st->ids.span_id(b + rec::kSpanId);
  const bool sampled = should_sample(*rt, parent, b + rec::kTraceId);
  store_u32(b + rec::kFlags, flags | (sampled ? 1u : 0u));
  s->len = rec::kHeader;
  s->recording = sampled;
  s->use_tsc = rt->use_tsc;
  s->limits = &rt->cfg.limits;
  s->status_final = 0;
  s->attrs = s->events = s->links = 0;
  // The tracestate is kept even when not recording: the context needs it.
  if (parent != nullptr) {
    const size_t ts = tracestate_len(o.parent_tracestate);
    if (ts != 0) put_string(s, OTELAGENT_REC_TRACESTATE, o.parent_tracestate.ptr, ts);
  }
  *out = span_handle(st, s, s->seq.load(std::memory_order_relaxed));
  if (!sampled) {
    st->sampled_out.add();
    return OTELAGENT_OK;
  }

  put_string(s, OTELAGENT_REC_NAME, name, capped(s, name, name_len, OTELAGENT_MAX_VALUE_BYTES));
  if (scope_len != 0)
    put_string(s, OTELAGENT_REC_SCOPE_NAME, o.scope_name.ptr,
               capped(s, o.scope_name.ptr, scope_len, OTELAGENT_MAX_KEY_BYTES));
  if (scope_version_len != 0)
    put_string(s, OTELAGENT_REC_SCOPE_VERSION, o.scope_version.ptr,
               capped(s, o.scope_version.ptr, scope_version_len, OTELAGENT_MAX_KEY_BYTES));
  const Limits &lim = rt->cfg.limits;
  for (size_t i = 0; i < o.link_count; ++i) put_link(s, lim, &o.links[i]);
  for (size_t i = 0; i < o.attr_count; ++i) add_attr(s, lim, &o.attrs[i]);
  return OTELAGENT_OK;
}

int span_set_attr(otelagent_span *span, const otelagent_attr *attr) {
  int rc;
  SpanSlot *s = writable(span, &rc);
  if (s == nullptr) return rc == OTELAGENT_OK && !attr_valid(attr) ? OTELAGENT_E_INVALID : rc;
  return add_attr(s, *s->limits, attr);
}

int span_add_event(otelagent_span *span, const char *name, size_t name_len, uint64_t time,
                   const otelagent_attr *attrs, size_t attr_count) {
  if (!str_len(name, name_len, OTELAGENT_MAX_KEY_BYTES, &name_len) ||
      (attrs == nullptr && attr_count != 0))
    return OTELAGENT_E_INVALID;
  if (attr_count > OTELAGENT_MAX_ITEMS) return OTELAGENT_E_TOO_LONG;
  // All or nothing: an event with an invalid attribute is not added.
  for (size_t i = 0; i < attr_count; ++i)
    if (!attr_valid(&attrs[i])) return OTELAGENT_E_INVALID;
  int rc;
  SpanSlot *s = writable(span, &rc);
  if (s == nullptr) return rc;
  const Limits &lim = *s->limits;
  if (s->events >= lim.event_count) {
    bump(s->buf + rec::kDroppedEvents);
    return OTELAGENT_OK;
  }
  const size_t n = capped(s, name, name_len, OTELAGENT_MAX_KEY_BYTES);
  uint8_t *p = reserve_entry(s, OTELAGENT_REC_EVENT, OTELAGENT_TYPE_INT64, name, n, 8);
  if (p == nullptr) {
    bump(s->buf + rec::kDroppedEvents);
    return OTELAGENT_OK;
  }
  store_u64(p, time != 0 ? time : now_unix_nano());
  ++s->events;
  return put_group_attrs(s, OTELAGENT_REC_EVENT_ATTR, attrs, attr_count, lim.event_attr_count);
}

int span_set_status(otelagent_span *span, int32_t code, const char *msg, size_t msg_len) {
  if (code < OTELAGENT_STATUS_UNSET || code > OTELAGENT_STATUS_ERROR ||
      !str_len(msg, msg_len, OTELAGENT_MAX_VALUE_BYTES, &msg_len))
    return OTELAGENT_E_INVALID;
  int rc;
  SpanSlot *s = writable(span, &rc);
  if (s == nullptr || s->status_final || code == OTELAGENT_STATUS_UNSET) return rc;
  s->buf[rec::kStatus] = static_cast<uint8_t>(code);
  if (code == OTELAGENT_STATUS_OK) s->status_final = 1;
  if (code == OTELAGENT_STATUS_ERROR) {
    // The last description set is the one; an earlier one is replaced.
    replace_string(s, OTELAGENT_REC_STATUS_MESSAGE, msg, msg_len, OTELAGENT_MAX_VALUE_BYTES);
  }
  return OTELAGENT_OK;
}

int span_set_name(otelagent_span *span, const char *name, size_t name_len) {
  if (!str_len(name, name_len, OTELAGENT_MAX_VALUE_BYTES, &name_len)) return OTELAGENT_E_INVALID;
  int rc;
  SpanSlot *s = writable(span, &rc);
  if (s == nullptr) return rc;
  replace_string(s, OTELAGENT_REC_NAME, name, name_len, OTELAGENT_MAX_VALUE_BYTES);
  return OTELAGENT_OK;
}

int span_get_context(const otelagent_span *span, otelagent_span_context *out) {
  if (out == nullptr) return OTELAGENT_E_INVALID;
  int rc;
  const SpanSlot *s = live_slot(span, &rc);
  if (s == nullptr) return rc;
  std::memset(out, 0, sizeof *out);
  std::memcpy(out->trace_id, s->buf + rec::kTraceId, 16);
  std::memcpy(out->span_id, s->buf + rec::kSpanId, 8);
  out->trace_flags = static_cast<uint8_t>(load_u32(s->buf + rec::kFlags) & 0xFF);
  return OTELAGENT_OK;
}

int span_get_tracestate(const otelagent_span *span, char *buf, size_t cap, size_t *written) {
  if (written == nullptr || (buf == nullptr && cap != 0)) return OTELAGENT_E_INVALID;
  int rc;
  const SpanSlot *s = live_slot(span, &rc);
  if (s == nullptr) return rc;
  const std::string_view ts = RecordView{s->buf, s->len}.find(OTELAGENT_REC_TRACESTATE);
  *written = ts.size();
  if (cap < ts.size()) return OTELAGENT_E_NO_SPACE;
  if (!ts.empty()) std::memcpy(buf, ts.data(), ts.size());
  if (cap > ts.size()) buf[ts.size()] = '\0';
  return OTELAGENT_OK;
}

int span_is_recording(const otelagent_span *span) {
  int rc;
  const SpanSlot *s = live_slot(span, &rc);
  return s != nullptr && s->recording;
}

namespace {
// Queues a finished record on the calling thread's ring.
int enqueue(ThreadState *st, const uint8_t *data, uint32_t len) {
  if (__builtin_expect(!exporter_live(), 0)) exporter_ensure_started();
  if (__builtin_expect(!st->ring.push(data, len), 0)) {
    st->ring_full.add();
    log_warn_once(Once::kRingFull,
                  "a span ring is full; spans are being dropped (counted in "
                  "spans_dropped_ring_full; see OTELAGENT_RING_BYTES)");
    exporter_wake();
    return OTELAGENT_E_RING_FULL;
  }
  st->queued.add();
  // Wake the exporter once a batch's worth of spans, or a quarter of the
  // ring, has been queued since the last wake-up: small rings never wait
  // for a whole batch.
  st->since_wake_bytes += len;
  const Runtime *rt = runtime();
  if (__builtin_expect(++st->since_wake >= (rt ? rt->wake_every : 1) ||
                           st->since_wake_bytes >= st->ring.capacity() / 4,
                       0)) {
    st->since_wake = 0;
    st->since_wake_bytes = 0;
    exporter_wake();
  }
  return OTELAGENT_OK;
}
}  // namespace

int span_end(otelagent_span *span, uint64_t end_time) {
  int rc;
  SpanSlot *s = live_slot(span, &rc);
  if (s == nullptr) return rc;
  // After shutdown no exporter will drain what is queued: the span is
  // dropped and counted, and the handle is released all the same.
  if (__builtin_expect(runtime() == nullptr, 0)) {
    if (s->recording) orphan_counts().after_shutdown.fetch_add(1, std::memory_order_relaxed);
    ThreadState *st = current_thread_state();
    if (st != nullptr)
      st->ended.add();
    else
      orphan_counts().ended_unregistered.fetch_add(1, std::memory_order_relaxed);
    release_slot(s, st);
    return OTELAGENT_E_NOT_STARTED;
  }
  // Only a recording span needs a ring (and so a registered thread).
  ThreadState *st = s->recording ? this_thread_state() : current_thread_state();
  if (s->recording) {
    if (end_time != 0) {
      store_u64(s->buf + rec::kEnd, end_time);
    } else {
      const bool tsc = s->use_tsc;
      store_u64(s->buf + rec::kEnd, tsc ? read_tsc() : now_unix_nano());
      if (tsc)
        store_u16(s->buf + rec::kInternal, load_u16(s->buf + rec::kInternal) | rec::kEndIsTsc);
    }
    store_u32(s->buf + rec::kTotalLen, s->len);
    if (st != nullptr)
      rc = enqueue(st, s->buf, s->len);
    else
      rc = OTELAGENT_E_INTERNAL;  // counted by this_thread_state()
  }
  if (st != nullptr)
    st->ended.add();
  else if (!s->recording)
    orphan_counts().ended_unregistered.fetch_add(1, std::memory_order_relaxed);
  release_slot(s, st);
  return rc;
}

int span_context_new(const otelagent_span_context *parent, otelagent_span_context *out) {
  if (out == nullptr) return OTELAGENT_E_INVALID;
  const Runtime *rt = runtime();
  if (rt == nullptr) return OTELAGENT_E_NOT_STARTED;
  if (rt->disabled) return OTELAGENT_E_DISABLED;
  ThreadState *st = this_thread_state();
  if (st == nullptr) return OTELAGENT_E_INTERNAL;
  const bool has_parent = context_valid(parent);
  otelagent_span_context c;
  std::memset(&c, 0, sizeof c);
  if (has_parent) {
    std::memcpy(c.trace_id, parent->trace_id, 16);
    c.trace_flags = parent->trace_flags & ~1u;
  } else {
    st->ids.trace_id(c.trace_id,
                     rt->cfg.xray_ids ? static_cast<uint32_t>(now_unix_nano() / 1000000000u) : 0);
  }
  st->ids.span_id(c.span_id);
  if (should_sample(*rt, has_parent ? parent : nullptr, c.trace_id))
    c.trace_flags |= 1;
  else
    st->sampled_out.add();
  *out = c;
  return OTELAGENT_OK;
}

int record_span(const void *record, size_t len) {
  const Runtime *rt = runtime();
  if (rt == nullptr) return OTELAGENT_E_NOT_STARTED;
  if (rt->disabled) return OTELAGENT_E_DISABLED;
  const auto *data = static_cast<const uint8_t *>(record);
  if (!record_validate(data, len)) return OTELAGENT_E_BAD_RECORD;
  ThreadState *st = this_thread_state();
  if (st == nullptr) return OTELAGENT_E_INTERNAL;
  st->started.add();
  st->ended.add();
  st->recorded.add();
  if ((load_u32(data + rec::kFlags) & 1u) == 0) {
    st->sampled_out.add();  // ended, and accounted for: never exported
    return OTELAGENT_OK;
  }
  return enqueue(st, data, static_cast<uint32_t>(len));
}

}  // namespace otelagent
