#include "http/http_server.h"

#include <atomic>
#include <cctype>
#include <exception>
#include <thread>

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/core/detect_ssl.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "http/listener.h"
#include "http/safe_read.h"

namespace warren {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Query-string decoding: '+' is a space and malformed escapes are kept literally, as browsers
// and most servers do.
std::string QueryDecode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%' && i + 2 < in.size() && HexValue(in[i + 1]) >= 0 &&
               HexValue(in[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexValue(in[i + 1]) * 16 + HexValue(in[i + 2])));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// The client certificate the handshake verified, as PEM; empty when there is none.
std::string VerifiedPeerCertificatePem(SSL* ssl) {
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (cert == nullptr) return "";
  std::string out;
  if (SSL_get_verify_result(ssl) == X509_V_OK) {
    BIO* bio = BIO_new(BIO_s_mem());
    if (bio != nullptr && PEM_write_bio_X509(bio, cert) == 1) {
      char* data = nullptr;
      long n = BIO_get_mem_data(bio, &data);
      if (n > 0) out.assign(data, static_cast<size_t>(n));
    }
    BIO_free(bio);
  }
  X509_free(cert);
  return out;
}

}  // namespace

std::optional<std::string> HttpRequest::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, AV(name))) return value;
  }
  return std::nullopt;
}

std::optional<std::string> HttpRequest::QueryParam(std::string_view name) const {
  if (query.empty()) return std::nullopt;
  for (absl::string_view apair : absl::StrSplit(query, '&')) {
    std::string_view pair(apair.data(), apair.size());
    std::string_view key = pair;
    std::string_view value;
    if (size_t eq = pair.find('='); eq != std::string_view::npos) {
      key = pair.substr(0, eq);
      value = pair.substr(eq + 1);
    }
    if (QueryDecode(key) == name) return QueryDecode(value);
  }
  return std::nullopt;
}

HttpResponse HttpResponse::Text(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

absl::StatusOr<std::pair<std::string, int>> SplitHostPort(std::string_view addr) {
  std::string_view host;
  std::string_view port;
  if (absl::StartsWith(AV(addr), "[")) {
    size_t close = addr.find(']');
    if (close == std::string_view::npos || close + 1 >= addr.size() || addr[close + 1] != ':') {
      return absl::InvalidArgumentError(
          absl::StrCat(AV(addr), ": expected \"[ipv6]:port\", e.g. \"[::1]:9090\""));
    }
    host = addr.substr(1, close - 1);
    port = addr.substr(close + 2);
  } else {
    size_t colon = addr.rfind(':');
    if (colon == std::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(AV(addr), ": expected \"host:port\", e.g. \"127.0.0.1:9090\""));
    }
    host = addr.substr(0, colon);
    port = addr.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(AV(addr), ": an IPv6 host must be in brackets, e.g. \"[::1]:9090\""));
    }
  }
  int port_number = 0;
  if (port.empty() || port.find_first_not_of("0123456789") != std::string_view::npos ||
      !absl::SimpleAtoi(AV(port), &port_number) || port_number > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(AV(addr), ": port must be a number 0..65535, got \"", AV(port), "\""));
  }
  return std::make_pair(host.empty() ? std::string("0.0.0.0") : std::string(host), port_number);
}

class Session;

class HttpServer::Impl {
 public:
  Impl(AsyncHandler handler, const HttpServerOptions& options)
      : options_(options),
        handler_(std::move(handler)),
        ioc_(options.threads),
        work_(net::make_work_guard(ioc_)),
        acceptor_(net::make_strand(ioc_)),
        accept_pause_(acceptor_.get_executor()) {}

  ~Impl() { Stop(); }

  absl::Status Listen(const std::string& addr) {
    if (absl::Status s = ListenOn(acceptor_, addr); !s.ok()) return s;
    port_ = acceptor_.local_endpoint().port();
    return absl::OkStatus();
  }

