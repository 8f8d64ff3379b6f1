#include "http/grpc_acceptor.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <cstdint>
#include <thread>

#include "absl/strings/str_cat.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/server_posix.h"
#include "http/http_server.h"
#include "http/listener.h"
#include "spdlog/spdlog.h"

namespace warren {

namespace net = boost::asio;
using tcp = net::ip::tcp;

class GrpcAcceptor::Impl {
 public:
  Impl() : acceptor_(ioc_), pause_(ioc_) {}

  absl::Status Listen(const std::string& addr) {
    if (absl::Status s = ListenOn(acceptor_, addr); !s.ok()) return s;
    const tcp::endpoint bound = acceptor_.local_endpoint();
    port_ = bound.port();
    // The bound address, for the log: "port 0" says nothing.
    addr_ = bound.address().is_v6() ? absl::StrCat("[", bound.address().to_string(), "]:", port_)
                                    : absl::StrCat(bound.address().to_string(), ":", port_);
    return absl::OkStatus();
  }

  void Start(grpc::Server* server) {
    server_ = server;
    Accept();
    thread_ = std::thread([this] {
      for (;;) {
        try {
          ioc_.run();
          return;
        } catch (const std::exception& e) {
          spdlog::error("gRPC listener {}: unexpected exception: {}", addr_, e.what());
        }
      }
    });
  }

  void Stop() {
    if (stopped_.exchange(true)) return;
    net::post(ioc_, [this] {
      boost::system::error_code ec;
      acceptor_.close(ec);
      pause_.cancel();
    });
    if (thread_.joinable()) thread_.join();
    boost::system::error_code ec;
    acceptor_.close(ec);
  }

  void UseTls(grpc::ServerBuilder& builder, std::shared_ptr<grpc::ServerCredentials> credentials) {
    tls_ = builder.experimental().AddExternalConnectionAcceptor(
        grpc::ServerBuilder::experimental_type::ExternalConnectionType::FROM_FD,
        std::move(credentials));
  }

  int port() const { return port_; }
  uint64_t accept_errors() const { return accept_errors_.load(); }

 private:
  void Accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
      if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
      if (ec) {
        if (auto pause = backoff_.OnError(ec); pause.count() > 0) {
          if (accept_errors_.fetch_add(1) == 0) {
            spdlog::warn("gRPC listener {}: accept failed ({}); retrying with a pause", addr_,
                         ec.message());
          }
          pause_.expires_after(pause);
          pause_.async_wait([this](boost::system::error_code wait_ec) {
            if (!wait_ec) Accept();
          });
          return;
        }
        Accept();
        return;
      }
      backoff_.OnSuccess();
      int fd = socket.release(ec);
      if (fd >= 0) {
        // What gRPC's own listener sets on an accepted socket.
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        ::fcntl(fd, F_SETFD, ::fcntl(fd, F_GETFD) | FD_CLOEXEC);
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
        // The server owns the descriptor now. Both hand-overs need a started server that is not
        // shut down: Start() comes after BuildAndStart() and Stop() before Shutdown().
        if (tls_) {
          grpc::experimental::ExternalConnectionAcceptor::NewConnectionParameters p;
          p.listener_fd = acceptor_.native_handle();
          p.fd = fd;
          tls_->HandleNewConnection(&p);
        } else {
          grpc::AddInsecureChannelFromFd(server_, fd);
        }
      }
      Accept();
    });
  }

  net::io_context ioc_;
  tcp::acceptor acceptor_;
  net::steady_timer pause_;
  AcceptBackoff backoff_;
  std::atomic<uint64_t> accept_errors_{0};
  grpc::Server* server_ = nullptr;
  // Set by UseTls: hands accepted descriptors to the server's TLS handshake.
  std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> tls_;
  std::thread thread_;
  std::atomic<bool> stopped_{false};
  int port_ = 0;
  std::string addr_;
};

void ConfigureGrpcServer(grpc::ServerBuilder& builder, const GrpcConnectionLimits& limits) {
  auto ms = [](absl::Duration d) {
    return static_cast<int>(std::clamp<int64_t>(absl::ToInt64Milliseconds(d), 1, INT32_MAX));
  };
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, ms(limits.max_idle));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, ms(limits.keepalive_time));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, ms(limits.keepalive_timeout));
}

absl::StatusOr<std::unique_ptr<GrpcAcceptor>> GrpcAcceptor::Listen(const std::string& addr) {
  auto impl = std::make_unique<Impl>();
  if (absl::Status s = impl->Listen(addr); !s.ok()) return s;
  return std::unique_ptr<GrpcAcceptor>(new GrpcAcceptor(std::move(impl)));
}

GrpcAcceptor::GrpcAcceptor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GrpcAcceptor::~GrpcAcceptor() { Stop(); }
int GrpcAcceptor::port() const { return impl_->port(); }
void GrpcAcceptor::UseTls(grpc::ServerBuilder& builder,
                          std::shared_ptr<grpc::ServerCredentials> credentials) {
  impl_->UseTls(builder, std::move(credentials));
}
void GrpcAcceptor::Start(grpc::Server* server) { impl_->Start(server); }
void GrpcAcceptor::Stop() { impl_->Stop(); }
uint64_t GrpcAcceptor::accept_errors() const { return impl_->accept_errors(); }

}  // namespace warren
