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
  // Decompresses a small gzip or zstd message (a gRPC response) into at most
  // `max_out` bytes. False on an error or a larger result.
  bool decompress_bounded(Compression c, std::string_view in, size_t max_out, std::string *out);

 private:
  struct Impl;
  Impl *impl_;
};

// The Content-Encoding (or grpc-encoding) header value, or nullptr for none.
const char *content_encoding(Compression c);
// The compression a Content-Encoding or grpc-encoding value names; false
// when it is none we know.
bool compression_from_name(std::string_view name, Compression *out);

}  // namespace otelagent