  void Run() {
    DoAccept();
    int n = std::max(1, options_.threads);
    threads_.reserve(n);
    for (int i = 0; i < n; ++i) {
      threads_.emplace_back([this] {
        // Handlers catch their own exceptions; this keeps a stray one from killing the
        // process through std::terminate.
        for (;;) {
          try {
            ioc_.run();
            return;
          } catch (const std::exception&) {
          }
        }
      });
    }
  }

  bool Shutdown(absl::Duration timeout);
  void Stop();
  void Remove(Session* session);

  int port() const { return port_; }
  int connection_count() const {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(sessions_.size());
  }
  uint64_t accept_errors() const { return accept_errors_.load(); }
  bool draining() const { return draining_.load(); }
  const HttpServerOptions& options() const { return options_; }
  const AsyncHandler& handler() const { return handler_; }

 private:
  void DoAccept();
  void OnAccept(beast::error_code ec, tcp::socket socket);

  const HttpServerOptions options_;
  const AsyncHandler handler_;
  net::io_context ioc_;
  // Keeps the threads running while a handler holds a Responder and no I/O is pending.
  net::executor_work_guard<net::io_context::executor_type> work_;
  tcp::acceptor acceptor_;
  // On the acceptor's strand, like the backoff.
  net::steady_timer accept_pause_;
  AcceptBackoff backoff_;
  std::atomic<uint64_t> accept_errors_{0};
  std::vector<std::thread> threads_;
  int port_ = 0;
  std::atomic<bool> draining_{false};

  mutable absl::Mutex mu_;
  // The server owns its sessions so that Stop can close them all; a session removes itself
  // when its connection ends.
  absl::flat_hash_map<Session*, std::shared_ptr<Session>> sessions_ ABSL_GUARDED_BY(mu_);

