// The agent's lifecycle: start, flush, shutdown, the lazily started exporter
// thread, fork and process exit, as one state machine. Every transition is
// made here, under Life::mu:
//
//   kStopped --start------------------------------------------> kIdle
//   kIdle    --first span queued; flush or shutdown with spans--> kRunning | kFailed
//   kFailed  --retry: host wake path (rate-limited), flush,
//              shutdown-------------------------------------------> kRunning | kFailed
//   kIdle | kRunning | kFailed --shutdown---------------------> kStopped
//   fork, in the child: kRunning | kFailed --> kIdle (the parent's exporter is
//              abandoned: its thread does not exist there)
//   process exit: shutdown(OTELAGENT_SHUTDOWN_TIMEOUT_MS)
//
// Host threads read only atomics here (g_runtime, g_exporter_live,
// g_wake_pending, and on an actual wake-up g_wakers and g_wake_target), and
// take the lock only with try_lock, from cold paths: they never wait on it.
#include "agent.h"

#include <limits.h>
#include <pthread.h>
#include <unistd.h>

#include <memory>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/log.h"
#include "core/ring_file.h"
#include "core/thread_state.h"
#include "export/exporter.h"
#include "export/http_transport.h"
#include "export/otlp_encoder.h"
#include "host/sampler.h"

