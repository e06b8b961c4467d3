#include "export/http_transport.h"

#include <curl/curl.h>
#include <otelagent/otelagent.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <new>

#include "export/grpc_wire.h"

namespace otelagent {

namespace {

constexpr size_t kMaxResponseBody = 64 * 1024;
constexpr size_t kMaxGrpcMessageText = 512;

// One watcher per socket curl asks us to watch.
struct SocketWatch {
  uv_poll_t poll;
  curl_socket_t fd;
  HttpTransport *owner;
};

CURLM *multi_of(void *p) {
  return static_cast<CURLM *>(p);
}

std::string_view trim_value(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() &&
         (v.back() == '\r' || v.back() == '\n' || v.back() == ' ' || v.back() == '\t'))
    v.remove_suffix(1);
  return v;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto &c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Case-insensitive search of a lower-case `word`, without allocating.
bool contains_ci(std::string_view s, std::string_view word) {
  for (size_t i = 0; i + word.size() <= s.size(); ++i) {
    size_t k = 0;
    while (k < word.size() && std::tolower(static_cast<unsigned char>(s[i + k])) ==
                                  static_cast<unsigned char>(word[k]))
      ++k;
    if (k == word.size()) return true;
  }
  return false;
}

}  // namespace

std::string http_endpoint_problem(std::string_view url_text) {
  const std::string url(url_text);
  CURLU *u = curl_url();
  if (u == nullptr) return "";  // out of memory: leave the URL to the request
  std::string problem;
  char *scheme = nullptr, *port = nullptr;
  CURLUcode rc = curl_url_set(u, CURLUPART_URL, url.c_str(), 0);
  if (rc != CURLUE_OK) {
    problem = std::string("is not a valid URL (") + curl_url_strerror(rc) + ")";
  } else {
    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    curl_url_get(u, CURLUPART_PORT, &port, 0);
    size_t authority = url.find("://");
    if (scheme == nullptr || (lower(scheme) != "http" && lower(scheme) != "https"))
      problem = "is not an http(s) URL";
    // libcurl reads "http:///x" as "http://x/" (as browsers do); for a
    // configured endpoint an empty host is a mistake, not a shorthand.
    else if (authority == std::string::npos || authority + 3 >= url.size() ||
             url[authority + 3] == '/')
      problem = "has no host";
    else if (port != nullptr && std::string_view(port) == "0")
      problem = "has port 0";
  }
  curl_free(scheme);
  curl_free(port);
  curl_url_cleanup(u);
  return problem;
}

void http_global_init() {
  // libcurl's global init takes a process-wide spin lock; run on the
  // exporter thread it could be held at the moment a host forks, and the
  // child would spin forever. So it runs here, once, from otelagent_start.
  static bool done = false;
  if (!done) done = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

// One request: its easy handle (kept across requests, so its connection and
// TLS session stay in the multi's cache) and what its callbacks collect.
struct HttpTransport::Slot {
  HttpTransport *owner = nullptr;
  CURL *easy = nullptr;
  curl_slist *headers = nullptr;
  uint64_t id = 0;  // 0 while free
  Done done;
  Response resp;
  const char *encoding = nullptr;  // what the request was compressed with
  bool accept_encoding_seen = false;
  std::string accept_encoding;  // grpc-accept-encoding of the answer
  // gRPC: the request body is the 5-byte prefix and `body`, read by on_read.
  char prefix[5] = {};
  std::string_view body;
  size_t offset = 0;
  bool asked_upgrade = false;  // sent as CURL_HTTP_VERSION_2_0 (see setup_grpc)
};

HttpTransport::HttpTransport(uv_loop_t *loop, const Config &cfg)
    : loop_(loop),
      cfg_(cfg),
      grpc_(cfg.protocol == Protocol::kGrpc),
      tls_(cfg.endpoint.rfind("https:", 0) == 0),
      url_(cfg.endpoint) {
  h2c_workaround_ = grpc_ && !tls_ && curl_version_info(CURLVERSION_NOW)->version_num < 0x080000;
  user_agent_ = std::string("OTel-OTLP-Exporter-Cpp/") + OTELAGENT_VERSION_STRING +
                " libotelagent/" + OTELAGENT_VERSION_STRING;
  timer_ = new uv_timer_t;
  uv_timer_init(loop_, timer_);
  timer_->data = this;
  if (grpc_) {
    // The endpoint names where to connect; the path is the method's.
    if (CURLU *u = curl_url()) {
      char *full = nullptr;
      if (curl_url_set(u, CURLUPART_URL, cfg.endpoint.c_str(), 0) == CURLUE_OK &&
          curl_url_set(u, CURLUPART_PATH, std::string(kGrpcExportPath).c_str(), 0) == CURLUE_OK &&
          curl_url_set(u, CURLUPART_QUERY, nullptr, 0) == CURLUE_OK &&
          curl_url_set(u, CURLUPART_FRAGMENT, nullptr, 0) == CURLUE_OK &&
          curl_url_get(u, CURLUPART_URL, &full, 0) == CURLUE_OK)
        url_ = full;
      curl_free(full);
      curl_url_cleanup(u);
    }
  }
  open_multi();
  // With the h2c workaround, one call at a time (see setup_grpc).
  const size_t n = grpc_ && !h2c_workaround_ ? kGrpcStreams : 1;
  for (size_t i = 0; i < n && multi_ != nullptr; ++i) {
    auto s = std::make_unique<Slot>();
    s->owner = this;
    s->easy = curl_easy_init();
    if (s->easy == nullptr) break;
    slots_.push_back(std::move(s));
  }
}

void HttpTransport::open_multi() {
  multi_ = curl_multi_init();
  if (multi_ == nullptr) return;
  curl_multi_setopt(multi_of(multi_), CURLMOPT_SOCKETFUNCTION, &HttpTransport::on_socket);
  curl_multi_setopt(multi_of(multi_), CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_of(multi_), CURLMOPT_TIMERFUNCTION, &HttpTransport::on_timer);
  curl_multi_setopt(multi_of(multi_), CURLMOPT_TIMERDATA, this);
  if (grpc_) {
    // Every call on one HTTP/2 connection: curl multiplexes them (its
    // default since 7.62, stated here because it is the design) and, with
    // one connection per host and PIPEWAIT, queues a call for the connection
    // that is being set up instead of opening a second one.
    curl_multi_setopt(multi_of(multi_), CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    curl_multi_setopt(multi_of(multi_), CURLMOPT_MAX_HOST_CONNECTIONS, 1L);
  }
}

HttpTransport::~HttpTransport() {
  close();
}

bool HttpTransport::busy() const {
  size_t in_flight = 0;
  for (const auto &s : slots_) in_flight += s->id != 0;
  // A connection to be dropped takes no new request; it goes when idle.
  if (drop_connection_ && in_flight != 0) return true;
  return in_flight == slots_.size();
}

int HttpTransport::on_socket(void *, int fd, int what, void *self_p, void *socket_ctx) {
  auto *self = static_cast<HttpTransport *>(self_p);
  auto *w = static_cast<SocketWatch *>(socket_ctx);
  if (what == CURL_POLL_REMOVE) {
    if (w != nullptr) {
      uv_poll_stop(&w->poll);
      uv_close(reinterpret_cast<uv_handle_t *>(&w->poll),
               [](uv_handle_t *h) { delete static_cast<SocketWatch *>(h->data); });
      curl_multi_assign(multi_of(self->multi_), fd, nullptr);
    }
    return 0;
  }
  if (w == nullptr) {
    // Inside curl's C code: no exception may leave here.
    w = new (std::nothrow) SocketWatch;
    if (w == nullptr) return -1;
    w->fd = fd;
    w->owner = self;
    uv_poll_init_socket(self->loop_, &w->poll, fd);
    w->poll.data = w;
    curl_multi_assign(multi_of(self->multi_), fd, w);
  }
  int events = 0;
  if (what & CURL_POLL_IN) events |= UV_READABLE;
  if (what & CURL_POLL_OUT) events |= UV_WRITABLE;
  uv_poll_start(&w->poll, events, [](uv_poll_t *h, int status, int ev) {
    auto *watch = static_cast<SocketWatch *>(h->data);
    int flags = 0;
    if (status < 0) flags = CURL_CSELECT_ERR;
    if (ev & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (ev & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    HttpTransport *t = watch->owner;
    int running = 0;
    curl_multi_socket_action(multi_of(t->multi_), watch->fd, flags, &running);
    t->check_done();
  });
  return 0;
}

int HttpTransport::on_timer(void *, long timeout_ms, void *self_p) {
  auto *self = static_cast<HttpTransport *>(self_p);
  if (timeout_ms < 0) {
    uv_timer_stop(self->timer_);
    return 0;
  }
  uv_timer_start(
      self->timer_,
      [](uv_timer_t *h) {
        auto *t = static_cast<HttpTransport *>(h->data);
        int running = 0;
        curl_multi_socket_action(multi_of(t->multi_), CURL_SOCKET_TIMEOUT, 0, &running);
        t->check_done();
      },
      static_cast<uint64_t>(timeout_ms), 0);
  return 0;
}

size_t HttpTransport::on_header(char *data, size_t size, size_t n, void *slot_p) {
  auto *s = static_cast<Slot *>(slot_p);
  Response &r = s->resp;
  std::string_view line(data, size * n);
  size_t colon = line.find(':');
  // Inside curl's C code: an allocation failure only loses this header.
  // HTTP/2 trailers come through here too (after the body), so a gRPC
  // status is read the same way from trailers and from a trailers-only
  // answer's headers.
  if (colon != std::string_view::npos) try {
      std::string name = lower(line.substr(0, colon));
      std::string_view value = trim_value(line.substr(colon + 1));
      if (name == "retry-after") {
        r.outcome.retry_after_ms = parse_retry_after(value, static_cast<int64_t>(time(nullptr)));
      } else if (name == "content-type") {
        r.content_type = lower(value);
      } else if (s->owner->grpc_ && name.rfind("grpc-", 0) == 0) {
        read_grpc_header(*s, name, value);
      }
    } catch (...) {
    }
  return size * n;
}

void HttpTransport::read_grpc_header(Slot &s, std::string_view name, std::string_view value) {
  Response &r = s.resp;
  if (name == "grpc-status") {
    int code = 0;
    bool digits = !value.empty() && value.size() <= 3;
    for (char c : value) {
      digits = digits && c >= '0' && c <= '9';
      code = code * 10 + (c - '0');
    }
    // A status that is not a number is UNKNOWN, as gRPC clients read it.
    r.outcome.grpc_status = digits ? code : kGrpcUnknown;
  } else if (name == "grpc-message") {
    r.grpc_message = grpc_message_decode(value.substr(0, 3 * kMaxGrpcMessageText));
    if (r.grpc_message.size() > kMaxGrpcMessageText) r.grpc_message.resize(kMaxGrpcMessageText);
    // It goes to the host's log: no control character from the network.
    for (char &c : r.grpc_message)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  } else if (name == "grpc-status-details-bin") {
    GrpcStatusDetails d;
    if (grpc_parse_status_details(value, &d)) {
      r.outcome.retry_info = d.retry_info;
      if (d.retry_delay_ms >= 0) r.outcome.retry_after_ms = d.retry_delay_ms;
    }
  } else if (name == "grpc-encoding") {
    r.grpc_encoding = lower(value);
  } else if (name == "grpc-accept-encoding") {
    s.accept_encoding_seen = true;
    s.accept_encoding = lower(value);
  }
}

size_t HttpTransport::on_body(char *data, size_t size, size_t n, void *slot_p) {
  auto *s = static_cast<Slot *>(slot_p);
  // gRPC: room for the prefix of a 64 KiB message too.
  const size_t cap = kMaxResponseBody + (s->owner->grpc_ ? 5 : 0);
  size_t room = cap - std::min(cap, s->resp.body.size());
  // Inside curl's C code: an allocation failure only loses body bytes.
  try {
    s->resp.body.append(data, std::min(room, size * n));
  } catch (...) {
  }
  // Accept (and discard) the rest: a large body is no reason to fail.
  return size * n;
}

size_t HttpTransport::on_read(char *data, size_t size, size_t n, void *slot_p) {
  auto *s = static_cast<Slot *>(slot_p);
  const size_t room = size * n, total = 5 + s->body.size();
  size_t copied = 0;
  while (copied < room && s->offset < total) {
    size_t k;
    if (s->offset < 5) {
      k = std::min(5 - s->offset, room - copied);
      std::memcpy(data + copied, s->prefix + s->offset, k);
    } else {
      k = std::min(total - s->offset, room - copied);
      std::memcpy(data + copied, s->body.data() + (s->offset - 5), k);
    }
    copied += k;
    s->offset += k;
  }
  return copied;
}

int HttpTransport::on_seek(void *slot_p, long long offset, int origin) {
  // curl rewinds a request it sends again on a new connection (one that was
  // closed under it, or a stream the server refused).
  auto *s = static_cast<Slot *>(slot_p);
  if (origin != SEEK_SET || offset < 0 || static_cast<size_t>(offset) > 5 + s->body.size())
    return CURL_SEEKFUNC_CANTSEEK;
  s->offset = static_cast<size_t>(offset);
  return CURL_SEEKFUNC_OK;
}

void HttpTransport::setup_common(Slot &s, std::string_view body) {
  CURL *e = s.easy;
  curl_easy_reset(e);
  curl_easy_setopt(e, CURLOPT_URL, url_.c_str());
  curl_easy_setopt(e, CURLOPT_POST, 1L);
  curl_easy_setopt(e, CURLOPT_PRIVATE, &s);
  curl_easy_setopt(e, CURLOPT_USERAGENT, user_agent_.c_str());
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(std::min(cfg_.timeout_ms, cfg_.export_timeout_ms)));
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075700
  // Cancelling or cleaning up must not wait for the threaded resolver: with
  // a DNS server that never answers that wait would exceed any shutdown
  // bound. The resolver thread is left to finish on its own.
  curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
#endif
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &HttpTransport::on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, &s);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &HttpTransport::on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &s);
  // No redirects: spans go to the configured endpoint only. The proxy is the
  // host's, as libcurl reads it from the environment when CURLOPT_PROXY is
  // unset (http_proxy, https_proxy or HTTPS_PROXY, all_proxy, no_proxy or
  // NO_PROXY; not upper-case HTTP_PROXY, which a CGI host may have taken from
  // a request's "Proxy:" header). The OpenTelemetry Python exporter honours
  // them too, and a host behind an egress proxy expects it.
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!cfg_.certificate.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, cfg_.certificate.c_str());
  if (!cfg_.client_certificate.empty())
    curl_easy_setopt(e, CURLOPT_SSLCERT, cfg_.client_certificate.c_str());
  if (!cfg_.client_key.empty()) curl_easy_setopt(e, CURLOPT_SSLKEY, cfg_.client_key.c_str());
  if (!grpc_) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
}

void HttpTransport::setup_grpc(Slot &s, std::string_view body, const char *encoding) {
  CURL *e = s.easy;
  grpc_frame_prefix(encoding != nullptr, static_cast<uint32_t>(body.size()), s.prefix);
  s.body = body;
  s.offset = 0;
  // The body is the prefix and the batch, read in place (no copy of the
  // batch), and rewindable.
  curl_easy_setopt(e, CURLOPT_READFUNCTION, &HttpTransport::on_read);
  curl_easy_setopt(e, CURLOPT_READDATA, &s);
  curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, &HttpTransport::on_seek);
  curl_easy_setopt(e, CURLOPT_SEEKDATA, &s);
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(5 + body.size()));
  // http://: HTTP/2 from the first byte (h2c with prior knowledge, as gRPC
  // clients do). https://: h2 offered by ALPN; a server may still pick
  // HTTP/1.1, which finish() refuses.
  long version = tls_ ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE;
  // curl before 8.0.0 breaks an h2c connection that a prior-knowledge
  // request reuses (it layers HTTP/2 on it a second time: "Error in the
  // HTTP2 framing layer", curl/curl#10634), and so every later call on it.
  // So prior knowledge always opens a new connection, and only a call
  // answered in HTTP/2 makes the connection reusable: the next call asks
  // for plain HTTP/2, which reuses it as it is. When that connection has
  // gone meanwhile, curl opens a new one with an HTTP/1.1 Upgrade, which
  // gRPC servers refuse: restart_without_upgrade repeats the call.
  // Calls go one at a time (one slot), so none waits on a connection that
  // is being replaced. That costs the multiplexing, on curl < 8 over
  // http:// only.
  s.asked_upgrade = h2c_workaround_ && h2c_live_;
  if (s.asked_upgrade) version = CURL_HTTP_VERSION_2_0;
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, version);
  if (h2c_workaround_ && !s.asked_upgrade) curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
  curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
  // Through a host's HTTP proxy, tunnel (CONNECT): a forwarding proxy would
  // speak HTTP/1.1 to the collector.
  curl_easy_setopt(e, CURLOPT_HTTPPROXYTUNNEL, 1L);
}

