// The accept loop in front of the gRPC servers (the API, the worker agent's): it must outlive a
// time without descriptors, which stops gRPC 1.51's own listener for good.

#include "http/grpc_acceptor.h"

#include <grpcpp/grpcpp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "raw_socket.h"
#include "test_util.h"
#include "warren/testing/echo.grpc.pb.h"

namespace warren {
namespace {

using ::testing::HasSubstr;
using testing_util::WaitFor;
using warren::testing::Echo;
using warren::testing::EchoRequest;
using warren::testing::EchoResponse;

class EchoService final : public Echo::Service {
 public:
  grpc::Status Unary(grpc::ServerContext*, const EchoRequest* req, EchoResponse* resp) override {
    resp->set_text(req->text());
    return grpc::Status::OK;
  }
};

// A gRPC server fed by a GrpcAcceptor, as the manager and the worker agent build theirs.
struct Served {
  explicit Served(const GrpcConnectionLimits& limits = {}) {
    auto a = GrpcAcceptor::Listen("127.0.0.1:0");
    EXPECT_TRUE(a.ok()) << a.status();
    if (!a.ok()) return;
    acceptor = std::move(*a);
    grpc::ServerBuilder builder;
    ConfigureGrpcServer(builder, limits);
    builder.RegisterService(&service);
    server = builder.BuildAndStart();
    EXPECT_NE(server, nullptr);
    if (server) acceptor->Start(server.get());
  }
  ~Served() {
    if (acceptor) acceptor->Stop();
    if (server) server->Shutdown(std::chrono::system_clock::now());
  }
  EchoService service;
  std::unique_ptr<GrpcAcceptor> acceptor;
  std::unique_ptr<grpc::Server> server;
};

// A channel with a connection of its own: channels share connections unless told not to.
std::shared_ptr<grpc::Channel> NewChannel(int port) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                   grpc::InsecureChannelCredentials(), args);
}

grpc::Status Call(const std::shared_ptr<grpc::Channel>& channel, const std::string& text) {
  auto stub = Echo::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  EchoRequest req;
  req.set_text(text);
  EchoResponse resp;
  grpc::Status s = stub->Unary(&ctx, req, &resp);
  if (s.ok() && resp.text() != text) {
    return grpc::Status(grpc::StatusCode::INTERNAL, "wrong answer: " + resp.text());
  }
  return s;
}

grpc::Status CallOnNewConnection(int port, const std::string& text) {
  return Call(NewChannel(port), text);
}

TEST(GrpcAcceptorTest, ServesCallsOnTheConnectionsItAccepts) {
  Served served;
  ASSERT_NE(served.server, nullptr);
  const int port = served.acceptor->port();
  EXPECT_GT(port, 0);
  for (int i = 0; i < 3; ++i) {
    grpc::Status s = CallOnNewConnection(port, absl::StrCat("hello ", i));
    EXPECT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_EQ(served.acceptor->accept_errors(), 0u);
  served.acceptor->Stop();
  served.acceptor->Stop();  // idempotent
  // Nothing listens any more: the connect is refused.
  int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_FALSE(test::ConnectExisting(c, port));
  close(c);
}

TEST(GrpcAcceptorTest, ListenErrorsNameTheAddress) {
  int port = 0;
  int busy = test::Listen("127.0.0.1", &port);
  auto a = GrpcAcceptor::Listen(absl::StrCat("127.0.0.1:", port));
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(a.status().message(),
              HasSubstr(absl::StrCat("127.0.0.1:", port, ": address already in use")));
  close(busy);
  a = GrpcAcceptor::Listen("example.invalid:80");
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(a.status().message(), HasSubstr("example.invalid:80"));
}

// With gRPC's own listener (builder.AddListeningPort) no call was answered after this, ever:
// its accept loop gives up on the first EMFILE.
TEST(GrpcAcceptorTest, AcceptsAgainAfterTheProcessRanOutOfDescriptors) {
  Served served;
  ASSERT_NE(served.server, nullptr);
  const int port = served.acceptor->port();
  ASSERT_TRUE(CallOnNewConnection(port, "before").ok());
  EXPECT_TRUE(test::RunOutOfDescriptorsUntilAnAcceptFails(
      port, [&] { return served.acceptor->accept_errors() > 0; },
      [&] {
        absl::SleepFor(absl::Milliseconds(300));  // a window in which to count the retries
        // Paused (5 ms doubling to 500 ms), not retried at once.
        EXPECT_LT(served.acceptor->accept_errors(), 20u);
      }));
  grpc::Status s = CallOnNewConnection(port, "after");
  EXPECT_TRUE(s.ok()) << s.error_message();
}

// Connections handed over by the acceptor skip gRPC's handshake and its deadline: a client that
// connects and never says a word, and one whose calls are done, must still be closed in time.
TEST(GrpcAcceptorTest, ConnectionsWithoutCallsAreClosedAfterMaxIdle) {
  GrpcConnectionLimits limits;
  limits.max_idle = absl::Milliseconds(300);
  Served served(limits);
  ASSERT_NE(served.server, nullptr);
  const int port = served.acceptor->port();
  int silent = test::ConnectTo(port);
  std::string got;
  EXPECT_TRUE(test::ReadUntilClosed(silent, got, absl::Seconds(20))) << got.size();
  close(silent);
  auto channel = NewChannel(port);
  ASSERT_TRUE(Call(channel, "once").ok());
  EXPECT_EQ(channel->GetState(false), GRPC_CHANNEL_READY);
  // The server's GOAWAY takes the channel out of READY.
  EXPECT_TRUE(WaitFor([&] { return channel->GetState(false) != GRPC_CHANNEL_READY; }));
  EXPECT_TRUE(Call(channel, "again").ok());  // a new connection
}

}  // namespace
}  // namespace warren
