// Emits a known set of spans through the installed C ABI and C++ wrapper, for
// the end-to-end tests. Configuration comes from the environment. Modes:
//   emitter tree            the reference trace (see tests/e2e/test_collector.py)
//   emitter bulk N          N simple spans, then flush
//   emitter fork            a span in the parent, a fork, spans in both
//   emitter forkstorm       forks five children while a thread emits
//   emitter long            one span with a value over the internal cap
//   emitter pause N M       N spans, flush, print "paused", wait for a line on
//                           stdin (the test changes the server meanwhile), then M
//   emitter steady RATE S   RATE spans a second for S seconds, span i carrying the
//                           int attribute seq = i; after each end, the count of
//                           spans ended so far goes into the 8 bytes mapped from
//                           the file OTELAGENT_E2E_PROGRESS (when set), so a test
//                           that kills it knows which spans had ended
//   emitter resume          no span: prints "started" and waits for a line on stdin
//                           (a process that sends what a dead one left in the spool)
//   emitter stats           prints the statistics of an agent never started (the
//                           fields this build knows)
// It prints "emitted" when the spans are queued, then flushes (OTELAGENT_E2E_FLUSH_MS,
// default 30000) and prints its statistics as one JSON line; steady and resume
// print them after shutdown instead, so that spans dropped at shutdown are in them.
#include <otelagent/otelagent.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "support/record_builder.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

// The spool's statistics (issue 8), printed when the header has them: the
// emitter is built from the same tree as the library, so their presence is
// also how the tests know whether the library has a spool.
template <typename S>
concept HasSpoolStats = requires(S s) {
  s.spans_spooled;
  s.spans_replayed;
  s.spans_dropped_spool_full;
  s.spans_dropped_spool_corrupt;
  s.spool_segments_corrupt;
  s.spans_spool_write_failed;
  s.spool_bytes;
  s.spool_oldest_age_ms;
  s.export_latency_us_last;
  s.export_latency_us_max;
  s.spans_dropped_spool_gone;
};

template <typename S>
std::string spool_fields(const S &s) {
  if constexpr (HasSpoolStats<S>) {
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  ",\"spooled\":%llu,\"replayed\":%llu,\"spool_full\":%llu,"
                  "\"spool_corrupt\":%llu,\"segments_corrupt\":%llu,\"spool_write_failed\":%llu,"
                  "\"spool_bytes\":%llu,\"spool_oldest_age_ms\":%llu,\"latency_us_last\":%llu,"
                  "\"latency_us_max\":%llu,\"spool_gone\":%llu",
                  (unsigned long long)s.spans_spooled, (unsigned long long)s.spans_replayed,
                  (unsigned long long)s.spans_dropped_spool_full,
                  (unsigned long long)s.spans_dropped_spool_corrupt,
                  (unsigned long long)s.spool_segments_corrupt,
                  (unsigned long long)s.spans_spool_write_failed, (unsigned long long)s.spool_bytes,
                  (unsigned long long)s.spool_oldest_age_ms,
                  (unsigned long long)s.export_latency_us_last,
                  (unsigned long long)s.export_latency_us_max,
                  (unsigned long long)s.spans_dropped_spool_gone);
    return buf;
  } else {
    return "";
  }
}

void print_stats(const char *who, const char *extra = "") {
  otelagent_stats s{};
  s.struct_size = sizeof s;
  otelagent_stats_get(&s);
  std::printf(
      "{\"who\":\"%s\",\"pid\":%d,\"started\":%llu,\"ended\":%llu,\"recorded\":%llu,"
      "\"exported\":%llu,\"rejected\":%llu,\"failed\":%llu,\"ring_full\":%llu,"
      "\"shutdown_dropped\":%llu,\"requests\":%llu,\"retries\":%llu,\"bytes_sent\":%llu,"
      "\"queue_depth\":%llu,\"open\":%llu,\"queue_full\":%llu,\"sampled_out\":%llu,"
      "\"span_limit\":%llu,\"thread_exit\":%llu,\"truncated\":%llu%s%s}\n",
      who, static_cast<int>(getpid()), (unsigned long long)s.spans_started,
      (unsigned long long)s.spans_ended, (unsigned long long)s.spans_recorded,
      (unsigned long long)s.spans_exported, (unsigned long long)s.spans_dropped_rejected,
      (unsigned long long)s.spans_dropped_export_failed,
      (unsigned long long)s.spans_dropped_ring_full, (unsigned long long)s.spans_dropped_shutdown,
      (unsigned long long)s.export_requests, (unsigned long long)s.export_retries,
      (unsigned long long)s.bytes_sent, (unsigned long long)s.queue_depth,
      (unsigned long long)s.spans_open, (unsigned long long)s.spans_dropped_queue_full,
      (unsigned long long)s.spans_sampled_out, (unsigned long long)s.spans_dropped_span_limit,
      (unsigned long long)s.spans_dropped_thread_exit, (unsigned long long)s.values_truncated,
      spool_fields(s).c_str(), extra);
  std::fflush(stdout);
}

