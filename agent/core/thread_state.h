// Per-host-thread state: the span ring the thread produces into, the slab of
// span slots it starts spans in, its counters and its id generator.
//
// States live in an append-only list and are never freed: when a thread exits
// its state is released, drained by the exporter like any other, and adopted
// by the next new thread. So a span handle, or a ring the exporter is reading,
// can never point at freed memory, and the memory held is bounded by the
// largest number of threads that emitted at once, plus one state per 32 spans
// that exited threads left open for good (see register_thread).
#pragma once

#include <otelagent/otelagent.h>

#include <atomic>
#include <cstdint>

#include "core/config.h"
#include "core/ids.h"
#include "core/spsc_ring.h"

namespace otelagent {

struct ThreadState;

// A span being built. Only the thread that currently uses the span writes it.
// `seq` is odd while the span is open; every open and every end adds one, so
// a handle (which carries the odd value it was opened with) matches only the
// span it was made for: a stale or double-ended handle sees another value.
// Slabs are mapped without being touched; a slot's page is first written when
// the slot is first used, so an idle slot costs no memory.
struct SpanSlot {
  std::atomic<uint32_t> seq{0};
  uint16_t index = 0;
  uint8_t recording = 0;
  uint8_t status_final = 0;                   // OK was set: the status can no longer change
  uint8_t use_tsc = 0;                        // times come from the TSC (the runtime's choice)
  uint32_t len = 0;                           // bytes of `buf` in use
  uint16_t attrs = 0, events = 0, links = 0;  // counts, for the limits
  ThreadState *home = nullptr;
  const Limits *limits = nullptr;  // the runtime's (runtimes are never freed)
  alignas(8) uint8_t buf[OTELAGENT_MAX_SPAN_BYTES];

  bool open() const { return (seq.load(std::memory_order_relaxed) & 1u) != 0; }
};

// A counter written by one thread at a time (the state's owner) and read by
// any: a relaxed load and store, no locked instruction on the hot path.
struct OwnedCounter {
  std::atomic<uint64_t> v{0};
  void add(uint64_t n = 1) {
    v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t get() const { return v.load(std::memory_order_relaxed); }
  void reset() { v.store(0, std::memory_order_relaxed); }
};

struct ThreadState {
  // 0 when no live thread owns this state; otherwise the owner's tid.
  std::atomic<uint64_t> owner{0};
  ThreadState *next = nullptr;  // immutable once published
  uint32_t id = 0;              // index in the state table (handles carry it)

  SpscRing ring;
  SpanSlot *slots = nullptr;  // OTELAGENT_MAX_OPEN_SPANS_PER_THREAD of them
  uint32_t free_hint = 0;     // owner's guess of the lowest free slot
  uint32_t since_wake = 0;    // spans pushed since this thread last woke the exporter
  uint64_t since_wake_bytes = 0;
  IdGenerator ids;

  OwnedCounter started, ended, recorded, sampled_out, ring_full, span_limit, truncated, queued;

  // Owner: opens a free slot (its `seq` becomes odd), or nullptr when all are
  // open.
  SpanSlot *acquire_slot();
  // How many slots are open (a scan; cold paths only).
  uint32_t open_count() const;
};

// Span handles are tokens, not addresses: the state's table index, the slot
// index and the slot's `seq` when the span was opened.
inline otelagent_span *span_handle(const ThreadState *st, const SpanSlot *s, uint32_t seq) {
  const uint64_t token = (static_cast<uint64_t>(st->id) << 40) |
                         (static_cast<uint64_t>(s->index) << 32) | static_cast<uint64_t>(seq);
  return reinterpret_cast<otelagent_span *>(static_cast<uintptr_t>(token));
}

// States by id (ids start at 1; 0 is never a valid handle), so that a span
// handle finds its slot without trusting any pointer. Zero-initialised static
// storage: only the pages of ids in use are ever touched.
constexpr uint32_t kMaxThreadStates = 1u << 16;
extern std::atomic<ThreadState *> g_state_table[kMaxThreadStates];

// The slot a handle names, or nullptr when it names none (not a handle). The
// caller compares `*seq` with the slot's seq to know whether it still is the
// same span. Inline: every span call starts here.
inline SpanSlot *span_slot_of(const otelagent_span *handle, uint32_t *seq) {
  const auto token = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(handle));
  const uint64_t id = token >> 40;
  *seq = static_cast<uint32_t>(token);
  if (__builtin_expect(id == 0 || id >= kMaxThreadStates || (*seq & 1u) == 0, 0)) return nullptr;
  // Pairs with the release store in create_state (the handle's id was
  // published before any handle carrying it existed).
  ThreadState *st = g_state_table[id].load(std::memory_order_acquire);
  if (__builtin_expect(st == nullptr, 0)) return nullptr;
  return &st->slots[(token >> 32) & 0xFFu];
}

// The calling thread's state, registering it on first use (cold path: one
// allocation of the ring and slab, done once per new thread). nullptr when
// memory is exhausted, when the process already has 65535 states, or when
// the thread is past its exit clean-up (then the caller's span is dropped and
// counted in orphan_counts().thread_exit).
ThreadState *this_thread_state();

// The calling thread's state if it has one; never registers.
ThreadState *current_thread_state();

// Process-wide counts of the rare cases that have no thread state to count
// in (cold paths; one relaxed read-modify-write each).
struct OrphanCounts {
  // Spans dropped because their thread emitted after its exit clean-up.
  std::atomic<uint64_t> thread_exit{0};
  // Spans ended after otelagent_shutdown (dropped: no exporter will run).
  std::atomic<uint64_t> after_shutdown{0};
  // Ends of spans that do not record, on a thread that never registered.
  std::atomic<uint64_t> ended_unregistered{0};
  void reset();
};
OrphanCounts &orphan_counts();
void thread_exit_drop();

// Capacity of the rings of threads registered from now on.
void thread_states_set_ring_bytes(size_t bytes);

// First state of the registry list (exporter and statistics iterate it).
ThreadState *thread_states();

// In the child after fork(): every other thread is gone, so release their
// states, empty all rings (the parent exports their content) and re-seed the
// calling thread's id generator.
void thread_states_after_fork_child();

}  // namespace otelagent
