#include "cli/ingress_commands.h"

#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cli/output.h"
#include "common/time_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "ingress/ingress_spec.h"

namespace warren {
namespace {

struct CreateFlags {
  v1::IngressSpec spec;
  bool tls = false;
  bool acme = false;
  std::string cert_file;
  std::string key_file;
  bool replace = false;
};

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(flag, ": cannot read \"", path, "\""));
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

int Create(const CommandEnv& env, const CreateFlags& flags) {
  v1::IngressSpec spec = flags.spec;
  if (!flags.tls && (flags.acme || !flags.cert_file.empty() || !flags.key_file.empty())) {
    *env.err << "error: --cert, --key and --acme need --tls\n";
    return 2;
  }
  if (flags.acme && (!flags.cert_file.empty() || !flags.key_file.empty())) {
    *env.err << "error: --acme orders the certificate: give no --cert or --key\n";
    return 2;
  }
  if (flags.acme) {
    spec.mutable_tls()->set_mode(v1::INGRESS_TLS_MODE_ACME);
  } else if (flags.tls) {
    if (flags.cert_file.empty() || flags.key_file.empty()) {
      *env.err << "error: --tls needs --cert FILE and --key FILE, or --acme\n";
      return 2;
    }
    auto cert = ReadPem(flags.cert_file, "--cert");
    auto key = ReadPem(flags.key_file, "--key");
    for (const auto* r : {&cert, &key}) {
      if (!r->ok()) {
        *env.err << "error: " << r->status().message() << "\n";
        return 1;
      }
    }
    spec.mutable_tls()->set_mode(v1::INGRESS_TLS_MODE_FILES);
    spec.mutable_tls()->set_certificate_pem(*cert);
    spec.mutable_tls()->set_key_pem(*key);
  }
  auto stub = v1::Ingresses::NewStub(env.Channel());
  grpc::ClientContext call;
  CommandEnv::Prepare(&call);
  v1::CreateIngressRequest req;
  *req.mutable_spec() = spec;
  req.set_replace(flags.replace);
  v1::Ingress resp;
  if (grpc::Status s = stub->CreateIngress(&call, req, &resp); !s.ok()) return env.Fail(s);
  *env.out << resp.id() << "\n";
  return 0;
}

std::string TlsColumn(const v1::Ingress& i) {
  switch (i.spec().tls().mode()) {
    case v1::INGRESS_TLS_MODE_FILES:
      return "files";
    case v1::INGRESS_TLS_MODE_ACME:
      switch (i.acme().state()) {
        case v1::ACME_STATE_VALID:
          return "acme";
        case v1::ACME_STATE_FAILED:
          return "acme (failed)";
        case v1::ACME_STATE_ORDERING:
          return "acme (ordering)";
        default:
          return "acme (pending)";
      }
    default:
      return "-";
  }
}

int List(const CommandEnv& env, bool quiet, const std::string& output) {
  auto format = ParseOutputFormat(output);
  if (!format.ok()) {
    *env.err << "error: " << format.status().message() << "\n";
    return 2;
  }
  auto stub = v1::Ingresses::NewStub(env.Channel());
  grpc::ClientContext call;
  CommandEnv::Prepare(&call);
  v1::ListIngressesResponse resp;
  if (grpc::Status s = stub->ListIngresses(&call, {}, &resp); !s.ok()) return env.Fail(s);
  if (quiet) {
    for (const v1::Ingress& i : resp.ingresses()) *env.out << i.spec().name() << "\n";
    return 0;
  }
  if (*format != OutputFormat::kTable) {
    *env.out << RenderMessage(resp, *format);
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const v1::Ingress& i : resp.ingresses()) {
    rows.push_back({i.spec().name(), i.spec().host(), i.spec().path(), i.spec().service(),
                    i.spec().port() == 0 ? "-" : absl::StrCat(i.spec().port()), TlsColumn(i)});
  }
  *env.out << RenderTable({"NAME", "HOST", "PATH", "SERVICE", "PORT", "TLS"}, rows);
  return 0;
}

int Inspect(const CommandEnv& env, const std::string& name, const std::string& output) {
  auto format = ParseOutputFormat(output.empty() ? "yaml" : output);
  if (!format.ok()) {
    *env.err << "error: " << format.status().message() << "\n";
    return 2;
  }
  auto stub = v1::Ingresses::NewStub(env.Channel());
  grpc::ClientContext call;
  CommandEnv::Prepare(&call);
  v1::GetIngressRequest req;
  req.set_ingress(name);
  v1::Ingress resp;
  if (grpc::Status s = stub->GetIngress(&call, req, &resp); !s.ok()) return env.Fail(s);
  *env.out << RenderMessage(resp, *format);
  return 0;
}

int Renew(const CommandEnv& env, const std::string& name) {
  auto stub = v1::Ingresses::NewStub(env.Channel());
  grpc::ClientContext call;
  CommandEnv::Prepare(&call);
  v1::RenewIngressRequest req;
  req.set_ingress(name);
  v1::Ingress resp;
  if (grpc::Status s = stub->RenewIngress(&call, req, &resp); !s.ok()) return env.Fail(s);
  *env.out << name << ": renewal requested (`warren ingress inspect " << name
           << "` shows acme.state)\n";
  return 0;
}

int Remove(const CommandEnv& env, const std::vector<std::string>& names) {
  auto stub = v1::Ingresses::NewStub(env.Channel());
  int rc = 0;
  for (const std::string& name : names) {
    grpc::ClientContext call;
    CommandEnv::Prepare(&call);
    v1::DeleteIngressRequest req;
    req.set_ingress(name);
    v1::DeleteIngressResponse resp;
    if (grpc::Status s = stub->DeleteIngress(&call, req, &resp); !s.ok()) {
      rc = env.Fail(s);
      continue;
    }
    *env.out << name << "\n";
  }
  return rc;
}

}  // namespace