  absl::Mutex stop_mu_;
  bool stopped_ ABSL_GUARDED_BY(stop_mu_) = false;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, HttpServer::Impl* server, DescriptorBudget::Lease fd)
      : plain_(std::move(socket)),
        executor_(plain_.get_executor()),
        server_(server),
        // Bounds what must be buffered whole: a header block, a chunk header, a trailer.
        buffer_(server->options().max_header_bytes),
        fd_(std::move(fd)) {
    boost::system::error_code ec;
    tcp::endpoint remote = plain_.socket().remote_endpoint(ec);
    if (!ec) {
      remote_addr_ = remote.address().is_v6()
                         ? absl::StrCat("[", remote.address().to_string(), "]:", remote.port())
                         : absl::StrCat(remote.address().to_string(), ":", remote.port());
    }
  }

  void Start() {
    net::dispatch(executor_, [self = shared_from_this()] {
      if (self->server_->options().tls_context) {
        self->DoDetect();
      } else {
        self->DoRead();
      }
    });
  }

  // Closes the connection if it waits for a request that has not started to arrive;
  // otherwise the request in progress is answered and the connection closed after it.
  void Drain() {
    net::post(executor_, [self = shared_from_this()] {
      if (self->state_ == State::kNew ||
          (self->state_ == State::kReading && !self->parser_->got_some())) {
        self->CloseSocket();
        if (self->state_ == State::kNew) self->Finish();
      }
    });
  }

  // Only while no io thread runs (Stop).
  void ForceClose() { CloseSocket(); }

 private:
  enum class State { kNew, kReading, kHandling, kWriting, kLingering, kClosed };

  // The TCP stream under TLS, or the plain one.
  beast::tcp_stream& Lowest() { return tls_ ? beast::get_lowest_layer(*tls_) : plain_; }
  // Calls f with the stream requests are read from and responses written to.
  template <class F>
  void WithStream(F&& f) {
    if (tls_) {
      f(*tls_);
    } else {
      f(plain_);
    }
  }

  // HTTPS and HTTP on one port: a TLS ClientHello starts with a handshake record.
  void DoDetect() {
    plain_.expires_after(absl::ToChronoNanoseconds(server_->options().handshake_timeout));
    beast::async_detect_ssl(plain_, buffer_,
                            [self = shared_from_this()](beast::error_code ec, bool is_tls) {
                              self->OnDetect(ec, is_tls);
                            });
  }

  void OnDetect(beast::error_code ec, bool is_tls) {
    if (state_ == State::kClosed) return;
    if (ec) {
      Finish();
      return;
    }
    if (!is_tls) {
      DoRead();
      return;
    }
    try {
      ssl_context_ = server_->options().tls_context();
    } catch (const std::exception&) {
      ssl_context_ = nullptr;
    }
    if (!ssl_context_) {
      Finish();
      return;
    }
    tls_.emplace(std::move(plain_), *ssl_context_);
    Lowest().expires_after(absl::ToChronoNanoseconds(server_->options().handshake_timeout));
    tls_->async_handshake(net::ssl::stream_base::server, buffer_.data(),
                          [self = shared_from_this()](beast::error_code hec, size_t used) {
                            self->OnHandshake(hec, used);
                          });
  }

  void OnHandshake(beast::error_code ec, size_t used) {
    if (state_ == State::kClosed) return;
    if (ec) {
      Finish();
      return;
    }
    buffer_.consume(used);
    peer_cert_pem_ = VerifiedPeerCertificatePem(tls_->native_handle());
    DoRead();
  }

  void DoRead() {
    if (state_ == State::kClosed) return;
    if (server_->draining() && requests_served_ > 0) {
      Finish();
      return;
    }
    state_ = State::kReading;
    parser_.emplace();
    parser_->body_limit(server_->options().max_body_bytes);
    parser_->header_limit(static_cast<uint32_t>(server_->options().max_header_bytes));
    Lowest().expires_after(absl::ToChronoNanoseconds(server_->options().idle_timeout));
    WithStream([this](auto& stream) {
      SafeAsyncRead(
          stream, buffer_, *parser_, ReadUntil::kMessage,
          [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
    });
  }

  void OnRead(beast::error_code ec) {
    if (state_ == State::kClosed) return;
    if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
        ec == beast::error::timeout || ec == net::error::operation_aborted) {
      Finish();
      return;
    }
    if (ec == http::error::body_limit) {
      WriteError(413, absl::StrCat("request body larger than ", server_->options().max_body_bytes,
                                   " bytes\n"));
      return;
    }
    // buffer_overflow: a trailer section or chunk header larger than the header limit.
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      WriteError(431, "request header fields too large\n");
      return;
    }
    if (ec && ec.category() == http::make_error_code(http::error::bad_target).category()) {
      WriteError(400, absl::StrCat("malformed request: ", ec.message(), "\n"));
      return;
    }
    if (ec) {
      Finish();
      return;
    }

    http::request<http::string_body> msg = parser_->release();
    version_ = msg.version();
    keep_alive_ = msg.keep_alive();
    head_ = msg.method() == http::verb::head;

    HttpRequest req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    size_t q = req.target.find('?');
    req.path = req.target.substr(0, q);
    if (q != std::string::npos) req.query = req.target.substr(q + 1);
    for (const auto& field : msg) {
      req.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    req.body = std::move(msg.body());
    req.remote_addr = remote_addr_;
    req.tls = tls_.has_value();
    req.peer_cert_pem = peer_cert_pem_;

    state_ = State::kHandling;
    Lowest().expires_never();
    std::weak_ptr<Session> weak = weak_from_this();
    HttpServer::Responder respond = [weak](HttpResponse response) {
      std::shared_ptr<Session> self = weak.lock();
      if (!self) return;
      net::post(self->executor_, [self, response = std::move(response)]() mutable {
        self->Write(std::move(response));
      });
    };
    try {
      server_->handler()(req, std::move(respond));
    } catch (const std::exception& e) {
      Write(HttpResponse::Text(500, absl::StrCat("internal error: ", e.what(), "\n")));
    } catch (...) {
      Write(HttpResponse::Text(500, "internal error\n"));
    }
  }

  void WriteError(int status, std::string body) {
    version_ = 11;
    keep_alive_ = false;
    head_ = false;
    linger_ = true;
    state_ = State::kHandling;
    Write(HttpResponse::Text(status, std::move(body)));
  }

  void Write(HttpResponse response) {
    if (state_ != State::kHandling) return;  // Responder called twice or connection gone.
    state_ = State::kWriting;
    ++requests_served_;
    auto res = std::make_shared<http::response<http::string_body>>();
    res->version(version_);
    if (response.status < 100 || response.status > 999) {
      response = HttpResponse::Text(
          500, absl::StrCat("handler returned invalid status ", response.status, "\n"));
    }
    res->result(static_cast<unsigned>(response.status));
    if (!response.content_type.empty()) {
      res->set(http::field::content_type, response.content_type);
    }
    for (auto& [name, value] : response.headers) res->insert(name, value);
    res->keep_alive(keep_alive_ && !server_->draining());
    if (head_) {
      res->content_length(response.body.size());
    } else {
      res->body() = std::move(response.body);
      res->prepare_payload();
    }
    Lowest().expires_after(absl::ToChronoNanoseconds(server_->options().idle_timeout));
    WithStream([this, &res](auto& stream) {
      http::async_write(stream, *res,
                        [self = shared_from_this(), res](beast::error_code ec, size_t) {
                          self->OnWrite(ec, res->need_eof());
                        });
    });
  }

  void OnWrite(beast::error_code ec, bool close) {
    if (state_ == State::kClosed) return;
    if (ec) {
      Finish();
      return;
    }
    if (!close) {
      DoRead();
      return;
    }
    beast::error_code ignored;
    Lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
    if (!linger_) {
      Finish();
      return;
    }
    // After an error response the client may still be sending (a large body); closing now
    // would reset the connection and could discard our response before the client reads it.
    state_ = State::kLingering;
    Lowest().expires_after(std::chrono::seconds(2));
    DoLinger();
  }

  void DoLinger() {
    WithStream([this](auto& stream) {
      stream.async_read_some(net::buffer(discard_),
                             [self = shared_from_this()](beast::error_code ec, size_t) {
                               if (ec) {
                                 self->Finish();
                               } else {
                                 self->DoLinger();
                               }
                             });
    });
  }

  void CloseSocket() {
    beast::error_code ignored;
    Lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    Lowest().socket().close(ignored);
  }

  void Finish() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    CloseSocket();
    server_->Remove(this);
  }

  // Plain HTTP; moved into tls_ when the connection turns out to be TLS.
  beast::tcp_stream plain_;
  // The connection's strand, the same before and after the move.
  const net::any_io_executor executor_;
  std::shared_ptr<net::ssl::context> ssl_context_;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls_;
  std::string peer_cert_pem_;
  HttpServer::Impl* const server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::string remote_addr_;
  State state_ = State::kNew;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool head_ = false;
  bool linger_ = false;
  int requests_served_ = 0;
  char discard_[4096];
  DescriptorBudget::Lease fd_;
};

