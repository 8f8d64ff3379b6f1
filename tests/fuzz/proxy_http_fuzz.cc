// libFuzzer target: one client connection through the proxy's HTTP handling (src/proxy/
// http_relay.h: SafeAsyncRead, the framing checks, the head rewrites, Relay, the error answers),
// over in-memory streams. The input holds what the client sends and what the backend answers;
// both arrive in pieces of a fuzzed size. The proxy must not crash, must answer a refused
// request with an error, and must forward to the backend only messages a strict parser reads
// back with the same framing (no request smuggling), and to the client only whole responses.
//
// Input: [flags][request length, 3 bytes big-endian][request bytes][response bytes]
//   flags bits 0-3: client read size, bits 4-7: backend read size (0 = unlimited).

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/_experimental/test/stream.hpp>

#include "proxy/http_relay.h"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace relay = warren::relay;
using Stream = beast::test::stream;

constexpr uint32_t kHeaderLimit = 8 << 10;  // small, so the fuzzer reaches it
constexpr int kMaxRequests = 4;

struct Outcome {
  int forwarded = 0;                  // requests relayed whole to the backend
  bool forward_cut = false;           // the last request's relay to the backend failed midway
  int answered = 0;                   // responses relayed whole to the client
  bool answer_cut = false;            // the last response's relay to the client failed midway
  bool heads[kMaxRequests + 1] = {};  // per response sent: the request was HEAD
};

void Check(bool ok, const char* what) {
  if (!ok) {
    fprintf(stderr, "invariant broken: %s\n", what);
    abort();
  }
}

asio::awaitable<void> Serve(Stream& client, Stream& upstream, Outcome& out) {
  beast::flat_buffer cbuf(kHeaderLimit);
  beast::flat_buffer ubuf(kHeaderLimit);
  std::string body(relay::kBodyChunk, '\0');
  for (int i = 0; i < kMaxRequests; ++i) {
    http::request_parser<http::buffer_body> req_p;
    req_p.body_limit(std::numeric_limits<std::uint64_t>::max());
    req_p.header_limit(kHeaderLimit);
    beast::error_code ec;
    co_await warren::SafeAsyncRead(client, cbuf, req_p, warren::ReadUntil::kHeader,
                                   asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      const int status = relay::StatusForReadError(ec);
      if (status != 0) {
        co_await relay::SendError(client, status, "bad request\n", false, 11);
        ++out.answered;
      }
      co_return;
    }
    relay::Refusal refusal = relay::CheckRequestFraming(req_p.get());
    if (refusal.status != 0) {
      Check(refusal.status >= 400 && refusal.status <= 599, "a refusal is an error status");
      co_await relay::SendError(client, refusal.status, refusal.reason, false,
                                req_p.get().version());
      ++out.answered;
      co_return;
    }
    const unsigned version = req_p.get().version();
    const bool head = req_p.get().method() == http::verb::head;
    bool keep = req_p.get().keep_alive();
    relay::PrepareRequestHead(req_p, "192.0.2.1");
    relay::ClientDeadline deadline;
    relay::RelayResult sent =
        co_await relay::Relay<true>(req_p, client, cbuf, upstream, body.data(), &deadline);
    if (sent.failed != relay::Side::kNone) {
      out.forward_cut = true;
      if (sent.failed == relay::Side::kIn && relay::StatusForReadError(sent.ec) != 0) {
        co_await relay::SendError(client, relay::StatusForReadError(sent.ec), "bad body\n", false,
                                  version);
        ++out.answered;
      }
      co_return;
    }
    ++out.forwarded;
    std::optional<http::response_parser<http::buffer_body>> res;
    ec = co_await relay::ReadResponseHeader(upstream, ubuf, head, kHeaderLimit, res);
    if (ec || res->get().result_int() == 101) {
      co_await relay::SendError(client, 502, "bad gateway\n", false, version);
      ++out.answered;
      co_return;
    }
    const bool upstream_keep = res->get().keep_alive();
    relay::PrepareResponseHead(*res, version, head, keep);
    res->get().keep_alive(keep);
    out.heads[out.answered] = head;
    relay::RelayResult relayed =
        co_await relay::Relay<false>(*res, upstream, ubuf, client, body.data(), &deadline);
    if (relayed.failed != relay::Side::kNone) {
      out.answer_cut = true;
      co_return;
    }
    ++out.answered;
    if (!keep || !upstream_keep) co_return;
  }
}

