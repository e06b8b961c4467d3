// The sampling decision of a new span (OTEL_TRACES_SAMPLER).
#pragma once

#include <otelagent/otelagent.h>

#include "runtime.h"

namespace otelagent {

// traceidratio compares the low 64 bits of the trace id, read big-endian,
// with ratio * 2^64 (the same test as the OpenTelemetry SDKs).
inline bool ratio_sampled(const Runtime &rt, const uint8_t trace_id[16]) {
  if (rt.ratio_all) return true;
  uint64_t low = 0;
  for (int i = 8; i < 16; ++i) low = (low << 8) | trace_id[i];
  return low < rt.ratio_bound;
}

// `parent` is a valid context or nullptr for a root span. A parent whose
// upstream deferred the decision (X-Ray Sampled=?) is decided like a root.
inline bool should_sample(const Runtime &rt, const otelagent_span_context *parent,
                          const uint8_t trace_id[16]) {
  if (parent != nullptr && parent->sampling == OTELAGENT_SAMPLING_DEFERRED) parent = nullptr;
  switch (rt.cfg.sampler) {
    case SamplerKind::kAlwaysOn:
      return true;
    case SamplerKind::kAlwaysOff:
      return false;
    case SamplerKind::kRatio:
      return ratio_sampled(rt, trace_id);
    case SamplerKind::kParentAlwaysOn:
      return parent != nullptr ? (parent->trace_flags & 1) != 0 : true;
    case SamplerKind::kParentAlwaysOff:
      return parent != nullptr ? (parent->trace_flags & 1) != 0 : false;
    case SamplerKind::kParentRatio:
      return parent != nullptr ? (parent->trace_flags & 1) != 0 : ratio_sampled(rt, trace_id);
  }
  return true;
}

// Fills the derived sampler fields of `rt` from its config.
void sampler_prepare(Runtime *rt);

}  // namespace otelagent
