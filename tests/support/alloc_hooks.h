// Counts heap allocations made by the calling thread, by replacing malloc,
// calloc, realloc, the aligned allocators and every operator new in the
// executable that links alloc_hooks.cc. Not for sanitizer builds (they own
// malloc).
#pragma once

#include <cstdint>

namespace otelagent_test {

struct AllocCounts {
  uint64_t mallocs = 0;  // malloc, calloc, realloc, memalign & co
  uint64_t news = 0;     // operator new (all forms)
};

// Starts counting on this thread (resets the counts).
void alloc_count_begin();
// Stops counting on this thread and returns what was counted.
AllocCounts alloc_count_end();

}  // namespace otelagent_test
