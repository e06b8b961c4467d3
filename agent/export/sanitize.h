// Makes a span record fit for OTLP before it is encoded: repairs invalid
// UTF-8, then cuts keys and values to the caps of otelagent.h and applies the
// configured limits (value length in characters, counts of attributes, events
// and links, counting what was dropped), drops tracestates that are not
// printable ASCII, keeps only the last value of a repeated attribute key and
// the last of each text entry. Records built by the span calls rarely need
// it; records passed whole by otelagent_record_span may. Exporter thread only.
#pragma once

#include <string>

#include "core/config.h"
#include "core/record.h"

namespace otelagent {

// True when `r` is already valid UTF-8 and within `lim` with unique keys.
bool record_is_clean(const RecordView &r, const Limits &lim);

// Writes the cleaned copy of `r` to `*out` (well-formed even when `r` is not:
// entries from the first malformed one on are left out). Returns how many
// values were cut to a cap or limit, or dropped as invalid tracestates.
uint32_t record_clean(const RecordView &r, const Limits &lim, std::string *out);

}  // namespace otelagent
