// The ring's two-phase consume, rings backed by files, their recovery after
// kill -9, and their handling across fork.
#include "core/ring_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/log.h"
#include "core/record.h"
#include "core/spsc_ring.h"
#include "core/thread_state.h"

namespace otelagent {
namespace {

// A record whose length and bytes follow from its number.
std::string make_record(uint32_t i) {
  std::string r(100 + (i * 7919u) % 200, '\0');
  std::memcpy(r.data(), &i, 4);
  for (size_t k = 4; k < r.size(); ++k) r[k] = static_cast<char>(i * 31 + k);
  return r;
}

// A short text as a record recovery accepts: padded to a record header.
std::string padded(const std::string &s) {
  return s.size() >= rec::kHeader ? s : s + std::string(rec::kHeader - s.size(), '.');
}

std::vector<std::string> strings(const std::vector<std::string_view> &v) {
  return std::vector<std::string>(v.begin(), v.end());
}

bool push(SpscRing &ring, const std::string &r) {
  return ring.push(r.data(), static_cast<uint32_t>(r.size()));
}

std::vector<std::string> read_all(SpscRing &ring) {
  std::vector<std::string> out;
  ring.read([&](const uint8_t *d,
                uint32_t len) { out.emplace_back(reinterpret_cast<const char *>(d), len); },
            SIZE_MAX);
  return out;
}

// ---- Two-phase consume ------------------------------------------------------

TEST(SpscRingTwoPhase, ReadRecordsStayUntilReleased) {
  SpscRing ring;
  ASSERT_TRUE(ring.init_exact(4096));
  std::vector<std::string> in;
  for (uint32_t i = 0; push(ring, make_record(i)); ++i) in.push_back(make_record(i));
  while (push(ring, "filler")) in.push_back("filler");
  while (push(ring, "")) in.push_back("");
  ASSERT_GT(in.size(), 5u);
  // Read without releasing; then the producer, still finding the ring full,
  // writes nothing over the bytes read.
  std::vector<std::pair<const uint8_t *, uint32_t>> where;
  ring.read([&](const uint8_t *d, uint32_t len) { where.emplace_back(d, len); }, SIZE_MAX);
  ASSERT_EQ(where.size(), in.size());
  EXPECT_EQ(ring.consumed(), ring.produced());
  for (uint32_t i = 0; i < 50; ++i) EXPECT_FALSE(push(ring, make_record(i).substr(0, i)));
  for (size_t i = 0; i < in.size(); ++i)
    EXPECT_EQ(std::string(reinterpret_cast<const char *>(where[i].first), where[i].second), in[i]);
  EXPECT_EQ(ring.used(), ring.produced());
  EXPECT_TRUE(read_all(ring).empty());  // nothing after what was read
  ring.release();
  EXPECT_EQ(ring.used(), 0u);
  // Released space is reused, across the wrap point, and reads go on from
  // where they stopped.
  for (uint32_t i = 0; i < 200; ++i) {
    ASSERT_TRUE(push(ring, make_record(i)));
    ASSERT_TRUE(push(ring, make_record(i + 1)));
    std::vector<std::string> got;
    ring.read([&](const uint8_t *d,
                  uint32_t len) { got.emplace_back(reinterpret_cast<const char *>(d), len); },
              1);
    ASSERT_EQ(got, std::vector<std::string>{make_record(i)});
    ASSERT_EQ(read_all(ring), std::vector<std::string>{make_record(i + 1)});
    ring.release();
  }
  EXPECT_EQ(ring.used(), 0u);
}

TEST(SpscRingTwoPhase, ResetDropsReadAndUnreadRecords) {
  SpscRing ring;
  ASSERT_TRUE(ring.init_exact(4096));
  for (uint32_t i = 0; i < 6; ++i) ASSERT_TRUE(push(ring, make_record(i)));
  ring.read([](const uint8_t *, uint32_t) {}, 2);
  ring.reset();
  EXPECT_EQ(ring.used(), 0u);
  EXPECT_EQ(ring.consumed(), ring.produced());
  ASSERT_TRUE(push(ring, make_record(7)));
  EXPECT_EQ(read_all(ring), std::vector<std::string>{make_record(7)});
}

// The exporter's use: read a batch, release it later, while the producer
// runs. Every record arrives once, in order, intact.
TEST(SpscRingTwoPhase, ReadReleaseUnderConcurrency) {
  SpscRing ring;
  ASSERT_TRUE(ring.init_exact(8192));
  constexpr uint32_t kCount = 50000;
  std::atomic<bool> done{false};
  std::vector<uint32_t> pushed;
  std::thread producer([&] {
    for (uint32_t i = 0; i < kCount; ++i)
      if (push(ring, make_record(i))) pushed.push_back(i);
    done.store(true);
  });
  std::vector<uint32_t> got;
  bool intact = true;
  size_t pass = 0;
  auto drain = [&] {
    ring.read(
        [&](const uint8_t *d, uint32_t len) {
          uint32_t i;
          std::memcpy(&i, d, 4);
          intact = intact && std::string(reinterpret_cast<const char *>(d), len) == make_record(i);
          got.push_back(i);
        },
        1 + pass % 7);
    if (++pass % 3 == 0) ring.release();
  };
  while (!done.load()) drain();
  producer.join();
  while (ring.consumed() != ring.produced()) drain();
  ring.release();
  EXPECT_TRUE(intact);
  EXPECT_EQ(got, pushed);
  EXPECT_EQ(ring.used(), 0u);
}

// ---- Rings backed by files --------------------------------------------------

// Every entry of `dir` but . and ..
std::vector<std::string> all_names(const std::string &dir) {
  std::vector<std::string> out;
  if (DIR *d = opendir(dir.c_str())) {
    while (dirent *e = readdir(d))
      if (e->d_name[0] != '.' || std::strlen(e->d_name) > 2) out.emplace_back(e->d_name);
    closedir(d);
  }
  out.erase(std::remove_if(out.begin(), out.end(),
                           [](const std::string &n) { return n == ".." || n == "."; }),
            out.end());
  return out;
}

bool is_lock_file(const std::string &n) {
  return n.rfind("ringproc-", 0) == 0 && n.size() > 5 && n.substr(n.size() - 5) == ".lock";
}

// The entries of `dir` but the processes' lock files.
std::vector<std::string> ring_names(const std::string &dir) {
  auto out = all_names(dir);
  out.erase(std::remove_if(out.begin(), out.end(), is_lock_file), out.end());
  return out;
}

std::vector<std::string> lock_names(const std::string &dir) {
  auto out = all_names(dir);
  out.erase(std::remove_if(out.begin(), out.end(), [](auto &n) { return !is_lock_file(n); }),
            out.end());
  return out;
}

size_t open_descriptors() {
  size_t n = 0;
  if (DIR *d = opendir("/proc/self/fd")) {
    while (readdir(d) != nullptr) ++n;
    closedir(d);
  }
  return n;
}

std::string slurp(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

void spit(const std::string &path, const std::string &bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

constexpr ClockPair kBase{1000, 1700000000000000000ull};

class RingFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ringfile-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    ring_files_configure("", "", {});
    for (const auto &n : all_names(dir_)) unlink((dir_ + "/" + n).c_str());
    rmdir(dir_.c_str());
  }

  // Rings of a process that has died: a child makes them (one record each,
  // naming the ring) and exits without tearing them down.
  void make_dead_rings(int n, uint32_t capacity = 4096) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ring_files_configure(dir_, "resource", kBase);
      for (int i = 0; i < n; ++i) {
        auto *ring = new SpscRing;  // never freed: the process "dies" with it
        if (!ring->init_exact(capacity) || ring->file() == nullptr) _exit(2);
        if (!push(*ring, padded("ring " + std::to_string(i)))) _exit(3);
      }
      _exit(0);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }

  std::string dir_;
};

TEST_F(RingFileTest, BackedRingHoldsWhatWasNotReleased) {
  ring_files_configure(dir_, "the resource", kBase);
  SpscRing ring;
  ASSERT_TRUE(ring.init_exact(4096));
  ASSERT_NE(ring.file(), nullptr);
  const std::string path = ring_file_detail::ring_path(ring.file());
  ASSERT_EQ(ring_names(dir_), std::vector<std::string>{path.substr(dir_.size() + 1)});
  EXPECT_EQ(path.rfind(dir_ + "/ring-", 0), 0u);
  EXPECT_EQ(path.substr(path.size() - 5), ".ring");
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // Wrap the ring many times (records meet the end of the buffer and go
  // behind a padding marker), leaving read-but-unreleased and unread
  // records: the file holds all of these, in order.
  std::deque<std::string> unreleased;
  size_t read = 0;
  uint32_t next = 0;
  for (uint32_t round = 0; round < 300; ++round) {
    for (uint32_t k = 0; k < round % 5; ++k, ++next)
      if (push(ring, make_record(next))) unreleased.push_back(make_record(next));
    read += ring.read([](const uint8_t *, uint32_t) {}, round % 4);
    if (round % 3 == 0) {
      ring.release();
      unreleased.erase(unreleased.begin(), unreleased.begin() + static_cast<std::ptrdiff_t>(read));
      read = 0;
    }
  }
  ASSERT_GT(ring.produced(), 10u * 4096);
  ASSERT_GT(read, 0u);
  ASSERT_GT(unreleased.size(), read);
  const ClockPair later{5000, 1700000000000005000ull};
  ring_files_note_clock(later);
  RecoveredRing r;
  ASSERT_TRUE(parse_ring_file(slurp(path), &r));
  EXPECT_EQ(r.resource_body, "the resource");
  EXPECT_EQ(r.base.tsc, kBase.tsc);
  EXPECT_EQ(r.base.unix_ns, kBase.unix_ns);
  EXPECT_EQ(r.last.tsc, later.tsc);
  EXPECT_EQ(r.last.unix_ns, later.unix_ns);
  EXPECT_EQ(strings(r.records), std::vector<std::string>(unreleased.begin(), unreleased.end()));
}

// The case the files exist for: a process killed while it pushes. Every
// record whose push returned comes back, intact and in order, and nothing
// else does.
TEST_F(RingFileTest, KillNineLosesNoPushedRecord) {
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  // A one-page pipe holds 64 reports: the child blocks on its report once
  // the parent stops reading, so it is killed mid-stream, well before its
  // ring is full.
  ASSERT_GE(fcntl(pipefd[1], F_SETPIPE_SZ, 4096), 4096);
  constexpr size_t kReport = 64;
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(pipefd[0]);
    ring_files_configure(dir_, "resource", kBase);
    auto *ring = new SpscRing;
    if (!ring->init(128 * 1024) || ring->file() == nullptr) _exit(2);
    for (uint32_t i = 0;; ++i) {
      if (!push(*ring, make_record(i))) _exit(3);
      char report[kReport] = {};
      std::memcpy(report, &i, 4);
      if (write(pipefd[1], report, kReport) != static_cast<ssize_t>(kReport)) _exit(4);
    }
  }
  close(pipefd[1]);
  char report[kReport];
  uint32_t reported = 0;
  auto read_report = [&] {
    size_t got = 0;
    while (got < kReport) {
      const ssize_t r = read(pipefd[0], report + got, kReport - got);
      if (r <= 0) return false;
      got += static_cast<size_t>(r);
    }
    uint32_t i;
    std::memcpy(&i, report, 4);
    EXPECT_EQ(i, reported);
    reported = i + 1;
    return true;
  };
  while (reported < 300) ASSERT_TRUE(read_report()) << "the child stopped early";
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  while (read_report()) {
  }
  close(pipefd[0]);

