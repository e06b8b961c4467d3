// The adversarial review of issue 8's disk spool, kept as regression tests:
// each found a broken promise of exporter.h / spool.h / ring_file.h (a FIFO
// that hung the exporter, a hostile segment that wedged the orphans, a busy
// claim that gave batches up uncounted, fork children's leftover ring files)
// and failed before its fix.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <otelagent/otelagent.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "bench/discard_server.h"
#include "export/exporter.h"
#include "export/spool.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "support/agent_stats.h"
#include "support/spool_support.h"

namespace {

using otelagent_bench::DiscardServer;
using otelagent_test::NoNewFds;
using otelagent_test::stats;
using Received = otelagent_test::SeqReceiver;
using otelagent_test::emit_seq;
using otelagent_test::start_spooled;
using otelagent_test::wait_until;
namespace pb = opentelemetry::proto;

// A collector on a fixed loopback port that is down (bound, not listening:
// connections are refused) until up() is called; then it answers 200.
class LateCollector {
 public:
  explicit LateCollector(Received *got) : got_(got) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr *>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr *>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~LateCollector() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    if (acceptor_.joinable()) acceptor_.join();
    for (auto &t : conns_) t.join();
  }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void up() {
    listen(fd_, 16);
    acceptor_ = std::thread([this] {
      for (;;) {
        const int c = accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        conns_.emplace_back([this, c] { serve(c); });
      }
    });
  }

 private:
  void serve(int c) {
    std::string buf;
    char chunk[65536];
    for (;;) {
      size_t end;
      while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
        const ssize_t n = read(c, chunk, sizeof chunk);
        if (n <= 0) return (void)close(c);
        buf.append(chunk, static_cast<size_t>(n));
      }
      size_t body = 0;
      for (size_t p = 0; (p = buf.find('\n', p)) != std::string::npos && p < end;)
        if (strncasecmp(buf.c_str() + ++p, "content-length:", 15) == 0)
          body = std::strtoul(buf.c_str() + p + 15, nullptr, 10);
      while (buf.size() < end + 4 + body) {
        const ssize_t n = read(c, chunk, sizeof chunk);
        if (n <= 0) return (void)close(c);
        buf.append(chunk, static_cast<size_t>(n));
      }
      got_->add(std::string_view(buf).substr(end + 4, body));
      buf.erase(0, end + 4 + body);
      static const char ok[] =
          "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
      if (write(c, ok, sizeof ok - 1) < 0) return (void)close(c);
    }
  }
  Received *got_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::vector<std::thread> conns_;
};

class ReviewSpool : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/otelagent-review-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    spool_ = dir_ + "/spool";
    s0_ = stats();
  }
  void TearDown() override {
    otelagent_shutdown(1000);
    std::filesystem::remove_all(dir_);
  }
  std::vector<std::string> segments() {
    std::vector<std::string> out;
    if (!std::filesystem::exists(spool_)) return out;
    for (auto &e : std::filesystem::directory_iterator(spool_))
      if (e.path().extension() == ".seg") out.push_back(e.path().string());
    return out;
  }
  otelagent_stats since() const {
    otelagent_stats s = stats();
    auto *now = reinterpret_cast<uint64_t *>(reinterpret_cast<char *>(&s) + 8);
    auto *then = reinterpret_cast<const uint64_t *>(reinterpret_cast<const char *>(&s0_) + 8);
    for (size_t i = 0; i < (sizeof s - 8) / 8; ++i) now[i] -= then[i];
    return s;
  }
  static uint64_t drops(const otelagent_stats &s) {
    return s.spans_dropped_ring_full + s.spans_dropped_span_limit + s.spans_dropped_rejected +
           s.spans_dropped_export_failed + s.spans_dropped_shutdown + s.spans_dropped_thread_exit +
           s.spans_dropped_queue_full + s.spans_dropped_spool_full + s.spans_dropped_spool_corrupt;
  }
  // Leaves `n` spans in the spool as a dead writer's segments (an agent that
  // could not reach its collector and shut down).
  void leave_orphans(int from, int to) {
    ASSERT_EQ(start_spooled("http://127.0.0.1:1", spool_), OTELAGENT_OK);
    emit_seq(from, to);
    ASSERT_TRUE(wait_until([&] { return since().spans_spooled >= uint64_t(to); }));
    otelagent_shutdown(100);
  }
  std::string dir_, spool_;
  otelagent_stats s0_{};
};

