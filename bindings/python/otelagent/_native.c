/* The optional native packer of otelagent's Python binding, which also serves
   the server middlewares' requests ("Server spans" below).

   Packing a finished span into the record format of otelagent_record_span()
   is most of a span's cost in pure Python (a struct call per attribute, a
   join, the ctypes crossing). This module does it in one C call: it reads the
   span's fields and its attribute dict, writes the record into a buffer and
   hands it to otelagent_record_span() through the function pointer that the
   package's ctypes loader resolved (so it always talks to the one copy of the
   library the package loaded; it links no library itself).

   It handles the common case only: attribute values of the exact types str,
   bool, int (int64 range), float and _record.Packed, and no events or links
   (the caller keeps those spans on the Python path). For anything else it
   returns None without recording, and the caller packs the span in Python;
   the two packers write the same bytes (tests/python/test_native.py).

   The record layout is documented in otelagent.h ("Span record format") and
   mirrored by _record.py: little-endian, an 80-byte header, then entries of
   u8 tag, u8 type, u16 key length, u32 value length, key, value.

   The buffer is static and guarded by the GIL and a busy flag: the GIL is
   held from the first byte written to the return of otelagent_record_span(),
   and that call may log (a failing exporter start, say), which can run a
   Python logging handler (otelagent.route_logs_to_python()) that ends a span
   of its own or lets another thread run. While the buffer is in use, record()
   returns None and the Python packer, with buffers of its own, takes the
   span. A free-threaded CPython build does not get this module.

   The module's state is per process, not per interpreter: the first
   interpreter to bind it (bind() returns True) uses it; in the others
   (sub-interpreters, such as uWSGI's --mount apps) bind() returns False and
   the package packs and serves requests in pure Python. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>
#include <time.h>

#if PY_VERSION_HEX < 0x030A0000
static inline PyObject *Py_NewRef(PyObject *o) {
  Py_INCREF(o);
  return o;
}
static inline PyObject *Py_XNewRef(PyObject *o) {
  Py_XINCREF(o);
  return o;
}
#endif

#ifdef Py_GIL_DISABLED
#error "the native packer relies on the GIL; the pure-Python packer serves free-threaded builds"
#endif

enum {
  RECORD_VERSION = 2,
  HEADER_LEN = 80,
  RECORD_MAX = 65536,
  ENTRY_LEN = 8,
  MAX_KEY_BYTES = 256,
  MAX_VALUE_CHARS = 4096,
  MAX_ATTRS = 128,
  TAG_NAME = 1,
  TAG_TRACESTATE = 4,
  TAG_ATTR = 6,
  T_STRING = 1,
  T_BOOL = 2,
  T_INT64 = 3,
  T_DOUBLE = 4,
  FLAG_HAS_IS_REMOTE = 0x100,
  FLAG_IS_REMOTE = 0x200,
};

typedef int (*record_fn)(const void *record, size_t len);
typedef int (*context_fn)(const void *parent, void *out);
typedef int (*parse_fn)(const char *value, size_t len, void *out);

/* The library's entry points, set by bind(). */
static record_fn g_record;      /* otelagent_record_span */
static context_fn g_context;    /* otelagent_span_context_new */
static parse_fn g_traceparent;  /* otelagent_traceparent_parse */
static parse_fn g_xray;         /* otelagent_xray_parse */
static PyObject *g_packed_type; /* _record.Packed, set by bind() */
/* The interpreter that bound the module (its ID: an address can be reused by
   a later interpreter, an ID cannot): the objects the module keeps are that
   interpreter's, so only it uses the module. -1: none yet. */
static int64_t g_interp = -1;
static unsigned char g_buf[RECORD_MAX];
static int g_busy; /* g_buf holds a record otelagent_record_span() is reading */

static void put_u16(unsigned char *p, uint16_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
}

static void put_u32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* A packing cursor; `ok` turns 0 when the record would pass RECORD_MAX. */
typedef struct {
  size_t len;
  int ok;
} Cursor;

static unsigned char *reserve(Cursor *c, size_t n) {
  if (!c->ok || n > RECORD_MAX - c->len) {
    c->ok = 0;
    return NULL;
  }
  unsigned char *p = g_buf + c->len;
  c->len += n;
  return p;
}

static void put_entry(Cursor *c, int tag, int type, const char *key, size_t key_len,
                      const void *value, size_t value_len) {
  unsigned char *p = reserve(c, ENTRY_LEN + key_len + value_len);
  if (p == NULL) return;
  p[0] = (unsigned char)tag;
  p[1] = (unsigned char)type;
  put_u16(p + 2, (uint16_t)key_len);
  put_u32(p + 4, (uint32_t)value_len);
  if (key_len > 0) memcpy(p + ENTRY_LEN, key, key_len);
  if (value_len > 0) memcpy(p + ENTRY_LEN + key_len, value, value_len);
}

/* The UTF-8 of a str of at most MAX_VALUE_CHARS characters; NULL (no error
   set) when the Python packer must take over: another type, longer (the
   Python side cuts it by characters), or lone surrogates. */
static const char *short_utf8(PyObject *s, Py_ssize_t *len) {
  if (!PyUnicode_CheckExact(s) || PyUnicode_GET_LENGTH(s) > MAX_VALUE_CHARS) return NULL;
  const char *u = PyUnicode_AsUTF8AndSize(s, len);
  if (u == NULL) PyErr_Clear();
  return u;
}

/* One attribute; 0 when the Python packer must take over. */
static int put_attr(Cursor *c, PyObject *key, PyObject *value) {
  PyTypeObject *t = Py_TYPE(value);
  if ((PyObject *)t == g_packed_type) {
    unsigned char *p = reserve(c, (size_t)PyBytes_GET_SIZE(value));
    if (p != NULL) memcpy(p, PyBytes_AS_STRING(value), (size_t)PyBytes_GET_SIZE(value));
    return 1;
  }
  if (!PyUnicode_CheckExact(key)) return 0;
  Py_ssize_t klen;
  const char *k = PyUnicode_AsUTF8AndSize(key, &klen);
  if (k == NULL) {
    PyErr_Clear();
    return 0;
  }
  /* Cut by bytes like _record._key (the library repairs a cut character). */
  if (klen > MAX_KEY_BYTES) klen = MAX_KEY_BYTES;
  if (t == &PyUnicode_Type) {
    Py_ssize_t vlen;
    const char *v = short_utf8(value, &vlen);
    if (v == NULL) return 0;
    put_entry(c, TAG_ATTR, T_STRING, k, (size_t)klen, v, (size_t)vlen);
  } else if (t == &PyBool_Type) {
    unsigned char b = value == Py_True;
    put_entry(c, TAG_ATTR, T_BOOL, k, (size_t)klen, &b, 1);
  } else if (t == &PyLong_Type) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow != 0) return 0; /* the Python packer drops and counts it */
    unsigned char b[8];
    put_u64(b, (uint64_t)v);
    put_entry(c, TAG_ATTR, T_INT64, k, (size_t)klen, b, 8);
  } else if (t == &PyFloat_Type) {
    double d = PyFloat_AS_DOUBLE(value);
    uint64_t bits;
    memcpy(&bits, &d, 8);
    unsigned char b[8];
    put_u64(b, bits);
    put_entry(c, TAG_ATTR, T_DOUBLE, k, (size_t)klen, b, 8);
  } else {
    return 0;
  }
  return 1;
}

/* An int as an unsigned 64-bit value (-1 with an exception set, as
   PyLong_AsUnsignedLongLong): that function converts through a byte array
   any value above 2^60 (every timestamp), at several times this cost. */
static unsigned long long as_u64(PyObject *v) {
  if (PyLong_CheckExact(v)) {
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow == 0 && x >= 0) return (unsigned long long)x;
  }
  return PyLong_AsUnsignedLongLong(v);
}

/* Packs the span into g_buf; returns its length, or 0 when the Python
   packer must take over (including span fields of types it does not expect:
   the Python packer decides what they mean, as it did before this module). */
static Py_ssize_t pack(PyObject *const *args) {
  PyObject *scope = args[0], *name = args[1], *ctx = args[2], *parent = args[3];
  PyObject *tracestate = args[4], *attrs = args[9];
  if (!PyBytes_CheckExact(scope) || !PyBytes_CheckExact(ctx) || PyBytes_GET_SIZE(ctx) != 32 ||
      !PyDict_CheckExact(attrs) || !PyUnicode_CheckExact(tracestate))
    return 0;
  if (parent != Py_None && (!PyBytes_CheckExact(parent) || PyBytes_GET_SIZE(parent) != 32))
    return 0;
  unsigned long kind = PyLong_AsUnsignedLong(args[5]);
  unsigned long status = PyLong_AsUnsignedLong(args[6]);
  unsigned long long start = as_u64(args[7]);
  unsigned long long end = as_u64(args[8]);
  if (PyErr_Occurred() || kind > 255 || status > 255) {
    /* Out of range or not ints: the Python packer decides what they mean. */
    PyErr_Clear();
    return 0;
  }
  if (PyDict_GET_SIZE(attrs) > MAX_ATTRS) return 0;
  Py_ssize_t name_len;
  const char *name_utf8 = short_utf8(name, &name_len);
  if (name_utf8 == NULL) return 0;

  Cursor c = {HEADER_LEN, 1};
  unsigned char *s = reserve(&c, (size_t)PyBytes_GET_SIZE(scope));
  if (s != NULL) memcpy(s, PyBytes_AS_STRING(scope), (size_t)PyBytes_GET_SIZE(scope));
  put_entry(&c, TAG_NAME, T_STRING, NULL, 0, name_utf8, (size_t)name_len);
  if (PyUnicode_GET_LENGTH(tracestate) > 0) {
    Py_ssize_t ts_len;
    const char *ts = short_utf8(tracestate, &ts_len);
    if (ts == NULL) return 0;
    put_entry(&c, TAG_TRACESTATE, T_STRING, NULL, 0, ts, (size_t)ts_len);
  }
  Py_ssize_t pos = 0;
  PyObject *key, *value;
  while (PyDict_Next(attrs, &pos, &key, &value)) {
    if (!put_attr(&c, key, value)) return 0;
  }
  if (!c.ok) return 0; /* over the record maximum: the Python packer shrinks it */

  const unsigned char *raw = (const unsigned char *)PyBytes_AS_STRING(ctx);
  uint32_t flags = raw[24] | FLAG_HAS_IS_REMOTE;
  const unsigned char *parent_raw = NULL;
  if (parent != Py_None) {
    parent_raw = (const unsigned char *)PyBytes_AS_STRING(parent);
    if (parent_raw[25]) flags |= FLAG_IS_REMOTE;
  }
  unsigned char *h = g_buf;
  memset(h, 0, HEADER_LEN);
  put_u32(h, (uint32_t)c.len);
  put_u16(h + 4, RECORD_VERSION);
  put_u16(h + 6, HEADER_LEN);
  h[8] = (unsigned char)kind;
  h[9] = (unsigned char)status;
  put_u32(h + 12, flags);
  memcpy(h + 16, raw, 24); /* trace id and span id */
  if (parent_raw != NULL) memcpy(h + 40, parent_raw + 16, 8);
  put_u64(h + 48, start);
  put_u64(h + 56, end);
  return (Py_ssize_t)c.len;
}

static const char k_signature[] =
    "(scope, name, ctx, parent, tracestate, kind, status, start, end, attrs)";

/* record(scope, name, ctx, parent, tracestate, kind, status, start, end,
   attrs) -> the status of otelagent_record_span(), or None when the span is
   left to the Python packer. */
static PyObject *native_record(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
  (void)self;
  if (nargs != 10) {
    PyErr_Format(PyExc_TypeError, "_native.record%s takes 10 arguments", k_signature);
    return NULL;
  }
  if (g_record == NULL) {
    PyErr_SetString(PyExc_RuntimeError, "_native.record: bind() was not called");
    return NULL;
  }
  if (g_busy) Py_RETURN_NONE; /* re-entered through a log handler: see the top */
  Py_ssize_t len = pack(args);
  if (len == 0) Py_RETURN_NONE;
  g_busy = 1;
  int status = g_record(g_buf, (size_t)len);
  g_busy = 0;
  return PyLong_FromLong(status);
}

/* pack(...same arguments...) -> the record as bytes, or None; for the tests
   that hold this packer to the Python one. */
static PyObject *native_pack(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
  (void)self;
  if (nargs != 10) {
    PyErr_Format(PyExc_TypeError, "_native.pack%s takes 10 arguments", k_signature);
    return NULL;
  }
  if (g_packed_type == NULL) {
    PyErr_SetString(PyExc_RuntimeError, "_native.pack: bind() was not called");
    return NULL;
  }
  if (g_busy) {
    PyErr_SetString(PyExc_RuntimeError, "_native.pack: the buffer is in use");
    return NULL;
  }
  Py_ssize_t len = pack(args);
  if (len == 0) Py_RETURN_NONE;
  return PyBytes_FromStringAndSize((const char *)g_buf, len);
}

/* context(parent) -> the 32-byte context of a new span (ids and the
   sampler's decision) from otelagent_span_context_new(), or None when the
   library did not make one (not started, disabled). `parent`: a 32-byte
   context or None. */
static PyObject *native_context(PyObject *self, PyObject *parent) {
  (void)self;
  if (g_context == NULL) {
    PyErr_SetString(PyExc_RuntimeError, "_native.context: bind() was not called");
    return NULL;
  }
  const void *p = NULL;
  if (parent != Py_None) {
    if (!PyBytes_CheckExact(parent) || PyBytes_GET_SIZE(parent) != 32) {
      PyErr_SetString(PyExc_TypeError, "_native.context: a 32-byte context or None");
      return NULL;
    }
    p = PyBytes_AS_STRING(parent);
  }
  unsigned char out[32];
  if (g_context(p, out) != 0) Py_RETURN_NONE;
  return PyBytes_FromStringAndSize((const char *)out, 32);
}

/* A header value (bytes) parsed into a 32-byte context by `fn`; None when
   it is not valid. The library bounds and checks the value. */
static PyObject *parse_with(parse_fn fn, PyObject *value) {
  if (fn == NULL) {
    PyErr_SetString(PyExc_RuntimeError, "_native: bind() was not called");
    return NULL;
  }
  if (!PyBytes_Check(value)) {
    PyErr_SetString(PyExc_TypeError, "_native: a header value as bytes");
    return NULL;
  }
  unsigned char out[32];
  if (fn(PyBytes_AS_STRING(value), (size_t)PyBytes_GET_SIZE(value), out) != 0) Py_RETURN_NONE;
  return PyBytes_FromStringAndSize((const char *)out, 32);
}

/* traceparent(value) -> the remote parent's context, or None. */
static PyObject *native_traceparent(PyObject *self, PyObject *value) {
  (void)self;
  return parse_with(g_traceparent, value);
}

/* xray(value) -> the remote parent's context from an X-Amzn-Trace-Id, or None. */
static PyObject *native_xray(PyObject *self, PyObject *value) {
  (void)self;
  return parse_with(g_xray, value);
}

/* bind(Packed class, addresses of otelagent_record_span,
   otelagent_span_context_new, otelagent_traceparent_parse and
   otelagent_xray_parse): the functions of the copy of the library the
   package's loader chose. */
static PyObject *native_bind(PyObject *self, PyObject *args) {
  (void)self;
  unsigned long long record, context, traceparent, xray;
  PyObject *packed;
  if (!PyArg_ParseTuple(args, "O!KKKK", &PyType_Type, &packed, &record, &context, &traceparent,
                        &xray))
    return NULL;
  if (record == 0 || context == 0 || traceparent == 0 || xray == 0) {
    PyErr_SetString(PyExc_ValueError, "_native.bind: a null function address");
    return NULL;
  }
  /* The module's state is per process: with sub-interpreters (uWSGI's
     --mount apps) the first interpreter to bind it keeps it; the others get
     False and use the pure-Python packer and request path, so objects of an
     interpreter are never mixed into another's. If the binding interpreter
     ends before the others, they stay on the Python path. */
  int64_t me = PyInterpreterState_GetID(PyInterpreterState_Get());
  if (me < 0) return NULL;
  if (g_interp != -1 && g_interp != me) Py_RETURN_FALSE;
  g_interp = me;
  Py_INCREF(packed);
  Py_XSETREF(g_packed_type, packed);
  g_record = (record_fn)(uintptr_t)record;
  g_context = (context_fn)(uintptr_t)context;
  g_traceparent = (parse_fn)(uintptr_t)traceparent;
  g_xray = (parse_fn)(uintptr_t)xray;
  Py_RETURN_TRUE;
}