namespace otelagent {

namespace {

enum class Phase : uint8_t { kStopped, kIdle, kRunning, kFailed };

// How long a failed exporter start waits before the next attempt.
constexpr uint64_t kStartRetryMs = 1000;
// What shutdown allows the exporter thread to end after its flush timeout
// (cancel the request, close the connection, join). Past it the thread is
// abandoned: shutdown returns within timeout_ms + kTeardownMs in every case.
constexpr uint32_t kTeardownMs = 250;

struct Life {
  // Never held on the hot path nor while a flush waits.
  std::mutex mu;
  Phase phase = Phase::kStopped;
  Runtime *rt = nullptr;  // published in g_runtime unless kStopped
  // kRunning only. otelagent_flush holds extra references while it waits, so
  // a shutdown meanwhile does not free the exporter under it; the last
  // reference frees it (see make_exporter for abandoned ones).
  std::shared_ptr<Exporter> exporter;
  uint64_t retry_at_ms = 0;  // kFailed: no attempt before this (monotonic)
  bool hooks_installed = false;
};
// Heap-held and never destroyed: no static destructor at exit can run while
// a host thread or an abandoned exporter thread still uses it.
Life &g_life = *new Life;

std::atomic<const Runtime *> g_runtime{nullptr};
// Whether span ends may skip exporter_ensure_started (kRunning or kFailed).
std::atomic<bool> g_exporter_live{false};
// kFailed: when the next start may be tried (monotonic ms); 0 otherwise.
std::atomic<uint64_t> g_retry_at_ms{0};
// A wake-up is pending or the loop is in a pass that will see new spans. Set
// by the host thread that wakes the loop, cleared by the loop at each pass, so
// that all the other wake-ups are one relaxed load.
std::atomic<bool> g_wake_pending{false};
// The exporter host threads may wake, and how many are doing so right now:
// shutdown clears the pointer and waits for the count to fall to zero before
// the loop's handles go away.
std::atomic<Exporter *> g_wake_target{nullptr};
std::atomic<int> g_wakers{0};
// Runtimes retired by shutdown stay allocated (a host thread may still read
// one: a span started before shutdown keeps a pointer to its limits) and
// reachable from here: one per start, its strings released.
Runtime *g_retired = nullptr;

std::string executable_name() {
  char path[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) return "unknown";
  std::string_view p(path, static_cast<size_t>(n));
  return std::string(p.substr(p.rfind('/') + 1));
}

// An exporter whose thread may still be running (abandoned by shutdown, or
// the parent's in a fork child) is never deleted: the deleter checks.
std::shared_ptr<Exporter> make_exporter(const Runtime &rt) {
  return std::shared_ptr<Exporter>(
      new Exporter(rt.cfg, encode_resource(resource_attributes(rt.cfg)), rt.clock_base,
                   &g_wake_pending),
      [](Exporter *e) {
        if (!e->abandoned()) delete e;
      });
}

// kIdle or kFailed -> kRunning or kFailed. Under g_life.mu.
bool start_exporter_locked() {
  const char *err;
  std::shared_ptr<Exporter> e;
  try {
    e = make_exporter(*g_life.rt);
    err = e->start();
  } catch (...) {
    err = "out of memory";
  }
  if (err == nullptr) {
    g_wake_pending.store(false);
    g_wake_target.store(e.get());
    if (g_life.phase == Phase::kFailed) log_warn("the exporter started; queued spans are exported");
    g_life.exporter = std::move(e);
    g_life.phase = Phase::kRunning;
    g_retry_at_ms.store(0, std::memory_order_relaxed);
    g_exporter_live.store(true, std::memory_order_relaxed);
    return true;
  }
  g_life.phase = Phase::kFailed;
  g_life.retry_at_ms = now_mono_ms() + kStartRetryMs;
  g_retry_at_ms.store(g_life.retry_at_ms, std::memory_order_relaxed);
  // No loop will clear a wake-up a host thread sets from now on; the wake
  // path checks g_retry_at_ms first anyway.
  g_wake_pending.store(false);
  // Span ends stop coming to exporter_ensure_started; the retries go through
  // the (rate-limited) wake path instead.
  g_exporter_live.store(true, std::memory_order_relaxed);
  log_warn_once(Once::kExporterStart,
                "could not start the exporter (%s); spans stay queued in the rings (dropped and "
                "counted when full), flush reports EXPORTER_DOWN, and the start is retried",
                err);
  return false;
}

// Whether any ring holds spans the exporter has not taken.
bool spans_waiting() {
  for (ThreadState *t = thread_states(); t != nullptr; t = t->next)
    if (t->ring.used() != 0) return true;
  return false;
}

// A span queued in kFailed: try the start again if the rate limit allows. A
// host thread never waits for the lock.
__attribute__((cold, noinline)) void retry_start(uint64_t at) {
  if (now_mono_ms() < at) return;
  std::unique_lock<std::mutex> lk(g_life.mu, std::try_to_lock);
  if (!lk.owns_lock() || g_life.phase != Phase::kFailed) return;
  if (now_mono_ms() >= g_life.retry_at_ms) start_exporter_locked();
}

__attribute__((cold, noinline)) void wake_slow() {
  if (const uint64_t at = g_retry_at_ms.load(std::memory_order_relaxed); at != 0) {
    retry_start(at);
    return;
  }
  // One thread per pass sends the wake-up; the others saw the flag set.
  if (g_wake_pending.exchange(true)) return;
  // seq_cst pairs with shutdown's store-then-load: either shutdown sees us
  // counted, or we see its nullptr.
  g_wakers.fetch_add(1);
  if (Exporter *e = g_wake_target.load()) e->wake();
  g_wakers.fetch_sub(1);
}

// Host threads may still read a retired runtime's plain fields (limits,
// sampler, flags), never its strings, so those are released.
void retire_runtime(Runtime *rt) {
  Config &c = rt->cfg;
  std::string().swap(c.service_name);
  std::string().swap(c.endpoint);
  std::string().swap(c.certificate);
  std::string().swap(c.client_key);
  std::string().swap(c.client_certificate);
  KeyValues().swap(c.resource_attrs);
  KeyValues().swap(c.headers);
  rt->retired_next = g_retired;
  g_retired = rt;
}

void at_fork_child() {
  // The child has only the forking thread: the exporter thread, and whatever
  // lock another thread held, are gone. Start afresh, lazily.
  new (&g_life.mu) std::mutex();
  if (g_life.exporter) {
    g_life.exporter->abandon();  // its thread is not in this process
    g_life.exporter.reset();
  }
  if (g_life.phase != Phase::kStopped) g_life.phase = Phase::kIdle;
  g_wake_target.store(nullptr);
  g_wakers.store(0);
  g_wake_pending.store(false);
  g_retry_at_ms.store(0);
  g_exporter_live.store(false);
  // First: what follows may log, and the log's lock is re-made here.
  log_reset_once();
  thread_states_after_fork_child();
  exporter_after_fork_child();
  export_counters().reset();
}

// One line at shutdown when anything was dropped, by reason.
void log_drop_summary() {
  otelagent_stats s{};
  stats_get(&s);
  const uint64_t dropped = s.spans_dropped_ring_full + s.spans_dropped_span_limit +
                           s.spans_dropped_rejected + s.spans_dropped_export_failed +
                           s.spans_dropped_shutdown + s.spans_dropped_thread_exit +
                           s.spans_dropped_queue_full + s.spans_dropped_spool_full +
                           s.spans_dropped_spool_corrupt + s.spans_dropped_spool_gone;
  if (dropped == 0 && s.spool_segments_corrupt == 0) return;
  log_warn(
      "shutdown: %llu spans were dropped in this process's life (ring full %llu, open-span limit "
      "%llu, queue full %llu, rejected %llu, export failed %llu, at shutdown %llu, thread exit "
      "%llu, spool full %llu, spool corrupt %llu, spool gone %llu; corrupt segments %llu); %llu "
      "exported",
      static_cast<unsigned long long>(dropped),
      static_cast<unsigned long long>(s.spans_dropped_ring_full),
      static_cast<unsigned long long>(s.spans_dropped_span_limit),
      static_cast<unsigned long long>(s.spans_dropped_queue_full),
      static_cast<unsigned long long>(s.spans_dropped_rejected),
      static_cast<unsigned long long>(s.spans_dropped_export_failed),
      static_cast<unsigned long long>(s.spans_dropped_shutdown),
      static_cast<unsigned long long>(s.spans_dropped_thread_exit),
      static_cast<unsigned long long>(s.spans_dropped_spool_full),
      static_cast<unsigned long long>(s.spans_dropped_spool_corrupt),
      static_cast<unsigned long long>(s.spans_dropped_spool_gone),
      static_cast<unsigned long long>(s.spool_segments_corrupt),
      static_cast<unsigned long long>(s.spans_exported));
}

void at_exit() {
  uint32_t timeout_ms;
  {
    std::lock_guard<std::mutex> lk(g_life.mu);
    if (g_life.phase == Phase::kStopped) return;
    timeout_ms = g_life.rt->cfg.shutdown_timeout_ms;
  }
  shutdown(timeout_ms);
  // Everything was drained and spooled: this process's ring files go (their
  // mappings stay valid for anything that still runs).
  ring_files_at_exit();
}

}  // namespace

const Runtime *runtime() {
  return g_runtime.load(std::memory_order_acquire);
}

bool exporter_live() {
  return g_exporter_live.load(std::memory_order_relaxed);
}

void exporter_wake() {
  // Pairs with the fence in Exporter::pump after it clears the flag: either
  // that pass sees the span just queued, or this load sees the flag cleared.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  // A failed exporter start is retried from here whatever the wake-up flag
  // says: no loop runs to clear it.
  if (g_wake_pending.load(std::memory_order_relaxed) &&
      g_retry_at_ms.load(std::memory_order_relaxed) == 0)
    return;
  wake_slow();
}

__attribute__((cold, noinline)) void exporter_ensure_started() {
  if (runtime() == nullptr) return;  // spans ending after shutdown stay queued
  // Another thread starting the exporter (or a lifecycle call) holds the
  // lock: this span waits in its ring; a later one tries again.
  std::unique_lock<std::mutex> lk(g_life.mu, std::try_to_lock);
  if (!lk.owns_lock() || g_life.phase != Phase::kIdle || g_life.rt->disabled) return;
  start_exporter_locked();
}

std::vector<ResourceAttr> resource_attributes(const Config &cfg) {
  std::vector<ResourceAttr> attrs;
  auto set = [&](const std::string &k, const std::string &v) {
    for (auto &a : attrs)
      if (a.key == k) {
        a.str = v;
        a.is_int = false;
        return;
      }
    attrs.push_back({k, v, 0, false});
  };
  const std::string exe = executable_name();
  set("service.name", "unknown_service:" + exe);
  set("telemetry.sdk.name", "libotelagent");
  set("telemetry.sdk.language", "cpp");
  set("telemetry.sdk.version", OTELAGENT_VERSION_STRING);
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) == 0) set("host.name", host);
  attrs.push_back({"process.pid", "", static_cast<int64_t>(getpid()), true});
  set("process.executable.name", exe);
  for (const auto &[k, v] : cfg.resource_attrs) set(k, v);
  if (!cfg.service_name.empty()) set("service.name", cfg.service_name);
  return attrs;
}

