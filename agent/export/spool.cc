// The disk spool (spool.h).
//
// Segment file format, version 1 (integers little-endian):
//
//   offset size  field
//        0    4  magic "OTSG"
//        4    2  format version (1)
//        6    1  encoding of the payload: 0 none, 1 gzip, 2 zstd
//        7    1  reserved, 0
//        8    4  span count
//       12    4  reserved, 0
//       16    8  creation time, ns since the Unix epoch
//       24    8  payload length; the file is exactly 40 bytes longer
//       32    4  CRC-32 (zlib's) of the payload
//       36    4  CRC-32 of bytes 0..35
//       40       payload: the encoded, compressed ExportTraceServiceRequest
//
// The header has its own CRC so that a span count or length is never trusted
// from a damaged header: a segment whose header verifies but whose payload
// does not is counted in spans_dropped_corrupt; one whose header does not is
// counted only as a corrupt segment. CRC-32 detects every error of up to 32
// consecutive bits, so any single damaged byte is caught.
//
// Files in the directory (other names, such as ring files, are left alone):
//   <16 hex creation ns>-<16 hex writer>-<8 hex seq>.seg  a segment
//   <16 hex writer>.lock   a writer's lock file, flock'ed while it lives
//   .tmp-<16 hex writer>-<8 hex seq>  a segment being written
// Names sort oldest-first (fixed-width lowercase hex; a writer's creation
// times strictly increase). A segment is written under its temporary name and
// renamed into place once whole (rename is atomic), so a crash at any point
// leaves no visible partial segment, only a temporary file that the next
// open() removes once its writer is dead.
//
// Durability: no fsync. kill -9 of the process loses nothing written (the
// page cache belongs to the kernel), which is the crash this spool is for.
// A power loss or kernel crash may lose the segments of the last seconds, or
// leave one empty or partly written under its final name; the CRCs catch
// that, and it is counted as corrupt, never sent. An fsync of the file and of
// the directory per segment would close that window at the cost of a disk
// flush per batch, paid by the exporter thread while the collector is away:
// measured on the CI-like VM's ext4, a 20 KiB append took 85 us on average
// without, 2.5 ms (p50 0.5 ms, p99 8 ms) with the two fsyncs.
//
// Liveness: a writer is alive iff its lock file exists and cannot be
// flock'ed. The lock file is created under its final name and then locked;
// a process that probes it in that window (and removes it as stale) makes
// the writer's own check (still linked after locking) fail, and the writer
// takes another id. Segments of dead writers are orphans.
//
// Claims: a segment is claimed by flock'ing its open file (never blocking).
// After the lock is taken the file must still be the one linked under its
// name: a segment removed (delivered) by another process between our open
// and our lock is then never sent twice. remove() unlinks before closing, so
// whoever locks next sees it unlinked.
#include "export/spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <exception>
#include <utility>

#include "core/log.h"
#include "export/spool_testing.h"

namespace otelagent {

namespace {

constexpr size_t kHeaderSize = 40;
constexpr unsigned char kMagic[4] = {'O', 'T', 'S', 'G'};
constexpr uint16_t kVersion = 1;
constexpr size_t kSegmentNameLen = 16 + 1 + 16 + 1 + 8 + 4;
constexpr size_t kLockNameLen = 16 + 5;
constexpr size_t kTmpNameLen = 5 + 16 + 1 + 8;

// ---- Descriptors held by the spool layer, for spool_after_fork_child -------
// Every descriptor this file opens is entered here (as fd + 1: 0 is a free
// slot) until it is closed, so a fork child can close the parent's without
// knowing which Spool holds them. Lock-free: the fork may have happened while
// the parent's exporter thread was in the middle of a call. A descriptor is
// removed before it is closed, so the child can never close a number the
// host has since reused; a fork in between leaves that one open in the child
// (harmless: the parent's lock then lasts until the child exits too). More
// than kMaxFds at once (never in the exporter's use) go untracked likewise.
constexpr size_t kMaxFds = 256;
std::atomic<int> g_fds[kMaxFds];
constexpr size_t kMaxSpools = 16;
std::atomic<Spool *> g_spools[kMaxSpools];

void track_fd(int fd) {
  for (auto &slot : g_fds) {
    int free = 0;
    if (slot.compare_exchange_strong(free, fd + 1, std::memory_order_relaxed)) return;
  }
}

void untrack_fd(int fd) {
  for (auto &slot : g_fds) {
    int mine = fd + 1;
    if (slot.compare_exchange_strong(mine, 0, std::memory_order_relaxed)) return;
  }
}

void close_fd(int fd) {
  if (fd < 0) return;
  untrack_fd(fd);
  close(fd);
}

// An owned, tracked descriptor.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {
    if (fd_ >= 0) track_fd(fd_);
  }
  ~Fd() { close_fd(fd_); }
  Fd(const Fd &) = delete;
  Fd &operator=(const Fd &) = delete;
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }  // stays tracked

 private:
  int fd_;
};

