#include "export/exporter.h"

#include <unistd.h>

#include <algorithm>

#include "core/clock.h"
#include "core/log.h"
#include "core/thread_state.h"
#include "export/console.h"
#include "export/otlp_encoder.h"
#include "export/sanitize.h"

namespace otelagent {

namespace {
ExportCounters g_counters;

void add(std::atomic<uint64_t> &c, uint64_t n) {
  // Single writer (the exporter thread); relaxed, read by statistics.
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

// The endpoint without any user:password@ part, for messages.
std::string printable_endpoint(const std::string &url) {
  size_t scheme = url.find("://");
  size_t at = url.find('@');
  size_t slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  if (scheme != std::string::npos && at != std::string::npos && at < slash)
    return url.substr(0, scheme + 3) + url.substr(at + 1);
  return url;
}

uint64_t total_drops() {
  uint64_t n = g_counters.rejected.load() + g_counters.failed.load();
  for (ThreadState *s = thread_states(); s != nullptr; s = s->next)
    n += s->ring_full.get() + s->span_limit.get();
  return n;
}
}  // namespace

void ExportCounters::reset() {
  for (auto *c : {&exported, &rejected, &failed, &shutdown_dropped, &printed, &requests, &retries,
                  &bytes_sent, &truncated})
    c->store(0, std::memory_order_relaxed);
}

uint64_t ExportCounters::completed() const {
  return exported.load(std::memory_order_relaxed) + rejected.load(std::memory_order_relaxed) +
         failed.load(std::memory_order_relaxed) + shutdown_dropped.load(std::memory_order_relaxed) +
         printed.load(std::memory_order_relaxed);
}

ExportCounters &export_counters() {
  return g_counters;
}

Exporter::Exporter(const Config &cfg, std::string resource_body, ClockPair clock_base)
    : cfg_(cfg),
      resource_(std::move(resource_body)),
      clock_base_(clock_base),
      encoding_(cfg.compression) {
  outbox_cap_ = std::max<size_t>(2, cfg_.max_queue_size / cfg_.max_export_batch_size);
}

Exporter::~Exporter() {
  if (thread_.joinable()) stop(0);
}

bool Exporter::start() {
  if (uv_loop_init(&loop_) != 0) return false;
  uv_async_init(&loop_, &async_, [](uv_async_t *h) { static_cast<Exporter *>(h->data)->pump(); });
  async_.data = this;
  for (uv_timer_t *t : {&schedule_timer_, &retry_timer_, &report_timer_}) {
    uv_timer_init(&loop_, t);
    t->data = this;
  }
  if (cfg_.exporter == ExporterKind::kOtlp) {
    transport_ = std::make_unique<HttpTransport>(&loop_, cfg_);
    if (!transport_->ok()) log_warn("could not initialise libcurl; spans will be dropped");
  }
  rng_.seed();
  try {
    thread_ = std::thread([this] { run(); });
  } catch (...) {
    log_warn("could not start the exporter thread; spans will queue until the rings are full");
    return false;
  }
  return true;
}

void Exporter::wake() {
  uv_async_send(&async_);
}

void Exporter::run() {
  pthread_setname_np(pthread_self(), "otelagent-exp");
  uv_timer_start(
      &schedule_timer_,
      [](uv_timer_t *h) {
        auto *self = static_cast<Exporter *>(h->data);
        self->timer_fired_ = true;
        self->pump();
      },
      cfg_.schedule_delay_ms, cfg_.schedule_delay_ms);
  uv_timer_start(
      &report_timer_, [](uv_timer_t *h) { static_cast<Exporter *>(h->data)->report_drops(); },
      30000, 30000);
  pump();
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
}

void Exporter::drain_rings() {
  // Stop draining when the exporter holds a full queue: the rings then fill
  // and further spans are dropped (and counted) on the host side.
  for (ThreadState *s = thread_states(); s != nullptr; s = s->next) {
    size_t room = cfg_.max_queue_size > pending_offsets_.size()
                      ? cfg_.max_queue_size - pending_offsets_.size()
                      : 0;
    if (room == 0) break;
    s->ring.consume(
        [&](const uint8_t *data, uint32_t len) {
          pending_offsets_.push_back(static_cast<uint32_t>(pending_.size()));
          pending_.insert(pending_.end(), data, data + len);
        },
        room);
  }
}

void Exporter::convert_times(uint8_t *r) {
  const uint16_t flags = load_u16(r + rec::kInternal);
  if (flags == 0) return;
  if (flags & rec::kStartIsTsc)
    store_u64(r + rec::kStart, tsc_to_unix(load_u64(r + rec::kStart), clock_base_, clock_now_));
  if (flags & rec::kEndIsTsc)
    store_u64(r + rec::kEnd, tsc_to_unix(load_u64(r + rec::kEnd), clock_base_, clock_now_));
  store_u16(r + rec::kInternal, 0);
}

void Exporter::cut(size_t n) {
  std::vector<RecordView> views;
  views.reserve(n);
  cleaned_.resize(std::max(cleaned_.size(), n));
  // Every span in the batch ended before this pair was read, so converting
  // interpolates between the start pair and this one.
  clock_now_ = clock_pair();
  for (size_t i = 0; i < n; ++i) {
    uint8_t *data = pending_.data() + pending_offsets_[i];
    convert_times(data);
    RecordView r{data, load_u32(data)};
    if (!record_is_clean(r, cfg_.limits)) {
      add(g_counters.truncated, record_clean(r, cfg_.limits, &cleaned_[i]));
      r = RecordView{reinterpret_cast<const uint8_t *>(cleaned_[i].data()),
                     static_cast<uint32_t>(cleaned_[i].size())};
    }
    views.push_back(r);
  }
  drained_seq_ += n;
  if (cfg_.exporter == ExporterKind::kConsole) {
    std::string text = console_format(views);
    ssize_t w = ::write(2, text.data(), text.size());
    (void)w;
    add(g_counters.printed, n);
    completed_seq_ = drained_seq_;
  } else if (!encode_request(resource_, views, &encoded_)) {
    log_warn("internal error: a batch of %zu spans could not be encoded and was dropped", n);
    add(g_counters.failed, n);
    completed_seq_ = drained_seq_;
  } else {
    Batch b;
    b.spans = static_cast<uint32_t>(n);
    b.last_seq = drained_seq_;
    b.encoding = encoding_;
    if (!compressor_.compress(encoding_, encoded_, &b.payload)) {
      b.encoding = Compression::kNone;
      b.payload = encoded_;
    }
    outbox_.push_back(std::move(b));
  }
  // Remove the first n records from pending.
  size_t bytes = n < pending_offsets_.size() ? pending_offsets_[n] : pending_.size();
  pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(bytes));
  pending_offsets_.erase(pending_offsets_.begin(),
                         pending_offsets_.begin() + static_cast<std::ptrdiff_t>(n));
  for (auto &o : pending_offsets_) o -= static_cast<uint32_t>(bytes);
}

void Exporter::pump() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stop_now_) {
      shut_down_loop();
      return;
    }
    if (flush_gen_ == 0 && flush_requested_ > flush_done_) {
      // A new flush: everything produced until now must get through.
      flush_gen_ = flush_requested_;
      flush_marks_.clear();
      for (ThreadState *s = thread_states(); s != nullptr; s = s->next)
        flush_marks_.emplace_back(&s->ring, s->ring.produced());
      flush_drained_ = false;
    }
  }
  const size_t batch = cfg_.max_export_batch_size;
  const bool force = timer_fired_ || flush_gen_ != 0;
  for (;;) {
    drain_rings();
    bool progressed = false;
    while (pending_offsets_.size() >= batch && outbox_.size() < outbox_cap_) {
      cut(batch);
      progressed = true;
    }
    if (force && !pending_offsets_.empty() && pending_offsets_.size() < batch &&
        outbox_.size() < outbox_cap_) {
      cut(pending_offsets_.size());
      progressed = true;
    }
    if (!progressed) break;
  }
  timer_fired_ = false;
  maybe_send();
  check_flush();
}