  std::vector<RecoveredRing> got;
  uint64_t corrupt = 0;
  EXPECT_EQ(ring_files_recover(
                dir_,
                [&](const RecoveredRing &r) {
                  got.push_back(r);
                  return true;
                },
                &corrupt),
            1u);
  EXPECT_EQ(corrupt, 0u);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].resource_body, "resource");
  // Never noted (no exporter ran): the pair taken when the ring was made.
  EXPECT_NE(got[0].last.unix_ns, kBase.unix_ns);
  // The kill may land between a push's return and its report: that one
  // record was pushed too.
  const auto &recs = got[0].records;
  ASSERT_TRUE(recs.size() == reported || recs.size() == reported + 1u)
      << recs.size() << " recovered, " << reported << " reported";
  for (uint32_t i = 0; i < recs.size(); ++i) ASSERT_EQ(recs[i], make_record(i)) << i;
  EXPECT_TRUE(ring_names(dir_).empty());
}

// A descriptor per ring would be one per host thread that ever emitted: a
// host with a few hundred threads would hit its descriptor limit (EMFILE in
// its own open()). All of a process's rings cost one descriptor, its lock.
TEST_F(RingFileTest, RingsShareOneDescriptor) {
  ring_files_configure(dir_, "resource", kBase);
  const size_t before = open_descriptors();
  std::vector<std::unique_ptr<SpscRing>> rings;
  for (int i = 0; i < 64; ++i) {
    rings.push_back(std::make_unique<SpscRing>());
    ASSERT_TRUE(rings.back()->init_exact(4096));
    ASSERT_NE(rings.back()->file(), nullptr);
    ASSERT_TRUE(push(*rings.back(), padded("ring " + std::to_string(i))));
  }
  EXPECT_LE(open_descriptors(), before + 1);
  EXPECT_EQ(ring_names(dir_).size(), 64u);
  EXPECT_EQ(lock_names(dir_).size(), 1u);
  // The files still hold what is pushed, through the mappings alone.
  RecoveredRing r;
  ASSERT_TRUE(parse_ring_file(slurp(ring_file_detail::ring_path(rings[7]->file())), &r));
  EXPECT_EQ(strings(r.records), std::vector<std::string>{padded("ring 7")});
  // This process is alive: none of its rings is taken.
  EXPECT_EQ(ring_files_recover(
                dir_, [](const RecoveredRing &) { return true; }, nullptr),
            0u);
  EXPECT_EQ(ring_names(dir_).size(), 64u);
}

