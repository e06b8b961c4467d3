#include "spsc_ring.h"

#include <sys/mman.h>

namespace otelagent {

bool SpscRing::init(size_t capacity) {
  size_t cap = 128 * 1024;
  while (cap < capacity) cap <<= 1;
  // Anonymous memory: pages become resident only as the ring first reaches
  // them, so a thread that emits little costs little.
  void *p = mmap(nullptr, cap, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return false;
  buf_ = static_cast<uint8_t *>(p);
  cap_ = cap;
  mask_ = cap - 1;
  return true;
}

SpscRing::~SpscRing() {
  if (buf_ != nullptr) munmap(buf_, cap_);
}

}  // namespace otelagent
