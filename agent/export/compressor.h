// Request body compression: none, gzip (zlib) or zstd. The only module that
// knows zlib and zstd. Exporter thread only (it keeps compression contexts).
#pragma once

#include <string>
#include <string_view>

#include "core/config.h"

namespace otelagent {

class Compressor {
 public:
  Compressor();
  ~Compressor();
  Compressor(const Compressor &) = delete;
  Compressor &operator=(const Compressor &) = delete;

  // Compresses `in` into `*out`. Returns false on a library error (the
  // caller then sends the body uncompressed).
  bool compress(Compression c, std::string_view in, std::string *out);
  // Decompresses a zstd frame (used to re-send a batch as gzip when a
  // receiver rejects zstd, and by tests).
  bool zstd_decompress(std::string_view in, std::string *out);

 private:
  struct Impl;
  Impl *impl_;
};

// The Content-Encoding header value, or nullptr for none.
const char *content_encoding(Compression c);

}  // namespace otelagent
