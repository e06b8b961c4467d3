#include "config.h"

#include <otelagent/otelagent.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <set>

#include "core/utf8.h"

namespace otelagent {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto &c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A printable, bounded copy of a bad value for a warning.
std::string shown(std::string_view v) {
  std::string out;
  for (char c : v.substr(0, 64)) out += std::isprint(static_cast<unsigned char>(c)) ? c : '?';
  if (v.size() > 64) out += "...";
  return out;
}

class Parser {
 public:
  Parser(const Settings &s, std::vector<std::string> *w) : s_(s), w_(w) {}

  // The value of the first of `keys` that is set and not empty.
  const std::string *get(std::initializer_list<std::string_view> keys,
                         std::string_view *which = nullptr) const {
    for (auto k : keys) {
      auto it = s_.find(k);
      if (it != s_.end() && !trim(it->second).empty()) {
        if (which) *which = k;
        return &it->second;
      }
    }
    return nullptr;
  }

  // Several settings may fall back on one variable (OTEL_ATTRIBUTE_COUNT_LIMIT
  // serves three limits): each variable is reported at most once.
  void warn(std::string_view key, std::string_view value, std::string_view why,
            std::string_view used) {
    if (!warned_.emplace(key).second) return;
    w_->push_back(std::string(key) + "=\"" + shown(value) + "\" " + std::string(why) + "; using " +
                  std::string(used));
  }

  // A warning written whole by the caller (for example without the value,
  // which may hold credentials).
  void warn_text(std::string_view key, std::string_view what) {
    if (!warned_.emplace(key).second) return;
    w_->push_back(std::string(key) + " " + std::string(what));
  }

  void boolean(std::initializer_list<std::string_view> keys, bool *out) {
    std::string_view key;
    const std::string *v = get(keys, &key);
    if (!v) return;
    std::string l = lower(trim(*v));
    if (l == "true")
      *out = true;
    else if (l == "false")
      *out = false;
    else
      warn(key, *v, "is not true or false", *out ? "true" : "false");
  }

  void number(std::initializer_list<std::string_view> keys, uint32_t *out, uint32_t min,
              uint32_t max) {
    std::string_view key;
    const std::string *v = get(keys, &key);
    if (!v) return;
    std::string t(trim(*v));
    char *end = nullptr;
    errno = 0;
    long long n = std::strtoll(t.c_str(), &end, 10);
    if (errno != 0 || end == t.c_str() || *end != '\0' || n < min || n > max) {
      warn(key, *v,
           "is not a whole number from " + std::to_string(min) + " to " + std::to_string(max),
           std::to_string(*out));
      return;
    }
    *out = static_cast<uint32_t>(n);
  }

  void number64(std::string_view key, uint64_t *out, uint64_t min, uint64_t max) {
    const std::string *v = get({key}, &key);
    if (!v) return;
    std::string t(trim(*v));
    char *end = nullptr;
    errno = 0;
    unsigned long long n = std::strtoull(t.c_str(), &end, 10);
    if (errno != 0 || end == t.c_str() || *end != '\0' || t[0] == '-' || n < min || n > max) {
      warn(key, *v,
           "is not a whole number from " + std::to_string(min) + " to " + std::to_string(max),
           std::to_string(*out));
      return;
    }
    *out = n;
  }

  template <typename E>
  void choice(std::initializer_list<std::string_view> keys,
              std::initializer_list<std::pair<std::string_view, E>> options, E *out,
              std::string_view default_name) {
    std::string_view key;
    const std::string *v = get(keys, &key);
    if (!v) return;
    std::string l = lower(trim(*v));
    for (auto &[name, value] : options)
      if (l == name) {
        *out = value;
        return;
      }
    warn(key, *v, "is not a supported value", default_name);
  }

  std::vector<std::string> &warnings() { return *w_; }

