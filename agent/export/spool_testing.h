// Test hooks of the disk spool (spool.cc): fault injection into the segment
// write path and a few knobs that make the tests deterministic and fast. Only
// tests, fuzzers and benchmarks include this header; in production nothing
// arms a hook, and each costs the spool one load of a global per call.
#pragma once

#include <cstdint>
#include <string>

namespace otelagent::testing {

// Arms a one-shot fault for the next segment write of any Spool in the
// process: the write stops after `after_bytes` bytes of the segment file
// (header included).
//  - crash == false: the write then fails with errno `err` (ENOSPC, EROFS...),
//    and the spool takes its ordinary error path; `after_bytes` at or past
//    the file's size fails the rename instead.
//  - crash == true: the process is taken to die right there: append returns
//    kIoError and leaves every file as it is, the temporary file included,
//    and the caller must destroy the Spool next (as the kernel would close
//    its descriptors). `after_bytes` equal to the file's size crashes just
//    before the rename; larger, just after it.
struct SpoolWriteFault {
  int err = 0;
  uint64_t after_bytes = 0;
  bool crash = false;
};
void spool_arm_write_fault(const SpoolWriteFault &f);
void spool_disarm_write_fault();

// How often the directory is rescanned (default 1000 ms; 0: on every call).
void spool_set_rescan_interval_ms(uint32_t ms);

// Called by a claim after it has opened a segment and before it locks it
// (nullptr: none), so a test can act in that window.
void spool_set_after_open_hook(void (*fn)(const std::string &name));

}  // namespace otelagent::testing