// A dead process's lock file goes with the last of its ring files, and not
// before.
TEST_F(RingFileTest, DeadProcessesLockFileGoesWithItsLastRing) {
  make_dead_rings(3);
  ASSERT_EQ(ring_names(dir_).size(), 3u);
  ASSERT_EQ(lock_names(dir_).size(), 1u);
  size_t calls = 0;
  EXPECT_EQ(ring_files_recover(
                dir_, [&](const RecoveredRing &) { return ++calls == 1; }, nullptr),
            3u);
  EXPECT_EQ(ring_names(dir_).size(), 2u);
  EXPECT_EQ(lock_names(dir_).size(), 1u);
  EXPECT_EQ(ring_files_recover(
                dir_, [](const RecoveredRing &) { return true; }, nullptr),
            2u);
  EXPECT_TRUE(all_names(dir_).empty());
}

TEST_F(RingFileTest, LiveOwnersFilesAreSkipped) {
  ring_files_configure(dir_, "resource", kBase);
  SpscRing mine;
  ASSERT_TRUE(mine.init_exact(4096));
  ASSERT_TRUE(push(mine, padded("mine")));
  // Another live process's ring, too.
  int ready[2], hold[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(hold), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(hold[1]);
    ring_files_after_fork_child(nullptr);
    auto *ring = new SpscRing;
    if (!ring->init_exact(4096) || ring->file() == nullptr || !push(*ring, padded("theirs")))
      _exit(2);
    char c = 1;
    if (write(ready[1], &c, 1) != 1) _exit(3);
    (void)!read(hold[0], &c, 1);  // until the parent closes its end
    _exit(0);
  }
  close(hold[0]);
  char c;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  size_t calls = 0;
  uint64_t corrupt = 0;
  EXPECT_EQ(ring_files_recover(
                dir_, [&](const RecoveredRing &) { return ++calls, true; }, &corrupt),
            0u);
  EXPECT_EQ(calls, 0u);
  EXPECT_EQ(corrupt, 0u);
  // Ours and theirs (the ring the child inherited is not the forking
  // thread's: it became anonymous memory); a lock file each.
  EXPECT_EQ(ring_names(dir_).size(), 2u);
  const auto locks = lock_names(dir_);
  EXPECT_EQ(locks.size(), 2u);
  // Once the other process has exited, its files are recovered; ours stays.
  close(hold[1]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  std::vector<std::string> recs;
  EXPECT_EQ(ring_files_recover(
                dir_,
                [&](const RecoveredRing &r) {
                  recs.insert(recs.end(), r.records.begin(), r.records.end());
                  return true;
                },
                &corrupt),
            1u);
  EXPECT_EQ(recs, std::vector<std::string>{padded("theirs")});
  EXPECT_EQ(
      ring_names(dir_),
      std::vector<std::string>{ring_file_detail::ring_path(mine.file()).substr(dir_.size() + 1)});
  EXPECT_EQ(lock_names(dir_).size(), 1u);
  close(ready[0]);
  close(ready[1]);
}

// Two processes recovering the same directory at once never both get a file.
TEST_F(RingFileTest, ConcurrentRecoverersShareNoFile) {
  constexpr int kFiles = 64;
  make_dead_rings(kFiles);
  int out[2], go[2];
  ASSERT_EQ(pipe(out), 0);
  ASSERT_EQ(pipe(go), 0);
  auto recover = [&](std::vector<std::string> *names) {
    return ring_files_recover(
        dir_,
        [&](const RecoveredRing &r) {
          names->push_back(r.records.empty() ? "" : std::string(r.records[0]));
          return true;
        },
        nullptr);
  };
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    char c;
    if (read(go[0], &c, 1) != 1) _exit(2);
    std::vector<std::string> names;
    recover(&names);
    std::string all;
    for (const auto &n : names) all += n + "\n";
    _exit(write(out[1], all.data(), all.size()) == static_cast<ssize_t>(all.size()) ? 0 : 3);
  }
  close(out[1]);
  ASSERT_EQ(write(go[1], "g", 1), 1);
  std::vector<std::string> names;
  recover(&names);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  char buf[4096];
  std::string theirs;
  for (ssize_t r; (r = read(out[0], buf, sizeof buf)) > 0;)
    theirs.append(buf, static_cast<size_t>(r));
  close(out[0]);
  close(go[0]);
  close(go[1]);
  std::istringstream lines(theirs);
  for (std::string line; std::getline(lines, line);) names.push_back(line);
  std::multiset<std::string> seen(names.begin(), names.end());
  EXPECT_EQ(seen.size(), static_cast<size_t>(kFiles));
  for (int i = 0; i < kFiles; ++i)
    EXPECT_EQ(seen.count(padded("ring " + std::to_string(i))), 1u) << i;
  EXPECT_TRUE(ring_names(dir_).empty());
}

