// The C ABI: translates between the C types of otelagent.h and the engine,
// and makes sure no C++ exception ever crosses into the host.
#include <otelagent/otelagent.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "agent.h"
#include "core/config.h"
#include "core/log.h"
#include "host/span_ops.h"
#include "propagation/propagation.h"

extern char **environ;

struct otelagent_config {
  otelagent::Settings values;
};

namespace {

using namespace otelagent;

// Runs `fn`, turning any exception into OTELAGENT_E_INTERNAL.
template <typename Fn>
int guarded(Fn &&fn) noexcept {
  try {
    return fn();
  } catch (...) {
    log_warn("internal error (exception) in an otelagent_ call; the host is unaffected");
    return OTELAGENT_E_INTERNAL;
  }
}

bool bad(const void *p, size_t len) {
  return p == nullptr && len != 0;
}

// No header may carry an all-zero trace id or span id.
bool ids_valid(const otelagent_span_context *c) {
  static const uint8_t zero[16] = {};
  return c != nullptr && std::memcmp(c->trace_id, zero, 16) != 0 &&
         std::memcmp(c->span_id, zero, 8) != 0;
}

// A caller's (pointer, length) input with a documented maximum: never reads
// more than max + 1 bytes (OTELAGENT_NTS), refuses longer inputs.
int input(const char *p, size_t len, size_t max, std::string_view *out) {
  if (len == OTELAGENT_NTS) {
    if (p == nullptr) return OTELAGENT_E_INVALID;
    len = strnlen(p, max + 1);
  } else if (bad(p, len)) {
    return OTELAGENT_E_INVALID;
  }
  if (len > max) return OTELAGENT_E_TOO_LONG;
  *out = std::string_view(p != nullptr ? p : "", len);
  return OTELAGENT_OK;
}

otelagent_attr attr_of(const char *key, size_t key_len, uint32_t type) {
  otelagent_attr a{};
  a.key = key;
  a.key_len = key_len;
  a.type = type;
  return a;
}

int write_out(const std::string &s, char *buf, size_t cap, size_t *written) {
  if (written != nullptr) *written = s.size();
  if (buf == nullptr || cap < s.size()) return OTELAGENT_E_NO_SPACE;
  std::memcpy(buf, s.data(), s.size());
  if (cap > s.size()) buf[s.size()] = '\0';
  return OTELAGENT_OK;
}

void load_env(Settings *out) {
  std::vector<std::string> warnings;
  config_load_env(environ, out, &warnings);
  for (const auto &w : warnings) log_warn("%s", w.c_str());
}

bool name_is(std::string_view a, std::string_view lower_b) {
  if (a.size() != lower_b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != lower_b[i]) return false;
  return true;
}

// Propagator choice: the running agent's, else the spec's default.
void propagators(bool *tc, bool *bg, bool *xr) {
  const Runtime *rt = runtime();
  *tc = rt ? rt->cfg.prop_tracecontext : true;
  *bg = rt ? rt->cfg.prop_baggage : true;
  *xr = rt ? rt->cfg.prop_xray : false;
}

#define STATUS_NAME_CASE_(num, name, desc) \
  case num:                                \
    return #name;
#define STATUS_DESC_CASE_(num, name, desc) \
  case num:                                \
    return desc;

// Parses into a zeroed context, so the fields a parser does not set
// (sampling, reserved) are always defined.
template <typename Parse>
int parse_context(otelagent_span_context *out, Parse &&parse) {
  otelagent_span_context c{};
  if (!parse(&c)) return OTELAGENT_E_NOT_FOUND;
  *out = c;
  return OTELAGENT_OK;
}

bool xray_parse_into(std::string_view v, otelagent_span_context *c) {
  bool deferred = false;
  if (!xray_parse(v, c, &deferred)) return false;
  c->sampling = deferred ? OTELAGENT_SAMPLING_DEFERRED : OTELAGENT_SAMPLING_DECIDED;
  return true;
}

std::string xray_of(const otelagent_span_context &ctx) {
  return xray_format(ctx, ctx.sampling == OTELAGENT_SAMPLING_DEFERRED);
}

}  // namespace

