#include "core/spsc_ring.h"

#include <sys/mman.h>

#include "core/ring_file.h"

namespace otelagent {

bool SpscRing::init(size_t capacity) {
  size_t cap = 128 * 1024;
  while (cap < capacity) cap <<= 1;
  return init_exact(cap);
}

bool SpscRing::init_exact(size_t capacity) {
  if (capacity < 4096 || (capacity & (capacity - 1)) != 0 || buf_ != nullptr) return false;
  ring_file_detail::Mapping m;
  if (ring_file_detail::map_ring(capacity, &m)) {
    ctl_ = m.ctl;
    buf_ = m.buf;
    file_ = m.handle;
  } else {
    // Populated up front: a page fault on first touch costs a microsecond or
    // more, which would land on a host thread's span end. The ring's memory
    // is therefore resident from the thread's first span
    // (OTELAGENT_RING_BYTES).
    void *p = mmap(nullptr, capacity, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) return false;
    buf_ = static_cast<uint8_t *>(p);
  }
  cap_ = capacity;
  mask_ = capacity - 1;
  read_ = ctl_->head.load(std::memory_order_relaxed);
  return true;
}

SpscRing::~SpscRing() {
  if (file_ != nullptr)
    ring_file_detail::unmap_ring(file_);
  else if (buf_ != nullptr)
    munmap(buf_, cap_);
}

}  // namespace otelagent
