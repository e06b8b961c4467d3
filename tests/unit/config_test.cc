#include "core/config.h"

#include <otelagent/otelagent.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include <gtest/gtest.h>

#include "export/http_transport.h"

namespace otelagent {
namespace {

using Settings = std::map<std::string, std::string, std::less<>>;

std::string joined(const std::vector<std::string> &w) {
  std::string s;
  for (const auto &x : w) s += x + "\n";
  return s;
}

TEST(Config, DefaultsFollowTheSpec) {
  std::vector<std::string> w;
  Config c = config_parse({}, &w);
  EXPECT_TRUE(w.empty());
  EXPECT_EQ(c.endpoint, "http://localhost:4318/v1/traces");
  EXPECT_EQ(c.compression, Compression::kNone);
  EXPECT_EQ(c.timeout_ms, 10000u);
  EXPECT_EQ(c.schedule_delay_ms, 5000u);
  EXPECT_EQ(c.max_queue_size, 2048u);
  EXPECT_EQ(c.max_export_batch_size, 512u);
  EXPECT_EQ(c.sampler, SamplerKind::kParentAlwaysOn);
  EXPECT_TRUE(c.prop_tracecontext && c.prop_baggage && !c.prop_xray);
  EXPECT_FALSE(c.disabled);
}

TEST(Config, GarbageValuesWarnNameTheVariableAndKeepDefaults) {
  std::vector<std::string> w;
  Config c = config_parse({{"OTEL_BSP_SCHEDULE_DELAY", "soon"},
                           {"OTEL_BSP_MAX_QUEUE_SIZE", "-5"},
                           {"OTEL_EXPORTER_OTLP_TIMEOUT", "99999999999999999999"},
                           {"OTEL_EXPORTER_OTLP_COMPRESSION", "brotli"},
                           {"OTEL_TRACES_SAMPLER", "sometimes"},
                           {"OTEL_TRACES_SAMPLER_ARG", "1.5"},
                           {"OTEL_SDK_DISABLED", "yes"},
                           {"OTEL_TRACES_EXPORTER", "zipkin"},
                           {"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "12x"}},
                          &w);
  EXPECT_EQ(c.schedule_delay_ms, 5000u);
  EXPECT_EQ(c.max_queue_size, 2048u);
  EXPECT_EQ(c.timeout_ms, 10000u);
  EXPECT_EQ(c.compression, Compression::kNone);
  EXPECT_EQ(c.sampler, SamplerKind::kParentAlwaysOn);
  EXPECT_EQ(c.sampler_ratio, 1.0);
  EXPECT_FALSE(c.disabled);
  EXPECT_EQ(c.exporter, ExporterKind::kOtlp);
  EXPECT_EQ(c.limits.attr_count, static_cast<uint32_t>(OTELAGENT_MAX_ATTRS));
  EXPECT_EQ(w.size(), 9u) << joined(w);
  for (const char *var :
       {"OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_TRACES_SAMPLER_ARG",
        "OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_SDK_DISABLED"})
    EXPECT_NE(joined(w).find(var), std::string::npos) << var;
}

TEST(Config, EnumsAreCaseInsensitiveAndEmptyMeansUnset) {
  std::vector<std::string> w;
  Config c = config_parse({{"OTEL_SDK_DISABLED", "TRUE"},
                           {"OTEL_EXPORTER_OTLP_COMPRESSION", "GZip"},
                           {"OTEL_TRACES_SAMPLER", "ParentBased_TraceIdRatio"},
                           {"OTEL_TRACES_SAMPLER_ARG", "0.25"},
                           {"OTEL_BSP_SCHEDULE_DELAY", ""}},
                          &w);
  EXPECT_TRUE(w.empty()) << joined(w);
  EXPECT_TRUE(c.disabled);
  EXPECT_EQ(c.compression, Compression::kGzip);
  EXPECT_EQ(c.sampler, SamplerKind::kParentRatio);
  EXPECT_DOUBLE_EQ(c.sampler_ratio, 0.25);
  EXPECT_EQ(c.schedule_delay_ms, 5000u);
}

TEST(Config, EndpointRules) {
  std::vector<std::string> w;
  EXPECT_EQ(config_parse({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/x/"}}, &w).endpoint,
            "http://c:4318/x/v1/traces");
  EXPECT_EQ(config_parse({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"}}, &w).endpoint,
            "http://c:4318/v1/traces");
  EXPECT_EQ(config_parse({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"},
                          {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://t:443/custom"}},
                         &w)
                .endpoint,
            "https://t:443/custom");
  EXPECT_TRUE(w.empty());
  config_parse({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"}}, &w);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("4317"), std::string::npos);
  EXPECT_NE(w[0].find("OTEL_EXPORTER_OTLP_PROTOCOL=grpc"), std::string::npos) << w[0];
  w.clear();
  Config bad = config_parse({{"OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"}}, &w);
  EXPECT_EQ(bad.endpoint, "http://localhost:4318/v1/traces");
  EXPECT_EQ(w.size(), 1u);
}

TEST(Config, HeadersArePercentDecodedAndNeverPrinted) {
  std::vector<std::string> w;
  Config c = config_parse({{"OTEL_EXPORTER_OTLP_HEADERS", "api-key=s3cr%3Dt, x-tenant = a b"}}, &w);
  ASSERT_EQ(c.headers.size(), 2u);
  EXPECT_EQ(c.headers[0].first, "api-key");
  EXPECT_EQ(c.headers[0].second, "s3cr=t");
  EXPECT_EQ(c.headers[1].second, "a b");
  c = config_parse({{"OTEL_EXPORTER_OTLP_HEADERS", "api-key=topsecret,broken"}}, &w);
  EXPECT_TRUE(c.headers.empty());
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].find("topsecret"), std::string::npos);
  EXPECT_NE(w[0].find("OTEL_EXPORTER_OTLP_HEADERS"), std::string::npos);
}

TEST(Config, ResourceAttributesAreDiscardedWholeOnADecodeError) {
  std::vector<std::string> w;
  Config c = config_parse({{"OTEL_RESOURCE_ATTRIBUTES", "a=1,b=%E2%82%AC"}}, &w);
  ASSERT_EQ(c.resource_attrs.size(), 2u);
  EXPECT_EQ(c.resource_attrs[1].second, "\xE2\x82\xAC");
  c = config_parse({{"OTEL_RESOURCE_ATTRIBUTES", "a=1,b=%ZZ"}}, &w);
  EXPECT_TRUE(c.resource_attrs.empty());
  EXPECT_EQ(w.size(), 1u);
}

TEST(Config, BatchSizeIsCappedByQueueSizeAndLimitsByInternalCaps) {
  std::vector<std::string> w;
  Config c = config_parse({{"OTEL_BSP_MAX_QUEUE_SIZE", "100"},
                           {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "500"},
                           {"OTEL_ATTRIBUTE_COUNT_LIMIT", "10"},
                           {"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "5"},
                           {"OTEL_SPAN_EVENT_COUNT_LIMIT", "100000"}},
                          &w);
  EXPECT_EQ(c.max_export_batch_size, 100u);
  EXPECT_EQ(c.limits.attr_count, 5u);         // the SPAN_ variant wins
  EXPECT_EQ(c.limits.event_attr_count, 10u);  // the general one applies to events
  EXPECT_EQ(c.limits.event_count,
            static_cast<uint32_t>(OTELAGENT_MAX_EVENTS));  // over the cap: warned
  EXPECT_EQ(w.size(), 2u) << joined(w);
}

TEST(Config, PropagatorsList) {
  std::vector<std::string> w;
  Config c = config_parse({{"OTEL_PROPAGATORS", "xray, tracecontext ,b3"}}, &w);
  EXPECT_TRUE(c.prop_xray && c.prop_tracecontext && !c.prop_baggage);
  EXPECT_EQ(w.size(), 1u);  // b3 is not supported
}

}  // namespace
}  // namespace otelagent

namespace otelagent {
namespace {

TEST(Config, AgentExtensions) {
  std::vector<std::string> w;
  Config c =
      config_parse({{"OTELAGENT_ID_GENERATOR", "XRay"}, {"OTELAGENT_CLOCK", "realtime"}}, &w);
  EXPECT_TRUE(c.xray_ids);
  EXPECT_FALSE(c.allow_tsc);
  EXPECT_TRUE(w.empty());
  c = config_parse({{"OTELAGENT_ID_GENERATOR", "uuid"}, {"OTELAGENT_CLOCK", "hpet"}}, &w);
  EXPECT_FALSE(c.xray_ids);
  EXPECT_TRUE(c.allow_tsc);
  EXPECT_EQ(w.size(), 2u);
}

}  // namespace
}  // namespace otelagent

namespace otelagent {
namespace {

size_t count(const std::string &text, const std::string &what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(Config, AVariableThatServesSeveralSettingsWarnsOnce) {
  // OTEL_ATTRIBUTE_COUNT_LIMIT is the fallback of the span, event and link
  // attribute limits: it was reported once per limit.
  std::vector<std::string> w;
  Config c = config_parse({{"OTEL_ATTRIBUTE_COUNT_LIMIT", "lots"}}, &w);
  EXPECT_EQ(w.size(), 1u) << joined(w);
  EXPECT_EQ(count(joined(w), "OTEL_ATTRIBUTE_COUNT_LIMIT"), 1u) << joined(w);
  EXPECT_EQ(c.limits.attr_count, static_cast<uint32_t>(OTELAGENT_MAX_ATTRS));
  EXPECT_EQ(c.limits.link_attr_count, static_cast<uint32_t>(OTELAGENT_MAX_ATTRS));

  w.clear();
  c = config_parse({{"OTEL_PROPAGATORS", "b3,tracecontext,jaeger"}}, &w);
  ASSERT_EQ(w.size(), 1u) << joined(w);
  EXPECT_NE(w[0].find("b3,jaeger"), std::string::npos) << w[0];
  EXPECT_TRUE(c.prop_tracecontext);

  // A bad batch size is reported once, not again as larger than the queue.
  w.clear();
  c = config_parse({{"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "x"}, {"OTEL_BSP_MAX_QUEUE_SIZE", "100"}},
                   &w);
  EXPECT_EQ(w.size(), 1u) << joined(w);
  EXPECT_EQ(c.max_export_batch_size, 100u);
}

TEST(Config, ResourceAttributesAreRepairedToValidUtf8) {
  std::vector<std::string> w;
  Config c = config_parse({{"OTEL_RESOURCE_ATTRIBUTES", "a=x%FFy,%C3=ok,c=%E2%82%AC"},
                           {"OTEL_SERVICE_NAME", "svc\xC0"}},
                          &w);
  ASSERT_EQ(c.resource_attrs.size(), 3u);
  EXPECT_EQ(c.resource_attrs[0].second, "x\xEF\xBF\xBDy");
  EXPECT_EQ(c.resource_attrs[1].first, "\xEF\xBF\xBD");
  EXPECT_EQ(c.resource_attrs[2].second, "\xE2\x82\xAC");  // valid: untouched
  EXPECT_EQ(c.service_name, "svc\xEF\xBF\xBD");
  ASSERT_EQ(w.size(), 2u) << joined(w);
  EXPECT_EQ(count(joined(w), "OTEL_RESOURCE_ATTRIBUTES"), 1u);
  EXPECT_EQ(count(joined(w), "OTEL_SERVICE_NAME"), 1u);
  EXPECT_EQ(count(joined(w), "U+FFFD"), 2u);
}

TEST(Config, HeadersThatCouldBreakTheRequestAreNotSent) {
  for (const char *var : {"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"}) {
    std::vector<std::string> w;
    Config c =
        config_parse({{var,
                       "ok=1,crlf=s1%0D%0AInjected: yes,lf=s2%0Ax,nul=s3%00,del=s4%7F,bell=s5%07,"
                       "tab=a%09b,high=caf%C3%A9,bad name=s6,x%0Ay=s7,@at=s8,api-key=s3cret"}},
                     &w);
    std::vector<std::string> names;
    for (const auto &kv : c.headers) names.push_back(kv.first);
    EXPECT_EQ(names, (std::vector<std::string>{"ok", "tab", "high", "api-key"}));
    ASSERT_EQ(w.size(), 1u) << joined(w);
    const std::string &m = w[0];
    EXPECT_NE(m.find(var), std::string::npos) << m;
    for (const char *name : {"\"crlf\"", "\"lf\"", "\"nul\"", "\"del\"", "\"bell\"", "\"bad name\"",
                             "\"x?y\"", "\"@at\""})
      EXPECT_NE(m.find(name), std::string::npos) << name << " in " << m;
    // Names only: no value, not even a part of one.
    for (const char *value : {"s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "Injected", "s3cret"})
      EXPECT_EQ(m.find(value), std::string::npos) << value << " in " << m;
    EXPECT_EQ(m.find('\n'), std::string::npos);
    EXPECT_EQ(m.find('\r'), std::string::npos);
  }
}

TEST(Config, MalformedEndpointsAreRejectedAtStartNamingTheVariable) {
  const std::string kDefault = "http://localhost:4318/v1/traces";
  for (const char *var : {"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"}) {
    for (const char *url : {"http://127.0.0.1:99999", "http://[::1:4318", "collector:4318",
                            "127.0.0.1:4318", "ftp://collector:4318", "HTTP://collector:4318",
                            "http://", "http://:4318", "http:///v1/traces", "http://collector:0",
                            "http://coll ector:4318", "http://collector:4318/v1/tra ces"}) {
      std::vector<std::string> w;
      Config c = config_parse({{var, url}}, &w, http_endpoint_problem);
      EXPECT_EQ(c.endpoint, kDefault) << var << "=" << url;
      ASSERT_EQ(w.size(), 1u) << var << "=" << url << "\n" << joined(w);
      EXPECT_EQ(w[0].rfind(std::string(var) + "=\"" + url + "\"", 0), 0u) << w[0];
      EXPECT_NE(w[0].find("using " + kDefault), std::string::npos) << w[0];
    }
  }
  for (const char *url : {"http://[::1]:4318/v1/traces", "https://collector/v1/traces",
                          "http://collector:65535/x?y=1", "http://user:pw@collector:1/"}) {
    std::vector<std::string> w;
    Config c =
        config_parse({{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url}}, &w, http_endpoint_problem);
    EXPECT_EQ(c.endpoint, url);
    EXPECT_TRUE(w.empty()) << url << "\n" << joined(w);
  }
  // The base variable is checked once "v1/traces" is appended, and named.
  std::vector<std::string> w;
  Config c = config_parse({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://[::1]:4318"}}, &w,
                          http_endpoint_problem);
  EXPECT_EQ(c.endpoint, "http://[::1]:4318/v1/traces");
  EXPECT_TRUE(w.empty()) << joined(w);
}

TEST(Config, EnvironmentValuesAreBounded) {
  std::string at_max = "OTEL_SERVICE_NAME=" + std::string(OTELAGENT_CONFIG_VALUE_MAX, 's');
  std::string over = "OTEL_RESOURCE_ATTRIBUTES=" + std::string(OTELAGENT_CONFIG_VALUE_MAX + 1, 'r');
  std::string other = "PATH=/bin";
  std::string known = "OTEL_BSP_SCHEDULE_DELAY=7";
  char *env[] = {at_max.data(), over.data(), other.data(), known.data(), nullptr};
  Settings s;
  std::vector<std::string> w;
  config_load_env(env, &s, &w);
  EXPECT_EQ(s.size(), 2u);
  EXPECT_EQ(s["OTEL_SERVICE_NAME"].size(), static_cast<size_t>(OTELAGENT_CONFIG_VALUE_MAX));
  EXPECT_EQ(s["OTEL_BSP_SCHEDULE_DELAY"], "7");
  EXPECT_EQ(s.count("OTEL_RESOURCE_ATTRIBUTES"), 0u);
  ASSERT_EQ(w.size(), 1u) << joined(w);
  EXPECT_NE(w[0].find("OTEL_RESOURCE_ATTRIBUTES"), std::string::npos);
  EXPECT_EQ(w[0].find("rrr"), std::string::npos);
}

// `n` bytes of `fill` that end where an unreadable page begins: reading one
// byte past them is a SIGSEGV.
class GuardedBytes {
 public:
  GuardedBytes(size_t n, char fill) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    size_ = (n + page - 1) / page * page + page;
    base_ = static_cast<char *>(
        mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    EXPECT_NE(base_, MAP_FAILED);
    mprotect(base_ + size_ - page, page, PROT_NONE);
    data_ = base_ + size_ - page - n;
    memset(data_, fill, n);
  }
  ~GuardedBytes() { munmap(base_, size_); }
  char *data() { return data_; }

 private:
  char *base_, *data_;
  size_t size_;
};

TEST(Config, ConfigSetBoundsWhatItReads) {
  otelagent_config *cfg = otelagent_config_new();
  ASSERT_NE(cfg, nullptr);
  const std::string key = "OTEL_SERVICE_NAME";
  // NUL-terminated key and value.
  EXPECT_EQ(otelagent_config_set(cfg, key.c_str(), SIZE_MAX, "svc", SIZE_MAX), OTELAGENT_OK);
  EXPECT_EQ(otelagent_config_set(cfg, "OTEL_NOPE", SIZE_MAX, "x", 1), OTELAGENT_E_UNKNOWN_KEY);
  // Unterminated strings passed as NUL-terminated, and huge lengths: the call
  // stops at the maximum instead of reading on into the guard page.
  GuardedBytes long_key(OTELAGENT_CONFIG_KEY_MAX + 1, 'K');
  EXPECT_EQ(otelagent_config_set(cfg, long_key.data(), SIZE_MAX, "x", 1), OTELAGENT_E_TOO_LONG);
  GuardedBytes long_value(OTELAGENT_CONFIG_VALUE_MAX + 1, 'v');
  EXPECT_EQ(otelagent_config_set(cfg, key.c_str(), key.size(), long_value.data(), SIZE_MAX),
            OTELAGENT_E_TOO_LONG);
  GuardedBytes small(8, 'x');
  EXPECT_EQ(otelagent_config_set(cfg, small.data(), size_t{1} << 40, "x", 1), OTELAGENT_E_TOO_LONG);
  EXPECT_EQ(otelagent_config_set(cfg, key.c_str(), key.size(), small.data(), SIZE_MAX / 2),
            OTELAGENT_E_TOO_LONG);
  // A length that fits in memory: copying it would run into the guard page.
  EXPECT_EQ(otelagent_config_set(cfg, key.c_str(), key.size(), small.data(), size_t{1} << 20),
            OTELAGENT_E_TOO_LONG);
  // Exactly the maxima are accepted.
  EXPECT_EQ(otelagent_config_set(cfg, key.c_str(), key.size(), long_value.data(),
                                 OTELAGENT_CONFIG_VALUE_MAX),
            OTELAGENT_OK);
  EXPECT_EQ(otelagent_config_set(cfg, long_key.data(), OTELAGENT_CONFIG_KEY_MAX, "x", 1),
            OTELAGENT_E_UNKNOWN_KEY);
  otelagent_config_free(cfg);
}

}  // namespace
}  // namespace otelagent

namespace otelagent {
namespace {

// Review finding: a rejected endpoint's warning printed its credentials.
TEST(Config, EndpointWarningsNeverShowCredentials) {
  std::vector<std::string> warnings;
  std::map<std::string, std::string, std::less<>> settings{
      {"OTEL_EXPORTER_OTLP_ENDPOINT", "http://alice:s3cret@pw@collector.example:99999"}};
  config_parse(settings, &warnings, http_endpoint_problem);
  ASSERT_FALSE(warnings.empty());
  for (const auto &w : warnings) {
    EXPECT_EQ(w.find("s3cret"), std::string::npos) << w;
    EXPECT_EQ(w.find("alice"), std::string::npos) << w;
  }
  EXPECT_EQ(url_for_messages("https://u:p@h:1/x@y"), "https://h:1/x@y");
  EXPECT_EQ(url_for_messages("http://h:1/v1/traces"), "http://h:1/v1/traces");
}

}  // namespace
}  // namespace otelagent

namespace otelagent {
namespace {

TEST(Config, GrpcProtocolDefaultsFollowTheSpecification) {
  std::vector<std::string> w;
  Config c = config_parse({{"OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"}}, &w);
  EXPECT_EQ(c.protocol, Protocol::kGrpc);
  EXPECT_EQ(c.endpoint, "http://localhost:4317");
  EXPECT_TRUE(w.empty());
  // The base endpoint is used as it is: no path is appended for gRPC.
  c = config_parse({{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "GRPC"},
                    {"OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"},
                    {"OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317"}},
                   &w);
  EXPECT_EQ(c.protocol, Protocol::kGrpc);
  EXPECT_EQ(c.endpoint, "https://collector:4317");
  EXPECT_TRUE(w.empty());
  c = config_parse({{"OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"}}, &w);
  EXPECT_EQ(c.protocol, Protocol::kHttpProtobuf);
  EXPECT_EQ(c.endpoint, "http://localhost:4318/v1/traces");
  EXPECT_TRUE(w.empty());
}

TEST(Config, AGrpcEndpointWithoutSchemeTakesItFromInsecure) {
  std::vector<std::string> w;
  Config c = config_parse(
      {{"OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"}, {"OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"}},
      &w);
  EXPECT_EQ(c.endpoint, "https://collector:4317");
  EXPECT_TRUE(w.empty()) << w[0];
  c = config_parse({{"OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"},
                    {"OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"},
                    {"OTEL_EXPORTER_OTLP_INSECURE", "TRUE"}},
                   &w);
  EXPECT_EQ(c.endpoint, "http://collector:4317");
  EXPECT_TRUE(w.empty()) << w[0];
  // The signal's own variables win.
  c = config_parse({{"OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"},
                    {"OTEL_EXPORTER_OTLP_ENDPOINT", "other:4317"},
                    {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4317"},
                    {"OTEL_EXPORTER_OTLP_INSECURE", "true"},
                    {"OTEL_EXPORTER_OTLP_TRACES_INSECURE", "false"}},
                   &w);
  EXPECT_EQ(c.endpoint, "https://collector:4317");
  EXPECT_TRUE(w.empty()) << w[0];
  // A scheme decides alone.
  c = config_parse({{"OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"},
                    {"OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317"},
                    {"OTEL_EXPORTER_OTLP_INSECURE", "true"}},
                   &w);
  EXPECT_EQ(c.endpoint, "https://collector:4317");
  c = config_parse({{"OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"},
                    {"OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"}},
                   &w);
  EXPECT_EQ(c.endpoint, "http://collector:4317");
  EXPECT_TRUE(w.empty()) << w[0];
  // Not a boolean: one warning, and TLS.
  c = config_parse({{"OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"},
                    {"OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"},
                    {"OTEL_EXPORTER_OTLP_INSECURE", "yes"}},
                   &w);
  EXPECT_EQ(c.endpoint, "https://collector:4317");
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("OTEL_EXPORTER_OTLP_INSECURE"), std::string::npos) << w[0];
  w.clear();
  // OTLP/HTTP endpoints are URLs: insecure does not apply.
  c = config_parse(
      {{"OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"}, {"OTEL_EXPORTER_OTLP_INSECURE", "true"}},
      &w);
  EXPECT_EQ(c.endpoint, "http://localhost:4318/v1/traces");
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("is not an http(s) URL"), std::string::npos) << w[0];
}

TEST(Config, AProtocolOnTheOtherProtocolsPortGetsOneWarning) {
  std::vector<std::string> w;
  config_parse({{"OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"},
                {"OTEL_EXPORTER_OTLP_ENDPOINT", "http://user:pw@c:4318"}},
               &w);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("4318"), std::string::npos);
  EXPECT_NE(w[0].find("OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"), std::string::npos) << w[0];
  EXPECT_EQ(w[0].find("pw"), std::string::npos) << w[0];
  w.clear();
  config_parse({{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://[::1]:4317/v1/traces"}}, &w);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("grpc"), std::string::npos);
  w.clear();
  // No port written, or an IPv6 literal without one: nothing to say.
  config_parse(
      {{"OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"}, {"OTEL_EXPORTER_OTLP_ENDPOINT", "http://[::4318]"}},
      &w);
  EXPECT_TRUE(w.empty()) << w[0];
}

TEST(Config, HttpJsonIsRefusedWithAClearWarning) {
  std::vector<std::string> w;
  Config c = config_parse({{"OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"}}, &w);
  EXPECT_EQ(c.protocol, Protocol::kHttpProtobuf);
  EXPECT_EQ(c.endpoint, "http://localhost:4318/v1/traces");
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("is not supported (http/protobuf and grpc are)"), std::string::npos) << w[0];
  w.clear();
  config_parse({{"OTEL_EXPORTER_OTLP_PROTOCOL", "thrift"}}, &w);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("using http/protobuf"), std::string::npos) << w[0];
}

}  // namespace
}  // namespace otelagent

// Issue 8: with a spool, records stay in the rings until their batch is on
// disk, so the default ring is larger; an explicit size still wins.
TEST(Config, ASpoolGetsLargerRingsUnlessTheSizeIsSet) {
  std::vector<std::string> w;
  EXPECT_EQ(otelagent::config_parse({}, &w).ring_bytes, 256u * 1024);
  EXPECT_EQ(otelagent::config_parse({{"OTELAGENT_SPOOL_DIR", "/tmp/x"}}, &w).ring_bytes,
            otelagent::kSpoolRingBytes);
  EXPECT_EQ(otelagent::config_parse(
                {{"OTELAGENT_SPOOL_DIR", "/tmp/x"}, {"OTELAGENT_RING_BYTES", "131072"}}, &w)
                .ring_bytes,
            131072u);
  EXPECT_TRUE(w.empty());
}
