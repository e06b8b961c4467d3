#include "log.h"

#include <fcntl.h>
#include <otelagent/otelagent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>

namespace otelagent {

namespace {
std::atomic<bool> g_once[static_cast<uint32_t>(Once::kCount)];

// The destination. Changed rarely (start, or the host's call) under a lock
// that lines also take: a line is short, and logging is never on the hot
// path's fast side. -1: nowhere.
std::mutex g_mu;
int g_fd = STDERR_FILENO;
bool g_fd_owned = false;
void (*g_fn)(void *, int32_t, const char *, size_t) = nullptr;
void *g_user = nullptr;

void emit(int32_t level, const char *line, size_t len) {
  std::lock_guard<std::mutex> lk(g_mu);
  if (g_fn != nullptr) {
    g_fn(g_user, level, line, len);
    return;
  }
  if (g_fd < 0) return;
  // One write() per line (with its newline) so concurrent lines from several
  // processes sharing the file do not interleave.
  char buf[1025];
  std::memcpy(buf, line, len);
  buf[len] = '\n';
  ssize_t w = write(g_fd, buf, len + 1);
  (void)w;
}

void vlog(const char *fmt, va_list ap) {
  char line[1024];
  int n = snprintf(line, sizeof line, "otelagent: ");
  int m = vsnprintf(line + n, sizeof line - static_cast<size_t>(n), fmt, ap);
  if (m < 0) return;
  size_t len = static_cast<size_t>(n) + static_cast<size_t>(m);
  if (len > sizeof line - 1) len = sizeof line - 1;
  emit(OTELAGENT_LOG_WARN, line, len);
}
}  // namespace

void log_warn(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vlog(fmt, ap);
  va_end(ap);
}

void log_warn_once(Once kind, const char *fmt, ...) {
  // A relaxed load first: a kind already reported costs no locked instruction.
  auto &flag = g_once[static_cast<uint32_t>(kind)];
  if (flag.load(std::memory_order_relaxed) || flag.exchange(true, std::memory_order_relaxed))
    return;
  va_list ap;
  va_start(ap, fmt);
  vlog(fmt, ap);
  va_end(ap);
}

void log_reset_once() {
  for (auto &o : g_once) o.store(false, std::memory_order_relaxed);
  // The parent's lock may have been held by a thread that is gone.
  new (&g_mu) std::mutex();
}

void log_set_destination(std::string_view dest) {
  int fd = STDERR_FILENO;
  bool owned = false, failed = false;
  if (dest == "none") {
    fd = -1;
  } else if (!dest.empty() && dest != "stderr") {
    const std::string path(dest);
    // Non-blocking open: a FIFO without a reader must not hang the start.
    // Only a regular file or a character device (/dev/null) is kept: a write
    // to a pipe or socket could block whichever thread logs.
    fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0600);
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) != 0 || !(S_ISREG(st.st_mode) || S_ISCHR(st.st_mode)) ||
                    fcntl(fd, F_SETFL, O_WRONLY | O_APPEND) != 0)) {
      close(fd);
      fd = -1;
      errno = EINVAL;
    }
    owned = fd >= 0;
    if (fd < 0) {
      fd = STDERR_FILENO;
      failed = true;
    }
  }
  {
    std::lock_guard<std::mutex> lk(g_mu);
    if (g_fd_owned) close(g_fd);
    g_fd = fd;
    g_fd_owned = owned;
  }
  if (failed)
    log_warn(
        "OTELAGENT_LOG: cannot log to that path (%s; a regular file is needed); logging to "
        "stderr",
        strerror(errno));
}

void log_set_handler(void (*fn)(void *, int32_t, const char *, size_t), void *user) {
  std::lock_guard<std::mutex> lk(g_mu);
  g_fn = fn;
  g_user = user;
}

}  // namespace otelagent
