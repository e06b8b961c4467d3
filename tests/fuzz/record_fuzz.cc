// A span record from outside, as otelagent_record_span and the exporter
// thread treat it: validation, then sanitize, OTLP encoding and the console
// formatter; the request is decoded again with the protoc-generated classes,
// which reject invalid UTF-8 as a strict receiver does. The same bytes also
// go through every reader without validation: readers keep their own bounds.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/record.h"
#include "export/console.h"
#include "export/otlp_encoder.h"
#include "export/sanitize.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"

namespace {

using namespace otelagent;

// Small limits, so that inputs of a few hundred bytes reach them too.
const Limits kLimits{8, 4, 2, 2, 2, 2};

void export_like_the_agent(const RecordView &raw, bool validated) {
  std::string clean;
  RecordView v = raw;
  if (!record_is_clean(raw, kLimits)) {
    record_clean(raw, kLimits, &clean);
    v = RecordView{reinterpret_cast<const uint8_t *>(clean.data()),
                   static_cast<uint32_t>(clean.size())};
    // The cleaned copy is well-formed and clean: sanitizing is idempotent.
    if (!record_is_clean(v, kLimits)) std::abort();
  }
  std::string request;
  // The encoder's two passes (sizes, then bytes) must agree on any record.
  if (!encode_request(encode_resource({{"service.name", "fuzz", 0, false}}), {v, raw}, &request))
    std::abort();
  if (!encode_request({}, {v}, &request)) std::abort();
  if (validated) {
    opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest req;
    if (!req.ParseFromString(request)) std::abort();
    if (req.resource_spans(0).scope_spans(0).spans_size() != 1) std::abort();
  }
  std::string text = console_format({v, raw, v});
  if (text.empty()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::vector<uint8_t> rec(data, data + size);
  export_like_the_agent(RecordView{rec.data(), static_cast<uint32_t>(rec.size())}, false);
  // Mutations rarely keep total_len right; fix it so validation can pass.
  if (rec.size() >= 4) store_u32(rec.data() + rec::kTotalLen, static_cast<uint32_t>(rec.size()));
  if (record_validate(rec.data(), rec.size()))
    export_like_the_agent(RecordView{rec.data(), static_cast<uint32_t>(rec.size())}, true);
  return 0;
}
