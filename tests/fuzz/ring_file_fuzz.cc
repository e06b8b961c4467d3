// A ring file left by a dead process, as the next process treats it: it is
// outside input (a crash, a full disk or another program may have left any
// bytes in it). parse_ring_file must bound every read; ring_files_recover,
// given the same bytes as a file, must call back exactly when the parser
// accepts them and remove the file either way.
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/ring_file.h"

namespace {

using namespace otelagent;

// A directory of our own, removed at exit (a plain array: it outlives every
// destructor that runs before the exit handler).
char g_dir[] = "/tmp/ring_file_fuzz-XXXXXX";

const char *scratch_dir() {
  static const bool made = [] {
    if (mkdtemp(g_dir) == nullptr) std::abort();
    std::atexit([] { rmdir(g_dir); });
    return true;
  }();
  (void)made;
  return g_dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string_view file(reinterpret_cast<const char *>(data), size);
  RecoveredRing parsed;
  const bool ok = parse_ring_file(file, &parsed);
  if (ok) {
    // What comes out was in the file: records and resource are no larger.
    size_t bytes = parsed.resource_body.size();
    for (const auto &r : parsed.records) bytes += r.size() + 8;
    if (bytes > size) std::abort();
  }

  const std::string path = std::string(scratch_dir()) + "/ring-fuzz.ring";
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) std::abort();
  for (size_t done = 0; done < size;) {
    const ssize_t w = write(fd, data + done, size - done);
    if (w <= 0) std::abort();
    done += static_cast<size_t>(w);
  }
  close(fd);
  uint64_t corrupt = 0;
  size_t calls = 0;
  RecoveredRing recovered;
  const size_t n = ring_files_recover(
      scratch_dir(),
      [&](const RecoveredRing &r) {
        ++calls;
        recovered = r;
        return true;
      },
      &corrupt);
  if (n != calls || calls != (ok ? 1u : 0u) || corrupt != (ok ? 0u : 1u)) std::abort();
  if (ok &&
      (recovered.records != parsed.records || recovered.resource_body != parsed.resource_body))
    std::abort();
  if (access(path.c_str(), F_OK) == 0) std::abort();  // removed either way
  return 0;
}
