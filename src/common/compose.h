#ifndef WARREN_COMMON_COMPOSE_H_
#define WARREN_COMMON_COMPOSE_H_

// Compose files (docker-compose.yml, as `docker stack deploy` reads them) as Warren services:
// what has a meaning here is mapped, every other key is named in one error (keys Warren cannot
// honour, e.g. `build`, `volumes`) or in warnings (keys that change nothing here, e.g.
// `networks`, `depends_on`). See docs/compose.md.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "warren/v1/objects.pb.h"

namespace warren {

// Swarm's label naming the stack a service belongs to.
inline constexpr char kStackLabel[] = "com.docker.stack.namespace";

struct ComposeInput {
  // The stack's name: services are named STACK-SERVICE and labelled kStackLabel=STACK.
  std::string stack;
  std::string yaml;
  // Reads an env_file as written in the compose file (the CLI resolves it against the compose
  // file's directory).
  std::function<absl::StatusOr<std::string>(const std::string& path)> read_file;
  // The deploying user's environment, for ${VAR} interpolation and `environment` entries
  // without a value; nullopt when unset.
  std::function<std::optional<std::string>(const std::string& name)> getenv;
};

struct ComposeResult {
  // One per compose service, ordered by name; defaults not filled in.
  std::vector<v1::ServiceSpec> services;
  // "services.web.networks: ignored: ..." for each key that changes nothing here.
  std::vector<std::string> warnings;
};

// INVALID_ARGUMENT listing every problem (unsupported keys with the reason, bad values with
// the key's path and what is allowed), one per line.
absl::StatusOr<ComposeResult> ConvertCompose(const ComposeInput& input);

// "STACK-SERVICE": a Warren service name is a DNS label, where Swarm's '_' cannot appear.
std::string StackServiceName(const std::string& stack, const std::string& service);

}  // namespace warren

#endif  // WARREN_COMMON_COMPOSE_H_
