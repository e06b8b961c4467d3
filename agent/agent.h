// The agent's lifecycle as the ffi layer sees it.
#pragma once

#include <otelagent/otelagent.h>

#include <map>
#include <string>
#include <vector>

#include "export/otlp_encoder.h"
#include "runtime.h"

namespace otelagent {

int start(const std::map<std::string, std::string, std::less<>> &settings);
int flush(uint32_t timeout_ms);
int shutdown(uint32_t timeout_ms);
// Adds the process-wide figures to `*s` (which the caller zeroed).
void stats_get(otelagent_stats *s);
// The resource of this process: SDK, host and process attributes, then
// OTEL_RESOURCE_ATTRIBUTES, then OTEL_SERVICE_NAME.
std::vector<ResourceAttr> resource_attributes(const Config &cfg);

}  // namespace otelagent
