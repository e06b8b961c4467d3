#include "export/compressor.h"

#include <zlib.h>
#include <zstd.h>

namespace otelagent {

struct Compressor::Impl {
  ZSTD_CCtx *cctx = ZSTD_createCCtx();
  ZSTD_DCtx *dctx = ZSTD_createDCtx();
  z_stream gz{};
  bool gz_ready = false;
};

Compressor::Compressor() : impl_(new Impl) {
  // Level 1 keeps zstd well ahead of the exporter's other work; spans
  // compress about 5x at that level already.
  ZSTD_CCtx_setParameter(impl_->cctx, ZSTD_c_compressionLevel, 1);
  // windowBits 15 + 16: a gzip wrapper; level 6 is zlib's (and gzip's) default.
  impl_->gz_ready = deflateInit2(&impl_->gz, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK;
}

Compressor::~Compressor() {
  ZSTD_freeCCtx(impl_->cctx);
  ZSTD_freeDCtx(impl_->dctx);
  if (impl_->gz_ready) deflateEnd(&impl_->gz);
  delete impl_;
}

bool Compressor::compress(Compression c, std::string_view in, std::string *out) {
  switch (c) {
    case Compression::kNone:
      out->assign(in);
      return true;
    case Compression::kZstd: {
      out->resize(ZSTD_compressBound(in.size()));
      size_t n = ZSTD_compress2(impl_->cctx, out->data(), out->size(), in.data(), in.size());
      if (ZSTD_isError(n)) return false;
      out->resize(n);
      return true;
    }
    case Compression::kGzip: {
      if (!impl_->gz_ready || deflateReset(&impl_->gz) != Z_OK) return false;
      z_stream &z = impl_->gz;
      out->resize(deflateBound(&z, static_cast<uLong>(in.size())) + 32);
      z.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(in.data()));
      z.avail_in = static_cast<uInt>(in.size());
      z.next_out = reinterpret_cast<Bytef *>(out->data());
      z.avail_out = static_cast<uInt>(out->size());
      if (deflate(&z, Z_FINISH) != Z_STREAM_END) return false;
      out->resize(static_cast<size_t>(z.total_out));
      return true;
    }
  }
  return false;
}

bool Compressor::zstd_decompress(std::string_view in, std::string *out) {
  unsigned long long size = ZSTD_getFrameContentSize(in.data(), in.size());
  if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > (64u << 20))
    return false;
  out->resize(size);
  size_t n = ZSTD_decompressDCtx(impl_->dctx, out->data(), out->size(), in.data(), in.size());
  if (ZSTD_isError(n)) return false;
  out->resize(n);
  return true;
}

bool Compressor::decompress_bounded(Compression c, std::string_view in, size_t max_out,
                                    std::string *out) {
  out->clear();
  switch (c) {
    case Compression::kNone:
      if (in.size() > max_out) return false;
      out->assign(in);
      return true;
    case Compression::kZstd: {
      // Streamed, so that a frame that claims (or lacks) a content size
      // never sizes the buffer.
      ZSTD_DCtx_reset(impl_->dctx, ZSTD_reset_session_only);
      out->resize(max_out + 1);
      ZSTD_inBuffer src{in.data(), in.size(), 0};
      ZSTD_outBuffer dst{out->data(), out->size(), 0};
      size_t rc;
      do {
        rc = ZSTD_decompressStream(impl_->dctx, &dst, &src);
      } while (!ZSTD_isError(rc) && rc != 0 && src.pos < src.size && dst.pos < dst.size);
      if (ZSTD_isError(rc) || rc != 0 || dst.pos > max_out) return false;
      out->resize(dst.pos);
      return true;
    }
    case Compression::kGzip: {
      z_stream z{};
      if (inflateInit2(&z, 15 + 16) != Z_OK) return false;
      out->resize(max_out + 1);
      z.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(in.data()));
      z.avail_in = static_cast<uInt>(in.size());
      z.next_out = reinterpret_cast<Bytef *>(out->data());
      z.avail_out = static_cast<uInt>(out->size());
      const int rc = inflate(&z, Z_FINISH);
      const size_t n = static_cast<size_t>(z.total_out);
      inflateEnd(&z);
      if (rc != Z_STREAM_END || n > max_out) return false;
      out->resize(n);
      return true;
    }
  }
  return false;
}

bool compression_from_name(std::string_view name, Compression *out) {
  if (name.empty() || name == "identity")
    *out = Compression::kNone;
  else if (name == "gzip")
    *out = Compression::kGzip;
  else if (name == "zstd")
    *out = Compression::kZstd;
  else
    return false;
  return true;
}

const char *content_encoding(Compression c) {
  switch (c) {
    case Compression::kGzip:
      return "gzip";
    case Compression::kZstd:
      return "zstd";
    case Compression::kNone:
      break;
  }
  return nullptr;
}

}  // namespace otelagent