int start(const std::map<std::string, std::string, std::less<>> &settings) {
  std::lock_guard<std::mutex> lk(g_life.mu);
  if (g_life.phase != Phase::kStopped) return OTELAGENT_E_ALREADY_STARTED;
  std::vector<std::string> warnings;
  auto *rt = new Runtime;
  rt->cfg = config_parse(settings, &warnings, http_endpoint_problem);
  const auto log_dest = settings.find("OTELAGENT_LOG");
  log_set_destination(log_dest != settings.end() ? log_dest->second : std::string_view());
  for (const auto &w : warnings) log_warn("%s", w.c_str());
  rt->disabled = rt->cfg.disabled || rt->cfg.exporter == ExporterKind::kNone;
  sampler_prepare(rt);
  rt->wake_every = rt->cfg.max_export_batch_size;
  rt->use_tsc = rt->cfg.allow_tsc && tsc_usable();
  rt->clock_base = clock_pair();
  thread_states_set_ring_bytes(rt->cfg.ring_bytes);
  // With a spool, the rings of threads registered from now on are files in
  // it, so that ended spans survive the process (see core/ring_file.h).
  if (!rt->disabled && !rt->cfg.spool_dir.empty() && rt->cfg.exporter == ExporterKind::kOtlp)
    ring_files_configure(rt->cfg.spool_dir, encode_resource(resource_attributes(rt->cfg)),
                         rt->clock_base);
  else
    ring_files_configure(std::string(), std::string_view(), ClockPair{});
  if (!g_life.hooks_installed) {
    http_global_init();
    pthread_atfork(nullptr, nullptr, at_fork_child);
    atexit(at_exit);
    g_life.hooks_installed = true;
  }
  g_life.rt = rt;
  g_life.phase = Phase::kIdle;
  g_exporter_live.store(false, std::memory_order_relaxed);
  // Release: the runtime is complete before any thread can see it.
  g_runtime.store(rt, std::memory_order_release);
  // With a spool the exporter starts at once, not with the first span: it
  // sends what earlier or killed processes left in the directory (and keeps
  // looking for it), whether or not this one ever emits.
  if (!rt->disabled && !rt->cfg.spool_dir.empty()) start_exporter_locked();
  return rt->disabled ? OTELAGENT_E_DISABLED : OTELAGENT_OK;
}