void HttpServer::Impl::DoAccept() {
  acceptor_.async_accept(net::make_strand(ioc_), [this](beast::error_code ec, tcp::socket socket) {
    OnAccept(ec, std::move(socket));
  });
}

void HttpServer::Impl::OnAccept(beast::error_code ec, tcp::socket socket) {
  if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
  if (ec) {
    // Out of descriptors every accept fails at once: pause instead of spinning.
    if (auto pause = backoff_.OnError(ec); pause.count() > 0) {
      accept_errors_.fetch_add(1);
      accept_pause_.expires_after(pause);
      accept_pause_.async_wait([this](beast::error_code wait_ec) {
        if (!wait_ec) DoAccept();
      });
      return;
    }
    DoAccept();
    return;
  }
  backoff_.OnSuccess();
  DescriptorBudget::Lease fd;
  bool room = connection_count() < options_.max_connections;
  if (room && options_.budget) {
    fd = options_.budget->TryAcquire(1);
    room = static_cast<bool>(fd);
  }
  if (!room) {
    static constexpr std::string_view k503 =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 21\r\nConnection: close\r\n\r\ntoo many connections\n";
    SendAndClose(socket.release(ec), k503);
    DoAccept();
    return;
  }
  auto session = std::make_shared<Session>(std::move(socket), this, std::move(fd));
  {
    absl::MutexLock lock(&mu_);
    sessions_.emplace(session.get(), session);
  }
  session->Start();
  // Shutdown may have taken its snapshot of sessions before this one was added.
  if (draining_.load()) session->Drain();
  DoAccept();
}

