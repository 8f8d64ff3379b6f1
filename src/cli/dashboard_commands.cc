#include "cli/dashboard_commands.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/spec.h"
#include "common/time_util.h"
#include "ui/login.h"
#include "warren/v1/dashboard.grpc.pb.h"

namespace warren {
namespace {

struct TokenFlags {
  std::string ttl = "1h";
  std::string role = "admin";
  bool quiet = false;
};

int Token(const CommandEnv& env, const TokenFlags& flags) {
  absl::StatusOr<absl::Duration> ttl = ParseDuration(flags.ttl);
  absl::Status bad =
      ttl.ok() ? ui::CheckTokenTtl(*ttl, "--ttl")
               : absl::InvalidArgumentError(absl::StrCat("--ttl: ", ttl.status().message()));
  if (bad.ok()) bad = ui::ParseDashboardRole(flags.role, "--role").status();
  if (!bad.ok()) {
    *env.err << "error: " << bad.message() << "\n";
    return 2;
  }
  auto stub = v1::DashboardAccess::NewStub(env.Channel());
  grpc::ClientContext call;
  CommandEnv::Prepare(&call);
  v1::CreateDashboardTokenRequest req;
  req.set_role(flags.role);
  req.set_ttl_seconds(absl::ToInt64Seconds(*ttl));
  v1::DashboardToken resp;
  if (grpc::Status s = stub->CreateDashboardToken(&call, req, &resp); !s.ok()) return env.Fail(s);
  if (flags.quiet) {
    *env.out << resp.token() << "\n";
    return 0;
  }
  *env.out << "A dashboard login token, role " << resp.role() << ", valid until "
           << absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", FromProtoTime(resp.expires_at()),
                               absl::UTCTimeZone())
           << ":\n\n    " << resp.token() << "\n\n";
  if (resp.url().empty()) {
    *env.out << "The manager serves no dashboard (it runs without --metrics-addr).\n";
  } else {
    *env.out << "Open (your browser must trust the cluster CA, ca.pem of the admin bundle):\n\n"
             << "    " << resp.url() << "#login=" << resp.token() << "\n";
  }
  return 0;
}

}  // namespace

void AddDashboardCommands(CLI::App* app, const CommandEnv& env, std::function<int()>* action) {
  auto flags = std::make_shared<TokenFlags>();
  CLI::App* dashboard = app->add_subcommand("dashboard", "The web dashboard");
  dashboard->require_subcommand(1);
  CLI::App* token = dashboard->add_subcommand(
      "token", "Create a short-lived login token for the dashboard and print its URL");
  token->add_option("--ttl", flags->ttl, "How long the token and its session last (1m..24h)")
      ->capture_default_str();
  token
      ->add_option("--role", flags->role,
                   "admin (may promote, pause, abort...) or read-only (sees everything)")
      ->capture_default_str();
  token->add_flag("-q,--quiet", flags->quiet, "Print only the token");
  token->callback([=] { *action = [=] { return Token(env, *flags); }; });
}

}  // namespace warren
