#include "export/exporter.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <new>

#include "core/clock.h"
#include "core/log.h"
#include "core/record.h"
#include "core/ring_file.h"
#include "core/thread_state.h"
#include "export/console.h"
#include "export/grpc_wire.h"
#include "export/otlp_encoder.h"
#include "export/sanitize.h"

namespace otelagent {

namespace {
ExportCounters g_counters;

// The rings have one consumer: whichever exporter holds this. An exporter
// abandoned by shutdown (its thread stuck) may resume while its successor
// runs; it then finds itself abandoned under this lock and leaves the rings
// alone. Only ever try-locked, so a stuck holder never blocks a successor.
std::mutex g_consumer_mu;

void add(std::atomic<uint64_t> &c, uint64_t n) {
  // Single writer (the exporter thread); relaxed, read by statistics.
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

// Durable mode keeps at most this many batches in memory.
constexpr size_t kMaxBatchesInMemory = 16;
// How often dead processes' ring files are looked for while running.
constexpr uint64_t kRecoveryEveryMs = 5000;
// After a failed spool write, how long the exporter runs as without a spool
// before it tries writing again.
constexpr uint64_t kSpoolRetryMs = 5000;

uint64_t now_us() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

uint64_t total_drops() {
  const SpoolCounters &sc = spool_counters();
  uint64_t n = g_counters.rejected.load() + g_counters.failed.load() +
               g_counters.queue_full.load() + sc.spans_dropped_full.load() +
               sc.spans_dropped_corrupt.load() + sc.spans_dropped_gone.load();
  for (ThreadState *s = thread_states(); s != nullptr; s = s->next)
    n += s->ring_full.get() + s->span_limit.get();
  return n;
}
}  // namespace

void ExportCounters::reset() {
  for (auto *c : {&exported, &rejected, &failed, &shutdown_dropped, &printed, &requests, &retries,
                  &bytes_sent, &truncated, &queue_full, &replayed, &spool_lost, &left_in_spool,
                  &foreign_done, &latency_us_last, &latency_us_max, &spool_write_failed})
    c->store(0, std::memory_order_relaxed);
}

uint64_t ExportCounters::completed() const {
  return exported.load(std::memory_order_relaxed) + rejected.load(std::memory_order_relaxed) +
         failed.load(std::memory_order_relaxed) + shutdown_dropped.load(std::memory_order_relaxed) +
         printed.load(std::memory_order_relaxed) + queue_full.load(std::memory_order_relaxed) +
         spool_lost.load(std::memory_order_relaxed) +
         left_in_spool.load(std::memory_order_relaxed) -
         foreign_done.load(std::memory_order_relaxed);
}

ExportCounters &export_counters() {
  return g_counters;
}

void exporter_after_fork_child() {
  // The parent's exporter thread may have held it; that thread is gone.
  new (&g_consumer_mu) std::mutex();
  spool_after_fork_child();
  spool_counters().reset();
}

Exporter::Exporter(const Config &cfg, std::string resource_body, ClockPair clock_base,
                   std::atomic<bool> *wake_pending)
    : cfg_(cfg),
      resource_(std::move(resource_body)),
      clock_base_(clock_base),
      encoding_(cfg.compression),
      wake_pending_(wake_pending) {
  outbox_cap_ = std::max<size_t>(2, cfg_.max_queue_size / cfg_.max_export_batch_size);
}

Exporter::~Exporter() {
  if (thread_.joinable()) stop(0, UINT32_MAX);
}

const char *Exporter::start() {
  if (uv_loop_init(&loop_) != 0) return "cannot create the event loop";
  const char *err = nullptr;
  bool async_ready = false;
  if (uv_async_init(&loop_, &async_, [](uv_async_t *h) {
        auto *self = static_cast<Exporter *>(h->data);
        self->guarded([self] { self->pump(); });
      }) != 0) {
    err = "cannot create the wake-up handle";
  } else {
    async_ready = true;
    async_.data = this;
  }
  for (uv_timer_t *t : {&schedule_timer_, &retry_timer_, &report_timer_}) {
    uv_timer_init(&loop_, t);
    t->data = this;
  }
  try {
    if (err == nullptr && cfg_.exporter == ExporterKind::kOtlp) {
      transport_ = std::make_unique<HttpTransport>(&loop_, cfg_);
      if (!transport_->ok()) err = "cannot initialise libcurl";
    }
    rng_.seed();
    if (err == nullptr) thread_ = std::thread([this] { run(); });
  } catch (...) {
    err = "cannot create the exporter thread";
  }
  if (err == nullptr) return nullptr;
  // Undo everything, so that a later attempt starts from scratch.
  transport_.reset();
  if (async_ready) uv_close(reinterpret_cast<uv_handle_t *>(&async_), nullptr);
  for (uv_timer_t *t : {&schedule_timer_, &retry_timer_, &report_timer_})
    uv_close(reinterpret_cast<uv_handle_t *>(t), nullptr);
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
  return err;
}

void Exporter::wake() {
  uv_async_send(&async_);
}

void Exporter::wake_locked() {
  // mu_ is held: the handles are closed under it, and stopped_ says so.
  if (!stopped_) uv_async_send(&async_);
}

template <typename F>
void Exporter::guarded(F &&f) noexcept {
  try {
    f();
  } catch (const std::exception &e) {
    on_fault(e.what());
  } catch (...) {
    on_fault("unknown exception");
  }
}

void Exporter::on_fault(const char *what) noexcept {
  log_warn_once(Once::kExporterFault,
                "internal error on the exporter thread (%s); the batch concerned is dropped "
                "(counted in spans_dropped_export_failed)",
                what);
  if (at_risk_ != nullptr && !at_risk_->done) {
    // Its request may or may not have been started.
    if (transport_ && at_risk_->request != 0) transport_->cancel(at_risk_->request);
    complete(*at_risk_, 0, 0, at_risk_->spans);
    pop_completed();
  }
  at_risk_ = nullptr;
}

void Exporter::run() {
  pthread_setname_np(pthread_self(), "otelagent-exp");
  uv_timer_start(
      &schedule_timer_,
      [](uv_timer_t *h) {
        auto *self = static_cast<Exporter *>(h->data);
        self->timer_fired_ = true;
        // Ring files of processes that died meanwhile (a fork child or a
        // sibling sharing the directory, killed) are picked up while this
        // process lives, not only at start: every 5 s at most.
        if (self->spool_ && now_mono_ms() >= self->next_recovery_ms_) {
          self->next_recovery_ms_ = now_mono_ms() + kRecoveryEveryMs;
          self->guarded([self] { self->recover_dead_rings(); });
        }
        self->guarded([self] { self->pump(); });
      },
      cfg_.schedule_delay_ms, cfg_.schedule_delay_ms);
  uv_timer_start(
      &report_timer_,
      [](uv_timer_t *h) {
        auto *self = static_cast<Exporter *>(h->data);
        self->guarded([self] { self->report_drops(); });
      },
      30000, 30000);
  if (!cfg_.spool_dir.empty() && cfg_.exporter == ExporterKind::kOtlp)
    guarded([this] { open_spool(); });
  guarded([this] { pump(); });
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
  std::lock_guard<std::mutex> lk(mu_);
  // The last use of this object by the thread: stop() may join and free it
  // from here on.
  exited_ = true;
  cv_.notify_all();
}

void Exporter::drain_rings() {
  std::unique_lock<std::mutex> consumer(g_consumer_mu, std::try_to_lock);
  if (!consumer.owns_lock() || abandoned()) return;  // the next pass tries again
  rings_.clear();
  for (ThreadState *s = thread_states(); s != nullptr; s = s->next) rings_.push_back(&s->ring);
  const size_t n = rings_.size();
  if (n == 0) return;
  // Durable mode reads (without freeing) only what makes up the next batch;
  // the rest waits in the ring files, which are as safe as the spool.
  const bool two_phase = durable();
  const size_t cap = two_phase ? cfg_.max_export_batch_size : cfg_.max_queue_size;
  auto room = [&] {
    const size_t h = two_phase ? pending_offsets_.size() : held();
    return cap > h ? cap - h : 0;
  };
  auto keep = [this](const uint8_t *data, uint32_t len) noexcept {
    // A record that cannot be copied (memory is short) is dropped and
    // counted, so that the ring still moves on.
    try {
      pending_offsets_.push_back(static_cast<uint32_t>(pending_.size()));
      try {
        pending_.insert(pending_.end(), data, data + len);
      } catch (...) {
        pending_offsets_.pop_back();
        throw;
      }
    } catch (...) {
      log_warn_once(Once::kExporterFault,
                    "out of memory on the exporter thread; spans are dropped (counted in "
                    "spans_dropped_export_failed)");
      add(g_counters.failed, 1);
    }
  };
  // Round robin: each pass starts one ring further, and every ring first gets
  // an equal share of the room, so that no thread (old or new) takes all the
  // drops.
  auto take = [&](SpscRing *ring, size_t max) {
    if (!two_phase) return ring->consume(keep, max);
    const size_t got = ring->read(keep, max);
    if (got != 0) read_unreleased_ = true;
    return got;
  };
  const size_t first = drain_start_++ % n;
  if (size_t r = room(); r != 0) {
    const size_t quota = std::max<size_t>(1, r / n);
    for (size_t i = 0; i < n && room() != 0; ++i)
      take(rings_[(first + i) % n], std::min(quota, room()));
  }
  for (size_t i = 0; i < n && room() != 0; ++i) take(rings_[(first + i) % n], room());
  if (room() != 0 || two_phase) return;
  // The queue is full (the collector is down or slow). What fits in a ring
  // stays there, a burst the exporter catches up with later; but a ring more
  // than half full is emptied here and its spans dropped, so that no ring
  // ever fills because the network is away and the host threads never pay
  // for the drops.
  uint64_t dropped = 0;
  for (SpscRing *ring : rings_)
    if (ring->used() > ring->capacity() / 2)
      dropped += ring->consume([](const uint8_t *, uint32_t) {}, SIZE_MAX);
  if (dropped != 0) {
    add(g_counters.queue_full, dropped);
    log_warn_once(Once::kQueueFull,
                  "the export queue is full (OTEL_BSP_MAX_QUEUE_SIZE=%u); spans are being dropped "
                  "(counted in spans_dropped_queue_full)",
                  cfg_.max_queue_size);
  }
}

void Exporter::convert_times(uint8_t *r, const ClockPair &base, const ClockPair &now) {
  const uint16_t flags = load_u16(r + rec::kInternal);
  if (flags == 0) return;
  if (flags & rec::kStartIsTsc)
    store_u64(r + rec::kStart, tsc_to_unix(load_u64(r + rec::kStart), base, now));
  if (flags & rec::kEndIsTsc)
    store_u64(r + rec::kEnd, tsc_to_unix(load_u64(r + rec::kEnd), base, now));
  store_u16(r + rec::kInternal, 0);
}

void Exporter::release_rings() {
  if (!read_unreleased_) return;
  std::unique_lock<std::mutex> consumer(g_consumer_mu, std::try_to_lock);
  if (!consumer.owns_lock() || abandoned()) return;
  for (ThreadState *s = thread_states(); s != nullptr; s = s->next) s->ring.release();
  read_unreleased_ = false;
}

void Exporter::cut_all() {
  while (!pending_offsets_.empty())
    cut(std::min<size_t>(pending_offsets_.size(), cfg_.max_export_batch_size));
  // Every record read is now in a segment (or, if the spool failed, in
  // memory as without one): the rings may reuse their space.
  release_rings();
}

size_t Exporter::in_memory() const {
  size_t n = 0;
  for (const Batch &b : outbox_) n += !b.done && !b.on_disk;
  return n;
}

void Exporter::open_spool() {
  auto spool = std::make_unique<Spool>();
  if (const char *why = spool->open(cfg_.spool_dir, cfg_.spool_max_bytes)) {
    log_warn_once(Once::kSpoolOpen,
                  "the spool directory %s cannot be used (%s); spans are kept in memory only",
                  cfg_.spool_dir.c_str(), why);
    return;
  }
  spool_ = std::move(spool);
  recover_dead_rings();
}

void Exporter::recover_dead_rings() {
  uint64_t damaged = 0;
  std::vector<RecordView> views;
  std::vector<std::string> copies;
  ring_files_recover(
      cfg_.spool_dir,
      [&](const RecoveredRing &rr) {
        const size_t total = rr.records.size();
        for (size_t i = 0; i < total;) {
          const size_t n = std::min<size_t>(total - i, cfg_.max_export_batch_size);
          views.clear();
          copies.assign(rr.records.begin() + static_cast<std::ptrdiff_t>(i),
                        rr.records.begin() + static_cast<std::ptrdiff_t>(i + n));
          cleaned_.resize(std::max(cleaned_.size(), n));
          for (size_t j = 0; j < n; ++j) {
            auto *data = reinterpret_cast<uint8_t *>(copies[j].data());
            RecordView r{data, static_cast<uint32_t>(copies[j].size())};
            // The clock pairs the dead process saved: its own TSC line.
            if (r.len >= rec::kHeader) convert_times(data, rr.base, rr.last);
            if (!record_is_clean(r, cfg_.limits)) {
              add(g_counters.truncated, record_clean(r, cfg_.limits, &cleaned_[j]));
              r = RecordView{reinterpret_cast<const uint8_t *>(cleaned_[j].data()),
                             static_cast<uint32_t>(cleaned_[j].size())};
            }
            views.push_back(r);
          }
          Batch b;
          if (!encode_request(rr.resource_body, views, &encoded_)) return false;
          b.encoding = encoding_;
          if (!compressor_.compress(encoding_, encoded_, &b.payload)) {
            b.encoding = Compression::kNone;
            b.payload = encoded_;
          }
          std::string name;
          // Not written: the file stays, and the next start tries again (what
          // was already written is then sent twice: at least once).
          if (spool_->append(b.payload, b.encoding, static_cast<uint32_t>(n), &name) !=
              Spool::Append::kOk)
            return false;
          b.spans = static_cast<uint32_t>(n);
          b.seg.name = std::move(name);
          b.on_disk = true;
          b.foreign = true;
          std::string().swap(b.payload);
          b.last_seq = outbox_.empty() ? completed_seq_ : outbox_.back().last_seq;
          outbox_.push_back(std::move(b));
          i += n;
        }
        return true;
      },
      &damaged);
  if (damaged != 0) {
    spool_counters().segments_corrupt.fetch_add(damaged, std::memory_order_relaxed);
    log_warn("%llu damaged ring files in %s were removed (counted in spool_segments_corrupt)",
             static_cast<unsigned long long>(damaged), cfg_.spool_dir.c_str());
  }
}

bool Exporter::spool_batch(Batch &b) {
  std::string name;
  switch (spool_->append(b.payload, b.encoding, b.spans, &name)) {
    case Spool::Append::kOk:
      break;
    case Spool::Append::kNoRoom:
      // Larger than the cap, or the cap is all batches held in memory: this
      // one is kept in memory only.
      add(g_counters.spool_write_failed, b.spans);
      return false;
    case Spool::Append::kIoError:
      // Runs as without a spool for a while (the spool logged why).
      add(g_counters.spool_write_failed, b.spans);
      spool_broken_ = true;
      spool_retry_ms_ = now_mono_ms() + kSpoolRetryMs;
      return false;
  }
  b.seg.name = std::move(name);
  // In memory only when nothing waits on disk before it (this process's
  // batches, or those of processes that died: batches leave oldest first)
  // and there is room; else it waits on disk.
  bool behind_disk = spool_->orphans() != 0;
  for (const Batch &q : outbox_) behind_disk |= !q.done && q.on_disk && !q.foreign;
  if (!stopping_ && !behind_disk && in_memory() < memory_cap() &&
      claimed_bytes() + b.payload.size() <= cfg_.spool_max_bytes / 2) {
    // Claimed while held in memory: the spool's cap never drops it then.
    SpoolSegment seg;
    if (spool_->claim(b.seg.name, &seg)) {
      std::string().swap(seg.payload);
      b.seg = std::move(seg);
      return true;
    }
  }
  b.on_disk = true;
  std::string().swap(b.payload);
  return true;
}

void Exporter::to_current_encoding(Batch &b) {
  // Written in zstd before the receiver turned it down (see kFallbackGzip).
  if (b.encoding != Compression::kZstd || encoding_ == Compression::kZstd) return;
  std::string raw, gz;
  if (compressor_.zstd_decompress(b.payload, &raw) &&
      compressor_.compress(Compression::kGzip, raw, &gz)) {
    b.payload = std::move(gz);
    b.encoding = Compression::kGzip;
  }
}

uint64_t Exporter::claimed_bytes() const {
  // Held segments cannot be dropped at the cap: they may take half of it.
  uint64_t n = 0;
  for (const Batch &b : outbox_)
    if (!b.done && !b.on_disk && b.seg.fd >= 0) n += b.payload.size();
  return n;
}

size_t Exporter::memory_cap() const {
  // While the collector fails, one batch (the one retried) is held; the
  // others wait on disk unclaimed, where the cap may drop the oldest.
  return retry_waiting_ ? 1 : std::min(outbox_cap_, kMaxBatchesInMemory);
}

void Exporter::demote_to_disk() {
  bool kept = false;
  for (Batch &b : outbox_) {
    if (b.done || b.on_disk) continue;
    if (!kept || b.request != 0) {
      kept = true;
      continue;
    }
    if (b.seg.name.empty()) {
      // Kept in memory when the spool had no room: written now if it has.
      std::string name;
      if (!durable() || spool_->append(b.payload, b.encoding, b.spans, &name) != Spool::Append::kOk)
        continue;
      b.seg.name = std::move(name);
      std::string().swap(b.payload);
      b.on_disk = true;
      if (!b.foreign) disk_spans_ += b.spans;
      continue;
    }
    spool_->release(&b.seg);
    std::string().swap(b.payload);
    if (b.orphan) {
      // Another process's: an orphan again, claimed anew when there is room.
      b.done = true;
      continue;
    }
    b.on_disk = true;
    if (!b.foreign) disk_spans_ += b.spans;
  }
}

void Exporter::load_from_spool() {
  const size_t mem_cap = memory_cap();
  size_t mem = in_memory();
  // Segments of processes that died first: they are older than anything this
  // process has on disk (it was started after they died).
  while (mem < mem_cap && !retry_waiting_ && !stopping_ && spool_->orphans() != 0) {
    Batch b;
    if (!spool_->claim_orphan(&b.seg)) break;
    b.payload = std::move(b.seg.payload);
    b.encoding = b.seg.encoding;
    b.spans = b.seg.spans;
    to_current_encoding(b);
    b.foreign = true;
    b.orphan = true;
    b.from_disk = true;
    b.last_seq = outbox_.empty() ? completed_seq_ : outbox_.back().last_seq;
    outbox_.push_back(std::move(b));
    ++mem;
  }
  uint64_t held_bytes = claimed_bytes();
  for (Batch &b : outbox_) {
    if (mem >= mem_cap || (mem != 0 && held_bytes >= cfg_.spool_max_bytes / 2)) return;
    if (b.done || !b.on_disk) continue;
    SpoolSegment seg;
    const Spool::OwnClaim r = spool_->claim_own(b.seg.name, &seg);
    if (r == Spool::OwnClaim::kBusy) return;  // not now (no descriptor left, ...): later
    if (r == Spool::OwnClaim::kOk) {
      b.payload = std::move(seg.payload);
      b.encoding = seg.encoding;
      to_current_encoding(b);
      b.seg = std::move(seg);
      b.on_disk = false;
      b.from_disk = true;
      if (!b.foreign) disk_spans_ -= b.spans;
      held_bytes += b.payload.size();
      ++mem;
      continue;
    }
    // Gone: dropped at the cap or found corrupt (the spool counted its
    // spans), or removed by someone else (counted here).
    if (r == Spool::OwnClaim::kVanished) {
      spool_counters().spans_dropped_gone.fetch_add(b.spans, std::memory_order_relaxed);
      log_warn_once(Once::kSpoolGone,
                    "spooled batches were removed from %s before they were sent (counted in "
                    "spans_dropped_spool_gone)",
                    cfg_.spool_dir.c_str());
    }
    b.on_disk = false;
    b.seg = SpoolSegment{};
    b.done = true;
    if (!b.foreign) {  // foreign spans were never in this process's counts
      disk_spans_ -= b.spans;
      add(g_counters.spool_lost, b.spans);
      outbox_spans_ -= b.spans;
    }
  }
}

void Exporter::cut(size_t n) {
  // false: the n spans were not queued as a batch (printed, or dropped).
  bool queued = false;
  try {
    std::vector<RecordView> views;
    views.reserve(n);
    cleaned_.resize(std::max(cleaned_.size(), n));
    // Every span in the batch ended before this pair was read, so converting
    // interpolates between the start pair and this one.
    clock_now_ = clock_pair();
    // Saved in the ring files: records still there after a crash are
    // converted on the same line.
    if (spool_) ring_files_note_clock(clock_now_);
    for (size_t i = 0; i < n; ++i) {
      uint8_t *data = pending_.data() + pending_offsets_[i];
      // The length the ring handed over, not the one the record claims: a
      // record is never trusted beyond the bytes it was given.
      const size_t end =
          i + 1 < pending_offsets_.size() ? pending_offsets_[i + 1] : pending_.size();
      RecordView r{data, static_cast<uint32_t>(end - pending_offsets_[i])};
      if (r.len >= rec::kHeader) convert_times(data, clock_base_, clock_now_);
      if (!record_is_clean(r, cfg_.limits)) {
        add(g_counters.truncated, record_clean(r, cfg_.limits, &cleaned_[i]));
        r = RecordView{reinterpret_cast<const uint8_t *>(cleaned_[i].data()),
                       static_cast<uint32_t>(cleaned_[i].size())};
      }
      views.push_back(r);
    }
    if (cfg_.exporter == ExporterKind::kConsole) {
      std::string text = console_format(views);
      ssize_t w = ::write(2, text.data(), text.size());
      (void)w;
      add(g_counters.printed, n);
    } else if (!encode_request(resource_, views, &encoded_)) {
      log_warn("internal error: a batch of %zu spans could not be encoded and was dropped", n);
      add(g_counters.failed, n);
    } else {
      Batch b;
      b.spans = static_cast<uint32_t>(n);
      b.last_seq = drained_seq_ + n;
      b.encoding = encoding_;
      if (!compressor_.compress(encoding_, encoded_, &b.payload)) {
        b.encoding = Compression::kNone;
        b.payload = encoded_;
      }
      // Durable mode: the batch is in a segment before its records leave
      // the rings (false: the spool failed; it stays in memory only).
      if (durable() && !spool_batch(b) && held() + n > cfg_.max_queue_size) {
        // Not on disk, and memory is full (the bound without a spool).
        add(g_counters.queue_full, n);
        log_warn_once(Once::kQueueFull,
                      "the export queue is full (OTEL_BSP_MAX_QUEUE_SIZE=%u) and the spool has no "
                      "room; spans are being dropped (counted in spans_dropped_queue_full)",
                      cfg_.max_queue_size);
      } else {
        if (b.on_disk) disk_spans_ += n;
        outbox_.push_back(std::move(b));
        outbox_spans_ += n;
        queued = true;
      }
    }
  } catch (const std::exception &e) {
    log_warn_once(Once::kExporterFault,
                  "internal error on the exporter thread (%s); the batch concerned is dropped "
                  "(counted in spans_dropped_export_failed)",
                  e.what());
    add(g_counters.failed, n);
  }
  drained_seq_ += n;
  if (!queued) {
    // These spans are done, but a flush may only see them done once every
    // batch cut before them is: batches finish in order.
    if (outbox_.empty())
      completed_seq_ = drained_seq_;
    else
      outbox_.back().last_seq = drained_seq_;
  }
  // Remove the first n records from pending (nothing here allocates).
  size_t bytes = n < pending_offsets_.size() ? pending_offsets_[n] : pending_.size();
  pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(bytes));
  pending_offsets_.erase(pending_offsets_.begin(),
                         pending_offsets_.begin() + static_cast<std::ptrdiff_t>(n));
  for (auto &o : pending_offsets_) o -= static_cast<uint32_t>(bytes);
}

void Exporter::pump() {
  // From here on a host thread that queues a span must wake the loop again;
  // the fence orders this store before the drain's loads of the rings (it
  // pairs with the fence in agent.cc's exporter_wake).
  wake_pending_->store(false, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stop_now_) {
      shut_down_loop();
      return;
    }
    if (flush_gen_ == 0 && flush_requested_ > flush_done_) {
      // A new flush: everything produced until now must get through. The
      // flush begins only once its marks are all taken: an allocation failure
      // leaves none half begun (the next pass tries again).
      flush_marks_.clear();
      for (ThreadState *s = thread_states(); s != nullptr; s = s->next)
        flush_marks_.emplace_back(&s->ring, s->ring.produced());
      flush_gen_ = flush_requested_;
      flush_drained_ = false;
    }
  }
  const size_t batch = cfg_.max_export_batch_size;
  const bool force = timer_fired_ || flush_gen_ != 0;
  if (spool_broken_ && now_mono_ms() >= spool_retry_ms_) spool_broken_ = false;
  if (durable()) {
    // Every full batch goes to the spool (and into memory if there is
    // room), whatever the state of the collector; a partial one waits in the
    // rings, read but not released, until the timer or a flush, or until a
    // ring is half full of it.
    for (;;) {
      drain_rings();
      if (pending_offsets_.size() < batch) break;
      cut_all();
    }
    if (!pending_offsets_.empty() && (force || rings_under_pressure())) cut_all();
    if (pending_offsets_.empty()) release_rings();
    timer_fired_ = false;
    maybe_send();
    check_flush();
    return;
  }
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

bool Exporter::rings_under_pressure() const {
  for (ThreadState *s = thread_states(); s != nullptr; s = s->next)
    if (s->ring.used() > s->ring.capacity() / 2) return true;
  return false;
}

void Exporter::maybe_send() {
  if (spool_) load_from_spool();
  // Every batch not yet sent (or waiting to be sent again), in order, while
  // the transport has room.
  for (Batch &b : outbox_) {
    if (retry_waiting_) break;
    if (b.done || b.request != 0 || b.on_disk) continue;
    if (!transport_ || !transport_->ok()) {
      complete(b, 0, 0, b.spans);
      continue;
    }
    if (transport_->busy()) break;
    send(b);
  }
  pop_completed();
}

void Exporter::send(Batch &b) {
  if (b.attempts == 0) b.first_try_ms = now_mono_ms();
  ++b.attempts;
  b.sent_us = now_us();
  add(g_counters.requests, 1);
  // gRPC frames the message with a 5-byte prefix.
  add(g_counters.bytes_sent, b.payload.size() + (cfg_.protocol == Protocol::kGrpc ? 5 : 0));
  at_risk_ = &b;
  // The transport keeps `b` in flight, and a batch in flight never leaves
  // the outbox (deque elements do not move), until the answer or a cancel.
  Batch *bp = &b;
  b.request = transport_->post(b.payload, content_encoding(b.encoding), [this, bp](Response &&r) {
    guarded([&] { on_response(*bp, std::move(r)); });
    guarded([this] { pump(); });
  });
  if (b.request == 0) {
    // curl refused the request (out of memory): like a failed connection.
    log_warn_once(Once::kExportConnect, "cannot start a request to the OTLP endpoint %s; retrying",
                  url_for_messages(cfg_.endpoint).c_str());
    retry_later(b, -1);
  }
  at_risk_ = nullptr;
}

void Exporter::complete(Batch &b, uint64_t exported, uint64_t rejected, uint64_t failed) {
  add(g_counters.exported, exported);
  add(g_counters.rejected, rejected);
  add(g_counters.failed, failed);
  if (b.from_disk) add(g_counters.replayed, exported);
  if (b.foreign)
    add(g_counters.foreign_done, exported + rejected + failed);
  else
    outbox_spans_ -= b.spans;
  // Answered for (or dropped for good): its segment goes.
  if (spool_ && !b.seg.name.empty()) spool_->remove(&b.seg);
  b.done = true;
  b.request = 0;
  std::string().swap(b.payload);
}

void Exporter::pop_completed() {
  // In order, so that a flush sees a span done only once every batch cut
  // before it is.
  while (!outbox_.empty() && outbox_.front().done) {
    completed_seq_ = outbox_.front().last_seq;
    outbox_.pop_front();
  }
}

void Exporter::retry_later(Batch &b, int64_t retry_after_ms) {
  const uint64_t delay =
      backoff_ms(b.attempts, cfg_.retry_initial_ms, cfg_.retry_max_ms,
                 static_cast<double>(rng_.next() >> 11) * 0x1.0p-53, retry_after_ms);
  // A batch in the spool is kept (retried at the longest interval) for as
  // long as it is there: the spool's cap is its bound.
  if (cfg_.retry_max_elapsed_ms != 0 && b.seg.name.empty() &&
      now_mono_ms() + delay - b.first_try_ms > cfg_.retry_max_elapsed_ms) {
    complete(b, 0, 0, b.spans);
    return;
  }
  add(g_counters.retries, 1);
  if (spool_) demote_to_disk();
  // Retry-After is a lower bound: the loop's clock is refreshed (it is
  // cached at the start of each iteration) and, being in whole
  // milliseconds, rounded up by one. Several calls that fail together wait
  // for the latest of their delays, then go again together.
  uv_update_time(&loop_);
  if (retry_waiting_ && uv_timer_get_due_in(&retry_timer_) >= delay + 1) return;
  retry_waiting_ = true;
  uv_timer_start(
      &retry_timer_,
      [](uv_timer_t *h) {
        auto *self = static_cast<Exporter *>(h->data);
        self->retry_waiting_ = false;
        self->guarded([self] { self->pump(); });
      },
      delay + 1, 0);
}

uint64_t Exporter::partial_rejections(const Batch &b, const Response &r) {
  std::string_view body = r.body;
  std::string inflated;
  if (cfg_.protocol == Protocol::kGrpc) {
    Compression c = Compression::kNone;
    if (r.compressed && (!compression_from_name(r.grpc_encoding, &c) ||
                         !compressor_.decompress_bounded(c, body, 64 * 1024, &inflated)))
      return 0;  // unreadable: the call succeeded, which is what counts
    if (r.compressed) body = inflated;
  } else if (r.content_type.find("protobuf") == std::string::npos) {
    return 0;
  }
  PartialSuccess ps;
  if (!decode_export_response(body, &ps)) return 0;
  const uint64_t rejected =
      ps.rejected_spans > 0 ? std::min<uint64_t>(static_cast<uint64_t>(ps.rejected_spans), b.spans)
                            : 0;
  if (rejected != 0 || !ps.error_message.empty())
    log_warn_once(Once::kPartialSuccess, "the receiver rejected %llu of %u spans: %.200s",
                  static_cast<unsigned long long>(rejected), b.spans, ps.error_message.c_str());
  return rejected;
}

void Exporter::on_response(Batch &b, Response &&r) {
  at_risk_ = &b;
  b.request = 0;
  if (b.sent_us != 0) {
    const uint64_t us = now_us() - b.sent_us;
    g_counters.latency_us_last.store(us, std::memory_order_relaxed);
    if (us > g_counters.latency_us_max.load(std::memory_order_relaxed))
      g_counters.latency_us_max.store(us, std::memory_order_relaxed);
  }
  const bool grpc = r.outcome.grpc;
  const Verdict v = classify(r.outcome, b.encoding == Compression::kZstd);
  // What the endpoint answered, for the log: an HTTP status, or a gRPC
  // status with its message.
  char answer[600];
  if (r.outcome.transport_error) {
    std::snprintf(answer, sizeof answer, "%s", r.error.c_str());
  } else if (grpc) {
    const int code = grpc_effective_status(r.outcome);
    std::snprintf(answer, sizeof answer, "%s (gRPC status %d%s%s%s)", grpc_code_name(code), code,
                  r.outcome.grpc_status < 0 ? ", from HTTP " : "",
                  r.outcome.grpc_status < 0 ? std::to_string(r.outcome.http_status).c_str() : "",
                  r.grpc_message.empty() ? "" : (": " + r.grpc_message).c_str());
  } else {
    std::snprintf(answer, sizeof answer, "HTTP %ld", r.outcome.http_status);
  }
  switch (v) {
    case Verdict::kSuccess: {
      const uint64_t rejected = partial_rejections(b, r);
      complete(b, b.spans - rejected, rejected, 0);
      break;
    }
    case Verdict::kFallbackGzip: {
      log_warn_once(Once::kZstdFallback,
                    "the receiver at %s does not accept zstd (%s); sending gzip from now on",
                    url_for_messages(cfg_.endpoint).c_str(), answer);
      encoding_ = Compression::kGzip;
      // Every zstd batch not in flight is re-compressed, the one that failed
      // first; one in flight is when its own rejection comes back.
      for (Batch &q : outbox_) {
        // Batches on disk are re-compressed when they are read back.
        if (q.encoding != Compression::kZstd || q.done || q.request != 0 || q.on_disk) continue;
        std::string raw, gz;
        if (compressor_.zstd_decompress(q.payload, &raw) &&
            compressor_.compress(Compression::kGzip, raw, &gz)) {
          q.payload = std::move(gz);
          q.encoding = Compression::kGzip;
        }
      }
      if (b.encoding == Compression::kZstd) complete(b, 0, 0, b.spans);  // could not re-compress
      break;
    }
    case Verdict::kRetry: {
      if (r.outcome.transport_error)
        log_warn_once(Once::kExportConnect, "cannot reach the OTLP endpoint %s (%s); retrying",
                      url_for_messages(cfg_.endpoint).c_str(), r.error.c_str());
      else
        log_warn_once(Once::kExportHttpStatus, "the OTLP endpoint %s answered %s; retrying",
                      url_for_messages(cfg_.endpoint).c_str(), answer);
      retry_later(b, r.outcome.retry_after_ms);
      break;
    }
    case Verdict::kDrop:
      if (r.outcome.not_http2) {
        // Not a receiver's verdict on the spans: they never reached one.
        log_warn_once(Once::kGrpcNotHttp2,
                      "the OTLP/gRPC endpoint %s answered in HTTP/1.1, not HTTP/2: it does not "
                      "speak gRPC (a TLS server must offer h2 by ALPN); batches sent to it are "
                      "dropped (counted in spans_dropped_export_failed)",
                      url_for_messages(cfg_.endpoint).c_str());
        complete(b, 0, 0, b.spans);
        break;
      }
      log_warn_once(Once::kExportHttpStatus,
                    "the OTLP endpoint %s answered %s; the batch is dropped (not retryable)",
                    url_for_messages(cfg_.endpoint).c_str(), answer);
      complete(b, 0, b.spans, 0);
      break;
  }
  at_risk_ = nullptr;
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
        "queue full %llu, rejected %llu, export failed %llu)",
        static_cast<unsigned long long>(now - reported_drops_),
        static_cast<unsigned long long>(ring), static_cast<unsigned long long>(limit),
        static_cast<unsigned long long>(g_counters.queue_full.load()),
        static_cast<unsigned long long>(g_counters.rejected.load()),
        static_cast<unsigned long long>(g_counters.failed.load()));
  }
  reported_drops_ = now;
}

