// The exporter thread: a libuv loop that drains the host threads' rings,
// cuts batches, cleans and encodes them, compresses them and sends them
// (one request at a time over OTLP/HTTP, up to kGrpcStreams calls at once
// over OTLP/gRPC), retrying with backoff. Encoded batches wait in an outbox
// between "encoded" and "sent"; they leave it in order, each once its request
// has finished.
//
// With a disk spool (OTELAGENT_SPOOL_DIR) the exporter is durable: records
// are read from the rings (file-backed, see core/ring_file.h) without being
// freed, cut into batches, and each batch is written to the spool before its
// records' ring space is released; a batch's segment is removed when the
// receiver has answered for it. So every span that has ended is, at every
// moment, in a ring file or a segment. At most a few batches are held in
// memory; the others wait on disk (their outbox entries keep only the
// segment's name) and are read back in order when their turn comes. Batches
// with a segment are retried for as long as they are on disk (the spool's
// size cap, which drops the oldest first, is the bound), not dropped when the
// retry budget runs out. Segments and ring files left by processes that died
// are sent too. If the spool cannot be written (disk full, read-only), the
// exporter runs as without one until a write succeeds again.
//
// Thread use: the constructor, start(), flush(), stop() and wake() are for
// any other thread; everything else runs on the exporter thread.
//
// Overload: the exporter holds at most OTEL_BSP_MAX_QUEUE_SIZE spans (drained
// records plus encoded batches). When that queue is full it still empties
// every ring that is more than half full, dropping its spans (counted in
// spans_dropped_queue_full), so a slow or absent collector never fills the
// host threads' rings; a burst that fits stays in the rings until there is
// room. Draining is fair: each
// pass starts at the next ring (round robin) and gives every ring an equal
// share of the room before any ring gets more.
//
// Faults: every entry from the loop (wake, timers, the transport's answer) is
// an exception boundary. An exception drops the batch it concerned (counted
// in spans_dropped_export_failed, one warning) and the loop goes on.
#pragma once

#include <uv.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/config.h"
#include "core/ids.h"
#include "export/compressor.h"
#include "export/http_transport.h"
#include "export/spool.h"

namespace otelagent {

class SpscRing;

// Counters the exporter thread writes and statistics read.
struct ExportCounters {
  std::atomic<uint64_t> exported{0}, rejected{0}, failed{0}, shutdown_dropped{0}, printed{0},
      requests{0}, retries{0}, bytes_sent{0}, truncated{0}, queue_full{0};
  // The disk spool: spans exported after being read back from disk; spans
  // of this process whose segment the spool dropped (cap, corruption: counted
  // there); spans left in the spool at shutdown; spans of other (dead)
  // processes that finished here, which were never queued in this one.
  std::atomic<uint64_t> replayed{0}, spool_lost{0}, left_in_spool{0}, foreign_done{0};
  std::atomic<uint64_t> latency_us_last{0}, latency_us_max{0}, spool_write_failed{0};
  void reset();
  // Spans of this process that left the pipeline one way or another.
  uint64_t completed() const;
};
ExportCounters &export_counters();
// In the child after fork(), before any exporter starts there.
void exporter_after_fork_child();

class Exporter {
 public:
  enum class Result { kDone, kTimeout, kStopped };
  enum class StopResult { kFlushed, kTimeout, kAbandoned };

  // `cfg` and `resource_body` are copied; `clock_base` is the runtime's
  // (TSC, wall) pair for converting TSC span times. `wake_pending` (which
  // must outlive every exporter) is cleared each time the loop starts a pass,
  // so that host threads know a new wake-up is needed (see agent.cc).
  Exporter(const Config &cfg, std::string resource_body, ClockPair clock_base,
           std::atomic<bool> *wake_pending);
  // Only after stop() returned something other than kAbandoned, or when
  // start() failed: an abandoned exporter must never be destroyed.
  ~Exporter();
  Exporter(const Exporter &) = delete;
  Exporter &operator=(const Exporter &) = delete;

  // Sets up the loop and the transport and starts the thread. On failure
  // (e.g. no file descriptor left) everything is released again and a
  // static description of what failed is returned; nullptr on success.
  const char *start();
  // Wakes the loop (coalesced by libuv). Host threads call it only through
  // agent.cc, which guarantees the exporter is not stopping meanwhile.
  void wake();
  // Waits until every span ended before the call is out of the pipeline, or
  // until the timeout, or until the exporter stops.
  Result flush(uint32_t timeout_ms);
  // Flushes for at most `timeout_ms`, then tells the loop to stop (what is
  // still queued is dropped and counted) and waits at most `teardown_ms`
  // more for the thread to end. kAbandoned: the thread did not end in time
  // and was detached; it may still use this object, which must be leaked.
  StopResult stop(uint32_t timeout_ms, uint32_t teardown_ms);
  // Marks the exporter as one whose thread may still use it (in a fork
  // child: the parent's exporter, whose thread is not there). The owner must
  // then leak it rather than destroy it.
  void abandon() { abandoned_.store(true, std::memory_order_relaxed); }
  bool abandoned() const { return abandoned_.load(std::memory_order_relaxed); }

