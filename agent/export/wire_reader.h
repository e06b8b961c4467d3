// A reader of the few protobuf wire primitives that responses need (the
// export response, a gRPC status's details). protobuf's CodedInputStream
// lives in the out-of-line part of libprotobuf, which this library does not
// link (see CMakeLists.txt); the inline writers suffice for encoding, and
// what is read is a few fields deep. Every read is bounded by `end`.
#pragma once

#include <cstdint>

namespace otelagent {

constexpr uint32_t kWireVarint = 0, kWireFixed64 = 1, kWireLen = 2, kWireFixed32 = 5;

struct WireReader {
  const uint8_t *p, *end;
  bool varint(uint64_t *v) {
    *v = 0;
    for (int shift = 0; shift < 64 && p < end; shift += 7) {
      uint8_t b = *p++;
      *v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  }
  // Reads a length prefix and returns the sub-reader over the bytes.
  bool sub(WireReader *out) {
    uint64_t n;
    if (!varint(&n) || n > static_cast<uint64_t>(end - p)) return false;
    *out = WireReader{p, p + n};
    p += n;
    return true;
  }
  bool skip(uint32_t wire) {
    uint64_t v;
    WireReader ignored;
    switch (wire) {
      case kWireVarint:
        return varint(&v);
      case kWireFixed64:
        if (end - p < 8) return false;
        p += 8;
        return true;
      case kWireLen:
        return sub(&ignored);
      case kWireFixed32:
        if (end - p < 4) return false;
        p += 4;
        return true;
    }
    return false;
  }
  // Calls fn(field, wire) for each field; fn consumes the value and returns
  // true, or returns false to have it skipped.
  template <typename Fn>
  bool fields(Fn &&fn) {
    while (p < end) {
      uint64_t t;
      if (!varint(&t) || t > UINT32_MAX) return false;
      if (!fn(static_cast<int>(t >> 3), static_cast<uint32_t>(t & 7)) &&
          !skip(static_cast<uint32_t>(t & 7)))
        return false;
    }
    return true;
  }
};

}  // namespace otelagent
