#include "core/config.h"

#include <otelagent/otelagent.h>

#include <gtest/gtest.h>

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
  w.clear();
  config_parse({{"OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"}}, &w);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("http/protobuf"), std::string::npos);
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
