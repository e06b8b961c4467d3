"""Packs a finished span into the record format of otelagent_record_span().

This module is the one place that knows the layout: the record version and the
header (HEADER below), the entry header and the tags, all documented in
otelagent.h ("Span record format"). Everything is little-endian."""

import struct

RECORD_VERSION = 2
RECORD_MAX = 65536

# Version 2 header, 80 bytes: total_len, version, header_len, kind, status,
# reserved u16, flags (OTLP Span.flags), trace_id, span_id, parent_span_id,
# start, end, dropped attributes / events / links, reserved u32.
HEADER = struct.Struct("<IHHBBHI16s8s8sQQIIII")
HEADER_LEN = HEADER.size


def pack_header(total_len, kind, status, flags, trace_id, span_id, parent_id, start, end,
                dropped_attrs, dropped_events, dropped_links):
    return HEADER.pack(total_len, RECORD_VERSION, HEADER_LEN, kind, status, 0, flags, trace_id,
                       span_id, parent_id, start, end, dropped_attrs, dropped_events,
                       dropped_links, 0)


assert HEADER_LEN == 80

# OTLP Span.flags bits above the W3C trace flags.
FLAG_HAS_IS_REMOTE = 0x100
FLAG_IS_REMOTE = 0x200

# Entry header: u8 tag, u8 value type, u16 key_len, u32 value_len.
ENTRY = struct.Struct("<BBHI")
ENTRY_LEN = ENTRY.size

TAG_NAME = 1
TAG_SCOPE_NAME = 2
TAG_SCOPE_VERSION = 3
TAG_TRACESTATE = 4
TAG_STATUS_MESSAGE = 5
TAG_ATTR = 6
TAG_EVENT = 7
TAG_EVENT_ATTR = 8
TAG_LINK = 9
TAG_LINK_ATTR = 10
TAG_GROUP_DROPPED = 11

T_STRING = 1
T_BOOL = 2
T_INT64 = 3
T_DOUBLE = 4
T_BYTES = 5
T_STRING_ARRAY = 6
T_BOOL_ARRAY = 7
T_INT64_ARRAY = 8
T_DOUBLE_ARRAY = 9

# The library's caps (otelagent.h): longer keys and values are cut here so a
# record never grows past RECORD_MAX because of one value; the library cuts
# again at UTF-8 boundaries and counts.
MAX_KEY_BYTES = 256
MAX_VALUE_CHARS = 4096
MAX_ATTRS = 128
MAX_EVENTS = 128
MAX_LINKS = 128

_pack_entry = ENTRY.pack
_pack_q = struct.Struct("<q").pack
_pack_d = struct.Struct("<d").pack
_pack_I = struct.Struct("<I").pack
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 63) - 1

# Keys are nearly always constants: their encoded form is cached (bounded, so
# a caller generating keys cannot grow it without end).
_keys = {}

# And for attribute keys, the packers of whole entries: (entry header + key)
# for a string value, whole entries for int and double values, and the two
# whole entries of a bool. One struct call per attribute instead of three.
_attr_packers = {}


def attr_packers(key):
    """(str packer, int packer, double packer, false entry, true entry) of
    ATTR entries for `key`, or None when `key` is not a valid key."""
    kb = _key(key)
    if kb is None:
        return None
    n = len(kb)
    head = _pack_entry(TAG_ATTR, T_BOOL, n, 1) + kb
    p = (struct.Struct(f"<BBHI{n}s").pack, struct.Struct(f"<BBHI{n}sq").pack,
         struct.Struct(f"<BBHI{n}sd").pack, head + b"\x00", head + b"\x01", kb, n)
    if len(_attr_packers) < 1024:
        _attr_packers[key] = p
    return p


def _key(key):
    kb = _keys.get(key)
    if kb is None:
        kb = key.encode("utf-8", "surrogatepass")[:MAX_KEY_BYTES] if type(key) is str else None
        if kb is None:
            return None
        if len(_keys) < 4096:
            _keys[key] = kb
    return kb


def _str(v):
    if len(v) > MAX_VALUE_CHARS:
        v = v[:MAX_VALUE_CHARS]
    return v.encode("utf-8", "surrogatepass")


