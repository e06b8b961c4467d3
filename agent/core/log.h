// The agent's own diagnostics: lines with an "otelagent: " prefix, on stderr
// by default, or to a file, nowhere, or a host callback (OTELAGENT_LOG and
// otelagent_log_set_handler). Each
// kind of problem is reported once (warn_once); repeated events such as drops
// are summed and reported periodically by the exporter, never per span.
#pragma once

#include <cstdint>
#include <string_view>

namespace otelagent {

enum class Once : uint32_t {
  kGrpcNotHttp2,
  kZstdFallback,
  kExportConnect,
  kExportHttpStatus,
  kPartialSuccess,
  kRingFull,
  kSpanLimit,
  kThreadStart,
  kThreadExit,
  kExporterStart,
  kExporterFault,
  kQueueFull,
  kSpoolOpen,
  kSpoolGone,
  kSpoolNoSpace,
  kSpoolNotWritable,
  kSpoolDirGone,
  kSpoolIo,
  kSpoolCorrupt,
  kSpoolDirMode,
  kCount
};

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// Logs only the first time `kind` is reported in this process.
void log_warn_once(Once kind, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Re-arms every warn_once kind (after fork the child reports afresh).
void log_reset_once();

// Where lines go when no handler is set: "stderr" (or empty), "none", or a
// file path opened for appending (on failure: stderr, and one warning).
void log_set_destination(std::string_view dest);
// A host callback that takes every line; nullptr restores the destination.
void log_set_handler(void (*fn)(void *, int32_t, const char *, size_t), void *user);

}  // namespace otelagent
