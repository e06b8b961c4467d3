// A bounded single-producer / single-consumer ring of variable-length byte
// records. Each host thread owns one (the producer); the exporter thread is
// the only consumer. Indices grow without wrapping; positions are taken
// modulo the power-of-two capacity. The producer keeps a cached copy of the
// released tail on its own cache line, so the common push touches no line the
// consumer writes.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace otelagent {

class SpscRing {
 public:
  // The indices both sides share. In an anonymous ring it is a member; in a
  // ring backed by a file (ring_file.h) it lives in the file's header, so that
  // a process that finds the file after this one died knows which bytes hold
  // records. `head` and the producer's `tail_cache` share a line the consumer
  // only reads; `tail` (the released tail) has its own.
  struct Control {
    alignas(64) std::atomic<uint64_t> head{0};
    uint64_t tail_cache = 0;  // producer's copy of tail
    alignas(64) std::atomic<uint64_t> tail{0};
  };
  static_assert(std::atomic<uint64_t>::is_always_lock_free,
                "the indices are shared through a file mapping");

  SpscRing() = default;
  SpscRing(const SpscRing &) = delete;
  SpscRing &operator=(const SpscRing &) = delete;
  ~SpscRing();

  // Allocates `capacity` bytes (rounded up to a power of two, at least 128
  // KiB), in a file of the ring directory when one is configured
  // (ring_files_configure), else (or when the file cannot be made) in
  // anonymous memory. Returns false when out of memory. Not thread-safe; done
  // once.
  bool init(size_t capacity);
  // Like init, with exactly `capacity` bytes, a power of two of at least 4
  // KiB (false otherwise): the small rings of the tests and the fuzz corpus.
  bool init_exact(size_t capacity);

  // Producer: copies one record in, or returns false (nothing written) when
  // there is not room for it. Never waits.
  bool push(const void *data, uint32_t len) {
    Control *c = ctl_;
    const uint64_t need = kHdr + pad8(len);
    const uint64_t head = c->head.load(std::memory_order_relaxed);
    const uint64_t pos = head & mask_;
    const uint64_t contiguous = cap_ - pos;
    // A record never wraps: when it does not fit before the end, the rest of
    // the buffer is skipped with a padding marker.
    const uint64_t total = need <= contiguous ? need : contiguous + need;
    if (cap_ - (head - c->tail_cache) < total) {
      // Pairs with the consumer's release store of tail.
      c->tail_cache = c->tail.load(std::memory_order_acquire);
      if (cap_ - (head - c->tail_cache) < total) return false;
    }
    uint64_t at = head;
    if (total != need) {
      const uint32_t pad = kPadding;
      std::memcpy(buf_ + pos, &pad, sizeof pad);
      at += contiguous;
    }
    uint8_t *dst = buf_ + (at & mask_);
    std::memcpy(dst, &len, sizeof len);
    std::memcpy(dst + kHdr, data, len);
    // Pairs with the consumer's acquire load of head: the bytes are visible
    // before the index that publishes them (and, in a file ring, a process
    // killed after this store has left whole records below head).
    c->head.store(at + need, std::memory_order_release);
    return true;
  }

  // Consumer, in two phases (the disk spool's write-ahead: a record's space
  // is freed only once the record is safe elsewhere): read() calls
  // fn(const uint8_t *data, uint32_t len) for the records after those already
  // read, in order, at most `max_records`, without freeing them (the producer
  // cannot overwrite them, and a file ring still holds them after a crash);
  // release() frees everything read so far. fn must copy what it keeps.
  // Returns the number of records read.
  template <typename Fn>
  size_t read(Fn &&fn, size_t max_records) {
    // Pairs with the producer's release store of head.
    const uint64_t head = ctl_->head.load(std::memory_order_acquire);
    uint64_t r = read_;
    size_t n = 0;
    while (r != head && n < max_records) {
      const uint64_t pos = r & mask_;
      uint32_t len;
      std::memcpy(&len, buf_ + pos, sizeof len);
      if (len == kPadding) {
        r += cap_ - pos;
        continue;
      }
      fn(buf_ + pos + kHdr, len);
      r += kHdr + pad8(len);
      ++n;
    }
    read_ = r;
    return n;
  }
  void release() {
    // Pairs with the producer's acquire load of tail.
    ctl_->tail.store(read_, std::memory_order_release);
  }

  // Consumer: read() then release().
  template <typename Fn>
  size_t consume(Fn &&fn, size_t max_records) {
    const size_t n = read(fn, max_records);
    release();
    return n;
  }

  // Bytes in use (read or not, until released); approximate when called off
  // the consumer thread.
  size_t used() const {
    return static_cast<size_t>(ctl_->head.load(std::memory_order_acquire) -
                               ctl_->tail.load(std::memory_order_acquire));
  }
  size_t capacity() const { return cap_; }
  // The registration of the ring's file (ring_file.h), or nullptr for a ring
  // in anonymous memory.
  const void *file() const { return file_; }

  // Total bytes ever pushed (the producer index), read by the consumer to
  // know how far it must drain to have seen everything pushed so far.
  uint64_t produced() const { return ctl_->head.load(std::memory_order_acquire); }
  // Total bytes ever read (released or not). Consumer thread only.
  uint64_t consumed() const { return read_; }

  // Drops all content. Only when neither side runs (the child after fork).
  void reset() {
    const uint64_t head = ctl_->head.load(std::memory_order_relaxed);
    ctl_->tail.store(head, std::memory_order_relaxed);
    ctl_->tail_cache = head;
    read_ = head;
  }

 private:
  static constexpr uint64_t kHdr = 8;
  static constexpr uint32_t kPadding = 0xFFFFFFFFu;
  static uint64_t pad8(uint64_t n) { return (n + 7) & ~uint64_t{7}; }

  // Read-only after init: what the producer needs besides the indices.
  alignas(64) Control *ctl_ = &own_;
  uint8_t *buf_ = nullptr;
  uint64_t cap_ = 0;
  uint64_t mask_ = 0;
  void *file_ = nullptr;  // the ring file's registration, when file-backed
  // Consumer only: the read cursor, ahead of (or at) the released tail.
  alignas(64) uint64_t read_ = 0;
  // The indices of an anonymous ring.
  Control own_;
};

}  // namespace otelagent