 private:
  const Settings &s_;
  std::vector<std::string> *w_;
  std::set<std::string, std::less<>> warned_;
};

const std::vector<std::string_view> kKeys = {
    "OTEL_SDK_DISABLED",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_CLIENT_KEY",
    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_INSECURE",
    "OTEL_EXPORTER_OTLP_TRACES_INSECURE",
    "OTEL_TRACES_EXPORTER",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_PROPAGATORS",
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_BSP_EXPORT_TIMEOUT",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_SPAN_EVENT_COUNT_LIMIT",
    "OTEL_SPAN_LINK_COUNT_LIMIT",
    "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
    "OTELAGENT_ID_GENERATOR",
    "OTELAGENT_CLOCK",
    "OTELAGENT_RING_BYTES",
    "OTELAGENT_LOG",
    "OTELAGENT_SHUTDOWN_TIMEOUT_MS",
    "OTELAGENT_RETRY_INITIAL_MS",
    "OTELAGENT_RETRY_MAX_MS",
    "OTELAGENT_RETRY_MAX_ELAPSED_MS",
    "OTELAGENT_SPOOL_DIR",
    "OTELAGENT_SPOOL_MAX_BYTES",
};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// RFC 9110 token characters, the only ones a field name may hold.
bool tchar(unsigned char c) {
  return std::isalnum(c) || (c != 0 && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr);
}

// A field value may hold HTAB, SP, visible ASCII and obs-text; any other
// control character (CR and LF above all) would end the header line early
// and let the rest be read as a header of its own.
bool field_value_valid(std::string_view v) {
  for (unsigned char c : v)
    if ((c < 0x20 && c != '\t') || c == 0x7F) return false;
  return true;
}

// Drops the headers that cannot be sent as they are. Returns a description of
// what was dropped naming only the header names (printable), or "".
std::string drop_bad_headers(KeyValues *headers) {
  std::string dropped;
  auto note = [&](const std::string &name, const char *why) {
    dropped += dropped.empty() ? "" : ", ";
    dropped += "\"" + shown(name) + "\" (" + why + ")";
  };
  KeyValues kept;
  for (auto &kv : *headers) {
    if (!std::all_of(kv.first.begin(), kv.first.end(),
                     [](char c) { return tchar(static_cast<unsigned char>(c)); }))
      note(kv.first, "the name is not an HTTP token");
    else if (!field_value_valid(kv.second))
      note(kv.first, "the value holds a control character");
    else
      kept.push_back(std::move(kv));
  }
  *headers = std::move(kept);
  return dropped;
}

// OTLP strings must be valid UTF-8 and a strict receiver rejects the whole
// request otherwise, so a percent-decoded resource attribute is repaired
// (each invalid byte becomes U+FFFD, as span attributes are). Returns whether
// anything was repaired.
bool repair_utf8(std::string *s) {
  if (utf8_valid(*s)) return false;
  std::string fixed;
  utf8_repair(*s, &fixed);
  *s = std::move(fixed);
  return true;
}

// The built-in part of the endpoint check: what the module knows without an
// HTTP library.
std::string scheme_problem(std::string_view url) {
  if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) return "is not an http(s) URL";
  return "";
}

// The port written in `url`'s authority ("" when none is).
std::string_view explicit_port(std::string_view url) {
  const size_t scheme = url.find("://");
  const size_t host = scheme == std::string_view::npos ? 0 : scheme + 3;
  std::string_view authority = url.substr(host, url.find_first_of("/?#", host) - host);
  if (const size_t at = authority.rfind('@'); at != std::string_view::npos)
    authority.remove_prefix(at + 1);
  const size_t colon = authority.rfind(':');
  // An IPv6 literal holds colons of its own; its port comes after the ']'.
  if (colon == std::string_view::npos || authority.find(']', colon) != std::string_view::npos)
    return "";
  return authority.substr(colon + 1);
}

}  // namespace

bool config_key_known(std::string_view key) {
  return std::find(kKeys.begin(), kKeys.end(), key) != kKeys.end();
}

void config_load_env(char *const *env, Settings *out, std::vector<std::string> *warnings) {
  for (char *const *e = env; e != nullptr && *e != nullptr; ++e) {
    const char *eq = std::strchr(*e, '=');
    if (eq == nullptr) continue;
    std::string_view k(*e, static_cast<size_t>(eq - *e));
    if (!config_key_known(k)) continue;
    // Bounded: the value is not scanned past one byte over the maximum.
    size_t len = strnlen(eq + 1, kConfigValueMax + 1);
    if (len > kConfigValueMax) {
      warnings->push_back(std::string(k) + " is longer than " + std::to_string(kConfigValueMax) +
                          " bytes; ignored");
      continue;
    }
    (*out)[std::string(k)] = std::string(eq + 1, len);
  }
}