 private:
  struct Batch {
    std::string payload;  // compressed request body
    Compression encoding;
    uint32_t spans;
    uint64_t last_seq;
    uint32_t attempts = 0;
    uint64_t first_try_ms = 0;
    uint64_t request = 0;  // the transport's id while in flight, else 0
    uint64_t sent_us = 0;  // when the request in flight was started
    bool done = false;     // exported or dropped; leaves when it is the front
    // Durable mode: the batch's segment (empty: none). While `on_disk` the
    // payload is not in memory; otherwise the segment is claimed (seg.fd).
    SpoolSegment seg;
    bool on_disk = false;
    bool from_disk = false;  // read back from the spool (counted as replayed)
    bool foreign = false;    // left by a process that died; not in this one's sequence
    bool orphan = false;     // foreign, and its segment is that process's (claim_orphan)
  };

  void run();
  // Runs `f` (a loop callback's body) behind the exception boundary.
  template <typename F>
  void guarded(F &&f) noexcept;
  void on_fault(const char *what) noexcept;
  void wake_locked();
  void pump();
  void drain_rings();
  // Spans held in memory (what OTEL_BSP_MAX_QUEUE_SIZE bounds).
  size_t held() const { return pending_offsets_.size() + outbox_spans_ - disk_spans_; }
  void cut(size_t n);
  void cut_all();
  void maybe_send();
  void send(Batch &b);
  void on_response(Batch &b, Response &&r);
  void retry_later(Batch &b, int64_t retry_after_ms);
  uint64_t partial_rejections(const Batch &b, const Response &r);
  void complete(Batch &b, uint64_t exported, uint64_t rejected, uint64_t failed);
  void pop_completed();
  void check_flush();
  void report_drops();
  void shut_down_loop();

  void convert_times(uint8_t *record, const ClockPair &base, const ClockPair &now);
  // Durable mode.
  bool durable() const { return spool_ != nullptr && !spool_broken_; }
  void open_spool();
  void recover_dead_rings();
  bool spool_batch(Batch &b);
  void load_from_spool();
  size_t memory_cap() const;
  uint64_t claimed_bytes() const;
  void demote_to_disk();
  void to_current_encoding(Batch &b);
  size_t in_memory() const;
  void release_rings();
  bool rings_under_pressure() const;
  void spool_everything();

  Config cfg_;
  std::string resource_;
  ClockPair clock_base_, clock_now_;
  std::thread thread_;
  uv_loop_t loop_{};
  uv_async_t async_{};
  uv_timer_t schedule_timer_{}, retry_timer_{}, report_timer_{};
  std::unique_ptr<HttpTransport> transport_;
  Compressor compressor_;
  IdGenerator rng_;
  Compression encoding_;

  // Exporter-thread state.
  std::vector<uint8_t> pending_;  // drained records, back to back
  std::vector<uint32_t> pending_offsets_;
  std::deque<Batch> outbox_;
  size_t outbox_cap_ = 4;
  size_t outbox_spans_ = 0;        // spans in outbox_'s unfinished batches
  Batch *at_risk_ = nullptr;       // the batch an exception now concerns
  std::unique_ptr<Spool> spool_;   // durable mode (exporter thread only)
  bool spool_broken_ = false;      // the last write failed: run as without a spool
  uint64_t spool_retry_ms_ = 0;    // when to try writing again
  bool read_unreleased_ = false;   // records read from the rings wait for release
  bool stopping_ = false;          // shutting down: new batches go to disk only
  size_t disk_spans_ = 0;          // spans of this process in entries on disk
  uint64_t next_recovery_ms_ = 0;  // next look for dead processes' ring files
  std::vector<SpscRing *> rings_;  // drain_rings' scratch list
  size_t drain_start_ = 0;         // round-robin start of the next drain
  std::atomic<bool> *wake_pending_;
  std::atomic<bool> abandoned_{false};
  bool retry_waiting_ = false;
  bool timer_fired_ = false;
  uint64_t drained_seq_ = 0;    // records drained so far
  uint64_t completed_seq_ = 0;  // records whose batch has finished
  std::string scratch_, encoded_;
  std::vector<std::string> cleaned_;
  uint64_t reported_drops_ = 0;

  // Flush hand-shake (guarded by mu_).
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t flush_requested_ = 0, flush_done_ = 0;
  bool stop_now_ = false, stopped_ = false, exited_ = false;
  // Exporter-thread view of the flush in progress.
  uint64_t flush_gen_ = 0;                                // 0: none in progress
  std::vector<std::pair<void *, uint64_t>> flush_marks_;  // ring -> produced
  bool flush_drained_ = false;
  uint64_t flush_target_seq_ = 0;
};

}  // namespace otelagent
