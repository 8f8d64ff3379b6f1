#include "cli/secret_commands.h"

#include <fstream>
#include <iostream>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cli/output.h"
#include "security/secrets.h"
#include "warren/v1/secrets.grpc.pb.h"

namespace warren {
namespace {

struct SecretFlags {
  std::string name;
  std::string file;
  // "-": the value comes from standard input.
  std::string source;
  std::string output = "table";
  std::vector<std::string> names;
};

// Reads at most one byte past the limit, so a huge input is refused without reading it whole.
absl::StatusOr<std::string> ReadLimited(std::istream& in, const std::string& what) {
  std::string value(security::kMaxSecretSize + 1, '\0');
  in.read(value.data(), static_cast<std::streamsize>(value.size()));
  if (in.bad()) return absl::InvalidArgumentError(absl::StrCat(what, ": cannot be read"));
  value.resize(static_cast<size_t>(in.gcount()));
  if (value.size() > security::kMaxSecretSize) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": a secret is at most ", security::kMaxSecretSize, " bytes (500 KiB)"));
  }
  if (value.empty()) return absl::InvalidArgumentError(absl::StrCat(what, ": is empty"));
  return value;
}

void AddValueFlags(CLI::App* cmd, SecretFlags* flags) {
  cmd->add_option("NAME", flags->name, "Secret name")->required();
  cmd->add_option("-f,--file", flags->file, "Read the value from this file");
  cmd->add_option("SOURCE", flags->source, "- to read the value from standard input");
}

int Write(const CommandEnv& env, const SecretFlags& flags, bool create) {
  if (!flags.source.empty() && flags.source != "-") {
    *env.err << "error: " << flags.source
             << ": unexpected argument (the value comes from -f FILE or -)\n";
    return 2;
  }
  absl::StatusOr<std::string> value = ReadSecretValue(flags.file, flags.source == "-", std::cin);
  if (!value.ok()) {
    *env.err << "error: " << value.status().message() << "\n";
    return 2;
  }
  auto stub = v1::Secrets::NewStub(env.Channel());
  grpc::ClientContext call;
  CommandEnv::Prepare(&call);
  v1::Secret out;
  grpc::Status s;
  if (create) {
    v1::CreateSecretRequest req;
    req.set_name(flags.name);
    req.set_value(std::move(*value));
    s = stub->CreateSecret(&call, req, &out);
  } else {
    v1::UpdateSecretRequest req;
    req.set_secret(flags.name);
    req.set_value(std::move(*value));
    s = stub->UpdateSecret(&call, req, &out);
  }
  if (!s.ok()) return env.Fail(s);
  if (create) {
    *env.out << out.id() << "\n";
  } else {
    *env.out << out.name() << ": version " << out.secret_version() << "\n";
  }
  return 0;
}

std::string SecretsTable(const v1::ListSecretsResponse& resp) {
  const absl::Time now = absl::Now();
  std::vector<std::vector<std::string>> rows;
  for (const v1::Secret& secret : resp.secrets()) {
    rows.push_back({secret.id(), secret.name(), absl::StrCat(secret.secret_version()),
                    absl::StrCat(secret.size()), FormatAge(secret.created_at(), now),
                    FormatAge(secret.updated_at(), now)});
  }
  return RenderTable({"ID", "NAME", "VERSION", "SIZE", "CREATED", "UPDATED"}, rows);
}

// `secret ls` (no name) and `secret inspect NAME`: metadata only, the API sends nothing else.
int Show(const CommandEnv& env, const std::string& name, const std::string& output) {
  absl::StatusOr<OutputFormat> format = ParseOutputFormat(output);
  if (!format.ok()) {
    *env.err << "error: " << format.status().message() << "\n";
    return 2;
  }
  auto stub = v1::Secrets::NewStub(env.Channel());
  grpc::ClientContext call;
  CommandEnv::Prepare(&call);
  if (name.empty()) {
    v1::ListSecretsResponse resp;
    if (grpc::Status s = stub->ListSecrets(&call, v1::ListSecretsRequest(), &resp); !s.ok()) {
      return env.Fail(s);
    }
    *env.out << (*format == OutputFormat::kTable ? SecretsTable(resp)
                                                 : RenderMessage(resp, *format));
    return 0;
  }
  v1::InspectSecretRequest req;
  req.set_secret(name);
  v1::Secret out;
  if (grpc::Status s = stub->InspectSecret(&call, req, &out); !s.ok()) return env.Fail(s);
  *env.out << RenderMessage(out, *format);
  return 0;
}

int Remove(const CommandEnv& env, const std::vector<std::string>& names) {
  auto stub = v1::Secrets::NewStub(env.Channel());
  int rc = 0;
  for (const std::string& name : names) {
    grpc::ClientContext call;
    CommandEnv::Prepare(&call);
    v1::RemoveSecretRequest req;
    req.set_secret(name);
    v1::RemoveSecretResponse resp;
    if (grpc::Status s = stub->RemoveSecret(&call, req, &resp); !s.ok()) {
      rc = env.Fail(s);
      if (s.error_code() == grpc::StatusCode::UNAVAILABLE) return rc;
      continue;
    }
    *env.out << name << "\n";
  }
  return rc;
}

}  // namespace

absl::StatusOr<std::string> ReadSecretValue(const std::string& file, bool from_stdin,
                                            std::istream& in) {
  if (from_stdin && !file.empty()) {
    return absl::InvalidArgumentError("give the value with either -f FILE or -, not both");
  }
  if (from_stdin || file == "-") return ReadLimited(in, "standard input");
  if (file.empty()) {
    return absl::InvalidArgumentError("the value is required: -f FILE, or - for standard input");
  }
  std::ifstream f(file, std::ios::binary);
  if (!f) return absl::InvalidArgumentError(absl::StrCat("-f ", file, ": cannot be opened"));
  return ReadLimited(f, absl::StrCat("-f ", file));
}

void AddSecretCommands(CLI::App* app, const CommandEnv& env, std::function<int()>* action) {
  // Owned by the command tree: the callbacks run after this function returns.
  auto flags = std::make_shared<SecretFlags>();
  CLI::App* secret = app->add_subcommand("secret", "Manage secrets (values kept encrypted)");
  secret->require_subcommand(1);

  CLI::App* create = secret->add_subcommand("create", "Create a secret from a file or stdin");
  AddValueFlags(create, flags.get());
  create->callback([=] { *action = [=] { return Write(env, *flags, /*create=*/true); }; });

  CLI::App* update =
      secret->add_subcommand("update", "Give a secret a new value (its services roll)");
  AddValueFlags(update, flags.get());
  update->callback([=] { *action = [=] { return Write(env, *flags, /*create=*/false); }; });

  CLI::App* ls = secret->add_subcommand("ls", "List secrets (never their values)");
  ls->add_option("-o,--output", flags->output, "table, json or yaml");
  ls->callback([=] { *action = [=] { return Show(env, "", flags->output); }; });

  CLI::App* inspect = secret->add_subcommand("inspect", "Show a secret's metadata");
  inspect->add_option("NAME", flags->name, "Secret name or id")->required();
  inspect->add_option("-o,--output", flags->output, "yaml or json");
  inspect->callback([=] { *action = [=] { return Show(env, flags->name, flags->output); }; });

  CLI::App* rm = secret->add_subcommand("rm", "Remove secrets no service uses");
  rm->add_option("NAME", flags->names, "Secret names or ids")->required();
  rm->callback([=] { *action = [=] { return Remove(env, flags->names); }; });
}

}  // namespace warren
