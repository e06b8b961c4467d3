/*
 * libotelagent: an embedded, asynchronous OpenTelemetry tracing agent.
 *
 * This is the whole public C ABI. It is C99-clean and usable from C, C++ and
 * ctypes. Conventions, true of every declaration below unless it says otherwise:
 *
 *  - Every function that can fail returns an `int` status: 0 (OTELAGENT_OK) or
 *    one of the negative OTELAGENT_E_* values listed in OTELAGENT_STATUS_MAP.
 *    Their numbers are pinned forever; otelagent_strerror() describes them.
 *  - Every entry point may be called from any thread, before otelagent_start(),
 *    after otelagent_shutdown(), and with NULL pointers or bad lengths: it then
 *    returns a status (or does nothing) and never crashes, throws or aborts.
 *  - Strings cross as (pointer, length) pairs and need no terminating NUL. They
 *    are copied before the call returns; the caller keeps ownership. A NULL
 *    pointer with a non-zero length is OTELAGENT_E_INVALID. A length of
 *    OTELAGENT_NTS ((size_t)-1) means "NUL-terminated": the string is read up
 *    to its NUL, never further than the argument's documented maximum plus
 *    one byte (the byte that tells a NUL from an over-long string). Every
 *    string argument has a maximum (OTELAGENT_MAX_*): span values longer than
 *    theirs are truncated (and counted), other inputs longer than theirs are
 *    refused with OTELAGENT_E_TOO_LONG. No call reads more of a caller's buffer
 *    than its maximum (plus that one byte), whatever length it is given. Invalid UTF-8 is repaired
 *    (each bad sequence becomes U+FFFD) on the exporter thread.
 *  - "Hot path" marks the calls a host thread makes while emitting spans: they
 *    take no lock, allocate no memory and make no system call other than a vDSO
 *    clock read (see otelagent_span_end for the one exception, a coalesced
 *    wake-up of the exporter at most once per batch of spans per thread).
 *  - No C enum type appears in a signature or struct.
 *
 * How the structs grow (ABI policy):
 *  - Structs passed alone by pointer that may grow (otelagent_span_options,
 *    otelagent_stats) start with `struct_size`, set by the caller to
 *    sizeof(the struct) it was compiled with. New fields are only ever added
 *    at the end; the library reads (or writes) only the first struct_size
 *    bytes and treats missing fields as zero, so an older caller keeps working
 *    with a newer library, and a newer caller works with an older library as
 *    long as it leaves the new fields zero (or checks otelagent_abi_version()).
 *  - Structs passed in arrays (otelagent_attr, otelagent_link,
 *    otelagent_header) and otelagent_span_context are frozen: their size and
 *    layout never change within an ABI major. Their `reserved` fields must be
 *    zero; a later minor version may give a reserved field a meaning whose
 *    zero value is today's behaviour. Anything more comes as a new type code,
 *    a new options field or a new function.
 *  - Adding functions, statuses, record entry tags (see the record format)
 *    and trailing fields as above is a minor change (OTELAGENT_ABI_MINOR);
 *    anything else bumps OTELAGENT_ABI_MAJOR, which is the SONAME's number.
 */
#ifndef OTELAGENT_OTELAGENT_H
#define OTELAGENT_OTELAGENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(OTELAGENT_BUILDING_LIBRARY)
#define OTELAGENT_API __attribute__((visibility("default")))
#else
#define OTELAGENT_API
#endif

/* ------------------------------------------------------------------ */
/* Versions                                                            */
/* ------------------------------------------------------------------ */

#define OTELAGENT_VERSION_MAJOR 0
#define OTELAGENT_VERSION_MINOR 2
#define OTELAGENT_VERSION_PATCH 0
#define OTELAGENT_VERSION_STRING "0.2.0"
/** ABI major (the SONAME number) and minor (additions only). ABI 2 (0.2):
 *  span handles are validated tokens, the span context is 32 bytes without
 *  the tracestate, the record format is version 2, OTELAGENT_NTS and
 *  OTELAGENT_E_TOO_LONG, log routing. */
#define OTELAGENT_ABI_MAJOR 2
#define OTELAGENT_ABI_MINOR 1

/*! otelagent_version() :
 *  @return the library's version string, e.g. "0.1.0" (static storage).
 *  Since 0.1. */
OTELAGENT_API const char *otelagent_version(void);

/*! otelagent_abi_version() :
 *  @return (ABI major << 16) | ABI minor of the loaded library. A caller built
 *  against this header should check that the major equals OTELAGENT_ABI_MAJOR
 *  and the minor is at least OTELAGENT_ABI_MINOR. Since 0.1. */
OTELAGENT_API uint32_t otelagent_abi_version(void);

/* ------------------------------------------------------------------ */
/* Status codes                                                        */
/* ------------------------------------------------------------------ */

/* X(number, NAME, description): the one list every status comes from. */
#define OTELAGENT_STATUS_MAP(X)                                              \
  X(0, OK, "success")                                                        \
  X(-1, INVALID, "invalid argument (NULL pointer, bad length or bad value)") \
  X(-2, NOT_STARTED, "the agent is not started")                             \
  X(-3, DISABLED, "the agent is disabled by configuration")                  \
  X(-4, ALREADY_STARTED, "the agent is already started")                     \
  X(-5, RING_FULL, "span dropped: the span ring is full")                    \
  X(-6, SPAN_LIMIT, "span not started: the open-span limit is reached")      \
  X(-7, NO_SPACE, "the output buffer is too small")                          \
  X(-8, TIMEOUT, "the operation timed out")                                  \
  X(-9, BAD_RECORD, "malformed span record")                                 \
  X(-10, NOT_FOUND, "no valid header value was found")                       \
  X(-11, ENDED, "the span has already ended")                                \
  X(-12, INTERNAL, "internal error (logged)")                                \
  X(-13, UNKNOWN_KEY, "unknown configuration key")                           \
  X(-14, TOO_LONG, "an input is longer than the documented maximum")         \
  X(-15, EXPORTER_DOWN, "the exporter could not be started (logged); spans stay queued")

