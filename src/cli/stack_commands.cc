#include "cli/stack_commands.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cli/apply.h"
#include "cli/output.h"
#include "common/compose.h"
#include "warren/v1/api.grpc.pb.h"

namespace warren {
namespace {

namespace fs = std::filesystem;

absl::StatusOr<std::string> ReadTextFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read \"", path, "\""));
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

std::string StackOf(const v1::Service& svc) {
  auto it = svc.spec().labels().find(kStackLabel);
  return it == svc.spec().labels().end() ? "" : it->second;
}

// Every service; nullopt after printing the error.
std::optional<std::vector<v1::Service>> ListServices(v1::Control::Stub& stub, const CommandEnv& env,
                                                     int* rc) {
  grpc::ClientContext call;
  CommandEnv::Prepare(&call);
  v1::ListServicesResponse resp;
  if (grpc::Status s = stub.ListServices(&call, {}, &resp); !s.ok()) {
    *rc = env.Fail(s);
    return std::nullopt;
  }
  return std::vector<v1::Service>(resp.services().begin(), resp.services().end());
}

std::vector<v1::Service> StackServices(const std::vector<v1::Service>& all,
                                       const std::string& stack) {
  std::vector<v1::Service> out;
  for (const v1::Service& s : all) {
    if (StackOf(s) == stack) out.push_back(s);
  }
  return out;
}

// The services of `stack`; nullopt after printing the error.
std::optional<std::vector<v1::Service>> LoadStack(v1::Control::Stub& stub, const CommandEnv& env,
                                                  const std::string& stack, int* rc) {
  auto all = ListServices(stub, env, rc);
  if (!all) return std::nullopt;
  return StackServices(*all, stack);
}

grpc::Status DeleteService(v1::Control::Stub& stub, const v1::Service& svc) {
  grpc::ClientContext call;
  CommandEnv::Prepare(&call);
  v1::DeleteServiceRequest req;
  req.set_name_or_id(svc.id());
  v1::DeleteServiceResponse resp;
  return stub.DeleteService(&call, req, &resp);
}

struct DeployFlags {
  std::string file;
  std::string stack;
  bool prune = false;
  bool dry_run = false;
};

int Deploy(const CommandEnv& env, const DeployFlags& flags) {
  absl::StatusOr<std::string> text = flags.file == "-" ? absl::StatusOr<std::string>([] {
    std::stringstream buf;
    buf << std::cin.rdbuf();
    return buf.str();
  }())
                                                       : ReadTextFile(flags.file);
  if (!text.ok()) {
    *env.err << "error: -c: " << text.status().message() << "\n";
    return 1;
  }
  // env_file paths are relative to the compose file, as in Compose.
  const fs::path base = flags.file == "-" ? fs::current_path() : fs::path(flags.file).parent_path();
  ComposeInput input;
  input.stack = flags.stack;
  input.yaml = *text;
  input.read_file = [&base](const std::string& path) {
    fs::path p(path);
    return ReadTextFile((p.is_absolute() ? p : base / p).string());
  };
  input.getenv = [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    return v == nullptr ? std::nullopt : std::optional<std::string>(v);
  };
  absl::StatusOr<ComposeResult> compose = ConvertCompose(input);
  if (!compose.ok()) {
    *env.err << "error: " << flags.file << ": " << compose.status().message() << "\n";
    return 1;
  }
  for (const std::string& w : compose->warnings) *env.err << "warning: " << w << "\n";

  auto stub = v1::Control::NewStub(env.Channel());
  int rc = 0;
  auto all = ListServices(*stub, env, &rc);
  if (!all) return rc;
  // A stack never takes over a service it did not create.
  std::map<std::string, std::string> owner;
  for (const v1::Service& s : *all) owner[s.spec().name()] = StackOf(s);
  std::set<std::string> names;
  for (const v1::ServiceSpec& spec : compose->services) {
    names.insert(spec.name());
    auto it = owner.find(spec.name());
    if (it != owner.end() && it->second != flags.stack) {
      *env.err << "error: service " << spec.name() << " exists and is not part of stack "
               << flags.stack << " ("
               << (it->second.empty() ? std::string("it has no stack label")
                                      : absl::StrCat("it belongs to stack ", it->second))
               << "); remove or rename it first\n";
      return 1;
    }
  }
  ApplyRequest request;
  request.specs = compose->services;
  request.describe = [&flags](size_t i, const v1::ServiceSpec& spec) {
    return absl::StrCat(flags.file, ": service ", spec.name());
  };
  request.source = flags.file;
  request.change_cause = absl::StrCat("warren stack deploy -c ", flags.file, " ", flags.stack);
  request.dry_run = flags.dry_run;
  if (int applied = ApplyServices(*stub, request, env); applied != 0) return applied;
  if (!flags.prune) return 0;
  for (const v1::Service& s : StackServices(*all, flags.stack)) {
    if (names.count(s.spec().name()) != 0) continue;
    if (flags.dry_run) {
      *env.out << s.spec().name() << ": remove\n";
      continue;
    }
    if (grpc::Status st = DeleteService(*stub, s); !st.ok()) {
      *env.err << "error: removing " << s.spec().name() << ": " << st.error_message() << "\n";
      rc = 1;
      continue;
    }
    *env.out << s.spec().name() << ": removed\n";
  }
  return rc;
}