int flush(uint32_t timeout_ms) {
  std::shared_ptr<Exporter> e;
  {
    std::lock_guard<std::mutex> lk(g_life.mu);
    switch (g_life.phase) {
      case Phase::kStopped:
        return OTELAGENT_E_NOT_STARTED;
      case Phase::kIdle:
        if (g_life.rt->disabled || !spans_waiting()) return OTELAGENT_OK;
        [[fallthrough]];
      case Phase::kFailed:
        // An explicit flush tries at once, whatever the rate limit.
        if (!start_exporter_locked()) return OTELAGENT_E_EXPORTER_DOWN;
        break;
      case Phase::kRunning:
        break;
    }
    e = g_life.exporter;
  }
  switch (e->flush(timeout_ms)) {
    case Exporter::Result::kDone:
      return OTELAGENT_OK;
    case Exporter::Result::kTimeout:
      return OTELAGENT_E_TIMEOUT;
    case Exporter::Result::kStopped:
      break;
  }
  return OTELAGENT_E_NOT_STARTED;  // shut down meanwhile
}

int shutdown(uint32_t timeout_ms) {
  std::lock_guard<std::mutex> lk(g_life.mu);
  if (g_life.phase == Phase::kStopped) return OTELAGENT_E_NOT_STARTED;
  int rc = OTELAGENT_OK;
  // Spans queued while the exporter could not start get one more chance.
  if (g_life.phase != Phase::kRunning && !g_life.rt->disabled && spans_waiting() &&
      !start_exporter_locked())
    rc = OTELAGENT_E_EXPORTER_DOWN;
  g_runtime.store(nullptr, std::memory_order_release);
  retire_runtime(g_life.rt);
  g_life.rt = nullptr;
  std::shared_ptr<Exporter> e = std::move(g_life.exporter);
  g_life.phase = Phase::kStopped;
  g_retry_at_ms.store(0, std::memory_order_relaxed);
  g_exporter_live.store(false, std::memory_order_relaxed);
  if (e == nullptr) return rc;
  // seq_cst pairs with wake_slow's increment-then-load.
  g_wake_target.store(nullptr);
  while (g_wakers.load() != 0) std::this_thread::yield();
  switch (e->stop(timeout_ms, kTeardownMs)) {
    case Exporter::StopResult::kFlushed:
      break;
    case Exporter::StopResult::kTimeout:
      rc = OTELAGENT_E_TIMEOUT;
      break;
    case Exporter::StopResult::kAbandoned:
      log_warn("shutdown: the exporter thread did not end within %u ms and was left behind",
               timeout_ms + kTeardownMs);
      rc = OTELAGENT_E_TIMEOUT;
      break;
  }
  log_drop_summary();
  return rc;
}

