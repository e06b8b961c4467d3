// The agent's own diagnostics, on stderr with an "otelagent: " prefix. Each
// kind of problem is reported once (warn_once); repeated events such as drops
// are summed and reported periodically by the exporter, never per span.
#pragma once

#include <cstdint>

namespace otelagent {

enum class Once : uint32_t {
  kGrpcUnsupported,
  kZstdFallback,
  kExportConnect,
  kExportHttpStatus,
  kPartialSuccess,
  kRingFull,
  kSpanLimit,
  kThreadStart,
  kExporterStart,
  kExporterFault,
  kQueueFull,
  kCount
};

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// Logs only the first time `kind` is reported in this process.
void log_warn_once(Once kind, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Re-arms every warn_once kind (after fork the child reports afresh).
void log_reset_once();

}  // namespace otelagent