#define OTELAGENT_STATUS_DEFINE_(num, name, desc) OTELAGENT_E_##name = (num),
enum { OTELAGENT_STATUS_MAP(OTELAGENT_STATUS_DEFINE_) OTELAGENT_E_LAST_ = -16 };
#undef OTELAGENT_STATUS_DEFINE_
#define OTELAGENT_OK OTELAGENT_E_OK

/** A string length meaning "NUL-terminated" (see the conventions above). */
#define OTELAGENT_NTS ((size_t)-1)

/*! otelagent_strerror() : @return a static description of `status`
 *  ("unknown status" for numbers not in the list). */
OTELAGENT_API const char *otelagent_strerror(int status);
/*! otelagent_status_name() : @return the status's name, e.g. "RING_FULL". */
OTELAGENT_API const char *otelagent_status_name(int status);

/* ------------------------------------------------------------------ */
/* Lifecycle and configuration                                         */
/* ------------------------------------------------------------------ */

/** Opaque configuration object: a set of OTEL_* style key/value settings. */
typedef struct otelagent_config otelagent_config;

/*! otelagent_config_new() :
 *  Creates an empty configuration (every setting at its default).
 *  @return a new object owned by the caller (free it with
 *  otelagent_config_free), or NULL when out of memory. Not hot path. */
OTELAGENT_API otelagent_config *otelagent_config_new(void);

/*! otelagent_config_free() : destroys `cfg`; NULL is accepted. */
OTELAGENT_API void otelagent_config_free(otelagent_config *cfg);

/** Longest configuration key and value, in bytes. */
#define OTELAGENT_CONFIG_KEY_MAX 256
#define OTELAGENT_CONFIG_VALUE_MAX 65536

/*! otelagent_config_set() :
 *  Sets one setting. Keys are the environment variable names in the README's
 *  configuration table (e.g. "OTEL_SERVICE_NAME", "OTEL_BSP_SCHEDULE_DELAY");
 *  values are parsed exactly as the environment's are, when the agent starts
 *  (a bad value is then warned about once and replaced by the default).
 *  `key` holds at most OTELAGENT_CONFIG_KEY_MAX (256) bytes and `value` at
 *  most OTELAGENT_CONFIG_VALUE_MAX (65536); a length of SIZE_MAX means the
 *  string is NUL-terminated, and no more than the maximum plus one byte is
 *  read looking for the NUL. `value` may be NULL when `value_len` is 0.
 *  @return OTELAGENT_OK, OTELAGENT_E_INVALID (NULL argument),
 *  OTELAGENT_E_TOO_LONG (a key or value longer than its maximum), or
 *  OTELAGENT_E_UNKNOWN_KEY.
 *  Not thread-safe on one object. */
OTELAGENT_API int otelagent_config_set(otelagent_config *cfg, const char *key, size_t key_len,
                                       const char *value, size_t value_len);

/*! otelagent_config_load_env() :
 *  Copies every known variable present in the process environment into `cfg`
 *  (values already set are overwritten). A value longer than
 *  OTELAGENT_CONFIG_VALUE_MAX is ignored with one warning on stderr, here and
 *  in otelagent_start(NULL). */
OTELAGENT_API int otelagent_config_load_env(otelagent_config *cfg);

/*! otelagent_start() :
 *  Starts the agent with `cfg` (copied; the caller keeps ownership), or from
 *  the environment when `cfg` is NULL. No thread is started until the first
 *  span ends. After a fork the child's agent restarts by itself.
 *  @return OTELAGENT_OK, OTELAGENT_E_DISABLED (OTEL_SDK_DISABLED=true or
 *  OTEL_TRACES_EXPORTER=none: every span call is then a cheap no-op), or
 *  OTELAGENT_E_ALREADY_STARTED. Not hot path. */
OTELAGENT_API int otelagent_start(const otelagent_config *cfg);

/*! otelagent_flush() :
 *  Blocks until every span that ended before the call has been exported (or
 *  dropped and counted), or until `timeout_ms` has passed. Safe from any
 *  thread, also while another thread shuts the agent down.
 *  @return OTELAGENT_OK; OTELAGENT_E_TIMEOUT; OTELAGENT_E_NOT_STARTED (also
 *  when a shutdown ended the agent during the wait); OTELAGENT_E_EXPORTER_DOWN
 *  when the exporter thread could not be started (e.g. no file descriptor or
 *  thread left; logged once): spans then stay queued in the per-thread rings
 *  (dropped and counted when full), and the start is tried again by this
 *  call, by shutdown, and at most once a second as spans are queued. */
OTELAGENT_API int otelagent_flush(uint32_t timeout_ms);