// A valid file full of tiny records cost recovery a heap string per record
// (4x the file and more, in the host process at start). A record shorter
// than a record header is no record of ours: the file is damaged. What a
// valid file yields is bounded by the file: the records are views into one
// buffer.
TEST_F(RingFileTest, RecoveryRejectsRecordsShorterThanAHeaderAndKeepsOneBuffer) {
  constexpr size_t kHeaderBytes = 4096, kCap = 1u << 20;
  std::string f(kHeaderBytes + kCap, '\0');
  auto put64 = [&](size_t off, uint64_t v) { std::memcpy(f.data() + off, &v, 8); };
  auto put32 = [&](size_t off, uint32_t v) { std::memcpy(f.data() + off, &v, 4); };
  put64(0, 0x31474e49524c544full);
  put32(8, 1);
  put32(12, kHeaderBytes);
  put64(16, kCap);
  put64(128, kCap);  // head: the ring is full of 8-byte records of length 0
  RecoveredRing r;
  EXPECT_FALSE(parse_ring_file(f, &r));
  // Full of the shortest records accepted.
  const uint32_t len = rec::kHeader;
  const size_t step = 8 + len, n = kCap / step;
  for (size_t i = 0; i < n; ++i) {
    put32(kHeaderBytes + i * step, len);
    put32(kHeaderBytes + i * step + 8, static_cast<uint32_t>(i));
  }
  put64(128, n * step);
  ASSERT_TRUE(parse_ring_file(f, &r));
  ASSERT_EQ(r.records.size(), n);
  for (size_t i = 1; i < n; ++i)
    ASSERT_EQ(r.records[i].data(), r.records[i - 1].data() + len) << "not one buffer";
  EXPECT_LE(r.records.capacity() * sizeof(std::string_view) + n * len, f.size() * 5 / 4);
  // A copy owns its own buffer.
  RecoveredRing copy = r;
  r = RecoveredRing();
  ASSERT_EQ(copy.records.size(), n);
  for (size_t i = 0; i < n; ++i) {
    uint32_t v;
    std::memcpy(&v, copy.records[i].data(), 4);
    ASSERT_EQ(v, i);
  }
}

