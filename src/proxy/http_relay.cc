#include "proxy/http_relay.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace warren::relay {

namespace {

// The transfer codings of all Transfer-Encoding fields, in order, lower case.
template <class Fields>
std::vector<std::string> TransferCodings(const Fields& f) {
  std::vector<std::string> codings;
  auto [first, last] = f.equal_range(http::field::transfer_encoding);
  for (auto it = first; it != last; ++it) {
    beast::string_view v = it->value();
    for (absl::string_view c : absl::StrSplit(absl::string_view(v.data(), v.size()), ',')) {
      c = absl::StripAsciiWhitespace(c);
      if (!c.empty()) codings.push_back(absl::AsciiStrToLower(c));
    }
  }
  return codings;
}

// Empty when the codings end with a single "chunked", else why not.
std::string NotFinalChunked(const std::vector<std::string>& codings) {
  if (codings.empty()) return "empty Transfer-Encoding";
  int chunked = 0;
  for (const std::string& c : codings) chunked += c == "chunked" ? 1 : 0;
  if (codings.back() != "chunked" || chunked > 1) {
    return "Transfer-Encoding must end with a single \"chunked\"";
  }
  return "";
}

}  // namespace

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
  const std::vector<std::string> codings = TransferCodings(req);
  if (std::string why = NotFinalChunked(codings); !why.empty()) return {400, why};
  if (codings.size() > 1) {
    return {501, absl::StrCat("transfer coding \"", codings.front(),
                              "\" is not supported (only \"chunked\")")};
  }
  return {};
}

bool ResponseFramingOk(const http::response<http::buffer_body>& res) {
  if (res.count(http::field::transfer_encoding) == 0) return true;
  // We strip the TE request header, so a backend has no reason to apply any coding but
  // chunked; anything else could not be re-framed for the client without guessing.
  if (res.version() < 11 || res.count(http::field::content_length) > 0) return false;
  const std::vector<std::string> codings = TransferCodings(res);
  return NotFinalChunked(codings).empty() && codings.size() == 1;
}

int StatusForReadError(const beast::error_code& ec) {
  if (ec == http::error::header_limit || ec == http::error::buffer_overflow) return 431;
  if (ec == http::error::body_limit) return 413;
  if (ec == http::error::end_of_stream || ec == http::error::partial_message) return 0;
  if (ec.category() == http::make_error_code(http::error::bad_target).category()) return 400;
  return 0;  // a socket error: the client is gone or was cut off
}

void PrepareRequestHead(http::request_parser<http::buffer_body>& p, std::string_view peer_ip,
                        std::string_view ingress_proto) {
  auto& req = p.get();
  StripHopByHop(req);
  req.erase(http::field::expect);
  const absl::string_view peer(peer_ip.data(), peer_ip.size());
  if (ingress_proto.empty()) {
    std::string xff(req["X-Forwarded-For"]);
    req.set("X-Forwarded-For", xff.empty() ? std::string(peer) : absl::StrCat(xff, ", ", peer));
  } else {
    // set() replaces every field of the name, so a client cannot slip a second one through.
    req.set("X-Forwarded-For", std::string(peer));
    req.set("X-Forwarded-Proto", std::string(ingress_proto.data(), ingress_proto.size()));
    const std::string host(req[http::field::host]);
    if (host.empty()) {
      req.erase("X-Forwarded-Host");
    } else {
      req.set("X-Forwarded-Host", host);
    }
    req.erase(http::field::forwarded);
    req.erase("X-Forwarded-Port");
  }
  // The backend gets HTTP/1.1, which requires a Host; an HTTP/1.0 client may not have sent one
  // (an empty value is what RFC 9112 3.2 prescribes for a target without authority).
  if (req.version() < 11 && req.count(http::field::host) == 0) req.set(http::field::host, "");
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
  const bool has_body = !head && status / 100 != 1 && status != 204 && status != 304;
  StripHopByHop(res);
  res.version(version);
  if (!has_body) {
    // Whatever the backend claims, no body follows: a Transfer-Encoding would make the
    // serializer send a last chunk the client reads as the start of the next response.
    res.erase(http::field::transfer_encoding);
    if (status == 204 || status / 100 == 1) res.erase(http::field::content_length);
    return;
  }
  if (!p.content_length()) {
    if (version >= 11) {
      res.chunked(true);
    } else {
      // An HTTP/1.0 client can only see the end of an unsized body as the connection's end.
      res.chunked(false);
      client_keep = false;
    }
  }
}

bool EndsAtClose(const http::response_parser<http::buffer_body>& p, bool head) {
  const auto& res = p.get();
  const int status = res.result_int();
  if (head || status / 100 == 1 || status == 204 || status == 304) return false;
  return !p.content_length() && !res.chunked();
}

}  // namespace warren::relay
