// A bounded single-producer / single-consumer ring of variable-length byte
// records. Each host thread owns one (the producer); the exporter thread is
// the only consumer. Indices grow without wrapping; positions are taken
// modulo the power-of-two capacity. Each side keeps a cached copy of the other
// side's index on its own cache line, so the common push touches no line the
// consumer writes.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace otelagent {

class SpscRing {
 public:
  SpscRing() = default;
  SpscRing(const SpscRing &) = delete;
  SpscRing &operator=(const SpscRing &) = delete;
  ~SpscRing();

  // Allocates `capacity` bytes (rounded up to a power of two, at least 128
  // KiB). Returns false when out of memory. Not thread-safe; done once.
  bool init(size_t capacity);

  // Producer: copies one record in, or returns false (nothing written) when
  // there is not room for it. Never waits.
  bool push(const void *data, uint32_t len) {
    const uint64_t need = kHdr + pad8(len);
    const uint64_t head = head_.load(std::memory_order_relaxed);
    const uint64_t pos = head & mask_;
    const uint64_t contiguous = cap_ - pos;
    // A record never wraps: when it does not fit before the end, the rest of
    // the buffer is skipped with a padding marker.
    const uint64_t total = need <= contiguous ? need : contiguous + need;
    if (cap_ - (head - tail_cache_) < total) {
      // Pairs with the consumer's release store of tail_.
      tail_cache_ = tail_.load(std::memory_order_acquire);
      if (cap_ - (head - tail_cache_) < total) return false;
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
    // Pairs with the consumer's acquire load of head_: the bytes are visible
    // before the index that publishes them.
    head_.store(at + need, std::memory_order_release);
    return true;
  }

  // Consumer: calls fn(const uint8_t *data, uint32_t len) for each record in
  // order, at most `max_records`, then frees their space. fn must copy what it
  // keeps. Returns the number of records consumed.
  template <typename Fn>
  size_t consume(Fn &&fn, size_t max_records) {
    // Pairs with the producer's release store of head_.
    const uint64_t head = head_.load(std::memory_order_acquire);
    uint64_t tail = tail_.load(std::memory_order_relaxed);
    size_t n = 0;
    while (tail != head && n < max_records) {
      const uint64_t pos = tail & mask_;
      uint32_t len;
      std::memcpy(&len, buf_ + pos, sizeof len);
      if (len == kPadding) {
        tail += cap_ - pos;
        continue;
      }
      fn(buf_ + pos + kHdr, len);
      tail += kHdr + pad8(len);
      ++n;
    }
    // Pairs with the producer's acquire load of tail_.
    tail_.store(tail, std::memory_order_release);
    return n;
  }

  // Consumer, in two phases (the disk spool's write-ahead: a record's space
  // is freed only once the record is safe elsewhere): read() calls fn for the
  // records after those already read, at most `max_records`, without freeing
  // them; release() frees everything read so far. TO BE IMPLEMENTED (issue 8).
  //   template <typename Fn> size_t read(Fn &&fn, size_t max_records);
  //   void release();

  // Bytes in use; approximate when called off the consumer thread.
  size_t used() const {
    return static_cast<size_t>(head_.load(std::memory_order_acquire) -
                               tail_.load(std::memory_order_acquire));
  }
  size_t capacity() const { return cap_; }

  // Total bytes ever pushed (the producer index), read by the consumer to
  // know how far it must drain to have seen everything pushed so far.
  uint64_t produced() const { return head_.load(std::memory_order_acquire); }
  // Total bytes ever consumed. Consumer thread only.
  uint64_t consumed() const { return tail_.load(std::memory_order_relaxed); }

  // Drops all content. Only when neither side runs (the child after fork).
  void reset() {
    const uint64_t head = head_.load(std::memory_order_relaxed);
    tail_.store(head, std::memory_order_relaxed);
    tail_cache_ = head;
  }

 private:
  static constexpr uint64_t kHdr = 8;
  static constexpr uint32_t kPadding = 0xFFFFFFFFu;
  static uint64_t pad8(uint64_t n) { return (n + 7) & ~uint64_t{7}; }

  alignas(64) std::atomic<uint64_t> head_{0};
  uint64_t tail_cache_ = 0;  // producer's copy of tail_
  alignas(64) std::atomic<uint64_t> tail_{0};
  alignas(64) uint8_t *buf_ = nullptr;
  uint64_t cap_ = 0;
  uint64_t mask_ = 0;
};

}  // namespace otelagent
