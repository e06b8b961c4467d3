#include "core/ring_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <new>

#include "core/log.h"
#include "core/record.h"

namespace otelagent {
namespace {

// File layout (native byte order; a file from a machine of the other order
// fails the magic check):
//   0   u64 magic            8  u32 version     12 u32 header bytes (H)
//   16  u64 capacity (C)     24 u32 resource length   28 u32 creator's pid
//   32  ClockPair base       48 ClockPair last[2]     80 u32 index of the
//       valid `last` (written after the slot, so a kill between the two
//       stores leaves the previous pair valid)
//   128 SpscRing::Control (head at 128, tail at 192)
//   256 the resource body, up to H
//   H   the ring's C bytes
// H is a multiple of 4096 (of the page size when creating), so the ring's
// bytes start on a page of their own.
constexpr uint64_t kMagic = 0x31474e49524c544full;  // "OTLRING1"
constexpr uint32_t kVersion = 1;
constexpr size_t kOffMagic = 0, kOffVersion = 8, kOffHeaderBytes = 12, kOffCapacity = 16,
                 kOffResourceLen = 24, kOffPid = 28, kOffBase = 32, kOffLast = 48,
                 kOffLastIndex = 80, kOffControl = 128, kOffResource = 256;
constexpr size_t kOffHead = kOffControl + offsetof(SpscRing::Control, head);
constexpr size_t kOffTail = kOffControl + offsetof(SpscRing::Control, tail);
static_assert(sizeof(ClockPair) == 16);
static_assert(sizeof(SpscRing::Control) == 128 && kOffControl + 128 <= kOffResource);
static_assert(std::atomic<uint32_t>::is_always_lock_free);

// Bounds a reader enforces on a file it did not write.
constexpr size_t kMaxResource = 16 * 1024;
constexpr size_t kMaxHeader = 64 * 1024;  // 16 KiB + 256 rounded to a 64 KiB page
constexpr uint64_t kMinCapacity = 4096;
constexpr uint64_t kMaxCapacity = uint64_t{1} << 30;  // OTELAGENT_RING_BYTES's maximum
constexpr uint32_t kRecordHdr = 8;
constexpr uint32_t kPadding = 0xFFFFFFFFu;

// Names: a process's rings are ring-<procid>-<n>.ring and its liveness is
// the flock on ringproc-<procid>.lock, held through one descriptor for the
// life of the process (a descriptor per ring would take one per host thread
// that ever emitted). A ring's own descriptor is closed once it is mapped.
constexpr const char *kPrefix = "ring-", *kSuffix = ".ring";
constexpr const char *kLockPrefix = "ringproc-", *kLockSuffix = ".lock";
// Files being made are named so that no recoverer takes them for rings or
// for lock files.
constexpr const char *kTmpPrefix = ".ring-", *kTmpSuffix = ".tmp";
constexpr const char *kLockTmpPrefix = ".ringproc-";

// One file-backed ring. Never freed while its ring lives (the agent's rings
// live as long as the process).
struct RingFile {
  RingFile *next = nullptr;
  uint8_t *base = nullptr;  // header_bytes + capacity mapped bytes
  size_t header_bytes = 0, capacity = 0;
  std::string dir;
  std::string path;  // "" once in anonymous memory
};

// This process's lock file in one directory (a configuration may change the
// directory while rings made in the previous one live on).
struct ProcLock {
  std::string dir, path;
  int fd = -1;
};

// Guards everything below. Cold paths only: ring creation, note_clock once
// per exporter pass, destruction in tests.
std::mutex g_mu;
std::string g_dir, g_resource;
ClockPair g_base, g_last;
RingFile *g_files = nullptr;
std::vector<ProcLock> g_locks;
std::string g_procid;    // "" until this process first needs one
pid_t g_procid_pid = 0;  // the process g_procid was made in
uint64_t g_next_ring = 0;
std::atomic<bool> g_warned_create{false}, g_warned_fork{false};

template <typename T>
void put(uint8_t *base, size_t off, T v) {
  std::memcpy(base + off, &v, sizeof v);
}

template <typename T>
T get(std::string_view f, size_t off) {
  T v;
  std::memcpy(&v, f.data() + off, sizeof v);
  return v;
}

size_t page_size() {
  static const size_t page = [] {
    const long p = sysconf(_SC_PAGESIZE);
    return p >= 4096 ? static_cast<size_t>(p) : size_t{4096};
  }();
  return page;
}

size_t header_bytes_for(size_t resource_len) {
  const size_t page = page_size();
  return (kOffResource + resource_len + page - 1) / page * page;
}

std::atomic<uint32_t> *last_index(uint8_t *base) {
  return reinterpret_cast<std::atomic<uint32_t> *>(base + kOffLastIndex);
}

std::string random_hex() {
  uint64_t r = 0;
  if (getrandom(&r, sizeof r, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof r)) {
    // No entropy yet (early boot): unique enough with O_EXCL retried.
    static std::atomic<uint64_t> counter{0};
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    r = (static_cast<uint64_t>(getpid()) << 32) ^ static_cast<uint64_t>(ts.tv_nsec) ^
        (counter.fetch_add(1) << 48);
  }
  char s[17];
  for (int i = 0; i < 16; ++i) s[i] = "0123456789abcdef"[(r >> (4 * i)) & 15];
  s[16] = 0;
  return s;
}

// Filesystems on which a store into a populated shared mapping of a file
// whose blocks posix_fallocate reserved cannot fail for want of space: tmpfs
// (fallocate allocates the pages; there is no writeback) and ext4/xfs (the
// blocks are allocated, unwritten extents are converted in place). A
// copy-on-write filesystem (btrfs, zfs) needs new blocks at every rewrite and
// would answer a later store with SIGBUS when full; network and FUSE
// filesystems may too. overlayfs writes to its upper layer, which Docker's
// and containerd's overlay drivers support only on ext4 and xfs.
bool fs_never_faults(int fd) {
  struct statfs s;
  if (fstatfs(fd, &s) != 0) return false;
  switch (static_cast<unsigned long>(s.f_type)) {
    case TMPFS_MAGIC:
    case EXT4_SUPER_MAGIC:
    case XFS_SUPER_MAGIC:
    case OVERLAYFS_SUPER_MAGIC:
      return true;
    default:
      return false;
  }
}

void write_header(uint8_t *base, size_t header_bytes, size_t capacity) {
  put<uint64_t>(base, kOffMagic, kMagic);
  put<uint32_t>(base, kOffVersion, kVersion);
  put<uint32_t>(base, kOffHeaderBytes, static_cast<uint32_t>(header_bytes));
  put<uint64_t>(base, kOffCapacity, capacity);
  put<uint32_t>(base, kOffResourceLen, static_cast<uint32_t>(g_resource.size()));
  put<uint32_t>(base, kOffPid, static_cast<uint32_t>(getpid()));
  put<ClockPair>(base, kOffBase, g_base);
  put<ClockPair>(base, kOffLast, g_last);
  new (last_index(base)) std::atomic<uint32_t>(0);
  new (base + kOffControl) SpscRing::Control();
  std::memcpy(base + kOffResource, g_resource.data(), g_resource.size());
}

// This process's lock file in `dir`, made and locked when missing: its
// flock tells recoverers that the rings named after g_procid are alive.
// Made under a temporary name and renamed once locked, so that no recoverer
// ever sees it unlocked. Returns 0 or an errno value. g_mu held.
int hold_proc_lock(const std::string &dir, const char **what) {
  if (g_procid.empty()) {
    g_procid = random_hex();
    g_procid_pid = getpid();
  }
  for (const ProcLock &l : g_locks)
    if (l.dir == dir) return 0;
  const std::string tmp = dir + "/" + kLockTmpPrefix + g_procid + kTmpSuffix;
  const std::string path = dir + "/" + kLockPrefix + g_procid + kLockSuffix;
  *what = "create the process's lock file";
  const int fd = open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return errno;
  int err = 0;
  // Nobody else knows the name yet: the lock is free.
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    *what = "lock the process's lock file";
    err = errno;
  } else if (rename(tmp.c_str(), path.c_str()) != 0) {
    *what = "rename the process's lock file";
    err = errno;
  } else {
    g_locks.push_back(ProcLock{dir, path, fd});
    return 0;
  }
  unlink(tmp.c_str());
  close(fd);
  return err;
}

// Makes a ring file of header_bytes + capacity bytes in `dir`, named after
// this process, blocks reserved, mapped shared (at `fixed` when not null)
// with every page written once, header written; its descriptor is closed
// (the mapping keeps the file). Returns 0, or an errno value with *what
// naming the step that failed. g_mu held.
int make_file(const std::string &dir, size_t header_bytes, size_t capacity, void *fixed,
              RingFile *out, const char **what) {
  if (const int err = hold_proc_lock(dir, what)) return err;
  const size_t bytes = header_bytes + capacity;
  const std::string name = g_procid + "-" + std::to_string(g_next_ring++);
  const std::string tmp = dir + "/" + kTmpPrefix + name + kTmpSuffix;
  const std::string path = dir + "/" + kPrefix + name + kSuffix;
  *what = "create";
  const int fd = open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return errno;
  int err = 0;
  void *p = MAP_FAILED;
  if (!fs_never_faults(fd)) {
    *what = "filesystem type (only tmpfs, ext4, xfs and overlayfs are trusted)";
    err = EOPNOTSUPP;
  } else if ((err = posix_fallocate(fd, 0, static_cast<off_t>(bytes))) != 0) {
    *what = "reserve blocks";
  } else {
    p = mmap(fixed, bytes, PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_POPULATE | (fixed != nullptr ? MAP_FIXED : 0), fd, 0);
    if (p == MAP_FAILED) {
      *what = "map";
      err = errno;
    }
  }
  if (err == 0) {
    auto *base = static_cast<uint8_t *>(p);
    // MAP_POPULATE maps a shared file's pages read-only (the kernel tracks
    // their first write): a write to each page now takes that fault here
    // rather than on a host thread's first span into the page.
    for (size_t off = 0; off < bytes; off += page_size()) {
      volatile uint8_t *b = base + off;
      *b = *b;
    }
    write_header(base, header_bytes, capacity);
    if (rename(tmp.c_str(), path.c_str()) != 0) {
      *what = "rename";
      err = errno;
      // After a failed MAP_FIXED the caller maps anonymous memory there.
      if (fixed == nullptr) munmap(p, bytes);
    } else {
      out->base = base;
      out->header_bytes = header_bytes;
      out->capacity = capacity;
      out->dir = dir;
      out->path = path;
      close(fd);
      return 0;
    }
  }
  unlink(tmp.c_str());
  close(fd);
  return err;
}

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

bool has_affixes(const char *name, const char *prefix, const char *suffix) {
  const size_t n = std::strlen(name), p = std::strlen(prefix), s = std::strlen(suffix);
  return n > p + s && std::strncmp(name, prefix, p) == 0 && std::strcmp(name + n - s, suffix) == 0;
}

// Reads the whole of a regular file of at most `max` bytes; false on a short
// read or an oversized file.
bool read_whole(int fd, const struct stat &st, size_t max, std::string *out) {
  if (st.st_size < 0 || static_cast<uint64_t>(st.st_size) > max) return false;
  try {
    out->resize(static_cast<size_t>(st.st_size));
  } catch (const std::bad_alloc &) {
    return false;
  }
  size_t got = 0;
  while (got < out->size()) {
    const ssize_t r = pread(fd, out->data() + got, out->size() - got, static_cast<off_t>(got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    got += static_cast<size_t>(r);
  }
  return true;
}

}  // namespace

void ring_files_configure(const std::string &dir, std::string_view resource_body, ClockPair base) {
  std::lock_guard<std::mutex> lk(g_mu);
  g_base = g_last = base;
  // A new configuration warns afresh when its files cannot be made.
  g_warned_create.store(false, std::memory_order_relaxed);
  if (!dir.empty() && resource_body.size() > kMaxResource) {
    log_warn(
        "the resource (%zu bytes) is larger than a ring file keeps (%zu bytes); spans are "
        "kept in anonymous memory and lost if the process is killed",
        resource_body.size(), kMaxResource);
    g_dir.clear();
    g_resource.clear();
    return;
  }
  g_dir = dir;
  g_resource.assign(resource_body);
  // A restart with another resource: the rings of threads registered under
  // the previous configuration keep their files, whose spans belong to this
  // one now. Producers never touch this region of the header.
  bool unfit = false;
  for (RingFile *f = g_files; f != nullptr && !dir.empty(); f = f->next) {
    if (f->path.empty()) continue;
    if (kOffResource + g_resource.size() > f->header_bytes) {
      unfit = true;
      continue;
    }
    std::memcpy(f->base + kOffResource, g_resource.data(), g_resource.size());
    put<uint32_t>(f->base, kOffResourceLen, static_cast<uint32_t>(g_resource.size()));
  }
  if (unfit)
    log_warn(
        "the new resource (%zu bytes) does not fit in the headers of ring files made before "
        "the restart; spans recovered from them after a crash carry the previous resource",
        g_resource.size());
  // Made if missing, private to this user; when it cannot be, the first
  // ring's creation warns.
  if (!dir.empty()) mkdir(dir.c_str(), 0700);
}

void ring_files_note_clock(const ClockPair &now) {
  std::lock_guard<std::mutex> lk(g_mu);
  g_last = now;
  for (RingFile *f = g_files; f != nullptr; f = f->next) {
    if (f->path.empty()) continue;
    std::atomic<uint32_t> *idx = last_index(f->base);
    const uint32_t next = idx->load(std::memory_order_relaxed) ^ 1u;
    put<ClockPair>(f->base, kOffLast + next * sizeof(ClockPair), now);
    idx->store(next, std::memory_order_release);
  }
}

bool parse_ring_file(std::string_view f, RecoveredRing *out) {
  if (f.size() < kOffResource || get<uint64_t>(f, kOffMagic) != kMagic ||
      get<uint32_t>(f, kOffVersion) != kVersion)
    return false;
  const uint32_t header_bytes = get<uint32_t>(f, kOffHeaderBytes);
  const uint64_t cap = get<uint64_t>(f, kOffCapacity);
  const uint32_t resource_len = get<uint32_t>(f, kOffResourceLen);
  const uint32_t last = get<uint32_t>(f, kOffLastIndex);
  if (header_bytes % 4096 != 0 || header_bytes < kOffResource || header_bytes > kMaxHeader ||
      cap < kMinCapacity || cap > kMaxCapacity || (cap & (cap - 1)) != 0 ||
      f.size() != header_bytes + cap || resource_len > kMaxResource ||
      kOffResource + resource_len > header_bytes || last > 1)
    return false;
  const uint64_t head = get<uint64_t>(f, kOffHead);
  const uint64_t tail = get<uint64_t>(f, kOffTail);
  // Indices move by whole 8-byte units; the producer never gets more than a
  // ring ahead of the released tail.
  if (tail > head || head - tail > cap || head % 8 != 0 || tail % 8 != 0) return false;
  // The consumer's walk, with every step checked: a record never wraps, the
  // producer published head only after the bytes below it, and a record
  // holds at least a record header. First to count, then to copy.
  const std::string_view ring = f.substr(header_bytes);
  size_t count = 0, bytes = 0;
  const auto walk = [&](auto &&take) {
    for (uint64_t t = tail; t != head;) {
      const uint64_t pos = t & (cap - 1);
      const uint64_t contiguous = cap - pos;  // at least 8: pos is a multiple of 8
      const uint32_t len = get<uint32_t>(ring, pos);
      if (len == kPadding) {
        if (head - t < contiguous) return false;
        t += contiguous;
        continue;
      }
      const uint64_t need = kRecordHdr + ((uint64_t{len} + 7) & ~uint64_t{7});
      if (len < rec::kHeader || need > contiguous || need > head - t) return false;
      take(ring.substr(pos + kRecordHdr, len));
      t += need;
    }
    return true;
  };
  if (!walk([&](std::string_view rec) { ++count, bytes += rec.size(); })) return false;
  RecoveredRing r;
  try {
    r.storage_.reserve(bytes);
    r.records.reserve(count);
  } catch (const std::bad_alloc &) {
    return false;
  }
  walk([&](std::string_view rec) {
    const size_t at = r.storage_.size();
    r.storage_.insert(r.storage_.end(), rec.begin(), rec.end());
    r.records.emplace_back(r.storage_.data() + at, rec.size());
  });
  r.resource_body.assign(f.substr(kOffResource, resource_len));
  r.base = get<ClockPair>(f, kOffBase);
  r.last = get<ClockPair>(f, kOffLast + last * sizeof(ClockPair));
  *out = std::move(r);
  return true;
}

RecoveredRing &RecoveredRing::operator=(const RecoveredRing &o) {
  if (this == &o) return *this;
  resource_body = o.resource_body;
  base = o.base;
  last = o.last;
  storage_ = o.storage_;
  records.clear();
  records.reserve(o.records.size());
  for (const std::string_view v : o.records)
    records.emplace_back(storage_.data() + (v.data() - o.storage_.data()), v.size());
  return *this;
}

namespace {

// The procid in a ring file's (or a lock file's) name: "" for a name of
// another form (then the file's own flock decides, as for the files of
// versions that locked each ring).
std::string procid_of(const std::string &name, bool lock_file) {
  const char *prefix = lock_file ? kLockPrefix : name[0] == '.' ? kTmpPrefix : kPrefix;
  const char *suffix = lock_file ? kLockSuffix : name[0] == '.' ? kTmpSuffix : kSuffix;
  const std::string mid =
      name.substr(std::strlen(prefix), name.size() - std::strlen(prefix) - std::strlen(suffix));
  if (lock_file) return mid;
  const size_t dash = mid.rfind('-');
  return dash == std::string::npos || dash == 0 ? std::string() : mid.substr(0, dash);
}

// A process whose rings are in the directory, as a recoverer sees it.
struct Owner {
  bool alive = false;
  bool lock_listed = false;  // its lock file is there
  size_t left = 0;           // its files the pass did not remove
  int lock_fd = -1;          // held while its rings are recovered
};

}  // namespace

size_t ring_files_recover(const std::string &dir,
                          const std::function<bool(const RecoveredRing &)> &fn, uint64_t *corrupt) {
  Fd dfd{open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (dfd.fd < 0) return 0;
  std::vector<std::string> names;
  std::map<std::string, Owner> owners;
  {
    DIR *d = fdopendir(dup(dfd.fd));
    if (d == nullptr) return 0;
    while (dirent *e = readdir(d)) {
      if (has_affixes(e->d_name, kLockPrefix, kLockSuffix))
        owners[procid_of(e->d_name, true)].lock_listed = true;
      else if (has_affixes(e->d_name, kPrefix, kSuffix) ||
               has_affixes(e->d_name, kTmpPrefix, kTmpSuffix))
        names.emplace_back(e->d_name);
    }
    closedir(d);
  }
  for (const std::string &name : names) {
    const std::string id = procid_of(name, false);
    if (!id.empty()) owners[id];
  }
  // A process is alive while it holds its lock file's flock (this process
  // included: a lock on another open of the file conflicts with it). A
  // missing lock file means a dead process whose lock file went first.
  for (auto &[id, o] : owners) {
    const std::string lock = kLockPrefix + id + kLockSuffix;
    const int fd = openat(dfd.fd, lock.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) continue;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      o.alive = true;
      close(fd);
    } else {
      o.lock_fd = fd;
    }
  }
  size_t n = 0;
  for (const std::string &name : names) {
    const std::string id = procid_of(name, false);
    Owner *o = id.empty() ? nullptr : &owners[id];
    if (o != nullptr && o->alive) continue;
    if (o != nullptr) ++o->left;
    // Non-blocking: a FIFO under a ring's name must not hang the exporter.
    Fd fd{openat(dfd.fd, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)};
    if (fd.fd < 0) continue;
    // Another recoverer's (or, for a name without a procid, a live owner's).
    if (flock(fd.fd, LOCK_EX | LOCK_NB) != 0) continue;
    // Under the lock, the name must still be this file: another recoverer
    // that had it first removed it before letting go of the lock.
    struct stat st, by_name;
    if (fstat(fd.fd, &st) != 0 ||
        fstatat(dfd.fd, name.c_str(), &by_name, AT_SYMLINK_NOFOLLOW) != 0 ||
        st.st_dev != by_name.st_dev || st.st_ino != by_name.st_ino)
      continue;
    bool removed = true;
    if (name[0] == '.') {
      // A ring file whose making was interrupted: it never held a record.
      unlinkat(dfd.fd, name.c_str(), 0);
    } else {
      std::string bytes;
      RecoveredRing ring;
      if (!S_ISREG(st.st_mode) || !read_whole(fd.fd, st, kMaxHeader + kMaxCapacity, &bytes) ||
          !parse_ring_file(bytes, &ring)) {
        if (corrupt != nullptr) ++*corrupt;
        unlinkat(dfd.fd, name.c_str(), 0);
      } else {
        std::string().swap(bytes);
        ++n;
        removed = fn(ring);
        if (removed) unlinkat(dfd.fd, name.c_str(), 0);
      }
    }
    if (o != nullptr && removed) --o->left;
  }
  // A dead process whose files are all gone leaves nothing behind.
  for (auto &[id, o] : owners) {
    if (o.lock_fd < 0) continue;
    if (o.left == 0 && o.lock_listed) unlinkat(dfd.fd, (kLockPrefix + id + kLockSuffix).c_str(), 0);
    close(o.lock_fd);
  }
  return n;
}

void ring_files_after_fork_child(const void *keep) {
  // The parent's lock may have been held by a thread that does not exist
  // here; this runs before any other thread does.
  new (&g_mu) std::mutex();
  g_warned_create.store(false, std::memory_order_relaxed);
  g_warned_fork.store(false, std::memory_order_relaxed);
  const pid_t me = getpid();
  // Once per child (the agent's fork handler and a test may both call it).
  if (g_procid.empty() || g_procid_pid == me) return;
  // The inherited lock descriptors share the parent's open file
  // descriptions: closing them leaves the parent's flock alone (an unlock
  // would release it), and lets it go with the parent.
  for (const ProcLock &l : g_locks) close(l.fd);
  g_locks.clear();
  g_procid = random_hex();
  g_procid_pid = me;
  g_next_ring = 0;
  for (RingFile *f = g_files; f != nullptr; f = f->next) {
    if (f->path.empty()) continue;
    f->path.clear();
    const size_t bytes = f->header_bytes + f->capacity;
    const char *what = "";
    // Only the forking thread's ring gets a file: the others belong to
    // threads that do not exist here, and making a file per ring at every
    // fork would cost the host a file's making per thread per fork (and
    // leave the files of children that never emit).
    const int err =
        f == keep ? make_file(f->dir, f->header_bytes, f->capacity, f->base, f, &what) : -1;
    if (err == 0) continue;
    // Private anonymous memory at the same address: the ring's pointers stay
    // valid and none of the child's stores reaches the parent's file.
    // Populated, as an anonymous ring is from the start (SpscRing::init).
    const bool anon =
        mmap(f->base, bytes, PROT_READ | PROT_WRITE,
             MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0) != MAP_FAILED;
    if (err > 0 && !g_warned_fork.exchange(true))
      log_warn("fork child: cannot make a ring file in %s (%s: %s); %s", f->dir.c_str(), what,
               std::strerror(err),
               anon ? "the child's rings use anonymous memory and are lost if it is killed"
                    : "nor map anonymous memory: the child's spans overwrite the parent's ring");
    else if (!anon && !g_warned_fork.exchange(true))
      log_warn(
          "fork child: cannot map anonymous memory over an inherited ring (%s); the child's "
          "spans may overwrite the parent's ring",
          std::strerror(errno));
  }
}

void ring_files_at_exit() {
  std::lock_guard<std::mutex> lk(g_mu);
  // The rings' files first: a recoverer that sees them without their lock
  // file takes the process for dead (it is, but for these last moments).
  for (RingFile *f = g_files; f != nullptr; f = f->next) {
    if (f->path.empty()) continue;
    unlink(f->path.c_str());
    f->path.clear();
  }
  for (const ProcLock &l : g_locks) {
    unlink(l.path.c_str());
    close(l.fd);
  }
  g_locks.clear();
  // Rings made from now on (a thread's first span during exit) are
  // anonymous: their files would have no live owner to remove them.
  g_dir.clear();
}

namespace ring_file_detail {

bool map_ring(size_t capacity, Mapping *out) {
  std::lock_guard<std::mutex> lk(g_mu);
  if (g_dir.empty()) return false;
  auto *f = new (std::nothrow) RingFile();
  if (f == nullptr) return false;
  // A second pair now, distinct from the base: a process killed before its
  // exporter first notes the clock still leaves two points to convert its
  // times with (a cold path: the thread's first span).
  g_last = clock_pair();
  const char *what = "";
  const int err =
      make_file(g_dir, header_bytes_for(g_resource.size()), capacity, nullptr, f, &what);
  if (err != 0) {
    delete f;
    if (!g_warned_create.exchange(true))
      log_warn(
          "cannot make a ring file in %s (%s: %s); rings use anonymous memory and their "
          "spans are lost if the process is killed",
          g_dir.c_str(), what, std::strerror(err));
    return false;
  }
  f->next = g_files;
  g_files = f;
  out->ctl = reinterpret_cast<SpscRing::Control *>(f->base + kOffControl);
  out->buf = f->base + f->header_bytes;
  out->handle = f;
  return true;
}

void unmap_ring(void *handle) {
  auto *f = static_cast<RingFile *>(handle);
  std::lock_guard<std::mutex> lk(g_mu);
  for (RingFile **p = &g_files; *p != nullptr; p = &(*p)->next)
    if (*p == f) {
      *p = f->next;
      break;
    }
  munmap(f->base, f->header_bytes + f->capacity);
  if (!f->path.empty()) unlink(f->path.c_str());
  delete f;
}

std::string ring_path(const void *handle) {
  std::lock_guard<std::mutex> lk(g_mu);
  return static_cast<const RingFile *>(handle)->path;
}

}  // namespace ring_file_detail
}  // namespace otelagent
