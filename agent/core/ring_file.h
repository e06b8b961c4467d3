// Rings backed by files in the spool directory, so that a span that has
// ended survives kill -9 of its process. A host thread's push into such a
// ring is the same plain store as into anonymous memory (the mapping is
// MAP_SHARED, populated and its blocks reserved up front, so a store never
// faults for want of disk); when the process dies the page cache keeps what
// was written, and the next process started with the same directory reads
// the records between the ring's released tail and its published head,
// converts their times with the clock pairs saved in the file's header, and
// spools them.
//
// Liveness is per process: a process's rings are files named after it
// (ring-<procid>-<n>.ring) and it holds an flock on its lock file
// (ringproc-<procid>.lock) through one descriptor for its whole life; a
// ring's own descriptor is closed as soon as it is mapped, so a host with
// many threads spends one descriptor on all of them.
//
// Which side runs what: ring_files_configure and the creation of a backed
// ring are cold paths of a host thread (agent start; a thread's first span);
// ring_files_note_clock and ring_files_recover run on the exporter thread.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/spsc_ring.h"

namespace otelagent {

// Rings of threads registered from now on are backed by files in `dir`
// (empty: anonymous memory, as without a spool). `resource_body` (the
// encoded OTLP Resource) and `base` are written in each file's header.
// A ring whose file cannot be made (no room, read-only) falls back to
// anonymous memory with one warning.
void ring_files_configure(const std::string &dir, std::string_view resource_body, ClockPair base);

// Saves `now` in every backed ring's header: records ended before it are
// converted by interpolation after a crash, later ones by extrapolation.
void ring_files_note_clock(const ClockPair &now);

// The content of a dead process's ring, read with every length bounded.
// Its records are views into one buffer the object owns (a string per record
// cost 4x a file of small records and more); a copy has its own buffer.
struct RecoveredRing {
  std::string resource_body;
  ClockPair base, last;
  std::vector<std::string_view> records;  // packed span records, as pushed

  RecoveredRing() = default;
  RecoveredRing(const RecoveredRing &o) { *this = o; }
  RecoveredRing &operator=(const RecoveredRing &o);
  // A vector's move keeps its buffer: the views stay valid.
  RecoveredRing(RecoveredRing &&) = default;
  RecoveredRing &operator=(RecoveredRing &&) = default;

 private:
  friend bool parse_ring_file(std::string_view file, RecoveredRing *out);
  std::vector<char> storage_;
};

// Every ring file in `dir` whose process is no longer alive (its lock file's
// flock is free, or the lock file is gone): calls fn with what it holds;
// when fn returns true the file is removed. A file that is not a ring file
// of ours, or is damaged, is counted in *corrupt (when not null) and
// removed. A dead process's lock file is removed with its last ring file.
// Two recoverers never both read a file (each takes the file's flock).
// Returns the number of files read.
size_t ring_files_recover(const std::string &dir,
                          const std::function<bool(const RecoveredRing &)> &fn, uint64_t *corrupt);

// In a fork child, before any other thread exists: the child takes a procid
// and lock file of its own (the parent's lock descriptor is closed, which
// leaves the parent's lock alone). The rings the child inherited are shared
// mappings of the parent's files. The ring whose registration is `keep` (the
// forking thread's, nullptr when it has none) is replaced, at the same
// address, by a file of the child's own, empty. Every other one becomes
// private anonymous memory at the same address: those rings belong to
// threads that do not exist in the child, so a thread of the child that
// later adopts one of their states has an anonymous ring, and its spans are
// lost if the child is killed (they are exported as usual otherwise).
void ring_files_after_fork_child(const void *keep);

// At the process's exit, after the final shutdown (the exporter has
// drained and spooled everything): removes this process's ring files and
// its lock file. The mappings stay valid; what is pushed afterwards is not
// recoverable, and rings made afterwards are anonymous. Without this, the
// files of every process that exits normally (fork children included) stay
// until the next process's recovery.
void ring_files_at_exit();

// The ring-file format, for the fuzzer and the tests: parses one whole file.
bool parse_ring_file(std::string_view file, RecoveredRing *out);

// What SpscRing uses (not part of the agent's interface).
namespace ring_file_detail {

struct Mapping {
  SpscRing::Control *ctl = nullptr;  // in the file's header
  uint8_t *buf = nullptr;            // the ring's `capacity` bytes
  void *handle = nullptr;            // for unmap_ring
};

// A ring of `capacity` bytes (a power of two, at least 4 KiB) in a new file
// of the configured directory. false when none is configured, or (after one
// warning) when the file cannot be made: the caller uses anonymous memory.
bool map_ring(size_t capacity, Mapping *out);

// Unmaps and removes the file of a ring being destroyed (tests only: the
// agent's rings live as long as the process).
void unmap_ring(void *handle);

// The path of a ring's file ("" once a fork child has moved it to anonymous
// memory). For the tests.
std::string ring_path(const void *handle);

}  // namespace ring_file_detail

}  // namespace otelagent
