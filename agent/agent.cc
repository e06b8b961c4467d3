// The agent's lifecycle: start, flush, shutdown, the lazily started exporter
// thread, fork and process exit. Nothing here is on the hot path except the
// relaxed checks in runtime()/exporter_live().
#include "agent.h"

#include <limits.h>
#include <pthread.h>
#include <unistd.h>

#include <mutex>
#include <new>
#include <thread>
#include <vector>

#include "core/log.h"
#include "core/thread_state.h"
#include "export/exporter.h"
#include "export/http_transport.h"
#include "export/otlp_encoder.h"
#include "host/sampler.h"

namespace otelagent {

namespace {

// Guards start, shutdown and the exporter's creation. Never held on the hot
// path nor while a flush waits.
std::mutex g_life_mu;
std::atomic<const Runtime *> g_runtime{nullptr};
std::atomic<bool> g_exporter_live{false};
Exporter *g_exporter = nullptr;  // guarded by g_life_mu
// Stopped exporters are kept, not deleted: otelagent_flush may still hold a
// pointer to one (it waits without the lifecycle lock). One per start.
// Heap-held so no static destructor at exit makes them unreachable.
std::vector<Exporter *> *const g_stopped_exporters = new std::vector<Exporter *>;
// The exporter host threads may wake, and how many are doing so right now:
// shutdown clears the pointer and waits for the count to fall to zero before
// the loop's handles go away.
std::atomic<Exporter *> g_wake_target{nullptr};
std::atomic<int> g_wakers{0};
bool g_hooks_installed = false;
// Runtimes retired by shutdown stay allocated (a host thread may still read
// one) and reachable from here: at most one per start.
Runtime *g_retired = nullptr;

std::string executable_name() {
  char path[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) return "unknown";
  std::string_view p(path, static_cast<size_t>(n));
  return std::string(p.substr(p.rfind('/') + 1));
}

void stop_exporter_locked(uint32_t timeout_ms, bool *flushed) {
  Exporter *e = g_exporter;
  g_exporter = nullptr;
  if (e == nullptr) return;
  // seq_cst pairs with exporter_wake's increment-then-load.
  g_wake_target.store(nullptr);
  while (g_wakers.load() != 0) std::this_thread::yield();
  *flushed = e->stop(timeout_ms);
  g_stopped_exporters->push_back(e);
  g_exporter_live.store(false, std::memory_order_relaxed);
}

void at_fork_child() {
  // The child has only the forking thread: the exporter thread, and whatever
  // lock another thread held, are gone. Start afresh, lazily.
  new (&g_life_mu) std::mutex();
  g_exporter = nullptr;  // the parent's object is abandoned, not destroyed
  g_wake_target.store(nullptr);
  g_wakers.store(0);
  g_exporter_live.store(false);
  thread_states_after_fork_child();
  export_counters().reset();
  log_reset_once();
}

void at_exit() {
  const Runtime *rt = runtime();
  if (rt != nullptr) shutdown(rt->cfg.shutdown_timeout_ms);
}

}  // namespace

const Runtime *runtime() {
  return g_runtime.load(std::memory_order_acquire);
}

bool exporter_live() {
  return g_exporter_live.load(std::memory_order_relaxed);
}

void exporter_wake() {
  g_wakers.fetch_add(1);
  if (Exporter *e = g_wake_target.load()) e->wake();
  g_wakers.fetch_sub(1);
}

__attribute__((cold, noinline)) void exporter_ensure_started() {
  if (runtime() == nullptr) return;  // spans ending after shutdown stay queued
  std::lock_guard<std::mutex> lk(g_life_mu);
  const Runtime *rt = runtime();
  if (g_exporter_live.load(std::memory_order_relaxed) || rt == nullptr || rt->disabled) return;
  auto *e = new (std::nothrow)
      Exporter(rt->cfg, encode_resource(resource_attributes(rt->cfg)), rt->clock_base);
  if (e != nullptr && e->start()) {
    g_exporter = e;
    g_wake_target.store(e);
  } else {
    delete e;
  }
  // Set even on failure, so that span ends do not retry on every call.
  g_exporter_live.store(true, std::memory_order_relaxed);
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
  std::lock_guard<std::mutex> lk(g_life_mu);
  if (runtime() != nullptr) return OTELAGENT_E_ALREADY_STARTED;
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
  if (!g_hooks_installed) {
    http_global_init();
    pthread_atfork(nullptr, nullptr, at_fork_child);
    atexit(at_exit);
    g_hooks_installed = true;
  }
  // Release: the runtime is complete before any thread can see it.
  g_runtime.store(rt, std::memory_order_release);
  return rt->disabled ? OTELAGENT_E_DISABLED : OTELAGENT_OK;
}

int flush(uint32_t timeout_ms) {
  Exporter *e;
  {
    std::lock_guard<std::mutex> lk(g_life_mu);
    if (runtime() == nullptr) return OTELAGENT_E_NOT_STARTED;
    e = g_exporter;
  }
  if (e == nullptr) return OTELAGENT_OK;  // nothing has been queued yet
  return e->flush(timeout_ms) ? OTELAGENT_OK : OTELAGENT_E_TIMEOUT;
}

int shutdown(uint32_t timeout_ms) {
  std::lock_guard<std::mutex> lk(g_life_mu);
  if (runtime() == nullptr) return OTELAGENT_E_NOT_STARTED;
  // The runtime is never freed: a host thread may still be reading it.
  auto *rt = const_cast<Runtime *>(runtime());
  g_runtime.store(nullptr, std::memory_order_release);
  rt->retired_next = g_retired;
  g_retired = rt;
  bool flushed = true;
  stop_exporter_locked(timeout_ms, &flushed);
  return flushed ? OTELAGENT_OK : OTELAGENT_E_TIMEOUT;
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
  const uint64_t done = c.completed();
  s->queue_depth = queued > done ? queued - done : 0;
}

}  // namespace otelagent