TEST_F(RingFileTest, DamagedFilesAreCountedAndRemoved) {
  make_dead_rings(1);
  const auto names = ring_names(dir_);
  ASSERT_EQ(names.size(), 1u);
  const std::string good = slurp(dir_ + "/" + names[0]);
  RecoveredRing r;
  ASSERT_TRUE(parse_ring_file(good, &r));
  ASSERT_EQ(strings(r.records), std::vector<std::string>{padded("ring 0")});
  auto with = [&](size_t off, uint64_t v, size_t width) {
    std::string f = good;
    std::memcpy(f.data() + off, &v, width);
    return f;
  };
  const size_t data = 4096;  // the header of a ring with a short resource
  const std::vector<std::pair<const char *, std::string>> damaged = {
      {"magic", with(0, 0x1234, 8)},
      {"version", with(8, 2, 4)},
      {"header size", with(12, 4096 + 8, 4)},
      {"capacity not a power of two", with(16, 3000, 8)},
      {"capacity beyond the file", with(16, 8192, 8)},
      {"resource length", with(24, 5000, 4)},
      {"clock index", with(80, 2, 4)},
      {"tail after head", with(192, 24, 8)},
      {"head a ring ahead of tail", with(128, 4096 + 8, 8)},
      {"head unaligned", with(128, 12, 8)},
      {"record past head", with(data, 100, 4)},
      {"record past the end", with(data, 5000, 4)},
      {"truncated", good.substr(0, good.size() - 1)},
      {"empty", ""},
  };
  for (size_t i = 0; i < damaged.size(); ++i) {
    EXPECT_FALSE(parse_ring_file(damaged[i].second, &r)) << damaged[i].first;
    spit(dir_ + "/ring-damaged" + std::to_string(i) + ".ring", damaged[i].second);
  }
  // Not ring files by name: left alone.
  spit(dir_ + "/ring-x.spool", good);
  spit(dir_ + "/other", good);
  uint64_t corrupt = 0;
  size_t calls = 0;
  EXPECT_EQ(ring_files_recover(
                dir_, [&](const RecoveredRing &) { return ++calls, true; }, &corrupt),
            1u);
  EXPECT_EQ(calls, 1u);  // the good one
  EXPECT_EQ(corrupt, damaged.size());
  auto left = ring_names(dir_);
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"other", "ring-x.spool"}));
}

// A file the recoverer's callback does not accept stays for the next try.
TEST_F(RingFileTest, RefusedRecoveryKeepsTheFile) {
  make_dead_rings(1);
  EXPECT_EQ(ring_files_recover(
                dir_, [](const RecoveredRing &) { return false; }, nullptr),
            1u);
  EXPECT_EQ(ring_names(dir_).size(), 1u);
  EXPECT_EQ(ring_files_recover(
                dir_, [](const RecoveredRing &) { return true; }, nullptr),
            1u);
  EXPECT_TRUE(ring_names(dir_).empty());
}

std::atomic<int> g_warnings{0};
void count_warning(void *, int32_t, const char *, size_t) {
  g_warnings.fetch_add(1);
}

// No room for the file: the ring lives in anonymous memory, after one
// warning, and works.
void expect_anonymous_fallback(const std::string &dir) {
  g_warnings.store(0);
  log_set_handler(count_warning, nullptr);
  ring_files_configure(dir, "resource", kBase);
  SpscRing a, b;
  ASSERT_TRUE(a.init(128 * 1024));
  ASSERT_TRUE(b.init(128 * 1024));
  log_set_handler(nullptr, nullptr);
  EXPECT_EQ(a.file(), nullptr);
  EXPECT_EQ(b.file(), nullptr);
  EXPECT_EQ(g_warnings.load(), 1);
  for (uint32_t i = 0; i < 3000; ++i) {
    ASSERT_TRUE(push(a, make_record(i)));
    ASSERT_EQ(read_all(a), std::vector<std::string>{make_record(i)});
    a.release();
  }
  EXPECT_TRUE(ring_names(dir).empty());  // no file left half made
}

