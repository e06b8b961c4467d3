#include "core/thread_state.h"

#include <limits.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <new>

#include "core/log.h"
#include "core/ring_file.h"

namespace otelagent {

std::atomic<ThreadState *> g_state_table[kMaxThreadStates];

namespace {

constexpr uint32_t kMaxStates = kMaxThreadStates;
std::atomic<uint32_t> g_state_count{0};

std::atomic<ThreadState *> g_states{nullptr};
std::atomic<size_t> g_ring_bytes{256u * 1024};
OrphanCounts g_orphans;

// initial-exec: the hot path reads this with one instruction, no call into
// the dynamic loader.
thread_local ThreadState *t_state __attribute__((tls_model("initial-exec"))) = nullptr;
// Set once the thread's exit clean-up has released its state: anything it
// emits afterwards is dropped and counted instead of registering again (a
// registration then would never be released).
thread_local bool t_exited __attribute__((tls_model("initial-exec"))) = false;
thread_local uint8_t t_exit_calls __attribute__((tls_model("initial-exec"))) = 0;

pthread_key_t g_exit_key;
pthread_once_t g_exit_key_once = PTHREAD_ONCE_INIT;

// Releases the state when its thread exits. A pthread key destructor rather
// than a thread_local destructor: glibc runs key destructors after every
// thread_local destructor, so spans those end are still queued. Re-arming
// once keeps the state through a second round of key destructors, for spans
// emitted from other keys' destructors. (The library is linked -z nodelete,
// so this function is never unmapped while threads still hold the key.)
void on_thread_exit(void *p) {
  auto *st = static_cast<ThreadState *>(p);
  if (++t_exit_calls < 2 && pthread_setspecific(g_exit_key, st) == 0) return;
  t_state = nullptr;
  t_exited = true;
  // Pairs with the acquire CAS of the next thread that adopts the state:
  // everything this thread wrote is visible to it.
  st->owner.store(0, std::memory_order_release);
}

void make_exit_key() {
  if (pthread_key_create(&g_exit_key, on_thread_exit) != 0)
    log_warn("cannot create the thread-exit key; exiting threads' span storage is not reused");
}

size_t slab_bytes() {
  return sizeof(SpanSlot) * OTELAGENT_MAX_OPEN_SPANS_PER_THREAD;
}

ThreadState *create_state() {
  const uint32_t id = g_state_count.load(std::memory_order_relaxed) + 1;
  if (id >= kMaxStates) return nullptr;
  // Not populated: anonymous memory is zero, which is a free slot (even seq),
  // and a slot's page is touched only when a span first uses it.
  void *mem =
      mmap(nullptr, slab_bytes(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return nullptr;
  auto *st = new (std::nothrow) ThreadState();
  if (st == nullptr || !st->ring.init(g_ring_bytes.load(std::memory_order_relaxed))) {
    delete st;
    munmap(mem, slab_bytes());
    return nullptr;
  }
  st->slots = static_cast<SpanSlot *>(mem);
  st->id = id;
  // Registration is serialised by the caller's lock, so ids are dense.
  g_state_table[id].store(st, std::memory_order_release);
  g_state_count.store(id, std::memory_order_release);
  return st;
}

// Serialises registrations (cold path only), so ids and the list stay simple.
pthread_mutex_t g_register_mu = PTHREAD_MUTEX_INITIALIZER;

}  // namespace

void thread_states_set_ring_bytes(size_t bytes) {
  g_ring_bytes.store(bytes, std::memory_order_relaxed);
}

ThreadState *thread_states() {
  return g_states.load(std::memory_order_acquire);
}

void OrphanCounts::reset() {
  for (auto *c : {&thread_exit, &after_shutdown, &ended_unregistered})
    c->store(0, std::memory_order_relaxed);
}

OrphanCounts &orphan_counts() {
  return g_orphans;
}

void thread_exit_drop() {
  g_orphans.thread_exit.fetch_add(1, std::memory_order_relaxed);
  log_warn_once(Once::kThreadExit,
                "a thread emitted a span after its exit clean-up; dropped (counted in "
                "spans_dropped_thread_exit)");
}

SpanSlot *ThreadState::acquire_slot() {
  const uint32_t n = OTELAGENT_MAX_OPEN_SPANS_PER_THREAD;
  for (uint32_t k = 0; k < n; ++k) {
    uint32_t i = free_hint + k;
    if (i >= n) i -= n;
    SpanSlot *s = &slots[i];
    // Pairs with the release store in span end (possibly on another thread):
    // that thread's use of the slot happened before our reuse.
    const uint32_t q = s->seq.load(std::memory_order_acquire);
    if ((q & 1u) == 0) {
      // Only the owner opens a free slot, so a plain store suffices.
      s->seq.store(q + 1, std::memory_order_relaxed);
      s->index = static_cast<uint16_t>(i);
      s->home = this;
      free_hint = i + 1 < n ? i + 1 : 0;
      return s;
    }
  }
  return nullptr;
}

uint32_t ThreadState::open_count() const {
  uint32_t n = 0;
  for (uint32_t i = 0; i < OTELAGENT_MAX_OPEN_SPANS_PER_THREAD; ++i) n += slots[i].open();
  return n;
}

__attribute__((noinline, cold)) ThreadState *register_thread() {
  if (t_exited) {
    thread_exit_drop();
    return nullptr;
  }
  const uint64_t me = static_cast<uint64_t>(gettid());
  ThreadState *st = nullptr;
  pthread_mutex_lock(&g_register_mu);
  // Adopt a released state first, so memory stays bounded by live threads.
  // Spans its previous thread left open stay valid (they may have been
  // handed to other threads), so prefer a state with none open; failing
  // that, the one with the fewest, as long as the new thread keeps nearly all
  // its slots. States are thus bounded by the peak of live threads plus one
  // per kAdoptOpenMax spans left open for good.
  constexpr uint32_t kAdoptOpenMax = OTELAGENT_MAX_OPEN_SPANS_PER_THREAD / 8;
  for (;;) {
    ThreadState *best = nullptr;
    uint32_t best_open = kAdoptOpenMax;
    for (ThreadState *s = thread_states(); s != nullptr && best_open != 0; s = s->next) {
      // Pairs with the release store of the previous owner's exit clean-up.
      if (s->owner.load(std::memory_order_acquire) != 0) continue;
      const uint32_t open = s->open_count();
      if (open < best_open) {
        best = s;
        best_open = open;
      }
    }
    if (best == nullptr) break;
    uint64_t expected = 0;
    // Registrations are serialised, but an owner may be released meanwhile;
    // only a CAS from 0 takes a state.
    if (best->owner.compare_exchange_strong(expected, me, std::memory_order_acquire)) {
      st = best;
      break;
    }
  }
  if (st == nullptr && (st = create_state()) != nullptr) {
    st->owner.store(me, std::memory_order_relaxed);
    st->next = g_states.load(std::memory_order_relaxed);
    // Release: the new state is fully built before readers can reach it.
    g_states.store(st, std::memory_order_release);
  }
  pthread_mutex_unlock(&g_register_mu);
  if (st == nullptr) {
    log_warn_once(Once::kThreadStart,
                  "cannot allocate span storage for a thread; its spans are dropped");
    return nullptr;
  }
  st->ids.seed();
  st->since_wake = 0;
  st->since_wake_bytes = 0;
  st->free_hint = 0;
  pthread_once(&g_exit_key_once, make_exit_key);
  pthread_setspecific(g_exit_key, st);
  t_state = st;
  return st;
}

ThreadState *current_thread_state() {
  return t_state;
}

ThreadState *this_thread_state() {
  ThreadState *st = t_state;
  if (__builtin_expect(st != nullptr, 1)) return st;
  return register_thread();
}

void thread_states_after_fork_child() {
  ThreadState *mine = t_state;
  const uint64_t me = static_cast<uint64_t>(gettid());
  // The parent's registration lock may have been held by a thread that does
  // not exist here.
  new (&g_register_mu) pthread_mutex_t(PTHREAD_MUTEX_INITIALIZER);
  // Before the rings are emptied: a ring backed by the parent's file is
  // moved (this thread's to a file of the child's own, the others to
  // anonymous memory), so that emptying it (and every later push) leaves the
  // parent's ring alone.
  ring_files_after_fork_child(mine != nullptr ? mine->ring.file() : nullptr);
  for (ThreadState *s = thread_states(); s != nullptr; s = s->next) {
    s->ring.reset();
    s->since_wake = 0;
    s->since_wake_bytes = 0;
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
  g_orphans.reset();
  if (mine != nullptr) mine->ids.seed();
}

}  // namespace otelagent
