// Header-only C++ wrapper of the libotelagent C ABI: RAII spans that parent
// themselves on the span current on their thread, and attribute setters for
// the usual C++ types. Each call is one inline call into the C ABI; nothing
// here allocates. Status codes of the C calls are ignored by the wrapper (the
// agent counts what it drops); use the C ABI directly where you need them.
#pragma once

#include <otelagent/otelagent.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace otelagent {

// Where and how a span starts; every field is optional.
struct SpanOptions {
  int32_t kind = OTELAGENT_KIND_INTERNAL;
  std::string_view scope_name;
  std::string_view scope_version;
  // An explicit parent (e.g. extracted from request headers). When null the
  // span current on this thread is the parent; when there is none, a root.
  const otelagent_span_context *parent = nullptr;
  // The explicit parent's W3C tracestate (e.g. from otelagent_context_extract).
  std::string_view parent_tracestate;
  // Start a new trace even when a span is current on this thread.
  bool root = false;
  uint64_t start_time_unix_nano = 0;
};

class Span {
 public:
  explicit Span(std::string_view name, const SpanOptions &opt = {}) : prev_(current_ref()) {
    otelagent_span_options o{};
    o.struct_size = sizeof o;
    o.kind = opt.kind;
    o.scope_name = {opt.scope_name.data(), opt.scope_name.size()};
    o.scope_version = {opt.scope_version.data(), opt.scope_version.size()};
    // The tracestate is read from a local parent only when it has one (an
    // uncommon case), so the usual child costs no extra call.
    char ts[OTELAGENT_TRACESTATE_MAX];
    size_t ts_len = 0;
    if (opt.parent != nullptr) {
      o.parent = opt.parent;
      o.parent_tracestate = {opt.parent_tracestate.data(), opt.parent_tracestate.size()};
    } else if (!opt.root && prev_ != nullptr && prev_->handle_ != nullptr) {
      o.parent = &prev_->ctx_;
      if (prev_->has_tracestate_ &&
          otelagent_span_get_tracestate(prev_->handle_, ts, sizeof ts, &ts_len) == OTELAGENT_OK)
        o.parent_tracestate = {ts, ts_len};
    }
    o.start_time_unix_nano = opt.start_time_unix_nano;
    if (otelagent_span_start(name.data(), name.size(), &o, &handle_) == OTELAGENT_OK) {
      otelagent_span_get_context(handle_, &ctx_);
      has_tracestate_ = o.parent_tracestate.len != 0;
    }
    current_ref() = this;
  }
  ~Span() { end(); }
  Span(const Span &) = delete;
  Span &operator=(const Span &) = delete;

  // Ends the span now (the destructor does it otherwise) and restores the
  // previous current span. Must run on the thread that created the Span.
  void end(uint64_t end_time_unix_nano = 0) {
    if (handle_ != nullptr) otelagent_span_end(handle_, end_time_unix_nano);
    handle_ = nullptr;
    if (current_ref() == this) current_ref() = prev_;
  }

  Span &set(std::string_view key, std::string_view v) {
    otelagent_span_set_str(handle_, key.data(), key.size(), v.data(), v.size());
    return *this;
  }
  Span &set(std::string_view key, const char *v) { return set(key, std::string_view(v)); }
  Span &set(std::string_view key, const std::string &v) { return set(key, std::string_view(v)); }
  Span &set(std::string_view key, bool v) {
    otelagent_span_set_bool(handle_, key.data(), key.size(), v);
    return *this;
  }
  template <typename T,
            std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int> = 0>
  Span &set(std::string_view key, T v) {
    otelagent_span_set_int64(handle_, key.data(), key.size(), static_cast<int64_t>(v));
    return *this;
  }
  template <typename T, std::enable_if_t<std::is_floating_point_v<T>, int> = 0>
  Span &set(std::string_view key, T v) {
    otelagent_span_set_double(handle_, key.data(), key.size(), static_cast<double>(v));
    return *this;
  }
  Span &set(std::string_view key, const std::vector<int64_t> &v) {
    return set_array(key, OTELAGENT_TYPE_INT64_ARRAY, v.data(), v.size());
  }
  Span &set(std::string_view key, const std::vector<double> &v) {
    return set_array(key, OTELAGENT_TYPE_DOUBLE_ARRAY, v.data(), v.size());
  }
  // Strings of an array attribute as (pointer, length) views.
  Span &set(std::string_view key, const std::vector<otelagent_str> &v) {
    return set_array(key, OTELAGENT_TYPE_STRING_ARRAY, v.data(), v.size());
  }

  Span &add_event(std::string_view name, const otelagent_attr *attrs = nullptr, size_t count = 0) {
    otelagent_span_add_event(handle_, name.data(), name.size(), 0, attrs, count);
    return *this;
  }
  Span &record_exception(std::string_view type, std::string_view message,
                         std::string_view stacktrace = {}) {
    otelagent_span_record_exception(handle_, type.data(), type.size(), message.data(),
                                    message.size(), stacktrace.data(), stacktrace.size(), 0);
    return *this;
  }
  Span &set_status(int32_t code, std::string_view message = {}) {
    otelagent_span_set_status(handle_, code, message.data(), message.size());
    return *this;
  }

  bool is_recording() const { return otelagent_span_is_recording(handle_) != 0; }
  // The span's context (all zero when the agent is not started).
  const otelagent_span_context &context() const { return ctx_; }
  otelagent_span *handle() const { return handle_; }

  // The innermost live Span of this thread, or nullptr.
  static Span *current() { return current_ref(); }

 private:
  Span &set_array(std::string_view key, uint32_t type, const void *items, size_t count) {
    otelagent_attr a{};
    a.key = key.data();
    a.key_len = key.size();
    a.type = type;
    a.value.array.items = items;
    a.value.array.count = count;
    otelagent_span_set_attr(handle_, &a);
    return *this;
  }
  static Span *&current_ref() {
    static thread_local Span *current = nullptr;
    return current;
  }

  otelagent_span *handle_ = nullptr;
  Span *prev_;
  bool has_tracestate_ = false;
  otelagent_span_context ctx_{};
};

}  // namespace otelagent