TEST_F(RingFileTest, FullFilesystemFallsBackToAnonymousMemory) {
  const std::string mnt = dir_ + "/small";
  ASSERT_EQ(mkdir(mnt.c_str(), 0700), 0);
  if (mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=64k,mode=0700") != 0) {
    const int err = errno;
    rmdir(mnt.c_str());
    GTEST_SKIP() << "cannot mount a 64 KiB tmpfs here (" << std::strerror(err)
                 << "); FileSizeLimitFallsBackToAnonymousMemory covers the fallback";
  }
  expect_anonymous_fallback(mnt);
  ring_files_configure("", "", {});
  EXPECT_EQ(umount2(mnt.c_str(), MNT_DETACH), 0);
  rmdir(mnt.c_str());
}

// The same fallback without mounting anything: the file size limit makes the
// block reservation fail (EFBIG), in a child so that the limit stays there.
TEST_F(RingFileTest, FileSizeLimitFallsBackToAnonymousMemory) {
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    signal(SIGXFSZ, SIG_IGN);
    const rlimit lim{64 * 1024, 64 * 1024};
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0) _exit(2);
    expect_anonymous_fallback(dir_);
    _exit(::testing::Test::HasFailure() ? 1 : 0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

// A restart with another resource: recovered spans of rings made before it
// carry the current resource, not the first one.
TEST_F(RingFileTest, ReconfigurationRewritesTheResourceInExistingFiles) {
  ring_files_configure(dir_, "first", kBase);
  SpscRing ring;
  ASSERT_TRUE(ring.init_exact(4096));
  ASSERT_TRUE(push(ring, make_record(0)));
  ring_files_configure(dir_, "the second resource", kBase);
  RecoveredRing r;
  ASSERT_TRUE(parse_ring_file(slurp(ring_file_detail::ring_path(ring.file())), &r));
  EXPECT_EQ(r.resource_body, "the second resource");
  EXPECT_EQ(strings(r.records), std::vector<std::string>{make_record(0)});
}

// A process that exits normally (its exporter has spooled everything)
// leaves no file behind, and its rings keep working to the end.
TEST_F(RingFileTest, AtExitRemovesThisProcesssFiles) {
  make_dead_rings(1);  // another process's: not ours to remove
  auto theirs = all_names(dir_);
  std::sort(theirs.begin(), theirs.end());
  ASSERT_EQ(theirs.size(), 2u);
  ring_files_configure(dir_, "resource", kBase);
  SpscRing a, b;
  ASSERT_TRUE(a.init_exact(4096));
  ASSERT_TRUE(b.init_exact(4096));
  ASSERT_EQ(all_names(dir_).size(), 5u);
  ring_files_at_exit();
  auto left = all_names(dir_);
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, theirs);
  EXPECT_EQ(ring_file_detail::ring_path(a.file()), "");
  ring_files_note_clock(kBase);
  for (uint32_t i = 0; i < 1000; ++i) {
    ASSERT_TRUE(push(a, make_record(i)));
    ASSERT_EQ(read_all(a), std::vector<std::string>{make_record(i)});
    a.release();
  }
  SpscRing later;
  ASSERT_TRUE(later.init_exact(4096));
  EXPECT_EQ(later.file(), nullptr);
  EXPECT_EQ(all_names(dir_).size(), 2u);
}

// fork() without the pthread_atfork handlers: when an earlier test of this
// binary started the agent, its handler would move the rings (keeping the
// file of the forking thread's state, which is not the test's ring) before
// the test's own call. Nothing else runs in the test process meanwhile, so
// the child may allocate.
pid_t fork_without_handlers() {
  return static_cast<pid_t>(syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0));
}

