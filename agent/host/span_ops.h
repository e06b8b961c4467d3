// The calls host threads make to build and queue spans (the hot path). They
// translate nothing from C; the ffi layer forwards to them.
#pragma once

#include <otelagent/otelagent.h>

namespace otelagent {

int span_start(const char *name, size_t name_len, const otelagent_span_options *opts,
               otelagent_span **out);
int span_set_attr(otelagent_span *span, const otelagent_attr *attr);
int span_add_event(otelagent_span *span, const char *name, size_t name_len, uint64_t time,
                   const otelagent_attr *attrs, size_t attr_count);
int span_set_status(otelagent_span *span, int32_t code, const char *msg, size_t msg_len);
int span_set_name(otelagent_span *span, const char *name, size_t name_len);
int span_get_context(const otelagent_span *span, otelagent_span_context *out);
int span_get_tracestate(const otelagent_span *span, char *buf, size_t cap, size_t *written);
int span_is_recording(const otelagent_span *span);
int span_end(otelagent_span *span, uint64_t end_time);
int span_context_new(const otelagent_span_context *parent, otelagent_span_context *out);
int record_span(const void *record, size_t len);

}  // namespace otelagent
