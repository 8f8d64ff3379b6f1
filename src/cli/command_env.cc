#include "cli/command_env.h"

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/limits.h"
#include "common/manager_list.h"
#include "security/client_bundle.h"

namespace warren {

namespace {

// How long the CLI waits for one of several managers to connect before it tries the next.
constexpr absl::Duration kConnectEach = absl::Seconds(1);

}  // namespace

std::shared_ptr<grpc::Channel> CommandEnv::Channel() const {
  // Task lists of large services exceed gRPC's default 4 MiB per response.
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(limits::kMaxClientReceiveBytes);
  const bool tls = credentials != nullptr && *credentials != nullptr;
  // One connection per command: a cached one of another bundle must not be shared.
  if (tls) args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto open = [&](const std::string& addr) {
    return grpc::CreateCustomChannel(addr, tls ? *credentials : grpc::InsecureChannelCredentials(),
                                     args);
  };
  auto managers = ParseManagerList("--manager", *manager);
  auto keep = [&](std::shared_ptr<grpc::Channel> channel) {
    if (last_channel != nullptr) *last_channel = channel;
    return channel;
  };
  if (!managers.ok() || managers->size() < 2) return keep(open(*manager));
  // Several managers on etcd: every one serves the API; take the first that connects, so a
  // manager that is down costs at most kConnectEach.
  for (const std::string& addr : *managers) {
    std::shared_ptr<grpc::Channel> channel = open(addr);
    if (channel->WaitForConnected(absl::ToChronoTime(absl::Now() + kConnectEach))) {
      return keep(channel);
    }
  }
  return keep(open(managers->front()));
}

void CommandEnv::Prepare(grpc::ClientContext* call) {
  call->set_wait_for_ready(false);
  call->set_deadline(absl::ToChronoTime(absl::Now() + kCallTimeout));
}

int CommandEnv::Fail(const grpc::Status& status) const {
  const bool unreachable = status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                           status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
  const bool plaintext = credentials == nullptr || *credentials == nullptr;
  // A plaintext call to a TLS manager (the default) fails its handshake like an unreachable
  // manager; the bootstrap call tells the two apart.
  auto managers = ParseManagerList("--manager", *manager);
  const std::string first = managers.ok() ? managers->front() : *manager;
  if (unreachable && plaintext && security::ServesTls(first, absl::Seconds(2))) {
    *err << "error: the manager at " << *manager
         << " serves mutual TLS and this command has no admin client bundle ("
         << security::DescribeBundleSearch()
         << "): pass --tls-dir DIR or set WARREN_TLS_DIR to the bundle the manager wrote "
            "(TLS-ROOT/<cluster-id>, logged at its start; TLS-ROOT is its --tls-root, default "
            "~/.warren on its host)\n";
    return 1;
  }
  // A manager that answered UNAVAILABLE itself (its store cannot take writes, say) is
  // reachable: its message says what is wrong, not the address.
  const bool connected = last_channel != nullptr && *last_channel != nullptr &&
                         (*last_channel)->GetState(false) == GRPC_CHANNEL_READY;
  if (connected && status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    *err << "error: the manager at " << *manager << " did not answer within "
         << absl::FormatDuration(kCallTimeout) << " (" << status.error_message() << ")\n";
  } else if (unreachable && connected) {
    *err << "error: " << status.error_message() << "\n";
  } else if (unreachable) {
    *err << "error: cannot reach the manager at " << *manager
         << " (set --manager or WARREN_MANAGER): " << status.error_message() << "\n";
  } else {
    *err << "error: " << status.error_message() << "\n";
  }
  return 1;
}

}  // namespace warren
