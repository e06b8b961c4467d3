// libotelagent benchmarks. Prints tables (Markdown) of:
//  1. hot-path latency percentiles, 1 and 2 producer threads, against a naive
//     baseline (two clock reads + copying the same bytes) measured in the
//     same run;
//  2. the one-crossing record call;
//  3. heap allocations per span on the host thread;
//  4. exporter work on one core (drain + encode + compress), none/gzip/zstd;
//  5. end to end over HTTP to a loopback receiver that discards;
//  6. resident memory, also per emitting thread (1, 8, 40 threads);
//  7. the host's cost per span with the collector healthy, down and
//     answering 503, side by side, without and with the disk spool;
//  8. the spool's sustained write rate with the collector down, and the
//     rate at which the next process replays it.
// Usage: otelagent_bench [--quick] [--overload | --spool]
//   --overload: sections 6-7 only; --spool: sections 7-8 only.
#include <otelagent/otelagent.h>
#include <x86intrin.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "bench/discard_server.h"
#include "core/ids.h"
#include "core/spsc_ring.h"
#include "export/compressor.h"
#include "export/otlp_encoder.h"
#include "export/sanitize.h"
#include "support/alloc_hooks.h"
#include "support/record_builder.h"
#include "support/span_shape.h"

namespace {

bool g_quick = false;
double g_ns_per_tick = 0;

uint64_t ticks() {
  unsigned aux;
  return __rdtscp(&aux);
}

void calibrate() {
  auto t0 = std::chrono::steady_clock::now();
  uint64_t c0 = ticks();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  uint64_t c1 = ticks();
  auto t1 = std::chrono::steady_clock::now();
  g_ns_per_tick =
      std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(c1 - c0);
}

struct Percentiles {
  double p50, p99, p999, max;
};

Percentiles percentiles(std::vector<uint64_t> &v) {
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    return static_cast<double>(v[static_cast<size_t>(q * (v.size() - 1))]) * g_ns_per_tick;
  };
  return {at(0.5), at(0.99), at(0.999), static_cast<double>(v.back()) * g_ns_per_tick};
}

long rss_kib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

otelagent_stats stats() {
  otelagent_stats s{};
  s.struct_size = sizeof s;
  otelagent_stats_get(&s);
  return s;
}

std::string loopback(int port) {
  return "http://127.0.0.1:" + std::to_string(port);
}

using Settings = std::vector<std::pair<std::string, std::string>>;