/* ------------------------------------------------------------------------
   Server spans: the per-request work of the ASGI and WSGI middlewares
   (integrations/asgi.py, integrations/wsgi.py) in a few C calls.

   A traced request costs the middleware: reading the trace headers, the
   sampling decision, the span object, a dozen attributes, making the span
   current, noting the response status, and ending the span. In Python that
   is a few µs of interpreted work per request, more than the framework's
   own routing in a small service. Here Server.begin() does it all up to the
   application call, and returns a ServerCall that stands in for the
   application's `send` (ASGI) or `start_response` (WSGI), notes the status,
   iterates a streamed WSGI body with the span current, and ends the span
   in finish() or close().

   It writes the same span objects the Python path writes (the Span and
   NonRecordingSpan classes of _tracing, their slots filled through the
   member descriptors' offsets) with the same attributes and the same
   sampling calls, so the rest of the package sees no difference; the tests
   run every integration test with and without this module. Anything it does
   not expect (header values that are not bytes, a repeated tracestate or
   baggage header, a non-dict environ, the OpenTelemetry bridge's span
   classes) makes begin() return NotImplemented, and the middleware takes its
   Python path for that request. */

/* PyMemberDef (Python < 3.12 declares it here). Included this late because
   it defines T_STRING and the like as macros, names the packer above uses. */
#include <structmember.h>

typedef int (*normalize_fn)(const char *value, size_t len, char *buf, size_t cap, size_t *written);

enum {
  SLOT_NAME,
  SLOT_CTX,
  SLOT_PARENT,
  SLOT_TRACESTATE,
  SLOT_KIND,
  SLOT_START,
  SLOT_SCOPE,
  SLOT_ATTRS,
  SLOT_STATUS,
  SLOT_ENDED,
  SLOT_X,
  SLOT_TOKEN,
  SLOT_FORKS,
  N_SLOTS,
  NORMALIZED_MAX = 8192 + 1, /* the Python side's buffer (_ffi._Buffers.text) */
  EXCLUDED_CACHE_MAX = 4096,
  EXCLUDED_CACHE_PATH_MAX = 128,
  OBJECT_SLOT = 16, /* T_OBJECT_EX: the member type of a __slots__ entry */
};

static const char *const k_slot_names[N_SLOTS] = {
    "_name",  "_ctx",    "_parent", "_tracestate", "_kind",  "_start", "_scope",
    "_attrs", "_status", "_ended",  "_x",          "_token", "_forks"};

static normalize_fn g_tracestate_norm, g_baggage_norm;
static Py_ssize_t g_off[N_SLOTS];    /* Span's slot offsets */
static Py_ssize_t g_nr_ctx, g_nr_ts; /* NonRecordingSpan's */
static PyTypeObject *g_span_type, *g_nonrec_type;
static PyObject *g_classes;      /* _tracing._classes: the span classes in use */
static PyObject *g_current;      /* _tracing._current (ContextVar) */
static PyObject *g_baggage_var;  /* propagation._baggage (ContextVar) */
static PyObject *g_tracing_dict; /* _tracing's globals (its _forks counter) */
static PyObject *g_hosts;        /* _http.hosts: Host header -> (address, port) */
static PyObject *g_server_host;  /* _http.server_host */
static PyObject *g_redact;       /* _http.redact_query */
static PyObject *g_known;        /* _http.KNOWN_METHODS */
static PyObject *g_failed;       /* _http.request_failed(span, exc): an exception escaped */
/* OTEL_PROPAGATORS as the agent was started (propagation.propagators()). */
static int g_prop_tc = 1, g_prop_xray = 0, g_prop_bag = 1;

/* Interned strings, made at import. */
static PyObject *s_type, *s_http, *s_websocket, *s_path, *s_headers, *s_method, *s_GET, *s_HTTP,
    *s_scheme, *s_http_scheme, *s_https, *s_wss, *s_query_string, *s_server, *s_client,
    *s_http_version, *s_v11, *s_route, *s_path_format, *s_status, *s_message, *s_response_start,
    *s_forks, *s_span_key, *s_empty, *s_slash, *s_set_status, *s_end, *s_close, *s_search,
    *s_excluded, *s_wsgi_app, *s_python_path, *s_WEBSOCKET, *s_request_method, *s_path_info,
    *s_url_scheme_env, *s_query_env, *s_host_env, *s_server_name, *s_server_port, *s_remote_addr,
    *s_ua_env, *s_protocol_env, *s_tp_env, *s_ts_env, *s_bag_env, *s_xray_env, *s_HTTP_prefix,
    *a_method, *a_method_original, *a_other, *a_url_path, *a_url_scheme, *a_url_query,
    *a_server_address, *a_server_port, *a_client_address, *a_user_agent, *a_protocol, *a_route,
    *a_status_code, *a_error_type, *s_werkzeug_request, *s_url_rule, *s_rule, *s_map, *s_cur_set,
    *s_cur_reset, *s_cur_get, *s_native_record, *s_native_context, *s_make_span, *s_kind,
    *s_attributes, *s_time_ns, *s_server_attr, *s_app, *s_lifespan, *s_throw, *s_file_wrapper;
static PyObject *g_kind_server, *g_kind_internal, *g_zero, *g_port_80, *g_port_443, *g_invalid_ctx;
/* _io._IOBase: the base class of every file object (compared as a pointer
   only: with sub-interpreters it may be another interpreter's). */
static PyTypeObject *g_iobase;

static const struct {
  PyObject **obj;
  const char *text;
} k_strings[] = {
    {&s_type, "type"},
    {&s_http, "http"},
    {&s_websocket, "websocket"},
    {&s_path, "path"},
    {&s_headers, "headers"},
    {&s_method, "method"},
    {&s_GET, "GET"},
    {&s_HTTP, "HTTP"},
    {&s_scheme, "scheme"},
    {&s_http_scheme, "http"},
    {&s_https, "https"},
    {&s_wss, "wss"},
    {&s_query_string, "query_string"},
    {&s_server, "server"},
    {&s_client, "client"},
    {&s_http_version, "http_version"},
    {&s_v11, "1.1"},
    {&s_route, "route"},
    {&s_path_format, "path_format"},
    {&s_status, "status"},
    {&s_message, "message"},
    {&s_response_start, "http.response.start"},
    {&s_forks, "_forks"},
    {&s_cur_set, "_cur_set"},
    {&s_cur_reset, "_cur_reset"},
    {&s_cur_get, "_cur_get"},
    {&s_native_record, "_native_record"},
    {&s_native_context, "_native_context"},
    {&s_make_span, "_make_span"},
    {&s_time_ns, "_time_ns"},
    {&s_kind, "kind"},
    {&s_attributes, "attributes"},
    {&s_span_key, "otelagent.server_span"},
    {&s_empty, ""},
    {&s_slash, "/"},
    {&s_set_status, "set_status"},
    {&s_end, "end"},
    {&s_close, "close"},
    {&s_file_wrapper, "wsgi.file_wrapper"},
    {&s_server_attr, "_server"},
    {&s_app, "app"},
    {&s_lifespan, "lifespan"},
    {&s_throw, "throw"},
    {&s_werkzeug_request, "werkzeug.request"},
    {&s_url_rule, "url_rule"},
    {&s_rule, "rule"},
    {&s_map, "map"},
    {&s_search, "search"},
    {&s_excluded, "excluded"},
    {&s_python_path, "_python_path"},
    {&s_wsgi_app, "wsgi_app"},
    {&s_WEBSOCKET, "WEBSOCKET"},
    {&s_request_method, "REQUEST_METHOD"},
    {&s_path_info, "PATH_INFO"},
    {&s_url_scheme_env, "wsgi.url_scheme"},
    {&s_query_env, "QUERY_STRING"},
    {&s_host_env, "HTTP_HOST"},
    {&s_server_name, "SERVER_NAME"},
    {&s_server_port, "SERVER_PORT"},
    {&s_remote_addr, "REMOTE_ADDR"},
    {&s_ua_env, "HTTP_USER_AGENT"},
    {&s_protocol_env, "SERVER_PROTOCOL"},
    {&s_tp_env, "HTTP_TRACEPARENT"},
    {&s_ts_env, "HTTP_TRACESTATE"},
    {&s_bag_env, "HTTP_BAGGAGE"},
    {&s_xray_env, "HTTP_X_AMZN_TRACE_ID"},
    {&s_HTTP_prefix, "HTTP/"},
    {&a_method, "http.request.method"},
    {&a_method_original, "http.request.method_original"},
    {&a_other, "_OTHER"},
    {&a_url_path, "url.path"},
    {&a_url_scheme, "url.scheme"},
    {&a_url_query, "url.query"},
    {&a_server_address, "server.address"},
    {&a_server_port, "server.port"},
    {&a_client_address, "client.address"},
    {&a_user_agent, "user_agent.original"},
    {&a_protocol, "network.protocol.version"},
    {&a_route, "http.route"},
    {&a_status_code, "http.response.status_code"},
    {&a_error_type, "error.type"},
};

static int make_strings(void) {
  for (size_t i = 0; i < sizeof k_strings / sizeof k_strings[0]; i++) {
    *k_strings[i].obj = PyUnicode_InternFromString(k_strings[i].text);
    if (*k_strings[i].obj == NULL) return -1;
  }
  g_kind_server = PyLong_FromLong(2);
  g_kind_internal = PyLong_FromLong(1);
  g_zero = PyLong_FromLong(0);
  g_port_80 = PyLong_FromLong(80);
  g_port_443 = PyLong_FromLong(443);
  static const char zeros[32] = {0};
  g_invalid_ctx = PyBytes_FromStringAndSize(zeros, 32);
  PyObject *io = PyImport_ImportModule("_io");
  if (io == NULL) return -1;
  PyObject *base = PyObject_GetAttrString(io, "_IOBase");
  Py_DECREF(io);
  if (base == NULL) return -1;
  if (!PyType_Check(base)) {
    Py_DECREF(base);
    PyErr_SetString(PyExc_TypeError, "_io._IOBase is not a type");
    return -1;
  }
  g_iobase = (PyTypeObject *)base;
  return g_kind_server && g_kind_internal && g_zero && g_port_80 && g_port_443 && g_invalid_ctx
             ? 0
             : -1;
}

/* getattr(o, name, None) that lets only AttributeError through as "absent":
   1 (found), 0 (absent) or -1 (error set). For the common types an absent
   attribute makes no AttributeError at all (formatting its message costs
   about a microsecond: a body without close() paid it on every request). */
static int optional_attr(PyObject *o, PyObject *name, PyObject **out) {
#if PY_VERSION_HEX >= 0x030D0000
  return PyObject_GetOptionalAttr(o, name, out);
#else
  return _PyObject_LookupAttr(o, name, out);
#endif
}

static PyObject *slot_get(PyObject *o, Py_ssize_t off) {
  return *(PyObject **)((char *)o + off); /* borrowed; NULL when unset */
}

static void slot_set(PyObject *o, Py_ssize_t off, PyObject *v) {
  PyObject **p = (PyObject **)((char *)o + off);
  PyObject *old = *p;
  Py_INCREF(v);
  *p = v;
  Py_XDECREF(old);
}

/* The offset of a __slots__ member of `type`; -1 (error set) when it is not
   an object slot. */
static Py_ssize_t slot_offset(PyTypeObject *type, const char *name) {
  PyObject *d = PyObject_GetAttrString((PyObject *)type, name);
  if (d == NULL) return -1;
  Py_ssize_t off = -1;
  if (Py_IS_TYPE(d, &PyMemberDescr_Type)) {
    PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
    if (m->type == OBJECT_SLOT) off = m->offset;
  }
  Py_DECREF(d);
  if (off < 0) PyErr_Format(PyExc_TypeError, "%s.%s is not an object slot", type->tp_name, name);
  return off;
}

static PyObject *g_time_ns0; /* _tracing._time_ns as bind_spans() found it: time.time_ns */

/* The module's functions the C methods stand in for or call around, as
   bind_spans() found them. */
enum { F_CUR_GET, F_CUR_SET, F_CUR_RESET, F_CONTEXT, F_RECORD, F_MAKE_SPAN, N_FNS };
static PyObject **const k_fn_name[N_FNS] = {&s_cur_get,        &s_cur_set,       &s_cur_reset,
                                            &s_native_context, &s_native_record, &s_make_span};
static PyObject *g_fn0[N_FNS];

/* What the C paths read in _tracing's globals: whether each function above
   is still the one bind_spans() found, the clock (_time_ns) and the fork
   counter (_forks). Looked up on every use, they cost about a tenth of a
   span's instructions (eleven dictionary lookups); they are read again only
   after that dictionary changed, which its version tag tells before 3.12,
   and a dictionary watcher's count of changes from 3.12 (without a watcher
   on the dictionary, they are read on every use). */
static struct {
  int valid;
  uint64_t version; /* the dictionary's version when they were read */
  char same[N_FNS];
  PyObject *clock; /* what replaced _time_ns, or NULL (strong) */
  PyObject *forks; /* _forks, or NULL when it is missing (strong) */
} g_glob;

#if PY_VERSION_HEX >= 0x030C0000
static int g_watcher = -1;            /* our dict watcher's ID, or -1 */
static int64_t g_watcher_interp = -1; /* the interpreter it belongs to */
static PyObject *g_watched;           /* the dictionary it watches (g_tracing_dict), or NULL */
static uint64_t g_changes;            /* changes the watcher saw */

static int globals_changed(PyDict_WatchEvent event, PyObject *dict, PyObject *key,
                           PyObject *new_value) {
  (void)event;
  (void)dict;
  (void)key;
  (void)new_value;
  g_changes++;
  return 0;
}

/* Watches `globals` when a watcher can be had (they are few per
   interpreter); without one the cache is not trusted. Never fails: the
   host's import goes on either way. */
static void watch(PyObject *globals) {
  int64_t me = PyInterpreterState_GetID(PyInterpreterState_Get());
  if (g_watcher >= 0 && g_watcher_interp != me) { /* another interpreter's ID */
    g_watcher = -1;
    g_watched = NULL;
  }
  if (g_watcher < 0) {
    if ((g_watcher = PyDict_AddWatcher(globals_changed)) < 0) {
      PyErr_Clear();
      return;
    }
    g_watcher_interp = me;
  }
  if (g_watched == globals) return;
  if (g_watched != NULL && PyDict_Unwatch(g_watcher, g_watched) != 0) PyErr_Clear();
  g_watched = NULL;
  if (PyDict_Watch(g_watcher, globals) == 0)
    g_watched = globals;
  else
    PyErr_Clear();
}
#endif

static uint64_t glob_version(void) {
#if PY_VERSION_HEX < 0x030C0000
  return ((PyDictObject *)g_tracing_dict)->ma_version_tag;
#else
  return g_changes;
#endif
}

/* _tracing's globals, from bind_spans() and bind_server(). */
static void set_tracing_dict(PyObject *globals) {
#if PY_VERSION_HEX >= 0x030C0000
  watch(globals); /* first: the dictionary watched until now is still held */
#endif
  Py_XSETREF(g_tracing_dict, Py_NewRef(globals));
  g_glob.valid = 0;
}

/* Reads the globals into g_glob: 0, or -1 with an exception set. The
   version is taken first: a change made while they are read (Python code
   run by a lookup) leaves the cache older than the dictionary. */
static int glob_read(void) {
  static PyObject **const extra[2] = {&s_time_ns, &s_forks};
  uint64_t version = glob_version();
  PyObject *found[N_FNS + 2] = {NULL};
  g_glob.valid = 0;
  int rc = 0;
  for (int i = 0; i < N_FNS + 2; i++) {
    /* Held: a later lookup may run Python code that replaces this one. */
    found[i] = Py_XNewRef(
        PyDict_GetItemWithError(g_tracing_dict, i < N_FNS ? *k_fn_name[i] : *extra[i - N_FNS]));
    if (found[i] == NULL && PyErr_Occurred()) {
      rc = -1;
      break;
    }
  }
  PyObject *old_clock = NULL, *old_forks = NULL;
  if (rc == 0) {
    for (int i = 0; i < N_FNS; i++) g_glob.same[i] = found[i] == g_fn0[i];
    old_clock = g_glob.clock;
    old_forks = g_glob.forks;
    /* The references taken above move into the cache. */
    g_glob.clock = found[N_FNS] != g_time_ns0 ? found[N_FNS] : NULL;
    if (g_glob.clock != NULL) found[N_FNS] = NULL;
    g_glob.forks = found[N_FNS + 1];
    found[N_FNS + 1] = NULL;
    g_glob.version = version;
#if PY_VERSION_HEX < 0x030C0000
    g_glob.valid = 1;
#else
    g_glob.valid = g_watcher >= 0 && g_watched == g_tracing_dict;
#endif
  }
  /* Released last: freeing may run Python code (that changes the version). */
  for (int i = 0; i < N_FNS + 2; i++) Py_XDECREF(found[i]);
  Py_XDECREF(old_clock);
  Py_XDECREF(old_forks);
  return rc;
}

/* g_glob up to date: 0, or -1 with an exception set. */
static inline int glob_fresh(void) {
  if (g_glob.valid && g_glob.version == glob_version()) return 0;
  return glob_read();
}

/* time.time_ns(), or what replaced _tracing._time_ns (a test's frozen
   clock: freezegun replaces it), as the Python methods read it. */
static PyObject *now_ns(void) {
  if (g_time_ns0 != NULL) {
    if (glob_fresh() != 0) return NULL;
    if (g_glob.clock != NULL) {
      /* Held: the call may replace it (and the cache's reference). */
      PyObject *fn = Py_NewRef(g_glob.clock);
      PyObject *r = PyObject_CallNoArgs(fn);
      Py_DECREF(fn);
      return r;
    }
  }
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts); /* what time.time_ns() reads */
  return PyLong_FromUnsignedLongLong((unsigned long long)ts.tv_sec * 1000000000ULL +
                                     (unsigned long long)ts.tv_nsec);
}

