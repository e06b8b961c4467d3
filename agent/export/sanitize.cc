#include "export/sanitize.h"

#include <cassert>
#include <cstring>
#include <vector>

#include "core/utf8.h"

namespace otelagent {

namespace {

// The caps of otelagent.h, applied to what a record passed whole may carry as
// the span calls apply them to what they write. Cutting after the repair
// (which can triple a string's length) is what keeps every length written
// below within its field: a key within its u16.
constexpr size_t kKeyCap = OTELAGENT_MAX_KEY_BYTES;
constexpr size_t kValueCap = OTELAGENT_MAX_VALUE_BYTES;
constexpr size_t kTraceStateCap = OTELAGENT_TRACESTATE_MAX;
static_assert(kKeyCap <= UINT16_MAX, "a key's length is a u16");

bool is_text(uint8_t tag) {
  return tag >= OTELAGENT_REC_NAME && tag <= OTELAGENT_REC_STATUS_MESSAGE;
}
bool is_attr(uint8_t tag) {
  return tag == OTELAGENT_REC_ATTR || tag == OTELAGENT_REC_EVENT_ATTR ||
         tag == OTELAGENT_REC_LINK_ATTR;
}

// Byte cap of a text entry (the span calls cap scope names like keys).
size_t text_cap(uint8_t tag) {
  return tag == OTELAGENT_REC_SCOPE_NAME || tag == OTELAGENT_REC_SCOPE_VERSION ? kKeyCap
                                                                               : kValueCap;
}

// A W3C tracestate is printable ASCII (tabs may appear as optional white
// space). Anything else is not a tracestate a receiver could use, and invalid
// UTF-8 would make a strict receiver reject the whole batch; repairing it
// would not make it a tracestate, so such a value is dropped.
bool tracestate_ok(std::string_view s) {
  if (s.size() > kTraceStateCap) return false;
  for (unsigned char c : s)
    if ((c < 0x20 && c != '\t') || c > 0x7E) return false;
  return true;
}

std::string_view link_tracestate(const Entry &link) {
  return link.value.substr(rec::kLinkFixed);
}

template <typename Fn>
bool all_strings(std::string_view v, Fn &&fn) {
  return for_each_array_string(v, fn);
}

bool value_clean(const Entry &e, uint32_t max_chars) {
  if (e.value.size() > kValueCap) return false;
  auto ok = [&](std::string_view s) {
    return utf8_valid(s) && (s.size() <= max_chars || utf8_length(s) <= max_chars);
  };
  if (e.type == OTELAGENT_TYPE_STRING) return ok(e.value);
  if (e.type == OTELAGENT_TYPE_STRING_ARRAY) return all_strings(e.value, ok);
  return true;
}

std::string repaired(std::string_view s) {
  std::string r;
  if (utf8_valid(s))
    r.assign(s);
  else
    utf8_repair(s, &r);
  return r;
}

// An attribute and its key as it will be written (repaired, cut to the cap).
struct Attr {
  Entry e;
  std::string key;
  bool key_cut = false;
};

struct Group {
  Entry head;
  std::vector<Attr> attrs;
  int64_t dropped = 0;
};

// Appends `e`'s attribute to `attrs` unless over `limit`; a repeated key
// replaces the earlier value in place. Keys are compared as they will be
// written: two keys that differ only in invalid bytes, or beyond the key cap,
// are one key once repaired and cut.
void add_attr(std::vector<Attr> *attrs, const Entry &e, uint32_t limit, int64_t *dropped) {
  Attr a{e, repaired(e.key)};
  const size_t keep = utf8_cut(a.key.data(), a.key.size(), kKeyCap);
  a.key_cut = keep != a.key.size();
  a.key.resize(keep);
  for (auto &old : *attrs)
    if (old.key == a.key) {
      old = std::move(a);
      return;
    }
  if (attrs->size() >= limit) {
    ++*dropped;
    return;
  }
  attrs->push_back(std::move(a));
}

class Writer {
 public:
  Writer(std::string *out, uint32_t max_chars) : out_(out), max_chars_(max_chars) {}

  // Writes `e` repaired and cut to its caps.
  void entry(const Entry &e) { write(e, text(e.key, kKeyCap, false), false); }
  // Writes an attribute, its value also cut to the limit in characters.
  void attr(const Attr &a) {
    if (a.key_cut) ++truncated_;
    write(a.e, a.key, true);
  }

  void dropped(int64_t n) {
    if (n == 0) return;
    put(OTELAGENT_REC_GROUP_DROPPED, OTELAGENT_TYPE_INT64, {},
        std::string_view(reinterpret_cast<const char *>(&n), 8));
  }

