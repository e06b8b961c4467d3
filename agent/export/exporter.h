// The exporter thread: a libuv loop that drains the host threads' rings,
// cuts batches, cleans and encodes them, compresses them and sends them, one
// request at a time, retrying with backoff. Encoded batches wait in an outbox
// between "encoded" and "sent" (the place a disk spool will take).
//
// Thread use: the constructor, start(), request_flush(), wait_flush(),
// stop() and wake() are for any other thread; everything else runs on the
// exporter thread.
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

namespace otelagent {

// Counters the exporter thread writes and statistics read.
struct ExportCounters {
  std::atomic<uint64_t> exported{0}, rejected{0}, failed{0}, shutdown_dropped{0}, printed{0},
      requests{0}, retries{0}, bytes_sent{0}, truncated{0};
  void reset();
  // Spans that left the pipeline one way or another.
  uint64_t completed() const;
};
ExportCounters &export_counters();

class Exporter {
 public:
  // `cfg` and `resource_body` are copied; `clock_base` is the runtime's
  // (TSC, wall) pair for converting TSC span times.
  Exporter(const Config &cfg, std::string resource_body, ClockPair clock_base);
  ~Exporter();
  Exporter(const Exporter &) = delete;
  Exporter &operator=(const Exporter &) = delete;

  // Starts the thread. False when it could not be started (logged).
  bool start();
  // Wakes the loop (coalesced). Any thread; async-signal-unsafe.
  void wake();
  // Waits until every span ended before the call is out of the pipeline, or
  // until the timeout. True when done.
  bool flush(uint32_t timeout_ms);
  // Flushes for at most `timeout_ms`, then stops and joins the thread; what
  // is still queued is dropped and counted.
  bool stop(uint32_t timeout_ms);

 private:
  struct Batch {
    std::string payload;  // compressed request body
    Compression encoding;
    uint32_t spans;
    uint64_t last_seq;
    uint32_t attempts = 0;
    uint64_t first_try_ms = 0;
  };

  void run();
  void pump();
  void drain_rings();
  void cut(size_t n);
  void maybe_send();
  void on_response(Response &&r);
  void finish_front(uint64_t exported, uint64_t rejected, uint64_t failed);
  void check_flush();
  void report_drops();
  void shut_down_loop();

  void convert_times(uint8_t *record);

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
  bool stopping_ = false, stop_now_ = false, stopped_ = false;
  // Exporter-thread view of the flush in progress.
  uint64_t flush_gen_ = 0;                                // 0: none in progress
  std::vector<std::pair<void *, uint64_t>> flush_marks_;  // ring -> produced
  bool flush_drained_ = false;
  uint64_t flush_target_seq_ = 0;
};

}  // namespace otelagent