// A fork child's pushes land in a file of its own, never in the parent's:
// for the forking thread's ring. Every other inherited ring becomes
// anonymous memory, without a file: making one per ring at every fork cost
// the host time per thread per fork and left files behind children that
// never emitted.
TEST_F(RingFileTest, ForkChildGetsItsOwnFileForTheForkingThreadsRingOnly) {
  ring_files_configure(dir_, "resource", kBase);
  SpscRing ring, other1, other2;
  ASSERT_TRUE(ring.init_exact(4096));
  ASSERT_TRUE(other1.init_exact(4096));
  ASSERT_TRUE(other2.init_exact(4096));
  for (uint32_t i = 0; i < 3; ++i) ASSERT_TRUE(push(ring, make_record(i)));
  ASSERT_TRUE(push(other1, padded("other")));
  const std::string path = ring_file_detail::ring_path(ring.file());
  const std::string other_path = ring_file_detail::ring_path(other1.file());
  const std::string before = slurp(path), other_before = slurp(other_path);
  const uint64_t head = ring.produced();
  const pid_t pid = fork_without_handlers();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ring_files_after_fork_child(ring.file());
    ring.reset();
    other1.reset();
    const std::string mine = ring_file_detail::ring_path(ring.file());
    if (mine.empty() || mine == path || access(mine.c_str(), F_OK) != 0) _exit(2);
    if (!ring_file_detail::ring_path(other1.file()).empty() ||
        !ring_file_detail::ring_path(other2.file()).empty())
      _exit(3);
    for (uint32_t i = 100; i < 105; ++i)
      if (!push(ring, make_record(i))) _exit(4);
    // An adopter of another thread's state pushes into anonymous memory.
    for (uint32_t i = 0; i < 300; ++i) {
      if (!push(other1, make_record(i))) _exit(5);
      if (read_all(other1) != std::vector<std::string>{make_record(i)}) _exit(6);
      other1.release();
    }
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(ring.produced(), head);
  EXPECT_EQ(slurp(path), before);
  EXPECT_EQ(slurp(other_path), other_before);
  std::vector<std::string> expected;
  for (uint32_t i = 0; i < 3; ++i) expected.push_back(make_record(i));
  EXPECT_EQ(read_all(ring), expected);
  // The child made one file: its owner gone, it holds the child's records;
  // the parent's, the parent alive, are left alone.
  EXPECT_EQ(ring_names(dir_).size(), 4u);
  std::vector<std::vector<std::string>> recovered;
  EXPECT_EQ(ring_files_recover(
                dir_,
                [&](const RecoveredRing &r) {
                  recovered.emplace_back(r.records.begin(), r.records.end());
                  return true;
                },
                nullptr),
            1u);
  expected.clear();
  for (uint32_t i = 100; i < 105; ++i) expected.push_back(make_record(i));
  EXPECT_EQ(recovered, std::vector<std::vector<std::string>>{expected});
  EXPECT_EQ(ring_names(dir_).size(), 3u);
  EXPECT_EQ(lock_names(dir_).size(), 1u);
}

// When the child cannot make a file (here: the directory has moved away), its
// ring moves to anonymous memory at the same address, after one warning:
// still never the parent's file.
TEST_F(RingFileTest, ForkChildWithoutRoomUsesAnonymousMemory) {
  ring_files_configure(dir_, "resource", kBase);
  SpscRing ring;
  ASSERT_TRUE(ring.init_exact(8192));
  ASSERT_TRUE(push(ring, make_record(0)));
  const std::string name = ring_file_detail::ring_path(ring.file()).substr(dir_.size());
  const std::string away = dir_ + "-away";
  const std::string before = slurp(dir_ + name);
  ASSERT_EQ(rename(dir_.c_str(), away.c_str()), 0);
  g_warnings.store(0);
  log_set_handler(count_warning, nullptr);
  const pid_t pid = fork_without_handlers();
  if (pid == 0) {
    ring_files_after_fork_child(ring.file());
    ring.reset();
    if (!ring_file_detail::ring_path(ring.file()).empty()) _exit(3);
    if (g_warnings.load() != 1) _exit(6);
    for (uint32_t i = 0; i < 500; ++i) {
      if (!push(ring, make_record(i))) _exit(4);
      if (read_all(ring) != std::vector<std::string>{make_record(i)}) _exit(5);
      ring.release();
    }
    _exit(0);
  }
  log_set_handler(nullptr, nullptr);
  int status = 0;
  const bool waited = pid > 0 && waitpid(pid, &status, 0) == pid;
  ASSERT_EQ(rename(away.c_str(), dir_.c_str()), 0);
  ASSERT_TRUE(waited);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(slurp(dir_ + name), before);
  EXPECT_EQ(ring_names(dir_).size(), 1u);
}

}  // namespace
}  // namespace otelagent
