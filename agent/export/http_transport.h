// OTLP/HTTP POSTs and OTLP/gRPC calls through libcurl's multi interface,
// driven by the exporter's libuv loop (sockets watched with uv_poll, curl's
// timer with a uv_timer). The only module that knows HTTP.
//
// http/protobuf: one request at a time on one kept-alive HTTP/1.1
// connection. grpc: HTTP/2 (prior knowledge for http://, ALPN h2 for
// https://), up to kGrpcStreams calls multiplexed on one connection that is
// reused across exports (one call at a time with curl < 8 over http://,
// see setup_grpc); each call is one length-prefixed
// ExportTraceServiceRequest, and its status is read from the trailers (or
// from the headers of a trailers-only answer). Exporter thread only.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "export/retry_policy.h"

namespace otelagent {

// Calls in flight at once on the HTTP/2 connection: enough to keep the
// connection busy while the exporter compresses the next batch; each holds
// a batch in memory, so few.
inline constexpr size_t kGrpcStreams = 4;

struct Response {
  Outcome outcome;
  // HTTP: the body, at most 64 KiB. gRPC: the first response message
  // (decompressed by the caller when `compressed`), at most 64 KiB.
  std::string body;
  std::string content_type;  // of the response
  std::string error;         // curl's description of a transport error
  // gRPC only.
  bool compressed = false;    // the message carries the compressed flag
  std::string grpc_encoding;  // grpc-encoding of the response
  std::string grpc_message;   // percent-decoded, at most 512 bytes
};

// Why libcurl cannot POST to `url` as the OTLP endpoint ("" when it can):
// the URL must parse (libcurl's own parser, so what is accepted here is what
// the transport will use), be http or https, and name a host and, if any, a
// port from 1 to 65535. config_parse runs it at start (a UrlCheck), so a
// malformed endpoint is reported once then, not as a retried export failure.
std::string http_endpoint_problem(std::string_view url);

// libcurl's process-wide initialisation. Call before any exporter thread
// exists (otelagent_start does, under the lifecycle lock).
void http_global_init();

class HttpTransport {
 public:
  using Done = std::function<void(Response &&)>;

  // Keeps references to `loop` and `cfg`, which must outlive it.
  HttpTransport(uv_loop_t *loop, const Config &cfg);
  ~HttpTransport();
  HttpTransport(const HttpTransport &) = delete;
  HttpTransport &operator=(const HttpTransport &) = delete;

  bool ok() const { return multi_ != nullptr && !slots_.empty(); }
  // No room for another request until one finishes.
  bool busy() const;
  // The URL requests go to.
  const std::string &url() const { return url_; }

  // Starts a request carrying `body` (kept alive by the caller until `done`
  // runs or the request is cancelled) compressed with `encoding` (nullptr:
  // none). `done` runs on the loop. Returns the request's id (never 0), for
  // cancel(). Only when !busy().
  uint64_t post(std::string_view body, const char *encoding, Done done);

  // Abandons a request in flight, without calling its `done`.
  void cancel(uint64_t id);
  // Abandons every request in flight.
  void cancel();

  // Releases curl and closes the uv handles; run the loop afterwards so the
  // close callbacks complete.
  void close();

 private:
  struct Slot;
  static int on_socket(void *easy, int fd, int what, void *self, void *socket_ctx);
  static int on_timer(void *multi, long timeout_ms, void *self);
  static size_t on_header(char *data, size_t size, size_t n, void *slot);
  static void read_grpc_header(Slot &s, std::string_view name, std::string_view value);
  static size_t on_body(char *data, size_t size, size_t n, void *slot);
  static size_t on_read(char *data, size_t size, size_t n, void *slot);
  static int on_seek(void *slot, long long offset, int origin);
  void open_multi();
  void setup_common(Slot &s, std::string_view body);
  void setup_grpc(Slot &s, std::string_view body, const char *encoding);
  void finish(Slot &s, int curl_code);
  bool restart_without_upgrade(Slot &s, int curl_code);
  void check_done();
  void release(Slot &s);

  uv_loop_t *loop_;
  const Config &cfg_;
  const bool grpc_;
  const bool tls_;
  std::string url_;
  bool h2c_workaround_ = false;   // curl < 8.0.0 over http:// (see setup_grpc)
  bool h2c_live_ = false;         // the last call was answered in HTTP/2
  bool h2_answered_ = false;      // some call was answered in HTTP/2 (grpc)
  bool drop_connection_ = false;  // close the connection once no request uses it
  void *multi_ = nullptr;         // CURLM*
  std::vector<std::unique_ptr<Slot>> slots_;
  uint64_t next_id_ = 1;
  uv_timer_t *timer_ = nullptr;
  std::string user_agent_;
};

}  // namespace otelagent
