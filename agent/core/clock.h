// Wall-clock reads for span timestamps.
#pragma once

#include <cstdint>
#include <ctime>

namespace otelagent {

// Nanoseconds since the Unix epoch. CLOCK_REALTIME is served by the vDSO on
// Linux, so this is no system call.
inline uint64_t now_unix_nano() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u +
         static_cast<uint64_t>(ts.tv_nsec);
}

// Monotonic milliseconds, for deadlines and rate limits.
inline uint64_t now_mono_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000u +
         static_cast<uint64_t>(ts.tv_nsec) / 1000000u;
}

}  // namespace otelagent
