#include "core/clock.h"

#include <cstdint>
#include <fstream>
#include <string>

namespace otelagent {

bool tsc_usable() {
#if defined(__x86_64__)
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    return line.find(" constant_tsc") != std::string::npos &&
           line.find(" nonstop_tsc") != std::string::npos;
  }
#endif
  return false;
}

ClockPair clock_pair() {
  ClockPair best;
  uint64_t best_gap = UINT64_MAX;
  for (int i = 0; i < 5; ++i) {
    uint64_t before = read_tsc();
    uint64_t wall = now_unix_nano();
    uint64_t after = read_tsc();
    if (after - before < best_gap) {
      best_gap = after - before;
      best = {before + (after - before) / 2, wall};
    }
  }
  return best;
}

uint64_t tsc_to_unix(uint64_t tsc, const ClockPair &a, const ClockPair &b) {
  if (b.tsc == a.tsc) return a.unix_ns;
  const __int128 dt = static_cast<__int128>(tsc) - static_cast<__int128>(a.tsc);
  const __int128 span_ns = static_cast<__int128>(b.unix_ns) - static_cast<__int128>(a.unix_ns);
  const __int128 span_tsc = static_cast<__int128>(b.tsc) - static_cast<__int128>(a.tsc);
  // Real pairs are within decades of each other (2^62 TSC ticks is 48 years
  // at 3 GHz); values read back from a damaged ring file may be anything, and
  // their product must not overflow: they get a saturated estimate instead.
  constexpr __int128 kLim = static_cast<__int128>(1) << 62;
  if (dt > kLim || dt < -kLim || span_ns > kLim || span_ns < -kLim) {
    const long double est = static_cast<long double>(a.unix_ns) +
                            static_cast<long double>(dt) * static_cast<long double>(span_ns) /
                                static_cast<long double>(span_tsc);
    if (!(est > 0)) return 0;
    if (est >= 18446744073709551615.0L) return UINT64_MAX;
    return static_cast<uint64_t>(est);
  }
  const __int128 r = static_cast<__int128>(a.unix_ns) + dt * span_ns / span_tsc;
  if (r < 0) return 0;
  if (r > static_cast<__int128>(UINT64_MAX)) return UINT64_MAX;
  return static_cast<uint64_t>(r);
}

}  // namespace otelagent