uint64_t HttpTransport::post(std::string_view body, const char *encoding, Done done) {
  Slot *slot = nullptr;
  for (auto &s : slots_)
    if (s->id == 0) {
      slot = s.get();
      break;
    }
  if (drop_connection_ && multi_ != nullptr &&
      std::all_of(slots_.begin(), slots_.end(), [](const auto &x) { return x->id == 0; })) {
    // No request is in flight: a new multi handle starts with no connection.
    drop_connection_ = false;
    h2c_live_ = false;
    curl_multi_cleanup(multi_of(multi_));
    open_multi();
  }
  if (slot == nullptr || multi_ == nullptr) {
    Response r;
    r.outcome.transport_error = true;
    r.error = "no request slot";
    done(std::move(r));
    return 0;
  }
  Slot &s = *slot;
  s.resp = Response{};
  s.encoding = encoding;
  s.accept_encoding_seen = false;
  s.accept_encoding.clear();
  curl_slist_free_all(s.headers);
  s.headers = nullptr;
  curl_slist *h = nullptr;
  try {
    auto add = [&h](const std::string &line) {
      curl_slist *next = curl_slist_append(h, line.c_str());
      if (next == nullptr) throw std::bad_alloc();
      h = next;
    };
    if (grpc_) {
      add("Content-Type: application/grpc");
      // Required by gRPC servers (to detect proxies that drop trailers);
      // curl 7.88 passes it on over HTTP/2.
      add("TE: trailers");
      add("grpc-timeout: " + grpc_timeout_value(std::min(cfg_.timeout_ms, cfg_.export_timeout_ms)));
      if (encoding != nullptr) add(std::string("grpc-encoding: ") + encoding);
      // What this client can read in a response (compressor.h).
      add("grpc-accept-encoding: identity,gzip,zstd");
    } else {
      add("Content-Type: application/x-protobuf");
      if (encoding != nullptr) add(std::string("Content-Encoding: ") + encoding);
    }
    // Without this curl would wait for a "100 Continue" on large bodies.
    add("Expect:");
    std::string line;
    for (const auto &[k, v] : cfg_.headers) {
      line.assign(k).append(": ").append(v);
      add(line);
    }
  } catch (...) {
    curl_slist_free_all(h);
    throw;
  }
  s.headers = h;
  setup_common(s, body);
  if (grpc_) setup_grpc(s, body, encoding);
  curl_easy_setopt(s.easy, CURLOPT_HTTPHEADER, h);
  s.id = next_id_++;
  s.done = std::move(done);
  const uint64_t id = s.id;
  if (curl_multi_add_handle(multi_of(multi_), s.easy) != CURLM_OK) {
    Response r;
    r.outcome.transport_error = true;
    r.error = "curl_multi_add_handle failed";
    Done d = std::move(s.done);
    release(s);
    d(std::move(r));
    return 0;
  }
  return id;
}