otelagent_attr attr(const char *k, uint32_t type) {
  otelagent_attr a{};
  a.key = k;
  a.key_len = std::strlen(k);
  a.type = type;
  return a;
}

void emit_tree() {
  // A remote parent with a known trace id and tracestate.
  const char *tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  otelagent_span_context remote{};
  otelagent_traceparent_parse(tp, std::strlen(tp), &remote);
  const std::string_view remote_ts = "vendor=abc";

  otelagent::SpanOptions ro;
  ro.kind = OTELAGENT_KIND_SERVER;
  ro.parent = &remote;
  ro.parent_tracestate = remote_ts;
  ro.scope_name = "e2e.scope";
  ro.scope_version = "2.0";
  otelagent::Span root("e2e.request", ro);
  root.set("attr.string", "hello")
      .set("attr.int", int64_t{-7})
      .set("attr.double", 3.5)
      .set("attr.bool", true);
  root.set("attr.int_array", std::vector<int64_t>{1, 2, 3});
  root.set("attr.double_array", std::vector<double>{0.5, 1.5});
  root.set("attr.string_array", std::vector<otelagent_str>{{"a", 1}, {"bc", 2}});
  uint8_t bools[2] = {1, 0};
  otelagent_attr ba = attr("attr.bool_array", OTELAGENT_TYPE_BOOL_ARRAY);
  ba.value.array = {bools, 2};
  otelagent_span_set_attr(root.handle(), &ba);
  otelagent_span_set_str(root.handle(), "attr.utf8_repaired", 18, "ok\xFF", 3);
  otelagent_attr ev_attrs[1] = {attr("event.attr", OTELAGENT_TYPE_INT64)};
  ev_attrs[0].value.i64 = 42;
  otelagent_span_add_event(root.handle(), "e2e.event", 9, 0, ev_attrs, 1);
  root.record_exception("ValueError", "bad value", "at line 1");
  root.set_status(OTELAGENT_STATUS_ERROR, "it failed");
  {
    otelagent::SpanOptions co;
    co.kind = OTELAGENT_KIND_CLIENT;
    otelagent::Span child("e2e.child", co);
    {
      otelagent::Span grandchild("e2e.grandchild");
      grandchild.set("depth", 2);
    }
    // A span linked to the remote context, ended on another thread.
    otelagent_link link{};
    link.context = &remote;
    link.tracestate = {remote_ts.data(), remote_ts.size()};
    otelagent_attr la[1] = {attr("link.attr", OTELAGENT_TYPE_STRING)};
    la[0].value.str = {"linked", 6};
    link.attrs = la;
    link.attr_count = 1;
    otelagent_span_options lo{};
    lo.struct_size = sizeof lo;
    lo.kind = OTELAGENT_KIND_PRODUCER;
    lo.parent = &child.context();
    lo.links = &link;
    lo.link_count = 1;
    otelagent_span *moved = nullptr;
    otelagent_span_start("e2e.other_thread", 16, &lo, &moved);
    std::thread([moved] {
      otelagent_span_set_str(moved, "thread", 6, "worker", 6);
      otelagent_span_end(moved, 0);
    }).join();
  }
  // A whole finished span in one call, packed in the documented format.
  otelagent_span_context rc = root.context(), ids{};
  otelagent_span_context_new(&rc, &ids);
  auto rec = otelagent_test::RecordBuilder()
                 .trace_id(ids.trace_id)
                 .span_id(ids.span_id)
                 .parent_id(rc.span_id)
                 .flags(0x101)
                 .kind(OTELAGENT_KIND_CONSUMER)
                 .times(1700000000000000000ull, 1700000000250000000ull)
                 .name("e2e.recorded")
                 .attr_str("via", "record_span")
                 .build();
  otelagent_record_span(rec.data(), rec.size());
  root.end();
}

void emit_bulk(long n) {
  for (long i = 0; i < n; ++i) {
    otelagent::Span s("bulk");
    s.set("i", i);
  }
}

// The 8 bytes of the progress file, or a local word when there is none.
uint64_t *map_progress() {
  static uint64_t local = 0;
  const char *path = std::getenv("OTELAGENT_E2E_PROGRESS");
  if (path == nullptr) return &local;
  int fd = open(path, O_RDWR | O_CREAT, 0644);
  if (fd < 0 || ftruncate(fd, sizeof(uint64_t)) != 0) {
    std::perror("emitter: progress file");
    std::exit(2);
  }
  void *p = mmap(nullptr, sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED) {
    std::perror("emitter: mmap progress file");
    std::exit(2);
  }
  return static_cast<uint64_t *>(p);
}

