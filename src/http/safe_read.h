#ifndef WARREN_HTTP_SAFE_READ_H_
#define WARREN_HTTP_SAFE_READ_H_

// Beast's http::async_read_some / async_read_header / async_read, with one difference that
// matters for untrusted input: the parser runs inside this operation's own step, where an
// exception it throws becomes an error code. Beast 1.74 throws std::length_error from
// basic_fields for a field (header or trailer) of 64 KiB or more; inside Beast's composed read
// that exception escapes the completion handler, unwinds out of io_context::run() and, on a
// thread nobody guards, ends the process in std::terminate.
//
// Memory stays bounded by the dynamic buffer's max_size(): a header block, a chunk header (with
// its extensions) or a trailer section must fit in it, or the read fails with buffer_overflow
// (header_limit for a header block). Beast 1.74 parses the header fields of its first put and
// its header_limit bounds only what is buffered after that, so a head of many small fields could
// exceed the limit by a whole read; the head's total is counted here.

#include <cstddef>
#include <exception>
#include <new>
#include <stdexcept>
#include <utility>

#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/read_size.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>

namespace warren {

enum class ReadUntil {
  kSome,    // like http::async_read_some: one step of progress
  kHeader,  // like http::async_read_header
  kMessage  // like http::async_read
};

// Called with the byte count of every read that returned data (e.g. to see the first byte of a
// request arrive).
struct NoReadHook {
  void operator()(size_t) const {}
};

namespace safe_read_detail {

// Parses what `buffer` holds. True when the read is over (`ec` says how: an error, or none
// when `until` is reached); false when more bytes must be read. `total` counts the bytes parsed,
// `head` those of the header block, which must fit in the buffer's max_size().
template <class DynamicBuffer, bool isRequest>
bool ParseBuffered(DynamicBuffer& buffer, boost::beast::http::basic_parser<isRequest>& parser,
                   ReadUntil until, size_t& total, size_t& head, boost::beast::error_code& ec) {
  namespace http = boost::beast::http;
  while (buffer.size() > 0) {
    ec = {};
    size_t used = 0;
    const bool in_head = !parser.is_header_done();
    try {
      used = parser.put(buffer.data(), ec);
    } catch (const std::length_error&) {
      // A field too large for basic_fields: the same answer as a header block too large.
      ec = http::error::header_limit;
      return true;
    } catch (const std::bad_alloc&) {
      ec = http::error::bad_alloc;
      return true;
    } catch (const std::exception&) {
      ec = http::error::bad_value;
      return true;
    }
    buffer.consume(used);
    total += used;
    // A put that starts in the head ends with it: every byte it used is the head's.
    if (in_head) head += used;
    if (in_head && head + (parser.is_header_done() ? 0 : buffer.size()) > buffer.max_size()) {
      ec = http::error::header_limit;
      return true;
    }
    if (ec == http::error::need_more) break;
    if (ec || until == ReadUntil::kSome || parser.is_done() ||
        (until == ReadUntil::kHeader && parser.is_header_done())) {
      return true;
    }
    // more of the message may already be buffered
  }
  ec = {};
  return false;
}

template <class Stream, class DynamicBuffer, bool isRequest, class Hook>
class ReadOp {
 public:
  ReadOp(Stream& stream, DynamicBuffer& buffer, boost::beast::http::basic_parser<isRequest>& parser,
         ReadUntil until, Hook hook)
      : stream_(stream), buffer_(buffer), parser_(parser), until_(until), hook_(std::move(hook)) {}

  // Initiation, and the completion of a post() when the result was known without reading.
  template <class Self>
  void operator()(Self& self) {
    if (state_ == State::kPosted) {
      self.complete(result_, total_);
      return;
    }
    Step(self);
  }

  // Completion of a read.
  template <class Self>
  void operator()(Self& self, boost::beast::error_code ec, size_t n) {
    buffer_.commit(n);
    if (ec == boost::asio::error::eof) {
      if (!parser_.got_some()) return Finish(self, boost::beast::http::error::end_of_stream);
      // A message delimited by the end of the connection is complete now; an unfinished one is
      // a partial_message. The caller sees the EOF on its next read.
      ec = {};
      parser_.put_eof(ec);
      return Finish(self, ec);
    }
    if (ec) return Finish(self, ec);
    if (n > 0) hook_(n);
    Step(self);
  }

 private:
  enum class State { kRunning, kPosted };

  template <class Self>
  void Step(Self& self) {
    boost::beast::error_code ec;
    if (ParseBuffered(buffer_, parser_, until_, total_, head_, ec)) return Finish(self, ec);
    const size_t size = boost::beast::read_size(buffer_, 65536);
    if (size == 0) return Finish(self, boost::beast::http::error::buffer_overflow);
    read_started_ = true;
    stream_.async_read_some(buffer_.prepare(size), std::move(self));
  }

  template <class Self>
  void Finish(Self& self, boost::beast::error_code ec) {
    if (read_started_) {
      self.complete(ec, total_);
      return;
    }
    // Never complete inside the initiating call: a callback caller could recurse without bound.
    state_ = State::kPosted;
    result_ = ec;
    boost::asio::post(stream_.get_executor(), std::move(self));
  }

  Stream& stream_;
  DynamicBuffer& buffer_;
  boost::beast::http::basic_parser<isRequest>& parser_;
  ReadUntil until_;
  Hook hook_;
  State state_ = State::kRunning;
  bool read_started_ = false;
  boost::beast::error_code result_;
  size_t total_ = 0;
  size_t head_ = 0;  // bytes of the header block parsed so far
};

}  // namespace safe_read_detail

// Completion signature void(error_code, size_t bytes_parsed). The buffer's max_size() bounds
// every element that must be buffered whole and the whole header block (see above); a parser's
// header_limit still applies. A parser whose head was read by an earlier call is not counted
// again.
template <class Stream, class DynamicBuffer, bool isRequest, class Token, class Hook = NoReadHook>
auto SafeAsyncRead(Stream& stream, DynamicBuffer& buffer,
                   boost::beast::http::basic_parser<isRequest>& parser, ReadUntil until,
                   Token&& token, Hook hook = {}) {
  return boost::asio::async_compose<Token, void(boost::beast::error_code, size_t)>(
      safe_read_detail::ReadOp<Stream, DynamicBuffer, isRequest, Hook>(stream, buffer, parser,
                                                                       until, std::move(hook)),
      token, stream);
}

// Parses what `buffer` already holds without reading, as SafeAsyncRead would: true when that
// was enough (`ec` as SafeAsyncRead would complete with), false when a read is needed. Saves the
// round trip through the io_context that SafeAsyncRead makes when it needs no read. Not for a
// header block (whose total is counted across reads by SafeAsyncRead).
template <class DynamicBuffer, bool isRequest>
bool SafeParseBuffered(DynamicBuffer& buffer, boost::beast::http::basic_parser<isRequest>& parser,
                       ReadUntil until, boost::beast::error_code& ec) {
  size_t total = 0;
  size_t head = 0;
  return parser.is_header_done() &&
         safe_read_detail::ParseBuffered(buffer, parser, until, total, head, ec);
}

}  // namespace warren

#endif  // WARREN_HTTP_SAFE_READ_H_