void Exporter::maybe_send() {
  if (outbox_.empty() || retry_waiting_ || (transport_ && transport_->busy())) return;
  Batch &b = outbox_.front();
  if (!transport_ || !transport_->ok()) {
    finish_front(0, 0, b.spans);
    return;
  }
  if (b.attempts == 0) b.first_try_ms = now_mono_ms();
  ++b.attempts;
  add(g_counters.requests, 1);
  add(g_counters.bytes_sent, b.payload.size());
  transport_->post(b.payload, content_encoding(b.encoding),
                   [this](Response &&r) { on_response(std::move(r)); });
}

void Exporter::finish_front(uint64_t exported, uint64_t rejected, uint64_t failed) {
  Batch &b = outbox_.front();
  add(g_counters.exported, exported);
  add(g_counters.rejected, rejected);
  add(g_counters.failed, failed);
  completed_seq_ = b.last_seq;
  outbox_.pop_front();
}

void Exporter::on_response(Response &&r) {
  Batch &b = outbox_.front();
  const Verdict v = classify(r.outcome, b.encoding == Compression::kZstd);
  switch (v) {
    case Verdict::kSuccess: {
      uint64_t rejected = 0;
      PartialSuccess ps;
      if (r.content_type.find("protobuf") != std::string::npos &&
          decode_export_response(r.body, &ps)) {
        rejected = ps.rejected_spans > 0
                       ? std::min<uint64_t>(static_cast<uint64_t>(ps.rejected_spans), b.spans)
                       : 0;
        if (rejected != 0 || !ps.error_message.empty())
          log_warn_once(Once::kPartialSuccess, "the receiver rejected %llu of %u spans: %.200s",
                        static_cast<unsigned long long>(rejected), b.spans,
                        ps.error_message.c_str());
      }
      finish_front(b.spans - rejected, rejected, 0);
      break;
    }
    case Verdict::kFallbackGzip: {
      log_warn_once(Once::kZstdFallback,
                    "the receiver at %s does not accept zstd (HTTP %ld); sending gzip from now on",
                    printable_endpoint(cfg_.endpoint).c_str(), r.outcome.http_status);
      encoding_ = Compression::kGzip;
      // Every queued zstd batch is re-compressed, the one that failed first.
      for (Batch &q : outbox_) {
        if (q.encoding != Compression::kZstd) continue;
        std::string raw, gz;
        if (compressor_.zstd_decompress(q.payload, &raw) &&
            compressor_.compress(Compression::kGzip, raw, &gz)) {
          q.payload = std::move(gz);
          q.encoding = Compression::kGzip;
        }
      }
      if (b.encoding == Compression::kZstd) finish_front(0, 0, b.spans);  // could not re-compress
      break;
    }
    case Verdict::kRetry: {
      const uint64_t delay =
          backoff_ms(b.attempts, cfg_.retry_initial_ms, cfg_.retry_max_ms,
                     static_cast<double>(rng_.next() >> 11) * 0x1.0p-53, r.outcome.retry_after_ms);
      if (r.outcome.transport_error)
        log_warn_once(Once::kExportConnect, "cannot reach the OTLP endpoint %s (%s); retrying",
                      printable_endpoint(cfg_.endpoint).c_str(), r.error.c_str());
      else
        log_warn_once(Once::kExportHttpStatus, "the OTLP endpoint %s answered HTTP %ld; retrying",
                      printable_endpoint(cfg_.endpoint).c_str(), r.outcome.http_status);
      if (cfg_.retry_max_elapsed_ms != 0 &&
          now_mono_ms() + delay - b.first_try_ms > cfg_.retry_max_elapsed_ms) {
        finish_front(0, 0, b.spans);
        break;
      }
      add(g_counters.retries, 1);
      retry_waiting_ = true;
      uv_timer_start(
          &retry_timer_,
          [](uv_timer_t *h) {
            auto *self = static_cast<Exporter *>(h->data);
            self->retry_waiting_ = false;
            self->pump();
          },
          delay, 0);
      break;
    }
    case Verdict::kDrop:
      log_warn_once(Once::kExportHttpStatus,
                    "the OTLP endpoint %s answered HTTP %ld; the batch is dropped (not retryable)",
                    printable_endpoint(cfg_.endpoint).c_str(), r.outcome.http_status);
      finish_front(0, b.spans, 0);
      break;
  }
  pump();
}