/*! otelagent_shutdown() :
 *  Flushes for at most `timeout_ms`, then stops the exporter thread; spans
 *  still queued then are dropped and counted. Returns within `timeout_ms` +
 *  250 ms in every case: an exporter thread that does not end in time (e.g.
 *  blocked in the network stack) is left behind, never waited for. New spans
 *  after it get OTELAGENT_E_NOT_STARTED; a span still open then may still be
 *  set, and ending it before the next start drops and counts it
 *  (spans_dropped_shutdown, OTELAGENT_E_NOT_STARTED), its handle released. The agent may be started
 *  again. Also run automatically at process exit with
 *  OTELAGENT_SHUTDOWN_TIMEOUT_MS.
 *  @return OTELAGENT_OK, OTELAGENT_E_TIMEOUT (not all flushed in time),
 *  OTELAGENT_E_NOT_STARTED, OTELAGENT_E_EXPORTER_DOWN (the exporter could
 *  not be started to flush; spans stay queued for a later start). */
OTELAGENT_API int otelagent_shutdown(uint32_t timeout_ms);

/* ------------------------------------------------------------------ */
/* Span contexts and attributes                                        */
/* ------------------------------------------------------------------ */

/** The longest W3C tracestate kept (in characters, the spec's 512). */
#define OTELAGENT_TRACESTATE_MAX 512

/* otelagent_span_context.sampling */
#define OTELAGENT_SAMPLING_DECIDED 0  /**< trace_flags bit 0 is the decision */
#define OTELAGENT_SAMPLING_DEFERRED 1 /**< no decision yet (X-Ray Sampled=?) */

/** A span's identity as it propagates: 32 bytes of plain data, frozen (see
 *  "How the structs grow"); copy it freely. The W3C tracestate is not part of
 *  it: it travels as a separate string (otelagent_span_options.parent_tracestate,
 *  otelagent_link.tracestate, otelagent_span_get_tracestate(), the extract and
 *  inject calls), so a context costs little to pass around. */
typedef struct otelagent_span_context {
  uint8_t trace_id[16];
  uint8_t span_id[8];
  uint8_t trace_flags; /**< W3C flags: bit 0 sampled, bit 1 random. */
  uint8_t is_remote;   /**< 1 when extracted from a carrier. */
  uint8_t sampling;    /**< OTELAGENT_SAMPLING_*: a parent whose upstream left
                            the decision open is sampled by the local root
                            sampler, as if it had no parent (same trace id) */
  uint8_t reserved0;   /**< zero */
  uint32_t reserved;   /**< zero */
} otelagent_span_context;

/** A string as (pointer, length). */
typedef struct otelagent_str {
  const char *ptr;
  size_t len;
} otelagent_str;

/* Attribute value types (otelagent_attr.type and record entry value types). */
#define OTELAGENT_TYPE_STRING 1
#define OTELAGENT_TYPE_BOOL 2
#define OTELAGENT_TYPE_INT64 3
#define OTELAGENT_TYPE_DOUBLE 4
#define OTELAGENT_TYPE_BYTES 5
#define OTELAGENT_TYPE_STRING_ARRAY 6
#define OTELAGENT_TYPE_BOOL_ARRAY 7
#define OTELAGENT_TYPE_INT64_ARRAY 8
#define OTELAGENT_TYPE_DOUBLE_ARRAY 9

/** One attribute. `type` selects the union member; arrays point at `count`
 *  elements of otelagent_str, uint8_t (bool), int64_t or double. */
typedef struct otelagent_attr {
  const char *key;
  size_t key_len;
  uint32_t type;
  uint32_t reserved; /**< zero */
  union {
    otelagent_str str; /**< STRING and BYTES */
    int64_t i64;
    double f64;
    uint8_t boolean;
    struct {
      const void *items;
      size_t count;
    } array;
  } value;
} otelagent_attr;

/** A link to another span, with attributes. Frozen (passed in arrays). */
typedef struct otelagent_link {
  const otelagent_span_context *context;
  otelagent_str tracestate; /**< the linked span's W3C tracestate, may be empty;
                                 an invalid one is dropped */
  const otelagent_attr *attrs;
  size_t attr_count;
} otelagent_link;

/* Span kinds (OTLP numbering). */
#define OTELAGENT_KIND_UNSPECIFIED 0
#define OTELAGENT_KIND_INTERNAL 1
#define OTELAGENT_KIND_SERVER 2
#define OTELAGENT_KIND_CLIENT 3
#define OTELAGENT_KIND_PRODUCER 4
#define OTELAGENT_KIND_CONSUMER 5

/* Status codes of a span (OTLP numbering). */
#define OTELAGENT_STATUS_UNSET 0
#define OTELAGENT_STATUS_OK 1
#define OTELAGENT_STATUS_ERROR 2

/* ------------------------------------------------------------------ */
/* Spans                                                               */
/* ------------------------------------------------------------------ */

/** Handle of a started span: an opaque token, never dereferenced by the
 *  caller nor trusted by the library. It is valid from otelagent_span_start()
 *  until otelagent_span_end(); afterwards every call with it returns
 *  OTELAGENT_E_ENDED and touches nothing, even when its storage has been
 *  reused by another span (each reuse changes a 32-bit generation carried in
 *  the token). A value that was never a handle returns OTELAGENT_E_INVALID or
 *  OTELAGENT_E_ENDED. One thread at a time may use a span; it may be handed
 *  to, and ended on, another thread (the hand-off must be a happens-before,
 *  e.g. a queue or a lock, as for any data). */
typedef struct otelagent_span otelagent_span;