  uint32_t truncated() const { return truncated_; }

 private:
  void write(const Entry &e, std::string_view k, bool limited) {
    std::string v;
    if (e.tag == OTELAGENT_REC_TRACESTATE) {
      if (!tracestate_ok(e.value)) {
        ++truncated_;
        return;
      }
      v.assign(e.value);
    } else if (e.tag == OTELAGENT_REC_LINK) {
      std::string_view ts = link_tracestate(e);
      v.assign(e.value.substr(0, rec::kLinkFixed));
      if (tracestate_ok(ts))
        v.append(ts);
      else
        ++truncated_;
    } else if (e.type == OTELAGENT_TYPE_STRING) {
      v = text(e.value, is_text(e.tag) ? text_cap(e.tag) : kValueCap, limited);
    } else if (e.type == OTELAGENT_TYPE_STRING_ARRAY) {
      v = string_array(e.value, limited);
    } else if (e.value.size() > kValueCap) {
      // BYTES and the arrays of fixed-size items (the cap is a multiple of 8).
      v.assign(e.value.substr(0, kValueCap));
      ++truncated_;
    } else {
      v.assign(e.value);
    }
    put(e.tag, e.type, k, v);
  }

  void put(uint8_t tag, uint8_t type, std::string_view k, std::string_view v) {
    assert(k.size() <= kKeyCap && v.size() <= UINT32_MAX);
    uint8_t h[rec::kEntryHeader];
    h[0] = tag;
    h[1] = type;
    store_u16(h + 2, static_cast<uint16_t>(k.size()));
    store_u32(h + 4, static_cast<uint32_t>(v.size()));
    out_->append(reinterpret_cast<char *>(h), sizeof h);
    out_->append(k);
    out_->append(v);
  }

  // `s` repaired, then cut to `max_chars_` characters when `limited`, then to
  // `cap` bytes at a character boundary; a cut counts as one truncation.
  std::string text(std::string_view s, size_t cap, bool limited) {
    std::string r = repaired(s);
    size_t keep = r.size();
    if (limited && keep > max_chars_) keep = utf8_prefix_chars(r, max_chars_).size();
    keep = utf8_cut(r.data(), keep, cap);
    if (keep != r.size()) {
      r.resize(keep);
      ++truncated_;
    }
    return r;
  }

  // Whole items up to the value cap, as the span calls keep them (the first
  // item is cut when alone it is too long).
  std::string string_array(std::string_view value, bool limited) {
    std::string v;
    bool cut = false;
    all_strings(value, [&](std::string_view s) {
      std::string item = repaired(s);
      if (limited && item.size() > max_chars_) {
        size_t keep = utf8_prefix_chars(item, max_chars_).size();
        cut = cut || keep != item.size();
        item.resize(keep);
      }
      if (v.size() + 4 + item.size() > kValueCap) {
        cut = true;
        if (!v.empty()) return false;
        item.resize(utf8_cut(item.data(), item.size(), kValueCap - 4));
      }
      uint8_t len[4];
      store_u32(len, static_cast<uint32_t>(item.size()));
      v.append(reinterpret_cast<char *>(len), 4);
      v += item;
      return true;
    });
    if (cut) ++truncated_;
    return v;
  }

