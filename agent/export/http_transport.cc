#include "export/http_transport.h"

#include <curl/curl.h>
#include <otelagent/otelagent.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <new>

namespace otelagent {

namespace {

constexpr size_t kMaxResponseBody = 64 * 1024;

// One watcher per socket curl asks us to watch.
struct SocketWatch {
  uv_poll_t poll;
  curl_socket_t fd;
  HttpTransport *owner;
};

CURLM *multi_of(void *p) {
  return static_cast<CURLM *>(p);
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

HttpTransport::HttpTransport(uv_loop_t *loop, const Config &cfg) : loop_(loop), cfg_(cfg) {
  user_agent_ = std::string("OTel-OTLP-Exporter-Cpp/") + OTELAGENT_VERSION_STRING +
                " libotelagent/" + OTELAGENT_VERSION_STRING;
  multi_ = curl_multi_init();
  easy_ = curl_easy_init();
  timer_ = new uv_timer_t;
  uv_timer_init(loop_, timer_);
  timer_->data = this;
  if (multi_ == nullptr) return;
  curl_multi_setopt(multi_of(multi_), CURLMOPT_SOCKETFUNCTION, &HttpTransport::on_socket);
  curl_multi_setopt(multi_of(multi_), CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_of(multi_), CURLMOPT_TIMERFUNCTION, &HttpTransport::on_timer);
  curl_multi_setopt(multi_of(multi_), CURLMOPT_TIMERDATA, this);
}

HttpTransport::~HttpTransport() {
  close();
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

size_t HttpTransport::on_header(char *data, size_t size, size_t n, void *self_p) {
  auto *self = static_cast<HttpTransport *>(self_p);
  std::string_view line(data, size * n);
  size_t colon = line.find(':');
  // Inside curl's C code: an allocation failure only loses this header.
  if (colon != std::string_view::npos) try {
      std::string name = lower(line.substr(0, colon));
      std::string_view value = line.substr(colon + 1);
      if (name == "retry-after")
        self->resp_.outcome.retry_after_ms =
            parse_retry_after(value, static_cast<int64_t>(time(nullptr)));
      else if (name == "content-type") {
        while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
        while (!value.empty() && (value.back() == '\r' || value.back() == '\n'))
          value.remove_suffix(1);
        self->resp_.content_type = lower(value);
      }
    } catch (...) {
    }
  return size * n;
}

size_t HttpTransport::on_body(char *data, size_t size, size_t n, void *self_p) {
  auto *self = static_cast<HttpTransport *>(self_p);
  size_t room = kMaxResponseBody - std::min(kMaxResponseBody, self->resp_.body.size());
  // Inside curl's C code: an allocation failure only loses body bytes.
  try {
    self->resp_.body.append(data, std::min(room, size * n));
  } catch (...) {
  }
  // Accept (and discard) the rest: a large body is no reason to fail.
  return size * n;
}

void HttpTransport::post(std::string_view body, const char *encoding, Done done) {
  resp_ = Response{};
  CURL *e = static_cast<CURL *>(easy_);
  curl_slist_free_all(static_cast<curl_slist *>(headers_));
  headers_ = nullptr;
  curl_slist *h = curl_slist_append(nullptr, "Content-Type: application/x-protobuf");
  try {
    if (encoding != nullptr)
      h = curl_slist_append(h, (std::string("Content-Encoding: ") + encoding).c_str());
    // Without this curl would wait for a "100 Continue" on large bodies.
    h = curl_slist_append(h, "Expect:");
    std::string line;
    for (const auto &[k, v] : cfg_.headers) {
      line.assign(k).append(": ").append(v);
      h = curl_slist_append(h, line.c_str());
    }
  } catch (...) {
    curl_slist_free_all(h);
    throw;
  }
  headers_ = h;
  curl_easy_reset(e);
  curl_easy_setopt(e, CURLOPT_URL, cfg_.endpoint.c_str());
  curl_easy_setopt(e, CURLOPT_POST, 1L);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
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
  curl_easy_setopt(e, CURLOPT_HEADERDATA, this);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &HttpTransport::on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, this);
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
  done_ = std::move(done);
  if (curl_multi_add_handle(multi_of(multi_), e) != CURLM_OK) {
    Response r;
    r.outcome.transport_error = true;
    r.error = "curl_multi_add_handle failed";
    Done d = std::move(done_);
    done_ = nullptr;
    d(std::move(r));
  }
}

void HttpTransport::check_done() {
  int left = 0;
  while (CURLMsg *m = curl_multi_info_read(multi_of(multi_), &left)) {
    if (m->msg != CURLMSG_DONE) continue;
    CURL *e = m->easy_handle;
    CURLcode rc = m->data.result;
    if (rc == CURLE_OK) {
      long status = 0;
      curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
      resp_.outcome.http_status = status;
      if ((status == 400 || status == 415) && contains_ci(resp_.body, "encoding"))
        resp_.outcome.encoding_rejected = true;
    } else {
      resp_.outcome.transport_error = true;
      try {
        resp_.error = curl_easy_strerror(rc);
      } catch (...) {
        // The description is only for the log.
      }
    }
    curl_multi_remove_handle(multi_of(multi_), e);
    if (done_) {
      Done d = std::move(done_);
      done_ = nullptr;
      d(std::move(resp_));
    }
  }
}

void HttpTransport::cancel() {
  if (done_ && multi_ != nullptr) curl_multi_remove_handle(multi_of(multi_), easy_);
  done_ = nullptr;
}

void HttpTransport::close() {
  cancel();
  if (easy_ != nullptr) curl_easy_cleanup(easy_);
  easy_ = nullptr;
  if (multi_ != nullptr) curl_multi_cleanup(multi_of(multi_));
  multi_ = nullptr;
  curl_slist_free_all(static_cast<curl_slist *>(headers_));
  headers_ = nullptr;
  if (timer_ != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t *>(timer_),
             [](uv_handle_t *h) { delete reinterpret_cast<uv_timer_t *>(h); });
    timer_ = nullptr;
  }
}

}  // namespace otelagent