std::string url_for_messages(std::string_view url) {
  const size_t scheme = url.find("://");
  const size_t host = scheme == std::string_view::npos ? 0 : scheme + 3;
  const size_t authority_end = std::min(url.find_first_of("/?#", host), url.size());
  const size_t at = url.substr(0, authority_end).rfind('@');
  if (at == std::string_view::npos || at < host) return std::string(url);
  return std::string(url.substr(0, host)) + std::string(url.substr(at + 1));
}

bool percent_decode(std::string_view in, std::string *out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      *out += in[i];
      continue;
    }
    if (i + 2 >= in.size()) return false;
    int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    *out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return true;
}

bool parse_key_values(std::string_view in, KeyValues *out) {
  out->clear();
  while (!in.empty()) {
    size_t comma = in.find(',');
    std::string_view member = trim(in.substr(0, comma));
    in = comma == std::string_view::npos ? std::string_view() : in.substr(comma + 1);
    if (member.empty()) continue;
    size_t eq = member.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      out->clear();
      return false;
    }
    std::string key, value;
    if (!percent_decode(trim(member.substr(0, eq)), &key) ||
        !percent_decode(trim(member.substr(eq + 1)), &value) || key.empty()) {
      out->clear();
      return false;
    }
    out->emplace_back(std::move(key), std::move(value));
  }
  return true;
}