// ---- Test hooks (spool_testing.h) --------------------------------------------
std::atomic<bool> g_fault_armed{false};
testing::SpoolWriteFault g_fault;
std::atomic<uint32_t> g_rescan_ms{1000};
std::atomic<void (*)(const std::string &)> g_after_open{nullptr};

bool take_fault(testing::SpoolWriteFault *f) {
  // acquire: pairs with the release in spool_arm_write_fault (g_fault).
  if (!g_fault_armed.load(std::memory_order_relaxed) ||
      !g_fault_armed.exchange(false, std::memory_order_acquire))
    return false;
  *f = g_fault;
  return true;
}

// ---- Encoding helpers ------------------------------------------------------------
void put16(unsigned char *p, uint16_t v) {
  for (int i = 0; i < 2; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
void put32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
void put64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
uint64_t get(const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

uint32_t crc(const void *p, size_t n) {
  return static_cast<uint32_t>(crc32_z(0, static_cast<const Bytef *>(p), n));
}

// The on-disk code of an encoding: fixed by the format, not by the enum.
uint8_t encoding_code(Compression c) {
  switch (c) {
    case Compression::kGzip:
      return 1;
    case Compression::kZstd:
      return 2;
    case Compression::kNone:
      break;
  }
  return 0;
}

struct Header {
  Compression encoding = Compression::kNone;
  uint32_t spans = 0;
  uint64_t created_unix_ns = 0;
  uint64_t payload_len = 0;
  uint32_t payload_crc = 0;
};

void encode_header(const Header &h, unsigned char *out) {
  std::memcpy(out, kMagic, 4);
  put16(out + 4, kVersion);
  out[6] = encoding_code(h.encoding);
  out[7] = 0;
  put32(out + 8, h.spans);
  put32(out + 12, 0);
  put64(out + 16, h.created_unix_ns);
  put64(out + 24, h.payload_len);
  put32(out + 32, h.payload_crc);
  put32(out + 36, crc(out, 36));
}

// The first kHeaderSize bytes of a file of `file_size` bytes.
bool parse_header(const unsigned char *h, uint64_t file_size, Header *out) {
  if (std::memcmp(h, kMagic, 4) != 0 || get(h + 4, 2) != kVersion) return false;
  if (h[7] != 0 || get(h + 12, 4) != 0) return false;
  if (crc(h, 36) != get(h + 36, 4)) return false;
  switch (h[6]) {
    case 0:
      out->encoding = Compression::kNone;
      break;
    case 1:
      out->encoding = Compression::kGzip;
      break;
    case 2:
      out->encoding = Compression::kZstd;
      break;
    default:
      return false;
  }
  out->spans = static_cast<uint32_t>(get(h + 8, 4));
  out->created_unix_ns = get(h + 16, 8);
  out->payload_len = get(h + 24, 8);
  out->payload_crc = static_cast<uint32_t>(get(h + 32, 4));
  return file_size >= kHeaderSize && out->payload_len == file_size - kHeaderSize;
}

// ---- Names ---------------------------------------------------------------------------
bool parse_hex(std::string_view s, uint64_t *out) {
  uint64_t v = 0;
  for (char c : s) {
    if (c >= '0' && c <= '9')
      v = (v << 4) | static_cast<uint64_t>(c - '0');
    else if (c >= 'a' && c <= 'f')
      v = (v << 4) | static_cast<uint64_t>(c - 'a' + 10);
    else
      return false;
  }
  *out = v;
  return true;
}

bool parse_segment_name(std::string_view n, uint64_t *created, uint64_t *writer) {
  uint64_t seq;
  return n.size() == kSegmentNameLen && n[16] == '-' && n[33] == '-' && n.substr(42) == ".seg" &&
         parse_hex(n.substr(0, 16), created) && parse_hex(n.substr(17, 16), writer) &&
         parse_hex(n.substr(34, 8), &seq);
}

bool parse_lock_name(std::string_view n, uint64_t *writer) {
  return n.size() == kLockNameLen && n.substr(16) == ".lock" && parse_hex(n.substr(0, 16), writer);
}

bool parse_tmp_name(std::string_view n, uint64_t *writer) {
  uint64_t seq;
  return n.size() == kTmpNameLen && n.substr(0, 5) == ".tmp-" && n[21] == '-' &&
         parse_hex(n.substr(5, 16), writer) && parse_hex(n.substr(22, 8), &seq);
}

std::string segment_name(uint64_t created, uint64_t writer, uint32_t seq) {
  char b[kSegmentNameLen + 1];
  snprintf(b, sizeof b, "%016" PRIx64 "-%016" PRIx64 "-%08" PRIx32 ".seg", created, writer, seq);
  return b;
}

std::string lock_name(uint64_t writer) {
  char b[kLockNameLen + 1];
  snprintf(b, sizeof b, "%016" PRIx64 ".lock", writer);
  return b;
}

std::string tmp_name(uint64_t writer, uint32_t seq) {
  char b[kTmpNameLen + 1];
  snprintf(b, sizeof b, ".tmp-%016" PRIx64 "-%08" PRIx32, writer, seq);
  return b;
}

// ---- System helpers ----------------------------------------------------------------
uint64_t now_ns(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t random_id() {
  uint64_t id;
  if (getrandom(&id, sizeof id, GRND_NONBLOCK) == sizeof id) return id;
  // No entropy yet (early boot): time, pid and a counter, mixed (splitmix64).
  static std::atomic<uint64_t> n{0};
  uint64_t z = now_ns(CLOCK_REALTIME) ^ (static_cast<uint64_t>(getpid()) << 32) ^
               n.fetch_add(0x9e3779b97f4a7c15u, std::memory_order_relaxed);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

// Whether the open file `fd` is still the one linked as `name` in `dir`.
bool linked(int dir, const std::string &name, int fd) {
  struct stat a, b;
  return fstat(fd, &a) == 0 && a.st_nlink > 0 &&
         fstatat(dir, name.c_str(), &b, AT_SYMLINK_NOFOLLOW) == 0 && a.st_dev == b.st_dev &&
         a.st_ino == b.st_ino;
}

bool list_dir(int dir, std::vector<std::string> *names) {
  Fd fd(openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return false;
  DIR *d = fdopendir(fd.get());
  if (d == nullptr) return false;
  const int owned = fd.release();
  bool ok = true;
  try {
    while (dirent *e = readdir(d)) {
      if (e->d_name[0] == '.' && (e->d_name[1] == '\0' || std::strcmp(e->d_name, "..") == 0))
        continue;
      names->emplace_back(e->d_name);
    }
  } catch (const std::exception &) {
    ok = false;
  }
  untrack_fd(owned);  // closedir closes it
  closedir(d);
  if (!ok) throw std::bad_alloc();
  return true;
}

bool read_all(int fd, void *buf, size_t n, off_t at) {
  auto *p = static_cast<char *>(buf);
  while (n > 0) {
    const ssize_t r = pread(fd, p, n, at);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
    at += r;
  }
  return true;
}

// Writes [p, p + n), at most *budget bytes of it (the test hook's fault
// point). 0, errno, or -1 when the budget ran out first.
int write_all(int fd, const char *p, size_t n, uint64_t *budget) {
  const bool cut = *budget < n;
  size_t left = cut ? static_cast<size_t>(*budget) : n;
  *budget -= left;
  while (left > 0) {
    const ssize_t w = write(fd, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return errno;
    p += w;
    left -= static_cast<size_t>(w);
  }
  return cut ? -1 : 0;
}

void warn_write_error(const std::string &dir, int err) {
  switch (err) {
    case ENOSPC:
    case EDQUOT:
      log_warn_once(Once::kSpoolNoSpace, "spool directory %s is full (%s): batches are not spooled",
                    dir.c_str(), strerror(err));
      break;
    case EROFS:
    case EACCES:
    case EPERM:
      log_warn_once(Once::kSpoolNotWritable,
                    "spool directory %s is not writable (%s): batches are not spooled", dir.c_str(),
                    strerror(err));
      break;
    case ENOENT:
      log_warn_once(Once::kSpoolDirGone,
                    "spool directory %s was removed and cannot be re-created (%s): batches are "
                    "not spooled",
                    dir.c_str(), strerror(err));
      break;
    default:
      log_warn_once(Once::kSpoolIo, "cannot write in spool directory %s (%s)", dir.c_str(),
                    strerror(err));
  }
}

bool dir_removed(int dir) {
  struct stat st;
  return fstat(dir, &st) == 0 && st.st_nlink == 0;
}

}  // namespace

// ---- Counters -------------------------------------------------------------------------
void SpoolCounters::reset() {
  for (auto *c : {&spans_spooled, &spans_dropped_full, &spans_dropped_corrupt, &spans_dropped_gone,
                  &segments_corrupt, &spans_dropped_io, &bytes, &oldest_unix_ns})
    c->store(0, std::memory_order_relaxed);
}

SpoolCounters &spool_counters() {
  static SpoolCounters c;
  return c;
}

// ---- Format --------------------------------------------------------------------------
bool parse_segment(std::string_view file, Compression *encoding, uint32_t *spans,
                   uint64_t *created_unix_ns, std::string_view *payload) {
  Header h;
  if (file.size() < kHeaderSize ||
      !parse_header(reinterpret_cast<const unsigned char *>(file.data()), file.size(), &h))
    return false;
  const std::string_view body = file.substr(kHeaderSize);
  if (crc(body.data(), body.size()) != h.payload_crc) return false;
  *encoding = h.encoding;
  *spans = h.spans;
  *created_unix_ns = h.created_unix_ns;
  *payload = body;
  return true;
}

// ---- Spool ------------------------------------------------------------------------------
Spool::~Spool() {
  close_all();
}

void Spool::close_all() {
  // After a fork dir_fd_ is -1 and the descriptors are closed already.
  if (dir_fd_ < 0) return;
  for (auto &c : claims_) close_fd(c.first);
  claims_.clear();
  close_fd(lock_fd_);
  close_fd(dir_fd_);
  lock_fd_ = dir_fd_ = -1;
  index_.clear();
  index_bytes_ = 0;
  alive_.clear();
  for (auto &slot : g_spools) {
    Spool *me = this;
    if (slot.compare_exchange_strong(me, nullptr, std::memory_order_relaxed)) break;
  }
}

const char *Spool::open(const std::string &dir, uint64_t max_bytes) {
  try {
    close_all();
    if (dir.empty()) return "no spool directory given";
    path_ = dir;
    max_bytes_ = max_bytes;
    if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
      return "cannot create the spool directory";
    Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!d) return "cannot open the spool directory (not a directory, or not permitted)";
    struct stat st;
    if (fstat(d.get(), &st) == 0 && (st.st_mode & 077) != 0)
      // Not ours to chmod (it may be shared on purpose); our files are 0600.
      log_warn_once(Once::kSpoolDirMode,
                    "spool directory %s is accessible to other users (mode %03o); it should be "
                    "0700",
                    dir.c_str(), static_cast<unsigned>(st.st_mode & 0777));
    size_t slot = 0;
    for (; slot < kMaxSpools; ++slot) {
      Spool *none = nullptr;
      if (g_spools[slot].compare_exchange_strong(none, this, std::memory_order_relaxed)) break;
    }
    if (slot == kMaxSpools) return "too many spools open in this process";
    dir_fd_ = d.release();
    seq_ = 0;
    if (!make_lock(dir_fd_, &lock_fd_, &writer_)) {
      close_all();
      return "the spool directory is not writable";
    }
    ids_.assign(1, writer_);
    cleanup_dead();
    rescan();
    return nullptr;
  } catch (const std::exception &) {
    close_all();
    return "out of memory opening the spool";
  }
}

bool Spool::make_lock(int dir, int *lock_fd, uint64_t *writer) {
  // A few ids: one attempt fails only when another process took our fresh
  // lock file for a dead writer's in the instant before we locked it.
  for (int attempt = 0; attempt < 4; ++attempt) {
    const uint64_t id = random_id();
    const std::string name = lock_name(id);
    Fd f(openat(dir, name.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!f) {
      if (errno == EEXIST) continue;
      return false;
    }
    if (flock(f.get(), LOCK_EX | LOCK_NB) != 0 || !linked(dir, name, f.get())) continue;
    *writer = id;
    *lock_fd = f.release();
    return true;
  }
  return false;
}

bool Spool::reattach(bool create) {
  if (create && mkdir(path_.c_str(), 0700) != 0 && errno != EEXIST) return false;
  Fd d(::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!d) return false;
  int lock_fd;
  uint64_t writer;
  if (!make_lock(d.get(), &lock_fd, &writer)) return false;
  // A new writer id: the old one's segments went with the old directory.
  close_fd(lock_fd_);
  close_fd(dir_fd_);
  dir_fd_ = d.release();
  lock_fd_ = lock_fd;
  writer_ = writer;
  if (ids_.size() < 64) ids_.push_back(writer);
  seq_ = 0;
  rescan();
  return true;
}

void Spool::cleanup_dead() {
  std::vector<std::string> names;
  if (!list_dir(dir_fd_, &names)) return;
  // Stale lock files first: their writers are then plainly dead below.
  for (const auto &n : names) {
    uint64_t w;
    if (!parse_lock_name(n, &w) || w == writer_) continue;
    Fd f(openat(dir_fd_, n.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
    if (f && flock(f.get(), LOCK_EX | LOCK_NB) == 0 && linked(dir_fd_, n, f.get()))
      unlinkat(dir_fd_, n.c_str(), 0);
  }
  for (const auto &n : names) {
    uint64_t w;
    if (parse_tmp_name(n, &w) && !writer_alive(w)) unlinkat(dir_fd_, n.c_str(), 0);
  }
}

void Spool::rescan() {
  scanned_ms_ = now_ns(CLOCK_MONOTONIC) / 1000000;
  // Removed while we ran, and made again (by another process, say): follow.
  if (dir_removed(dir_fd_) && reattach(false)) return;
  std::vector<std::string> names;
  std::map<std::string, Entry> index;
  uint64_t bytes = 0;
  if (list_dir(dir_fd_, &names)) {
    for (auto &n : names) {
      Entry e;
      struct stat st;
      if (!parse_segment_name(n, &e.created_unix_ns, &e.writer) ||
          fstatat(dir_fd_, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
        continue;
      e.size = static_cast<uint64_t>(st.st_size);
      bytes += e.size;
      index.emplace(std::move(n), e);
    }
  }
  index_.swap(index);
  index_bytes_ = bytes;
  alive_.clear();
  publish();
}

void Spool::maybe_rescan() {
  const uint64_t now = now_ns(CLOCK_MONOTONIC) / 1000000;
  if (now - scanned_ms_ >= g_rescan_ms.load(std::memory_order_relaxed)) rescan();
}

bool Spool::writer_alive(uint64_t writer) {
  if (writer == writer_) return true;
  if (auto it = alive_.find(writer); it != alive_.end()) return it->second;
  const std::string name = lock_name(writer);
  Fd f(openat(dir_fd_, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  // A lock file we cannot open (not ours to read) is taken as alive: its
  // segments are left alone rather than risked.
  const bool alive = f ? flock(f.get(), LOCK_EX | LOCK_NB) != 0 : errno != ENOENT;
  alive_.emplace(writer, alive);
  return alive;
}

void Spool::forget(const std::string &name) {
  if (auto it = index_.find(name); it != index_.end()) {
    index_bytes_ -= it->second.size;
    index_.erase(it);
  }
}

bool Spool::ours(const SpoolSegment *s, size_t *at) const {
  for (size_t i = 0; i < claims_.size(); ++i)
    if (claims_[i].first == s->fd && claims_[i].second == s->name) {
      *at = i;
      return true;
    }
  return false;
}

bool Spool::holds(const std::string &name) const {
  for (const auto &c : claims_)
    if (c.second == name) return true;
  return false;
}

void Spool::publish() const {
  auto &c = spool_counters();
  c.bytes.store(index_bytes_, std::memory_order_relaxed);
  c.oldest_unix_ns.store(index_.empty() ? 0 : index_.begin()->second.created_unix_ns,
                         std::memory_order_relaxed);
}

bool Spool::drop_oldest_unheld(uint64_t size) {
  auto &c = spool_counters();
  for (auto it = index_.begin(); it != index_.end() && index_bytes_ + size > max_bytes_; ++it) {
    const std::string &name = it->first;
    if (holds(name)) continue;
    Fd f(openat(dir_fd_, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
    if (!f && errno != ENOENT) continue;
    if (f && flock(f.get(), LOCK_EX | LOCK_NB) != 0) continue;  // someone sends it now
    if (f && linked(dir_fd_, name, f.get())) {
      struct stat st;
      unsigned char h[kHeaderSize];
      Header hd;
      if (unlinkat(dir_fd_, name.c_str(), 0) != 0) continue;
      // The exporter learns of it when it claims the name (claim_own).
      if (std::find(ids_.begin(), ids_.end(), it->second.writer) != ids_.end())
        dropped_own_.insert(name);
      if (fstat(f.get(), &st) == 0 && read_all(f.get(), h, kHeaderSize, 0) &&
          parse_header(h, static_cast<uint64_t>(st.st_size), &hd)) {
        c.spans_dropped_full.fetch_add(hd.spans, std::memory_order_relaxed);
      } else {
        c.segments_corrupt.fetch_add(1, std::memory_order_relaxed);
        log_warn_once(Once::kSpoolCorrupt,
                      "spool directory %s: corrupt segment %s removed (counted in "
                      "segments_corrupt)",
                      path_.c_str(), name.c_str());
      }
    }
    forget(name);  // gone, whoever removed it
    return true;
  }
  return false;
}

bool Spool::make_room(uint64_t size) {
  while (index_bytes_ + size > max_bytes_)
    if (!drop_oldest_unheld(size)) return false;
  return true;
}

int Spool::write_segment(std::string_view payload, Compression encoding, uint32_t spans,
                         uint64_t created, uint32_t seq, const std::string &name, bool *crashed) {
  Header h;
  h.encoding = encoding;
  h.spans = spans;
  h.created_unix_ns = created;
  h.payload_len = payload.size();
  h.payload_crc = crc(payload.data(), payload.size());
  unsigned char head[kHeaderSize];
  encode_header(h, head);
  const std::string tmp = tmp_name(writer_, seq);
  const uint64_t total = kHeaderSize + payload.size();
  testing::SpoolWriteFault fault;
  const bool faulty = take_fault(&fault);
  uint64_t budget = faulty ? fault.after_bytes : total;

  Fd f(openat(dir_fd_, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!f) return errno;
  int err = write_all(f.get(), reinterpret_cast<const char *>(head), kHeaderSize, &budget);
  if (err == 0) err = write_all(f.get(), payload.data(), payload.size(), &budget);
  if (err == -1 || (faulty && fault.crash && fault.after_bytes == total)) {
    if (fault.crash) {
      *crashed = true;
      return EIO;
    }
    err = fault.err != 0 ? fault.err : EIO;
  }
  // A fault past the last byte fails the rename (a directory that must grow
  // can be full too).
  if (err == 0 && faulty && !fault.crash && fault.after_bytes >= total)
    err = fault.err != 0 ? fault.err : EIO;
  if (err == 0 && renameat(dir_fd_, tmp.c_str(), dir_fd_, name.c_str()) != 0) err = errno;
  if (err == 0 && faulty && fault.crash) {
    *crashed = true;
    return EIO;
  }
  if (err != 0) unlinkat(dir_fd_, tmp.c_str(), 0);
  return err;
}

Spool::Append Spool::append(std::string_view payload, Compression encoding, uint32_t spans,
                            std::string *name) {
  if (name != nullptr) name->clear();
  if (dir_fd_ < 0) return Append::kIoError;
  auto &c = spool_counters();
  try {
    const uint64_t size = kHeaderSize + payload.size();
    if (size > max_bytes_) return Append::kNoRoom;
    maybe_rescan();
    if (!make_room(size)) {
      publish();
      return Append::kNoRoom;
    }
    // Strictly increasing per writer, so names sort in append order even if
    // the wall clock steps back.
    const uint64_t created = std::max(now_ns(CLOCK_REALTIME), last_created_ns_ + 1);
    last_created_ns_ = created;
    std::string seg = segment_name(created, writer_, seq_);
    bool crashed = false;
    int err = write_segment(payload, encoding, spans, created, seq_++, seg, &crashed);
    if (err == ENOENT && !crashed && dir_removed(dir_fd_)) {
      if (!reattach(true)) {
        warn_write_error(path_, ENOENT);
        publish();
        return Append::kIoError;
      }
      log_warn_once(Once::kSpoolDirGone, "spool directory %s was removed; re-created it",
                    path_.c_str());
      seg = segment_name(created, writer_, seq_);
      err = write_segment(payload, encoding, spans, created, seq_++, seg, &crashed);
    }
    if (crashed) return Append::kIoError;
    if (err != 0) {
      warn_write_error(path_, err);
      publish();
      return Append::kIoError;
    }
    try {
      index_.emplace(seg, Entry{size, writer_, created});
    } catch (const std::exception &) {
      // Unindexed, it would be sent later as well as handled by the caller.
      unlinkat(dir_fd_, seg.c_str(), 0);
      throw;
    }
    index_bytes_ += size;
    c.spans_spooled.fetch_add(spans, std::memory_order_relaxed);
    publish();
    if (name != nullptr) *name = std::move(seg);
    return Append::kOk;
  } catch (const std::exception &) {
    return Append::kIoError;
  }
}

Spool::Claimed Spool::claim_file(const std::string &name, SpoolSegment *out) {
  Fd f(openat(dir_fd_, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!f) return errno == ENOENT ? Claimed::kGone : Claimed::kHeld;
  if (auto hook = g_after_open.load(std::memory_order_relaxed)) hook(name);
  if (flock(f.get(), LOCK_EX | LOCK_NB) != 0) return Claimed::kHeld;
  if (!linked(dir_fd_, name, f.get())) return Claimed::kGone;  // removed by its sender

  auto &c = spool_counters();
  struct stat st;
  unsigned char h[kHeaderSize];
  Header hd;
  // Not a regular file (a FIFO, say), or a payload larger than the whole
  // spool may hold: not a segment this spool wrote, whatever its header says.
  const bool header_ok = fstat(f.get(), &st) == 0 && S_ISREG(st.st_mode) &&
                         read_all(f.get(), h, kHeaderSize, 0) &&
                         parse_header(h, static_cast<uint64_t>(st.st_size), &hd);
  if (header_ok && hd.payload_len > max_bytes_) {
    c.spans_dropped_corrupt.fetch_add(hd.spans, std::memory_order_relaxed);
  } else if (header_ok) {
    out->payload.resize(hd.payload_len);
    if (read_all(f.get(), out->payload.data(), out->payload.size(), kHeaderSize) &&
        crc(out->payload.data(), out->payload.size()) == hd.payload_crc) {
      claims_.emplace_back(f.get(), name);
      out->name = name;
      out->encoding = hd.encoding;
      out->spans = hd.spans;
      out->created_unix_ns = hd.created_unix_ns;
      out->fd = f.release();
      return Claimed::kOk;
    }
    c.spans_dropped_corrupt.fetch_add(hd.spans, std::memory_order_relaxed);
  }
  out->payload.clear();
  // Still locked and linked: nobody else is reading it.
  unlinkat(dir_fd_, name.c_str(), 0);
  c.segments_corrupt.fetch_add(1, std::memory_order_relaxed);
  log_warn_once(Once::kSpoolCorrupt,
                "spool directory %s: corrupt segment %s removed (counted in segments_corrupt)",
                path_.c_str(), name.c_str());
  forget(name);
  return Claimed::kCorrupt;
}

bool Spool::claim(const std::string &name, SpoolSegment *out) {
  return claim_own(name, out) == OwnClaim::kOk;
}

Spool::OwnClaim Spool::claim_own(const std::string &name, SpoolSegment *out) {
  if (dir_fd_ < 0 || out == nullptr) return OwnClaim::kBusy;
  try {
    uint64_t created, writer;
    // This writer's, under any id it has had (the directory may have been
    // re-created under it).
    if (!parse_segment_name(name, &created, &writer) ||
        std::find(ids_.begin(), ids_.end(), writer) == ids_.end())
      return OwnClaim::kVanished;
    const Claimed r = claim_file(name, out);
    if (r == Claimed::kGone) forget(name);
    publish();
    switch (r) {
      case Claimed::kOk:
        return OwnClaim::kOk;
      case Claimed::kHeld:
        return OwnClaim::kBusy;
      case Claimed::kCorrupt:
        return OwnClaim::kCounted;
      case Claimed::kGone:
        break;
    }
    // Dropped at the cap by this spool (counted then), or removed by
    // someone else (counted by nobody yet).
    return dropped_own_.erase(name) != 0 ? OwnClaim::kCounted : OwnClaim::kVanished;
  } catch (const std::exception &) {
    return OwnClaim::kBusy;
  }
}

bool Spool::claim_orphan(SpoolSegment *out) {
  if (dir_fd_ < 0 || out == nullptr) return false;
  try {
    maybe_rescan();
    for (auto it = index_.begin(); it != index_.end();) {
      // claim_file may erase this entry: step past it first.
      const std::string name = it->first;
      const uint64_t writer = it->second.writer;
      ++it;
      if (writer_alive(writer) || holds(name)) continue;
      const Claimed r = claim_file(name, out);
      if (r == Claimed::kOk) {
        publish();
        return true;
      }
      if (r == Claimed::kGone) forget(name);
    }
    publish();
    return false;
  } catch (const std::exception &) {
    return false;
  }
}

void Spool::remove(SpoolSegment *s) {
  if (s == nullptr) return;
  size_t at;
  if (dir_fd_ >= 0 && ours(s, &at)) {
    // Unlink before the lock ends: whoever locks it next sees it unlinked.
    if (unlinkat(dir_fd_, s->name.c_str(), 0) != 0 && errno != ENOENT)
      // It stays, and will be sent again: at-least-once.
      warn_write_error(path_, errno);
    close_fd(s->fd);
    claims_.erase(claims_.begin() + static_cast<std::ptrdiff_t>(at));
    forget(s->name);
    publish();
  }
  s->fd = -1;
}

void Spool::release(SpoolSegment *s) {
  if (s == nullptr) return;
  size_t at;
  if (dir_fd_ >= 0 && ours(s, &at)) {
    close_fd(s->fd);
    claims_.erase(claims_.begin() + static_cast<std::ptrdiff_t>(at));
  }
  s->fd = -1;
}

size_t Spool::orphans() {
  if (dir_fd_ < 0) return 0;
  try {
    maybe_rescan();
    size_t n = 0;
    for (const auto &[name, e] : index_)
      if (!writer_alive(e.writer) && !holds(name)) ++n;
    return n;
  } catch (const std::exception &) {
    return 0;
  }
}

void spool_after_fork_child() {
  // Single-threaded here. The Spools are marked closed first, without
  // touching their containers (the parent's exporter thread may have been
  // changing them), then every descriptor goes: close, never unlock, as the
  // locks belong to open files the parent still holds.
  for (auto &slot : g_spools) {
    if (Spool *s = slot.exchange(nullptr, std::memory_order_relaxed)) s->dir_fd_ = s->lock_fd_ = -1;
  }
  for (auto &slot : g_fds) {
    const int v = slot.exchange(0, std::memory_order_relaxed);
    if (v != 0) close(v - 1);
  }
}

namespace testing {

void spool_arm_write_fault(const SpoolWriteFault &f) {
  g_fault = f;
  g_fault_armed.store(true, std::memory_order_release);  // pairs with take_fault
}

void spool_disarm_write_fault() {
  g_fault_armed.store(false, std::memory_order_relaxed);
}

void spool_set_rescan_interval_ms(uint32_t ms) {
  g_rescan_ms.store(ms, std::memory_order_relaxed);
}

void spool_set_after_open_hook(void (*fn)(const std::string &name)) {
  g_after_open.store(fn, std::memory_order_relaxed);
}

}  // namespace testing

}  // namespace otelagent