extern "C" {

const char *otelagent_version(void) {
  return OTELAGENT_VERSION_STRING;
}

uint32_t otelagent_abi_version(void) {
  return (OTELAGENT_ABI_MAJOR << 16) | OTELAGENT_ABI_MINOR;
}

const char *otelagent_strerror(int status) {
  switch (status) {
    OTELAGENT_STATUS_MAP(STATUS_DESC_CASE_)
    default:
      return "unknown status";
  }
}

const char *otelagent_status_name(int status) {
  switch (status) {
    OTELAGENT_STATUS_MAP(STATUS_NAME_CASE_)
    default:
      return "UNKNOWN";
  }
}

otelagent_config *otelagent_config_new(void) {
  try {
    return new otelagent_config;
  } catch (...) {
    return nullptr;
  }
}

void otelagent_config_free(otelagent_config *cfg) {
  delete cfg;
}

int otelagent_config_set(otelagent_config *cfg, const char *key, size_t key_len, const char *value,
                         size_t value_len) {
  if (cfg == nullptr || key == nullptr) return OTELAGENT_E_INVALID;
  std::string_view k, v;
  int rc = input(key, key_len, kConfigKeyMax, &k);
  if (rc == OTELAGENT_OK) rc = input(value, value_len, kConfigValueMax, &v);
  if (rc != OTELAGENT_OK) return rc;
  return guarded([&]() -> int {
    if (!config_key_known(k)) return OTELAGENT_E_UNKNOWN_KEY;
    cfg->values[std::string(k)] = std::string(v);
    return OTELAGENT_OK;
  });
}

int otelagent_config_load_env(otelagent_config *cfg) {
  if (cfg == nullptr) return OTELAGENT_E_INVALID;
  return guarded([&]() -> int {
    load_env(&cfg->values);
    return OTELAGENT_OK;
  });
}

int otelagent_start(const otelagent_config *cfg) {
  return guarded([&]() -> int {
    if (cfg != nullptr) return start(cfg->values);
    Settings env;
    load_env(&env);
    return start(env);
  });
}

int otelagent_flush(uint32_t timeout_ms) {
  return guarded([&]() -> int { return flush(timeout_ms); });
}

int otelagent_shutdown(uint32_t timeout_ms) {
  return guarded([&]() -> int { return shutdown(timeout_ms); });
}

int otelagent_span_start(const char *name, size_t name_len, const otelagent_span_options *opts,
                         otelagent_span **out) {
  return guarded([&]() -> int { return span_start(name, name_len, opts, out); });
}

int otelagent_span_set_attr(otelagent_span *span, const otelagent_attr *attr) {
  return guarded([&]() -> int { return span_set_attr(span, attr); });
}

int otelagent_span_set_str(otelagent_span *span, const char *key, size_t key_len, const char *value,
                           size_t value_len) {
  otelagent_attr a = attr_of(key, key_len, OTELAGENT_TYPE_STRING);
  a.value.str = {value, value_len};
  return otelagent_span_set_attr(span, &a);
}

int otelagent_span_set_int64(otelagent_span *span, const char *key, size_t key_len, int64_t value) {
  otelagent_attr a = attr_of(key, key_len, OTELAGENT_TYPE_INT64);
  a.value.i64 = value;
  return otelagent_span_set_attr(span, &a);
}

int otelagent_span_set_double(otelagent_span *span, const char *key, size_t key_len, double value) {
  otelagent_attr a = attr_of(key, key_len, OTELAGENT_TYPE_DOUBLE);
  a.value.f64 = value;
  return otelagent_span_set_attr(span, &a);
}

int otelagent_span_set_bool(otelagent_span *span, const char *key, size_t key_len, int value) {
  otelagent_attr a = attr_of(key, key_len, OTELAGENT_TYPE_BOOL);
  a.value.boolean = value != 0;
  return otelagent_span_set_attr(span, &a);
}

int otelagent_span_add_event(otelagent_span *span, const char *name, size_t name_len,
                             uint64_t time_unix_nano, const otelagent_attr *attrs,
                             size_t attr_count) {
  return guarded([&]() -> int {
    return span_add_event(span, name, name_len, time_unix_nano, attrs, attr_count);
  });
}

int otelagent_span_record_exception(otelagent_span *span, const char *type, size_t type_len,
                                    const char *message, size_t message_len, const char *stacktrace,
                                    size_t stacktrace_len, uint64_t time_unix_nano) {
  if (bad(type, type_len) || bad(message, message_len) || bad(stacktrace, stacktrace_len))
    return OTELAGENT_E_INVALID;
  otelagent_attr attrs[3];
  size_t n = 0;
  auto add = [&](const char *k, const char *v, size_t len) {
    if (len == 0 || (len == OTELAGENT_NTS && v[0] == '\0')) return;
    attrs[n] = attr_of(k, std::strlen(k), OTELAGENT_TYPE_STRING);
    attrs[n++].value.str = {v, len};
  };
  add("exception.type", type, type_len);
  add("exception.message", message, message_len);
  add("exception.stacktrace", stacktrace, stacktrace_len);
  return otelagent_span_add_event(span, "exception", 9, time_unix_nano, attrs, n);
}

int otelagent_span_set_status(otelagent_span *span, int32_t code, const char *message,
                              size_t message_len) {
  return guarded([&]() -> int { return span_set_status(span, code, message, message_len); });
}

int otelagent_span_set_name(otelagent_span *span, const char *name, size_t name_len) {
  return guarded([&]() -> int { return span_set_name(span, name, name_len); });
}

int otelagent_span_get_context(const otelagent_span *span, otelagent_span_context *out) {
  return guarded([&]() -> int { return span_get_context(span, out); });
}

int otelagent_span_get_tracestate(const otelagent_span *span, char *buf, size_t cap,
                                  size_t *written) {
  return guarded([&]() -> int { return span_get_tracestate(span, buf, cap, written); });
}

int otelagent_span_is_recording(const otelagent_span *span) {
  return span_is_recording(span);
}

int otelagent_span_end(otelagent_span *span, uint64_t end_time_unix_nano) {
  return guarded([&]() -> int { return span_end(span, end_time_unix_nano); });
}

int otelagent_span_context_new(const otelagent_span_context *parent, otelagent_span_context *out) {
  return guarded([&]() -> int { return span_context_new(parent, out); });
}

int otelagent_record_span(const void *record, size_t len) {
  return guarded([&]() -> int { return record_span(record, len); });
}

int otelagent_traceparent_parse(const char *value, size_t len, otelagent_span_context *out) {
  std::string_view v;
  int rc = input(value, len, OTELAGENT_MAX_TRACEPARENT, &v);
  if (rc != OTELAGENT_OK) return rc;
  if (out == nullptr) return OTELAGENT_E_INVALID;
  return guarded([&]() -> int {
    return parse_context(out, [&](otelagent_span_context *c) { return traceparent_parse(v, c); });
  });
}

int otelagent_tracestate_normalize(const char *value, size_t len, char *buf, size_t cap,
                                   size_t *written) {
  std::string_view v;
  int rc = input(value, len, OTELAGENT_MAX_TRACESTATE_INPUT, &v);
  if (rc != OTELAGENT_OK) return rc;
  return guarded([&]() -> int {
    const std::string ts = tracestate_normalize(v);
    if (ts.empty()) {
      if (written != nullptr) *written = 0;
      return OTELAGENT_E_NOT_FOUND;
    }
    return write_out(ts, buf, cap, written);
  });
}

int otelagent_traceparent_format(const otelagent_span_context *ctx, char *buf, size_t cap,
                                 size_t *written) {
  if (!ids_valid(ctx)) return OTELAGENT_E_INVALID;
  return guarded([&]() -> int { return write_out(traceparent_format(*ctx), buf, cap, written); });
}

int otelagent_xray_parse(const char *value, size_t len, otelagent_span_context *out) {
  std::string_view v;
  int rc = input(value, len, OTELAGENT_MAX_XRAY, &v);
  if (rc != OTELAGENT_OK) return rc;
  if (out == nullptr) return OTELAGENT_E_INVALID;
  return guarded([&]() -> int {
    return parse_context(out, [&](otelagent_span_context *c) { return xray_parse_into(v, c); });
  });
}

int otelagent_xray_format(const otelagent_span_context *ctx, char *buf, size_t cap,
                          size_t *written) {
  if (!ids_valid(ctx)) return OTELAGENT_E_INVALID;
  return guarded([&]() -> int { return write_out(xray_of(*ctx), buf, cap, written); });
}

int otelagent_baggage_normalize(const char *value, size_t len, char *buf, size_t cap,
                                size_t *written) {
  std::string_view v;
  int rc = input(value, len, OTELAGENT_MAX_BAGGAGE, &v);
  if (rc != OTELAGENT_OK) return rc;
  return guarded([&]() -> int {
    std::string b = baggage_normalize(v);
    if (b.empty()) {
      if (written != nullptr) *written = 0;
      return OTELAGENT_E_NOT_FOUND;
    }
    return write_out(b, buf, cap, written);
  });
}

int otelagent_context_extract(const otelagent_header *headers, size_t count,
                              otelagent_span_context *out, char *tracestate_buf,
                              size_t tracestate_cap, size_t *tracestate_len, char *baggage_buf,
                              size_t baggage_cap, size_t *baggage_len) {
  if ((headers == nullptr && count != 0) || out == nullptr) return OTELAGENT_E_INVALID;
  if (count > OTELAGENT_MAX_ITEMS) return OTELAGENT_E_TOO_LONG;
  return guarded([&]() -> int {
    bool tc, bg, xr;
    propagators(&tc, &bg, &xr);
    if (tracestate_len != nullptr) *tracestate_len = 0;
    if (baggage_len != nullptr) *baggage_len = 0;
    std::string_view traceparent, xray;
    // Several tracestate (or baggage) field lines are one list (RFC 9110
    // section 5.3); the parsers bound the lines' total.
    std::vector<std::string_view> tracestate, baggage;
    bool have_tp = false, tp_twice = false, have_xray = false;
    for (size_t i = 0; i < count; ++i) {
      const otelagent_header &h = headers[i];
      std::string_view name, value;
      if (input(h.name.ptr, h.name.len, OTELAGENT_MAX_HEADER_NAME, &name) != OTELAGENT_OK) continue;
      if (name_is(name, "traceparent")) {
        // Two traceparent headers make the context invalid (W3C); so does an
        // over-long one.
        tp_twice = have_tp;
        have_tp = true;
        if (input(h.value.ptr, h.value.len, OTELAGENT_MAX_TRACEPARENT, &value) == OTELAGENT_OK)
          traceparent = value;
        else
          tp_twice = true;
      } else if (name_is(name, "tracestate")) {
        if (input(h.value.ptr, h.value.len, OTELAGENT_MAX_TRACESTATE_INPUT, &value) == OTELAGENT_OK)
          tracestate.push_back(value);
      } else if (name_is(name, "x-amzn-trace-id")) {
        if (input(h.value.ptr, h.value.len, OTELAGENT_MAX_XRAY, &value) != OTELAGENT_OK) continue;
        xray = value;
        have_xray = true;
      } else if (name_is(name, "baggage")) {
        if (input(h.value.ptr, h.value.len, OTELAGENT_MAX_BAGGAGE, &value) == OTELAGENT_OK)
          baggage.push_back(value);
      }
    }
    int rc = OTELAGENT_E_NOT_FOUND;
    if (tc && have_tp && !tp_twice) {
      rc = parse_context(
          out, [&](otelagent_span_context *c) { return traceparent_parse(traceparent, c); });
      if (rc == OTELAGENT_OK && tracestate_buf != nullptr) {
        const std::string ts = tracestate_combine(tracestate.data(), tracestate.size());
        if (write_out(ts, tracestate_buf, tracestate_cap, tracestate_len) != OTELAGENT_OK &&
            tracestate_len != nullptr)
          *tracestate_len = 0;
      }
    }
    if (rc != OTELAGENT_OK && xr && have_xray)
      rc = parse_context(out, [&](otelagent_span_context *c) { return xray_parse_into(xray, c); });
    if (bg && baggage_buf != nullptr && !baggage.empty()) {
      const std::string norm = baggage_combine(baggage.data(), baggage.size());
      if (!norm.empty() && write_out(norm, baggage_buf, baggage_cap, baggage_len) != OTELAGENT_OK &&
          baggage_len != nullptr)
        *baggage_len = 0;
    }
    return rc;
  });
}

int otelagent_context_inject(const otelagent_span_context *ctx, const char *tracestate,
                             size_t tracestate_len, const char *baggage, size_t baggage_len,
                             char *buf, size_t cap, size_t *written) {
  std::string_view ts_in, bg_in;
  int rc = input(tracestate, tracestate_len, OTELAGENT_MAX_TRACESTATE_INPUT, &ts_in);
  if (rc == OTELAGENT_OK) rc = input(baggage, baggage_len, OTELAGENT_MAX_BAGGAGE, &bg_in);
  if (rc != OTELAGENT_OK) return rc;
  if (!ids_valid(ctx)) return OTELAGENT_E_INVALID;  // no header for an invalid context
  return guarded([&]() -> int {
    bool tc, bg, xr;
    propagators(&tc, &bg, &xr);
    std::string out;
    if (tc) {
      out += "traceparent: " + traceparent_format(*ctx) + "\r\n";
      // A caller's invalid tracestate is left out rather than sent on.
      if (!ts_in.empty() && tracestate_valid(ts_in)) {
        const std::string ts = tracestate_normalize(ts_in);
        if (!ts.empty()) out += "tracestate: " + ts + "\r\n";
      }
    }
    if (xr) out += "X-Amzn-Trace-Id: " + xray_of(*ctx) + "\r\n";
    if (bg && !bg_in.empty()) {
      const std::string norm = baggage_normalize(bg_in);
      if (!norm.empty()) out += "baggage: " + norm + "\r\n";
    }
    return write_out(out, buf, cap, written);
  });
}

int otelagent_log_set_handler(otelagent_log_fn fn, void *user) {
  log_set_handler(fn, user);
  return OTELAGENT_OK;
}

int otelagent_stats_get(otelagent_stats *out) {
  if (out == nullptr || out->struct_size < 2 * sizeof(uint32_t)) return OTELAGENT_E_INVALID;
  return guarded([&]() -> int {
    otelagent_stats s{};
    stats_get(&s);
    size_t n = out->struct_size < sizeof s ? out->struct_size : sizeof s;
    s.struct_size = out->struct_size;
    std::memcpy(out, &s, n);
    return OTELAGENT_OK;
  });
}

}  // extern "C"