static PyObject *new_nonrecording(PyObject *ctx, PyObject *tracestate) {
  PyObject *o = g_nonrec_type->tp_alloc(g_nonrec_type, 0);
  if (o == NULL) return NULL;
  slot_set(o, g_nr_ctx, ctx);
  slot_set(o, g_nr_ts, tracestate);
  return o;
}

/* The sampling decision for a server span under `parent` (its 32 bytes, or
   NULL), as _tracing._make_span makes it with the native sampler call: 1
   with the span's context in ctx[] when it records; 0 with *span set to the
   NonRecordingSpan that stands for it (of its own context, or of the
   parent's when the library makes none: not started, disabled); -1 with an
   exception set. */
static int decide(const unsigned char *parent, PyObject *tracestate, unsigned char *ctx,
                  PyObject **span) {
  *span = NULL;
  int rc = g_context(parent, ctx);
  if (rc == 0 && (ctx[24] & 1)) return 1;
  const unsigned char *own = rc == 0 ? ctx : parent;
  PyObject *b = own ? PyBytes_FromStringAndSize((const char *)own, 32) : Py_NewRef(g_invalid_ctx);
  if (b == NULL) return -1;
  *span = new_nonrecording(b, tracestate);
  Py_DECREF(b);
  return *span ? 0 : -1;
}

/* A recording Span of context ctx[] under parent_ctx (its 32-byte bytes,
   or None for a root), as _tracing._make_span makes it, with its own dict
   attrs (stolen, even on failure) and `token` in its _token slot. */
static PyObject *make_span(PyObject *name, const unsigned char *ctx_raw, PyObject *parent_ctx,
                           PyObject *tracestate, PyObject *kind, PyObject *scope_entries,
                           PyObject *attrs, PyObject *token) {
  PyObject *ctx = attrs ? PyBytes_FromStringAndSize((const char *)ctx_raw, 32) : NULL;
  /* Held: the clock below may be Python code that changes _forks. */
  PyObject *forks = ctx && glob_fresh() == 0 ? Py_XNewRef(g_glob.forks) : NULL;
  PyObject *start = forks ? now_ns() : NULL;
  PyObject *o = start ? g_span_type->tp_alloc(g_span_type, 0) : NULL;
  if (o != NULL) {
    slot_set(o, g_off[SLOT_NAME], name);
    slot_set(o, g_off[SLOT_CTX], ctx);
    slot_set(o, g_off[SLOT_PARENT], parent_ctx);
    slot_set(o, g_off[SLOT_TRACESTATE], tracestate);
    slot_set(o, g_off[SLOT_KIND], kind);
    slot_set(o, g_off[SLOT_START], start);
    slot_set(o, g_off[SLOT_SCOPE], scope_entries);
    slot_set(o, g_off[SLOT_ATTRS], attrs);
    slot_set(o, g_off[SLOT_STATUS], g_zero);
    slot_set(o, g_off[SLOT_ENDED], Py_False);
    slot_set(o, g_off[SLOT_X], Py_None);
    slot_set(o, g_off[SLOT_TOKEN], token);
    slot_set(o, g_off[SLOT_FORKS], forks);
  } else if (ctx != NULL && forks == NULL && !PyErr_Occurred()) {
    PyErr_SetString(PyExc_RuntimeError, "_native: _tracing._forks is missing");
  }
  Py_XDECREF(ctx);
  Py_XDECREF(forks);
  Py_XDECREF(start);
  Py_XDECREF(attrs);
  return o;
}

/* The recording server span of context ctx[] under `parent` (NULL for a
   root). */
static PyObject *new_span(const unsigned char *parent, const unsigned char *ctx_raw,
                          PyObject *tracestate, PyObject *name, PyObject *scope_entries) {
  PyObject *parent_ctx =
      parent ? PyBytes_FromStringAndSize((const char *)parent, 32) : Py_NewRef(Py_None);
  if (parent_ctx == NULL) return NULL;
  PyObject *o = make_span(name, ctx_raw, parent_ctx, tracestate, g_kind_server, scope_entries,
                          PyDict_New(), Py_None);
  Py_DECREF(parent_ctx);
  return o;
}

/* Ends a Span: packed and recorded here in the common case; anything else
   (events, links, values the packer leaves over, a fork since it started, the
   buffer in use) through its own end(), which decides as it always does.
   0, or -1 with an exception set. */
static int end_span(PyObject *span) {
  if (slot_get(span, g_off[SLOT_ENDED]) == Py_True) return 0;
  if (glob_fresh() != 0) return -1;
  if (g_glob.forks == NULL) return 0;
  /* Held: the clock may be Python code that changes _forks. */
  PyObject *forks = Py_NewRef(g_glob.forks), *end = now_ns();
  int same_process = slot_get(span, g_off[SLOT_FORKS]) == forks;
  Py_DECREF(forks);
  if (end == NULL) return -1;
  Py_ssize_t len = 0;
  if (!g_busy && slot_get(span, g_off[SLOT_X]) == Py_None && same_process) {
    PyObject *args[10] = {slot_get(span, g_off[SLOT_SCOPE]),
                          slot_get(span, g_off[SLOT_NAME]),
                          slot_get(span, g_off[SLOT_CTX]),
                          slot_get(span, g_off[SLOT_PARENT]),
                          slot_get(span, g_off[SLOT_TRACESTATE]),
                          slot_get(span, g_off[SLOT_KIND]),
                          slot_get(span, g_off[SLOT_STATUS]),
                          slot_get(span, g_off[SLOT_START]),
                          end,
                          slot_get(span, g_off[SLOT_ATTRS])};
    int complete = 1;
    for (int i = 0; i < 10; i++) complete &= args[i] != NULL;
    if (complete) len = pack(args);
  }
  if (len == 0) {
    PyObject *r = PyObject_CallMethodOneArg(span, s_end, end);
    Py_DECREF(end);
    if (r == NULL) return -1;
    Py_DECREF(r);
    return 0;
  }
  Py_DECREF(end);
  slot_set(span, g_off[SLOT_ENDED], Py_True);
  g_busy = 1;
  (void)g_record(g_buf, (size_t)len); /* RING_FULL and the like: counted by the library */
  g_busy = 0;
  return 0;
}

/* The context var reset, ignoring a token of another context (the Python
   path catches that ValueError too). */
static void reset_var(PyObject *var, PyObject **token) {
  if (*token == NULL) return;
  if (PyContextVar_Reset(var, *token) != 0) PyErr_Clear();
  Py_CLEAR(*token);
}

/* --- Span methods: the common case of `with start_as_current_span(...)` -- */

/* Tracer.start_as_current_span and Span's __enter__, __exit__ and
   set_attribute in C: the Python methods cost a frame each, together about
   half of a span's cost. Each is a NativeMethod that keeps the Python
   function it stands in for (its __wrapped__: signatures, docs and mocks
   see that one) and calls it for every case it does not take itself: other
   arguments (keywords included), an exception leaving the block, a span or
   tracer of a subclass, the OpenTelemetry bridge, and any of the module's
   functions it would bypass (the current-span store, the sampler call, the
   packer, Span.end) replaced. It decides nothing before it knows it takes
   the call. */

typedef PyObject *(*fast_fn)(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                             int *taken);

typedef struct {
  PyObject ob_base; /* PyObject_HEAD */
  vectorcallfunc vectorcall;
  PyObject *wrapped; /* the Python function */
  fast_fn fast;
  PyObject *owner; /* the class it is set on, and its name there (copies, pickles) */
  PyObject *name;
  PyObject *weakrefs; /* (signal libraries hold bound methods weakly) */
} NativeMethod;

/* Called as the Python function is, self first (a method's self is
   prepended by the interpreter or by the bound method). */
static PyObject *nm_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf,
                               PyObject *kwnames) {
  NativeMethod *m = (NativeMethod *)callable;
  int taken = 0;
  PyObject *r = m->fast(args, PyVectorcall_NARGS(nargsf), kwnames, &taken);
  if (taken) return r;
  return PyObject_Vectorcall(m->wrapped, args, nargsf, kwnames);
}

static PyObject *nm_get(PyObject *self, PyObject *obj, PyObject *type) {
  (void)type;
  if (obj == NULL || obj == Py_None) return Py_NewRef(self);
  return PyMethod_New(self, obj);
}

/* __wrapped__ is the Python function; its name, doc and module are read
   from it. */
static PyObject *nm_getattro(PyObject *self, PyObject *name) {
  PyObject *wrapped = ((NativeMethod *)self)->wrapped;
  if (PyUnicode_Check(name)) {
    if (PyUnicode_CompareWithASCIIString(name, "__wrapped__") == 0) return Py_NewRef(wrapped);
    static const char *const k_from_wrapped[] = {
        "__doc__",      "__name__",       "__qualname__", "__module__", "__annotations__",
        "__defaults__", "__kwdefaults__", "__code__",     "__globals__"};
    for (size_t i = 0; i < sizeof k_from_wrapped / sizeof k_from_wrapped[0]; i++)
      if (PyUnicode_CompareWithASCIIString(name, k_from_wrapped[i]) == 0)
        return PyObject_GetAttr(wrapped, name);
  }
  return PyObject_GenericGetAttr(self, name);
}

static PyObject *nm_repr(PyObject *self) {
  return PyUnicode_FromFormat("<native %R>", ((NativeMethod *)self)->wrapped);
}

/* Copied and pickled as the class attribute it is (as a function is). */
static PyObject *nm_reduce(PyObject *self, PyObject *unused) {
  (void)unused;
  NativeMethod *m = (NativeMethod *)self;
  PyObject *getattr = PyDict_GetItemString(PyEval_GetBuiltins(), "getattr");
  if (getattr == NULL) return NULL;
  return Py_BuildValue("O(OO)", getattr, m->owner, m->name);
}

