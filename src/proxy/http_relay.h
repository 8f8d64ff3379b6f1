#ifndef WARREN_PROXY_HTTP_RELAY_H_
#define WARREN_PROXY_HTTP_RELAY_H_

// The HTTP/1.1 message handling of the proxy, apart from sockets, balancing and metrics: reading
// and checking a request head, rewriting heads, streaming one message from one stream to another,
// error answers. Templates over the stream types, so the fuzz target (tests/fuzz) drives exactly
// this code over in-memory streams.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "http/safe_read.h"

namespace warren::relay {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

// Body bytes move through a buffer of this size.
inline constexpr size_t kBodyChunk = 64 << 10;

// When the current wait on a client must end. The proxy checks every session's deadline
// periodically and closes the connection once it has passed; the relay arms it around waits
// on the client and clears it around waits on the backend (backends may take their time).
struct ClientDeadline {
  using Clock = std::chrono::steady_clock;
  Clock::time_point at = Clock::time_point::max();
  // Longest wait for one read or write of the client; zero: none.
  Clock::duration idle{};

  void Arm() { at = idle.count() > 0 ? Clock::now() + idle : Clock::time_point::max(); }
  void ArmFor(Clock::duration d) {
    at = d.count() > 0 ? Clock::now() + d : Clock::time_point::max();
  }
  void Clear() { at = Clock::time_point::max(); }
  bool Expired(Clock::time_point now) const { return at <= now; }
};

// Removes hop-by-hop headers (RFC 9110 7.6.1), including those the Connection header names.
// Transfer-Encoding stays: the serializer re-frames the body from it.
template <class Fields>
void StripHopByHop(Fields& f) {
  // Most messages have none of them: one pass over the fields instead of a lookup per name
  // (Beast knows every name below, Proxy-Connection included, as a field enum).
  bool any = false;
  for (const auto& field : f) {
    switch (field.name()) {
      case http::field::connection:
      case http::field::keep_alive:
      case http::field::proxy_connection:
      case http::field::te:
      case http::field::trailer:
      case http::field::upgrade:
      case http::field::proxy_authorization:
      case http::field::proxy_authenticate:
        any = true;
        break;
      default:
        break;
    }
    if (any) break;
  }
  if (!any) return;
  std::vector<std::string> named;
  for (auto token : http::token_list{f[http::field::connection]}) {
    named.emplace_back(token);
  }
  for (const std::string& n : named) {
    if (!beast::iequals(n, "transfer-encoding")) f.erase(n);
  }
  f.erase(http::field::connection);
  f.erase(http::field::keep_alive);
  f.erase("Proxy-Connection");
  f.erase(http::field::te);
  f.erase(http::field::trailer);
  f.erase(http::field::upgrade);
  f.erase(http::field::proxy_authorization);
  f.erase(http::field::proxy_authenticate);
}

// A request the proxy answers itself instead of forwarding it.
struct Refusal {
  int status = 0;  // 0: forward the request
  std::string reason;
};

// The framing rules of RFC 9112 a proxy must enforce so that it and the backend agree on where
// a request ends (request smuggling): Transfer-Encoding only as a final "chunked" in HTTP/1.1 and
// never with Content-Length, one Host. Beast has already refused what it cannot parse (two
// different Content-Length values, whitespace before a colon, bad chunk sizes).
Refusal CheckRequestFraming(const http::request<http::buffer_body>& req);

// A backend's response frames its body with at most a single "chunked" Transfer-Encoding (no
// other coding, no Content-Length beside it, none in HTTP/1.0). Others get 502: the proxy
// re-frames bodies and could not do it faithfully.
bool ResponseFramingOk(const http::response<http::buffer_body>& res);

// The status code for a request that failed to read, or 0 when the client is gone (or timed
// out) and nothing should be sent.
int StatusForReadError(const beast::error_code& ec);

// Rewrites a request head for the backend: hop-by-hop headers out, X-Forwarded-For, HTTP/1.1
// keep-alive, one Content-Length. A published port appends the peer to the client's
// X-Forwarded-For. The ingress (`ingress_proto` "http" or "https", the scheme the client used)
// is the edge and trusts nothing the client says about earlier hops: X-Forwarded-For becomes the
// peer, X-Forwarded-Proto the scheme, X-Forwarded-Host the Host, and a client's Forwarded and
// X-Forwarded-Port are dropped.
void PrepareRequestHead(http::request_parser<http::buffer_body>& p, std::string_view peer_ip,
                        std::string_view ingress_proto = {});

// Rewrites a response head for a client speaking `version`: hop-by-hop headers out, a body of
// unknown length chunked (HTTP/1.1) or delimited by closing the connection (HTTP/1.0, which
// clears `client_keep`).
void PrepareResponseHead(http::response_parser<http::buffer_body>& p, unsigned version, bool head,
                         bool& client_keep);

// True when the client sees the end of this (prepared) response only as the connection's end:
// a body of unknown length to an HTTP/1.0 client. If its relay is cut, an orderly close would
// pass the cut-off body for a whole one, so the connection must be reset instead.
bool EndsAtClose(const http::response_parser<http::buffer_body>& p, bool head);

enum class Side { kNone, kIn, kOut };

// Arms the deadline for a wait on the client, clears it for a wait on the backend.
template <bool onClient>
void ArmFor(ClientDeadline& d) {
  if constexpr (onClient) {
    d.Arm();
  } else {
    d.Clear();
  }
}

// Beast's parser adds the trailer fields of a chunked body to the message's fields (each after
// the head's fields of the same name). Once the head is written they do nothing (trailers are
// not forwarded), but a message read whole before its head went out would carry them in its
// head: a trailer "Host" or "Content-Length" would reach the other side as a header (found by
// tests/fuzz/proxy_http_fuzz). The fields of the head are remembered by address (a field does
// not move) and the others dropped before the head is written.
template <class Fields>
std::vector<const void*> FieldAddresses(const Fields& f) {
  std::vector<const void*> out;
  for (const auto& field : f) out.push_back(&field);
  std::sort(out.begin(), out.end());
  return out;
}

template <class Fields>
void DropFieldsNotIn(Fields& f, const std::vector<const void*>& sorted_keep) {
  for (auto it = f.begin(); it != f.end();) {
    if (std::binary_search(sorted_keep.begin(), sorted_keep.end(),
                           static_cast<const void*>(&*it))) {
      ++it;
    } else {
      it = f.erase(it);
    }
  }
}

// A socket in non-blocking mode (the proxy's, see ServiceProxy) is written at once, without
// suspending: true when the serializer wrote everything it had or failed (`ec`), false when the
// socket is full or not a non-blocking socket (then asynchronously, from where this stopped).
template <class Stream, bool isRequest, class Body, class Fields>
bool WriteNow(Stream& out, http::serializer<isRequest, Body, Fields>& sr, beast::error_code& ec) {
  if constexpr (std::is_same_v<Stream, asio::ip::tcp::socket>) {
    if (!out.non_blocking()) return false;
    http::write(out, sr, ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      ec = {};
      return false;
    }
    return true;
  } else {
    return false;
  }
}

struct RelayResult {
  Side failed = Side::kNone;  // which stream failed
  beast::error_code ec;
};

// Streams one message (header and body) from `in` to `out` through `buf` (kBodyChunk bytes).
// `client`, when given, is armed around the waits on the client side: `in` for a request, `out`
// for a response.
template <bool isRequest, class InStream, class OutStream>
asio::awaitable<RelayResult> Relay(http::parser<isRequest, http::buffer_body>& p, InStream& in,
                                   beast::flat_buffer& in_buf, OutStream& out, char* buf,
                                   ClientDeadline* client = nullptr) {
  using asio::redirect_error;
  using asio::use_awaitable;
  http::serializer<isRequest, http::buffer_body> sr{p.get()};
  // Only a chunked body has trailers.
  const std::vector<const void*> head_fields =
      p.chunked() ? FieldAddresses(p.get()) : std::vector<const void*>{};
  beast::error_code ec;
  do {
    if (!p.is_done()) {
      p.get().body().data = buf;
      p.get().body().size = kBodyChunk;
      if (client) ArmFor<isRequest>(*client);
      // Some: forward what has arrived instead of waiting for a full buffer. What is buffered
      // already (a body that came with its head) is parsed here, without a trip through the
      // io_context.
      if (!SafeParseBuffered(in_buf, p, ReadUntil::kSome, ec)) {
        co_await SafeAsyncRead(in, in_buf, p, ReadUntil::kSome, redirect_error(use_awaitable, ec));
      }
      if (ec == http::error::need_buffer) ec = {};
      if (ec) co_return RelayResult{Side::kIn, ec};
      size_t n = kBodyChunk - p.get().body().size;
      // Only framing arrived (a chunk header): an empty buffer would end a chunked body.
      if (n == 0 && !p.is_done()) continue;
      p.get().body().size = n;
      // The message ended with no new body bytes (the last chunk came alone): no buffer at
      // all, or the serializer would end a chunked body twice (an empty buffer without
      // `more` ends it, and so does the writer's next empty turn).
      p.get().body().data = n > 0 ? buf : nullptr;
      p.get().body().more = !p.is_done();
    } else {
      p.get().body().data = nullptr;
      p.get().body().size = 0;
      p.get().body().more = false;
    }
    if (p.chunked() && p.is_done() && !sr.is_header_done()) DropFieldsNotIn(p.get(), head_fields);
    if (client) ArmFor<!isRequest>(*client);
    // A response is written at once where the socket takes it. A request is not: the wait for
    // its write's completion gives the backend time to answer before the first read of the
    // answer is tried (which fails when nothing came yet, a wasted recv).
    if (isRequest || !WriteNow(out, sr, ec)) {
      co_await http::async_write(out, sr, redirect_error(use_awaitable, ec));
    }
    if (ec == http::error::need_buffer) ec = {};
    if (ec) co_return RelayResult{Side::kOut, ec};
  } while (!p.is_done() || !sr.is_done());
  if (client) client->Clear();
  co_return RelayResult{};
}

// Reads a response header into a fresh parser, skipping interim responses (100 Continue to an
// Expect we removed); 101 is returned like a final response. A framing the proxy cannot relay
// (see ResponseFramingOk) is the error bad_transfer_encoding.
template <class Stream>
asio::awaitable<beast::error_code> ReadResponseHeader(
    Stream& stream, beast::flat_buffer& buffer, bool head, uint32_t header_limit,
    std::optional<http::response_parser<http::buffer_body>>& res) {
  beast::error_code ec;
  do {
    res.emplace();
    res->body_limit(std::numeric_limits<std::uint64_t>::max());
    res->header_limit(header_limit);
    if (head) res->skip(true);
    co_await SafeAsyncRead(stream, buffer, *res, ReadUntil::kHeader,
                           asio::redirect_error(asio::use_awaitable, ec));
  } while (!ec && res->get().result_int() / 100 == 1 && res->get().result_int() != 101);
  if (!ec && !ResponseFramingOk(res->get())) ec = http::error::bad_transfer_encoding;
  co_return ec;
}

// A short plain-text answer from the proxy itself; `location`, when not empty, goes into the
// Location header.
template <class Stream>
asio::awaitable<void> SendAnswer(Stream& client, int status, std::string text, bool keep_alive,
                                 unsigned version, std::string location) {
  http::response<http::string_body> res{static_cast<http::status>(status), version};
  if (!location.empty()) res.set(http::field::location, location);
  res.set(http::field::content_type, "text/plain; charset=utf-8");
  res.set(http::field::server, "warren-proxy");
  res.body() = std::move(text);
  res.keep_alive(keep_alive);
  res.prepare_payload();
  beast::error_code ec;
  co_await http::async_write(client, res, asio::redirect_error(asio::use_awaitable, ec));
}

template <class Stream>
asio::awaitable<void> SendError(Stream& client, int status, std::string_view text, bool keep_alive,
                                unsigned version) {
  return SendAnswer(client, status, std::string(text), keep_alive, version, std::string());
}

// A redirect from the proxy itself (the HTTP ingress to HTTPS).
template <class Stream>
asio::awaitable<void> SendRedirect(Stream& client, int status, std::string_view location,
                                   bool keep_alive, unsigned version) {
  return SendAnswer(client, status, std::string("redirecting to ").append(location).append("\n"),
                    keep_alive, version, std::string(location));
}

}  // namespace warren::relay

#endif  // WARREN_PROXY_HTTP_RELAY_H_
