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
//     answering 503, side by side.
// Usage: otelagent_bench [--quick] [--overload]   (--overload: sections 6-7 only)
#include <otelagent/otelagent.h>
#include <x86intrin.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
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

void start_agent(const std::string &endpoint, const char *compression, const char *queue,
                 const char *batch, bool big_ring = true, const char *protocol = "http/protobuf") {
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

// The host's cost per span while the collector is healthy, down (connection
// refused) or answering 503: one thread paced at ~250k spans/s, default
// settings, after a warm-up that brings the exporter to its steady state
// (for down and 503: retrying with its queue full).
void overload(int healthy_port) {
  const uint64_t n = g_quick ? 100000 : 500000;
  otelagent_bench::DiscardServer unavailable(503);
  std::printf(
      "\n## The host's cost when the collector is down or overloaded (ns per span; start + 4 "
      "attributes + end; 1 thread paced at ~250k spans/s; default settings; %llu spans per "
      "row)\n\n"
      "| collector | p50 | p99 | p99.9 | p50 vs healthy | p99 vs healthy | dropped: ring full | "
      "dropped: queue full |\n|---|---|---|---|---|---|---|---|\n",
      static_cast<unsigned long long>(n));
  const uint64_t interval = static_cast<uint64_t>(4000.0 / g_ns_per_tick);  // 4 us
  double healthy_p50 = 0, healthy_p99 = 0;
  struct Mode {
    const char *name;
    int port;
  };
  for (Mode m : {Mode{"healthy (loopback discard server)", healthy_port},
                 Mode{"down (connection refused)", 1}, Mode{"answering 503", unavailable.port()}}) {
    start_agent(loopback(m.port), "none", nullptr, nullptr, false);
    std::vector<uint64_t> lat;
    lat.reserve(n);
    otelagent_stats s0{};
    for (int phase = 0; phase < 2; ++phase) {
      const uint64_t count = phase == 0 ? n / 4 : n;  // warm-up, then measured
      if (phase == 1) s0 = stats();
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
    Percentiles p = percentiles(lat);
    if (healthy_p50 == 0) {
      healthy_p50 = p.p50;
      healthy_p99 = p.p99;
    }
    std::printf(
        "| %s | %.0f | %.0f | %.0f | %.2fx | %.2fx | %llu | %llu |\n", m.name, p.p50, p.p99, p.p999,
        p.p50 / healthy_p50, p.p99 / healthy_p99,
        static_cast<unsigned long long>(s1.spans_dropped_ring_full - s0.spans_dropped_ring_full),
        static_cast<unsigned long long>(s1.spans_dropped_queue_full - s0.spans_dropped_queue_full));
    otelagent_shutdown(500);
  }
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
    while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() <
           seconds) {
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
  g_quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  calibrate();
  long rss_before = rss_kib();
  otelagent_bench::DiscardServer server;
  if (argc > 1 && std::strcmp(argv[argc - 1], "--overload") == 0) {
    // Only the rows of the overload section and the per-thread memory.
    rss_per_thread(server.port());
    overload(server.port());
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
  exporter_work();
  end_to_end(server.port());
  return 0;
}
