// What a gRPC server sends back, on arbitrary bytes: the
// grpc-status-details-bin parser (base64, then google.rpc.Status with its
// RetryInfo), the grpc-message decoder and the response-message framing must
// never read past their input, and what they return must stay in range.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "export/grpc_wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string_view in(reinterpret_cast<const char *>(data), size);
  otelagent::GrpcStatusDetails d;
  if (otelagent::grpc_parse_status_details(in, &d)) {
    if (d.retry_delay_ms < -1 || d.retry_delay_ms > 24 * 3600 * 1000) std::abort();
    if (d.retry_delay_ms >= 0 && !d.retry_info) std::abort();
  }
  if (otelagent::grpc_message_decode(in).size() > in.size()) std::abort();
  bool compressed = false;
  std::string_view message;
  if (otelagent::grpc_first_message(in, &compressed, &message) &&
      (message.data() != in.data() + 5 || message.size() > in.size() - 5))
    std::abort();
  return 0;
}