/** Optional arguments of otelagent_span_start(). Zero-initialise, set
 *  struct_size = sizeof(otelagent_span_options), fill what you need. Grows
 *  at the end (see "How the structs grow"). */
typedef struct otelagent_span_options {
  uint32_t struct_size;
  int32_t kind;                         /**< OTELAGENT_KIND_*; 0 means INTERNAL */
  const otelagent_span_context *parent; /**< NULL: a new root (new trace) */
  otelagent_str scope_name;             /**< instrumentation scope */
  otelagent_str scope_version;
  const otelagent_link *links;
  size_t link_count;
  const otelagent_attr *attrs; /**< initial attributes */
  size_t attr_count;
  uint64_t start_time_unix_nano;   /**< 0: now */
  otelagent_str parent_tracestate; /**< the parent's W3C tracestate, carried
                                        into the new span; an invalid one is
                                        dropped */
} otelagent_span_options;

/*! otelagent_span_start() :
 *  Starts a span named `name` and stores its handle in `*out`. The sampler
 *  (OTEL_TRACES_SAMPLER) decides whether it records; a span that does not
 *  record still has a context to propagate, and its setters do nothing.
 *  Hot path. `opts` may be NULL.
 *  The status and the handle always agree: a span is started, and `*out` is
 *  set, only with OTELAGENT_OK; with any other status `*out` is NULL and
 *  nothing is left open. Invalid options, links or initial attributes (NULL
 *  with a count, a bad type, a NULL key...) are OTELAGENT_E_INVALID: check them
 *  before starting rather than relying on partial spans.
 *  A parent_tracestate over OTELAGENT_TRACESTATE_MAX is dropped, not cut.
 *  A parent_tracestate or link tracestate that is not a valid W3C list is
 *  dropped too (it must not be passed on).
 *  @return OTELAGENT_OK; OTELAGENT_E_INVALID; OTELAGENT_E_TOO_LONG (more than
 *  OTELAGENT_MAX_ITEMS links or attributes); OTELAGENT_E_NOT_STARTED /
 *  OTELAGENT_E_DISABLED; OTELAGENT_E_SPAN_LIMIT when this thread already
 *  holds OTELAGENT_MAX_OPEN_SPANS_PER_THREAD open spans (counted);
 *  OTELAGENT_E_INTERNAL when the thread cannot get span storage (out of
 *  memory, or the thread is past its exit clean-up: counted in
 *  spans_dropped_thread_exit). */
OTELAGENT_API int otelagent_span_start(const char *name, size_t name_len,
                                       const otelagent_span_options *opts, otelagent_span **out);

/*! otelagent_span_set_attr() :
 *  Adds an attribute. Over the internal caps (README) a value is truncated at
 *  a UTF-8 boundary and an attribute past the count cap is dropped; both are
 *  recorded in the span (dropped_attributes_count). Hot path.
 *  @return OTELAGENT_OK (also when truncated or not recording),
 *  OTELAGENT_E_INVALID, OTELAGENT_E_ENDED. */
OTELAGENT_API int otelagent_span_set_attr(otelagent_span *span, const otelagent_attr *attr);
/** Shorthands of otelagent_span_set_attr() for the scalar types. Hot path. */
OTELAGENT_API int otelagent_span_set_str(otelagent_span *span, const char *key, size_t key_len,
                                         const char *value, size_t value_len);
OTELAGENT_API int otelagent_span_set_int64(otelagent_span *span, const char *key, size_t key_len,
                                           int64_t value);
OTELAGENT_API int otelagent_span_set_double(otelagent_span *span, const char *key, size_t key_len,
                                            double value);
OTELAGENT_API int otelagent_span_set_bool(otelagent_span *span, const char *key, size_t key_len,
                                          int value);

/*! otelagent_span_add_event() :
 *  Adds an event at `time_unix_nano` (0: now) with `attr_count` attributes.
 *  Hot path. @return as otelagent_span_set_attr(), or OTELAGENT_E_TOO_LONG
 *  (more than OTELAGENT_MAX_ITEMS attributes). */
OTELAGENT_API int otelagent_span_add_event(otelagent_span *span, const char *name, size_t name_len,
                                           uint64_t time_unix_nano, const otelagent_attr *attrs,
                                           size_t attr_count);

/*! otelagent_span_record_exception() :
 *  Adds an "exception" event with exception.type, exception.message and
 *  exception.stacktrace (each omitted when empty). It does not change the
 *  status. Hot path. */
OTELAGENT_API int otelagent_span_record_exception(otelagent_span *span, const char *type,
                                                  size_t type_len, const char *message,
                                                  size_t message_len, const char *stacktrace,
                                                  size_t stacktrace_len, uint64_t time_unix_nano);

/*! otelagent_span_set_status() :
 *  Sets the status: OTELAGENT_STATUS_UNSET, _OK or _ERROR; the message is kept
 *  only with _ERROR. Once OK is set the status cannot change (as the
 *  OpenTelemetry API requires). Hot path. */
OTELAGENT_API int otelagent_span_set_status(otelagent_span *span, int32_t code, const char *message,
                                            size_t message_len);

/*! otelagent_span_set_name() :
 *  Renames the span: the name is replaced in place, so renaming any number of
 *  times takes no more room than the longest name. Hot path.
 *  @return OTELAGENT_OK, OTELAGENT_E_INVALID, OTELAGENT_E_ENDED. */
OTELAGENT_API int otelagent_span_set_name(otelagent_span *span, const char *name, size_t name_len);