static PyMethodDef k_nm_methods[] = {
    {"__reduce__", nm_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static int nm_traverse(PyObject *self, visitproc visit, void *arg) {
  NativeMethod *m = (NativeMethod *)self;
  Py_VISIT(m->wrapped);
  Py_VISIT(m->owner);
  Py_VISIT(m->name);
  return 0;
}

static int nm_clear(PyObject *self) {
  NativeMethod *m = (NativeMethod *)self;
  Py_CLEAR(m->wrapped);
  Py_CLEAR(m->owner);
  Py_CLEAR(m->name);
  return 0;
}

static void nm_dealloc(PyObject *self) {
  PyObject_GC_UnTrack(self);
  if (((NativeMethod *)self)->weakrefs != NULL) PyObject_ClearWeakRefs(self);
  nm_clear(self);
  PyObject_GC_Del(self);
}

static PyTypeObject NativeMethod_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "otelagent._native.NativeMethod",
    .tp_basicsize = sizeof(NativeMethod),
    .tp_dealloc = nm_dealloc,
    .tp_vectorcall_offset = offsetof(NativeMethod, vectorcall),
    .tp_repr = nm_repr,
    .tp_call = PyVectorcall_Call,
    .tp_getattro = nm_getattro,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL |
                Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_doc = "A method in C that stands in for the Python function in __wrapped__.",
    .tp_traverse = nm_traverse,
    .tp_clear = nm_clear,
    .tp_descr_get = nm_get,
    .tp_weaklistoffset = offsetof(NativeMethod, weakrefs),
    .tp_methods = k_nm_methods,
};

static PyObject *new_method(PyObject *wrapped, fast_fn fast, PyTypeObject *owner,
                            const char *name) {
  PyObject *n = PyUnicode_InternFromString(name);
  NativeMethod *m = n ? PyObject_GC_New(NativeMethod, &NativeMethod_Type) : NULL;
  if (m == NULL) {
    Py_XDECREF(n);
    return NULL;
  }
  m->vectorcall = nm_vectorcall;
  m->wrapped = Py_NewRef(wrapped);
  m->fast = fast;
  m->owner = Py_NewRef((PyObject *)owner);
  m->name = n;
  m->weakrefs = NULL;
  PyObject_GC_Track((PyObject *)m);
  return (PyObject *)m;
}

static PyTypeObject *g_tracer_type;
static Py_ssize_t g_tracer_scope; /* Tracer's _scope slot offset */
static PyObject *g_activate;      /* _tracing._ACTIVATE */
static PyObject *g_scope_class;   /* _tracing._Scope */
static PyObject *g_cur_parent;    /* _tracing._CURRENT_PARENT */
static PyObject *g_py_end;        /* the Python Span.end */

/* 1 when _tracing's function `i` is still what bind_spans() found, 0 when
   it was replaced (or removed); -1 with an exception set. */
static int unchanged(int i) {
  if (glob_fresh() != 0) return -1;
  return g_glob.same[i];
}

/* A slot's value (borrowed), or NULL with AttributeError set, as reading an
   unset slot in Python raises. */
static PyObject *slot_read(PyObject *o, int slot) {
  PyObject *v = slot_get(o, g_off[slot]);
  if (v == NULL)
    PyErr_Format(PyExc_AttributeError, "'%.100s' object has no attribute '%s'", Py_TYPE(o)->tp_name,
                 k_slot_names[slot]);
  return v;
}

/* Span.set_attribute(self, key, value). */
static PyObject *fast_set_attribute(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                                    int *taken) {
  if (nargs != 3 || kwnames != NULL || !PyObject_TypeCheck(args[0], g_span_type)) return NULL;
  *taken = 1;
  PyObject *ended = slot_read(args[0], SLOT_ENDED);
  int done = ended ? PyObject_IsTrue(ended) : -1;
  if (done < 0) return NULL;
  if (!done) {
    /* Held: storing may run Python code (a key's __eq__) that replaces it. */
    PyObject *attrs = Py_XNewRef(slot_read(args[0], SLOT_ATTRS));
    int rc = attrs ? PyObject_SetItem(attrs, args[1], args[2]) : -1;
    Py_XDECREF(attrs);
    if (rc != 0) return NULL;
  }
  Py_RETURN_NONE;
}

/* Span.__enter__(self). */
static PyObject *fast_enter(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                            int *taken) {
  if (nargs != 1 || kwnames != NULL || !PyObject_TypeCheck(args[0], g_span_type)) return NULL;
  PyObject *self = args[0], *token = slot_get(self, g_off[SLOT_TOKEN]);
  if (token == NULL) return NULL; /* the Python method raises */
  if (token == g_activate) {
    int same = unchanged(F_CUR_SET);
    if (same <= 0) {
      *taken = same < 0;
      return NULL;
    }
    *taken = 1;
    if ((token = PyContextVar_Set(g_current, self)) == NULL) return NULL;
    slot_set(self, g_off[SLOT_TOKEN], token);
    Py_DECREF(token);
  }
  *taken = 1;
  return Py_NewRef(self);
}

/* Span.__exit__(self, None, None, None), for a Span of the class itself. */
static PyObject *fast_exit(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, int *taken) {
  if (nargs != 4 || kwnames != NULL || args[2] != Py_None || Py_TYPE(args[0]) != g_span_type)
    return NULL;
  int same = 1;
  for (int i = F_CUR_RESET; same > 0 && i <= F_RECORD; i++)
    if (i != F_CONTEXT) same = unchanged(i);
  PyObject *end = same > 0 ? PyDict_GetItemWithError(g_span_type->tp_dict, s_end) : NULL;
  if (same < 0 || (end == NULL && PyErr_Occurred())) {
    *taken = 1;
    return NULL;
  }
  if (end != g_py_end) return NULL;
  *taken = 1;
  PyObject *self = args[0], *token = slot_read(self, SLOT_TOKEN);
  if (token == NULL) return NULL;
  if (token != Py_None && token != g_activate) {
    Py_INCREF(token);
    slot_set(self, g_off[SLOT_TOKEN], Py_None);
    int rc = PyContextVar_Reset(g_current, token);
    Py_DECREF(token);
    /* Exited in another context than it was entered in (a generator
       resumed elsewhere): that context is left alone, as in Python. */
    if (rc != 0) {
      if (!PyErr_ExceptionMatches(PyExc_ValueError)) return NULL;
      PyErr_Clear();
    }
  }
  if (end_span(self) != 0) return NULL;
  Py_RETURN_FALSE;
}

/* The parent's context and tracestate (new references) when the current
   span is one of _tracing's own (*pctx NULL when there is none, or when it
   is invalid: a new root); 1, or 0 when it is something else (the Python
   method decides), -1 with an exception set. */
static int current_parent(PyObject **pctx, PyObject **ts) {
  PyObject *cur;
  *pctx = NULL;
  *ts = NULL;
  if (PyContextVar_Get(g_current, NULL, &cur) != 0) return -1;
  int rc = 1;
  if (cur != NULL && cur != Py_None) {
    int span = Py_TYPE(cur) == g_span_type;
    PyObject *c = span                            ? slot_get(cur, g_off[SLOT_CTX])
                  : Py_TYPE(cur) == g_nonrec_type ? slot_get(cur, g_nr_ctx)
                                                  : NULL;
    PyObject *t = c == NULL ? NULL : slot_get(cur, span ? g_off[SLOT_TRACESTATE] : g_nr_ts);
    static const char zero8[8];
    if (t == NULL || !PyBytes_CheckExact(c) || PyBytes_GET_SIZE(c) != 32) {
      rc = 0;
    } else {
      *ts = Py_NewRef(t);
      if (memcmp(PyBytes_AS_STRING(c) + 16, zero8, 8) != 0) *pctx = Py_NewRef(c);
    }
  }
  if (rc == 1 && *ts == NULL) *ts = Py_NewRef(s_empty);
  Py_XDECREF(cur);
  return rc;
}

/* Tracer.start_as_current_span(self, name, kind=..., attributes=...) under
   the current span, the common call, as the Python method makes it: a
   recording Span (made current when entered), or a _Scope around the span
   that records nothing. */
static PyObject *fast_start(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                            int *taken) {
  if (nargs != 2 || Py_TYPE(args[0]) != g_tracer_type || PyList_GET_SIZE(g_classes) != 2 ||
      PyList_GET_ITEM(g_classes, 0) != (PyObject *)g_span_type ||
      PyList_GET_ITEM(g_classes, 1) != (PyObject *)g_nonrec_type)
    return NULL;
  PyObject *kind = g_kind_internal, *attributes = Py_None;
  for (Py_ssize_t i = 0; kwnames && i < PyTuple_GET_SIZE(kwnames); i++) {
    PyObject *k = PyTuple_GET_ITEM(kwnames, i);
    if (k == s_kind)
      kind = args[nargs + i];
    else if (k == s_attributes)
      attributes = args[nargs + i];
    else
      return NULL;
  }
  if (attributes != Py_None && !PyDict_CheckExact(attributes)) return NULL;
  int same = 1;
  for (int i = F_CUR_GET; same > 0 && i < N_FNS; i++)
    if (i != F_CUR_SET && i != F_CUR_RESET && i != F_RECORD) same = unchanged(i);
  PyObject *scope = same > 0 ? slot_get(args[0], g_tracer_scope) : NULL;
  if (same < 0) *taken = 1;
  if (scope == NULL) return NULL;
  PyObject *pctx, *ts;
  int rc = current_parent(&pctx, &ts);
  if (rc <= 0) {
    *taken = rc < 0;
    return NULL;
  }
  *taken = 1;
  /* Held: copying the attributes may run Python code (a key's __eq__)
     that replaces the tracer's or the parent's slots. */
  Py_INCREF(scope);
  PyObject *name = args[1], *out = NULL;
  unsigned char ctx[32];
  int made = g_context(pctx ? PyBytes_AS_STRING(pctx) : NULL, ctx) == 0;
  if (made && (ctx[24] & 1)) {
    PyObject *attrs = attributes != Py_None && PyDict_GET_SIZE(attributes) > 0
                          ? PyDict_Copy(attributes)
                          : PyDict_New();
    out = make_span(name, ctx, pctx ? pctx : Py_None, ts, kind, scope, attrs, g_activate);
  } else {
    /* Sampled out (ctx[] is its context), or no context made (not started,
       disabled: the parent's, if any, still propagates). */
    PyObject *own = made ? PyBytes_FromStringAndSize((const char *)ctx, 32)
                         : Py_NewRef(pctx ? pctx : g_invalid_ctx);
    PyObject *span = own ? new_nonrecording(own, ts) : NULL;
    if (span != NULL) {
      PyObject *a[] = {scope,   name,    g_cur_parent, kind,    attributes, Py_None,
                       Py_None, Py_True, Py_True,      Py_True, span};
      out = PyObject_Vectorcall(g_scope_class, a, 11, NULL);
    }
    Py_XDECREF(own);
    Py_XDECREF(span);
  }
  Py_DECREF(scope);
  Py_XDECREF(pctx);
  Py_DECREF(ts);
  return out;
}

/* Reads the slot offsets of the Span and NonRecordingSpan classes into the
   globals; 0, or -1 with an exception set. */
static int read_offsets(PyTypeObject *span, PyTypeObject *nonrec) {
  Py_ssize_t off[N_SLOTS];
  for (int i = 0; i < N_SLOTS; i++)
    if ((off[i] = slot_offset(span, k_slot_names[i])) < 0) return -1;
  Py_ssize_t nr_ctx = slot_offset(nonrec, "_ctx"), nr_ts = slot_offset(nonrec, "_tracestate");
  if (nr_ctx < 0 || nr_ts < 0) return -1;
  memcpy(g_off, off, sizeof off);
  g_nr_ctx = nr_ctx;
  g_nr_ts = nr_ts;
  return 0;
}

/* A Python function a class defines (borrowed), or NULL with an exception
   set. */
static PyObject *python_method(PyTypeObject *type, const char *name) {
  PyObject *fn = PyDict_GetItemString(type->tp_dict, name);
  if (fn == NULL || !PyFunction_Check(fn))
    PyErr_Format(PyExc_TypeError, "_native.bind_spans: %s.%s is not a Python function",
                 type->tp_name, name);
  return fn != NULL && PyFunction_Check(fn) ? fn : NULL;
}

/* bind_spans(Span, NonRecordingSpan, Tracer, _Scope, _current, _tracing's
   globals): the C methods (Span.set_attribute, Span.__enter__,
   Span.__exit__, Tracer.start_as_current_span) for _tracing to set on the
   classes, or None in an interpreter that did not bind the module. Called
   while the classes and the module still have their Python functions. */
static PyObject *native_bind_spans(PyObject *self, PyObject *args) {
  (void)self;
  PyTypeObject *span, *nonrec, *tracer, *scope_class;
  PyObject *current, *globals;
  if (!PyArg_ParseTuple(args, "O!O!O!O!O!O!", &PyType_Type, &span, &PyType_Type, &nonrec,
                        &PyType_Type, &tracer, &PyType_Type, &scope_class, &PyContextVar_Type,
                        &current, &PyDict_Type, &globals))
    return NULL;
  if (g_interp != PyInterpreterState_GetID(PyInterpreterState_Get()))
    Py_RETURN_NONE; /* see native_bind */
  Py_ssize_t scope_off = slot_offset(tracer, "_scope");
  if (scope_off < 0) return NULL;
  static const char *const k_methods_of[4][2] = {{"span", "set_attribute"},
                                                 {"span", "__enter__"},
                                                 {"span", "__exit__"},
                                                 {"tracer", "start_as_current_span"}};
  static const fast_fn k_fast[4] = {fast_set_attribute, fast_enter, fast_exit, fast_start};
  PyObject *fns[N_FNS], *end = python_method(span, "end");
  PyObject *activate = PyDict_GetItemString(globals, "_ACTIVATE");
  PyObject *cur_parent = PyDict_GetItemString(globals, "_CURRENT_PARENT");
  PyObject *classes = PyDict_GetItemString(globals, "_classes");
  PyObject *time_ns = PyDict_GetItemString(globals, "_time_ns");
  int ok = end != NULL;
  for (int i = 0; i < N_FNS; i++) ok &= (fns[i] = PyDict_GetItem(globals, *k_fn_name[i])) != NULL;
  if (ok && (activate == NULL || cur_parent == NULL || classes == NULL || time_ns == NULL ||
             !PyList_Check(classes))) {
    PyErr_SetString(PyExc_ValueError, "_native.bind_spans: _tracing is not the one expected");
    return NULL;
  }
  if (!ok) {
    if (!PyErr_Occurred())
      PyErr_SetString(PyExc_ValueError, "_native.bind_spans: a _tracing function is missing");
    return NULL;
  }
  PyObject *out = PyTuple_New(4);
  for (Py_ssize_t i = 0; out != NULL && i < 4; i++) {
    PyTypeObject *owner = k_methods_of[i][0][0] == 's' ? span : tracer;
    PyObject *py = python_method(owner, k_methods_of[i][1]);
    PyObject *m = py ? new_method(py, k_fast[i], owner, k_methods_of[i][1]) : NULL;
    if (m == NULL)
      Py_CLEAR(out);
    else
      PyTuple_SET_ITEM(out, i, m);
  }
  if (out == NULL || read_offsets(span, nonrec) != 0) {
    Py_XDECREF(out);
    return NULL;
  }
  g_glob.valid = 0; /* read against the functions below */
  for (int i = 0; i < N_FNS; i++) Py_XSETREF(g_fn0[i], Py_NewRef(fns[i]));
  Py_XSETREF(g_time_ns0, Py_NewRef(time_ns));
  Py_XSETREF(g_py_end, Py_NewRef(end));
  Py_XSETREF(g_activate, Py_NewRef(activate));
  Py_XSETREF(g_cur_parent, Py_NewRef(cur_parent));
  Py_XSETREF(g_classes, Py_NewRef(classes));
  Py_XSETREF(g_span_type, (PyTypeObject *)Py_NewRef((PyObject *)span));
  Py_XSETREF(g_nonrec_type, (PyTypeObject *)Py_NewRef((PyObject *)nonrec));
  Py_XSETREF(g_tracer_type, (PyTypeObject *)Py_NewRef((PyObject *)tracer));
  Py_XSETREF(g_scope_class, Py_NewRef((PyObject *)scope_class));
  Py_XSETREF(g_current, Py_NewRef(current));
  g_tracer_scope = scope_off;
  set_tracing_dict(globals);
  return out;
}

/* --- Server: one middleware's settings ----------------------------------- */

typedef struct {
  PyObject ob_base;        /* PyObject_HEAD */
  PyObject *scope_entries; /* the packed instrumentation scope of its spans */
  PyObject *excluded;      /* the _http.ExcludedUrls, or NULL when there is none */
  PyObject *search;        /* its compiled pattern's search */
  PyObject *full_url;      /* the middleware's _full_url(scope or environ) */
  PyObject *cache;         /* path -> whether the pattern finds it */
  PyObject *on_error;      /* WSGI: on_error(span, exc) when the application raises */
  int needs_full;
  PyObject *route_map; /* WSGI: the werkzeug Map whose matched rule names spans (Flask's
                          app.url_map), or NULL */
  PyObject *app;       /* WSGI: the application (the wsgi_app attribute), or NULL */
  int wsgi;
} Server;

static PyTypeObject ServerCall_Type;

typedef struct {
  PyObject ob_base;     /* PyObject_HEAD */
  PyObject *span;       /* Span or NonRecordingSpan */
  PyObject *token;      /* the current-span token until reset */
  PyObject *bag_token;  /* the baggage token, if baggage came */
  PyObject *target;     /* ASGI send, or WSGI start_response */
  PyObject *scope;      /* ASGI scope or WSGI environ */
  PyObject *method;     /* the request method (for the ASGI span name) */
  PyObject *first_name; /* the span's name at start: a name set since is kept */
  PyObject *status;     /* ASGI: the response status, NULL before it starts */
  PyObject *result;     /* WSGI: the application's iterable, while it streams */
  PyObject *iter;       /* ...and its iterator */
  PyObject *baggage;    /* WSGI: the request's baggage, current again while it streams */
  char wsgi, websocket, recording, ended;
  char body_closed;      /* WSGI: the application's body was closed */
  PyObject *route_map;   /* WSGI: the Server's route_map, for a recorded request */
  PyObject *close_error; /* WSGI: what the body's close() raised after its last chunk */
} ServerCall;

/* Whether `path` is excluded: 1, 0, or -1 with an exception set. */
static int server_excludes(Server *self, PyObject *path, PyObject *request) {
  PyObject *hit = PyDict_GetItemWithError(self->cache, path);
  int found;
  if (hit != NULL) {
    found = hit == Py_True;
  } else {
    if (PyErr_Occurred()) return -1;
    PyObject *m = PyObject_CallOneArg(self->search, path);
    if (m == NULL) return -1;
    found = m != Py_None;
    Py_DECREF(m);
    /* Bounded in entries and in bytes: paths are chosen by clients. */
    if (PyDict_GET_SIZE(self->cache) < EXCLUDED_CACHE_MAX &&
        PyUnicode_GET_LENGTH(path) <= EXCLUDED_CACHE_PATH_MAX &&
        PyDict_SetItem(self->cache, path, found ? Py_True : Py_False) != 0)
      return -1;
  }
  if (found || !self->needs_full) return found;
  /* A pattern that needs the full URL: the Python method tries it. */
  PyObject *r =
      PyObject_CallMethodObjArgs(self->excluded, s_excluded, path, self->full_url, request, NULL);
  if (r == NULL) return -1;
  found = PyObject_IsTrue(r);
  Py_DECREF(r);
  return found;
}

/* A header value as bytes for the library's parsers: `v` itself when bytes
   (ASGI), the Latin-1 bytes of a str (WSGI); NULL when it is neither, or a
   str beyond Latin-1 (the Python path encodes those with replacement). */
static int header_bytes(PyObject *v, const char **data, Py_ssize_t *len) {
  if (PyBytes_CheckExact(v)) {
    *data = PyBytes_AS_STRING(v);
    *len = PyBytes_GET_SIZE(v);
    return 1;
  }
  if (PyUnicode_CheckExact(v) && PyUnicode_KIND(v) == PyUnicode_1BYTE_KIND) {
    *data = (const char *)PyUnicode_1BYTE_DATA(v);
    *len = PyUnicode_GET_LENGTH(v);
    return 1;
  }
  return 0;
}

static PyObject *normalized(normalize_fn fn, const char *data, Py_ssize_t len) {
  char buf[NORMALIZED_MAX];
  size_t written = 0;
  if (fn(data, (size_t)len, buf, sizeof buf, &written) != 0) return Py_NewRef(s_empty);
  return PyUnicode_DecodeASCII(buf, (Py_ssize_t)written, "replace");
}

/* The trace headers of a request, borrowed (NULL when absent). */
typedef struct {
  PyObject *tp, *ts, *bag, *xray;
} TraceHeaders;

/* The remote parent and baggage from the trace headers, as
   propagation.extract_values finds them. Writes the parent's 32-byte context
   to parent[] and sets *has_parent; sets *tracestate (new reference) and
   *baggage (new reference, "" when none). 1; 0 when a value is not one this
   code reads (the Python path takes the request); -1 with an exception set. */
static int extract(const TraceHeaders *h, unsigned char *parent, int *has_parent,
                   PyObject **tracestate, PyObject **baggage) {
  const char *d;
  Py_ssize_t n;
  *has_parent = 0;
  *tracestate = Py_NewRef(s_empty);
  *baggage = Py_NewRef(s_empty);
  if (h->tp != NULL && g_prop_tc) {
    if (!header_bytes(h->tp, &d, &n)) return 0;
    if (n > 0 && g_traceparent(d, (size_t)n, parent) == 0) {
      *has_parent = 1;
      if (h->ts != NULL) {
        if (!header_bytes(h->ts, &d, &n)) return 0;
        if (n > 0) {
          Py_SETREF(*tracestate, normalized(g_tracestate_norm, d, n));
          if (*tracestate == NULL) return -1;
        }
      }
    }
  }
  if (!*has_parent && h->xray != NULL && g_prop_xray) {
    if (!header_bytes(h->xray, &d, &n)) return 0;
    if (n > 0 && g_xray(d, (size_t)n, parent) == 0) *has_parent = 1;
  }
  if (h->bag != NULL && g_prop_bag) {
    if (!header_bytes(h->bag, &d, &n)) return 0;
    if (n > 0) {
      Py_SETREF(*baggage, normalized(g_baggage_norm, d, n));
      if (*baggage == NULL) return -1;
    }
  }
  return 1;
}

/* attrs[key] = value, value a new reference (NULL: the error is passed on). */
static int put(PyObject *attrs, PyObject *key, PyObject *value) {
  if (value == NULL) return -1;
  int rc = PyDict_SetItem(attrs, key, value);
  Py_DECREF(value);
  return rc;
}

/* server.address and server.port from a Host header, through _http's cache. */
static int put_host(PyObject *attrs, PyObject *host, PyObject *default_port) {
  PyObject *hp = PyDict_GetItemWithError(g_hosts, host);
  if (hp != NULL) {
    Py_INCREF(hp);
  } else {
    if (PyErr_Occurred()) return -1;
    hp = PyObject_CallFunctionObjArgs(g_server_host, host, default_port, NULL);
    if (hp == NULL) return -1;
  }
  int rc = -1;
  if (PyTuple_Check(hp) && PyTuple_GET_SIZE(hp) == 2) {
    rc = PyDict_SetItem(attrs, a_server_address, PyTuple_GET_ITEM(hp, 0)) ||
                 PyDict_SetItem(attrs, a_server_port, PyTuple_GET_ITEM(hp, 1))
             ? -1
             : 0;
  } else {
    PyErr_SetString(PyExc_TypeError, "_http.server_host did not return a pair");
  }
  Py_DECREF(hp);
  return rc;
}

static int put_method(PyObject *attrs, PyObject *method, int known) {
  if (known) return PyDict_SetItem(attrs, a_method, method);
  if (PyDict_SetItem(attrs, a_method, a_other) != 0) return -1;
  return PyDict_SetItem(attrs, a_method_original, method);
}

static int put_query(PyObject *attrs, PyObject *query) {
  return put(attrs, a_url_query, PyObject_CallOneArg(g_redact, query));
}

/* dict.get(key, default) with a borrowed result; NULL only on error. */
static PyObject *get_or(PyObject *d, PyObject *key, PyObject *dflt) {
  PyObject *v = PyDict_GetItemWithError(d, key);
  if (v == NULL && !PyErr_Occurred()) return dflt;
  return v;
}

/* The ASGI request's attributes (asgi.py's Python path writes the same). */
static int asgi_attrs(PyObject *attrs, PyObject *scope, PyObject *method, int known, PyObject *path,
                      PyObject *host, PyObject *ua) {
  PyObject *scheme = get_or(scope, s_scheme, s_http_scheme);
  PyObject *q = scheme ? get_or(scope, s_query_string, Py_None) : NULL;
  PyObject *server = q ? get_or(scope, s_server, Py_None) : NULL;
  PyObject *client = server ? get_or(scope, s_client, Py_None) : NULL;
  PyObject *proto = client ? get_or(scope, s_http_version, s_v11) : NULL;
  if (proto == NULL) return -1;
  if (put_method(attrs, method, known) || PyDict_SetItem(attrs, a_url_path, path) ||
      PyDict_SetItem(attrs, a_url_scheme, scheme))
    return -1;
  int t = PyObject_IsTrue(q);
  if (t < 0) return -1;
  if (t) {
    if (!PyBytes_Check(q)) {
      PyErr_SetString(PyExc_TypeError, "scope['query_string'] is not bytes");
      return -1;
    }
    PyObject *text = PyUnicode_DecodeLatin1(PyBytes_AS_STRING(q), PyBytes_GET_SIZE(q), NULL);
    if (text == NULL) return -1;
    int rc = put_query(attrs, text);
    Py_DECREF(text);
    if (rc) return -1;
  }
  int has_server = PyObject_IsTrue(server);
  if (has_server < 0) return -1;
  if (host != NULL) {
    PyObject *port;
    if (has_server) {
      port = PySequence_GetItem(server, 1);
    } else {
      int tls = PyObject_RichCompareBool(scheme, s_https, Py_EQ);
      if (tls == 0) tls = PyObject_RichCompareBool(scheme, s_wss, Py_EQ);
      if (tls < 0) return -1;
      port = Py_NewRef(tls ? g_port_443 : g_port_80);
    }
    if (port == NULL) return -1;
    int rc = put_host(attrs, host, port);
    Py_DECREF(port);
    if (rc) return -1;
  } else if (has_server) {
    if (put(attrs, a_server_address, PySequence_GetItem(server, 0)) ||
        put(attrs, a_server_port, PySequence_GetItem(server, 1)))
      return -1;
  }
  t = PyObject_IsTrue(client);
  if (t < 0 || (t && put(attrs, a_client_address, PySequence_GetItem(client, 0)))) return -1;
  if (ua != NULL && put(attrs, a_user_agent,
                        PyUnicode_DecodeLatin1(PyBytes_AS_STRING(ua), PyBytes_GET_SIZE(ua), NULL)))
    return -1;
  return PyDict_SetItem(attrs, a_protocol, proto);
}

/* The WSGI request's attributes (wsgi.py's Python path writes the same). */
static int wsgi_attrs(PyObject *attrs, PyObject *environ, PyObject *method, int known,
                      PyObject *path) {
  PyObject *scheme = get_or(environ, s_url_scheme_env, s_http_scheme);
  if (scheme == NULL || put_method(attrs, method, known) ||
      PyDict_SetItem(attrs, a_url_path, path) || PyDict_SetItem(attrs, a_url_scheme, scheme))
    return -1;
  PyObject *v = get_or(environ, s_query_env, Py_None);
  int t = v ? PyObject_IsTrue(v) : -1;
  if (t < 0 || (t && PyUnicode_Check(v) && put_query(attrs, v))) return -1;
  v = get_or(environ, s_host_env, Py_None);
  t = v ? PyObject_IsTrue(v) : -1;
  if (t < 0) return -1;
  if (t) {
    int tls = PyObject_RichCompareBool(scheme, s_https, Py_EQ);
    if (tls < 0 || put_host(attrs, v, tls ? g_port_443 : g_port_80)) return -1;
  } else {
    PyObject *name = get_or(environ, s_server_name, s_empty);
    PyObject *port = name ? get_or(environ, s_server_port, g_zero) : NULL;
    if (port == NULL || PyDict_SetItem(attrs, a_server_address, name)) return -1;
    PyObject *n = PyNumber_Long(port);
    if (n == NULL) {
      PyErr_Clear(); /* not a number: no server.port, as in Python */
    } else if (put(attrs, a_server_port, n)) {
      return -1;
    }
  }
  v = get_or(environ, s_remote_addr, Py_None);
  t = v ? PyObject_IsTrue(v) : -1;
  if (t < 0 || (t && PyDict_SetItem(attrs, a_client_address, v))) return -1;
  v = get_or(environ, s_ua_env, Py_None);
  t = v ? PyObject_IsTrue(v) : -1;
  if (t < 0 || (t && PyDict_SetItem(attrs, a_user_agent, v))) return -1;
  v = get_or(environ, s_protocol_env, s_empty);
  if (v == NULL) return -1;
  if (PyUnicode_Check(v)) {
    Py_ssize_t m = PyUnicode_Tailmatch(v, s_HTTP_prefix, 0, PY_SSIZE_T_MAX, -1);
    if (m < 0) return -1;
    if (m && put(attrs, a_protocol, PyUnicode_Substring(v, 5, PyUnicode_GET_LENGTH(v)))) return -1;
  }
  return 0;
}

/* Scans ASGI headers (an iterable of [name, value] pairs, lower-case bytes
   names). 1; 0 when something about them sends the request to the Python
   path; -1 with an exception set. */
static int asgi_headers(PyObject *headers, TraceHeaders *h, PyObject **host, PyObject **ua) {
  /* Other iterables: the Python path, which iterates them itself. */
  if (!PyList_CheckExact(headers) && !PyTuple_CheckExact(headers)) return 0;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(headers);
  PyObject **items = PySequence_Fast_ITEMS(headers);
  int rc = 1;
  for (Py_ssize_t i = 0; i < n && rc == 1; i++) {
    PyObject *pair = items[i], *k, *v;
    if (PyTuple_CheckExact(pair) && PyTuple_GET_SIZE(pair) == 2) {
      k = PyTuple_GET_ITEM(pair, 0);
      v = PyTuple_GET_ITEM(pair, 1);
    } else if (PyList_CheckExact(pair) && PyList_GET_SIZE(pair) == 2) {
      k = PyList_GET_ITEM(pair, 0);
      v = PyList_GET_ITEM(pair, 1);
    } else {
      rc = 0;
      break;
    }
    if (!PyBytes_CheckExact(k)) {
      rc = 0;
      break;
    }
    const char *name = PyBytes_AS_STRING(k);
    PyObject **slot = NULL;
    int repeat_ok = 1;
    switch (PyBytes_GET_SIZE(k)) {
      case 4:
        if (memcmp(name, "host", 4) == 0) slot = host;
        break;
      case 7:
        if (memcmp(name, "baggage", 7) == 0) slot = &h->bag, repeat_ok = 0;
        break;
      case 10:
        if (memcmp(name, "user-agent", 10) == 0)
          slot = ua;
        else if (memcmp(name, "tracestate", 10) == 0)
          slot = &h->ts, repeat_ok = 0;
        break;
      case 11:
        if (memcmp(name, "traceparent", 11) == 0) slot = &h->tp;
        break;
      case 15:
        if (memcmp(name, "x-amzn-trace-id", 15) == 0) slot = &h->xray;
        break;
      default:
        break;
    }
    if (slot == NULL) continue;
    /* Values joined with "," (tracestate, baggage) and values that are not
       bytes: the Python path. A repeated header otherwise: the last wins. */
    if (!PyBytes_CheckExact(v) || (*slot != NULL && !repeat_ok)) rc = 0;
    *slot = v;
  }
  return rc;
}

static ServerCall *new_call(int wsgi) {
  ServerCall *c = PyObject_GC_New(ServerCall, &ServerCall_Type);
  if (c == NULL) return NULL;
  c->span = c->token = c->bag_token = c->target = c->scope = NULL;
  c->method = c->first_name = c->status = c->result = c->iter = c->baggage = NULL;
  c->wsgi = (char)wsgi;
  c->websocket = c->recording = c->ended = c->body_closed = 0;
  c->route_map = c->close_error = NULL;
  PyObject_GC_Track((PyObject *)c);
  return c;
}

/* Undoes what begin() did when it fails half-way (the request then goes on
   untraced or through the Python path). */
static void unwind_call(ServerCall *c) {
  reset_var(g_current, &c->token);
  reset_var(g_baggage_var, &c->bag_token);
  if (c->scope != NULL && PyDict_Check(c->scope) &&
      PyDict_GetItemWithError(c->scope, s_span_key) == c->span && c->span != NULL)
    (void)PyDict_DelItem(c->scope, s_span_key);
  PyErr_Clear();
}

/* Server.begin(scope, send) / begin(environ, start_response): the request's
   ServerCall (to pass on as its send / start_response), None when it is not
   traced (not http or websocket, excluded, or an outer middleware traces
   it), NotImplemented when the Python path must take it. */
static PyObject *server_begin(Server *self, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "Server.begin(scope, send) takes 2 arguments");
    return NULL;
  }
  PyObject *scope = args[0], *target = args[1];
  if (g_span_type == NULL || g_context == NULL || self->scope_entries == NULL) {
    PyErr_SetString(PyExc_RuntimeError,
                    "_native: bind_server() was not called, or Server.__init__ was not");
    return NULL;
  }
  /* Only the interpreter that bound the module uses it (see native_bind);
     this is a second guard. */
  if (PyInterpreterState_GetID(PyInterpreterState_Get()) != g_interp) Py_RETURN_NOTIMPLEMENTED;
  /* The OpenTelemetry bridge's classes (and its current-span storage). */
  if (PyList_GET_SIZE(g_classes) != 2 || PyList_GET_ITEM(g_classes, 0) != (PyObject *)g_span_type ||
      PyList_GET_ITEM(g_classes, 1) != (PyObject *)g_nonrec_type || !PyDict_CheckExact(scope))
    Py_RETURN_NOTIMPLEMENTED;
  int websocket = 0;
  PyObject *path;
  TraceHeaders h = {NULL, NULL, NULL, NULL};
  PyObject *host = NULL, *ua = NULL; /* borrowed */
  if (!self->wsgi) {
    PyObject *typ = PyDict_GetItemWithError(scope, s_type);
    if (typ == NULL) return PyErr_Occurred() ? NULL : Py_NewRef(Py_NotImplemented);
    int served = typ == s_http ? 1 : PyObject_RichCompareBool(typ, s_http, Py_EQ);
    if (served == 0)
      served = websocket =
          typ == s_websocket ? 1 : PyObject_RichCompareBool(typ, s_websocket, Py_EQ);
    if (served < 0) {
      PyErr_Clear(); /* a type that does not compare: the Python path decides */
      Py_RETURN_NOTIMPLEMENTED;
    }
    if (!served) Py_RETURN_NONE; /* lifespan: the middleware passes it on */
    path = PyDict_GetItemWithError(scope, s_path);
    if (path == NULL || !PyUnicode_CheckExact(path)) {
      if (PyErr_Occurred()) return NULL;
      Py_RETURN_NOTIMPLEMENTED;
    }
  } else {
    path = get_or(scope, s_path_info, s_empty);
    if (path == NULL) return NULL;
    if (!PyUnicode_CheckExact(path)) Py_RETURN_NOTIMPLEMENTED;
    if (PyUnicode_GET_LENGTH(path) == 0) path = s_slash;
  }
  int nested = PyDict_Contains(scope, s_span_key);
  if (nested != 0) return nested < 0 ? NULL : Py_NewRef(Py_None);
  if (self->excluded != NULL) {
    int ex = server_excludes(self, path, scope);
    if (ex != 0) return ex < 0 ? NULL : Py_NewRef(Py_None);
  }
  if (!self->wsgi) {
    PyObject *headers = PyDict_GetItemWithError(scope, s_headers);
    if (headers == NULL) return PyErr_Occurred() ? NULL : Py_NewRef(Py_NotImplemented);
    int rc = asgi_headers(headers, &h, &host, &ua);
    if (rc <= 0) return rc < 0 ? NULL : Py_NewRef(Py_NotImplemented);
    /* A query string of another type than the spec's bytes: Python decides. */
    PyObject *q = PyDict_GetItemWithError(scope, s_query_string);
    if (q == NULL && PyErr_Occurred()) return NULL;
    if (q != NULL && q != Py_None && !PyBytes_CheckExact(q)) Py_RETURN_NOTIMPLEMENTED;
  } else {
    /* Only the headers extract() will read: each lookup in a large environ
       counts on every request. */
    if (g_prop_tc && (h.tp = get_or(scope, s_tp_env, NULL)) == NULL && PyErr_Occurred())
      return NULL;
    if (h.tp != NULL && (h.ts = get_or(scope, s_ts_env, NULL)) == NULL && PyErr_Occurred())
      return NULL;
    if (g_prop_bag && (h.bag = get_or(scope, s_bag_env, NULL)) == NULL && PyErr_Occurred())
      return NULL;
    if (g_prop_xray && (h.xray = get_or(scope, s_xray_env, NULL)) == NULL && PyErr_Occurred())
      return NULL;
  }

  unsigned char parent[32], ctx[32];
  int has_parent;
  PyObject *tracestate, *baggage, *span = NULL, *method = NULL, *name = NULL;
  ServerCall *c = NULL;
  int rc = extract(&h, parent, &has_parent, &tracestate, &baggage);
  if (rc <= 0) {
    Py_DECREF(tracestate);
    Py_DECREF(baggage);
    return rc < 0 ? NULL : Py_NewRef(Py_NotImplemented);
  }
  int recording = decide(has_parent ? parent : NULL, tracestate, ctx, &span);
  if (recording < 0) goto fail;
  int known = 0;
  if (recording) {
    /* The method only names and describes a span that records. */
    method = self->wsgi  ? get_or(scope, s_request_method, s_GET)
             : websocket ? s_GET
                         : get_or(scope, s_method, s_GET);
    if (method == NULL) goto fail;
    /* Only a str names a known method (as _http.known_method decides); one
       that cannot be hashed or compared is an unknown one. */
    known = PyUnicode_Check(method) ? PySet_Contains(g_known, method) : 0;
    if (known < 0) {
      PyErr_Clear();
      known = 0;
    }
    name = known ? method : s_HTTP;
    span = new_span(has_parent ? parent : NULL, ctx, tracestate, name, self->scope_entries);
    if (span == NULL) goto fail;
  }
  c = new_call(self->wsgi);
  if (c == NULL) goto fail;
  c->span = span; /* the call owns it now */
  span = NULL;
  c->websocket = (char)websocket;
  c->target = Py_NewRef(target);
  c->scope = Py_NewRef(scope);
  if (PyUnicode_GET_LENGTH(baggage) > 0) {
    c->baggage = Py_NewRef(baggage);
    c->bag_token = PyContextVar_Set(g_baggage_var, baggage);
    if (c->bag_token == NULL) goto fail;
  }
  /* The span in the scope: an inner middleware leaves the request to it,
     the Flask integration names it after the route. */
  if (PyDict_SetItem(scope, s_span_key, c->span) != 0) goto fail;
  c->token = PyContextVar_Set(g_current, c->span);
  if (c->token == NULL) goto fail;
  if (recording) {
    c->recording = 1;
    c->method = Py_NewRef(method);
    c->first_name = Py_NewRef(name);
    if (self->route_map != NULL) c->route_map = Py_NewRef(self->route_map);
    PyObject *attrs = slot_get(c->span, g_off[SLOT_ATTRS]);
    if ((self->wsgi ? wsgi_attrs(attrs, scope, method, known, path)
                    : asgi_attrs(attrs, scope, method, known, path, host, ua)) != 0)
      goto fail;
  }
  Py_DECREF(tracestate);
  Py_DECREF(baggage);
  return (PyObject *)c;

