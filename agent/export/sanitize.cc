#include "export/sanitize.h"

#include <vector>

#include "core/utf8.h"

namespace otelagent {

namespace {

bool is_text(uint8_t tag) {
  return tag == OTELAGENT_REC_NAME || tag == OTELAGENT_REC_SCOPE_NAME ||
         tag == OTELAGENT_REC_SCOPE_VERSION || tag == OTELAGENT_REC_TRACESTATE ||
         tag == OTELAGENT_REC_STATUS_MESSAGE;
}
bool is_attr(uint8_t tag) {
  return tag == OTELAGENT_REC_ATTR || tag == OTELAGENT_REC_EVENT_ATTR ||
         tag == OTELAGENT_REC_LINK_ATTR;
}

template <typename Fn>
bool all_strings(std::string_view v, Fn &&fn) {
  const auto *p = reinterpret_cast<const uint8_t *>(v.data());
  for (size_t off = 0; off + 4 <= v.size();) {
    uint32_t n = load_u32(p + off);
    if (!fn(v.substr(off + 4, n))) return false;
    off += 4 + n;
  }
  return true;
}

bool value_clean(const Entry &e, uint32_t max_chars) {
  auto ok = [&](std::string_view s) {
    return utf8_valid(s) && (s.size() <= max_chars || utf8_length(s) <= max_chars);
  };
  if (e.type == OTELAGENT_TYPE_STRING) return ok(e.value);
  if (e.type == OTELAGENT_TYPE_STRING_ARRAY) return all_strings(e.value, ok);
  return true;
}

struct Group {
  Entry head;
  std::vector<Entry> attrs;
  int64_t dropped = 0;
};

// Appends `e`'s attribute to `attrs` unless over `limit`; a repeated key
// replaces the earlier value in place.
void add_attr(std::vector<Entry> *attrs, const Entry &e, uint32_t limit, int64_t *dropped) {
  for (auto &a : *attrs)
    if (a.key == e.key) {
      a = e;
      return;
    }
  if (attrs->size() >= limit) {
    ++*dropped;
    return;
  }
  attrs->push_back(e);
}

class Writer {
 public:
  Writer(std::string *out, uint32_t max_chars) : out_(out), max_chars_(max_chars) {}

  void entry(uint8_t tag, uint8_t type, std::string_view key, std::string_view value,
             bool limited) {
    std::string k = text(key, false);
    std::string v;
    if (type == OTELAGENT_TYPE_STRING) {
      v = text(value, limited);
    } else if (type == OTELAGENT_TYPE_STRING_ARRAY) {
      all_strings(value, [&](std::string_view s) {
        std::string item = text(s, limited);
        uint8_t len[4];
        store_u32(len, static_cast<uint32_t>(item.size()));
        v.append(reinterpret_cast<char *>(len), 4);
        v += item;
        return true;
      });
    } else {
      v.assign(value);
    }
    uint8_t h[rec::kEntryHeader];
    h[0] = tag;
    h[1] = type;
    store_u16(h + 2, static_cast<uint16_t>(k.size()));
    store_u32(h + 4, static_cast<uint32_t>(v.size()));
    out_->append(reinterpret_cast<char *>(h), sizeof h);
    *out_ += k;
    *out_ += v;
  }

  void dropped(int64_t n) {
    if (n == 0) return;
    entry(OTELAGENT_REC_GROUP_DROPPED, OTELAGENT_TYPE_INT64, {},
          std::string_view(reinterpret_cast<const char *>(&n), 8), false);
  }

  uint32_t truncated() const { return truncated_; }

 private:
  std::string text(std::string_view s, bool limited) {
    std::string r;
    if (utf8_valid(s))
      r.assign(s);
    else
      utf8_repair(s, &r);
    if (limited && r.size() > max_chars_) {
      std::string_view cut = utf8_prefix_chars(r, max_chars_);
      if (cut.size() != r.size()) {
        r.resize(cut.size());
        ++truncated_;
      }
    }
    return r;
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
    if (!utf8_valid(e.key)) return false;
    if (is_text(e.tag) && !utf8_valid(e.value)) return false;
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
        if (++links > lim.link_count) return false;
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
  return true;
}

uint32_t record_clean(const RecordView &r, const Limits &lim, std::string *out) {
  std::vector<Entry> texts, attrs;
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
        texts.push_back(e);
        group = nullptr;
    }
  }

  out->assign(reinterpret_cast<const char *>(r.data), rec::kHeader);
  Writer w(out, lim.attr_value_chars);
  for (const auto &t : texts) w.entry(t.tag, t.type, t.key, t.value, false);
  for (const auto &a : attrs) w.entry(a.tag, a.type, a.key, a.value, true);
  for (auto *list : {&events, &links})
    for (const auto &g : *list) {
      w.entry(g.head.tag, g.head.type, g.head.key, g.head.value, false);
      for (const auto &a : g.attrs) w.entry(a.tag, a.type, a.key, a.value, true);
      w.dropped(g.dropped);
    }
  auto *h = reinterpret_cast<uint8_t *>(out->data());
  store_u32(h + rec::kTotalLen, static_cast<uint32_t>(out->size()));
  store_u32(h + rec::kDroppedAttrs, static_cast<uint32_t>(dropped_attrs));
  store_u32(h + rec::kDroppedEvents, static_cast<uint32_t>(dropped_events));
  store_u32(h + rec::kDroppedLinks, static_cast<uint32_t>(dropped_links));
  store_u32(h + rec::kTruncated, load_u32(h + rec::kTruncated) + w.truncated());
  return w.truncated();
}

}  // namespace otelagent