/*! otelagent_span_get_context() : copies the span's context to `*out`.
 *  @return OTELAGENT_OK, OTELAGENT_E_INVALID, OTELAGENT_E_ENDED. Hot path. */
OTELAGENT_API int otelagent_span_get_context(const otelagent_span *span,
                                             otelagent_span_context *out);

/*! otelagent_span_get_tracestate() :
 *  Copies the span's W3C tracestate (possibly empty; at most
 *  OTELAGENT_TRACESTATE_MAX bytes) to `buf` and its length to `*written`
 *  (a NUL is added when there is room). Since ABI 2.0.
 *  @return OTELAGENT_OK, OTELAGENT_E_NO_SPACE (`*written` = the length
 *  needed), OTELAGENT_E_INVALID, OTELAGENT_E_ENDED. */
OTELAGENT_API int otelagent_span_get_tracestate(const otelagent_span *span, char *buf, size_t cap,
                                                size_t *written);

/*! otelagent_span_is_recording() : @return 1 if the span records, else 0. */
OTELAGENT_API int otelagent_span_is_recording(const otelagent_span *span);

/*! otelagent_span_end() :
 *  Ends the span at `end_time_unix_nano` (0: now), hands it to the exporter
 *  and invalidates the handle. May be called on any thread. Hot path; the
 *  first span ended in a process (or after a fork) starts the exporter
 *  thread, and a thread that has queued a batch's worth of spans since the
 *  last wake-up wakes the exporter (one eventfd write, coalesced).
 *  @return OTELAGENT_OK, OTELAGENT_E_RING_FULL (dropped and counted),
 *  OTELAGENT_E_ENDED, OTELAGENT_E_INVALID. */
OTELAGENT_API int otelagent_span_end(otelagent_span *span, uint64_t end_time_unix_nano);

/* ------------------------------------------------------------------ */
/* One-crossing record call                                            */
/* ------------------------------------------------------------------ */

/*! otelagent_span_context_new() :
 *  Makes the context of a new span: a fresh span id, the trace id of `parent`
 *  (or a fresh one when `parent` is NULL or invalid), and the sampler's
 *  decision in trace_flags bit 0 (`sampling` = DECIDED). The caller carries
 *  the parent's tracestate over itself (a TRACESTATE record entry).
 *  Callers of otelagent_record_span() use it to get ids and the decision in
 *  one call; a span sampled out should not be recorded. Hot path. */
OTELAGENT_API int otelagent_span_context_new(const otelagent_span_context *parent,
                                             otelagent_span_context *out);

/*
 * Span record format, version 2 (OTELAGENT_RECORD_VERSION). All integers are
 * little-endian; there is no alignment requirement. A record is a header of
 * `header_len` bytes followed by entries, `total_len` bytes in all.
 *
 *   offset size  field
 *   0      4     total_len (header + entries), at most OTELAGENT_RECORD_MAX
 *   4      2     version (= 2)
 *   6      2     header_len: where the entries start; this version's header
 *                is OTELAGENT_RECORD_HEADER_SIZE (80) bytes
 *   8      1     kind (OTELAGENT_KIND_*)
 *   9      1     status code (OTELAGENT_STATUS_*)
 *   10     2     reserved: zero
 *   12     4     flags, as OTLP Span.flags: bits 0-7 W3C trace flags, bit 8
 *                "parent remoteness known", bit 9 "parent is remote"
 *   16     16    trace_id (not all zero)
 *   32     8     span_id (not all zero)
 *   40     8     parent_span_id (all zero: a root span)
 *   48     8     start_time_unix_nano
 *   56     8     end_time_unix_nano
 *   64     4     dropped_attributes_count
 *   68     4     dropped_events_count
 *   72     4     dropped_links_count
 *   76     4     reserved: zero
 *
 * Each entry: an 8-byte entry header, then `key_len` key bytes, then
 * `value_len` value bytes:
 *   u8 tag (OTELAGENT_REC_*), u8 value type (OTELAGENT_TYPE_*),
 *   u16 key_len, u32 value_len.
 * Values: STRING/BYTES raw bytes; BOOL 1 byte; INT64 and DOUBLE 8 bytes;
 * INT64_ARRAY/DOUBLE_ARRAY 8 bytes an item; BOOL_ARRAY 1 byte an item;
 * STRING_ARRAY a sequence of (u32 length, bytes).
 * Tags:
 *   NAME, SCOPE_NAME, SCOPE_VERSION, TRACESTATE, STATUS_MESSAGE: type STRING,
 *     no key, value = the string (NAME is required; when one appears more
 *     than once, the last counts; the status message counts only with
 *     status ERROR);
 *   ATTR: key + typed value, a span attribute;
 *   EVENT: key = event name, type INT64, value = time_unix_nano;
 *     EVENT_ATTR entries that follow belong to it;
 *   LINK: type BYTES, value = trace_id[16], span_id[8], u32 OTLP link flags,
 *     then the link's tracestate; LINK_ATTR entries that follow belong to it;
 *   GROUP_DROPPED: type INT64, no key, value = a count of attributes dropped
 *     from the EVENT or LINK it follows (after that group's attributes);
 *   128..255 (from OTELAGENT_REC_FIRST_EXTENSION): optional extensions. A
 *     library that does not know such a tag checks only that the entry lies
 *     within the record and skips it; the entries around it are read as if
 *     it were not there (an EVENT_ATTR after it still belongs to the EVENT
 *     before it). Any other tag it does not know (below 128) makes the whole
 *     record OTELAGENT_E_BAD_RECORD.
 * On the exporter thread, invalid UTF-8 is repaired, then keys, event names
 * and scope names are cut to OTELAGENT_MAX_KEY_BYTES and other strings and
 * arrays to OTELAGENT_MAX_VALUE_BYTES (at a character boundary); a tracestate,
 * of the span or of a link, that is not printable ASCII or is longer than
 * OTELAGENT_TRACESTATE_MAX is dropped. Each cut or drop is counted in
 * values_truncated and in the span's otelagent.truncated_values attribute.
 *
 * How the format grows. `version` changes only with an incompatible layout,
 * which is also an ABI major change: a library accepts exactly its own
 * OTELAGENT_RECORD_VERSION. Within a version, an ABI minor may add
 *  - header fields, after the last one, raising header_len. A library accepts
 *    any header_len from 80 up to total_len and ignores the header bytes it
 *    does not know; a new field's zero value means what a record without it
 *    (a shorter header) means;
 *  - entry tags: from 128 up when a library may ignore the entry, below 128
 *    when the span would be wrong without it.
 * Hence:
 *  - an older binding with a newer library (same ABI major): its records
 *    stay valid and mean the same (missing header fields read as absent);
 *  - a newer binding with an older library: the library ignores the header
 *    fields and extension tags it does not know, so a binding may always
 *    send them; a required tag (below 128) newer than the library's ABI
 *    minor (otelagent_abi_version()) makes it refuse the record with
 *    OTELAGENT_E_BAD_RECORD rather than half-read it, so a binding checks
 *    the minor before it sends one.
 */
