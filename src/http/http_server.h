#ifndef WARREN_HTTP_HTTP_SERVER_H_
#define WARREN_HTTP_HTTP_SERVER_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "http/descriptor_budget.h"

namespace boost::asio::ssl {
class context;
}

namespace warren {

struct HttpRequest {
  std::string method;  // "GET", "POST"...
  std::string target;  // as sent: "/path?a=b"
  std::string path;    // target before '?': "/path"
  std::string query;   // target after '?', undecoded: "a=b"
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string remote_addr;  // "ip:port" of the peer
  // The connection is TLS (HttpServerOptions::tls_context).
  bool tls = false;
  // TLS only: the client's certificate (PEM), verified by the handshake against the context's
  // trusted CAs; empty when the client sent none.
  std::string peer_cert_pem;

  // First header with this name (case-insensitive), or nullopt.
  std::optional<std::string> Header(std::string_view name) const;
  // First query parameter with this name, percent- and '+'-decoded, or nullopt.
  std::optional<std::string> QueryParam(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  static HttpResponse Text(int status, std::string body);
};

struct HttpServerOptions {
  // Threads running the io_context (connections are multiplexed on them).
  int threads = 1;
  // Larger bodies get 413; larger header blocks get 431.
  size_t max_body_bytes = 16 << 20;
  size_t max_header_bytes = 64 << 10;
  // A connection with no complete request within this time is closed.
  absl::Duration idle_timeout = absl::Seconds(60);
  // Connections open at once; more are answered 503 and closed.
  int max_connections = 1024;
  // When set, each connection also takes a descriptor from it (refused like one over
  // max_connections when none is left).
  DescriptorBudget* budget = nullptr;
  // When set, the server speaks HTTPS and HTTP on the same port: a connection whose first bytes
  // are a TLS ClientHello is served over TLS with the context this returns (called once per
  // such connection, so a renewed certificate applies to the next connections), any other stays
  // plain HTTP. The context decides whether client certificates are asked for and verified.
  std::function<std::shared_ptr<boost::asio::ssl::context>()> tls_context;
  // The TLS handshake (and the sniffing of the first bytes) must end within this time.
  absl::Duration handshake_timeout = absl::Seconds(10);
};

// HTTP/1.1 server with keep-alive on Boost.Beast. Connections are handled asynchronously on
// `threads` io threads, so a handler must not block for long; slow responses use
// AsyncHandler and answer later from any thread.
class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;
  // Thread-safe; call exactly once. A call after the connection is gone does nothing.
  using Responder = std::function<void(HttpResponse)>;
  using AsyncHandler = std::function<void(const HttpRequest&, Responder)>;

  // addr is "host:port" ("127.0.0.1:9090", "[::1]:0", "0.0.0.0:80"); port 0 picks a free port.
  // Errors name the address: "127.0.0.1:9090: address already in use".
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const std::string& addr, Handler handler,
                                                           int threads = 1);
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const std::string& addr, Handler handler,
                                                           const HttpServerOptions& options);
  static absl::StatusOr<std::unique_ptr<HttpServer>> StartAsync(const std::string& addr,
                                                                AsyncHandler handler,
                                                                const HttpServerOptions& options);

  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The bound port (the real one when started with port 0).
  int port() const;

  // Graceful stop: closes the listener and idle connections, lets requests already received
  // finish (their responses carry "Connection: close"), then stops. Returns false when
  // connections were still open after `timeout` (they are then closed).
  bool Shutdown(absl::Duration timeout);

  // Immediate stop: closes everything and joins the threads. Idempotent; must not be called
  // from a handler.
  void Stop();

  // Open connections (for tests and draining).
  int connection_count() const;
  // Accepts that failed for lack of descriptors or memory since the start.
  uint64_t accept_errors() const;

  class Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// "host:port" → (host, port). Accepts "[v6]:port"; an empty host means all interfaces
// ("0.0.0.0"). The port must be 0..65535.
absl::StatusOr<std::pair<std::string, int>> SplitHostPort(std::string_view addr);

}  // namespace warren

#endif  // WARREN_HTTP_HTTP_SERVER_H_
