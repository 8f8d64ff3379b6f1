#include "proxy/http_relay.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace warren::relay {

Refusal CheckRequestFraming(const http::request<http::buffer_body>& req) {
  if (req.count(http::field::host) > 1) return {400, "more than one Host header"};
  if (req.version() >= 11 && req.count(http::field::host) == 0) {
    return {400, "an HTTP/1.1 request needs a Host header"};
  }
  if (req.count(http::field::transfer_encoding) == 0) return {};
  // A Transfer-Encoding the backend may read differently from us is how requests are smuggled:
  // refuse every form but a single final "chunked" (RFC 9112 6.1, 6.3).
  if (req.version() < 11) return {400, "Transfer-Encoding in an HTTP/1.0 request"};
  if (req.count(http::field::content_length) > 0) {
    return {400, "both Transfer-Encoding and Content-Length"};
  }
  std::vector<std::string> codings;
  auto [first, last] = req.equal_range(http::field::transfer_encoding);
  for (auto it = first; it != last; ++it) {
    beast::string_view v = it->value();
    for (absl::string_view c : absl::StrSplit(absl::string_view(v.data(), v.size()), ',')) {
      c = absl::StripAsciiWhitespace(c);
      if (!c.empty()) codings.push_back(absl::AsciiStrToLower(c));
    }
  }
  if (codings.empty()) return {400, "empty Transfer-Encoding"};
  int chunked = 0;
  for (const std::string& c : codings) chunked += c == "chunked" ? 1 : 0;
  if (codings.back() != "chunked" || chunked > 1) {
    return {400, "Transfer-Encoding must end with a single \"chunked\""};
  }
  if (codings.size() > 1) {
    return {501, absl::StrCat("transfer coding \"", codings.front(),
                              "\" is not supported (only \"chunked\")")};
  }
  return {};
}

int StatusForReadError(const beast::error_code& ec) {
  if (ec == http::error::header_limit || ec == http::error::buffer_overflow) return 431;
  if (ec == http::error::body_limit) return 413;
  if (ec == http::error::end_of_stream || ec == http::error::partial_message) return 0;
  if (ec.category() == http::make_error_code(http::error::bad_target).category()) return 400;
  return 0;  // a socket error: the client is gone or was cut off
}

void PrepareRequestHead(http::request_parser<http::buffer_body>& p, std::string_view peer_ip) {
  auto& req = p.get();
  StripHopByHop(req);
  req.erase(http::field::expect);
  std::string xff(req["X-Forwarded-For"]);
  const absl::string_view peer(peer_ip.data(), peer_ip.size());
  req.set("X-Forwarded-For", xff.empty() ? std::string(peer) : absl::StrCat(xff, ", ", peer));
  req.version(11);
  req.keep_alive(true);
  // "Content-Length: 5, 5" or the same value twice parse as 5: send the backend one plain value.
  if (auto n = p.content_length(); n && req.count(http::field::content_length) > 0) {
    req.content_length(*n);
  }
}

void PrepareResponseHead(http::response_parser<http::buffer_body>& p, unsigned version, bool head,
                         bool& client_keep) {
  auto& res = p.get();
  const int status = res.result_int();
  const bool has_body = !head && status != 204 && status != 304;
  StripHopByHop(res);
  res.version(version);
  if (has_body && !p.content_length()) {
    // A coding we did not decode delimits the body by the connection's end; the client gets our
    // own framing instead of a Transfer-Encoding it would misread.
    if (!p.chunked()) res.erase(http::field::transfer_encoding);
    if (version >= 11) {
      res.chunked(true);
    } else {
      // An HTTP/1.0 client can only see the end of an unsized body as the connection's end.
      res.chunked(false);
      client_keep = false;
    }
  }
}

}  // namespace warren::relay
