// The disk spool: a directory of segments, each one encoded and compressed
// export request (a batch) with a checksum, written so that a crash at any
// point leaves either a whole, verifiable segment or none. It is the export
// queue's overflow and its memory across restarts: batches the collector has
// not acknowledged are written here and sent oldest-first when it answers,
// by this process or by the next one started with the same directory.
//
// Exporter thread only (one Spool per exporter). Several processes may share
// a directory: a segment is claimed by holding an exclusive flock on its open
// file, so no two processes send it at once, and a claim dies with its
// process (kill -9 included).
//
// Every file here is outside input: a segment is read with every length
// bounded and its checksums verified; a bad one is counted, removed and
// skipped, never trusted.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "export/compressor.h"

namespace otelagent {

// Process-wide spool counters: written by the exporter thread, read by
// statistics (relaxed).
struct SpoolCounters {
  std::atomic<uint64_t> spans_spooled{0};          // spans written in segments
  std::atomic<uint64_t> spans_dropped_full{0};     // oldest dropped at the size cap, or no room
  std::atomic<uint64_t> spans_dropped_corrupt{0};  // in segments whose header still read
  std::atomic<uint64_t> spans_dropped_gone{0};     // own segments removed by someone else
  std::atomic<uint64_t> segments_corrupt{0};       // torn or corrupt segments removed
  std::atomic<uint64_t> spans_dropped_io{0};  // could not be written (disk full, read-only, gone)
  std::atomic<uint64_t> bytes{0};             // segment bytes in the directory (last known)
  std::atomic<uint64_t> oldest_unix_ns{0};    // creation time of the oldest segment; 0: none
  void reset();
};
SpoolCounters &spool_counters();

// One segment, while this process holds it claimed.
struct SpoolSegment {
  std::string name;     // file name inside the directory
  std::string payload;  // the compressed ExportTraceServiceRequest
  Compression encoding = Compression::kNone;
  uint32_t spans = 0;
  uint64_t created_unix_ns = 0;
  int fd = -1;  // open and flock'ed while claimed
};

class Spool {
 public:
  enum class Append { kOk, kNoRoom, kIoError };

  Spool() = default;
  ~Spool();  // ends every claim and this writer's lock (files stay)
  Spool(const Spool &) = delete;
  Spool &operator=(const Spool &) = delete;

  // Creates the directory (mode 0700) if missing, checks that it is a
  // directory this process can write, takes a writer identity (a random id
  // and a lock file flock'ed for as long as this Spool is open), removes
  // temporary files left by dead writers and indexes the segments there.
  // nullptr on success, else a static description of what is wrong (the
  // caller logs it and runs without a spool).
  const char *open(const std::string &dir, uint64_t max_bytes);
  bool is_open() const { return dir_fd_ >= 0; }

  // Writes one segment of this writer (a temporary file, mode 0600, renamed
  // into place once whole) and sets *name. When the directory would then
  // hold more than max_bytes, the oldest segments nobody holds claimed are
  // removed first, this writer's included (their spans counted in
  // spans_dropped_full). kNoRoom: not written, nothing counted, because the
  // segment alone is larger than max_bytes or every other segment is held
  // claimed (the caller keeps the batch in memory). kIoError: nothing was written
  // (disk full, directory read-only or removed: it is re-created once); the
  // spans are not counted (the caller decides what happens to them); one
  // warning per cause.
  Append append(std::string_view payload, Compression encoding, uint32_t spans, std::string *name);

  // Claims one of this writer's segments by name, reads and verifies it.
  // kBusy: not now (held for an instant by another process, no descriptor
  // left...): try again later. kCounted: gone, and its spans counted by the
  // spool (dropped at the cap, or corrupt and removed). kVanished: removed
  // by someone else (the directory deleted, say): counted by nobody.
  enum class OwnClaim { kOk, kBusy, kCounted, kVanished };
  OwnClaim claim_own(const std::string &name, SpoolSegment *out);
  bool claim(const std::string &name, SpoolSegment *out);  // claim_own() == kOk
  // Claims the oldest segment of a writer that is no longer alive (its lock
  // file is not held: it exited or was killed), reads and verifies it.
  // Corrupt ones are counted, removed and skipped. False when there is none.
  bool claim_orphan(SpoolSegment *out);
  // Delivered, or dropped for good: removes the file and ends the claim.
  void remove(SpoolSegment *s);
  // Not delivered: ends the claim; the file stays for a later claim.
  void release(SpoolSegment *s);

  // Segments of dead writers nobody holds, as last seen (the directory is
  // rescanned at most once a second). Claims of other processes are not
  // seen: their segments count until removed.
  size_t orphans();

 private:
  // A segment file as last seen in the directory (the index, keyed by file
  // name: name order is creation order).
  struct Entry {
    uint64_t size = 0;
    uint64_t writer = 0;
    uint64_t created_unix_ns = 0;
  };
  enum class Claimed { kOk, kGone, kHeld, kCorrupt };

  void close_all();
  static bool make_lock(int dir, int *lock_fd, uint64_t *writer);
  bool reattach(bool create);
  void cleanup_dead();
  void rescan();
  void maybe_rescan();
  bool writer_alive(uint64_t writer);
  bool make_room(uint64_t size);
  bool drop_oldest_unheld(uint64_t size);
  int write_segment(std::string_view payload, Compression encoding, uint32_t spans,
                    uint64_t created, uint32_t seq, const std::string &name, bool *crashed);
  Claimed claim_file(const std::string &name, SpoolSegment *out);
  void forget(const std::string &name);
  bool ours(const SpoolSegment *s, size_t *at) const;
  bool holds(const std::string &name) const;
  void publish() const;
  friend void spool_after_fork_child();

  int dir_fd_ = -1;
  int lock_fd_ = -1;  // this writer's lock file, flock'ed
  std::string path_;
  uint64_t max_bytes_ = 0;
  uint64_t writer_ = 0;
  std::vector<uint64_t> ids_;          // every id this writer has had
  std::set<std::string> dropped_own_;  // own segments the cap dropped, until claimed
  uint32_t seq_ = 0;
  uint64_t last_created_ns_ = 0;
  uint64_t scanned_ms_ = 0;  // monotonic time of the last rescan
  std::map<std::string, Entry> index_;
  uint64_t index_bytes_ = 0;
  std::unordered_map<uint64_t, bool> alive_;         // writers seen since the last rescan
  std::vector<std::pair<int, std::string>> claims_;  // descriptor and name of each claim
};

// In a fork child: closes every descriptor the spool layer holds (the
// parent's claims and writer lock stay the parent's: flock belongs to the
// open file, which the parent still has open).
void spool_after_fork_child();

// The segment format, exposed for the fuzzer and the tests. Parses a whole
// segment file; on success sets the fields and points *payload into `file`.
bool parse_segment(std::string_view file, Compression *encoding, uint32_t *spans,
                   uint64_t *created_unix_ns, std::string_view *payload);

}  // namespace otelagent
