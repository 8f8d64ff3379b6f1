#ifndef WARREN_CLI_INGRESS_COMMANDS_H_
#define WARREN_CLI_INGRESS_COMMANDS_H_

#include <functional>
#include <vector>

#include "CLI/CLI.hpp"
#include "cli/command_env.h"
#include "warren/v1/ingress.grpc.pb.h"

namespace warren {

// `ingress create NAME --host H [--path P] --service S [--port N] [--tls (--cert F --key F |
// --acme)] [--replace]`, `ingress renew NAME`,
// `ingress ls [-q] [-o FORMAT]`, `ingress inspect NAME [-o FORMAT]`, `ingress rm NAME...`.
void AddIngressCommands(CLI::App* app, const CommandEnv& env, std::function<int()>* action);

// Checks each spec (defaults applied) and its certificate on the client; prints each error and
// returns false when there was one.
bool CheckIngressSpecs(const std::vector<v1::IngressSpec>& specs, const CommandEnv& env);

// `apply -f`'s ingresses: each one not stored yet is created; one stored with the same spec is
// left alone; one that differs is replaced (removed and created again, after a check of the
// new spec). Prints "ingress NAME: created|unchanged|replaced". 0, or 1 after the first error.
int ApplyIngresses(v1::Ingresses::Stub& stub, const std::vector<v1::IngressSpec>& specs,
                   bool dry_run, const CommandEnv& env);

}  // namespace warren

#endif  // WARREN_CLI_INGRESS_COMMANDS_H_