def _array(v):
    """(type, bytes) of a homogeneous sequence, or None when it is not one."""
    if not v:
        return T_STRING_ARRAY, b""
    t = type(v[0])
    if any(type(x) is not t for x in v):
        return None
    if t is str:
        parts = []
        for x in v:
            b = _str(x)
            parts.append(_pack_I(len(b)))
            parts.append(b)
        return T_STRING_ARRAY, b"".join(parts)
    if t is bool:
        return T_BOOL_ARRAY, bytes(v)
    if t is int:
        if any(x < _INT_MIN or x > _INT_MAX for x in v):
            return None
        return T_INT64_ARRAY, struct.pack(f"<{len(v)}q", *v)
    if t is float:
        return T_DOUBLE_ARRAY, struct.pack(f"<{len(v)}d", *v)
    return None


class Packed(bytes):
    """A whole ATTR entry packed beforehand, stored as an attribute's value:
    integrations keep these for values that repeat from request to request
    (method, scheme, route, status code...) so spans do not pack them again."""

    __slots__ = ()


class PackedCache:
    """value -> the Packed ATTR entry of `key`=value; bounded (once full,
    values not seen before are returned as they are, packed at the end)."""

    __slots__ = ("key", "entries")

    def __init__(self, key):
        self.key = key
        self.entries = {}

    def __call__(self, value):
        try:
            e = self.entries.get(value)
        except TypeError:  # not hashable: packed at the end like any value
            return value
        if e is None:
            raw = entry(TAG_ATTR, self.key, value)
            if raw is None or len(self.entries) >= 256:
                return value
            e = self.entries[value] = Packed(raw)
        return e


def entry(tag, key, value):
    """One encoded entry for an attribute `key`=`value`, or None when the value
    is not a valid attribute value (it is then dropped and counted)."""
    t = type(value)
    if t is Packed:
        return value
    kb = _key(key)
    if kb is None:
        return None
    if t is str:
        vb = value.encode("utf-8", "surrogatepass") if len(value) <= MAX_VALUE_CHARS else _str(value)
        return _pack_entry(tag, T_STRING, len(kb), len(vb)) + kb + vb
    if t is bool:
        return _pack_entry(tag, T_BOOL, len(kb), 1) + kb + (b"\x01" if value else b"\x00")
    if t is int:
        if value < _INT_MIN or value > _INT_MAX:
            return None
        return _pack_entry(tag, T_INT64, len(kb), 8) + kb + _pack_q(value)
    if t is float:
        return _pack_entry(tag, T_DOUBLE, len(kb), 8) + kb + _pack_d(value)
    if t is list or t is tuple:
        r = _array(value)
        if r is None:
            return None
        return _pack_entry(tag, r[0], len(kb), len(r[1])) + kb + r[1]
    if t is bytes:
        return _pack_entry(tag, T_BYTES, len(kb), len(value)) + kb + value[:MAX_VALUE_CHARS]
    # Subclasses of the basic types (IntEnum, str enums...) as their base value.
    for base, conv in ((bool, bool), (int, int), (float, float), (str, str)):
        if isinstance(value, base):
            return entry(tag, key, conv(value))
    return None


def string_entry(tag, value):
    """A NAME, SCOPE_*, TRACESTATE or STATUS_MESSAGE entry (no key)."""
    vb = _str(value) if type(value) is str else str(value).encode("utf-8", "surrogatepass")
    return _pack_entry(tag, T_STRING, 0, len(vb)) + vb


def attrs_entries(tag, attrs, parts):
    """Appends the entries of the dict `attrs` to `parts`; returns how many were
    dropped (invalid values, or over MAX_ATTRS)."""
    dropped = 0
    n = 0
    for k, v in attrs.items():
        if n >= MAX_ATTRS:
            dropped += 1
            continue
        e = entry(tag, k, v)
        if e is None:
            dropped += 1
        else:
            parts.append(e)
            n += 1
    return dropped


def event_entries(name, time_ns, attrs, parts):
    kb = _key(name) or b"event"
    parts.append(_pack_entry(TAG_EVENT, T_INT64, len(kb), 8) + kb + _pack_q(time_ns))
    if attrs:
        dropped = attrs_entries(TAG_EVENT_ATTR, attrs, parts)
        if dropped:
            parts.append(_pack_entry(TAG_GROUP_DROPPED, T_INT64, 0, 8) + _pack_q(dropped))


def link_entries(trace_id, span_id, link_flags, tracestate, attrs, parts):
    ts = tracestate.encode("ascii", "replace") if tracestate else b""
    value = trace_id + span_id + _pack_I(link_flags) + ts
    parts.append(_pack_entry(TAG_LINK, T_BYTES, 0, len(value)) + value)
    if attrs:
        dropped = attrs_entries(TAG_LINK_ATTR, attrs, parts)
        if dropped:
            parts.append(_pack_entry(TAG_GROUP_DROPPED, T_INT64, 0, 8) + _pack_q(dropped))
