// The disk spool (agent/export/spool.h) on real directories: format, order,
// size cap, corruption, writers sharing a directory, claims racing within
// one process and across two, and the write errors (disk full, read-only,
// directory removed).
#include "export/spool.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>
#include <set>
#include <string>

#include "core/log.h"
#include "export/spool_testing.h"
#include "unit/spool_test_util.h"

namespace otelagent {
namespace {

using spooltest::is_segment;
using spooltest::list;
using spooltest::read_file;
using spooltest::segments;
using spooltest::TempDir;
using spooltest::write_file;
using spooltest::writer_of;

using SpoolTest = spooltest::SpoolFixture;

constexpr uint64_t kBig = 1 << 30;
constexpr size_t kHeader = 40;  // the format's fixed header

std::string body(int i, size_t n = 100) {
  std::string s = "segment " + std::to_string(i) + " ";
  while (s.size() < n) s += static_cast<char>('a' + (s.size() * 7 + static_cast<size_t>(i)) % 26);
  s.resize(n);
  return s;
}

std::string append(Spool &s, const std::string &payload, uint32_t spans = 1) {
  std::string name;
  EXPECT_EQ(s.append(payload, Compression::kZstd, spans, &name), Spool::Append::kOk);
  return name;
}

// Writes segments with a writer that then goes away: they become orphans.
std::vector<std::string> orphans_of_dead_writer(const std::string &dir, int from, int n) {
  Spool w;
  EXPECT_EQ(w.open(dir, kBig), nullptr);
  std::vector<std::string> names;
  for (int i = from; i < from + n; ++i) names.push_back(append(w, body(i)));
  return names;
}

uint64_t now_unix_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

TEST_F(SpoolTest, RoundTripWithModesAndCounters) {
  TempDir t;
  const std::string dir = t.sub("spool");
  Spool s;
  ASSERT_EQ(s.open(dir, kBig), nullptr);
  ASSERT_TRUE(s.is_open());
  struct stat st;
  ASSERT_EQ(stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  const uint64_t before = now_unix_ns();
  std::string name;
  ASSERT_EQ(s.append(body(1), Compression::kGzip, 5, &name), Spool::Append::kOk);
  ASSERT_EQ(name.size(), 46u);
  ASSERT_EQ(stat((dir + "/" + name).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), kHeader + 100);
  auto &c = spool_counters();
  EXPECT_EQ(c.spans_spooled.load(), 5u);
  EXPECT_EQ(c.bytes.load(), kHeader + 100);
  EXPECT_GE(c.oldest_unix_ns.load(), before);

  SpoolSegment seg;
  ASSERT_TRUE(s.claim(name, &seg));
  EXPECT_EQ(seg.name, name);
  EXPECT_EQ(seg.payload, body(1));
  EXPECT_EQ(seg.encoding, Compression::kGzip);
  EXPECT_EQ(seg.spans, 5u);
  EXPECT_EQ(seg.created_unix_ns, c.oldest_unix_ns.load());
  EXPECT_GE(seg.fd, 0);
  s.release(&seg);
  EXPECT_EQ(seg.fd, -1);
  ASSERT_TRUE(s.claim(name, &seg));  // released: still there
  s.remove(&seg);
  EXPECT_TRUE(segments(dir).empty());
  EXPECT_FALSE(s.claim(name, &seg));
  EXPECT_EQ(c.bytes.load(), 0u);
  EXPECT_EQ(c.oldest_unix_ns.load(), 0u);
  // The writer's lock file is all that is left, 0600 too.
  auto files = list(dir);
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].substr(16), ".lock");
  ASSERT_EQ(stat((dir + "/" + files[0]).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

std::string g_logged;
void capture(void *, int32_t, const char *line, size_t len) {
  g_logged.append(line, len);
}

// Someone else's directory keeps its mode; we say once that it is too open.
TEST_F(SpoolTest, WideDirectoryModeIsWarnedNotChanged) {
  TempDir t;
  const std::string dir = t.sub("shared");
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  ASSERT_EQ(chmod(dir.c_str(), 0755), 0);
  g_logged.clear();
  log_reset_once();
  log_set_handler(capture, nullptr);
  Spool s;
  const char *err = s.open(dir, kBig);
  log_set_handler(nullptr, nullptr);
  ASSERT_EQ(err, nullptr);
  struct stat st;
  ASSERT_EQ(stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u);
  EXPECT_NE(g_logged.find("mode 755"), std::string::npos) << g_logged;
  const std::string name = append(s, body(0));
  ASSERT_EQ(stat((dir + "/" + name).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(SpoolTest, OpenRejectsWhatIsNotADirectory) {
  TempDir t;
  write_file(t.sub("file"), "x");
  Spool s;
  EXPECT_NE(s.open(t.sub("file"), kBig), nullptr);
  EXPECT_FALSE(s.is_open());
  EXPECT_NE(s.open(t.sub("no/such/parent"), kBig), nullptr);
  EXPECT_NE(s.open("", kBig), nullptr);
  std::string name;
  EXPECT_EQ(s.append("x", Compression::kNone, 1, &name), Spool::Append::kIoError);
  SpoolSegment seg;
  EXPECT_FALSE(s.claim_orphan(&seg));
  EXPECT_EQ(s.orphans(), 0u);
}

// Every single damaged byte, a truncation, an extension, an unknown
// version or encoding (with a header CRC that matches): all rejected.
TEST_F(SpoolTest, ParseSegmentRejectsEveryDamage) {
  TempDir t;
  Spool s;
  ASSERT_EQ(s.open(t.path(), kBig), nullptr);
  const std::string name = append(s, body(7, 24), 3);
  const std::string file = read_file(t.sub(name));
  ASSERT_EQ(file.size(), kHeader + 24);
  Compression enc;
  uint32_t spans;
  uint64_t created;
  std::string_view payload;
  ASSERT_TRUE(parse_segment(file, &enc, &spans, &created, &payload));
  EXPECT_EQ(enc, Compression::kZstd);
  EXPECT_EQ(spans, 3u);
  EXPECT_EQ(payload, body(7, 24));
  EXPECT_EQ(payload.data(), file.data() + kHeader);
  for (size_t i = 0; i < file.size(); ++i)
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = file;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      EXPECT_FALSE(parse_segment(bad, &enc, &spans, &created, &payload)) << i << "/" << bit;
    }
  for (size_t n = 0; n < file.size(); ++n)
    EXPECT_FALSE(parse_segment(file.substr(0, n), &enc, &spans, &created, &payload)) << n;
  EXPECT_FALSE(parse_segment(file + "x", &enc, &spans, &created, &payload));

  auto with_header_crc = [](std::string f) {
    const uint32_t c =
        static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef *>(f.data()), 36));
    for (int i = 0; i < 4; ++i) f[36 + i] = static_cast<char>(c >> (8 * i));
    return f;
  };
  ASSERT_TRUE(parse_segment(with_header_crc(file), &enc, &spans, &created, &payload));
  std::string v2 = file;
  v2[4] = 2;
  EXPECT_FALSE(parse_segment(with_header_crc(v2), &enc, &spans, &created, &payload));
  std::string enc3 = file;
  enc3[6] = 3;
  EXPECT_FALSE(parse_segment(with_header_crc(enc3), &enc, &spans, &created, &payload));
  std::string longer = file;
  longer[24] = static_cast<char>(longer[24] + 1);  // payload length one more than the file has
  EXPECT_FALSE(parse_segment(with_header_crc(longer), &enc, &spans, &created, &payload));
}

// Orphans come out oldest-first across writers, by creation time.
TEST_F(SpoolTest, OrphansOldestFirstAcrossWriters) {
  TempDir t;
  std::vector<std::string> order;
  {
    Spool a, b;
    ASSERT_EQ(a.open(t.path(), kBig), nullptr);
    ASSERT_EQ(b.open(t.path(), kBig), nullptr);
    for (int i = 0; i < 6; ++i) order.push_back(append(i % 3 == 1 ? b : a, body(i)));
  }
  Spool r;
  ASSERT_EQ(r.open(t.path(), kBig), nullptr);
  EXPECT_EQ(r.orphans(), 6u);
  for (int i = 0; i < 6; ++i) {
    SpoolSegment seg;
    ASSERT_TRUE(r.claim_orphan(&seg)) << i;
    EXPECT_EQ(seg.name, order[static_cast<size_t>(i)]);
    EXPECT_EQ(seg.payload, body(i));
    r.remove(&seg);
  }
  SpoolSegment seg;
  EXPECT_FALSE(r.claim_orphan(&seg));
  EXPECT_EQ(r.orphans(), 0u);
}

TEST_F(SpoolTest, CapDropsOldestUnheldAndCounts) {
  TempDir t;
  Spool s;
  const uint64_t seg_size = kHeader + 100;
  ASSERT_EQ(s.open(t.path(), 3 * seg_size), nullptr);
  auto &c = spool_counters();
  std::vector<std::string> n;
  for (int i = 0; i < 3; ++i) n.push_back(append(s, body(i), static_cast<uint32_t>(i + 1)));
  EXPECT_EQ(c.spans_dropped_full.load(), 0u);
  EXPECT_EQ(c.bytes.load(), 3 * seg_size);

  // A fourth: the oldest (1 span) goes.
  n.push_back(append(s, body(3), 4));
  EXPECT_EQ(c.spans_dropped_full.load(), 1u);
  EXPECT_EQ(c.bytes.load(), 3 * seg_size);
  SpoolSegment seg;
  EXPECT_FALSE(s.claim(n[0], &seg));
  EXPECT_EQ(segments(t.path()), (std::vector<std::string>{n[1], n[2], n[3]}));
  uint64_t created_1;
  {
    std::string f = read_file(t.sub(n[1]));
    Compression e;
    uint32_t sp;
    std::string_view p;
    ASSERT_TRUE(parse_segment(f, &e, &sp, &created_1, &p));
  }
  EXPECT_EQ(c.oldest_unix_ns.load(), created_1);

  // The oldest is claimed: the next oldest (3 spans) goes instead.
  SpoolSegment held;
  ASSERT_TRUE(s.claim(n[1], &held));
  n.push_back(append(s, body(4), 5));
  EXPECT_EQ(c.spans_dropped_full.load(), 1u + 3u);
  EXPECT_EQ(segments(t.path()), (std::vector<std::string>{n[1], n[3], n[4]}));

  // Larger than the cap alone: not written and not counted (the caller
  // keeps the batch in memory), kNoRoom with no name.
  std::string name = "x";
  EXPECT_EQ(s.append(body(5, 3 * seg_size), Compression::kNone, 7, &name), Spool::Append::kNoRoom);
  EXPECT_TRUE(name.empty());
  EXPECT_EQ(c.spans_dropped_full.load(), 1u + 3u);

  // Everything held: no room; the new one is not written (nor counted).
  SpoolSegment h3, h4;
  ASSERT_TRUE(s.claim(n[3], &h3));
  ASSERT_TRUE(s.claim(n[4], &h4));
  EXPECT_EQ(s.append(body(6), Compression::kNone, 11, &name), Spool::Append::kNoRoom);
  EXPECT_TRUE(name.empty());
  EXPECT_EQ(c.spans_dropped_full.load(), 1u + 3u);
  EXPECT_EQ(segments(t.path()).size(), 3u);
  EXPECT_EQ(c.spans_spooled.load(), 1u + 2u + 3u + 4u + 5u);
  s.release(&held);
  s.release(&h3);
  s.release(&h4);
}

// Another process's segments count towards the cap too (seen at rescan), and
// a held one of theirs is never dropped.
TEST_F(SpoolTest, CapCountsOtherWritersAndSkipsTheirClaims) {
  TempDir t;
  const uint64_t seg_size = kHeader + 100;
  Spool a, b;
  ASSERT_EQ(a.open(t.path(), 2 * seg_size), nullptr);
  ASSERT_EQ(b.open(t.path(), 2 * seg_size), nullptr);
  const std::string b0 = append(b, body(0));
  SpoolSegment held;
  ASSERT_TRUE(b.claim(b0, &held));
  const std::string a1 = append(a, body(1));
  const std::string a2 = append(a, body(2));  // b0 is held: a1 goes
  EXPECT_EQ(segments(t.path()), (std::vector<std::string>{b0, a2}));
  EXPECT_EQ(spool_counters().spans_dropped_full.load(), 1u);
  b.remove(&held);
}

TEST_F(SpoolTest, CorruptSegmentsAreCountedRemovedAndSkipped) {
  TempDir t;
  auto &c = spool_counters();
  Spool s;
  ASSERT_EQ(s.open(t.path(), kBig), nullptr);

  // A damaged payload byte: the header still reads, its spans are counted.
  std::string bad_payload = append(s, body(1), 4);
  std::string f = read_file(t.sub(bad_payload));
  f[kHeader + 10] ^= 0x20;
  write_file(t.sub(bad_payload), f);
  SpoolSegment seg;
  EXPECT_FALSE(s.claim(bad_payload, &seg));
  EXPECT_EQ(c.segments_corrupt.load(), 1u);
  EXPECT_EQ(c.spans_dropped_corrupt.load(), 4u);
  EXPECT_TRUE(segments(t.path()).empty());

  // A damaged header byte: its spans cannot be trusted, only the segment counts.
  std::string bad_header = append(s, body(2), 5);
  f = read_file(t.sub(bad_header));
  f[9] ^= 0x01;
  write_file(t.sub(bad_header), f);
  EXPECT_FALSE(s.claim(bad_header, &seg));
  EXPECT_EQ(c.segments_corrupt.load(), 2u);
  EXPECT_EQ(c.spans_dropped_corrupt.load(), 4u);

  // Truncated (a torn write after a power loss), and empty.
  std::string torn = append(s, body(3), 6);
  f = read_file(t.sub(torn));
  write_file(t.sub(torn), f.substr(0, f.size() - 1));
  EXPECT_FALSE(s.claim(torn, &seg));
  std::string empty = append(s, body(4), 6);
  write_file(t.sub(empty), "");
  EXPECT_FALSE(s.claim(empty, &seg));
  EXPECT_EQ(c.segments_corrupt.load(), 4u);
  EXPECT_TRUE(segments(t.path()).empty());
  EXPECT_EQ(c.bytes.load(), 0u);

  // Among orphans: skipped on the way to the good ones.
  auto names = orphans_of_dead_writer(t.path(), 10, 3);
  f = read_file(t.sub(names[1]));
  f[f.size() - 1] ^= 0x7f;
  write_file(t.sub(names[1]), f);
  std::vector<std::string> got;
  while (s.claim_orphan(&seg)) {
    got.push_back(seg.payload);
    s.remove(&seg);
  }
  EXPECT_EQ(got, (std::vector<std::string>{body(10), body(12)}));
  EXPECT_EQ(c.segments_corrupt.load(), 5u);
  EXPECT_EQ(c.spans_dropped_corrupt.load(), 4u + 1u);
  EXPECT_TRUE(segments(t.path()).empty());
}

// A segment with a damaged header dropped at the cap is counted as corrupt,
// not as spans dropped (its span count cannot be trusted).
TEST_F(SpoolTest, CapDropOfCorruptHeaderCountsCorrupt) {
  TempDir t;
  Spool s;
  ASSERT_EQ(s.open(t.path(), 2 * (kHeader + 100)), nullptr);
  const std::string a = append(s, body(0), 9);
  std::string f = read_file(t.sub(a));
  f[0] = 'X';
  write_file(t.sub(a), f);
  append(s, body(1));
  append(s, body(2));
  EXPECT_EQ(spool_counters().spans_dropped_full.load(), 0u);
  EXPECT_EQ(spool_counters().segments_corrupt.load(), 1u);
}

TEST_F(SpoolTest, OpenRemovesLeftoversOfDeadWritersOnly) {
  TempDir t;
  // A writer killed in the middle of a write leaves its temporary file and
  // its lock file.
  {
    Spool dead;
    ASSERT_EQ(dead.open(t.path(), kBig), nullptr);
    testing::spool_arm_write_fault({0, 20, true});
    std::string name;
    EXPECT_EQ(dead.append(body(1), Compression::kNone, 1, &name), Spool::Append::kIoError);
  }
  auto files = list(t.path());
  ASSERT_EQ(files.size(), 2u);
  const std::string dead_tmp = files[0], dead_lock = files[1];
  EXPECT_EQ(dead_tmp.substr(0, 5), ".tmp-");
  // A live writer's temporary file stays.
  Spool live;
  ASSERT_EQ(live.open(t.path(), kBig), nullptr);
  const std::string live_seg = append(live, body(2));
  const std::string live_tmp = ".tmp-" + writer_of(live_seg) + "-000000ff";
  write_file(t.sub(live_tmp), "partial");
  // An unrelated file (a ring file, say) is not ours to touch.
  write_file(t.sub("ring-1234.ring"), "r");

  Spool next;
  ASSERT_EQ(next.open(t.path(), kBig), nullptr);
  files = list(t.path());
  std::set<std::string> have(files.begin(), files.end());
  EXPECT_FALSE(have.count(dead_tmp));
  EXPECT_TRUE(have.count(live_tmp));
  EXPECT_FALSE(have.count(dead_lock));
  EXPECT_TRUE(have.count(writer_of(live_seg) + ".lock"));
  EXPECT_TRUE(have.count(live_seg));
  EXPECT_TRUE(have.count("ring-1234.ring"));
  EXPECT_EQ(files.size(), 5u);  // live's segment, tmp and lock; next's lock; the ring file
}

TEST_F(SpoolTest, TwoWritersClaimOnlyTheirOwnUntilOneGoes) {
  TempDir t;
  Spool a;
  auto b = std::make_unique<Spool>();
  ASSERT_EQ(a.open(t.path(), kBig), nullptr);
  ASSERT_EQ(b->open(t.path(), kBig), nullptr);
  const std::string a1 = append(a, body(1));
  const std::string b1 = append(*b, body(2));
  EXPECT_NE(writer_of(a1), writer_of(b1));
  SpoolSegment seg;
  EXPECT_FALSE(a.claim(b1, &seg));  // not a's
  EXPECT_FALSE(b->claim(a1, &seg));
  EXPECT_FALSE(a.claim_orphan(&seg));  // b is alive
  EXPECT_FALSE(b->claim_orphan(&seg));
  EXPECT_EQ(a.orphans(), 0u);
  b.reset();
  EXPECT_EQ(a.orphans(), 1u);
  ASSERT_TRUE(a.claim_orphan(&seg));
  EXPECT_EQ(seg.name, b1);
  EXPECT_EQ(seg.payload, body(2));
  a.remove(&seg);
  EXPECT_FALSE(a.claim_orphan(&seg));  // its own is not an orphan
  ASSERT_TRUE(a.claim(a1, &seg));
  a.remove(&seg);
}

TEST_F(SpoolTest, AClaimedSegmentCannotBeClaimedAgain) {
  TempDir t;
  orphans_of_dead_writer(t.path(), 0, 1);
  Spool a, b;
  ASSERT_EQ(a.open(t.path(), kBig), nullptr);
  ASSERT_EQ(b.open(t.path(), kBig), nullptr);
  SpoolSegment sa, sb;
  ASSERT_TRUE(a.claim_orphan(&sa));
  EXPECT_FALSE(b.claim_orphan(&sb));
  EXPECT_FALSE(a.claim_orphan(&sb));
  EXPECT_EQ(a.orphans(), 0u);  // the one there is a's
  a.release(&sa);
  ASSERT_TRUE(b.claim_orphan(&sb));
  EXPECT_EQ(sb.payload, body(0));
  // One's own segment, claimed twice by name: the second claim fails.
  const std::string own = append(a, body(1));
  ASSERT_TRUE(a.claim(own, &sa));
  SpoolSegment again;
  EXPECT_FALSE(a.claim(own, &again));
  a.remove(&sa);
  b.remove(&sb);
  // A segment handed to the wrong Spool, or twice, is left alone.
  EXPECT_TRUE(segments(t.path()).empty());
  a.remove(&sb);
  EXPECT_EQ(sb.fd, -1);
}

// Another claimant delivers and removes a segment between our open and our
// lock: we must not deliver it again.
Spool *g_racer;
int g_racer_calls;
bool g_racer_removes;
void racer(const std::string &) {
  if (g_racer_calls++ > 0) return;
  SpoolSegment seg;
  ASSERT_TRUE(g_racer->claim_orphan(&seg));
  if (g_racer_removes)
    g_racer->remove(&seg);
  else
    g_racer->release(&seg);
}

TEST_F(SpoolTest, RemovedBetweenOpenAndLockIsNotClaimed) {
  for (bool removes : {true, false}) {
    TempDir t;
    orphans_of_dead_writer(t.path(), 0, 1);
    Spool a, b;
    ASSERT_EQ(a.open(t.path(), kBig), nullptr);
    ASSERT_EQ(b.open(t.path(), kBig), nullptr);
    g_racer = &b;
    g_racer_calls = 0;
    g_racer_removes = removes;
    testing::spool_set_after_open_hook(racer);
    SpoolSegment seg;
    const bool got = a.claim_orphan(&seg);
    testing::spool_set_after_open_hook(nullptr);
    EXPECT_EQ(g_racer_calls, 2) << removes;  // a's claim, then the racer's own
    // Removed: a must not have it. Released: still there, a has it.
    EXPECT_EQ(got, !removes) << removes;
    if (got) {
      EXPECT_EQ(seg.payload, body(0));
      a.remove(&seg);
    }
    EXPECT_TRUE(segments(t.path()).empty());
  }
}

TEST_F(SpoolTest, WriteErrorsLeaveNothingBehind) {
  TempDir t;
  Spool s;
  ASSERT_EQ(s.open(t.path(), kBig), nullptr);
  const auto before = list(t.path());
  for (int err : {ENOSPC, EDQUOT, EROFS, EACCES, EIO}) {
    for (uint64_t at :
         {uint64_t{0}, uint64_t{10}, uint64_t{kHeader + 50}, uint64_t{kHeader + 100}}) {
      testing::spool_arm_write_fault({err, at, false});
      std::string name = "x";
      EXPECT_EQ(s.append(body(1), Compression::kNone, 3, &name), Spool::Append::kIoError)
          << err << " at " << at;
      EXPECT_TRUE(name.empty());
      EXPECT_EQ(list(t.path()), before) << err << " at " << at;
    }
  }
  EXPECT_EQ(spool_counters().spans_spooled.load(), 0u);
  EXPECT_EQ(spool_counters().bytes.load(), 0u);
  // The fault was one-shot: the disk has room again.
  const std::string name = append(s, body(2));
  SpoolSegment seg;
  ASSERT_TRUE(s.claim(name, &seg));
  EXPECT_EQ(seg.payload, body(2));
  s.remove(&seg);
}

// A real read-only directory: chattr +i (root ignores modes); as another
// user, mode 0500.
TEST_F(SpoolTest, ReadOnlyDirectoryIsAnIoError) {
  TempDir t;
  Spool s;
  ASSERT_EQ(s.open(t.path(), kBig), nullptr);
  const std::string kept = append(s, body(0));
  if (!TempDir::set_immutable(t.path(), true)) {
    if (geteuid() == 0) GTEST_SKIP() << "no chattr +i here, and root ignores modes";
    ASSERT_EQ(chmod(t.path().c_str(), 0500), 0);
  }
  std::string name;
  EXPECT_EQ(s.append(body(1), Compression::kNone, 1, &name), Spool::Append::kIoError);
  EXPECT_TRUE(name.empty());
  TempDir::unlock(t.path());
  EXPECT_EQ(segments(t.path()), std::vector<std::string>{kept});
  EXPECT_EQ(list(t.path()).size(), 2u);  // and the lock file
  EXPECT_EQ(spool_counters().spans_spooled.load(), 1u);
  append(s, body(2));  // writable again
  EXPECT_EQ(segments(t.path()).size(), 2u);
}

TEST_F(SpoolTest, DeletedDirectoryIsRecreated) {
  TempDir t;
  const std::string dir = t.sub("spool");
  Spool s;
  ASSERT_EQ(s.open(dir, kBig), nullptr);
  const std::string old = append(s, body(0));
  std::filesystem::remove_all(dir);
  const std::string fresh = append(s, body(1));
  ASSERT_FALSE(fresh.empty());
  struct stat st;
  ASSERT_EQ(stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_EQ(segments(dir), std::vector<std::string>{fresh});
  // The writer lock is there again: its segments are not orphans to others.
  Spool other;
  ASSERT_EQ(other.open(dir, kBig), nullptr);
  SpoolSegment seg;
  EXPECT_FALSE(other.claim_orphan(&seg));
  EXPECT_FALSE(s.claim(old, &seg));
  ASSERT_TRUE(s.claim(fresh, &seg));
  EXPECT_EQ(seg.payload, body(1));
  s.remove(&seg);
  EXPECT_EQ(spool_counters().bytes.load(), 0u);

  // Gone with its parent: it cannot be made again.
  std::filesystem::remove_all(t.path());
  std::string name = "x";
  EXPECT_EQ(s.append(body(2), Compression::kNone, 1, &name), Spool::Append::kIoError);
  EXPECT_TRUE(name.empty());
  std::filesystem::create_directories(t.path());  // for TempDir's cleanup
}

// A fork child closes what the parent's Spool holds and never touches it
// again; the parent's claims and writer lock stay the parent's.
TEST_F(SpoolTest, ForkChildLeavesTheParentsClaimsAndLock) {
  TempDir t;
  orphans_of_dead_writer(t.path(), 0, 1);
  Spool s;
  ASSERT_EQ(s.open(t.path(), kBig), nullptr);
  const std::string own = append(s, body(1));
  SpoolSegment held;
  ASSERT_TRUE(s.claim_orphan(&held));
  const int held_fd = held.fd;
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    spool_after_fork_child();
    int rc = 0;
    if (s.is_open()) rc |= 1;
    if (fcntl(held_fd, F_GETFD) != -1 || errno != EBADF) rc |= 2;
    s.release(&held);  // not the child's: must not close a reused number
    Spool c;
    SpoolSegment seg;
    if (c.open(t.path(), kBig) != nullptr) rc |= 4;
    if (c.claim_orphan(&seg)) rc |= 8;  // parent holds the orphan; parent is alive
    if (c.orphans() != 1) rc |= 16;     // another process's claims are not seen
    _exit(rc);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_TRUE(s.is_open());
  Spool other;
  ASSERT_EQ(other.open(t.path(), kBig), nullptr);
  SpoolSegment seg;
  EXPECT_FALSE(other.claim_orphan(&seg));  // still held, and `own` still s's
  s.remove(&held);
  ASSERT_TRUE(s.claim(own, &seg));
  s.remove(&seg);
}

// Two processes drain the same orphans at once: each delivered exactly once.
TEST_F(SpoolTest, TwoProcessesDeliverEachOrphanOnce) {
  TempDir t;
  constexpr int kSegments = 300;
  orphans_of_dead_writer(t.path(), 0, kSegments);
  int go[2], out[2];
  ASSERT_EQ(pipe(go), 0);
  ASSERT_EQ(pipe(out), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  auto drain = [&](std::vector<int> *ids) {
    Spool s;
    if (s.open(t.path(), kBig) != nullptr) return false;
    SpoolSegment seg;
    while (s.claim_orphan(&seg)) {
      ids->push_back(std::atoi(seg.payload.c_str() + 8));  // "segment N ..."
      s.remove(&seg);
    }
    return true;
  };
  if (pid == 0) {
    spool_after_fork_child();
    close(go[1]);
    close(out[0]);
    char c;
    if (read(go[0], &c, 1) != 1) _exit(2);
    std::vector<int> ids;
    if (!drain(&ids)) _exit(3);
    const size_t bytes = ids.size() * sizeof(int);
    if (write(out[1], ids.data(), bytes) != static_cast<ssize_t>(bytes)) _exit(4);
    _exit(0);
  }
  close(go[0]);
  close(out[1]);
  ASSERT_EQ(write(go[1], "g", 1), 1);
  std::vector<int> mine;
  ASSERT_TRUE(drain(&mine));
  std::vector<int> theirs(kSegments + 1);
  size_t got = 0;
  for (ssize_t r; (r = read(out[0], reinterpret_cast<char *>(theirs.data()) + got,
                            theirs.size() * sizeof(int) - got)) > 0;)
    got += static_cast<size_t>(r);
  theirs.resize(got / sizeof(int));
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  close(go[1]);
  close(out[0]);
  std::multiset<int> all(mine.begin(), mine.end());
  all.insert(theirs.begin(), theirs.end());
  EXPECT_EQ(all.size(), static_cast<size_t>(kSegments)) << mine.size() << " + " << theirs.size();
  for (int i = 0; i < kSegments; ++i) EXPECT_EQ(all.count(i), 1u) << i;
  EXPECT_TRUE(segments(t.path()).empty());
  std::printf("parent delivered %zu, child %zu\n", mine.size(), theirs.size());
}

}  // namespace
}  // namespace otelagent