fail:
  /* Something in the request this code did not expect (a value of an odd
     type, say): nothing of it is left current, and the Python path takes
     the request, as it would without this module. */
  if (c != NULL) {
    unwind_call(c);
    Py_DECREF(c);
  }
  Py_XDECREF(span);
  PyErr_Clear();
  Py_DECREF(tracestate);
  Py_DECREF(baggage);
  Py_RETURN_NOTIMPLEMENTED;
}

static int server_init(Server *self, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"wsgi",     "scope_entries",  "excluded", "full_url",
                           "on_error", "werkzeug_route", NULL};
  int wsgi;
  PyObject *entries, *excluded, *full_url, *on_error = Py_None, *route_map = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "pO!OO|OO", kwlist, &wsgi, &PyBytes_Type, &entries,
                                   &excluded, &full_url, &on_error, &route_map))
    return -1;
  Py_XSETREF(self->route_map, route_map == Py_None ? NULL : Py_NewRef(route_map));
  Py_XSETREF(self->on_error, on_error == Py_None ? NULL : Py_NewRef(on_error));
  self->wsgi = wsgi;
  Py_XSETREF(self->scope_entries, Py_NewRef(entries));
  Py_XSETREF(self->full_url, Py_NewRef(full_url));
  Py_XSETREF(self->cache, PyDict_New());
  if (self->cache == NULL) return -1;
  Py_CLEAR(self->excluded);
  Py_CLEAR(self->search);
  if (excluded != Py_None) {
    PyObject *re = PyObject_GetAttrString(excluded, "_re");
    PyObject *full = re ? PyObject_GetAttrString(excluded, "_needs_full") : NULL;
    if (full == NULL) {
      Py_XDECREF(re);
      return -1;
    }
    self->needs_full = PyObject_IsTrue(full);
    Py_DECREF(full);
    if (re != Py_None) {
      self->search = PyObject_GetAttr(re, s_search);
      self->excluded = Py_NewRef(excluded);
    }
    Py_DECREF(re);
    if (self->needs_full < 0 || (re != Py_None && self->search == NULL)) return -1;
  }
  return 0;
}

