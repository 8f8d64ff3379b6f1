#include "cli/node_commands.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/spec.h"
#include "common/task_state.h"
#include "warren/v1/api.grpc.pb.h"

namespace warren {
namespace {

struct AvailabilityFlags {
  std::string name;
  std::string availability;
  bool wait = false;
  std::string timeout = "10m";
};

absl::StatusOr<v1::NodeAvailability> ParseAvailability(const std::string& text) {
  if (text == "active") return v1::NODE_AVAILABILITY_ACTIVE;
  if (text == "pause") return v1::NODE_AVAILABILITY_PAUSE;
  if (text == "drain") return v1::NODE_AVAILABILITY_DRAIN;
  return absl::InvalidArgumentError(
      absl::StrCat("--availability: must be active, pause or drain, got \"", text, "\""));
}

// Live tasks on the node: what a drain still has to move.
absl::StatusOr<int> TasksOn(v1::Control::Stub& stub, const std::string& node) {
  grpc::ClientContext call;
  CommandEnv::Prepare(&call);
  v1::ListTasksRequest req;
  req.set_node(node);
  v1::ListTasksResponse resp;
  if (grpc::Status s = stub.ListTasks(&call, req, &resp); !s.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
  }
  int live = 0;
  for (const v1::Task& t : resp.tasks()) {
    if (!IsTerminal(t.status().state())) live++;
  }
  return live;
}

int SetAvailability(const CommandEnv& env, const AvailabilityFlags& flags) {
  absl::StatusOr<v1::NodeAvailability> availability = ParseAvailability(flags.availability);
  if (!availability.ok()) {
    *env.err << "error: " << availability.status().message() << "\n";
    return 2;
  }
  absl::StatusOr<absl::Duration> timeout = ParseDuration(flags.timeout);
  if (!timeout.ok() || *timeout <= absl::ZeroDuration()) {
    *env.err << "error: --timeout: must be a duration greater than 0, got \"" << flags.timeout
             << "\"\n";
    return 2;
  }
  auto stub = v1::Control::NewStub(env.Channel());
  v1::Node node;
  {
    grpc::ClientContext call;
    CommandEnv::Prepare(&call);
    v1::UpdateNodeRequest req;
    req.set_name_or_id(flags.name);
    req.set_availability(*availability);
    if (grpc::Status s = stub->UpdateNode(&call, req, &node); !s.ok()) return env.Fail(s);
  }
  *env.out << node.name() << ": availability " << NodeAvailabilityName(node.availability());
  if (*availability == v1::NODE_AVAILABILITY_DRAIN) {
    absl::StatusOr<int> left = TasksOn(*stub, node.id());
    if (left.ok()) *env.out << " (" << *left << " tasks to move)";
  }
  *env.out << "\n";
  if (!flags.wait || *availability != v1::NODE_AVAILABILITY_DRAIN) return 0;
  env.out->flush();
  // Each task moves as its service's rolling settings allow: poll until none is left.
  const absl::Time deadline = absl::Now() + *timeout;
  for (;;) {
    absl::StatusOr<int> left = TasksOn(*stub, node.id());
    if (!left.ok()) {
      *env.err << "error: " << left.status().message() << "\n";
      return 1;
    }
    if (*left == 0) {
      *env.out << node.name() << ": drained\n";
      return 0;
    }
    if (absl::Now() >= deadline) {
      *env.err << "error: " << node.name() << ": " << *left << " tasks still on the node after "
               << flags.timeout << " (see `warren service ps`)\n";
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

int Remove(const CommandEnv& env, const std::vector<std::string>& names, bool force) {
  auto stub = v1::Control::NewStub(env.Channel());
  int rc = 0;
  for (const std::string& name : names) {
    grpc::ClientContext call;
    CommandEnv::Prepare(&call);
    v1::RemoveNodeRequest req;
    req.set_name_or_id(name);
    req.set_force(force);
    v1::RemoveNodeResponse resp;
    if (grpc::Status s = stub->RemoveNode(&call, req, &resp); !s.ok()) {
      rc = env.Fail(s);
      if (s.error_code() == grpc::StatusCode::UNAVAILABLE) return rc;
      continue;
    }
    *env.out << name << "\n";
  }
  return rc;
}

// `node drain|cordon|uncordon NODE`: node update --availability with a fixed value.
void AddShorthand(CLI::App* node, const CommandEnv& env, std::function<int()>* action,
                  const std::string& command, const std::string& availability,
                  const std::string& help) {
  auto flags = std::make_shared<AvailabilityFlags>();
  flags->availability = availability;
  CLI::App* cmd = node->add_subcommand(command, help);
  cmd->add_option("NODE", flags->name, "Node name or id")->required();
  if (availability == "drain") {
    cmd->add_flag("-w,--wait", flags->wait, "Return once no task is left on the node");
    cmd->add_option("--timeout", flags->timeout, "With --wait: give up after this long")
        ->capture_default_str();
  }
  cmd->callback(
      [env, action, flags] { *action = [env, flags] { return SetAvailability(env, *flags); }; });
}

}  // namespace

void AddNodeCommands(CLI::App* node, const CommandEnv& env, std::function<int()>* action) {
  auto flags = std::make_shared<AvailabilityFlags>();
  CLI::App* update = node->add_subcommand("update", "Change a node's availability");
  update->add_option("NODE", flags->name, "Node name or id")->required();
  update
      ->add_option("--availability", flags->availability,
                   "active (takes tasks), pause (no new tasks) or drain (no new tasks; its "
                   "tasks move to other nodes)")
      ->required()
      ->check(CLI::IsMember({"active", "pause", "drain"}));
  update->add_flag("-w,--wait", flags->wait, "With drain: return once no task is left on it");
  update->add_option("--timeout", flags->timeout, "With --wait: give up after this long")
      ->capture_default_str();
  update->callback(
      [env, action, flags] { *action = [env, flags] { return SetAvailability(env, *flags); }; });

  AddShorthand(node, env, action, "drain", "drain",
               "Move a node's tasks to other nodes (rolling, health-gated) and give it no new "
               "ones (node update --availability drain)");
  AddShorthand(node, env, action, "cordon", "pause",
               "Give a node no new tasks; its tasks stay (node update --availability pause)");
  AddShorthand(node, env, action, "uncordon", "active",
               "Let a node take tasks again (node update --availability active)");

  auto rm_names = std::make_shared<std::vector<std::string>>();
  auto rm_force = std::make_shared<bool>(false);
  CLI::App* rm = node->add_subcommand(
      "rm", "Remove nodes that are down (their tasks are rescheduled); --force for a ready one");
  rm->add_option("NODE", *rm_names, "Node names or ids")->required();
  rm->add_flag("-f,--force", *rm_force,
               "Remove a node even while its worker runs (the worker registers again unless "
               "stopped)");
  rm->callback([env, action, rm_names, rm_force] {
    *action = [env, rm_names, rm_force] { return Remove(env, *rm_names, *rm_force); };
  });
}

}  // namespace warren