void sampler_prepare(Runtime *rt) {
  const double r = rt->cfg.sampler_ratio;
  rt->ratio_all = r >= 1.0;
  rt->ratio_bound = r <= 0.0 ? 0 : static_cast<uint64_t>(r * 18446744073709551616.0);
}

void stats_get(otelagent_stats *s) {
  uint64_t queued = 0;
  for (ThreadState *t = thread_states(); t != nullptr; t = t->next) {
    s->spans_started += t->started.get();
    s->spans_ended += t->ended.get();
    s->spans_recorded += t->recorded.get();
    s->spans_sampled_out += t->sampled_out.get();
    s->spans_dropped_ring_full += t->ring_full.get();
    s->spans_dropped_span_limit += t->span_limit.get();
    s->values_truncated += t->truncated.get();
    queued += t->queued.get();
  }
  // Spans are counted started on the thread that starts them and ended on
  // the one that ends them; recorded spans count as both.
  const OrphanCounts &o = orphan_counts();
  s->spans_ended += o.ended_unregistered.load(std::memory_order_relaxed);
  s->spans_open = s->spans_started > s->spans_ended ? s->spans_started - s->spans_ended : 0;
  s->spans_dropped_thread_exit = o.thread_exit.load(std::memory_order_relaxed);
  const ExportCounters &c = export_counters();
  s->spans_dropped_rejected = c.rejected.load(std::memory_order_relaxed);
  s->spans_dropped_export_failed = c.failed.load(std::memory_order_relaxed);
  s->spans_dropped_shutdown = c.shutdown_dropped.load(std::memory_order_relaxed) +
                              o.after_shutdown.load(std::memory_order_relaxed);
  s->spans_exported = c.exported.load(std::memory_order_relaxed);
  s->export_requests = c.requests.load(std::memory_order_relaxed);
  s->export_retries = c.retries.load(std::memory_order_relaxed);
  s->bytes_sent = c.bytes_sent.load(std::memory_order_relaxed);
  s->values_truncated += c.truncated.load(std::memory_order_relaxed);
  s->spans_dropped_queue_full = c.queue_full.load(std::memory_order_relaxed);
  const SpoolCounters &sc = spool_counters();
  s->spans_spooled = sc.spans_spooled.load(std::memory_order_relaxed);
  s->spans_replayed = c.replayed.load(std::memory_order_relaxed);
  s->spans_dropped_spool_full = sc.spans_dropped_full.load(std::memory_order_relaxed);
  s->spans_dropped_spool_corrupt = sc.spans_dropped_corrupt.load(std::memory_order_relaxed);
  s->spans_dropped_spool_gone = sc.spans_dropped_gone.load(std::memory_order_relaxed);
  s->spool_segments_corrupt = sc.segments_corrupt.load(std::memory_order_relaxed);
  s->spans_spool_write_failed = c.spool_write_failed.load(std::memory_order_relaxed);
  s->spool_bytes = sc.bytes.load(std::memory_order_relaxed);
  if (const uint64_t oldest = sc.oldest_unix_ns.load(std::memory_order_relaxed); oldest != 0) {
    const uint64_t now = now_unix_nano();
    s->spool_oldest_age_ms = now > oldest ? (now - oldest) / 1000000u : 0;
  }
  s->export_latency_us_last = c.latency_us_last.load(std::memory_order_relaxed);
  s->export_latency_us_max = c.latency_us_max.load(std::memory_order_relaxed);
  const uint64_t done = c.completed();
  s->queue_depth = queued > done ? queued - done : 0;
}

}  // namespace otelagent
