#ifndef WARREN_CLI_COMMAND_ENV_H_
#define WARREN_CLI_COMMAND_ENV_H_

#include <memory>
#include <ostream>
#include <string>

#include <grpcpp/grpcpp.h>

namespace warren {

// What a client command defined outside cli.cc needs from the command line: the manager's
// address (read when the command runs: --manager may follow the command), the output streams
// and the command line as typed (the default change cause).
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
};

}  // namespace warren

#endif  // WARREN_CLI_COMMAND_ENV_H_
