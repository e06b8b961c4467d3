// OTLP/HTTP POSTs through libcurl's multi interface, driven by the exporter's
// libuv loop (sockets watched with uv_poll, curl's timer with a uv_timer).
// One request at a time; the connection is kept alive between requests. The
// only module that knows HTTP. Exporter thread only.
#pragma once

#include <uv.h>

#include <functional>
#include <string>
#include <string_view>

#include "core/config.h"
#include "export/retry_policy.h"

namespace otelagent {

struct Response {
  Outcome outcome;
  std::string body;          // at most 64 KiB
  std::string content_type;  // of the response
  std::string error;         // curl's description of a transport error
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

  bool ok() const { return multi_ != nullptr && easy_ != nullptr; }
  bool busy() const { return done_ != nullptr; }

  // Starts a POST of `body` (kept alive by the caller until `done` runs) with
  // `encoding` as Content-Encoding (nullptr: none). `done` runs on the loop.
  void post(std::string_view body, const char *encoding, Done done);

  // Abandons the request in flight, if any, without calling its `done`.
  void cancel();

  // Releases curl and closes the uv handles; run the loop afterwards so the
  // close callbacks complete.
  void close();

 private:
  static int on_socket(void *easy, int fd, int what, void *self, void *socket_ctx);
  static int on_timer(void *multi, long timeout_ms, void *self);
  static size_t on_header(char *data, size_t size, size_t n, void *self);
  static size_t on_body(char *data, size_t size, size_t n, void *self);
  void check_done();

  uv_loop_t *loop_;
  const Config &cfg_;
  void *multi_ = nullptr;    // CURLM*
  void *easy_ = nullptr;     // CURL*
  void *headers_ = nullptr;  // curl_slist*, rebuilt per request
  uv_timer_t *timer_ = nullptr;
  Done done_;
  Response resp_;
  std::string user_agent_;
};

}  // namespace otelagent