#define OTELAGENT_RECORD_VERSION 2
#define OTELAGENT_RECORD_HEADER_SIZE 80
#define OTELAGENT_RECORD_ENTRY_HEADER_SIZE 8
#define OTELAGENT_RECORD_MAX 65536
#define OTELAGENT_REC_NAME 1
#define OTELAGENT_REC_SCOPE_NAME 2
#define OTELAGENT_REC_SCOPE_VERSION 3
#define OTELAGENT_REC_TRACESTATE 4
#define OTELAGENT_REC_STATUS_MESSAGE 5
#define OTELAGENT_REC_ATTR 6
#define OTELAGENT_REC_EVENT 7
#define OTELAGENT_REC_EVENT_ATTR 8
#define OTELAGENT_REC_LINK 9
#define OTELAGENT_REC_LINK_ATTR 10
#define OTELAGENT_REC_GROUP_DROPPED 11
#define OTELAGENT_REC_FIRST_EXTENSION 128

/*! otelagent_record_span() :
 *  Queues one finished span, packed in the format above, in one call. The
 *  record is validated (bounds, tags, ids) and copied; the caller keeps the
 *  buffer. Strings are checked and repaired on the exporter thread. Counted as
 *  started and ended. Hot path.
 *  @return OTELAGENT_OK, OTELAGENT_E_BAD_RECORD, OTELAGENT_E_RING_FULL,
 *  OTELAGENT_E_NOT_STARTED, OTELAGENT_E_DISABLED. */
OTELAGENT_API int otelagent_record_span(const void *record, size_t len);

/* ------------------------------------------------------------------ */
/* Propagation                                                         */
/* ------------------------------------------------------------------ */

/* The longest header values the propagation calls read (OTELAGENT_NTS or a
 * longer length gives OTELAGENT_E_TOO_LONG; nothing past these is read). For
 * tracestate and baggage the maximum is of all a request's lines together:
 * the longest valid tracestate is 16447 characters, and W3C baggage sets no
 * maximum on what is received (it must propagate 8192 bytes). X-Ray: AWS's
 * own APIs take trace headers of up to 8192 characters. */
#define OTELAGENT_MAX_TRACEPARENT 512
#define OTELAGENT_MAX_TRACESTATE_INPUT 32768
#define OTELAGENT_MAX_BAGGAGE 65536
#define OTELAGENT_MAX_XRAY 8192
#define OTELAGENT_MAX_HEADER_NAME 256

/*! otelagent_traceparent_parse() :
 *  Parses a W3C `traceparent` value into `*out` (is_remote = 1, sampling =
 *  DECIDED), by every rule of the Trace Context spec, future versions
 *  included. At most OTELAGENT_MAX_TRACEPARENT bytes.
 *  @return OTELAGENT_OK, OTELAGENT_E_NOT_FOUND (invalid), OTELAGENT_E_INVALID,
 *  OTELAGENT_E_TOO_LONG. */
OTELAGENT_API int otelagent_traceparent_parse(const char *value, size_t len,
                                              otelagent_span_context *out);

/*! otelagent_tracestate_normalize() :
 *  Validates a W3C `tracestate` value (several header lines may be joined
 *  with ',') and writes its normalised form (trimmed, empty members removed,
 *  cut to OTELAGENT_TRACESTATE_MAX as the spec says) to `buf`, a NUL added
 *  when there is room. At most OTELAGENT_MAX_TRACESTATE_INPUT bytes in.
 *  @return OTELAGENT_OK, OTELAGENT_E_NOT_FOUND (invalid or empty: the
 *  tracestate must then be dropped), OTELAGENT_E_NO_SPACE (`*written` = the
 *  length needed), OTELAGENT_E_INVALID, OTELAGENT_E_TOO_LONG. */
OTELAGENT_API int otelagent_tracestate_normalize(const char *value, size_t len, char *buf,
                                                 size_t cap, size_t *written);

