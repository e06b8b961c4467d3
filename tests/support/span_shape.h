// The span shape every figure in the README uses: start + 4 attributes
// (2 strings, 1 int64, 1 bool) + end, real clock reads.
#pragma once

#include <otelagent/otelagent.h>

#include <cstdint>
#include <vector>

#include "support/record_builder.h"

namespace otelagent_test {

inline int emit_reference_span(uint64_t i) {
  otelagent_span *s = nullptr;
  int rc = otelagent_span_start("GET /api/orders", 15, nullptr, &s);
  if (rc != OTELAGENT_OK) return rc;
  otelagent_span_set_str(s, "http.request.method", 19, "GET", 3);
  otelagent_span_set_str(s, "url.path", 8, "/api/orders/12345", 17);
  otelagent_span_set_int64(s, "http.response.status_code", 25, static_cast<int64_t>(200 + (i & 1)));
  otelagent_span_set_bool(s, "cache.hit", 9, (i & 2) != 0);
  return otelagent_span_end(s, 0);
}

// The same span packed for otelagent_record_span (fixed ids and times).
inline std::vector<uint8_t> reference_record() {
  return RecordBuilder()
      .name("GET /api/orders")
      .attr_str("http.request.method", "GET")
      .attr_str("url.path", "/api/orders/12345")
      .attr_i64("http.response.status_code", 200)
      .attr_bool("cache.hit", false)
      .build();
}

}  // namespace otelagent_test
