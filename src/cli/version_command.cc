#include "cli/version_command.h"

#include <memory>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/version.h"
#include "nlohmann/json.hpp"
#include "warren/v1/api.grpc.pb.h"
#include "yaml-cpp/yaml.h"

namespace warren {
namespace {

struct VersionReport {
  v1::VersionInfo client;
  std::optional<v1::VersionInfo> server;
  std::string manager;
};

std::string RenderJson(const VersionReport& r) {
  nlohmann::json j;
  j["client"] = {{"version", r.client.version()}, {"api", r.client.api()}};
  if (r.server) {
    j["server"] = {
        {"version", r.server->version()}, {"api", r.server->api()}, {"address", r.manager}};
  } else {
    j["server"] = nullptr;
  }
  return j.dump(2) + "\n";
}

std::string RenderYaml(const VersionReport& r) {
  YAML::Emitter e;
  e << YAML::BeginMap << YAML::Key << "client" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "version" << YAML::Value << r.client.version();
  e << YAML::Key << "api" << YAML::Value << r.client.api() << YAML::EndMap;
  e << YAML::Key << "server" << YAML::Value;
  if (r.server) {
    e << YAML::BeginMap << YAML::Key << "version" << YAML::Value << r.server->version();
    e << YAML::Key << "api" << YAML::Value << r.server->api();
    e << YAML::Key << "address" << YAML::Value << r.manager << YAML::EndMap;
  } else {
    e << YAML::Null;
  }
  e << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

int Version(const CommandEnv& env, const std::string& output) {
  VersionReport report;
  report.client.set_version(std::string(WarrenVersion()));
  report.client.set_api(v1::VersionInfo::descriptor()->file()->package());
  report.manager = *env.manager;
  auto stub = v1::Control::NewStub(env.Channel());
  grpc::ClientContext call;
  CommandEnv::Prepare(&call);
  v1::VersionInfo server;
  grpc::Status s = stub->GetVersion(&call, {}, &server);
  if (s.ok()) report.server = server;
  if (output == "json") {
    *env.out << RenderJson(report);
  } else if (output == "yaml") {
    *env.out << RenderYaml(report);
  } else {
    *env.out << "Client: warren " << report.client.version() << "\n";
    if (report.server) {
      *env.out << "Server: warren " << server.version() << " (manager " << report.manager
               << ", API " << server.api() << ")\n";
    }
  }
  if (s.ok()) return 0;
  if (s.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
    *env.err << "error: the manager at " << report.manager
             << " does not report its version (it predates `warren version`)\n";
    return 1;
  }
  return env.Fail(s);
}

}  // namespace

void AddVersionCommand(CLI::App* app, const CommandEnv& env, std::function<int()>* action) {
  app->set_version_flag("--version", absl::StrCat("warren ", std::string(WarrenVersion())),
                        "Print this program's version and exit");
  auto output = std::make_shared<std::string>("table");
  CLI::App* version =
      app->add_subcommand("version", "Print the versions of this client and of the manager");
  version->add_option("-o,--output", *output, "Output format: table, json or yaml")
      ->check(CLI::IsMember({"table", "json", "yaml"}))
      ->capture_default_str();
  version->callback(
      [env, action, output] { *action = [env, output] { return Version(env, *output); }; });
}

}  // namespace warren
