#include "ids.h"

#include <sys/random.h>
#include <unistd.h>

#include <cstring>
#include <ctime>

namespace otelagent {

namespace {
uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
}  // namespace

void IdGenerator::seed() {
  uint64_t mix[4] = {0, 0, 0, 0};
  ssize_t got = getrandom(mix, sizeof mix, GRND_NONBLOCK);
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t x = static_cast<uint64_t>(getpid()) << 32 ^ static_cast<uint64_t>(gettid()) ^
               static_cast<uint64_t>(ts.tv_nsec) ^ reinterpret_cast<uintptr_t>(this) ^
               static_cast<uint64_t>(got);
  for (auto &w : mix) w ^= splitmix64(&x);
  std::memcpy(s_, mix, sizeof s_);
  if (!seeded()) s_[0] = 1;
}

void IdGenerator::span_id(uint8_t out[8]) {
  uint64_t v;
  do v = next();
  while (v == 0);
  std::memcpy(out, &v, 8);
}

void IdGenerator::trace_id(uint8_t out[16], uint32_t xray_epoch_seconds) {
  uint64_t hi, lo;
  do {
    hi = next();
    lo = next();
  } while (hi == 0 && lo == 0);
  std::memcpy(out, &hi, 8);
  std::memcpy(out + 8, &lo, 8);
  if (xray_epoch_seconds != 0) {
    out[0] = static_cast<uint8_t>(xray_epoch_seconds >> 24);
    out[1] = static_cast<uint8_t>(xray_epoch_seconds >> 16);
    out[2] = static_cast<uint8_t>(xray_epoch_seconds >> 8);
    out[3] = static_cast<uint8_t>(xray_epoch_seconds);
  }
}

}  // namespace otelagent