bool HttpTransport::restart_without_upgrade(Slot &s, int curl_code) {
  long connects = 0, version = 0;
  curl_easy_getinfo(s.easy, CURLINFO_NUM_CONNECTS, &connects);
  curl_easy_getinfo(s.easy, CURLINFO_HTTP_VERSION, &version);
  const bool h2 = curl_code == CURLE_OK && version == CURL_HTTP_VERSION_2_0;
  // Only a whole answer in HTTP/2 shows the connection fit for reuse. After
  // a call that failed (a timeout before any answer, a reset, a connection
  // curl could not set up) the next call opens a new one.
  h2c_live_ = h2;
  // A request that asked for HTTP/2 but found no connection to reuse went
  // out on a new one as HTTP/1.1 with an Upgrade: it is sent again, once,
  // with prior knowledge on a new connection.
  if (!s.asked_upgrade || connects == 0 || h2) return false;
  s.asked_upgrade = false;
  s.offset = 0;
  s.resp = Response{};
  s.accept_encoding_seen = false;
  s.accept_encoding.clear();
  curl_multi_remove_handle(multi_of(multi_), s.easy);
  curl_easy_setopt(s.easy, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
  curl_easy_setopt(s.easy, CURLOPT_FRESH_CONNECT, 1L);
  return curl_multi_add_handle(multi_of(multi_), s.easy) == CURLM_OK;
}

void HttpTransport::finish(Slot &s, int curl_code) {
  Response &r = s.resp;
  CURL *e = s.easy;
  if (curl_code != CURLE_OK) {
    r.outcome.transport_error = true;
    try {
      r.error = curl_easy_strerror(static_cast<CURLcode>(curl_code));
      // What curl reports when an HTTP/2 client meets a server that speaks
      // HTTP/1.1 only (the OTLP/HTTP port, for one). Such a server may also
      // close the connection while curl still sends, or before curl reads:
      // a send or receive error from an endpoint that never answered in
      // HTTP/2 gets the same hint.
      const bool never_h2 =
          !h2_answered_ && (curl_code == CURLE_SEND_ERROR || curl_code == CURLE_RECV_ERROR);
      if (grpc_ && (curl_code == CURLE_HTTP2 || curl_code == CURLE_GOT_NOTHING ||
                    curl_code == CURLE_WEIRD_SERVER_REPLY || never_h2))
        r.error += "; OTLP/gRPC needs a peer that speaks HTTP/2";
    } catch (...) {
      // The description is only for the log.
    }
    // grpc-go answers an encoding it lacks with UNIMPLEMENTED; gRPC's C core
    // (grpcio, for one) cannot even parse the header and resets the stream
    // before any answer. Either way gzip is the encoding every gRPC server
    // has, so a zstd call reset that way falls back to it.
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (grpc_ && curl_code == CURLE_HTTP2_STREAM && status == 0 && s.encoding != nullptr &&
        std::strcmp(s.encoding, "zstd") == 0) {
      r.outcome.encoding_rejected = true;
      // Such a server's header decoder did not take the value that the
      // client's HPACK table now holds, so every later request on this
      // connection is reset too: the connection is dropped.
      drop_connection_ = true;
    }
    return;
  }
  long status = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  r.outcome.http_status = status;
  if (!grpc_) {
    if ((status == 400 || status == 415) && contains_ci(r.body, "encoding"))
      r.outcome.encoding_rejected = true;
    return;
  }
  r.outcome.grpc = true;
  long version = 0;
  curl_easy_getinfo(e, CURLINFO_HTTP_VERSION, &version);
  r.outcome.not_http2 = version != CURL_HTTP_VERSION_2_0 && version != CURL_HTTP_VERSION_3;
  if (!r.outcome.not_http2) h2_answered_ = true;
  bool compressed = false;
  std::string_view message;
  if (grpc_first_message(r.body, &compressed, &message)) {
    r.compressed = compressed;
    r.body.erase(0, 5);
    r.body.resize(message.size());
  } else {
    r.body.clear();
  }
  // A server that cannot decode the request's encoding answers
  // UNIMPLEMENTED, and lists what it can in grpc-accept-encoding.
  if (r.outcome.grpc_status == kGrpcUnimplemented && s.encoding != nullptr)
    r.outcome.encoding_rejected =
        (s.accept_encoding_seen && !contains_ci(s.accept_encoding, s.encoding)) ||
        contains_ci(r.grpc_message, "encoding") || contains_ci(r.grpc_message, "compress");
}

void HttpTransport::check_done() {
  int left = 0;
  // Re-read multi_ each time: a `done` may close the transport.
  while (CURLMsg *m = curl_multi_info_read(multi_of(multi_), &left)) {
    if (m->msg != CURLMSG_DONE) continue;
    CURL *e = m->easy_handle;
    const CURLcode rc = m->data.result;
    char *priv = nullptr;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
    Slot &s = *reinterpret_cast<Slot *>(priv);
    if (h2c_workaround_ && restart_without_upgrade(s, rc)) continue;
    finish(s, rc);
    Done d = std::move(s.done);
    Response r = std::move(s.resp);
    release(s);
    if (d) d(std::move(r));
  }
}

void HttpTransport::release(Slot &s) {
  if (s.id != 0 && multi_ != nullptr) curl_multi_remove_handle(multi_of(multi_), s.easy);
  s.id = 0;
  s.done = nullptr;
  s.body = {};
}

void HttpTransport::cancel(uint64_t id) {
  for (auto &s : slots_)
    if (id != 0 && s->id == id) release(*s);
}

void HttpTransport::cancel() {
  for (auto &s : slots_) release(*s);
}

void HttpTransport::close() {
  cancel();
  // The slots themselves stay until destruction: a `done` running from
  // check_done may close the transport while check_done still holds one.
  for (auto &s : slots_) {
    if (s->easy != nullptr) curl_easy_cleanup(s->easy);
    s->easy = nullptr;
    curl_slist_free_all(s->headers);
    s->headers = nullptr;
  }
  if (multi_ != nullptr) curl_multi_cleanup(multi_of(multi_));
  multi_ = nullptr;
  if (timer_ != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t *>(timer_),
             [](uv_handle_t *h) { delete reinterpret_cast<uv_timer_t *>(h); });
    timer_ = nullptr;
  }
}

}  // namespace otelagent