void Exporter::check_flush() {
  if (flush_gen_ == 0) return;
  if (!flush_drained_) {
    // Everything produced before the flush must have been drained.
    for (auto &[ring, mark] : flush_marks_)
      if (static_cast<SpscRing *>(ring)->consumed() < mark) return;
    flush_drained_ = true;
    flush_target_seq_ = drained_seq_ + pending_offsets_.size();
  }
  if (completed_seq_ < flush_target_seq_) return;
  std::lock_guard<std::mutex> lk(mu_);
  flush_done_ = flush_gen_;
  flush_gen_ = 0;
  cv_.notify_all();
  // A flush requested meanwhile starts on the next pump.
  if (flush_requested_ > flush_done_) uv_async_send(&async_);
}

void Exporter::report_drops() {
  uint64_t now = total_drops();
  if (now > reported_drops_) {
    uint64_t ring = 0, limit = 0;
    for (ThreadState *s = thread_states(); s != nullptr; s = s->next) {
      ring += s->ring_full.get();
      limit += s->span_limit.get();
    }
    log_warn(
        "%llu spans dropped in the last 30 s (totals: ring full %llu, open-span limit %llu, "
        "rejected %llu, export failed %llu)",
        static_cast<unsigned long long>(now - reported_drops_),
        static_cast<unsigned long long>(ring), static_cast<unsigned long long>(limit),
        static_cast<unsigned long long>(g_counters.rejected.load()),
        static_cast<unsigned long long>(g_counters.failed.load()));
  }
  reported_drops_ = now;
}