bool CheckIngressSpecs(const std::vector<v1::IngressSpec>& specs, const CommandEnv& env) {
  bool ok = true;
  for (const v1::IngressSpec& given : specs) {
    v1::IngressSpec spec = given;
    ApplyIngressDefaults(&spec);
    absl::Status s = ValidateIngressSpec(spec);
    if (s.ok() && spec.tls().mode() == v1::INGRESS_TLS_MODE_FILES) {
      s = CheckIngressCertificate(spec.host(), spec.tls().certificate_pem(), spec.tls().key_pem())
              .status();
    }
    if (!s.ok()) {
      *env.err << "error: ingress " << (spec.name().empty() ? "(no name)" : spec.name()) << ": "
               << s.message() << "\n";
      ok = false;
    }
  }
  return ok;
}

int ApplyIngresses(v1::Ingresses::Stub& stub, const std::vector<v1::IngressSpec>& specs,
                   bool dry_run, const CommandEnv& env) {
  if (!CheckIngressSpecs(specs, env)) return 1;
  for (const v1::IngressSpec& given : specs) {
    v1::IngressSpec spec = given;
    ApplyIngressDefaults(&spec);
    grpc::ClientContext call;
    CommandEnv::Prepare(&call);
    v1::GetIngressRequest get;
    get.set_ingress(spec.name());
    v1::Ingress current;
    grpc::Status s = stub.GetIngress(&call, get, &current);
    if (!s.ok() && s.error_code() != grpc::StatusCode::NOT_FOUND) return env.Fail(s);
    const bool exists = s.ok();
    if (exists) {
      // The stored key is never returned: compare the rest.
      v1::IngressSpec stored = current.spec();
      v1::IngressSpec wanted = spec;
      wanted.mutable_tls()->clear_key_pem();
      // An ACME ingress's certificate is the one the managers ordered, not part of the file.
      if (stored.tls().mode() == v1::INGRESS_TLS_MODE_ACME)
        stored.mutable_tls()->clear_certificate_pem();
      if (google::protobuf::util::MessageDifferencer::Equals(stored, wanted)) {
        *env.out << "ingress " << spec.name() << ": unchanged\n";
        continue;
      }
    }
    if (dry_run) {
      *env.out << "ingress " << spec.name() << ": " << (exists ? "replace" : "create") << "\n";
      continue;
    }
    grpc::ClientContext create_call;
    CommandEnv::Prepare(&create_call);
    v1::CreateIngressRequest create;
    *create.mutable_spec() = spec;
    // One commit: the old rule routes until the new one replaces it, and stays on an error.
    create.set_replace(true);
    v1::Ingress created;
    if (grpc::Status c = stub.CreateIngress(&create_call, create, &created); !c.ok()) {
      *env.err << "error: ingress " << spec.name() << ": " << c.error_message() << "\n";
      return 1;
    }
    *env.out << "ingress " << spec.name() << ": " << (exists ? "replaced" : "created") << " ("
             << created.id() << ")\n";
  }
  return 0;
}

