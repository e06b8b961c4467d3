// The export-response decoder on arbitrary bytes: it must never read past
// the body, and where protobuf's own parser also accepts the body, both must
// read the same partial_success.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "export/otlp_encoder.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string_view body(reinterpret_cast<const char *>(data), size);
  otelagent::PartialSuccess ours;
  const bool ok = otelagent::decode_export_response(body, &ours);
  opentelemetry::proto::collector::trace::v1::ExportTraceServiceResponse theirs;
  if (ok && theirs.ParseFromArray(data, static_cast<int>(size))) {
    if (ours.rejected_spans != theirs.partial_success().rejected_spans()) std::abort();
    if (ours.error_message != theirs.partial_success().error_message()) std::abort();
  }
  return 0;
}
