#ifndef WARREN_HTTP_GRPC_ACCEPTOR_H_
#define WARREN_HTTP_GRPC_ACCEPTOR_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace grpc {
class Server;
class ServerBuilder;
class ServerCredentials;
}  // namespace grpc

namespace warren {

// The listening socket of a gRPC server, accepted by us and handed to the server connection by
// connection: plaintext through grpc::AddInsecureChannelFromFd, TLS through an external
// connection acceptor with the server's TLS credentials (UseTls), which runs gRPC's own
// handshake, so the peer certificate reaches each call's auth context as with gRPC's listener.
// gRPC 1.51 (Debian 12) stops its own listener for good after one failed accept4 ("Failed
// accept4: Too many open files"): the API never answered again until a restart. This loop
// pauses after such a failure (see AcceptBackoff) and goes on once descriptors are free. The
// server is built without listening ports of its own.
class GrpcAcceptor {
 public:
  // Binds and listens on `addr` ("host:port", "[v6]:port", "localhost:port"; port 0 picks one).
  // Errors name the address.
  static absl::StatusOr<std::unique_ptr<GrpcAcceptor>> Listen(const std::string& addr);
  ~GrpcAcceptor();
  GrpcAcceptor(const GrpcAcceptor&) = delete;
  GrpcAcceptor& operator=(const GrpcAcceptor&) = delete;

  // The bound port (the real one when started with port 0).
  int port() const;
  // Hands the connections over TLS with `credentials` instead of plaintext: registers an
  // external connection acceptor on `builder`. Call before builder.BuildAndStart().
  void UseTls(grpc::ServerBuilder& builder, std::shared_ptr<grpc::ServerCredentials> credentials);
  // Starts handing accepted connections to `server`, which must stay alive until Stop().
  void Start(grpc::Server* server);
  // Closes the listener and joins the accept thread; connections already handed over stay with
  // the server. Idempotent.
  void Stop();
  // Accepts that failed for lack of descriptors or memory since the start.
  uint64_t accept_errors() const;

  class Impl;

 private:
  explicit GrpcAcceptor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Connection limits of every Warren gRPC server (the API, the worker agent's), so that
// abandoned connections give their descriptors back. Workers hold streams (never idle); the CLI
// connects per command.
struct GrpcConnectionLimits {
  // A connection without calls for this long is sent GOAWAY and closed (also one that never
  // said a word: connections handed over by GrpcAcceptor skip gRPC's handshake timeout).
  absl::Duration max_idle = absl::Minutes(5);
  // While calls are open the peer is pinged after this long without traffic, and the connection
  // is closed when the ping is not answered within keepalive_timeout.
  absl::Duration keepalive_time = absl::Seconds(60);
  absl::Duration keepalive_timeout = absl::Seconds(20);
};

void ConfigureGrpcServer(grpc::ServerBuilder& builder, const GrpcConnectionLimits& limits = {});

}  // namespace warren

#endif  // WARREN_HTTP_GRPC_ACCEPTOR_H_