// ---------------------------------------------------------------------------
// Hostile files: spool.h says every file there is outside input, read with
// every length bounded, never trusted; ring_file.cc opens with O_NONBLOCK so
// that "a FIFO under a ring's name must not hang the exporter". The spool's
// lock files are opened without it.
TEST_F(ReviewSpool, AFifoNamedLikeALockFileDoesNotHangTheExporter) {
  ASSERT_EQ(mkdir(spool_.c_str(), 0700), 0);
  const std::string fifo = spool_ + "/00000000000000aa.lock";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  Received got;
  DiscardServer server(200, 0, [&](std::string_view b) { got.add(b); });
  ASSERT_EQ(start_spooled("http://127.0.0.1:" + std::to_string(server.port()), spool_),
            OTELAGENT_OK);
  emit_seq(0, 10);
  const int flushed = otelagent_flush(3000);
  // Unblocks the exporter thread (stuck in open() of the FIFO, waiting for a
  // writer), so that the rest of the suite runs.
  const int w = open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
  if (w >= 0) close(w);
  EXPECT_EQ(flushed, OTELAGENT_OK) << "the exporter thread hung on the FIFO";
  EXPECT_EQ(otelagent_flush(10000), OTELAGENT_OK);
  otelagent_shutdown(1000);
  EXPECT_EQ(got.unique(), 10u);
}

// A segment whose (valid) header claims a payload of 1 TiB, in a sparse
// file: claim_file resizes a string to it. The allocation throws, the claim
// is abandoned without removing or skipping the file, and every orphan
// behind it (name order) is never sent.
TEST_F(ReviewSpool, AHugeSparseSegmentDoesNotWedgeTheOrphansBehindIt) {
  leave_orphans(0, 300);
  ASSERT_FALSE(segments().empty());
  // Oldest name: created = 1, a writer with no lock file (dead).
  const std::string bad = spool_ + "/0000000000000001-00000000000000bb-00000000.seg";
  unsigned char h[40] = {'O', 'T', 'S', 'G', 1, 0, 0, 0};
  h[8] = 1;                                // 1 span
  const uint64_t len = uint64_t{1} << 40;  // payload length
  for (int i = 0; i < 8; ++i) h[24 + i] = static_cast<unsigned char>(len >> (8 * i));
  const uint32_t hc = static_cast<uint32_t>(crc32_z(0, h, 36));
  for (int i = 0; i < 4; ++i) h[36 + i] = static_cast<unsigned char>(hc >> (8 * i));
  {
    std::ofstream f(bad, std::ios::binary);
    f.write(reinterpret_cast<const char *>(h), sizeof h);
  }
  ASSERT_EQ(truncate(bad.c_str(), static_cast<off_t>(40 + len)), 0) << std::strerror(errno);

  Received got;
  DiscardServer server(200, 0, [&](std::string_view b) { got.add(b); });
  ASSERT_EQ(start_spooled("http://127.0.0.1:" + std::to_string(server.port()), spool_),
            OTELAGENT_OK);
  const bool sent = wait_until([&] { return got.unique() >= 300; }, 10);
  otelagent_shutdown(1000);
  unlink(bad.c_str());
  EXPECT_TRUE(sent) << got.unique() << " of the 300 orphaned spans were sent; "
                    << since().spool_segments_corrupt << " corrupt segments counted";
}

