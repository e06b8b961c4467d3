// The spool's segment reader on arbitrary bytes, twice: parse_segment on the
// buffer, and the whole read path of a claim (the bytes written as an orphan
// segment file of a dead writer, then claim_orphan). Neither may read out of
// bounds, and they must agree: a file the parser accepts is claimed with the
// same fields and payload; one it rejects is counted as corrupt and removed.
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include "export/spool.h"
#include "export/spool_testing.h"

namespace {

struct Fixture {
  std::string dir;
  otelagent::Spool spool;
  Fixture() {
    std::string tmpl = std::filesystem::temp_directory_path().string() + "/spool-fuzz-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) std::abort();
    dir = tmpl + "/spool";
    otelagent::testing::spool_set_rescan_interval_ms(0);
    if (spool.open(dir, uint64_t{1} << 32) != nullptr) std::abort();
  }
  ~Fixture() {
    std::error_code ec;
    std::filesystem::remove_all(std::filesystem::path(dir).parent_path(), ec);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  using otelagent::Compression;
  static Fixture fx;
  const std::string_view file(reinterpret_cast<const char *>(data), size);
  Compression enc;
  uint32_t spans;
  uint64_t created;
  std::string_view payload;
  const bool ok = otelagent::parse_segment(file, &enc, &spans, &created, &payload);
  if (ok && (payload.data() < file.data() || payload.data() + payload.size() > file.data() + size))
    std::abort();

  // A dead writer's segment: its writer id has no lock file.
  const std::string path = fx.dir + "/0000000000000001-00000000000000aa-00000000.seg";
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) std::abort();
  if (size > 0 && write(fd, data, size) != static_cast<ssize_t>(size)) std::abort();
  close(fd);
  auto &c = otelagent::spool_counters();
  const uint64_t corrupt = c.segments_corrupt.load();
  otelagent::SpoolSegment seg;
  const bool claimed = fx.spool.claim_orphan(&seg);
  if (claimed != ok) std::abort();
  if (claimed) {
    if (seg.payload != payload || seg.encoding != enc || seg.spans != spans ||
        seg.created_unix_ns != created)
      std::abort();
    fx.spool.remove(&seg);
  } else if (c.segments_corrupt.load() != corrupt + 1) {
    std::abort();
  }
  if (access(path.c_str(), F_OK) == 0) std::abort();  // removed either way
  return 0;
}
