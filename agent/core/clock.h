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
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

// Span timestamps on the hot path come from the CPU's time-stamp counter when
// it is invariant (constant and non-stop: the same rate on every core, in every
// power state), which costs a third of a clock_gettime. The exporter thread
// converts them to wall time by interpolating between two (TSC, wall) pairs:
// one taken at start, one at conversion time. Elsewhere the wall clock is read
// directly.
struct ClockPair {
  uint64_t tsc = 0;
  uint64_t unix_ns = 0;
};

#if defined(__x86_64__)
inline uint64_t read_tsc() {
  return __builtin_ia32_rdtsc();
}
#else
inline uint64_t read_tsc() {
  return 0;
}
#endif

// True when the TSC is invariant on this machine (/proc/cpuinfo flags
// constant_tsc and nonstop_tsc).
bool tsc_usable();

// A (TSC, wall clock) pair read back to back (the closest of a few tries).
ClockPair clock_pair();

// Wall time of `tsc`, interpolated on the line through `a` and `b`.
uint64_t tsc_to_unix(uint64_t tsc, const ClockPair &a, const ClockPair &b);

// Monotonic milliseconds, for deadlines and rate limits.
inline uint64_t now_mono_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000u + static_cast<uint64_t>(ts.tv_nsec) / 1000000u;
}

}  // namespace otelagent