/*! otelagent_traceparent_format() :
 *  Writes the version-00 `traceparent` of `ctx` (55 characters, NUL added when
 *  there is room) into `buf`; `*written` gets 55.
 *  @return OTELAGENT_OK, OTELAGENT_E_NO_SPACE, OTELAGENT_E_INVALID (NULL, or
 *  an all-zero trace id or span id: no header may be sent for it). */
OTELAGENT_API int otelagent_traceparent_format(const otelagent_span_context *ctx, char *buf,
                                               size_t cap, size_t *written);

/*! otelagent_xray_parse() :
 *  Parses an AWS `X-Amzn-Trace-Id` value (Root, Parent, Sampled) into `*out`.
 *  `Sampled=?` or no Sampled field sets sampling = DEFERRED (the local
 *  sampler decides). At most OTELAGENT_MAX_XRAY bytes.
 *  @return OTELAGENT_OK, OTELAGENT_E_NOT_FOUND, OTELAGENT_E_INVALID,
 *  OTELAGENT_E_TOO_LONG. */
OTELAGENT_API int otelagent_xray_parse(const char *value, size_t len, otelagent_span_context *out);

/*! otelagent_xray_format() :
 *  Writes `Root=1-xxxxxxxx-xxx...;Parent=...;Sampled=0|1` for `ctx`
 *  (`Sampled=?` when its sampling is DEFERRED).
 *  @return OTELAGENT_OK, OTELAGENT_E_NO_SPACE, OTELAGENT_E_INVALID (NULL or
 *  all-zero ids). */
OTELAGENT_API int otelagent_xray_format(const otelagent_span_context *ctx, char *buf, size_t cap,
                                        size_t *written);

/*! otelagent_baggage_normalize() :
 *  Parses a W3C `baggage` value (several header lines may be joined with ',')
 *  and writes it back keeping only valid members, at most 64 members and 8192
 *  bytes (a member that does not fit is skipped, never cut). At most
 *  OTELAGENT_MAX_BAGGAGE bytes in.
 *  @return OTELAGENT_OK, OTELAGENT_E_NOT_FOUND (no valid member),
 *  OTELAGENT_E_NO_SPACE, OTELAGENT_E_INVALID, OTELAGENT_E_TOO_LONG. */
OTELAGENT_API int otelagent_baggage_normalize(const char *value, size_t len, char *buf, size_t cap,
                                              size_t *written);

/** A header as (name, value); names compare case-insensitively. Frozen. */
typedef struct otelagent_header {
  otelagent_str name;
  otelagent_str value;
} otelagent_header;

/*! otelagent_context_extract() :
 *  Extracts a parent context from `headers` with the propagators configured
 *  by OTEL_PROPAGATORS (tracecontext, baggage, xray; in that order, the first
 *  valid trace context wins). Several `tracestate` or `baggage` header lines
 *  are combined into one list (RFC 9110). When `tracestate_buf` is not NULL,
 *  the normalised tracestate that goes with a W3C context is written there
 *  (`*tracestate_len` = 0 when there is none; a buffer of
 *  OTELAGENT_TRACESTATE_MAX bytes always suffices); likewise the normalised
 *  baggage into `baggage_buf` (8192 bytes suffice). A header over its
 *  maximum (OTELAGENT_MAX_*, all lines of one name together) is ignored, as
 *  an invalid one is. An X-Ray header with Sampled=? gives sampling =
 *  DEFERRED.
 *  Works before start with the default propagators (tracecontext, baggage).
 *  @return OTELAGENT_OK (a context was found), OTELAGENT_E_NOT_FOUND,
 *  OTELAGENT_E_INVALID, OTELAGENT_E_TOO_LONG (more than OTELAGENT_MAX_ITEMS
 *  headers). */
OTELAGENT_API int otelagent_context_extract(const otelagent_header *headers, size_t count,
                                            otelagent_span_context *out, char *tracestate_buf,
                                            size_t tracestate_cap, size_t *tracestate_len,
                                            char *baggage_buf, size_t baggage_cap,
                                            size_t *baggage_len);

/*! otelagent_context_inject() :
 *  Writes the headers of the configured propagators for `ctx`, its
 *  `tracestate` and `baggage` (both may be empty) into `buf` as lines
 *  "name: value\r\n". An invalid tracestate or baggage is left out.
 *  @return OTELAGENT_OK, OTELAGENT_E_NO_SPACE (`*written` = the length
 *  needed), OTELAGENT_E_INVALID (NULL or an all-zero context),
 *  OTELAGENT_E_TOO_LONG. */
OTELAGENT_API int otelagent_context_inject(const otelagent_span_context *ctx,
                                           const char *tracestate, size_t tracestate_len,
                                           const char *baggage, size_t baggage_len, char *buf,
                                           size_t cap, size_t *written);

/* ------------------------------------------------------------------ */
/* Self-statistics                                                     */
/* ------------------------------------------------------------------ */