Exporter::Result Exporter::flush(uint32_t timeout_ms) {
  std::unique_lock<std::mutex> lk(mu_);
  if (stop_now_ || stopped_) return Result::kStopped;
  const uint64_t mine = ++flush_requested_;
  // Woken under mu_: the loop cannot close the handle meanwhile.
  wake_locked();
  cv_.wait_for(lk, std::chrono::milliseconds(timeout_ms),
               [&] { return flush_done_ >= mine || stopped_; });
  if (flush_done_ >= mine) return Result::kDone;
  return stopped_ ? Result::kStopped : Result::kTimeout;
}

void Exporter::spool_everything() {
  stopping_ = true;
  spool_broken_ = false;  // one more try, whatever failed a moment ago
  // What the rings still hold goes to the spool too, batch by batch.
  for (;;) {
    drain_rings();
    if (pending_offsets_.empty() || !durable()) break;
    cut_all();
  }
  uint64_t left = 0;
  for (Batch &b : outbox_) {
    if (b.done || b.seg.name.empty()) continue;
    // On disk: the next process started with this directory sends it.
    if (!b.foreign) {
      left += b.spans;
      outbox_spans_ -= b.spans;
      if (b.on_disk) disk_spans_ -= b.spans;
    }
    if (b.seg.fd >= 0) spool_->release(&b.seg);
    b.done = true;
  }
  add(g_counters.left_in_spool, left);
  if (left != 0)
    log_warn(
        "shutdown: %llu spans not yet exported are kept in the spool %s; a process started "
        "with it sends them",
        static_cast<unsigned long long>(left), cfg_.spool_dir.c_str());
}