bool Exporter::flush(uint32_t timeout_ms) {
  std::unique_lock<std::mutex> lk(mu_);
  if (stopped_) return false;
  const uint64_t mine = ++flush_requested_;
  lk.unlock();
  wake();
  lk.lock();
  return cv_.wait_for(lk, std::chrono::milliseconds(timeout_ms), [&] {
    return flush_done_ >= mine || stopped_;
  }) && flush_done_ >= mine;
}

void Exporter::shut_down_loop() {
  // Called with mu_ held, on the exporter thread.
  if (transport_) transport_->cancel();
  drain_rings();
  uint64_t left = pending_offsets_.size();
  for (const Batch &b : outbox_) left += b.spans;
  // Whatever is still in the rings is dropped too: the process is stopping.
  for (ThreadState *s = thread_states(); s != nullptr; s = s->next)
    left += s->ring.consume([](const uint8_t *, uint32_t) {}, SIZE_MAX);
  add(g_counters.shutdown_dropped, left);
  if (left != 0)
    log_warn("shutdown: %llu queued spans could not be exported in time and were dropped",
             static_cast<unsigned long long>(left));
  pending_.clear();
  pending_offsets_.clear();
  outbox_.clear();
  if (transport_) transport_->close();
  for (uv_handle_t *h :
       {reinterpret_cast<uv_handle_t *>(&async_), reinterpret_cast<uv_handle_t *>(&schedule_timer_),
        reinterpret_cast<uv_handle_t *>(&retry_timer_),
        reinterpret_cast<uv_handle_t *>(&report_timer_)})
    if (!uv_is_closing(h)) uv_close(h, nullptr);
  stopped_ = true;
  cv_.notify_all();
}

bool Exporter::stop(uint32_t timeout_ms) {
  bool flushed = flush(timeout_ms);
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_now_ = true;
  }
  wake();
  if (thread_.joinable()) thread_.join();
  return flushed;
}

}  // namespace otelagent
