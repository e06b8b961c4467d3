// The console exporter: finished traces printed to stderr as an indented
// tree with durations, attributes and events, for local work without a
// collector. Exporter thread only.
#pragma once

#include <string>
#include <vector>

#include "core/record.h"

namespace otelagent {

// Formats `spans` (one batch) as text: spans grouped by trace, children
// under their parent when both are in the batch.
std::string console_format(const std::vector<RecordView> &spans);

}  // namespace otelagent