static int server_traverse(Server *self, visitproc visit, void *arg) {
  Py_VISIT(self->excluded);
  Py_VISIT(self->search);
  Py_VISIT(self->full_url);
  Py_VISIT(self->cache);
  Py_VISIT(self->on_error);
  Py_VISIT(self->route_map);
  Py_VISIT(self->app);
  return 0;
}

static int server_clear(Server *self) {
  Py_CLEAR(self->scope_entries);
  Py_CLEAR(self->excluded);
  Py_CLEAR(self->search);
  Py_CLEAR(self->full_url);
  Py_CLEAR(self->cache);
  Py_CLEAR(self->on_error);
  Py_CLEAR(self->route_map);
  Py_CLEAR(self->app);
  return 0;
}

static void server_dealloc(Server *self) {
  PyObject_GC_UnTrack(self);
  server_clear(self);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef k_server_methods[] = {
    {"begin", (PyCFunction)(void (*)(void))server_begin, METH_FASTCALL,
     "begin(scope, send) or begin(environ, start_response) -> ServerCall, None "
     "(not traced) or NotImplemented (the Python path takes it)"},
    {NULL, NULL, 0, NULL},
};

/* wsgi_app is kept in the struct: the C __call__ reads it without an
   attribute lookup on every request. */
static PyObject *server_get_app(Server *self, void *closure) {
  (void)closure;
  if (self->app == NULL) {
    PyErr_Format(PyExc_AttributeError, "'%.100s' object has no attribute 'wsgi_app'",
                 Py_TYPE(self)->tp_name);
    return NULL;
  }
  return Py_NewRef(self->app);
}

static int server_set_app(Server *self, PyObject *v, void *closure) {
  (void)closure;
  if (v == NULL && self->app == NULL) {
    PyErr_SetString(PyExc_AttributeError, "wsgi_app");
    return -1;
  }
  Py_XSETREF(self->app, Py_XNewRef(v));
  return 0;
}

static PyGetSetDef k_server_getset[] = {
    {"wsgi_app", (getter)server_get_app, (setter)server_set_app,
     "the WSGI application this middleware calls", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyObject *server_call(Server *self, PyObject *args, PyObject *kwargs);

static PyTypeObject Server_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "otelagent._native.Server",
    .tp_basicsize = sizeof(Server),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .tp_doc =
        "Server(wsgi, scope_entries, excluded, full_url, on_error=None, werkzeug_route=None): one "
        "middleware's settings; called as a WSGI application by a subclass that has "
        "wsgi_app and _python_path (integrations/wsgi.py).",
    .tp_call = (ternaryfunc)server_call,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)server_init,
    .tp_traverse = (traverseproc)server_traverse,
    .tp_clear = (inquiry)server_clear,
    .tp_dealloc = (destructor)server_dealloc,
    .tp_methods = k_server_methods,
    .tp_getset = k_server_getset,
};

/* --- ServerCall: one traced request -------------------------------------- */

/* The ASGI span's name and route, then its status, as asgi.py's Python path
   sets them at the end. */
/* The route template the framework reports in scope["route"] (new
   reference), or NULL, also when looking it up raises (as
   asgi._route_template: the request's own outcome stands). */
static PyObject *route_template(PyObject *scope) {
  PyObject *route = PyDict_GetItemWithError(scope, s_route), *template = NULL;
  if (route != NULL && optional_attr(route, s_path_format, &template) >= 0) {
    int t = template ? PyObject_IsTrue(template) : 0;
    if (t == 0) {
      Py_CLEAR(template);
      if (optional_attr(route, s_path, &template) >= 0)
        t = template ? PyObject_IsTrue(template) : 0;
    }
    if (t <= 0) Py_CLEAR(template);
  }
  PyErr_Clear();
  return template;
}

static int asgi_conclude(ServerCall *c) {
  PyObject *span = c->span, *attrs = slot_get(span, g_off[SLOT_ATTRS]);
  PyObject *template = route_template(c->scope);
  /* A name the application set (update_name) is kept. */
  int rename = slot_get(span, g_off[SLOT_NAME]) == c->first_name;
  if (template != NULL) {
    int rc = PyDict_SetItem(attrs, a_route, template);
    if (rc == 0 && rename) {
      PyObject *name =
          PyUnicode_FromFormat("%S %S", c->websocket ? s_WEBSOCKET : c->method, template);
      if (name == NULL) {
        PyErr_Clear(); /* a template without a text: the name stays */
      } else {
        slot_set(span, g_off[SLOT_NAME], name);
        Py_DECREF(name);
      }
    }
    Py_DECREF(template);
    if (rc) return -1;
  } else if (c->websocket && rename) {
    slot_set(span, g_off[SLOT_NAME], s_WEBSOCKET);
  }
  return 0;
}

/* http.response.status_code, and ERROR for a 5xx (both paths). */
static int note_status(ServerCall *c, PyObject *code) {
  PyObject *span = c->span, *attrs = slot_get(span, g_off[SLOT_ATTRS]);
  if (PyDict_SetItem(attrs, a_status_code, code) != 0) return -1;
  PyObject *limit = PyLong_FromLong(500);
  int server_error = limit ? PyObject_RichCompareBool(code, limit, Py_GE) : -1;
  Py_XDECREF(limit);
  if (server_error <= 0) return server_error;
  PyObject *st = slot_get(span, g_off[SLOT_STATUS]);
  if (PyLong_CheckExact(st) && PyLong_AsLong(st) != 2) {
    PyObject *two = PyLong_FromLong(2);
    PyObject *r = two ? PyObject_CallMethodOneArg(span, s_set_status, two) : NULL;
    Py_XDECREF(two);
    if (r == NULL) return -1;
    Py_DECREF(r);
  }
  if (PyDict_GetItemWithError(attrs, a_error_type) != NULL) return 0;
  if (PyErr_Occurred()) return -1;
  return put(attrs, a_error_type, PyObject_Str(code));
}

/* When a recorded WSGI request's response starts (its start_response), for
   Flask: http.route and the name `METHOD rule` from the rule werkzeug
   matched, environ["werkzeug.request"].url_rule.rule (Flask empties that
   entry when the request ends, just after). A name the application set
   (update_name) is kept. Naming here costs nothing on requests that record
   nothing, and needs no attribute of ours on the Flask app. A failure leaves
   the span as it is: it is not the application's. */
static void name_after_werkzeug_rule(ServerCall *c) {
  PyObject *request = PyDict_GetItemWithError(c->scope, s_werkzeug_request); /* borrowed */
  PyObject *rule = NULL, *template = NULL;
  if (request == NULL || request == Py_None) goto done;
  if ((rule = PyObject_GetAttr(request, s_url_rule)) == NULL || rule == Py_None) goto done;
  /* A rule of this app's map: not one of an app mounted inside it, which
     sees the same environ without the mount's prefix. */
  if ((template = PyObject_GetAttr(rule, s_map)) == NULL || template != c->route_map) goto done;
  Py_SETREF(template, PyObject_GetAttr(rule, s_rule));
  if (template == NULL || !PyUnicode_Check(template)) goto done;
  PyObject *span = c->span;
  if (PyDict_SetItem(slot_get(span, g_off[SLOT_ATTRS]), a_route, template) != 0) goto done;
  if (slot_get(span, g_off[SLOT_NAME]) == c->first_name) {
    PyObject *name = PyUnicode_FromFormat("%S %S", c->first_name, template);
    if (name != NULL) {
      slot_set(span, g_off[SLOT_NAME], name);
      Py_DECREF(name);
    }
  }
done:
  PyErr_Clear();
  Py_XDECREF(rule);
  Py_XDECREF(template);
}

/* Ends the span once (records it); the current span and baggage are reset
   first if they were not. */
static int call_end(ServerCall *c) {
  reset_var(g_current, &c->token);
  reset_var(g_baggage_var, &c->bag_token);
  if (c->ended) return 0;
  c->ended = 1;
  if (!c->recording) return 0;
  if (!c->wsgi && (asgi_conclude(c) != 0 || (c->status && note_status(c, c->status) != 0))) {
    /* Still ended (recorded without what failed), and the error passed on. */
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (end_span(c->span) != 0) PyErr_Clear();
    PyErr_Restore(type, value, tb);
    return -1;
  }
  return end_span(c->span);
}

/* finish(): after the application returned or raised (ASGI), or raised
   (WSGI). */
static PyObject *call_finish(ServerCall *c, PyObject *unused) {
  (void)unused;
  if (call_end(c) != 0) return NULL;
  Py_RETURN_NONE;
}

/* Whether result is a file the server sends as it is: a file object (what
   uWSGI's wsgi.file_wrapper returns, the file it was given) or an instance
   of the server's wsgi.file_wrapper class (gunicorn's, waitress's). A
   server uses sendfile only when it gets that object back, and reading it
   runs none of the application's code. */
static int is_server_file(ServerCall *c, PyObject *result) {
  if (PyObject_TypeCheck(result, g_iobase)) return 1;
  if (c->scope == NULL || !PyDict_Check(c->scope)) return 0;
  PyObject *wrapper = PyDict_GetItemWithError(c->scope, s_file_wrapper); /* borrowed */
  if (wrapper == NULL) {
    if (PyErr_Occurred()) PyErr_Clear(); /* a key's __eq__ failed: not the server's file */
    return 0;
  }
  return PyType_Check(wrapper) && PyObject_TypeCheck(result, (PyTypeObject *)wrapper);
}

/* closing(result) (WSGI): what to return to the server. A body given whole,
   or a file the server sends itself, ends the span at once; a streamed one
   when it ends or the server closes it. */
static PyObject *call_closing(ServerCall *c, PyObject *result) {
  reset_var(g_current, &c->token);
  reset_var(g_baggage_var, &c->bag_token);
  if (c->ended) return Py_NewRef(result);
  /* A body given whole, or the call itself (not an iterable of the
     application's: iterating it would recurse), ends the span now. */
  if (PyList_CheckExact(result) || PyTuple_CheckExact(result) || result == (PyObject *)c ||
      is_server_file(c, result)) {
    if (call_end(c) != 0) return NULL;
    return Py_NewRef(result);
  }
  /* Streamed, even when the span records nothing: spans the body makes are
     its children (sampled out with it, not new roots). */
  Py_XSETREF(c->result, Py_NewRef(result));
  return Py_NewRef((PyObject *)c);
}

/* Makes the request's span and baggage current again in the current context
   (for a streamed body), and only them: whatever else the body sets or
   resets happens in the server's context, as without this middleware. 0, or
   -1 with an exception set. */
static int request_enter(ServerCall *c, PyObject **token, PyObject **bag_token) {
  *bag_token = NULL;
  if ((*token = PyContextVar_Set(g_current, c->span)) == NULL) return -1;
  if (c->baggage != NULL && (*bag_token = PyContextVar_Set(g_baggage_var, c->baggage)) == NULL) {
    reset_var(g_current, token);
    return -1;
  }
  return 0;
}

/* Undoes request_enter, keeping whatever exception is set. */
static void request_leave(PyObject **token, PyObject **bag_token) {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  reset_var(g_baggage_var, bag_token);
  reset_var(g_current, token);
  PyErr_Restore(type, value, tb);
}

/* The application's close() of a streamed body (once), with the span and
   baggage current (the cleanup of a body closed before its end, the client
   gone, may make spans), unless the caller already made them current. A new
   reference to what it returned, or NULL with an exception set. */
static PyObject *close_app(ServerCall *c, int entered) {
  PyObject *result = c->result, *close;
  if (result == NULL || c->body_closed) Py_RETURN_NONE;
  c->body_closed = 1;
  c->result = NULL;
  Py_CLEAR(c->iter);
  PyObject *r = NULL;
  if (optional_attr(result, s_close, &close) >= 0) {
    r = Py_NewRef(Py_None);
    if (close == Py_None) Py_CLEAR(close); /* absent, as for the Python path's getattr */
    PyObject *token = NULL, *bag_token = NULL;
    if (close != NULL && !entered && request_enter(c, &token, &bag_token) != 0) {
      Py_CLEAR(r);
    } else if (close != NULL) {
      Py_SETREF(r, PyObject_CallNoArgs(close));
      request_leave(&token, &bag_token);
    }
    Py_XDECREF(close);
  }
  Py_DECREF(result);
  return r;
}

/* The span ends after the body's close(), whatever that did: what close()
   returned (r), or NULL with its exception set. */
static PyObject *end_after(ServerCall *c, PyObject *r) {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  int rc = call_end(c);
  if (type != NULL) {
    if (rc != 0) PyErr_Clear(); /* the application's error is the one to see */
    PyErr_Restore(type, value, tb);
    return NULL;
  }
  if (rc != 0) Py_CLEAR(r);
  return r;
}

/* close() of a streamed WSGI body, from the server: the body's end, unless
   its last chunk already was; then what the body's close() raised there. */
static PyObject *call_close(ServerCall *c, PyObject *unused) {
  (void)unused;
  PyObject *e = c->close_error;
  if (e != NULL) {
    c->close_error = NULL;
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(e)), e, PyException_GetTraceback(e));
    return NULL;
  }
  if (c->body_closed && c->ended) Py_RETURN_NONE; /* the usual case: ended at its last chunk */
  return end_after(c, close_app(c, 0));
}

static PyObject *call_iter(ServerCall *c) {
  if (c->result == NULL && !c->body_closed) {
    PyErr_SetString(PyExc_TypeError, "ServerCall: not a streamed body");
    return NULL;
  }
  if (c->iter == NULL && !c->body_closed && (c->iter = PyObject_GetIter(c->result)) == NULL)
    return NULL;
  return Py_NewRef((PyObject *)c);
}

/* Hands the exception being raised (fetched into *type, *value, *tb, and
   kept for the caller to restore) to hook(span, exc) when it is an
   Exception; a failing hook is ignored: the application's error is the one
   to see. */
static void report_failure(PyObject *hook, PyObject *span, PyObject **type, PyObject **value,
                           PyObject **tb) {
  if (hook == NULL || *type == NULL || !PyErr_GivenExceptionMatches(*type, PyExc_Exception)) return;
  PyErr_NormalizeException(type, value, tb);
  if (*tb != NULL && *value != NULL) PyException_SetTraceback(*value, *tb);
  PyObject *r = PyObject_CallFunctionObjArgs(hook, span, *value ? *value : Py_None, NULL);
  if (r == NULL) PyErr_Clear();
  Py_XDECREF(r);
}

/* The next chunk, made with the request's span and baggage current (spans
   the body starts are its children), and only during this call: between
   chunks nothing of the request is current in the server, which may run
   other work, or the next call in another thread or context. After the last
   chunk, still in this call, the body's close() runs and the span ends (as
   in the OpenTelemetry WSGI middleware): the server's close() then finds
   nothing left to do, and one set and reset fewer are paid per request. */
static PyObject *call_next(ServerCall *c) {
  if (c->iter == NULL) {
    if (c->body_closed) return NULL;
    PyErr_SetString(PyExc_TypeError, "ServerCall: iterated before iter()");
    return NULL;
  }
  PyObject *token, *bag_token;
  if (request_enter(c, &token, &bag_token) != 0) return NULL;
  /* Held while it runs: a close() from another thread meanwhile (a server
     giving up on the response) drops the call's references to the body. */
  PyObject *it = Py_NewRef(c->iter);
  PyObject *chunk = PyIter_Next(it);
  Py_DECREF(it);
  if (chunk == NULL && !PyErr_Occurred()) {
    PyObject *r = close_app(c, 1);
    request_leave(&token, &bag_token);
    if (r == NULL) {
      /* The body's close() failed: recorded on the span, and raised from
         the server's close(), as without this middleware. Raised here, it
         would look like a body that broke off: a server then drops the
         response unfinished (gunicorn skips its last chunk). */
      PyObject *type, *value, *tb;
      PyErr_Fetch(&type, &value, &tb);
      if (c->recording) report_failure(g_failed, c->span, &type, &value, &tb);
      PyErr_NormalizeException(&type, &value, &tb);
      if (tb != NULL && value != NULL) PyException_SetTraceback(value, tb);
      Py_XSETREF(c->close_error, value);
      Py_XDECREF(type);
      Py_XDECREF(tb);
    }
    Py_XDECREF(r);
    if (call_end(c) != 0) PyErr_Clear(); /* the span's end is not the application's error */
    return NULL;                         /* StopIteration */
  }
  request_leave(&token, &bag_token);
  if (chunk == NULL && c->recording) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    report_failure(g_failed, c->span, &type, &value, &tb);
    PyErr_Restore(type, value, tb);
  }
  return chunk;
}