// Paced by absolute deadlines every 10 ms, so a late tick is caught up by the
// next ones and the run lasts `seconds` whatever each span costs.
void emit_steady(long rate, long seconds) {
  uint64_t *progress = map_progress();
  std::atomic_ref<uint64_t> ended(*progress);
  ended.store(0, std::memory_order_relaxed);
  const long total = rate * seconds;
  constexpr long kTickNs = 10'000'000;
  constexpr long kTicksPerSecond = 1'000'000'000 / kTickNs;
  timespec next{};
  clock_gettime(CLOCK_MONOTONIC, &next);
  long seq = 0;
  for (long tick = 1; seq < total; ++tick) {
    const long target = std::min(total, rate * tick / kTicksPerSecond);
    for (; seq < target; ++seq) {
      {
        otelagent::Span s("steady");
        s.set("seq", int64_t{seq});
      }
      ended.store(static_cast<uint64_t>(seq) + 1, std::memory_order_relaxed);
    }
    next.tv_nsec += kTickNs;
    if (next.tv_nsec >= 1'000'000'000) {
      next.tv_nsec -= 1'000'000'000;
      ++next.tv_sec;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nullptr) == EINTR) {
    }
  }
}

}  // namespace

int main(int argc, char **argv) {
  const std::string mode = argc > 1 ? argv[1] : "tree";
  const char *flush_env = std::getenv("OTELAGENT_E2E_FLUSH_MS");
  const uint32_t flush_ms = flush_env ? static_cast<uint32_t>(std::atoi(flush_env)) : 30000;
  if (mode == "stats") {
    print_stats("unstarted");
    return 0;
  }
  int rc = otelagent_start(nullptr);
  if (rc != OTELAGENT_OK) {
    std::fprintf(stderr, "emitter: otelagent_start: %s\n", otelagent_strerror(rc));
    return 2;
  }
  if (mode == "tree") {
    emit_tree();
  } else if (mode == "bulk") {
    emit_bulk(argc > 2 ? std::atol(argv[2]) : 100);
  } else if (mode == "fork") {
    emit_bulk(3);
    otelagent_flush(flush_ms);  // the exporter thread is running when we fork
    emit_bulk(2);
    pid_t pid = fork();
    if (pid == 0) {
      emit_bulk(5);
      int f = otelagent_flush(flush_ms);
      print_stats("child");
      otelagent_shutdown(flush_ms);
      _exit(f == OTELAGENT_OK ? 0 : 3);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return 4;
    emit_bulk(1);
  } else if (mode == "pause") {
    emit_bulk(argc > 2 ? std::atol(argv[2]) : 100);
    otelagent_flush(flush_ms);
    std::printf("paused\n");
    std::fflush(stdout);
    char line[16];
    if (std::fgets(line, sizeof line, stdin) == nullptr) return 5;
    emit_bulk(argc > 3 ? std::atol(argv[3]) : 100);
  } else if (mode == "steady" || mode == "resume") {
    if (mode == "steady") {
      emit_steady(argc > 2 ? std::atol(argv[2]) : 5000, argc > 3 ? std::atol(argv[3]) : 4);
      std::printf("emitted\n");
    } else {
      std::printf("started\n");
    }
    std::fflush(stdout);
    char line[16];
    if (mode == "resume" && std::fgets(line, sizeof line, stdin) == nullptr) return 5;
    const int f = otelagent_flush(flush_ms);
    const int sd = otelagent_shutdown(flush_ms);
    const std::string extra = std::string(",\"flush\":\"") + otelagent_status_name(f) +
                              "\",\"shutdown\":\"" + otelagent_status_name(sd) + "\"";
    print_stats("parent", extra.c_str());
    return 0;
  } else if (mode == "long") {
    otelagent::Span s("long");
    s.set("big", std::string(OTELAGENT_MAX_VALUE_BYTES + 500, 'x'));
    s.set("small", "ok");
  } else if (mode == "forkstorm") {
    std::atomic<bool> stop{false};
    std::thread background([&stop] {
      while (!stop.load()) emit_bulk(1);
    });
    for (int k = 0; k < 5; ++k) {
      pid_t pid = fork();
      if (pid == 0) {
        emit_bulk(10);
        otelagent_flush(flush_ms);
        print_stats("child");
        _exit(0);
      }
      int status = 0;
      waitpid(pid, &status, 0);
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return 4;
    }
    stop.store(true);
    background.join();
  } else {
    std::fprintf(stderr, "emitter: unknown mode %s\n", mode.c_str());
    return 2;
  }
  std::printf("emitted\n");
  std::fflush(stdout);
  int f = otelagent_flush(flush_ms);
  print_stats("parent");
  int s = otelagent_shutdown(flush_ms);
  std::fprintf(stderr, "emitter: flush %s, shutdown %s\n", otelagent_status_name(f),
               otelagent_status_name(s));
  return 0;
}