void start_agent(const std::string &endpoint, const char *compression, const char *queue,
                 const char *batch, bool big_ring = true, const char *protocol = "http/protobuf",
                 const Settings &extra = {}) {
  otelagent_config *cfg = otelagent_config_new();
  auto set = [&](const char *k, std::string v) {
    otelagent_config_set(cfg, k, std::strlen(k), v.data(), v.size());
  };
  set("OTEL_EXPORTER_OTLP_PROTOCOL", protocol);
  set("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint);
  set("OTEL_EXPORTER_OTLP_COMPRESSION", compression);
  set("OTEL_SERVICE_NAME", "bench");
  if (big_ring) set("OTELAGENT_RING_BYTES", std::to_string(8 << 20));
  if (queue) set("OTEL_BSP_MAX_QUEUE_SIZE", queue);
  if (batch) set("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", batch);
  for (const auto &[k, v] : extra) set(k.c_str(), v);
  if (otelagent_start(cfg) != OTELAGENT_OK) std::fprintf(stderr, "bench: start failed\n");
  otelagent_config_free(cfg);
}

using otelagent_test::RecordBuilder;
using otelagent_test::reference_record;

// Measures `op` per call in paced bursts on `threads` threads.
template <typename Op>
std::vector<uint64_t> measure(int threads, uint64_t per_thread, Op op) {
  std::vector<std::vector<uint64_t>> lat(threads);
  std::atomic<int> ready{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      for (uint64_t i = 0; i < 2000; ++i) op(i);  // warm-up (thread registration, caches)
      ready.fetch_add(1);
      while (ready.load() < threads) {
      }
      auto &v = lat[t];
      v.reserve(per_thread);
      for (uint64_t i = 0; i < per_thread; ++i) {
        uint64_t a = ticks();
        op(i);
        uint64_t b = ticks();
        v.push_back(b - a);
        // Bursts of 64, then a sleep that leaves a core to the exporter
        // thread (2 cores here): the figure is the emit cost with the
        // exporter keeping up, as in a service, not a queue-full one.
        if (i % 64 == 63) std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
    });
  for (auto &t : ts) t.join();
  std::vector<uint64_t> all;
  for (auto &v : lat) all.insert(all.end(), v.begin(), v.end());
  return all;
}

void row(const char *what, int threads, Percentiles p, double base_p50) {
  std::printf("| %-44s | %d | %7.0f | %7.0f | %7.0f | %8.0f | %5.2fx |\n", what, threads, p.p50,
              p.p99, p.p999, p.max, base_p50 > 0 ? p.p50 / base_p50 : 1.0);
}

void hot_path(int port) {
  start_agent(loopback(port), "none", nullptr, nullptr);
  const uint64_t n = g_quick ? 20000 : 200000;
  std::vector<uint64_t> empty = measure(1, n, [](uint64_t) {});
  std::printf("\n## Hot path (ns per span; start + 4 attributes + end; %llu spans per thread)\n\n",
              static_cast<unsigned long long>(n));
  std::printf(
      "Timer overhead included in every figure (rdtscp pair, p50): %.0f ns. TSC: %.3f ns/tick.\n\n",
      percentiles(empty).p50, g_ns_per_tick);
  std::printf(
      "| operation | threads | p50 | p99 | p99.9 | max | p50 vs baseline "
      "|\n|---|---|---|---|---|---|---|\n");
  const std::vector<uint8_t> ref = reference_record();
  for (int threads : {1, 2}) {
    auto base = measure(threads, n, [&](uint64_t i) {
      // Naive baseline: two clock reads and a copy of the same bytes.
      thread_local std::vector<uint8_t> sink(1 << 20);
      timespec a, b;
      clock_gettime(CLOCK_REALTIME, &a);
      std::memcpy(sink.data() + (i % 4096) * 256, ref.data(), ref.size());
      clock_gettime(CLOCK_REALTIME, &b);
      std::memcpy(sink.data() + (i % 4096) * 256 + 40, &a, sizeof a);
      std::memcpy(sink.data() + (i % 4096) * 256 + 56, &b, sizeof b);
    });
    Percentiles bp = percentiles(base);
    row("naive baseline (2 clock reads + copy)", threads, bp, bp.p50);
    otelagent_stats before = stats();
    auto spans = measure(threads, n, [](uint64_t i) { otelagent_test::emit_reference_span(i); });
    row("otelagent span calls", threads, percentiles(spans), bp.p50);
    std::vector<uint8_t> rec = ref;
    auto recs = measure(threads, n, [&](uint64_t) {
      thread_local std::vector<uint8_t> r = ref;
      otelagent_span_context ids;
      otelagent_span_context_new(nullptr, &ids);
      std::memcpy(r.data() + RecordBuilder::kTraceIdAt, ids.trace_id, 16);
      std::memcpy(r.data() + RecordBuilder::kSpanIdAt, ids.span_id, 8);
      timespec a, b;
      clock_gettime(CLOCK_REALTIME, &a);
      clock_gettime(CLOCK_REALTIME, &b);
      uint64_t s = a.tv_sec * 1000000000ull + a.tv_nsec, e = b.tv_sec * 1000000000ull + b.tv_nsec;
      std::memcpy(r.data() + RecordBuilder::kStartAt, &s, 8);
      std::memcpy(r.data() + RecordBuilder::kEndAt, &e, 8);
      otelagent_record_span(r.data(), r.size());
    });
    row("one-crossing: context_new + record_span", threads, percentiles(recs), bp.p50);
    otelagent_flush(10000);
    otelagent_stats after = stats();
    std::printf("|   (dropped while measuring: ring full %llu) | | | | | | |\n",
                static_cast<unsigned long long>(after.spans_dropped_ring_full -
                                                before.spans_dropped_ring_full));
  }
  // Heap allocations on the host thread.
  otelagent_test::alloc_count_begin();
  for (uint64_t i = 0; i < 10000; ++i) otelagent_test::emit_reference_span(i);
  auto c = otelagent_test::alloc_count_end();
  std::vector<uint8_t> r = ref;
  otelagent_test::alloc_count_begin();
  for (uint64_t i = 0; i < 10000; ++i) otelagent_record_span(r.data(), r.size());
  auto c2 = otelagent_test::alloc_count_end();
  std::printf(
      "\nHeap allocations per span on the host thread (malloc + operator new hooked, 10000 spans): "
      "span calls %.4f, record call %.4f\n",
      static_cast<double>(c.mallocs + c.news) / 10000,
      static_cast<double>(c2.mallocs + c2.news) / 10000);
  otelagent_shutdown(10000);
}

void ids_for_bench(otelagent_span_context *out) {
  static otelagent::IdGenerator gen = [] {
    otelagent::IdGenerator g;
    g.seed();
    return g;
  }();
  gen.trace_id(out->trace_id, 0);
  gen.span_id(out->span_id);
}

void exporter_work() {
  using namespace otelagent;
  const int batches = g_quick ? 40 : 400;
  const size_t batch = 512;
  std::printf(
      "\n## Exporter work on one core (drain + check + encode + compress; %d batches of %zu "
      "spans)\n\n",
      batches, batch);
  std::printf(
      "| compression | spans/s | bytes/span | vs the C++ SDK's whole exporter (~82k/s) "
      "|\n|---|---|---|---|\n");
  Config cfg;
  std::vector<uint8_t> ref = reference_record();
  SpscRing ring;
  ring.init(8 << 20);
  std::string resource =
      encode_resource({{"service.name", "bench", 0, false}, {"host.name", "h", 0, false}});
  for (Compression comp : {Compression::kNone, Compression::kGzip, Compression::kZstd}) {
    Compressor compressor;
    std::vector<uint8_t> pending;
    std::vector<uint32_t> offsets;
    std::vector<RecordView> views;
    std::string encoded, out;
    uint64_t bytes = 0, spans = 0;
    double secs = 0;
    for (int b = 0; b < batches; ++b) {
      for (size_t i = 0; i < batch; ++i) {  // fill (not timed): what host threads did
        otelagent_span_context ids;         // random ids, as real spans have
        ids_for_bench(&ids);
        std::memcpy(ref.data() + RecordBuilder::kTraceIdAt, ids.trace_id, 16);
        std::memcpy(ref.data() + RecordBuilder::kSpanIdAt, ids.span_id, 8);
        uint64_t t = 1700000000000000000ull + static_cast<uint64_t>(b * batch + i) * 7919;
        std::memcpy(ref.data() + RecordBuilder::kStartAt, &t, 8);
        t += 12345;
        std::memcpy(ref.data() + RecordBuilder::kEndAt, &t, 8);
        ring.push(ref.data(), static_cast<uint32_t>(ref.size()));
      }
      auto t0 = std::chrono::steady_clock::now();
      pending.clear();
      offsets.clear();
      views.clear();
      ring.consume(
          [&](const uint8_t *d, uint32_t len) {
            offsets.push_back(static_cast<uint32_t>(pending.size()));
            pending.insert(pending.end(), d, d + len);
          },
          batch);
      for (uint32_t off : offsets) {
        RecordView v{pending.data() + off, load_u32(pending.data() + off)};
        if (!record_is_clean(v, cfg.limits)) std::abort();
        views.push_back(v);
      }
      encode_request(resource, views, &encoded);
      compressor.compress(comp, encoded, &out);
      secs += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      bytes += out.size();
      spans += batch;
    }
    const char *name = comp == Compression::kNone   ? "none"
                       : comp == Compression::kGzip ? "gzip"
                                                    : "zstd";
    double rate = static_cast<double>(spans) / secs;
    std::printf("| %s | %.0f | %.1f | %.1fx |\n", name, rate, static_cast<double>(bytes) / spans,
                rate / 82000);
  }
}

// In a fresh child process per row (no thread state left over from another
// row): the resident memory N emitting threads add, default settings.
void rss_per_thread(int port) {
  std::printf(
      "\n## Resident memory per emitting thread (KiB, default settings)\n\n"
      "Each row in its own process: the agent is started and its exporter running (one span from "
      "the main thread); then N threads are started, VmRSS is read, each thread emits 2000 spans, "
      "everything is flushed and VmRSS is read again while the threads are still alive.\n\n"
      "| emitting threads | VmRSS before their spans | after | added | added per thread |\n"
      "|---|---|---|---|---|\n");
  std::fflush(stdout);
  for (int n : {1, 8, 40}) {
    const pid_t pid = fork();
    if (pid == 0) {
      start_agent(loopback(port), "none", nullptr, nullptr, false);
      otelagent_test::emit_reference_span(0);
      otelagent_flush(5000);
      long before = 0, after = 0;
      std::barrier sync(n + 1);
      std::vector<std::thread> ts;
      for (int t = 0; t < n; ++t)
        ts.emplace_back([&] {
          sync.arrive_and_wait();  // all alive; the main thread reads VmRSS
          sync.arrive_and_wait();
          for (uint64_t i = 0; i < 2000; ++i) otelagent_test::emit_reference_span(i);
          sync.arrive_and_wait();  // all done; the main thread flushes and reads VmRSS
          sync.arrive_and_wait();
        });
      sync.arrive_and_wait();
      before = rss_kib();
      sync.arrive_and_wait();
      sync.arrive_and_wait();
      otelagent_flush(10000);
      after = rss_kib();
      sync.arrive_and_wait();
      for (auto &t : ts) t.join();
      std::printf("| %d | %ld | %ld | %ld | %.0f |\n", n, before, after, after - before,
                  static_cast<double>(after - before) / n);
      std::fflush(stdout);
      otelagent_shutdown(5000);
      _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
  }
}

// Runs this binary again as `otelagent_bench --child ARGS...` and returns
// what the child printed on stdout. A fresh process per row: a thread's ring
// is made when the thread first emits (anonymous memory, or a file when a
// spool is configured) and is kept, and adopted by later threads, across
// restarts of the agent, so rows with and without a spool cannot share a
// process.
std::string run_child(const std::vector<std::string> &args) {
  std::fflush(stdout);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return std::string();
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  std::vector<std::string> all{"otelagent_bench", "--child"};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char *> argv;
  for (auto &a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int err = posix_spawn(&pid, "/proc/self/exe", &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  if (err == 0) waitpid(pid, &status, 0);
  if (err != 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    std::fprintf(stderr, "bench: child %s failed\n", args.empty() ? "" : args[0].c_str());
  return out;
}

// "DIR (fstype)", the type from the longest mount point above DIR.
std::string fs_label(const std::string &dir) {
  std::error_code ec;
  const std::string real = std::filesystem::canonical(dir, ec).string();
  std::ifstream mounts("/proc/self/mounts");
  std::string dev, point, type, best_type = "?";
  size_t best = 0;
  std::string rest;
  while (mounts >> dev >> point >> type && std::getline(mounts, rest)) {
    const bool above =
        real == point || point == "/" ||
        (real.rfind(point, 0) == 0 && real.size() > point.size() && real[point.size()] == '/');
    if (above && point.size() >= best) {
      best = point.size();
      best_type = type;
    }
  }
  return dir + " (" + best_type + ")";
}

// Where the spool rows put their directories: the default temporary
// directory, and /dev/shm (tmpfs: no disk under the page cache) if usable.
std::vector<std::string> spool_bases() {
  const char *tmp = std::getenv("TMPDIR");
  std::vector<std::string> bases{tmp != nullptr && *tmp != '\0' ? tmp : "/tmp"};
  struct stat st;
  if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0 &&
      bases[0] != "/dev/shm")
    bases.push_back("/dev/shm");
  return bases;
}

std::string make_spool_dir(const std::string &base) {
  std::string t = base + "/otelagent-bench-XXXXXX";
  return mkdtemp(t.data()) != nullptr ? t : std::string();
}

std::string fmt_double(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.17g", v);
  return b;
}

// CPU time (ns) the exporter thread of this process has used so far, from
// /proc/self/task/*/schedstat; 0 if there is none.
uint64_t exporter_cpu_ns() {
  std::error_code ec;
  for (const auto &task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    if (!std::getline(comm, name) || name != "otelagent-exp") continue;
    std::ifstream sched(task.path() / "schedstat");
    uint64_t ns = 0;
    sched >> ns;
    return ns;
  }
  return 0;
}

// Child: one row of the host's cost table. Default settings (plus the spool
// directory when not "-"); 1 thread paced at one span per 4 us; a warm-up of
// n/4 spans brings the exporter to its steady state (for down and 503:
// retrying, its queue full or, with a spool, writing every batch to disk),
// then n spans are measured. Prints the figures on one line.
int child_host_row(int port, const std::string &dir, uint64_t n) {
  Settings extra;
  if (dir != "-") extra.emplace_back("OTELAGENT_SPOOL_DIR", dir);
  start_agent(loopback(port), "none", nullptr, nullptr, false, "http/protobuf", extra);
  const uint64_t interval = static_cast<uint64_t>(4000.0 / g_ns_per_tick);  // 4 us
  std::vector<uint64_t> lat;
  lat.reserve(n);
  otelagent_stats s0{};
  uint64_t cpu0 = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (int phase = 0; phase < 2; ++phase) {
    const uint64_t count = phase == 0 ? n / 4 : n;  // warm-up, then measured
    if (phase == 1) {
      s0 = stats();
      cpu0 = exporter_cpu_ns();
      t0 = std::chrono::steady_clock::now();
    }
    uint64_t next = ticks();
    for (uint64_t i = 0; i < count; ++i) {
      while (ticks() < next) {
      }
      next += interval;
      uint64_t a = ticks();
      otelagent_test::emit_reference_span(i);
      uint64_t b = ticks();
      if (phase == 1) lat.push_back(b - a);
    }
  }
  otelagent_stats s1 = stats();
  const double cpu = static_cast<double>(exporter_cpu_ns() - cpu0) / 1e9 /
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  Percentiles p = percentiles(lat);
  std::printf(
      "%.3f %.3f %.3f %.4f %llu %llu %llu %llu %llu\n", p.p50, p.p99, p.p999, cpu,
      static_cast<unsigned long long>(s1.spans_dropped_ring_full - s0.spans_dropped_ring_full),
      static_cast<unsigned long long>(s1.spans_dropped_queue_full - s0.spans_dropped_queue_full),
      static_cast<unsigned long long>(s1.spans_spooled - s0.spans_spooled),
      static_cast<unsigned long long>(s1.spans_dropped_spool_full - s0.spans_dropped_spool_full),
      static_cast<unsigned long long>(s1.spool_bytes));
  std::fflush(stdout);
  otelagent_shutdown(500);
  return 0;
}

// The host's cost per span while the collector is healthy, down (connection
// refused) or answering 503, without a spool and with one on each
// filesystem of spool_bases(); each row in its own process (run_child).
void overload(int healthy_port) {
  const uint64_t n = g_quick ? 100000 : 500000;
  otelagent_bench::DiscardServer unavailable(503);
  std::printf(
      "\n## The host's cost when the collector is down or overloaded (ns per span; start + 4 "
      "attributes + end; 1 thread paced at ~250k spans/s; default settings; %llu spans per "
      "row)\n\n"
      "Each row in its own process. Spool: off, or OTELAGENT_SPOOL_DIR set to a new directory "
      "on the filesystem shown (the thread's ring is then a file mapping). Ratios are to the "
      "first row. Spooled: spans written to the spool while measuring; spool MB: its segment "
      "bytes at the end of the row. Exporter CPU: its thread's CPU time over the measured "
      "spans' wall time (schedstat), in %% of one core.\n\n"
      "| collector | spool | p50 | p99 | p99.9 | p50 vs healthy | p99 vs healthy | dropped: ring "
      "full | dropped: queue full | dropped: spool full | spooled | spool MB | exporter CPU |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
      static_cast<unsigned long long>(n));
  struct Mode {
    const char *name;
    int port;
  };
  const Mode modes[] = {{"healthy (loopback discard server)", healthy_port},
                        {"down (connection refused)", 1},
                        {"answering 503", unavailable.port()}};
  std::vector<std::string> bases{""};  // "": no spool
  for (const std::string &b : spool_bases()) bases.push_back(b);
  double healthy_p50 = 0, healthy_p99 = 0;
  // Rows with and without a spool next to each other in time, so that the
  // load of a shared machine drifts less between the rows compared.
  for (const Mode &m : modes) {
    for (const std::string &base : bases) {
      const std::string dir = base.empty() ? "-" : make_spool_dir(base);
      if (dir.empty()) {
        std::fprintf(stderr, "bench: cannot make a directory in %s\n", base.c_str());
        continue;
      }
      std::istringstream out(run_child(
          {"host", fmt_double(g_ns_per_tick), std::to_string(m.port), dir, std::to_string(n)}));
      const std::string spool = base.empty() ? "off" : fs_label(base);
      if (!base.empty()) std::filesystem::remove_all(dir);
      double p50 = 0, p99 = 0, p999 = 0, cpu = 0;
      unsigned long long ring_full = 0, queue_full = 0, spooled = 0, spool_full = 0, bytes = 0;
      if (!(out >> p50 >> p99 >> p999 >> cpu >> ring_full >> queue_full >> spooled >> spool_full >>
            bytes)) {
        std::printf("| %s | %s | (failed) | | | | | | | | | | |\n", m.name, spool.c_str());
        continue;
      }
      if (healthy_p50 == 0) {
        healthy_p50 = p50;
        healthy_p99 = p99;
      }
      std::printf(
          "| %s | %s | %.0f | %.0f | %.0f | %.2fx | %.2fx | %llu | %llu | %llu | %llu | "
          "%.1f | %.0f%% |\n",
          m.name, spool.c_str(), p50, p99, p999, p50 / healthy_p50, p99 / healthy_p99, ring_full,
          queue_full, spool_full, spooled, static_cast<double>(bytes) / 1e6, cpu * 100);
    }
  }
}

// The host's rate in the spool's write-rate rows: above what the exporter
// can spool, so the spool is the bottleneck.
constexpr double kSpoolTargetRate = 2e6;

// Settings of the spool's write-rate rows, as in the end-to-end table, with a
// cap far above what a row writes.
Settings spool_settings(const std::string &dir) {
  return {{"OTELAGENT_SPOOL_DIR", dir}, {"OTELAGENT_SPOOL_MAX_BYTES", std::to_string(16ull << 30)}};
}

// Child: the collector is down; one thread emits at kSpoolTargetRate for
// `seconds` (bursts of 256, sleeping between them, so that on 2 cores the
// exporter is not fighting a busy host thread for its core) while a sampler reads the statistics
// every 100 ms. Prints: emitted, seconds, spooled and spool bytes over the window, the slowest 0.5
// s window's spooled spans/s, ring-full and other drops in the window; then, after shutdown, the
// spans and bytes the spool holds for the next process.
int child_spool_write(const std::string &dir, const char *comp, double seconds) {
  start_agent(loopback(1), comp, "65536", "4096", true, "http/protobuf", spool_settings(dir));
  // The thread's ring file is made by its first span, and the spool opened
  // by the exporter thread: both before the window.
  otelagent_test::emit_reference_span(0);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  struct Sample {
    double t;
    uint64_t spooled;
  };
  std::vector<Sample> samples;
  std::atomic<bool> done{false};
  const otelagent_stats s0 = stats();
  const auto t0 = std::chrono::steady_clock::now();
  auto since = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  std::thread sampler([&] {
    while (!done.load()) {
      samples.push_back({since(), stats().spans_spooled});
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  uint64_t emitted = 0;
  while (since() < seconds) {
    for (int k = 0; k < 256; ++k) otelagent_test::emit_reference_span(emitted++);
    std::this_thread::sleep_until(
        t0 + std::chrono::duration<double>(static_cast<double>(emitted) / kSpoolTargetRate));
  }
  const otelagent_stats s1 = stats();
  const double secs = since();
  done = true;
  sampler.join();
  double slowest = 0;
  for (size_t i = 0, j = 0; i < samples.size(); ++i) {
    while (j < samples.size() && samples[j].t - samples[i].t < 0.5) ++j;
    if (j == samples.size()) break;
    const double r = static_cast<double>(samples[j].spooled - samples[i].spooled) /
                     (samples[j].t - samples[i].t);
    if (slowest == 0 || r < slowest) slowest = r;
  }
  otelagent_shutdown(1000);
  const otelagent_stats s2 = stats();
  auto d = [](uint64_t a, uint64_t b) { return static_cast<unsigned long long>(b - a); };
  std::printf(
      "%llu %.6f %llu %llu %.0f %llu %llu %llu %llu\n", static_cast<unsigned long long>(emitted),
      secs, d(s0.spans_spooled, s1.spans_spooled), d(s0.spool_bytes, s1.spool_bytes), slowest,
      d(s0.spans_dropped_ring_full, s1.spans_dropped_ring_full),
      d(s0.spans_dropped_queue_full + s0.spans_dropped_spool_full + s0.spans_spool_write_failed,
        s1.spans_dropped_queue_full + s1.spans_dropped_spool_full + s1.spans_spool_write_failed),
      static_cast<unsigned long long>(s2.spans_spooled - s2.spans_dropped_spool_full),
      static_cast<unsigned long long>(s2.spool_bytes));
  return 0;
}

// Child: a new process on the directory the write row left, the collector
// healthy: the time until `expected` spans have been replayed and the spool
// is empty (from before otelagent_start). Prints replayed, seconds and 1 if
// it gave up after 60 s.
int child_spool_replay(int port, const std::string &dir, const char *comp, uint64_t expected) {
  const auto t0 = std::chrono::steady_clock::now();
  start_agent(loopback(port), comp, "65536", "4096", true, "http/protobuf", spool_settings(dir));
  otelagent_stats s{};
  double secs = 0;
  bool gave_up = false;
  for (;;) {
    s = stats();
    secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s.spans_replayed >= expected && s.spool_bytes == 0) break;
    if (secs > 60) {
      gave_up = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  std::printf("%llu %.6f %d\n", static_cast<unsigned long long>(s.spans_replayed), secs,
              gave_up ? 1 : 0);
  std::fflush(stdout);
  otelagent_shutdown(5000);
  return 0;
}

// The spool's sustained write rate and the replay rate, per filesystem and
// compression; each write row and each replay in its own process.
void spool_rates(int healthy_port) {
  const double seconds = g_quick ? 1.0 : 3.0;
  std::printf(
      "\n## The spool's write and replay rates (%.0f s of writing per row)\n\n"
      "Write: the collector is down (connection refused); one thread emits for %.0f s into an "
      "8 MiB ring, paced at %.0fM spans/s (bursts of 256 and sleeps: more than the spool takes, "
      "and a core left to the exporter); every batch goes to the spool "
      "(OTEL_BSP_MAX_QUEUE_SIZE=65536, "
      "OTEL_BSP_MAX_EXPORT_BATCH_SIZE=4096, OTELAGENT_SPOOL_MAX_BYTES=16 GiB). Spooled and MB/s: "
      "spans_spooled and spool_bytes over the window (MB = 10^6 bytes); slowest 0.5 s: the lowest "
      "spooled rate over any 0.5 s of the window (stats read every 100 ms). Replay: a second "
      "process started on the same directory with the loopback discard server, timed from "
      "otelagent_start until everything the first one left (its segments and its ring file) has "
      "been sent and the spool is empty.\n\n"
      "| spool | compression | host spans/s | spooled spans/s | MB/s to the spool | bytes/span "
      "on disk | slowest 0.5 s (spans/s) | dropped: ring full | dropped: other | spans left | "
      "replayed spans/s | replay MB/s | replay s |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
      seconds, seconds, kSpoolTargetRate / 1e6);
  for (const std::string &base : spool_bases()) {
    for (const char *comp : {"none", "zstd"}) {
      const std::string dir = make_spool_dir(base);
      if (dir.empty()) {
        std::fprintf(stderr, "bench: cannot make a directory in %s\n", base.c_str());
        continue;
      }
      std::istringstream w(run_child({"spool-write", dir, comp, fmt_double(seconds)}));
      unsigned long long emitted = 0, spooled = 0, bytes = 0, ring_full = 0, other = 0, left = 0,
                         left_bytes = 0;
      double secs = 0, slowest = 0;
      const std::string label = fs_label(base);
      if (!(w >> emitted >> secs >> spooled >> bytes >> slowest >> ring_full >> other >> left >>
            left_bytes)) {
        std::printf("| %s | %s | (failed) | | | | | | | | | | |\n", label.c_str(), comp);
        std::filesystem::remove_all(dir);
        continue;
      }
      std::istringstream r(run_child(
          {"spool-replay", std::to_string(healthy_port), dir, comp, std::to_string(left)}));
      std::filesystem::remove_all(dir);
      unsigned long long replayed = 0;
      double rsecs = 0;
      int gave_up = 0;
      const bool replay_ok = static_cast<bool>(r >> replayed >> rsecs >> gave_up);
      std::printf("| %s | %s | %.0f | %.0f | %.1f | %.1f | %.0f | %llu | %llu | %llu | ",
                  label.c_str(), comp, static_cast<double>(emitted) / secs,
                  static_cast<double>(spooled) / secs, static_cast<double>(bytes) / secs / 1e6,
                  spooled != 0 ? static_cast<double>(bytes) / static_cast<double>(spooled) : 0.0,
                  slowest, ring_full, other, left);
      if (!replay_ok)
        std::printf("(failed) | | |\n");
      else
        std::printf("%.0f%s | %.1f | %.2f |\n", static_cast<double>(replayed) / rsecs,
                    gave_up ? " (gave up after 60 s)" : "",
                    static_cast<double>(left_bytes) / rsecs / 1e6, rsecs);
    }
  }
}

// The hidden entry point of run_child.
int child_main(int argc, char **argv) {
  const std::string what = argc > 2 ? argv[2] : "";
  if (what == "host" && argc == 7) {
    g_ns_per_tick = std::strtod(argv[3], nullptr);
    return child_host_row(std::atoi(argv[4]), argv[5], std::strtoull(argv[6], nullptr, 10));
  }
  if (what == "spool-write" && argc == 6)
    return child_spool_write(argv[3], argv[4], std::strtod(argv[5], nullptr));
  if (what == "spool-replay" && argc == 7)
    return child_spool_replay(std::atoi(argv[3]), argv[4], argv[5],
                              std::strtoull(argv[6], nullptr, 10));
  std::fprintf(stderr, "bench: bad child arguments\n");
  return 2;
}

// One row of the end-to-end table: `protocol` to `endpoint` with `comp`.
void end_to_end_row(const char *receiver, const char *protocol, const std::string &endpoint,
                    const char *comp, double seconds) {
  start_agent(endpoint, comp, "65536", "4096", true, protocol);
  otelagent_stats s0 = stats();
  long peak = 0;
  auto t0 = std::chrono::steady_clock::now();
  std::thread producer([&] {
    uint64_t i = 0;
    while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < seconds) {
      for (int k = 0; k < 256; ++k) otelagent_test::emit_reference_span(i++);
      while (stats().queue_depth > 30000) std::this_thread::yield();
      if (i % 65536 == 0) peak = std::max(peak, rss_kib());
    }
  });
  producer.join();
  otelagent_flush(60000);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  otelagent_stats s1 = stats();
  uint64_t exported = s1.spans_exported - s0.spans_exported;
  uint64_t dropped = (s1.spans_dropped_ring_full - s0.spans_dropped_ring_full) +
                     (s1.spans_dropped_rejected - s0.spans_dropped_rejected) +
                     (s1.spans_dropped_export_failed - s0.spans_dropped_export_failed);
  std::printf("| %s | %s | %s | %.0f | %.1f | %llu | %llu | %.1f |\n", receiver, protocol, comp,
              static_cast<double>(exported) / secs,
              static_cast<double>(s1.bytes_sent - s0.bytes_sent) / static_cast<double>(exported),
              static_cast<unsigned long long>(s1.export_requests - s0.export_requests),
              static_cast<unsigned long long>(dropped), static_cast<double>(peak) / 1024);
  otelagent_shutdown(10000);
}

// HTTP rows against the loopback discard server; with
// OTELAGENT_BENCH_GRPC_ENDPOINT (and OTELAGENT_BENCH_HTTP_ENDPOINT, the same
// receiver's OTLP/HTTP side) also rows against that receiver, over gRPC and
// HTTP side by side (tests/bench/grpc_rows.sh runs them with the collector).
void end_to_end(int port) {
  const double seconds = g_quick ? 1.0 : 3.0;
  std::printf("\n## End to end to a loopback receiver (%.0f s per row)\n\n", seconds);
  std::printf(
      "Settings: OTEL_BSP_MAX_QUEUE_SIZE=65536, OTEL_BSP_MAX_EXPORT_BATCH_SIZE=4096, "
      "OTELAGENT_RING_BYTES=8 MiB; one producer thread backs off while more than 30000 spans "
      "are queued, so nothing is dropped and the figure is the exporter's sustained rate "
      "(or the receiver's, when it is the slower).\n\n");
  std::printf(
      "| receiver | protocol | compression | spans/s exported | bytes/span on the wire | requests "
      "| dropped | peak RSS (MiB) |\n|---|---|---|---|---|---|---|---|\n");
  const char *comps[] = {"none", "gzip", "zstd"};
  for (const char *comp : comps)
    end_to_end_row("discard server (HTTP/1.1)", "http/protobuf", loopback(port), comp, seconds);
  const char *grpc = std::getenv("OTELAGENT_BENCH_GRPC_ENDPOINT");
  const char *http = std::getenv("OTELAGENT_BENCH_HTTP_ENDPOINT");
  for (const char *comp : comps) {
    if (http != nullptr) end_to_end_row("collector", "http/protobuf", http, comp, seconds);
    if (grpc != nullptr) end_to_end_row("collector", "grpc", grpc, comp, seconds);
  }
}

}  // namespace

int main(int argc, char **argv) {
  if (argc > 1 && std::strcmp(argv[1], "--child") == 0) return child_main(argc, argv);
  bool only_overload = false, only_spool = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      g_quick = true;
    } else if (std::strcmp(argv[i], "--overload") == 0) {
      only_overload = true;
    } else if (std::strcmp(argv[i], "--spool") == 0) {
      only_spool = true;
    } else {
      std::fprintf(stderr, "usage: otelagent_bench [--quick] [--overload | --spool]\n");
      return 2;
    }
  }
  calibrate();
  long rss_before = rss_kib();
  otelagent_bench::DiscardServer server;
  if (only_overload || only_spool) {
    // Only the per-thread memory and the overload section, or the overload
    // section and the spool's rates.
    if (only_overload) rss_per_thread(server.port());
    overload(server.port());
    if (only_spool) spool_rates(server.port());
    return 0;
  }
  {
    // Default settings throughout this section.
    start_agent(loopback(server.port()), "none", nullptr, nullptr, false);
    long rss_started = rss_kib();
    otelagent_test::emit_reference_span(0);
    otelagent_flush(5000);
    long rss_running = rss_kib();
    // Full load: one thread emitting flat out for 2 s (drops are expected
    // with the default queue; they are counted).
    long peak = 0;
    otelagent_stats s0 = stats();
    auto t0 = std::chrono::steady_clock::now();
    for (uint64_t i = 0;
         std::chrono::steady_clock::now() - t0 < std::chrono::seconds(g_quick ? 1 : 2); ++i) {
      otelagent_test::emit_reference_span(i);
      if (i % 100000 == 0) peak = std::max(peak, rss_kib());
    }
    otelagent_flush(10000);
    otelagent_stats s1 = stats();
    otelagent_shutdown(5000);
    std::printf("# libotelagent %s benchmarks%s\n\n## Resident memory (KiB, default settings)\n\n",
                otelagent_version(), g_quick ? " (--quick)" : "");
    std::printf("| state | VmRSS | over the process before start |\n|---|---|---|\n");
    std::printf("| process before otelagent_start | %ld | 0 |\n", rss_before);
    std::printf("| started, no span yet (no thread) | %ld | %ld |\n", rss_started,
                rss_started - rss_before);
    std::printf("| one span exported, exporter idle | %ld | %ld |\n", rss_running,
                rss_running - rss_before);
    std::printf(
        "| peak under full load (1 thread flat out; %llu exported, %llu dropped ring full) | %ld | "
        "%ld |\n",
        static_cast<unsigned long long>(s1.spans_exported - s0.spans_exported),
        static_cast<unsigned long long>(s1.spans_dropped_ring_full - s0.spans_dropped_ring_full),
        peak, peak - rss_before);
  }
  rss_per_thread(server.port());
  hot_path(server.port());
  overload(server.port());
  spool_rates(server.port());
  exporter_work();
  end_to_end(server.port());
  return 0;
}
