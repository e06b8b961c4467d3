#include "log.h"

#include <unistd.h>
#include <atomic>
#include <cstdarg>
#include <cstdio>

namespace otelagent {

namespace {
std::atomic<bool> g_once[static_cast<uint32_t>(Once::kCount)];

void vlog(const char *fmt, va_list ap) {
  // One write() per line so concurrent lines do not interleave.
  char line[1024];
  int n = snprintf(line, sizeof line, "otelagent: ");
  int m = vsnprintf(line + n, sizeof line - static_cast<size_t>(n) - 1, fmt, ap);
  if (m < 0) return;
  size_t len = static_cast<size_t>(n) + static_cast<size_t>(m);
  if (len > sizeof line - 2) len = sizeof line - 2;
  line[len++] = '\n';
  ssize_t w = write(STDERR_FILENO, line, len);
  (void)w;
}
}  // namespace

void log_warn(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vlog(fmt, ap);
  va_end(ap);
}

void log_warn_once(Once kind, const char *fmt, ...) {
  // Pairs with nothing: only the exchange's atomicity matters.
  if (g_once[static_cast<uint32_t>(kind)].exchange(true, std::memory_order_relaxed)) return;
  va_list ap;
  va_start(ap, fmt);
  vlog(fmt, ap);
  va_end(ap);
}

void log_reset_once() {
  for (auto &o : g_once) o.store(false, std::memory_order_relaxed);
}

}  // namespace otelagent