// Whole messages a strict parser finds in `wire`, in order; -1 if one is malformed.
template <bool isRequest>
int CountMessages(std::string_view wire, const bool* heads, bool allow_cut_tail) {
  int n = 0;
  while (!wire.empty()) {
    http::parser<isRequest, http::buffer_body> p;
    p.eager(true);
    p.body_limit(std::numeric_limits<std::uint64_t>::max());
    p.header_limit(1 << 20);
    if constexpr (!isRequest) {
      if (heads[n]) p.skip(true);
    }
    char sink[4096];
    beast::error_code ec;
    while (!p.is_done()) {
      p.get().body().data = sink;
      p.get().body().size = sizeof(sink);
      const size_t used = p.put(asio::buffer(wire.data(), wire.size()), ec);
      wire.remove_prefix(used);
      if (ec == http::error::need_buffer) {
        ec = {};
        continue;
      }
      // need_more: all that is left was offered. No progress: nothing more to parse.
      if (ec || used == 0) break;
    }
    if (!p.is_done()) {
      // A message delimited by the end of the stream ends here.
      if ((!ec || ec == http::error::need_more) && wire.empty()) {
        ec = {};
        p.put_eof(ec);
        if (!ec && p.is_done()) return n + 1;
      }
      return allow_cut_tail ? n : -1;
    }
    if constexpr (isRequest) {
      // What reaches the backend frames itself one way only.
      Check(relay::CheckRequestFraming(p.get()).status == 0, "forwarded an ambiguous framing");
    }
    ++n;
  }
  return n;
}

}  // namespace

// BOOST_ASSERT stays on (built with BOOST_ENABLE_ASSERT_HANDLER) but one assertion of Beast 1.74
// is wrong: parse_chunk_header asserts 5 buffered bytes when a last chunk ("0\r\n") is parsed
// again, but a byte-by-byte client gets there with 4 ("0\r\n\r"). Release builds (NDEBUG) skip
// it and go on correctly: the parser waits for the end of the trailer section.
namespace boost {
void assertion_failed(char const* expr, char const* function, char const* file, long line) {
  if (std::string_view(expr) == "n >= 5" && std::string_view(file).ends_with("basic_parser.ipp")) {
    return;
  }
  fprintf(stderr, "%s:%ld: %s: assertion failed: %s\n", file, line, function, expr);
  abort();
}
void assertion_failed_msg(char const* expr, char const* msg, char const* function, char const* file,
                          long line) {
  fprintf(stderr, "%s:%ld: %s: assertion failed: %s (%s)\n", file, line, function, expr, msg);
  abort();
}
}  // namespace boost

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  const uint8_t flags = data[0];
  size_t req_len = (size_t{data[1]} << 16) | (size_t{data[2]} << 8) | data[3];
  data += 4;
  size -= 4;
  req_len = std::min(req_len, size);
  std::string_view request(reinterpret_cast<const char*>(data), req_len);
  std::string_view response(reinterpret_cast<const char*>(data) + req_len, size - req_len);

  asio::io_context ioc;
  Stream client(ioc, beast::string_view(request.data(), request.size()));  // the proxy's end
  Stream client_peer(ioc);  // what the client receives
  client.connect(client_peer);
  client.close_remote();
  Stream upstream(ioc, beast::string_view(response.data(), response.size()));  // the proxy's end
  Stream backend(ioc);  // what the backend receives
  upstream.connect(backend);
  upstream.close_remote();
  if (flags & 0x0f) client.read_size(flags & 0x0f);
  if (flags >> 4) upstream.read_size(static_cast<size_t>(flags >> 4) * 7);

  Outcome out;
  bool done = false;
  asio::co_spawn(ioc, Serve(client, upstream, out), [&](std::exception_ptr e) {
    Check(!e, "an exception escaped the session");
    done = true;
  });
  ioc.run();
  Check(done, "the session never finished");

  const beast::string_view to_backend = backend.str();
  const beast::string_view to_client = client_peer.str();
  if (getenv("PROXY_FUZZ_DUMP")) {
    fprintf(stderr, "--- to backend:\n%.*s\n--- to client:\n%.*s\n---\n",
            static_cast<int>(to_backend.size()), to_backend.data(),
            static_cast<int>(to_client.size()), to_client.data());
  }
  int forwarded =
      CountMessages<true>({to_backend.data(), to_backend.size()}, nullptr, out.forward_cut);
  Check(forwarded >= 0, "forwarded a malformed request");
  Check(forwarded >= out.forwarded, "forwarded fewer whole requests than relayed");
  int answered =
      CountMessages<false>({to_client.data(), to_client.size()}, out.heads, out.answer_cut);
  Check(answered >= 0, "sent the client a malformed response");
  Check(answered == out.answered, "sent the client a different number of responses");
  return 0;
}
