// Routing of the agent's own log lines: a host callback, a file, or nowhere
// (daemons close fd 2 and may reuse the number for something else).
#include <gtest/gtest.h>
#include <otelagent/otelagent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
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
