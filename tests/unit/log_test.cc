// Routing of the agent's own log lines: a host callback, a file, or nowhere
// (daemons close fd 2 and may reuse the number for something else).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <otelagent/otelagent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Captured {
  std::mutex mu;
  std::vector<std::string> lines;
};

void capture(void *user, int32_t level, const char *line, size_t len) {
  auto *c = static_cast<Captured *>(user);
  std::lock_guard<std::mutex> lk(c->mu);
  EXPECT_EQ(level, OTELAGENT_LOG_WARN);
  c->lines.emplace_back(line, len);
}

int start_with(const char *key, const char *value) {
  otelagent_config *cfg = otelagent_config_new();
  otelagent_config_set(cfg, key, std::strlen(key), value, std::strlen(value));
  const int rc = otelagent_start(cfg);
  otelagent_config_free(cfg);
  return rc;
}

TEST(Log, HandlerReceivesEveryLineAndNullRestoresTheDestination) {
  Captured c;
  ASSERT_EQ(otelagent_log_set_handler(capture, &c), OTELAGENT_OK);
  // A bad value is warned about once, naming the variable.
  ASSERT_EQ(start_with("OTEL_BSP_SCHEDULE_DELAY", "soon"), OTELAGENT_OK);
  otelagent_shutdown(0);
  ASSERT_EQ(otelagent_log_set_handler(nullptr, nullptr), OTELAGENT_OK);
  std::lock_guard<std::mutex> lk(c.mu);
  ASSERT_EQ(c.lines.size(), 1u);
  EXPECT_NE(c.lines[0].find("OTEL_BSP_SCHEDULE_DELAY"), std::string::npos);
  EXPECT_EQ(c.lines[0].rfind("otelagent: ", 0), 0u);
  EXPECT_EQ(c.lines[0].find('\n'), std::string::npos);
}

TEST(Log, FileDestinationAppendsLines) {
  char path[] = "/tmp/otelagent-log-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  otelagent_config *cfg = otelagent_config_new();
  auto set = [&](const char *k, const char *v) {
    otelagent_config_set(cfg, k, std::strlen(k), v, std::strlen(v));
  };
  set("OTELAGENT_LOG", path);
  set("OTEL_BSP_MAX_QUEUE_SIZE", "-3");
  ASSERT_EQ(otelagent_start(cfg), OTELAGENT_OK);
  otelagent_config_free(cfg);
  otelagent_shutdown(0);
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_NE(ss.str().find("OTEL_BSP_MAX_QUEUE_SIZE"), std::string::npos) << ss.str();
  EXPECT_EQ(ss.str().back(), '\n');
  unlink(path);
}

TEST(Log, NoneWritesNothingToFd2) {
  // fd 2 is replaced by a pipe for the duration: nothing may arrive on it.
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  const int saved = dup(2);
  dup2(p[1], 2);
  otelagent_config *cfg = otelagent_config_new();
  otelagent_config_set(cfg, "OTELAGENT_LOG", 13, "none", 4);
  otelagent_config_set(cfg, "OTEL_BSP_MAX_QUEUE_SIZE", 23, "bad", 3);
  const int rc = otelagent_start(cfg);
  otelagent_config_free(cfg);
  otelagent_shutdown(0);
  // Back to stderr for the tests that follow.
  otelagent_config *reset = otelagent_config_new();
  otelagent_config_set(reset, "OTELAGENT_LOG", 13, "stderr", 6);
  otelagent_start(reset);
  otelagent_config_free(reset);
  otelagent_shutdown(0);
  dup2(saved, 2);
  close(saved);
  close(p[1]);
  char buf[256];
  const ssize_t n = read(p[0], buf, sizeof buf);
  close(p[0]);
  EXPECT_EQ(rc, OTELAGENT_OK);
  EXPECT_EQ(n, 0) << std::string(buf, n > 0 ? static_cast<size_t>(n) : 0);
}

}  // namespace

namespace {

// A FIFO without a reader used to block otelagent_start in open().
TEST(Log, FifoDestinationIsRefusedWithoutBlocking) {
  char dir[] = "/tmp/otelagent-fifo-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string fifo = std::string(dir) + "/f";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  Captured c;
  otelagent_log_set_handler(capture, &c);
  ASSERT_EQ(start_with("OTELAGENT_LOG", fifo.c_str()), OTELAGENT_OK);  // returns: no hang
  otelagent_shutdown(0);
  otelagent_log_set_handler(nullptr, nullptr);
  ASSERT_EQ(start_with("OTELAGENT_LOG", "stderr"), OTELAGENT_OK);
  otelagent_shutdown(0);
  unlink(fifo.c_str());
  rmdir(dir);
  std::lock_guard<std::mutex> lk(c.mu);
  ASSERT_EQ(c.lines.size(), 1u);
  EXPECT_NE(c.lines[0].find("OTELAGENT_LOG"), std::string::npos);
}

}  // namespace

namespace {

// Review finding: with fd 2 a pipe nobody reads, a log line blocked in
// write() while holding the log lock; shutdown, and host threads reaching a
// warning, then waited on that lock for good.
TEST(Log, AFullPipeOnFd2BlocksNobody) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  // Fill the pipe completely (non-blocking writes until it refuses).
  ASSERT_EQ(fcntl(p[1], F_SETFL, O_NONBLOCK), 0);
  char chunk[4096] = {};
  while (write(p[1], chunk, sizeof chunk) > 0) {
  }
  ASSERT_EQ(fcntl(p[1], F_SETFL, 0), 0);  // fd 2 itself stays blocking, as a host's would
  const int saved = dup(2);
  dup2(p[1], 2);
  std::atomic<bool> finished{false}, rescued{false};
  // If a line blocks, this unblocks it after a generous deadline (and the
  // test fails): the test never hangs.
  std::thread watchdog([&] {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!finished.load() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    char sink[65536];
    if (finished.load()) return;
    rescued.store(true);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    while (!finished.load()) {
      if (read(p[0], sink, sizeof sink) <= 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  // Warnings at start (a bad value), from the exporter (the endpoint is
  // refused) and from host threads (a full ring), then a bounded shutdown.
  otelagent_config *cfg = otelagent_config_new();
  auto set = [&](const char *k, const char *v) {
    otelagent_config_set(cfg, k, std::strlen(k), v, std::strlen(v));
  };
  set("OTEL_BSP_SCHEDULE_DELAY", "bad");
  set("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1");
  set("OTELAGENT_RING_BYTES", "131072");
  ASSERT_EQ(otelagent_start(cfg), OTELAGENT_OK);
  otelagent_config_free(cfg);
  for (int i = 0; i < 5000; ++i) {
    otelagent_span *s = nullptr;
    if (otelagent_span_start("x", 1, nullptr, &s) == OTELAGENT_OK) otelagent_span_end(s, 0);
  }
  const int rc = otelagent_shutdown(100);
  finished.store(true);
  watchdog.join();
  dup2(saved, 2);
  close(saved);
  close(p[0]);
  close(p[1]);
  EXPECT_TRUE(rc == OTELAGENT_OK || rc == OTELAGENT_E_TIMEOUT) << rc;
  EXPECT_FALSE(rescued.load()) << "a log line blocked until the pipe was drained";
}

}  // namespace