Config config_parse(const Settings &settings, std::vector<std::string> *warnings,
                    UrlCheck check_url) {
  Config c;
  Parser p(settings, warnings);
  std::string_view key;

  p.boolean({"OTEL_SDK_DISABLED"}, &c.disabled);
  if (auto *v = p.get({"OTEL_SERVICE_NAME"})) {
    c.service_name = std::string(trim(*v));
    if (repair_utf8(&c.service_name))
      p.warn("OTEL_SERVICE_NAME", *v, "is not valid UTF-8", "it with U+FFFD for each invalid byte");
  }
  if (auto *v = p.get({"OTEL_RESOURCE_ATTRIBUTES"})) {
    if (!parse_key_values(*v, &c.resource_attrs)) {
      p.warn("OTEL_RESOURCE_ATTRIBUTES", *v, "is malformed", "no attributes from it");
    } else {
      bool repaired = false;
      for (auto &[k, val] : c.resource_attrs) {
        repaired |= repair_utf8(&k);
        repaired |= repair_utf8(&val);
      }
      if (repaired)
        p.warn("OTEL_RESOURCE_ATTRIBUTES", *v, "decodes to invalid UTF-8",
               "it with U+FFFD for each invalid byte");
    }
  }

  // The protocol first: it decides the default endpoint and whether a path
  // is appended.
  if (auto *v =
          p.get({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"}, &key)) {
    std::string l = lower(trim(*v));
    if (l == "grpc")
      c.protocol = Protocol::kGrpc;
    else if (l != "http/protobuf")
      p.warn(key, *v,
             l == "http/json" ? "is not supported (http/protobuf and grpc are)"
                              : "is not http/protobuf or grpc",
             "http/protobuf");
  }
  const bool grpc = c.protocol == Protocol::kGrpc;
  // The specification's defaults; for grpc the endpoint names only where to
  // connect (the method path is fixed), so nothing is appended to it.
  const std::string default_endpoint = grpc ? "http://localhost:4317" : c.endpoint;
  c.endpoint = default_endpoint;
  // OTLP/gRPC endpoints are commonly written as gRPC targets, host:port
  // without a scheme; the specification's "insecure" option then chooses
  // between plaintext and TLS (TLS unless it is true). A scheme, when given,
  // decides alone, and OTLP/HTTP always needs one.
  bool insecure = false;
  p.boolean({"OTEL_EXPORTER_OTLP_TRACES_INSECURE", "OTEL_EXPORTER_OTLP_INSECURE"}, &insecure);
  auto with_scheme = [&](std::string_view v) {
    std::string url(v);
    if (grpc && !url.empty() && url.find("://") == std::string::npos)
      url.insert(0, insecure ? "http://" : "https://");
    return url;
  };
  std::string_view endpoint_var;
  const std::string *endpoint_value = nullptr;
  if (auto *v = p.get({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"}, &endpoint_var)) {
    endpoint_value = v;
    c.endpoint = with_scheme(trim(*v));
  } else if (auto *b = p.get({"OTEL_EXPORTER_OTLP_ENDPOINT"}, &endpoint_var)) {
    endpoint_value = b;
    std::string base = with_scheme(trim(*b));
    if (!grpc) {
      if (base.back() != '/') base += '/';
      base += "v1/traces";
    }
    c.endpoint = base;
  }
  if (endpoint_value != nullptr) {
    // The value as given is checked: "http://" + "/v1/traces" would name a
    // host "v1".
    const std::string given = with_scheme(trim(*endpoint_value));
    std::string why = scheme_problem(given);
    if (why.empty() && check_url != nullptr) why = check_url(given);
    if (!why.empty()) {
      p.warn(endpoint_var, url_for_messages(*endpoint_value), why, default_endpoint);
      c.endpoint = default_endpoint;
    }
  }
  {
    // 4317 is the well-known OTLP/gRPC port and 4318 the OTLP/HTTP one: a
    // protocol on the other's port is almost always a mistake, and its only
    // symptom would be failed exports.
    const std::string_view port = explicit_port(c.endpoint);
    const char *wrong = !grpc && port == "4317"  ? "OTLP/gRPC"
                        : grpc && port == "4318" ? "OTLP/HTTP"
                                                 : nullptr;
    if (wrong != nullptr)
      warnings->push_back("the OTLP endpoint " + url_for_messages(c.endpoint) + " uses port " +
                          std::string(port) + ", the " + wrong + " port, but the protocol is " +
                          (grpc ? "grpc" : "http/protobuf") +
                          ": set OTEL_EXPORTER_OTLP_PROTOCOL=" + (grpc ? "http/protobuf" : "grpc") +
                          " or use port " + (grpc ? "4317" : "4318"));
  }
  if (auto *v = p.get({"OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"}, &key)) {
    // The value may hold credentials: name the variable, never the value.
    if (!parse_key_values(*v, &c.headers)) {
      p.warn_text(key, "is malformed; sending no headers from it");
    } else {
      std::string dropped = drop_bad_headers(&c.headers);
      if (!dropped.empty()) p.warn_text(key, "has headers that are not sent: " + dropped);
    }
  }
  p.number({"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"}, &c.timeout_ms, 1,
           3600000);
  p.choice<Compression>(
      {"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION"},
      {{"none", Compression::kNone}, {"gzip", Compression::kGzip}, {"zstd", Compression::kZstd}},
      &c.compression, "none");
  if (auto *v = p.get({"OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE"}))
    c.certificate = *v;
  if (auto *v = p.get({"OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "OTEL_EXPORTER_OTLP_CLIENT_KEY"}))
    c.client_key = *v;
  if (auto *v = p.get({"OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
                       "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"}))
    c.client_certificate = *v;

  if (auto *v = p.get({"OTEL_TRACES_EXPORTER"})) {
    // A list is allowed by the spec; we honour its first supported member.
    std::string l = lower(trim(*v));
    if (l.find(',') != std::string::npos) l = std::string(trim(l.substr(0, l.find(','))));
    if (l == "otlp")
      c.exporter = ExporterKind::kOtlp;
    else if (l == "console")
      c.exporter = ExporterKind::kConsole;
    else if (l == "none")
      c.exporter = ExporterKind::kNone;
    else
      p.warn("OTEL_TRACES_EXPORTER", *v, "is not otlp, console or none", "otlp");
  }
  p.choice<SamplerKind>({"OTEL_TRACES_SAMPLER"},
                        {{"always_on", SamplerKind::kAlwaysOn},
                         {"always_off", SamplerKind::kAlwaysOff},
                         {"traceidratio", SamplerKind::kRatio},
                         {"parentbased_always_on", SamplerKind::kParentAlwaysOn},
                         {"parentbased_always_off", SamplerKind::kParentAlwaysOff},
                         {"parentbased_traceidratio", SamplerKind::kParentRatio}},
                        &c.sampler, "parentbased_always_on");
  if (auto *v = p.get({"OTEL_TRACES_SAMPLER_ARG"})) {
    std::string t(trim(*v));
    char *end = nullptr;
    double r = std::strtod(t.c_str(), &end);
    if (end == t.c_str() || *end != '\0' || !(r >= 0.0 && r <= 1.0))
      p.warn("OTEL_TRACES_SAMPLER_ARG", *v, "is not a number from 0 to 1", "1.0");
    else
      c.sampler_ratio = r;
  }
  if (auto *v = p.get({"OTEL_PROPAGATORS"})) {
    bool tc = false, bg = false, xr = false;
    std::string unsupported;
    std::string l = lower(*v);
    std::string_view rest(l);
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      std::string_view name = trim(rest.substr(0, comma));
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      if (name == "tracecontext")
        tc = true;
      else if (name == "baggage")
        bg = true;
      else if (name == "xray")
        xr = true;
      else if (name == "none" || name.empty())
        continue;
      else
        unsupported.append(unsupported.empty() ? "" : ",").append(name);
    }
    if (!unsupported.empty())
      p.warn("OTEL_PROPAGATORS", unsupported, "names unsupported propagators", "the others listed");
    c.prop_tracecontext = tc;
    c.prop_baggage = bg;
    c.prop_xray = xr;
  }

  p.number({"OTEL_BSP_SCHEDULE_DELAY"}, &c.schedule_delay_ms, 1, 3600000);
  p.number({"OTEL_BSP_EXPORT_TIMEOUT"}, &c.export_timeout_ms, 1, 3600000);
  p.number({"OTEL_BSP_MAX_QUEUE_SIZE"}, &c.max_queue_size, 1, 1u << 24);
  p.number({"OTEL_BSP_MAX_EXPORT_BATCH_SIZE"}, &c.max_export_batch_size, 1, 1u << 24);
  if (c.max_export_batch_size > c.max_queue_size) {
    p.warn_text("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "is larger than OTEL_BSP_MAX_QUEUE_SIZE; using " +
                                                      std::to_string(c.max_queue_size));
    c.max_export_batch_size = c.max_queue_size;
  }

  Limits &l = c.limits;
  p.number({"OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"},
           &l.attr_value_chars, 0, OTELAGENT_MAX_VALUE_BYTES);
  p.number({"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "OTEL_ATTRIBUTE_COUNT_LIMIT"}, &l.attr_count, 0,
           OTELAGENT_MAX_ATTRS);
  p.number({"OTEL_SPAN_EVENT_COUNT_LIMIT"}, &l.event_count, 0, OTELAGENT_MAX_EVENTS);
  p.number({"OTEL_SPAN_LINK_COUNT_LIMIT"}, &l.link_count, 0, OTELAGENT_MAX_LINKS);
  p.number({"OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "OTEL_ATTRIBUTE_COUNT_LIMIT"}, &l.event_attr_count,
           0, OTELAGENT_MAX_ATTRS);
  p.number({"OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", "OTEL_ATTRIBUTE_COUNT_LIMIT"}, &l.link_attr_count, 0,
           OTELAGENT_MAX_ATTRS);

  p.choice<bool>({"OTELAGENT_ID_GENERATOR"}, {{"random", false}, {"xray", true}}, &c.xray_ids,
                 "random");
  p.choice<bool>({"OTELAGENT_CLOCK"}, {{"tsc", true}, {"realtime", false}}, &c.allow_tsc, "tsc");
  uint32_t ring_bytes = static_cast<uint32_t>(c.ring_bytes);
  p.number({"OTELAGENT_RING_BYTES"}, &ring_bytes, 128 * 1024, 1u << 30);
  c.ring_bytes = ring_bytes;
  p.number({"OTELAGENT_SHUTDOWN_TIMEOUT_MS"}, &c.shutdown_timeout_ms, 0, 600000);
  p.number({"OTELAGENT_RETRY_INITIAL_MS"}, &c.retry_initial_ms, 1, 600000);
  p.number({"OTELAGENT_RETRY_MAX_MS"}, &c.retry_max_ms, 1, 600000);
  p.number({"OTELAGENT_RETRY_MAX_ELAPSED_MS"}, &c.retry_max_elapsed_ms, 0, 3600000);
  if (c.retry_max_ms < c.retry_initial_ms) c.retry_max_ms = c.retry_initial_ms;
  if (auto *v = p.get({"OTELAGENT_SPOOL_DIR"})) c.spool_dir = std::string(trim(*v));
  // With a spool, records stay in the rings until their batch is on disk:
  // a larger default ring keeps the same headroom for bursts.
  if (!c.spool_dir.empty() && p.get({"OTELAGENT_RING_BYTES"}) == nullptr)
    c.ring_bytes = kSpoolRingBytes;
  p.number64("OTELAGENT_SPOOL_MAX_BYTES", &c.spool_max_bytes, 64 * 1024, uint64_t{1} << 40);
  return c;
}

}  // namespace otelagent
