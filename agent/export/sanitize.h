// Makes a span record fit for OTLP before it is encoded: repairs invalid
// UTF-8, applies the configured limits (value length in characters, counts of
// attributes, events and links, counting what was dropped) and keeps only the
// last value of a repeated attribute key. Records built by the span calls
// rarely need it; records passed whole by otelagent_record_span may. Exporter
// thread only.
#pragma once

#include <string>

#include "core/config.h"
#include "core/record.h"

namespace otelagent {

// True when `r` is already valid UTF-8 and within `lim` with unique keys.
bool record_is_clean(const RecordView &r, const Limits &lim);

// Writes the cleaned copy of `r` to `*out`. Returns how many string values
// were truncated to the length limit.
uint32_t record_clean(const RecordView &r, const Limits &lim, std::string *out);

}  // namespace otelagent