int List(const CommandEnv& env, bool quiet) {
  auto stub = v1::Control::NewStub(env.Channel());
  int rc = 0;
  auto all = ListServices(*stub, env, &rc);
  if (!all) return rc;
  std::map<std::string, int> stacks;
  for (const v1::Service& s : *all) {
    if (std::string stack = StackOf(s); !stack.empty()) stacks[stack]++;
  }
  if (quiet) {
    for (const auto& [name, count] : stacks) *env.out << name << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& [name, count] : stacks) rows.push_back({name, absl::StrCat(count)});
  *env.out << RenderTable({"NAME", "SERVICES"}, rows);
  return 0;
}

int Ps(const CommandEnv& env, const std::string& stack) {
  auto stub = v1::Control::NewStub(env.Channel());
  int rc = 0;
  auto services = LoadStack(*stub, env, stack, &rc);
  if (!services) return rc;
  if (services->empty()) {
    *env.err << "error: nothing found in stack " << stack << "\n";
    return 1;
  }
  std::map<std::string, std::string> node_names;
  {
    grpc::ClientContext call;
    CommandEnv::Prepare(&call);
    v1::ListNodesResponse nodes;
    if (grpc::Status s = stub->ListNodes(&call, {}, &nodes); !s.ok()) return env.Fail(s);
    for (const v1::Node& n : nodes.nodes()) node_names[n.id()] = n.name();
  }
  bool first = true;
  for (const v1::Service& svc : *services) {
    grpc::ClientContext call;
    CommandEnv::Prepare(&call);
    v1::ListTasksRequest req;
    req.set_service(svc.id());
    v1::ListTasksResponse tasks;
    if (grpc::Status s = stub->ListTasks(&call, req, &tasks); !s.ok()) return env.Fail(s);
    *env.out << (first ? "" : "\n") << svc.spec().name() << "\n"
             << RenderTasks(tasks, node_names, OutputFormat::kTable, absl::Now());
    first = false;
  }
  return 0;
}

int Remove(const CommandEnv& env, const std::string& stack) {
  auto stub = v1::Control::NewStub(env.Channel());
  int rc = 0;
  auto services = LoadStack(*stub, env, stack, &rc);
  if (!services) return rc;
  if (services->empty()) {
    *env.err << "nothing found in stack " << stack << "\n";
    return 0;
  }
  for (const v1::Service& s : *services) {
    if (grpc::Status st = DeleteService(*stub, s); !st.ok()) {
      rc = env.Fail(st);
      continue;
    }
    *env.out << "removed " << s.spec().name() << "\n";
  }
  return rc;
}

}  // namespace

void AddStackCommands(CLI::App* app, const CommandEnv& env, std::function<int()>* action) {
  CLI::App* stack = app->add_subcommand("stack", "Deploy and manage compose files (stacks)");
  stack->require_subcommand(1);

  auto deploy_flags = std::make_shared<DeployFlags>();
  CLI::App* deploy = stack->add_subcommand(
      "deploy", "Create or update a stack's services from a compose file (only changed ones)");
  deploy->add_option("-c,--compose-file", deploy_flags->file, "Compose file ('-' for stdin)")
      ->required();
  deploy->add_option("STACK", deploy_flags->stack, "Stack name (prefixes each service name)")
      ->required();
  deploy->add_flag("--prune", deploy_flags->prune, "Remove the stack's services not in the file");
  deploy->add_flag("--dry-run", deploy_flags->dry_run, "Print what would change; change nothing");
  deploy->callback([env, action, deploy_flags] {
    *action = [env, deploy_flags] { return Deploy(env, *deploy_flags); };
  });

  auto ls_quiet = std::make_shared<bool>(false);
  CLI::App* ls = stack->add_subcommand("ls", "List stacks");
  ls->add_flag("-q,--quiet", *ls_quiet, "Only stack names, one per line");
  ls->callback(
      [env, action, ls_quiet] { *action = [env, ls_quiet] { return List(env, *ls_quiet); }; });

  auto ps_stack = std::make_shared<std::string>();
  CLI::App* ps = stack->add_subcommand("ps", "List the tasks of a stack's services");
  ps->add_option("STACK", *ps_stack, "Stack name")->required();
  ps->callback(
      [env, action, ps_stack] { *action = [env, ps_stack] { return Ps(env, *ps_stack); }; });

  auto rm_stack = std::make_shared<std::string>();
  CLI::App* rm = stack->add_subcommand("rm", "Remove every service of a stack");
  rm->add_option("STACK", *rm_stack, "Stack name")->required();
  rm->callback(
      [env, action, rm_stack] { *action = [env, rm_stack] { return Remove(env, *rm_stack); }; });
}

}  // namespace warren