/* The first argument, positional or by `name` (borrowed; NULL when absent,
   or on error). */
static PyObject *first_arg(PyObject *args, PyObject *kwargs, PyObject *name) {
  if (PyTuple_GET_SIZE(args) >= 1) return PyTuple_GET_ITEM(args, 0);
  if (kwargs == NULL) return NULL;
  return PyDict_GetItemWithError(kwargs, name);
}

/* ASGI send(message), or WSGI start_response(status, headers, exc_info=None),
   noting the status on the way; WSGI close() without arguments. */
static PyObject *call_call(ServerCall *c, PyObject *args, PyObject *kwargs) {
  if (c->wsgi && !c->recording) { /* only ever close() (see call_get_close) */
    if (PyTuple_GET_SIZE(args) != 0 || (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
      PyErr_SetString(PyExc_TypeError, "close() takes no arguments");
      return NULL;
    }
    return call_close(c, NULL);
  }
  if (!c->wsgi) {
    PyObject *msg = c->status == NULL ? first_arg(args, kwargs, s_message) : NULL;
    if (msg == NULL && PyErr_Occurred()) return NULL;
    if (msg != NULL && PyDict_Check(msg)) {
      PyObject *typ = PyDict_GetItemWithError(msg, s_type);
      if (typ != NULL && (typ == s_response_start ||
                          PyObject_RichCompareBool(typ, s_response_start, Py_EQ) == 1)) {
        PyObject *status = PyDict_GetItemWithError(msg, s_status);
        if (status != NULL) c->status = Py_NewRef(status);
      }
      if (PyErr_Occurred()) return NULL;
    }
  } else if (c->recording && !c->ended) {
    PyObject *status = first_arg(args, kwargs, s_status);
    if (status == NULL) {
      if (PyErr_Occurred()) return NULL;
      return PyObject_Call(c->target, args, kwargs); /* the server says what is missing */
    }
    PyObject *code = NULL;
    if (PyUnicode_CheckExact(status) && PyUnicode_GET_LENGTH(status) >= 3 &&
        PyUnicode_KIND(status) == PyUnicode_1BYTE_KIND) {
      const Py_UCS1 *d = PyUnicode_1BYTE_DATA(status);
      if (d[0] >= '0' && d[0] <= '9' && d[1] >= '0' && d[1] <= '9' && d[2] >= '0' && d[2] <= '9')
        code = PyLong_FromLong((d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0'));
    }
    if (code == NULL && !PyErr_Occurred()) {
      /* int(status[:3]), 0 when that is not a number (as in Python). */
      PyObject *head = PySequence_GetSlice(status, 0, 3);
      code = head ? PyNumber_Long(head) : NULL;
      Py_XDECREF(head);
      if (code == NULL && PyErr_ExceptionMatches(PyExc_ValueError)) {
        PyErr_Clear();
        code = Py_NewRef(g_zero);
      }
    }
    if (code == NULL) return NULL;
    int rc = note_status(c, code);
    Py_DECREF(code);
    if (rc != 0) return NULL;
    if (c->route_map != NULL) name_after_werkzeug_rule(c);
  }
  return PyObject_Call(c->target, args, kwargs);
}

static PyObject *call_get_status(ServerCall *c, void *closure) {
  (void)closure;
  return Py_NewRef(c->status ? c->status : Py_None);
}

static int call_set_status(ServerCall *c, PyObject *v, void *closure) {
  (void)closure;
  Py_XSETREF(c->status, v == NULL || v == Py_None ? NULL : Py_NewRef(v));
  return 0;
}

/* What the application gets as its send (ASGI): the call itself, which notes
   the status, or the server's send when the span records nothing. */
static PyObject *call_get_send(ServerCall *c, void *closure) {
  (void)closure;
  return Py_NewRef(c->recording || c->target == NULL ? (PyObject *)c : c->target);
}

static PyMethodDef k_close_def = {"close", (PyCFunction)call_close, METH_NOARGS,
                                  "close() of a streamed WSGI body"};

/* close of a streamed WSGI body. When the span records nothing, the call
   itself, which closes when called without arguments: the application never
   had it as its start_response (see server_call), and a bound method made
   for every request costs an allocation. */
static PyObject *call_get_close(ServerCall *c, void *closure) {
  (void)closure;
  if (!c->wsgi) {
    PyErr_SetString(PyExc_AttributeError, "close");
    return NULL;
  }
  if (c->recording) return PyCMethod_New(&k_close_def, (PyObject *)c, NULL, NULL);
  return Py_NewRef((PyObject *)c);
}

static PyObject *call_get_span(ServerCall *c, void *closure) {
  (void)closure;
  return Py_NewRef(c->span ? c->span : Py_None);
}

static int call_traverse(ServerCall *c, visitproc visit, void *arg) {
  Py_VISIT(c->span);
  Py_VISIT(c->token);
  Py_VISIT(c->bag_token);
  Py_VISIT(c->target);
  Py_VISIT(c->scope);
  Py_VISIT(c->method);
  Py_VISIT(c->first_name);
  Py_VISIT(c->status);
  Py_VISIT(c->result);
  Py_VISIT(c->iter);
  Py_VISIT(c->baggage);
  Py_VISIT(c->route_map);
  Py_VISIT(c->close_error);
  return 0;
}

static int call_clear(ServerCall *c) {
  Py_CLEAR(c->span);
  Py_CLEAR(c->token);
  Py_CLEAR(c->bag_token);
  Py_CLEAR(c->target);
  Py_CLEAR(c->scope);
  Py_CLEAR(c->method);
  Py_CLEAR(c->first_name);
  Py_CLEAR(c->status);
  Py_CLEAR(c->result);
  Py_CLEAR(c->iter);
  Py_CLEAR(c->baggage);
  Py_CLEAR(c->route_map);
  Py_CLEAR(c->close_error);
  return 0;
}

static void call_dealloc(ServerCall *c) {
  PyObject_GC_UnTrack(c);
  call_clear(c);
  PyObject_GC_Del(c);
}

static PyMethodDef k_call_methods[] = {
    {"finish", (PyCFunction)call_finish, METH_NOARGS,
     "finish(): resets the current span and ends the span (once)"},
    {"closing", (PyCFunction)call_closing, METH_O,
     "closing(result) -> what the WSGI server gets (the span ends when it is closed)"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef k_call_getset[] = {
    {"status", (getter)call_get_status, (setter)call_set_status,
     "the ASGI response status (None before it starts)", NULL},
    {"span", (getter)call_get_span, NULL, "the request's span", NULL},
    {"close", (getter)call_get_close, NULL, "close() of a streamed WSGI body", NULL},
    {"send", (getter)call_get_send, NULL, "the send to give the application", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ServerCall_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "otelagent._native.ServerCall",
    .tp_basicsize = sizeof(ServerCall),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "One traced request (made by Server.begin).",
    .tp_call = (ternaryfunc)call_call,
    .tp_iter = (getiterfunc)call_iter,
    .tp_iternext = (iternextfunc)call_next,
    .tp_traverse = (traverseproc)call_traverse,
    .tp_clear = (inquiry)call_clear,
    .tp_dealloc = (destructor)call_dealloc,
    .tp_methods = k_call_methods,
    .tp_getset = k_call_getset,
};

/* A WSGI middleware's __call__(environ, start_response), for the subclass in
   integrations/wsgi.py (no Python frame of its own per request): begin, the
   application (self.wsgi_app) with the ServerCall as its start_response, and
   what closing() makes of the result. A request begin() leaves to Python
   goes to self._python_path. */
/* self.<name>(*args, **kwargs). */
static PyObject *call_method(PyObject *self, PyObject *name, PyObject *args, PyObject *kwargs) {
  PyObject *fn = PyObject_GetAttr(self, name);
  PyObject *r = fn ? PyObject_Call(fn, args, kwargs) : NULL;
  Py_XDECREF(fn);
  return r;
}

static PyObject *server_call(Server *self, PyObject *args, PyObject *kwargs) {
  if (!self->wsgi || self->scope_entries == NULL) {
    PyErr_SetString(PyExc_RuntimeError,
                    "OtelAgentWSGIMiddleware.__init__ (Server.__init__) was not called");
    return NULL;
  }
  if ((kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) || PyTuple_GET_SIZE(args) != 2) {
    /* Arguments by keyword (a generic wrapper's **kwargs): Python binds them. */
    return call_method((PyObject *)self, s_python_path, args, kwargs);
  }
  PyObject *call = server_begin(self, &PyTuple_GET_ITEM(args, 0), 2);
  if (call == NULL) return NULL;
  if (call == Py_NotImplemented) {
    Py_DECREF(call);
    return call_method((PyObject *)self, s_python_path, args, NULL);
  }
  /* Held for the whole call: the application may replace wsgi_app while it
     runs (freeing the old one, which may be this code's caller). A subclass
     whose class defines wsgi_app (a property, a class attribute) keeps it
     out of the slot: then it is looked up as Python would. */
  PyObject *app = self->app ? Py_NewRef(self->app) : PyObject_GetAttr((PyObject *)self, s_wsgi_app);
  if (call == Py_None) { /* not traced */
    Py_DECREF(call);
    PyObject *r = app ? PyObject_Call(app, args, NULL) : NULL;
    Py_XDECREF(app);
    return r;
  }
  ServerCall *c = (ServerCall *)call;
  if (app == NULL) { /* no wsgi_app: recorded as the application's error would be */
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    report_failure(self->on_error, c->span, &type, &value, &tb);
    if (call_end(c) != 0) PyErr_Clear();
    PyErr_Restore(type, value, tb);
    Py_DECREF(call);
    return NULL;
  }
  /* A span that records nothing needs no status: the server's own
     start_response, without a hop through the call. The slot before the
     arguments is the callee's to use (a bound method puts its self there). */
  PyObject *argv[3] = {NULL, PyTuple_GET_ITEM(args, 0), c->recording ? call : c->target};
  PyObject *result = PyObject_Vectorcall(app, argv + 1, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
  Py_DECREF(app);
  PyObject *r = NULL;
  if (result != NULL) {
    r = call_closing(c, result);
    Py_DECREF(result);
  } else {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    report_failure(self->on_error, c->span, &type, &value, &tb);
    if (call_end(c) != 0) PyErr_Clear();
    PyErr_Restore(type, value, tb);
  }
  Py_DECREF(call);
  return r;
}

/* --- ASGI: the middleware's __call__ in C ---------------------------------- */

/* OtelAgentMiddleware.__call__(scope, receive, send) returns an AsgiRun: an
   awaitable that does what the Python coroutine (integrations/asgi.py) does
   without its frame, which is about a fifth of what a request not sampled
   costs. Nothing runs before it is first sent into (as with a coroutine, so
   begin() and finish() happen in the context of the task that awaits it):
   then begin(), the application's awaitable, and each send, throw and close
   passed on to that; when the application returns or raises, finish() (and
   the exception recorded first, as the Python path's `except Exception`
   does). PyIter_Send and am_send are 3.10's: on 3.9 __call__ stays Python. */

#if PY_VERSION_HEX >= 0x030A0000
typedef struct {
  PyObject ob_base; /* PyObject_HEAD */
  PyObject *mw, *scope, *receive, *send;
  PyObject *it;   /* the application's awaitable's iterator, once started */
  PyObject *call; /* the request's ServerCall, when one was made */
  char done, running;
} AsgiRun;

static PyTypeObject AsgiRun_Type;
static PyObject *g_asgi_lifespan; /* asgi._flushing_lifespan_send */
static PyObject *g_asgi_failed;   /* asgi._failed(span, exc, call) */

/* The iterator `await` would take from o (a new reference), or NULL with
   an exception set. */
static PyObject *awaitable_iter(PyObject *o) {
  if (PyCoro_CheckExact(o)) return Py_NewRef(o);
  unaryfunc aw = Py_TYPE(o)->tp_as_async ? Py_TYPE(o)->tp_as_async->am_await : NULL;
  if (aw == NULL) {
    if (PyGen_CheckExact(o)) { /* a @types.coroutine generator */
      PyObject *code = PyObject_GetAttrString(o, "gi_code");
      PyObject *flags = code ? PyObject_GetAttrString(code, "co_flags") : NULL;
      long f = flags ? PyLong_AsLong(flags) : 0;
      Py_XDECREF(code);
      Py_XDECREF(flags);
      if (f & CO_ITERABLE_COROUTINE) return Py_NewRef(o);
      if (PyErr_Occurred()) return NULL;
    }
    PyErr_Format(PyExc_TypeError, "object %.100s can't be used in 'await' expression",
                 Py_TYPE(o)->tp_name);
    return NULL;
  }
  PyObject *it = aw(o);
  if (it != NULL && (PyCoro_CheckExact(it) || !PyIter_Check(it))) {
    PyErr_Format(PyExc_TypeError, "__await__() returned %s",
                 PyCoro_CheckExact(it) ? "a coroutine" : "non-iterator");
    Py_CLEAR(it);
  }
  return it;
}

/* The application's awaitable for this request, as the Python __call__
   makes it (begin(), then self.app(scope, receive, send) with the call's
   send), or NULL with an exception set. */
static PyObject *run_begin(AsgiRun *r) {
  PyObject *server = PyObject_GetAttr(r->mw, s_server_attr);
  if (server == NULL) return NULL;
  PyObject *call = NULL;
  if (Py_TYPE(server) == &Server_Type && !((Server *)server)->wsgi) {
    PyObject *argv[2] = {r->scope, r->send};
    call = server_begin((Server *)server, argv, 2);
  } else {
    PyErr_SetString(PyExc_TypeError, "OtelAgentMiddleware._server is not its native Server");
  }
  Py_DECREF(server);
  if (call == NULL) return NULL;
  if (call == Py_NotImplemented) {
    Py_DECREF(call);
    PyObject *argv[4] = {r->mw, r->scope, r->receive, r->send};
    return PyObject_VectorcallMethod(s_python_path, argv, 4, NULL);
  }
  PyObject *send;
  if (call == Py_None) { /* not traced: lifespan (flushing at its end), excluded, nested */
    Py_DECREF(call);
    PyObject *typ = PyDict_GetItemWithError(r->scope, s_type); /* begin saw a dict */
    int lifespan = typ == NULL ? 0 : PyObject_RichCompareBool(typ, s_lifespan, Py_EQ);
    if (lifespan < 0 || (typ == NULL && PyErr_Occurred())) return NULL;
    send = lifespan ? PyObject_CallOneArg(g_asgi_lifespan, r->send) : Py_NewRef(r->send);
  } else {
    r->call = call; /* finished when the application is */
    ServerCall *c = (ServerCall *)call;
    send = Py_NewRef(c->recording || c->target == NULL ? call : c->target);
  }
  if (send == NULL) return NULL;
  PyObject *app = PyObject_GetAttr(r->mw, s_app);
  PyObject *argv[4] = {NULL, r->scope, r->receive, send};
  PyObject *inner =
      app ? PyObject_Vectorcall(app, argv + 1, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL) : NULL;
  Py_XDECREF(app);
  Py_DECREF(send);
  return inner;
}

/* The request is over: its call finished (the span ended, nothing of it
   left current). 0, or -1 with an exception set. */
static int run_finish(AsgiRun *r) {
  r->done = 1;
  Py_CLEAR(r->it);
  PyObject *call = r->call;
  r->call = NULL;
  if (call == NULL) return 0;
  int rc = call_end((ServerCall *)call);
  Py_DECREF(call);
  return rc;
}

/* The application raised (the exception is set, and stays set): recorded
   when it is an Exception, then the call finished. */
static void run_failed(AsgiRun *r) {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  if (r->call != NULL && type != NULL && PyErr_GivenExceptionMatches(type, PyExc_Exception)) {
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL) PyException_SetTraceback(value, tb);
    PyObject *span = ((ServerCall *)r->call)->span;
    PyObject *res =
        PyObject_CallFunctionObjArgs(g_asgi_failed, span, value ? value : Py_None, r->call, NULL);
    if (res == NULL) PyErr_Clear(); /* the application's error is the one to see */
    Py_XDECREF(res);
  }
  if (run_finish(r) != 0) PyErr_Clear();
  PyErr_Restore(type, value, tb);
}

/* What one step of the application gave (s, *result): passed on; the call
   finished when the application returned or raised. */
static PySendResult run_outcome(AsgiRun *r, PySendResult s, PyObject **result) {
  if (s == PYGEN_NEXT) return s;
  if (s == PYGEN_ERROR) {
    run_failed(r);
    return s;
  }
  /* The middleware returns None, as the Python __call__ (which awaits the
     application) does. */
  Py_SETREF(*result, Py_NewRef(Py_None));
  if (run_finish(r) != 0) {
    Py_CLEAR(*result);
    return PYGEN_ERROR;
  }
  return s;
}

static int run_busy(AsgiRun *r) {
  if (r->running) {
    PyErr_SetString(PyExc_ValueError, "coroutine already executing");
    return 1;
  }
  return 0;
}

/* send(arg) as a coroutine takes it: PYGEN_NEXT with what the application
   yields, PYGEN_RETURN with what it returned, PYGEN_ERROR. */
static PySendResult run_send(PyObject *self, PyObject *arg, PyObject **result) {
  AsgiRun *r = (AsgiRun *)self;
  *result = NULL;
  if (run_busy(r)) return PYGEN_ERROR;
  if (r->done) {
    PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited coroutine");
    return PYGEN_ERROR;
  }
  r->running = 1;
  PySendResult s;
  if (r->it == NULL) {
    if (arg != Py_None) {
      r->running = 0;
      PyErr_SetString(PyExc_TypeError, "can't send non-None value to a just-started coroutine");
      return PYGEN_ERROR;
    }
    PyObject *inner = run_begin(r);
    r->it = inner ? awaitable_iter(inner) : NULL;
    Py_XDECREF(inner);
    s = r->it != NULL ? PyIter_Send(r->it, Py_None, result) : PYGEN_ERROR;
  } else {
    s = PyIter_Send(r->it, arg, result);
  }
  s = run_outcome(r, s, result);
  r->running = 0;
  return s;
}

/* StopIteration(value) raised, as a coroutine's send() and throw() end. */
static PyObject *stop_with(PyObject *value) {
  if (value == Py_None) {
    PyErr_SetNone(PyExc_StopIteration);
  } else {
    PyObject *e = PyObject_CallOneArg(PyExc_StopIteration, value);
    if (e != NULL) {
      PyErr_SetObject(PyExc_StopIteration, e);
      Py_DECREF(e);
    }
  }
  Py_DECREF(value);
  return NULL;
}

static PyObject *run_iternext(PyObject *self) {
  PyObject *res;
  PySendResult s = run_send(self, Py_None, &res);
  if (s == PYGEN_NEXT) return res;
  if (s == PYGEN_RETURN) {
    if (res == Py_None) {
      Py_DECREF(res);
      return NULL; /* StopIteration without a value */
    }
    return stop_with(res);
  }
  return NULL;
}

static PyObject *run_send_method(PyObject *self, PyObject *arg) {
  PyObject *res;
  PySendResult s = run_send(self, arg, &res);
  if (s == PYGEN_NEXT) return res;
  return s == PYGEN_RETURN ? stop_with(res) : NULL;
}

/* The exception throw(type[, value[, traceback]]) or throw(exception)
   names, set; NULL. */
static PyObject *raise_thrown(PyObject *args) {
  PyObject *typ = NULL, *val = NULL, *tb = NULL;
  if (!PyArg_UnpackTuple(args, "throw", 1, 3, &typ, &val, &tb)) return NULL;
  if (PyExceptionInstance_Check(typ)) {
    PyErr_SetObject((PyObject *)Py_TYPE(typ), typ);
  } else if (PyExceptionClass_Check(typ)) {
    if (val == NULL || val == Py_None)
      PyErr_SetNone(typ);
    else
      PyErr_SetObject(typ, val);
  } else {
    PyErr_SetString(PyExc_TypeError,
                    "exceptions must be classes or instances deriving from BaseException");
    return NULL;
  }
  if (tb != NULL && tb != Py_None) {
    PyObject *t, *v, *old;
    PyErr_Fetch(&t, &v, &old);
    PyErr_NormalizeException(&t, &v, &old);
    if (v != NULL) PyException_SetTraceback(v, tb);
    Py_XDECREF(old);
    PyErr_Restore(t, v, Py_NewRef(tb));
  }
  return NULL;
}

/* throw(...): into the application (a task being cancelled, say); before
   it started, or after it ended, raised here as a coroutine does. */
static PyObject *run_throw(PyObject *self, PyObject *args) {
  AsgiRun *r = (AsgiRun *)self;
  if (run_busy(r)) return NULL;
  if (r->it == NULL || r->done) {
    r->done = 1;
    return raise_thrown(args);
  }
  r->running = 1;
  PyObject *throw, *res = NULL;
  if (optional_attr(r->it, s_throw, &throw) < 0) {
    res = NULL;
  } else if (throw == NULL) { /* an iterator without throw(): raised where it is awaited */
    res = raise_thrown(args);
  } else {
    res = PyObject_Call(throw, args, NULL);
    Py_DECREF(throw);
  }
  if (res != NULL) {
    r->running = 0;
    return res; /* the application yielded again */
  }
  if (PyErr_ExceptionMatches(PyExc_StopIteration)) { /* it returned */
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    int rc = run_finish(r);
    r->running = 0;
    if (rc != 0) return NULL;
    return stop_with(Py_NewRef(Py_None)); /* returns None (see run_outcome) */
  }
  run_failed(r);
  r->running = 0;
  return NULL;
}

/* close(): the application closed (its cleanup runs), then the call
   finished; what its close() raised is passed on (recorded, when an
   Exception, as the Python path records it). */
static PyObject *run_close(PyObject *self, PyObject *unused) {
  (void)unused;
  AsgiRun *r = (AsgiRun *)self;
  if (run_busy(r)) return NULL;
  if (r->it == NULL || r->done) {
    r->done = 1;
    Py_RETURN_NONE;
  }
  r->running = 1;
  PyObject *close, *res = Py_None;
  if (optional_attr(r->it, s_close, &close) < 0) {
    res = NULL;
  } else if (close != NULL) {
    res = PyObject_CallNoArgs(close);
    Py_DECREF(close);
    Py_XDECREF(res);
  }
  int rc;
  if (res == NULL) {
    run_failed(r);
    rc = -1;
  } else {
    rc = run_finish(r);
  }
  r->running = 0;
  if (rc != 0) return NULL;
  Py_RETURN_NONE;
}

static PyObject *run_await(PyObject *self) {
  return Py_NewRef(self);
}

/* Dropped while the application is suspended (its task destroyed): closed,
   as a coroutine is, so that the span ends. */
static void run_finalize(PyObject *self) {
  AsgiRun *r = (AsgiRun *)self;
  if (r->it == NULL || r->done) return;
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyObject *res = run_close(self, NULL);
  if (res == NULL)
    PyErr_WriteUnraisable(self);
  else
    Py_DECREF(res);
  PyErr_Restore(type, value, tb);
}

static int run_traverse(PyObject *self, visitproc visit, void *arg) {
  AsgiRun *r = (AsgiRun *)self;
  Py_VISIT(r->mw);
  Py_VISIT(r->scope);
  Py_VISIT(r->receive);
  Py_VISIT(r->send);
  Py_VISIT(r->it);
  Py_VISIT(r->call);
  return 0;
}

static int run_clear(PyObject *self) {
  AsgiRun *r = (AsgiRun *)self;
  Py_CLEAR(r->mw);
  Py_CLEAR(r->scope);
  Py_CLEAR(r->receive);
  Py_CLEAR(r->send);
  Py_CLEAR(r->it);
  Py_CLEAR(r->call);
  return 0;
}

static void run_dealloc(PyObject *self) {
  if (PyObject_CallFinalizerFromDealloc(self) < 0) return; /* brought back to life */
  PyObject_GC_UnTrack(self);
  run_clear(self);
  PyObject_GC_Del(self);
}

static PyAsyncMethods k_run_async = {
    .am_await = run_await,
    .am_send = run_send,
};

static PyMethodDef k_run_methods[] = {
    {"send", run_send_method, METH_O, "send(value): as a coroutine's"},
    {"throw", run_throw, METH_VARARGS, "throw(exception): as a coroutine's"},
    {"close", run_close, METH_NOARGS, "close(): as a coroutine's"},
    {NULL, NULL, 0, NULL},
};

/* The Python coroutine's names (asyncio's task repr shows them). */
static PyObject *run_get_name(PyObject *self, void *qualified) {
  (void)self;
  return PyUnicode_FromString(qualified ? "OtelAgentMiddleware.__call__" : "__call__");
}

static PyGetSetDef k_run_getset[] = {
    {"__name__", run_get_name, NULL, NULL, NULL},
    {"__qualname__", run_get_name, NULL, NULL, "q"},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject AsgiRun_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "otelagent._native.AsgiRun",
    .tp_basicsize = sizeof(AsgiRun),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "One request through OtelAgentMiddleware (what its __call__ returns: a coroutine).",
    .tp_as_async = &k_run_async,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = run_iternext,
    .tp_methods = k_run_methods,
    .tp_getset = k_run_getset,
    .tp_traverse = run_traverse,
    .tp_clear = run_clear,
    .tp_dealloc = run_dealloc,
    .tp_finalize = run_finalize,
};

/* __call__(self, scope, receive, send) taken when called so (positional,
   three arguments): an AsgiRun. */
static PyObject *fast_asgi_call(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                                int *taken) {
  if (nargs != 4 || kwnames != NULL) return NULL;
  AsgiRun *r = PyObject_GC_New(AsgiRun, &AsgiRun_Type);
  *taken = 1;
  if (r == NULL) return NULL;
  r->mw = Py_NewRef(args[0]);
  r->scope = Py_NewRef(args[1]);
  r->receive = Py_NewRef(args[2]);
  r->send = Py_NewRef(args[3]);
  r->it = r->call = NULL;
  r->done = r->running = 0;
  PyObject_GC_Track((PyObject *)r);
  return (PyObject *)r;
}
#endif

/* bind_asgi(OtelAgentMiddleware, _flushing_lifespan_send, _failed): its
   __call__ in C (a NativeMethod standing in for the Python one), or None
   (before 3.10, or in an interpreter that did not bind the module). */
static PyObject *native_bind_asgi(PyObject *self, PyObject *args) {
  (void)self;
  PyTypeObject *mw;
  PyObject *lifespan, *failed;
  if (!PyArg_ParseTuple(args, "O!OO", &PyType_Type, &mw, &lifespan, &failed)) return NULL;
#if PY_VERSION_HEX >= 0x030A0000
  if (g_interp != PyInterpreterState_GetID(PyInterpreterState_Get()) || g_span_type == NULL)
    Py_RETURN_NONE; /* see native_bind; bind_server() first */
  PyObject *py = PyDict_GetItemString(mw->tp_dict, "__call__");
  if (py == NULL || !PyFunction_Check(py)) {
    PyErr_SetString(PyExc_TypeError, "_native.bind_asgi: __call__ is not a Python function");
    return NULL;
  }
  Py_XSETREF(g_asgi_lifespan, Py_NewRef(lifespan));
  Py_XSETREF(g_asgi_failed, Py_NewRef(failed));
  return new_method(py, fast_asgi_call, mw, "__call__");
#else
  (void)mw;
  (void)lifespan;
  (void)failed;
  Py_RETURN_NONE;
#endif
}

/* bind_server(Span, NonRecordingSpan, _tracing._classes, _tracing._current,
   propagation._baggage, _tracing's globals, _http.hosts, _http.server_host,
   _http.redact_query, _http.KNOWN_METHODS, _http.request_failed, addresses of
   otelagent_tracestate_normalize and otelagent_baggage_normalize). */
static PyObject *native_bind_server(PyObject *self, PyObject *args) {
  (void)self;
  PyTypeObject *span, *nonrec;
  PyObject *classes, *current, *baggage, *globals, *hosts, *server_host, *redact, *known, *failed;
  unsigned long long ts_norm, bag_norm;
  if (!PyArg_ParseTuple(args, "O!O!O!O!O!O!O!OOO!OKK", &PyType_Type, &span, &PyType_Type, &nonrec,
                        &PyList_Type, &classes, &PyContextVar_Type, &current, &PyContextVar_Type,
                        &baggage, &PyDict_Type, &globals, &PyDict_Type, &hosts, &server_host,
                        &redact, &PyFrozenSet_Type, &known, &failed, &ts_norm, &bag_norm))
    return NULL;
  if (ts_norm == 0 || bag_norm == 0) {
    PyErr_SetString(PyExc_ValueError, "_native.bind_server: a null function address");
    return NULL;
  }
  if (g_interp != PyInterpreterState_GetID(PyInterpreterState_Get()))
    Py_RETURN_FALSE; /* see native_bind */
  if (read_offsets(span, nonrec) != 0) return NULL;
  set_tracing_dict(globals);
  Py_XSETREF(g_span_type, (PyTypeObject *)Py_NewRef((PyObject *)span));
  Py_XSETREF(g_nonrec_type, (PyTypeObject *)Py_NewRef((PyObject *)nonrec));
  Py_XSETREF(g_classes, Py_NewRef(classes));
  Py_XSETREF(g_current, Py_NewRef(current));
  Py_XSETREF(g_baggage_var, Py_NewRef(baggage));
  Py_XSETREF(g_hosts, Py_NewRef(hosts));
  Py_XSETREF(g_server_host, Py_NewRef(server_host));
  Py_XSETREF(g_redact, Py_NewRef(redact));
  Py_XSETREF(g_known, Py_NewRef(known));
  Py_XSETREF(g_failed, Py_NewRef(failed));
  g_tracestate_norm = (normalize_fn)(uintptr_t)ts_norm;
  g_baggage_norm = (normalize_fn)(uintptr_t)bag_norm;
  Py_RETURN_TRUE;
}

/* set_propagators(tracecontext, xray, baggage): OTEL_PROPAGATORS as the
   agent was started with it. */
static PyObject *native_set_propagators(PyObject *self, PyObject *args) {
  (void)self;
  int tc, xray, bag;
  if (!PyArg_ParseTuple(args, "ppp", &tc, &xray, &bag)) return NULL;
  if (g_interp != PyInterpreterState_GetID(PyInterpreterState_Get()))
    Py_RETURN_NONE; /* see native_bind */
  g_prop_tc = tc;
  g_prop_xray = xray;
  g_prop_bag = bag;
  Py_RETURN_NONE;
}

static PyMethodDef k_methods[] = {
    {"bind", native_bind, METH_VARARGS,
     "bind(packed_class, record_span, span_context_new, traceparent_parse, xray_parse)"},
    {"traceparent", native_traceparent, METH_O, "traceparent(value) -> context or None"},
    {"xray", native_xray, METH_O, "xray(value) -> context or None"},
    {"context", native_context, METH_O, "context(parent) -> 32-byte context or None"},
    {"bind_spans", native_bind_spans, METH_VARARGS,
     "bind_spans(Span, NonRecordingSpan, Tracer, _Scope, _current, globals) -> "
     "(set_attribute, __enter__, __exit__, start_as_current_span) in C, or None"},
    {"record", (PyCFunction)(void (*)(void))native_record, METH_FASTCALL,
     "record(scope, name, ctx, parent, tracestate, kind, status, start, end, attrs)"},
    {"pack", (PyCFunction)(void (*)(void))native_pack, METH_FASTCALL,
     "pack(scope, name, ctx, parent, tracestate, kind, status, start, end, attrs)"},
    {"bind_server", native_bind_server, METH_VARARGS,
     "bind_server(Span, NonRecordingSpan, classes, current, baggage, globals, hosts, "
     "server_host, redact_query, known_methods, failed, tracestate_normalize, "
     "baggage_normalize)"},
    {"bind_asgi", native_bind_asgi, METH_VARARGS,
     "bind_asgi(OtelAgentMiddleware, flushing_lifespan_send, failed) -> __call__ in C, or None"},
    {"set_propagators", native_set_propagators, METH_VARARGS,
     "set_propagators(tracecontext, xray, baggage)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef k_module = {
    PyModuleDef_HEAD_INIT,
    "otelagent._native",
    "The optional native span packer.",
    -1,
    k_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__native(void) {
  /* Run once per initialisation of the runtime (an interpreter importing
     it again gets a copy of the module): after a Py_Finalize(), what the
     globals cache holds and the watcher's ID are the ended runtime's, so
     they are forgotten, not released. */
  memset(&g_glob, 0, sizeof g_glob);
#if PY_VERSION_HEX >= 0x030C0000
  g_watcher = -1;
  g_watched = NULL;
#endif
  if (make_strings() != 0 || PyType_Ready(&Server_Type) != 0 ||
      PyType_Ready(&ServerCall_Type) != 0 || PyType_Ready(&NativeMethod_Type) != 0)
    return NULL;
#if PY_VERSION_HEX >= 0x030A0000
  if (PyType_Ready(&AsgiRun_Type) != 0) return NULL;
#endif
  PyObject *m = PyModule_Create(&k_module);
  if (m == NULL) return NULL;
  /* The interface version _tracing._load_native() checks: a stale build of
     an older _native.c is not used. */
  Py_INCREF(&Server_Type);
  Py_INCREF(&ServerCall_Type);
  if (PyModule_AddIntConstant(m, "INTERFACE", 7) != 0 ||
      PyModule_AddObject(m, "Server", (PyObject *)&Server_Type) != 0 ||
      PyModule_AddObject(m, "ServerCall", (PyObject *)&ServerCall_Type) != 0)
    Py_CLEAR(m); /* a failed PyModule_AddObject leaves its reference: a type, kept */
  return m;
}