void Exporter::shut_down_loop() {
  // Called with mu_ held, on the exporter thread.
  if (transport_) transport_->cancel();
  if (spool_) spool_everything();
  uint64_t left = pending_offsets_.size() + outbox_spans_;
  // Whatever is still in the rings is dropped too: the agent is stopping.
  std::unique_lock<std::mutex> consumer(g_consumer_mu, std::try_to_lock);
  if (consumer.owns_lock() && !abandoned())
    for (ThreadState *s = thread_states(); s != nullptr; s = s->next)
      left += s->ring.consume([](const uint8_t *, uint32_t) {}, SIZE_MAX);
  add(g_counters.shutdown_dropped, left);
  if (left != 0)
    log_warn("shutdown: %llu queued spans could not be exported in time and were dropped",
             static_cast<unsigned long long>(left));
  pending_.clear();
  pending_offsets_.clear();
  outbox_.clear();
  outbox_spans_ = 0;
  if (transport_) transport_->close();
  for (uv_handle_t *h :
       {reinterpret_cast<uv_handle_t *>(&async_), reinterpret_cast<uv_handle_t *>(&schedule_timer_),
        reinterpret_cast<uv_handle_t *>(&retry_timer_),
        reinterpret_cast<uv_handle_t *>(&report_timer_)})
    if (!uv_is_closing(h)) uv_close(h, nullptr);
  stopped_ = true;
  cv_.notify_all();
}

Exporter::StopResult Exporter::stop(uint32_t timeout_ms, uint32_t teardown_ms) {
  const Result flushed = flush(timeout_ms);
  std::unique_lock<std::mutex> lk(mu_);
  stop_now_ = true;
  wake_locked();
  // Bounded: curl or a resolver can block the thread (a DNS server that
  // never answers); shutdown must still return.
  const bool ended =
      cv_.wait_for(lk, std::chrono::milliseconds(teardown_ms), [&] { return exited_; });
  lk.unlock();
  if (!ended) {
    abandon();
    thread_.detach();
    return StopResult::kAbandoned;
  }
  thread_.join();
  return flushed == Result::kDone ? StopResult::kFlushed : StopResult::kTimeout;
}

}  // namespace otelagent
