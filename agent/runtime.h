// What host threads need to know about a started agent. A Runtime is built
// by otelagent_start() and published once; its plain fields are never
// modified and it is never freed (a restart publishes a new one), so the hot
// path may read it without a lock. Shutdown releases only its strings, which
// no host thread reads (agent.cc, retire_runtime).
#pragma once

#include <atomic>
#include <cstdint>

#include "core/clock.h"
#include "core/config.h"

namespace otelagent {

struct Runtime {
  Config cfg;
  bool disabled = false;
  uint64_t ratio_bound = 0;               // traceidratio: sample when low 64 bits < bound
  bool ratio_all = true;                  // ratio 1.0 samples everything
  uint32_t wake_every = 512;              // spans a thread queues before it wakes the exporter
  bool use_tsc = false;                   // span times from the TSC (see core/clock.h)
  ClockPair clock_base;                   // the (TSC, wall) pair taken at start
  const Runtime *retired_next = nullptr;  // list of runtimes retired by shutdown
};

// The started runtime, or nullptr when the agent is stopped.
const Runtime *runtime();

// Cold paths that span end takes into the lifecycle code.
void exporter_ensure_started();
void exporter_wake();
bool exporter_live();

}  // namespace otelagent