// ---------------------------------------------------------------------------
// Own segments on disk whose claim fails for a passing reason (here: no file
// descriptor left, EMFILE): load_from_spool takes every failed claim for
// "dropped at the cap or found corrupt: the spool counted its spans", marks
// the batch done and adds it to spool_lost, which no statistic shows. The
// segment stays on disk, unclaimable by this process (its writer is alive),
// so its spans are not sent while the process lives and are counted nowhere.
TEST_F(ReviewSpool, AFailedClaimOfAnOwnSegmentLeavesItOnDiskForLater) {
  Received got;
  LateCollector collector(&got);
  ASSERT_EQ(start_spooled(collector.endpoint(), spool_), OTELAGENT_OK);
  emit_seq(0, 1000);  // ten batches: one held in memory, nine on disk
  ASSERT_TRUE(wait_until([&] { return since().spans_spooled >= 1000; }));
  ASSERT_TRUE(wait_until([&] { return segments().size() >= 10; }));
  {
    NoNewFds no_fds;
    // The exporter retries (connect fails), each retry tries to load the
    // next batches from disk: the failed claims complete them.
    // Every descriptor the exporter frees under the limit (curl's failed
    // connections) is taken at once, so that none is left for a claim.
    std::vector<int> held;
    const uint64_t r0 = otelagent::export_counters().retries.load();
    const bool tried = wait_until(
        [&] {
          for (int fd; (fd = dup(0)) >= 0;) held.push_back(fd);
          return otelagent::export_counters().retries.load() >= r0 + 5;
        },
        10);
    for (int fd : held) close(fd);
    no_fds.restore();
    // Before the fix the claims that failed meanwhile completed their
    // batches (queue_depth fell, nothing was sent or counted).
    ASSERT_TRUE(tried) << "the exporter did not retry while descriptors were short";
    EXPECT_EQ(stats().queue_depth, 1000u) << "batches were given up while a claim failed";
  }
  collector.up();
  EXPECT_EQ(otelagent_flush(10000), OTELAGENT_OK);
  const otelagent_stats s = since();
  const size_t left = segments().size();
  // Before the collector goes: its threads wait on the agent's connection.
  otelagent_shutdown(1000);
  EXPECT_EQ(s.spans_exported + drops(s) + s.queue_depth, 1000u)
      << "exported " << s.spans_exported << ", dropped " << drops(s) << ", queued " << s.queue_depth
      << ", segments still on disk " << left;
  EXPECT_EQ(got.unique(), 1000u) << left << " segments left on disk, unsent";
}

// ---------------------------------------------------------------------------
// Files left behind: the fork handler gives the child a ring file of its own
// for every ring the parent has (ring_files_after_fork_child). A child that
// execs or exits leaves them (O_CLOEXEC drops its lock); only an exporter's
// start (recover_dead_rings, in open_spool) ever removes dead rings, so a
// long-running host that spawns subprocesses piles up one file per ring per
// fork, each with its blocks reserved.
size_t ring_files_in(const std::string &dir) {
  size_t n = 0;
  for (auto &e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    n += name.rfind("ring-", 0) == 0 && e.path().extension() == ".ring";
  }
  return n;
}

TEST_F(ReviewSpool, ForkedChildrenThatExitLeaveNoRingFilesBehind) {
  DiscardServer server;
  ASSERT_EQ(start_spooled("http://127.0.0.1:" + std::to_string(server.port()), spool_),
            OTELAGENT_OK);
  std::thread host([] { emit_seq(0, 1); });  // a thread of its own: a ring file of its own
  host.join();
  emit_seq(1, 2);
  ASSERT_EQ(otelagent_flush(10000), OTELAGENT_OK);
  const size_t before = ring_files_in(spool_);
  ASSERT_GE(before, 1u);
  for (int i = 0; i < 10; ++i) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) _exit(0);  // as a child that execs a program would
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
  }
  // Each child had a file for the forking thread's ring (and only that
  // one); the parent, which lives on, finds the dead children's files (it
  // looks every 5 s) and removes them.
  emit_seq(2, 3);
  ASSERT_EQ(otelagent_flush(10000), OTELAGENT_OK);
  EXPECT_TRUE(wait_until([&] { return ring_files_in(spool_) == before; }, 30))
      << "ten children that exited left " << ring_files_in(spool_) - before
      << " ring files in the spool directory";
  otelagent_shutdown(1000);  // before the server goes
}

}  // namespace
