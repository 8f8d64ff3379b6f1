#ifndef WARREN_CLI_COMMAND_ENV_H_
#define WARREN_CLI_COMMAND_ENV_H_

#include <memory>
#include <ostream>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/time/time.h"

namespace warren {

// What a client command defined outside cli.cc needs from the command line: the manager's
// address (read when the command runs: --manager may follow the command), the output streams
// and the command line as typed (the default change cause).
// A unary call's deadline (the manager's own waits on etcd are shorter: EtcdClientOptions).
inline constexpr absl::Duration kCallTimeout = absl::Seconds(5);

struct CommandEnv {
  const std::string* manager = nullptr;
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  const std::string* command_line = nullptr;
  // The admin bundle's credentials, set after parsing (cli.cc); null: plaintext.
  const std::shared_ptr<grpc::ChannelCredentials>* credentials = nullptr;

  std::shared_ptr<grpc::Channel> Channel() const;
  // A unary call's context: the CLI's deadline (5 s), no waiting for a channel to connect.
  static void Prepare(grpc::ClientContext* call);
  // Prints the failed call's message (an unreachable manager is named with the way to set it)
  // and returns the exit code, 1.
  int Fail(const grpc::Status& status) const;

  // Where Channel() keeps the channel it made (the command's context owns it): Fail tells a
  // manager that answered from one that was not reached by the channel's state. May be null.
  std::shared_ptr<grpc::Channel>* last_channel = nullptr;
};

}  // namespace warren

#endif  // WARREN_CLI_COMMAND_ENV_H_
