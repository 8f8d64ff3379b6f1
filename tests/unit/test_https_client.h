#ifndef WARREN_TESTS_UNIT_TEST_HTTPS_CLIENT_H_
#define WARREN_TESTS_UNIT_TEST_HTTPS_CLIENT_H_

// A blocking HTTPS/1.1 client for tests (Boost.Beast over OpenSSL, IPv4 loopback): one request
// per connection, the server's certificate verified against a given CA and for the host name
// "127.0.0.1", an optional client certificate, an optional TLS session to resume. Every step
// has a deadline.

#include <openssl/ssl.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "test_http_client.h"

namespace warren::test {

// A TLS session a browser would keep between its connections to one server.
struct HttpsSession {
  // In: the session to offer (none: a full handshake). Out: the connection's session, taken
  // after the response was read (TLS 1.3 tickets arrive after the handshake).
  std::shared_ptr<SSL_SESSION> session;
  // Out: the server accepted the offered session.
  bool reused = false;
};

struct HttpsClientOptions {
  // The CA the server's certificate must chain to.
  std::string ca_pem;
  // A client certificate and its key (PEM), or empty.
  std::string client_cert_pem;
  std::string client_key_pem;
  absl::Duration timeout = absl::Seconds(20);
  // Null: no session is offered or kept.
  HttpsSession* session = nullptr;
};

inline absl::StatusOr<HttpClientResponse> HttpsDo(
    int port, const std::string& method, const std::string& target, const std::string& body,
    const std::vector<std::pair<std::string, std::string>>& headers,
    const HttpsClientOptions& options) {
  namespace beast = boost::beast;
  namespace http = beast::http;
  namespace net = boost::asio;
  namespace ssl = net::ssl;
  net::io_context ioc;
  ssl::context ctx(ssl::context::tls_client);
  beast::error_code ec;
  ctx.add_certificate_authority(net::buffer(options.ca_pem), ec);
  if (!ec && !options.client_cert_pem.empty()) {
    ctx.use_certificate_chain(net::buffer(options.client_cert_pem), ec);
    if (!ec) ctx.use_private_key(net::buffer(options.client_key_pem), ssl::context::pem, ec);
  }
  if (ec) return absl::InvalidArgumentError(absl::StrCat("client TLS context: ", ec.message()));
  ctx.set_verify_mode(ssl::verify_peer);
  ctx.set_verify_callback(ssl::host_name_verification("127.0.0.1"));
  beast::ssl_stream<beast::tcp_stream> stream(ioc, ctx);
  auto& tcp = beast::get_lowest_layer(stream);
  const auto deadline = absl::ToChronoNanoseconds(options.timeout);
  // Runs one asynchronous step to its end (the stream's timer closes it at the deadline).
  auto step = [&](auto start) -> beast::error_code {
    beast::error_code result;
    tcp.expires_after(deadline);
    start([&result](beast::error_code e, auto&&...) { result = e; });
    ioc.restart();
    ioc.run();
    return result;
  };
  const net::ip::tcp::endpoint ep(net::ip::make_address("127.0.0.1"),
                                  static_cast<unsigned short>(port));
  if (auto e = step([&](auto h) { tcp.async_connect(ep, h); })) {
    return absl::UnavailableError(absl::StrCat("connect 127.0.0.1:", port, ": ", e.message()));
  }
  if (options.session && options.session->session) {
    SSL_set_session(stream.native_handle(), options.session->session.get());
  }
  if (auto e = step([&](auto h) { stream.async_handshake(ssl::stream_base::client, h); })) {
    return absl::UnavailableError(absl::StrCat("TLS handshake: ", e.message()));
  }
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, absl::StrCat("127.0.0.1:", port));
  for (const auto& [k, v] : headers) req.set(k, v);
  req.body() = body;
  req.prepare_payload();
  if (auto e = step([&](auto h) { http::async_write(stream, req, h); })) {
    return absl::UnavailableError(absl::StrCat("write: ", e.message()));
  }
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  if (auto e = step([&](auto h) { http::async_read(stream, buffer, res, h); })) {
    return absl::UnavailableError(absl::StrCat("read: ", e.message()));
  }
  if (options.session) {
    options.session->reused = SSL_session_reused(stream.native_handle()) == 1;
    // A copy: the connection ends without a close_notify, which marks its own session as
    // not resumable (a browser keeps its sessions apart from its connections too).
    options.session->session.reset(SSL_SESSION_dup(SSL_get_session(stream.native_handle())),
                                   SSL_SESSION_free);
  }
  HttpClientResponse out;
  out.status = static_cast<int>(res.result_int());
  for (const auto& field : res) {
    out.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  out.body = std::move(res.body());
  return out;
}

}  // namespace warren::test

#endif  // WARREN_TESTS_UNIT_TEST_HTTPS_CLIENT_H_
