// Helpers shared by the spool tests: a scratch directory and a look at its
// files as the format (agent/export/spool.cc) names them.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "export/spool.h"
#include "export/spool_testing.h"

namespace otelagent::spooltest {

// A directory under $TMPDIR (or /tmp) removed with everything in it,
// immutable flags and read-only modes undone first.
class TempDir {
 public:
  TempDir() {
    const char *t = std::getenv("TMPDIR");
    std::string tmpl = std::string(t != nullptr && *t != '\0' ? t : "/tmp") + "/spool-test-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(path_, ec);
         it != std::filesystem::recursive_directory_iterator(); it.increment(ec))
      if (it->is_directory(ec)) unlock(it->path().string());
    unlock(path_);
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;
  const std::string &path() const { return path_; }
  std::string sub(const std::string &name) const { return path_ + "/" + name; }

  static void unlock(const std::string &dir) {
    chmod(dir.c_str(), 0700);
    set_immutable(dir, false);
  }
  // chattr +i / -i; false when the file system or our privileges do not allow it.
  static bool set_immutable(const std::string &dir, bool on) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return false;
    int flags = 0;
    bool ok = ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;
    if (ok) {
      flags = on ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
      ok = ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
    }
    close(fd);
    return ok;
  }

 private:
  std::string path_;
};

inline std::vector<std::string> list(const std::string &dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto &e : std::filesystem::directory_iterator(dir, ec))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

inline bool is_segment(const std::string &n) {
  return n.size() > 4 && n.compare(n.size() - 4, 4, ".seg") == 0;
}

inline std::vector<std::string> segments(const std::string &dir) {
  std::vector<std::string> out;
  for (auto &n : list(dir))
    if (is_segment(n)) out.push_back(n);
  return out;
}

inline std::string read_file(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

inline void write_file(const std::string &path, const std::string &bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// The writer id field of a segment name (<16 hex ns>-<16 hex writer>-...).
inline std::string writer_of(const std::string &segment) {
  return segment.substr(17, 16);
}

// Every test starts with zeroed counters, no armed fault, and a rescan on
// every call (the production interval is a second).
class SpoolFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    spool_counters().reset();
    testing::spool_disarm_write_fault();
    testing::spool_set_after_open_hook(nullptr);
    testing::spool_set_rescan_interval_ms(0);
  }
  void TearDown() override {
    testing::spool_disarm_write_fault();
    testing::spool_set_after_open_hook(nullptr);
    testing::spool_set_rescan_interval_ms(1000);
  }
};

}  // namespace otelagent::spooltest
