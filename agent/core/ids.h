// Fast random trace and span ids. Each host thread has its own generator
// (xoshiro256**) seeded from the kernel's entropy, so generating an id takes
// no lock and no system call; the forking thread's generator is re-seeded in
// the child so parent and child never hand out the same ids.
#pragma once

#include <cstdint>

namespace otelagent {

class IdGenerator {
 public:
  // Seeds from getrandom(), mixed with the thread and process identity so
  // that a failing getrandom still gives distinct streams.
  void seed();
  bool seeded() const { return s_[0] != 0 || s_[1] != 0 || s_[2] != 0 || s_[3] != 0; }

  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // A non-zero 8-byte span id.
  void span_id(uint8_t out[8]);
  // A non-zero 16-byte trace id. With `xray_epoch_seconds` non-zero its first
  // four bytes are those seconds (big-endian), as AWS X-Ray requires.
  void trace_id(uint8_t out[16], uint32_t xray_epoch_seconds);

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4] = {0, 0, 0, 0};
};

}  // namespace otelagent
