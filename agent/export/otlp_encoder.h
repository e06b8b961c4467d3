// Encodes span records as an OTLP ExportTraceServiceRequest (protobuf wire
// format). Records must have passed sanitize (valid UTF-8, limits applied).
// Spans are grouped by instrumentation scope under the one resource of this
// process. Exporter thread only; no state.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/record.h"

namespace otelagent {

// An attribute list as the resource has it: string or int values.
struct ResourceAttr {
  std::string key;
  std::string str;
  int64_t i64 = 0;
  bool is_int = false;
};

// The bytes of a Resource message body with `attrs`.
std::string encode_resource(const std::vector<ResourceAttr> &attrs);

// Writes the request for `spans` to `*out`. False (and `*out` empty) only if
// the encoder's own size accounting is wrong, which tests rule out.
bool encode_request(std::string_view resource_body, const std::vector<RecordView> &spans,
                    std::string *out);

// ExportTraceServiceResponse.partial_success.
struct PartialSuccess {
  int64_t rejected_spans = 0;
  std::string error_message;
};

// Reads the partial_success of a response body. False when the body is not
// a valid response (an empty body is valid and means full success).
bool decode_export_response(std::string_view body, PartialSuccess *out);

}  // namespace otelagent