void HttpServer::Impl::Remove(Session* session) {
  std::shared_ptr<Session> keep;
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  // Destroy outside the map operation; the caller's completion handler still holds a reference.
  keep = std::move(it->second);
  sessions_.erase(it);
}

bool HttpServer::Impl::Shutdown(absl::Duration timeout) {
  draining_.store(true);
  net::post(acceptor_.get_executor(), [this] {
    beast::error_code ignored;
    acceptor_.close(ignored);
  });
  std::vector<std::shared_ptr<Session>> sessions;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [ptr, session] : sessions_) sessions.push_back(session);
  }
  for (auto& session : sessions) session->Drain();
  sessions.clear();
  bool drained;
  {
    absl::MutexLock lock(&mu_);
    auto empty = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return sessions_.empty(); };
    drained = mu_.AwaitWithTimeout(absl::Condition(&empty), timeout);
  }
  Stop();
  return drained;
}

void HttpServer::Impl::Stop() {
  {
    absl::MutexLock lock(&stop_mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  net::post(acceptor_.get_executor(), [this] { accept_pause_.cancel(); });
  draining_.store(true);
  work_.reset();
  ioc_.stop();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  // No io thread runs now, so sockets can be touched from here.
  beast::error_code ignored;
  acceptor_.close(ignored);
  absl::flat_hash_map<Session*, std::shared_ptr<Session>> sessions;
  {
    absl::MutexLock lock(&mu_);
    sessions.swap(sessions_);
  }
  for (auto& [ptr, session] : sessions) session->ForceClose();
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { Stop(); }

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const std::string& addr,
                                                              Handler handler, int threads) {
  HttpServerOptions options;
  options.threads = threads;
  return Start(addr, std::move(handler), options);
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const std::string& addr,
                                                              Handler handler,
                                                              const HttpServerOptions& options) {
  if (!handler) return absl::InvalidArgumentError("HttpServer::Start: handler is empty");
  AsyncHandler async = [handler = std::move(handler)](const HttpRequest& req, Responder respond) {
    respond(handler(req));
  };
  return StartAsync(addr, std::move(async), options);
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::StartAsync(
    const std::string& addr, AsyncHandler handler, const HttpServerOptions& options) {
  if (!handler) return absl::InvalidArgumentError("HttpServer::StartAsync: handler is empty");
  if (options.threads < 1 || options.threads > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("HttpServer threads must be 1..256, got ", options.threads));
  }
  if (options.max_connections < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "HttpServer max_connections must be at least 1, got ", options.max_connections));
  }
  if (options.max_header_bytes < 1024) {
    return absl::InvalidArgumentError(absl::StrCat(
        "HttpServer max_header_bytes must be at least 1024, got ", options.max_header_bytes));
  }
  auto impl = std::make_unique<Impl>(std::move(handler), options);
  if (absl::Status s = impl->Listen(addr); !s.ok()) return s;
  impl->Run();
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

int HttpServer::port() const { return impl_->port(); }

bool HttpServer::Shutdown(absl::Duration timeout) { return impl_->Shutdown(timeout); }

void HttpServer::Stop() { impl_->Stop(); }

int HttpServer::connection_count() const { return impl_->connection_count(); }

uint64_t HttpServer::accept_errors() const { return impl_->accept_errors(); }

}  // namespace warren