/** Counters since the process started (the child of a fork starts at 0). */
typedef struct otelagent_stats {
  uint32_t struct_size; /**< caller sets sizeof(otelagent_stats) */
  uint32_t reserved;
  uint64_t spans_started;  /**< by otelagent_span_start */
  uint64_t spans_ended;    /**< ended or recorded, recording or not */
  uint64_t spans_recorded; /**< by otelagent_record_span */
  uint64_t spans_sampled_out;
  uint64_t spans_dropped_ring_full;
  uint64_t spans_dropped_span_limit;    /**< open-span limit reached */
  uint64_t spans_dropped_rejected;      /**< 4xx/5xx drop or partial success */
  uint64_t spans_dropped_export_failed; /**< retries exhausted */
  uint64_t spans_dropped_shutdown;      /**< still queued when shutdown ended */
  uint64_t spans_exported;              /**< acknowledged by the receiver */
  uint64_t export_requests;             /**< HTTP requests made */
  uint64_t export_retries;
  uint64_t bytes_sent;       /**< request bodies, as sent */
  uint64_t queue_depth;      /**< spans waiting in rings and batches */
  uint64_t spans_open;       /**< started and not yet ended */
  uint64_t values_truncated; /**< strings cut to the caps, invalid tracestates dropped */
  /* Since ABI 2.0. */
  uint64_t spans_dropped_thread_exit; /**< emitted by a thread after its
                                           thread-exit clean-up had run (e.g.
                                           from a pthread key destructor) */
  /** Dropped by the exporter because its queue (OTEL_BSP_MAX_QUEUE_SIZE) was
   *  full: the collector is down, or slower than the spans come. */
  uint64_t spans_dropped_queue_full;
  /* Since ABI 2.1: the disk spool (OTELAGENT_SPOOL_DIR). Zero without one. */
  uint64_t spans_spooled;  /**< written to the spool directory */
  /** Exported after being read back from the spool: batches that waited on
   *  disk during an outage, and spans left by a process that had died. */
  uint64_t spans_replayed;
  /** Dropped at the spool's size cap (OTELAGENT_SPOOL_MAX_BYTES), oldest
   *  first. */
  uint64_t spans_dropped_spool_full;
  /** In segments that failed their checksum and whose span count could
   *  still be read; see spool_segments_corrupt for the others. */
  uint64_t spans_dropped_spool_corrupt;
  /** Torn or corrupt segments and damaged ring files found and removed. */
  uint64_t spool_segments_corrupt;
  /** Could not be written to the spool (disk full, directory read-only or
   *  gone): kept in memory only, like without a spool, and dropped (counted in
   *  spans_dropped_queue_full) if the queue fills before the collector
   *  answers. Not a loss by itself. */
  uint64_t spans_spool_write_failed;
  uint64_t spool_bytes;            /**< segment bytes in the spool directory */
  uint64_t spool_oldest_age_ms;    /**< age of the oldest segment; 0: none */
  uint64_t export_latency_us_last; /**< the last export request, sent to answered */
  uint64_t export_latency_us_max;  /**< the slowest export request so far */
  /** In segments of this process removed by someone else before they were
   *  sent (the spool directory deleted, say). */
  uint64_t spans_dropped_spool_gone;
} otelagent_stats;

/*! otelagent_stats_get() :
 *  Fills `*out` up to out->struct_size. Safe from any thread at any time; the
 *  figures are a consistent-enough snapshot, not an atomic one.
 *  @return OTELAGENT_OK or OTELAGENT_E_INVALID. */
OTELAGENT_API int otelagent_stats_get(otelagent_stats *out);

/* ------------------------------------------------------------------ */
/* Diagnostics                                                         */
/* ------------------------------------------------------------------ */

/* Levels of the agent's own log lines. */
#define OTELAGENT_LOG_WARN 1
#define OTELAGENT_LOG_INFO 2

/** Receives one log line (no newline, not NUL-terminated, at most 1023
 *  bytes). Called from any thread, the exporter's included, one line at a
 *  time; it must return promptly (a thread that logs meanwhile waits for it)
 *  and must not call back into otelagent_*. */
typedef void (*otelagent_log_fn)(void *user, int32_t level, const char *line, size_t len);

/*! otelagent_log_set_handler() :
 *  Routes the agent's log lines to `fn` (with `user`), replacing the
 *  destination chosen by OTELAGENT_LOG (stderr by default; `none`; or a file
 *  path, opened for appending). Lines to stderr or a file are written only
 *  when the write cannot block (fd 2 may be a pipe nobody reads): otherwise
 *  the line is dropped. NULL restores that destination. May be
 *  called at any time, before start included; a line being written while the
 *  handler changes goes to either. Since ABI 2.0. Not hot path.
 *  @return OTELAGENT_OK. */
OTELAGENT_API int otelagent_log_set_handler(otelagent_log_fn fn, void *user);

/* Internal caps (the OTEL_* limits may lower them, never raise them). A
 * string over its cap is cut at a UTF-8 boundary and counted; the caller's
 * buffer is never read past the cap. */
#define OTELAGENT_MAX_OPEN_SPANS_PER_THREAD 256
#define OTELAGENT_MAX_SPAN_BYTES 16384 /* a recording span's packed size */
#define OTELAGENT_MAX_VALUE_BYTES 4096 /* one string value or array */
#define OTELAGENT_MAX_KEY_BYTES 256
#define OTELAGENT_MAX_ATTRS 128 /* per span, event or link */
#define OTELAGENT_MAX_EVENTS 128
#define OTELAGENT_MAX_LINKS 128
/* The most attributes, links or headers one call reads from a caller's
 * array: a larger count is OTELAGENT_E_TOO_LONG (up to it, what is over a
 * count limit is dropped and counted). */
#define OTELAGENT_MAX_ITEMS 1024

#ifdef __cplusplus
}
#endif

#endif /* OTELAGENT_OTELAGENT_H */
