/* The optional native packer of otelagent's Python binding.

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

   The module's state is per process, not per interpreter: with
   sub-interpreters, the Packed class of the last one to import otelagent is
   the one recognised; spans with other interpreters' packed values take the
   Python packer (correct, slower). */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

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
  unsigned long long start = PyLong_AsUnsignedLongLong(args[7]);
  unsigned long long end = PyLong_AsUnsignedLongLong(args[8]);
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
  Py_INCREF(packed);
  Py_XSETREF(g_packed_type, packed);
  g_record = (record_fn)(uintptr_t)record;
  g_context = (context_fn)(uintptr_t)context;
  g_traceparent = (parse_fn)(uintptr_t)traceparent;
  g_xray = (parse_fn)(uintptr_t)xray;
  Py_RETURN_NONE;
}

static PyMethodDef k_methods[] = {
    {"bind", native_bind, METH_VARARGS,
     "bind(packed_class, record_span, span_context_new, traceparent_parse, xray_parse)"},
    {"traceparent", native_traceparent, METH_O, "traceparent(value) -> context or None"},
    {"xray", native_xray, METH_O, "xray(value) -> context or None"},
    {"context", native_context, METH_O, "context(parent) -> 32-byte context or None"},
    {"record", (PyCFunction)(void (*)(void))native_record, METH_FASTCALL,
     "record(scope, name, ctx, parent, tracestate, kind, status, start, end, attrs)"},
    {"pack", (PyCFunction)(void (*)(void))native_pack, METH_FASTCALL,
     "pack(scope, name, ctx, parent, tracestate, kind, status, start, end, attrs)"},
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
  PyObject *m = PyModule_Create(&k_module);
  /* The interface version _tracing._load_native() checks: a stale build of
     an older _native.c is not used. */
  if (m != NULL && PyModule_AddIntConstant(m, "INTERFACE", 2) != 0) Py_CLEAR(m);
  return m;
}
