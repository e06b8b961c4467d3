#include "spsc_ring.h"

#include <sys/mman.h>

namespace otelagent {

bool SpscRing::init(size_t capacity) {
  size_t cap = 128 * 1024;
  while (cap < capacity) cap <<= 1;
  // Populated up front: a page fault on first touch costs a microsecond or
  // more, which would land on a host thread's span end. The ring's memory is
  // therefore resident from the thread's first span (OTELAGENT_RING_BYTES).
  void *p =
      mmap(nullptr, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
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
