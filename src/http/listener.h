#ifndef WARREN_HTTP_LISTENER_H_
#define WARREN_HTTP_LISTENER_H_

// Pieces every accept loop and session of the network listeners share: pausing after accept
// errors, refusing a connection without blocking, and a co_spawn completion that keeps an
// escaped exception from reaching std::terminate.

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <string_view>

#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>
#include <string>

#include "absl/status/status.h"

namespace warren {

// How long an accept loop waits after an error. Running out of descriptors (EMFILE, ENFILE) or
// kernel memory (ENOBUFS, ENOMEM) fails every accept until something is closed: retrying at
// once would spin a core, so the pause doubles up to a limit and resets on the next success.
// Other errors (a connection aborted before it was accepted) are retried at once.
class AcceptBackoff {
 public:
  static constexpr std::chrono::milliseconds kFirst{5};
  static constexpr std::chrono::milliseconds kMax{500};

  std::chrono::milliseconds OnError(const boost::system::error_code& ec) {
    namespace errc = boost::system::errc;
    const bool exhausted = ec == errc::too_many_files_open ||
                           ec == errc::too_many_files_open_in_system ||
                           ec == errc::no_buffer_space || ec == errc::not_enough_memory;
    if (!exhausted) return std::chrono::milliseconds(0);
    delay_ = delay_.count() == 0 ? kFirst : std::min(delay_ * 2, kMax);
    ++exhausted_errors_;
    return delay_;
  }
  void OnSuccess() { delay_ = std::chrono::milliseconds(0); }
  // Accepts that failed for lack of descriptors or memory, since the start.
  uint64_t exhausted_errors() const { return exhausted_errors_; }

 private:
  std::chrono::milliseconds delay_{0};
  uint64_t exhausted_errors_ = 0;
};

// Sends `bytes` if the socket takes them at once, then closes it: for refusing a connection
// (an over-limit 503) without holding its descriptor while a slow client reads.
inline void SendAndClose(int fd, std::string_view bytes) {
  if (fd < 0) return;
  if (!bytes.empty()) {
    (void)::send(fd, bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    ::shutdown(fd, SHUT_WR);
  }
  ::close(fd);
}

// Opens `acceptor` on `addr` ("host:port", "[v6]:port", "localhost:port"; port 0 picks one),
// with SO_REUSEADDR, and listens. Errors name the address: "127.0.0.1:9090: address already in
// use" (UNAVAILABLE), a bad address is INVALID_ARGUMENT.
absl::Status ListenOn(boost::asio::ip::tcp::acceptor& acceptor, const std::string& addr);

// Completion of asio::co_spawn for sessions and loops. asio::detached rethrows an exception
// that escaped the coroutine into io_context::run(), where it ends the process; this logs it.
struct LogEscapedException {
  const char* where;
  void operator()(std::exception_ptr e) const;
};

}  // namespace warren

#endif  // WARREN_HTTP_LISTENER_H_
