// The agent's settings, parsed from OTEL_* style key/value pairs (the process
// environment or an otelagent_config object). Parsing never fails: a bad value
// is reported once, naming the variable, and replaced by the default.
#pragma once

#include <otelagent/otelagent.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace otelagent {

enum class Compression : uint8_t { kNone, kGzip, kZstd };
enum class ExporterKind : uint8_t { kOtlp, kConsole, kNone };
// OTEL_EXPORTER_OTLP_PROTOCOL: http/protobuf (the default) or grpc.
enum class Protocol : uint8_t { kHttpProtobuf, kGrpc };
enum class SamplerKind : uint8_t {
  kAlwaysOn,
  kAlwaysOff,
  kRatio,
  kParentAlwaysOn,
  kParentAlwaysOff,
  kParentRatio
};

using KeyValues = std::vector<std::pair<std::string, std::string>>;

// Limits applied to every span; each is at most the internal cap of the same
// name in otelagent.h.
struct Limits {
  uint32_t attr_value_chars = OTELAGENT_MAX_VALUE_BYTES;  // characters of a string value
  uint32_t attr_count = OTELAGENT_MAX_ATTRS;              // attributes per span
  uint32_t event_count = OTELAGENT_MAX_EVENTS;
  uint32_t link_count = OTELAGENT_MAX_LINKS;
  uint32_t event_attr_count = OTELAGENT_MAX_ATTRS;  // attributes per event
  uint32_t link_attr_count = OTELAGENT_MAX_ATTRS;   // attributes per link
};

struct Config {
  bool disabled = false;
  std::string service_name;  // empty: unknown_service:<executable>
  KeyValues resource_attrs;
  Protocol protocol = Protocol::kHttpProtobuf;
  // The URL for http/protobuf; for grpc the base URL (scheme, authority), to
  // which the transport puts the service's method path.
  std::string endpoint = "http://localhost:4318/v1/traces";
  KeyValues headers;
  uint32_t timeout_ms = 10000;
  Compression compression = Compression::kNone;
  std::string certificate, client_key, client_certificate;
  ExporterKind exporter = ExporterKind::kOtlp;
  SamplerKind sampler = SamplerKind::kParentAlwaysOn;
  double sampler_ratio = 1.0;
  bool prop_tracecontext = true, prop_baggage = true, prop_xray = false;
  uint32_t schedule_delay_ms = 5000;
  uint32_t export_timeout_ms = 30000;
  uint32_t max_queue_size = 2048;
  uint32_t max_export_batch_size = 512;
  Limits limits;
  // Extensions (OTELAGENT_*).
  bool xray_ids = false;
  bool allow_tsc = true;  // OTELAGENT_CLOCK=tsc (default) or realtime
  size_t ring_bytes = 256u * 1024;
  uint32_t shutdown_timeout_ms = 3000;
  uint32_t retry_initial_ms = 1000;
  uint32_t retry_max_ms = 30000;
  uint32_t retry_max_elapsed_ms = 300000;
  // The disk spool: off when empty (the plain library's default).
  std::string spool_dir;
  uint64_t spool_max_bytes = uint64_t{256} << 20;
};

// The default ring size when a spool is configured (OTELAGENT_RING_BYTES
// unset).
constexpr size_t kSpoolRingBytes = 1024u * 1024;

using Settings = std::map<std::string, std::string, std::less<>>;

// Longest key and value a setting may have (a longer environment value is
// ignored with a warning).
constexpr size_t kConfigKeyMax = OTELAGENT_CONFIG_KEY_MAX;
constexpr size_t kConfigValueMax = OTELAGENT_CONFIG_VALUE_MAX;

// Whether `key` is one the agent reads (otelagent_config_set accepts only these).
bool config_key_known(std::string_view key);

// Copies the known variables of `env` (an environ-style array) into `out`.
// A value longer than kConfigValueMax is ignored with a warning.
void config_load_env(char *const *env, Settings *out, std::vector<std::string> *warnings);

// Why `url` cannot be used as the OTLP endpoint, or "" when it can. The
// configuration module only checks the scheme; the lifecycle passes the HTTP
// transport's full check (libcurl's URL parser), which this module may not use.
using UrlCheck = std::string (*)(std::string_view url);

// Parses `settings`. Each problem is appended to `warnings`, at most one per
// variable (and never a header value); the caller prints them.
Config config_parse(const Settings &settings, std::vector<std::string> *warnings,
                    UrlCheck check_url = nullptr);

// `url` without the user:password@ part of its authority, for messages
// (credentials are never logged).
std::string url_for_messages(std::string_view url);

// Percent-decodes `in` into `out`. Returns false on a malformed escape.
bool percent_decode(std::string_view in, std::string *out);
// Parses "k=v,k2=v2" with percent-encoded values. Returns false (and leaves
// `out` empty) when any member is malformed.
bool parse_key_values(std::string_view in, KeyValues *out);

}  // namespace otelagent
