#include "log.h"

#include <fcntl.h>
#include <otelagent/otelagent.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <new>
#include <string>

namespace otelagent {

namespace {
std::atomic<bool> g_once[static_cast<uint32_t>(Once::kCount)];

// Where lines go. No lock is held while a line is written to a file
// descriptor, and a descriptor that would block (fd 2 a pipe nobody reads)
// gets no line at all: logging never makes a host thread, the exporter or a
// shutdown wait. -1: nowhere.
std::atomic<int> g_fd{STDERR_FILENO};
// The one descriptor the agent opened for OTELAGENT_LOG, never closed while
// in use: a new file is dup2()ed onto the same number, so a line being
// written goes to the old file or the new one, never to a reused number.
int g_owned_fd = -1;
std::mutex g_dest_mu;  // serialises destination changes (never taken by a line)

// A host callback. Lines to it are serialised; the callback must not block
// (otelagent.h says so).
std::atomic<bool> g_has_fn{false};
std::mutex g_fn_mu;
void (*g_fn)(void *, int32_t, const char *, size_t) = nullptr;
void *g_user = nullptr;

void emit(int32_t level, const char *line, size_t len) {
  if (g_has_fn.load(std::memory_order_acquire)) {
    std::lock_guard<std::mutex> lk(g_fn_mu);
    if (g_fn != nullptr) {
      g_fn(g_user, level, line, len);
      return;
    }
  }
  const int fd = g_fd.load(std::memory_order_relaxed);
  if (fd < 0) return;
  pollfd p{fd, POLLOUT, 0};
  if (poll(&p, 1, 0) != 1 || (p.revents & POLLOUT) == 0) return;
  // One write() per line, newline included, at most 1024 bytes (under
  // PIPE_BUF): lines from several threads or processes never interleave.
  char buf[1025];
  std::memcpy(buf, line, len);
  buf[len] = '\n';
  ssize_t w = write(fd, buf, len + 1);
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

// A regular file or character device opened for appending, or -1 (errno
// set). Non-blocking open: a FIFO without a reader must not hang the start;
// pipes and sockets are refused (a line could block on them).
int open_log_file(const std::string &path) {
  int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0600);
  if (fd < 0) return -1;
  struct stat st;
  if (fstat(fd, &st) != 0 || !(S_ISREG(st.st_mode) || S_ISCHR(st.st_mode)) ||
      fcntl(fd, F_SETFL, O_APPEND) != 0) {
    close(fd);
    errno = EINVAL;
    return -1;
  }
  return fd;
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
  // The parent's locks may have been held by threads that are gone.
  new (&g_fn_mu) std::mutex();
  new (&g_dest_mu) std::mutex();
}

void log_set_destination(std::string_view dest) {
  int err = 0;
  {
    std::lock_guard<std::mutex> lk(g_dest_mu);
    if (dest == "none") {
      g_fd.store(-1, std::memory_order_relaxed);
    } else if (dest.empty() || dest == "stderr") {
      g_fd.store(STDERR_FILENO, std::memory_order_relaxed);
    } else if (const int fd = open_log_file(std::string(dest)); fd < 0) {
      err = errno;
      g_fd.store(STDERR_FILENO, std::memory_order_relaxed);
    } else if (g_owned_fd < 0) {
      g_owned_fd = fd;
      g_fd.store(fd, std::memory_order_relaxed);
    } else {
      dup2(fd, g_owned_fd);
      close(fd);
      g_fd.store(g_owned_fd, std::memory_order_relaxed);
    }
  }
  if (err != 0)
    log_warn(
        "OTELAGENT_LOG: cannot log to that path (%s; a regular file is needed); logging to "
        "stderr",
        strerror(err));
}

void log_set_handler(void (*fn)(void *, int32_t, const char *, size_t), void *user) {
  std::lock_guard<std::mutex> lk(g_fn_mu);
  g_fn = fn;
  g_user = user;
  g_has_fn.store(fn != nullptr, std::memory_order_release);
}

}  // namespace otelagent