  std::string *out_;
  uint32_t max_chars_;
  uint32_t truncated_ = 0;
};

}  // namespace

bool record_is_clean(const RecordView &r, const Limits &lim) {
  uint32_t attrs = 0, events = 0, links = 0, group_attrs = 0;
  std::vector<std::string_view> keys;
  EntryReader it = r.entries();
  Entry e;
  while (it.next(&e)) {
    if (e.key.size() > kKeyCap || !utf8_valid(e.key)) return false;
    if (e.tag == OTELAGENT_REC_TRACESTATE && !tracestate_ok(e.value)) return false;
    if (is_text(e.tag) && (e.value.size() > text_cap(e.tag) || !utf8_valid(e.value))) return false;
    if (is_attr(e.tag) && !value_clean(e, lim.attr_value_chars)) return false;
    switch (e.tag) {
      case OTELAGENT_REC_ATTR:
        if (++attrs > lim.attr_count) return false;
        for (auto k : keys)
          if (k == e.key) return false;
        keys.push_back(e.key);
        break;
      case OTELAGENT_REC_EVENT:
        if (++events > lim.event_count) return false;
        group_attrs = 0;
        break;
      case OTELAGENT_REC_LINK:
        if (++links > lim.link_count || !tracestate_ok(link_tracestate(e))) return false;
        group_attrs = 0;
        break;
      case OTELAGENT_REC_EVENT_ATTR:
        if (++group_attrs > lim.event_attr_count) return false;
        break;
      case OTELAGENT_REC_LINK_ATTR:
        if (++group_attrs > lim.link_attr_count) return false;
        break;
    }
  }
  return it.complete();
}

uint32_t record_clean(const RecordView &r, const Limits &lim, std::string *out) {
  // The last entry of each text tag counts (otelagent.h); only it is kept.
  Entry texts[OTELAGENT_REC_STATUS_MESSAGE + 1];
  bool have_text[OTELAGENT_REC_STATUS_MESSAGE + 1] = {};
  std::vector<Attr> attrs;
  std::vector<Group> events, links;
  int64_t dropped_attrs = r.dropped_attrs(), dropped_events = r.dropped_events(),
          dropped_links = r.dropped_links();
  Group *group = nullptr;  // the event or link whose attributes follow
  uint32_t group_limit = 0;
  EntryReader it = r.entries();
  Entry e;
  while (it.next(&e)) {
    switch (e.tag) {
      case OTELAGENT_REC_ATTR:
        add_attr(&attrs, e, lim.attr_count, &dropped_attrs);
        group = nullptr;
        break;
      case OTELAGENT_REC_EVENT:
      case OTELAGENT_REC_LINK: {
        auto &list = e.tag == OTELAGENT_REC_EVENT ? events : links;
        uint32_t limit = e.tag == OTELAGENT_REC_EVENT ? lim.event_count : lim.link_count;
        if (list.size() >= limit) {
          ++(e.tag == OTELAGENT_REC_EVENT ? dropped_events : dropped_links);
          group = nullptr;
          group_limit = 0;
          // Skip the dropped group's attributes.
          while (it.peek_tag() == OTELAGENT_REC_EVENT_ATTR ||
                 it.peek_tag() == OTELAGENT_REC_LINK_ATTR ||
                 it.peek_tag() == OTELAGENT_REC_GROUP_DROPPED)
            it.next(&e);
          break;
        }
        list.push_back(Group{e, {}, 0});
        group = &list.back();
        group_limit = e.tag == OTELAGENT_REC_EVENT ? lim.event_attr_count : lim.link_attr_count;
        break;
      }
      case OTELAGENT_REC_EVENT_ATTR:
      case OTELAGENT_REC_LINK_ATTR:
        if (group != nullptr) add_attr(&group->attrs, e, group_limit, &group->dropped);
        break;
      case OTELAGENT_REC_GROUP_DROPPED:
        if (group != nullptr)
          group->dropped +=
              static_cast<int64_t>(load_u64(reinterpret_cast<const uint8_t *>(e.value.data())));
        break;
      default:
        assert(is_text(e.tag));
        texts[e.tag] = e;
        have_text[e.tag] = true;
        group = nullptr;
    }
  }
  // A status message counts only with status ERROR (otelagent.h).
  if (r.status() != OTELAGENT_STATUS_ERROR) have_text[OTELAGENT_REC_STATUS_MESSAGE] = false;

  out->assign(rec::kHeader, '\0');
  if (r.header_whole()) std::memcpy(out->data(), r.data, rec::kHeader);
  Writer w(out, lim.attr_value_chars);
  for (uint8_t tag = OTELAGENT_REC_NAME; tag <= OTELAGENT_REC_STATUS_MESSAGE; ++tag)
    if (have_text[tag]) w.entry(texts[tag]);
  for (const auto &a : attrs) w.attr(a);
  for (auto *list : {&events, &links})
    for (const auto &g : *list) {
      w.entry(g.head);
      for (const auto &a : g.attrs) w.attr(a);
      w.dropped(g.dropped);
    }
  auto *h = reinterpret_cast<uint8_t *>(out->data());
  store_u32(h + rec::kTotalLen, static_cast<uint32_t>(out->size()));
  store_u16(h + rec::kHeaderLen, rec::kHeader);  // header bytes we do not know are gone
  store_u32(h + rec::kDroppedAttrs, static_cast<uint32_t>(dropped_attrs));
  store_u32(h + rec::kDroppedEvents, static_cast<uint32_t>(dropped_events));
  store_u32(h + rec::kDroppedLinks, static_cast<uint32_t>(dropped_links));
  store_u32(h + rec::kTruncated, r.truncated() + w.truncated());
  return w.truncated();
}

}  // namespace otelagent
