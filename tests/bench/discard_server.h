// A loopback HTTP/1.1 server for benchmarks and tests that reads each request
// whole and answers 200 with an empty body, as fast as it can, so that it is
// not the bottleneck of an exporter throughput figure. Optionally it answers
// another status (a 503 for an overloaded collector), waits before each
// answer (a slow collector), or hands each body to a callback.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace otelagent_bench {

class DiscardServer {
 public:
  explicit DiscardServer(int status = 200, int delay_ms = 0,
                         std::function<void(std::string_view)> on_body = {})
      : delay_ms_(delay_ms), on_body_(std::move(on_body)) {
    resp_ = status == 200 ? "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\n"
                            "Content-Length: 0\r\n\r\n"
                          : "HTTP/1.1 " + std::to_string(status) +
                                " Unavailable\r\nContent-Length: 0\r\n\r\n";
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listen_fd_, reinterpret_cast<sockaddr *>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(listen_fd_, reinterpret_cast<sockaddr *>(&a), &len);
    port_ = ntohs(a.sin_port);
    listen(listen_fd_, 16);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~DiscardServer() {
    stop_ = true;
    shutdown(listen_fd_, SHUT_RDWR);
    close(listen_fd_);
    acceptor_.join();
    for (auto &t : conns_) t.join();
  }
  int port() const { return port_; }
  uint64_t requests() const { return requests_.load(); }

 private:
  void accept_loop() {
    while (!stop_) {
      int fd = accept(listen_fd_, nullptr, nullptr);
      if (fd < 0 && (errno == EMFILE || errno == ENFILE || errno == EINTR) && !stop_) {
        // Linux reserves the descriptor before it waits for a connection: a
        // test that exhausts descriptors for a while must not kill the server.
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        continue;
      }
      if (fd < 0) return;
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      conns_.emplace_back([this, fd] { serve(fd); });
    }
  }
  void serve(int fd) {
    std::string buf;
    std::vector<char> chunk(1 << 16);
    for (;;) {
      size_t hdr_end;
      while ((hdr_end = buf.find("\r\n\r\n")) == std::string::npos) {
        ssize_t n = read(fd, chunk.data(), chunk.size());
        if (n <= 0) {
          close(fd);
          return;
        }
        buf.append(chunk.data(), static_cast<size_t>(n));
      }
      size_t body = 0;
      size_t p = 0;
      while ((p = buf.find('\n', p)) != std::string::npos && p < hdr_end) {
        ++p;
        if (strncasecmp(buf.c_str() + p, "content-length:", 15) == 0)
          body = std::strtoul(buf.c_str() + p + 15, nullptr, 10);
      }
      size_t need = hdr_end + 4 + body;
      while (buf.size() < need) {
        ssize_t n = read(fd, chunk.data(), chunk.size());
        if (n <= 0) {
          close(fd);
          return;
        }
        buf.append(chunk.data(), static_cast<size_t>(n));
      }
      if (on_body_) on_body_(std::string_view(buf).substr(hdr_end + 4, body));
      buf.erase(0, need);
      requests_.fetch_add(1);
      if (delay_ms_ != 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_));
      if (write(fd, resp_.data(), resp_.size()) < 0) {
        close(fd);
        return;
      }
    }
  }

  int delay_ms_;
  std::function<void(std::string_view)> on_body_;
  std::string resp_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> requests_{0};
  std::thread acceptor_;
  std::vector<std::thread> conns_;
};

}  // namespace otelagent_bench
