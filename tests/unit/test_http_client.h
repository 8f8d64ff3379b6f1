#ifndef WARREN_TESTS_UNIT_TEST_HTTP_CLIENT_H_
#define WARREN_TESTS_UNIT_TEST_HTTP_CLIENT_H_

// A small blocking HTTP/1.1 client for tests (POSIX sockets, IPv4 loopback). Every call has a
// deadline, so a broken server fails a test instead of hanging it.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace warren::test {

struct HttpClientResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  // First header with this name (case-insensitive).
  std::optional<std::string> Header(std::string_view name) const {
    for (const auto& [key, value] : headers) {
      if (absl::EqualsIgnoreCase(key, absl::string_view(name.data(), name.size()))) return value;
    }
    return std::nullopt;
  }
};

// One client connection; requests on it reuse the connection (keep-alive).
class HttpConnection {
 public:
  static absl::StatusOr<std::unique_ptr<HttpConnection>> Connect(const std::string& host, int port,
                                                                 absl::Duration timeout) {
    std::string ip = host == "localhost" ? "127.0.0.1" : host;
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, ip.c_str(), &sa.sin_addr) != 1) {
      return absl::InvalidArgumentError(absl::StrCat("not an IPv4 address: ", host));
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
    auto conn = std::unique_ptr<HttpConnection>(new HttpConnection(fd));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
      if (errno != EINPROGRESS) {
        return absl::UnavailableError(
            absl::StrCat("connect ", host, ":", port, ": ", strerror(errno)));
      }
      absl::Time deadline = absl::Now() + timeout;
      if (!conn->WaitFor(POLLOUT, deadline)) {
        return absl::DeadlineExceededError(absl::StrCat("connect ", host, ":", port));
      }
      int err = 0;
      socklen_t len = sizeof(err);
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        return absl::UnavailableError(
            absl::StrCat("connect ", host, ":", port, ": ", strerror(err)));
      }
    }
    conn->host_ = absl::StrCat(host, ":", port);
    return conn;
  }

  ~HttpConnection() { close(fd_); }

  absl::Status SendRaw(std::string_view data, absl::Duration timeout) {
    absl::Time deadline = absl::Now() + timeout;
    while (!data.empty()) {
      ssize_t n = send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n > 0) {
        data.remove_prefix(static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!WaitFor(POLLOUT, deadline)) return absl::DeadlineExceededError("send timed out");
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      return absl::UnavailableError(absl::StrCat("send: ", strerror(errno)));
    }
    return absl::OkStatus();
  }

  // Reads one response. `head`: the request was HEAD (no body follows the headers).
  absl::StatusOr<HttpClientResponse> ReadResponse(absl::Duration timeout, bool head = false) {
    absl::Time deadline = absl::Now() + timeout;
    size_t header_end;
    while ((header_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (absl::Status s = Fill(deadline); !s.ok()) return s;
    }
    std::string_view head_text(buffer_.data(), header_end);
    HttpClientResponse resp;
    size_t line_end = head_text.find("\r\n");
    std::string_view status_line = head_text.substr(0, line_end);
    // "HTTP/1.1 200 OK"
    if (!absl::StartsWith(absl::string_view(status_line.data(), status_line.size()), "HTTP/1.") ||
        status_line.size() < 12 ||
        !absl::SimpleAtoi(absl::string_view(status_line.data() + 9, 3), &resp.status)) {
      return absl::DataLossError(absl::StrCat("bad status line: ", std::string(status_line)));
    }
    std::string_view rest =
        line_end == std::string_view::npos ? "" : head_text.substr(line_end + 2);
    while (!rest.empty()) {
      size_t eol = rest.find("\r\n");
      std::string_view line = rest.substr(0, eol);
      rest = eol == std::string_view::npos ? "" : rest.substr(eol + 2);
      size_t colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      std::string value(line.substr(colon + 1));
      resp.headers.emplace_back(std::string(line.substr(0, colon)),
                                std::string(absl::StripAsciiWhitespace(value)));
    }
    buffer_.erase(0, header_end + 4);

    bool no_body = head || resp.status == 204 || resp.status == 304 ||
                   (resp.status >= 100 && resp.status < 200);
    std::optional<std::string> length = resp.Header("Content-Length");
    std::optional<std::string> encoding = resp.Header("Transfer-Encoding");
    if (no_body) {
    } else if (encoding && absl::AsciiStrToLower(*encoding).find("chunked") != std::string::npos) {
      for (;;) {
        size_t eol;
        while ((eol = buffer_.find("\r\n")) == std::string::npos) {
          if (absl::Status s = Fill(deadline); !s.ok()) return s;
        }
        size_t chunk = 0;
        std::string size_text = buffer_.substr(0, eol);
        if (size_t semi = size_text.find(';'); semi != std::string::npos) size_text.resize(semi);
        if (!absl::SimpleHexAtoi(size_text, &chunk)) {
          return absl::DataLossError(absl::StrCat("bad chunk size: ", size_text));
        }
        buffer_.erase(0, eol + 2);
        while (buffer_.size() < chunk + 2) {
          if (absl::Status s = Fill(deadline); !s.ok()) return s;
        }
        resp.body.append(buffer_, 0, chunk);
        buffer_.erase(0, chunk + 2);
        if (chunk == 0) break;  // (trailers are not supported)
      }
    } else if (length) {
      size_t n = 0;
      if (!absl::SimpleAtoi(*length, &n)) {
        return absl::DataLossError(absl::StrCat("bad Content-Length: ", *length));
      }
      while (buffer_.size() < n) {
        if (absl::Status s = Fill(deadline); !s.ok()) return s;
      }
      resp.body = buffer_.substr(0, n);
      buffer_.erase(0, n);
    } else {
      // Body delimited by the end of the connection.
      for (;;) {
        absl::Status s = Fill(deadline);
        if (absl::IsAborted(s)) break;
        if (!s.ok()) return s;
      }
      resp.body = std::move(buffer_);
      buffer_.clear();
    }
    return resp;
  }

  absl::StatusOr<HttpClientResponse> Request(
      const std::string& method, const std::string& path, const std::string& body = "",
      const std::vector<std::pair<std::string, std::string>>& headers = {},
      absl::Duration timeout = absl::Seconds(5)) {
    // A Host among `headers` replaces the connected address (virtual hosts, the ingress).
    const bool own_host = std::any_of(headers.begin(), headers.end(), [](const auto& h) {
      return absl::EqualsIgnoreCase(h.first, "host");
    });
    std::string req = absl::StrCat(method, " ", path, " HTTP/1.1\r\n");
    if (!own_host) absl::StrAppend(&req, "Host: ", host_, "\r\n");
    for (const auto& [k, v] : headers) absl::StrAppend(&req, k, ": ", v, "\r\n");
    if (!body.empty() || method == "POST" || method == "PUT") {
      absl::StrAppend(&req, "Content-Length: ", body.size(), "\r\n");
    }
    absl::StrAppend(&req, "\r\n", body);
    absl::Time deadline = absl::Now() + timeout;
    if (absl::Status s = SendRaw(req, timeout); !s.ok()) return s;
    return ReadResponse(deadline - absl::Now(), method == "HEAD");
  }

  // True once the peer has closed the connection (EOF or reset) within `timeout`. Data that
  // arrives meanwhile is buffered.
  bool WaitClosed(absl::Duration timeout) {
    absl::Time deadline = absl::Now() + timeout;
    for (;;) {
      absl::Status s = Fill(deadline);
      if (absl::IsAborted(s) || absl::IsUnavailable(s)) return true;
      if (!s.ok()) return false;
    }
  }

  int fd() const { return fd_; }

 private:
  explicit HttpConnection(int fd) : fd_(fd) {}

  bool WaitFor(short events, absl::Time deadline) {
    for (;;) {
      absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return false;
      pollfd p{fd_, events, 0};
      int r = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
      if (r > 0) return true;
      if (r < 0 && errno != EINTR) return false;
    }
  }

  // Appends what arrives. ABORTED on EOF, UNAVAILABLE on a socket error.
  absl::Status Fill(absl::Time deadline) {
    char chunk[16384];
    for (;;) {
      ssize_t n = recv(fd_, chunk, sizeof(chunk), 0);
      if (n > 0) {
        buffer_.append(chunk, static_cast<size_t>(n));
        return absl::OkStatus();
      }
      if (n == 0) return absl::AbortedError("connection closed by peer");
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        return absl::UnavailableError(absl::StrCat("recv: ", strerror(errno)));
      }
      if (!WaitFor(POLLIN, deadline)) return absl::DeadlineExceededError("read timed out");
    }
  }

  int fd_;
  std::string host_;
  std::string buffer_;
};

// One request on a fresh connection.
inline absl::StatusOr<HttpClientResponse> HttpDo(
    const std::string& host, int port, const std::string& method, const std::string& path,
    const std::string& body = "",
    const std::vector<std::pair<std::string, std::string>>& headers = {},
    absl::Duration timeout = absl::Seconds(5)) {
  absl::Time deadline = absl::Now() + timeout;
  auto conn = HttpConnection::Connect(host, port, timeout);
  if (!conn.ok()) return conn.status();
  return (*conn)->Request(method, path, body, headers, deadline - absl::Now());
}

inline absl::StatusOr<HttpClientResponse> HttpGet(const std::string& host, int port,
                                                  const std::string& path,
                                                  absl::Duration timeout = absl::Seconds(5)) {
  return HttpDo(host, port, "GET", path, "", {}, timeout);
}

}  // namespace warren::test

#endif  // WARREN_TESTS_UNIT_TEST_HTTP_CLIENT_H_
