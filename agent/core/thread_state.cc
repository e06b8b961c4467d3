#include "core/thread_state.h"

#include <sys/mman.h>
#include <unistd.h>

#include <new>

#include "core/log.h"

namespace otelagent {

namespace {

std::atomic<ThreadState *> g_states{nullptr};
std::atomic<size_t> g_ring_bytes{1u << 20};

// initial-exec: the hot path reads this with one instruction, no call into
// the dynamic loader.
thread_local ThreadState *t_state __attribute__((tls_model("initial-exec"))) = nullptr;

// Releases the state when its thread exits.
struct ThreadExitGuard {
  ThreadState *state = nullptr;
  ~ThreadExitGuard() {
    if (state != nullptr) {
      // Pairs with the acquire CAS of the next thread that adopts the state:
      // everything this thread wrote is visible to it.
      state->owner.store(0, std::memory_order_release);
      t_state = nullptr;
    }
  }
};
thread_local ThreadExitGuard t_guard;

ThreadState *create_state() {
  void *mem = mmap(nullptr, sizeof(SpanSlot) * OTELAGENT_MAX_OPEN_SPANS_PER_THREAD,
                   PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return nullptr;
  auto *st = new (std::nothrow) ThreadState();
  if (st == nullptr || !st->ring.init(g_ring_bytes.load(std::memory_order_relaxed))) {
    delete st;
    munmap(mem, sizeof(SpanSlot) * OTELAGENT_MAX_OPEN_SPANS_PER_THREAD);
    return nullptr;
  }
  // Anonymous memory is zero, which is a free slot; construct in place so the
  // atomics are properly begun, touching only the slot headers' pages.
  st->slots = static_cast<SpanSlot *>(mem);
  for (uint32_t i = 0; i < OTELAGENT_MAX_OPEN_SPANS_PER_THREAD; ++i) {
    SpanSlot *s = &st->slots[i];
    s->state.store(SpanSlot::kFree, std::memory_order_relaxed);
    s->index = static_cast<uint16_t>(i);
    s->home = st;
  }
  return st;
}

}  // namespace

void thread_states_set_ring_bytes(size_t bytes) {
  g_ring_bytes.store(bytes, std::memory_order_relaxed);
}

ThreadState *thread_states() {
  return g_states.load(std::memory_order_acquire);
}

SpanSlot *ThreadState::acquire_slot() {
  const uint32_t n = OTELAGENT_MAX_OPEN_SPANS_PER_THREAD;
  for (uint32_t k = 0; k < n; ++k) {
    uint32_t i = free_hint + k;
    if (i >= n) i -= n;
    SpanSlot *s = &slots[i];
    // Pairs with the release store in span end (possibly on another thread):
    // that thread's use of the slot happened before our reuse.
    if (s->state.load(std::memory_order_acquire) == SpanSlot::kFree) {
      s->state.store(SpanSlot::kOpen, std::memory_order_relaxed);
      free_hint = i + 1 < n ? i + 1 : 0;
      return s;
    }
  }
  return nullptr;
}

__attribute__((noinline, cold)) ThreadState *register_thread() {
  const uint64_t me = static_cast<uint64_t>(gettid());
  ThreadState *st = nullptr;
  // Adopt a released state first, so memory stays bounded by live threads.
  for (ThreadState *s = thread_states(); s != nullptr; s = s->next) {
    uint64_t expected = 0;
    // Pairs with the release store of the previous owner's exit guard.
    if (s->owner.load(std::memory_order_relaxed) == 0 &&
        s->owner.compare_exchange_strong(expected, me, std::memory_order_acquire)) {
      st = s;
      break;
    }
  }
  if (st == nullptr) {
    st = create_state();
    if (st == nullptr) {
      log_warn_once(Once::kThreadStart,
                    "cannot allocate span storage for a thread; its spans are dropped");
      return nullptr;
    }
    st->owner.store(me, std::memory_order_relaxed);
    ThreadState *head = g_states.load(std::memory_order_relaxed);
    do st->next = head;
    // Release: the new state is fully built before readers can reach it.
    while (!g_states.compare_exchange_weak(head, st, std::memory_order_release,
                                           std::memory_order_relaxed));
  }
  st->ids.seed();
  st->since_wake = 0;
  t_guard.state = st;
  t_state = st;
  return st;
}

ThreadState *this_thread_state() {
  ThreadState *st = t_state;
  if (__builtin_expect(st != nullptr, 1)) return st;
  return register_thread();
}

void thread_states_after_fork_child() {
  ThreadState *mine = t_state;
  const uint64_t me = static_cast<uint64_t>(gettid());
  for (ThreadState *s = thread_states(); s != nullptr; s = s->next) {
    s->ring.reset();
    s->since_wake = 0;
    s->started.reset();
    s->ended.reset();
    s->recorded.reset();
    s->sampled_out.reset();
    s->ring_full.reset();
    s->span_limit.reset();
    s->truncated.reset();
    s->queued.reset();
    s->owner.store(s == mine ? me : 0, std::memory_order_relaxed);
  }
  if (mine != nullptr) mine->ids.seed();
}

}  // namespace otelagent