void AddIngressCommands(CLI::App* app, const CommandEnv& env, std::function<int()>* action) {
  CLI::App* ingress =
      app->add_subcommand("ingress", "Route host names and paths to services (HTTP, HTTPS)");
  ingress->require_subcommand(1);

  auto create = std::make_shared<CreateFlags>();
  CLI::App* c = ingress->add_subcommand("create", "Create an ingress rule");
  c->add_option("NAME", *create->spec.mutable_name(), "Ingress name")->required();
  c->add_option("--host", *create->spec.mutable_host(),
                "Host name, exact (shop.example.com) or wildcard (*.example.com)")
      ->required();
  c->add_option("--path", *create->spec.mutable_path(), "Path prefix (default /)");
  c->add_option("--service", *create->spec.mutable_service(), "Service the requests go to")
      ->required();
  c->add_option_function<int>(
      "--port", [create](int p) { create->spec.set_port(p); },
      "Port on the service's tasks (default: each task's own port)");
  c->add_flag("--tls", create->tls, "Serve the host over HTTPS (with --cert and --key, or --acme)");
  c->add_flag("--acme", create->acme,
              "With --tls: order the certificate from the managers' --acme-directory (HTTP-01) "
              "and renew it 30 days before it expires");
  c->add_option("--cert", create->cert_file, "PEM certificate (chain) file for --tls");
  c->add_option("--key", create->key_file, "PEM private key file for --tls");
  c->add_flag("--replace", create->replace,
              "Replace the ingress of this name in one commit (same id; a new certificate is "
              "used by new HTTPS connections, open ones go on)");
  c->callback([env, action, create] { *action = [env, create] { return Create(env, *create); }; });

  struct ListFlags {
    bool quiet = false;
    std::string output = "table";
  };
  auto ls_flags = std::make_shared<ListFlags>();
  CLI::App* ls = ingress->add_subcommand("ls", "List ingress rules");
  ls->add_flag("-q,--quiet", ls_flags->quiet, "Only names, one per line");
  ls->add_option("-o,--output", ls_flags->output, "table, json or yaml");
  ls->callback([env, action, ls_flags] {
    *action = [env, ls_flags] { return List(env, ls_flags->quiet, ls_flags->output); };
  });

  auto inspect_name = std::make_shared<std::string>();
  auto inspect_output = std::make_shared<std::string>();
  CLI::App* inspect = ingress->add_subcommand("inspect", "Show an ingress and its certificate");
  inspect->add_option("NAME", *inspect_name, "Ingress name or id")->required();
  inspect->add_option("-o,--output", *inspect_output, "yaml (default) or json");
  inspect->callback([env, action, inspect_name, inspect_output] {
    *action = [env, inspect_name, inspect_output] {
      return Inspect(env, *inspect_name, *inspect_output);
    };
  });

  auto renew_name = std::make_shared<std::string>();
  CLI::App* renew =
      ingress->add_subcommand("renew", "Order a new ACME certificate for an ingress now");
  renew->add_option("NAME", *renew_name, "Ingress name or id")->required();
  renew->callback([env, action, renew_name] {
    *action = [env, renew_name] { return Renew(env, *renew_name); };
  });

  auto rm_names = std::make_shared<std::vector<std::string>>();
  CLI::App* rm = ingress->add_subcommand("rm", "Remove ingress rules");
  rm->add_option("NAME", *rm_names, "Ingress names or ids")->required();
  rm->callback(
      [env, action, rm_names] { *action = [env, rm_names] { return Remove(env, *rm_names); }; });
}

}  // namespace warren
