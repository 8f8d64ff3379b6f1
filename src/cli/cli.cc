#include "cli/cli.h"

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "CLI/CLI.hpp"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "cli/apply.h"
#include "cli/cluster_commands.h"
#include "cli/command_env.h"
#include "cli/command_suggest.h"
#include "cli/completion.h"
#include "cli/daemon_flags.h"
#include "cli/dashboard_commands.h"
#include "cli/ingress_commands.h"
#include "cli/listener_flags.h"
#include "cli/node_commands.h"
#include "cli/output.h"
#include "cli/rollout_follow.h"
#include "cli/secret_commands.h"
#include "cli/service_flags.h"
#include "cli/stack_commands.h"
#include "cli/store_flags.h"
#include "cli/version_command.h"
#include "common/advertise_addr.h"
#include "common/cluster_cidr.h"
#include "common/limits.h"
#include "common/manager_list.h"
#include "common/spec.h"
#include "google/protobuf/util/message_differencer.h"
#include "http/http_server.h"
#include "ingress/ingress_spec.h"
#include "roles.h"
#include "security/client_bundle.h"
#include "spdlog/spdlog.h"
#include "warren/v1/api.grpc.pb.h"
#include "worker/cni_config.h"

namespace warren {

// `worker --network auto` (the default): resolved by FinishWorkerFlags (AutoNodeNetwork).
constexpr char kAutoNetwork[] = "auto";
namespace {

struct Context {
  std::string manager = "127.0.0.1:8080";
  std::string output = "table";
  // -q: ids (or names) only, one per line.
  bool quiet = false;
  std::ostream* out;
  std::ostream* err;
  // The command line as typed (without the program name), the default change cause.
  std::string command_line;
  const FollowEnv* env;

  OutputFormat format() const {
    absl::StatusOr<OutputFormat> f = ParseOutputFormat(output);
    return f.ok() ? *f : OutputFormat::kTable;
  }
  // For the commands defined in their own files.
  CommandEnv env_for_commands() const {
    return CommandEnv{&manager, out, err, &command_line, &credentials, &last_channel};
  }
  // --tls-dir / WARREN_TLS_DIR: the admin bundle of the cluster to talk to.
  std::string tls_dir;
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  // The channel to the manager the command made (CommandEnv::last_channel).
  mutable std::shared_ptr<grpc::Channel> last_channel;
};

// A connection to the manager, and the one place gRPC errors become messages and exit codes.
class Client {
 public:
  explicit Client(const Context& ctx) : ctx_(ctx) {
    stub_ = v1::Control::NewStub(ctx.env_for_commands().Channel());
  }

  v1::Control::Stub& stub() { return *stub_; }

  // Unary calls get a deadline; streams (logs --follow, events) run until interrupted.
  static void Prepare(grpc::ClientContext* call, bool stream = false) {
    call->set_wait_for_ready(false);
    if (!stream) call->set_deadline(absl::ToChronoTime(absl::Now() + kCallTimeout));
  }

  int Fail(const grpc::Status& status) const { return ctx_.env_for_commands().Fail(status); }

 private:
  const Context& ctx_;
  std::unique_ptr<v1::Control::Stub> stub_;
};

int UsageError(const Context& ctx, const absl::Status& status) {
  *ctx.err << "error: " << status.message() << "\n";
  return 2;
}

absl::StatusOr<std::map<std::string, std::string>> ParseLabels(
    const std::vector<std::string>& labels) {
  std::map<std::string, std::string> out;
  for (const std::string& l : labels) {
    auto kv = ParseKeyValue("--label", l);
    if (!kv.ok()) return kv.status();
    out[kv->first] = kv->second;
  }
  return out;
}

// ---- server roles -----------------------------------------------------------------------------

struct ServerFlags {
  ManagerOptions manager;
  WorkerOptions worker;
  std::string node_timeout = "15s";
  // --address-range was given (it may not be with a routed --network).
  bool address_range_given = false;
  // --encrypt, and whether --network was given (an explicit local does not go with it).
  bool encrypt = false;
  bool network_given = false;
  // --cni-subnet was given (it may not be with a routed --network either).
  bool cni_subnet_given = false;
  std::vector<std::string> labels;
  std::string memory;
  std::string dns_ttl = "5s";
  std::string log_max_size = "10M";
  std::string task_dir_retention = "1h";
  // Empty: the cluster's stored lifetime (90 days when it is created).
  std::string cert_validity;
  // --tls (a no-op) and --insecure-plaintext (ManagerOptions::tls = false).
  bool tls_flag = false;
  bool insecure_plaintext = false;
  StoreFlags store;
  ProxyLimitFlags proxy;
};

void AddDnsFlags(CLI::App* cmd, DnsOptions* dns, std::string* ttl) {
  cmd->add_option(
         "--dns-addr", dns->addr,
         "Service DNS address (UDP and TCP); auto: the manager 127.0.0.11:53, a worker "
         "port 53 on the first address of its --address-range (of its subnet with a routed "
         "--network), off with a warning when "
         "unavailable; empty disables")
      ->capture_default_str();
  cmd->add_option("--dns-domain", dns->domain, "Cluster domain: <service>.<domain>")
      ->capture_default_str();
  cmd->add_option("--dns-ttl", *ttl, "TTL of service records")->capture_default_str();
  cmd->add_option("--dns-upstream", dns->upstreams,
                  "Resolver for other names, IP[:PORT] (repeatable; default: /etc/resolv.conf)");
  cmd->add_flag("--dns-refuse-external", dns->refuse_external,
                "Answer REFUSED for names outside the cluster instead of forwarding them");
  cmd->add_flag("--dns-single-answer", dns->single_answer,
                "Answer A queries with only the weighted first record");
}

absl::Status FinishDnsFlags(const std::string& ttl, DnsOptions* dns) {
  absl::StatusOr<absl::Duration> d = ParseDuration(ttl);
  if (!d.ok()) return absl::InvalidArgumentError(absl::StrCat("--dns-ttl: ", d.status().message()));
  if (*d < absl::ZeroDuration() || *d > absl::Hours(24)) {
    return absl::InvalidArgumentError("--dns-ttl: must be between 0s and 24h");
  }
  dns->ttl = *d;
  return absl::OkStatus();
}

void AddIngressFlags(CLI::App* cmd, WorkerOptions* w) {
  cmd->add_option("--ingress-http", w->ingress_http,
                  "HOST:PORT the ingress listens on for HTTP, routing by Host and path to "
                  "services (docs/ingress.md), e.g. :80; empty (the default) disables");
  cmd->add_option("--ingress-https", w->ingress_https,
                  "HOST:PORT the ingress listens on for HTTPS: TLS termination with the "
                  "certificate of the rule SNI names, then as --ingress-http, e.g. :443; empty "
                  "(the default) disables");
}

void AddAdvertiseAddrFlag(CLI::App* cmd, WorkerOptions* w) {
  cmd->add_option("--advertise-addr", w->advertise_addr,
                  "IP address other nodes reach this node at (default: the source address of "
                  "the host's default route, else 127.0.0.1)");
}

void AddManagerFlags(CLI::App* cmd, ServerFlags* f) {
  cmd->add_option("--data-dir", f->manager.data_dir, "Store directory")->capture_default_str();
  cmd->add_option("--api-addr", f->manager.api_addr, "gRPC API address")->capture_default_str();
  // Mutual TLS is the default (ManagerOptions::tls); --tls stays accepted for older scripts.
  CLI::Option* tls = cmd->add_flag("--tls", f->tls_flag,
                                   "Accepted for older scripts: mutual TLS on the API is the "
                                   "default")
                         // --tls=false would read as plaintext and silently be TLS.
                         ->disable_flag_override();
  cmd->add_flag("--insecure-plaintext", f->insecure_plaintext,
                "Serve the API without TLS or authentication (anyone who reaches it controls "
                "the cluster; loopback --api-addr only)")
      ->excludes(tls);
  cmd->add_option("--tls-root", f->manager.tls_root,
                  "Where the admin client bundle goes: DIR/<cluster-id>, DIR/current (default "
                  "~/.warren)");
  cmd->add_option("--cert-validity", f->cert_validity,
                  "Lifetime of the node certificates the CA issues, 1m..43800h (default: the "
                  "cluster's, 90 days when it is created); nodes renew at 50-80 % of it");
  cmd->add_option("--metrics-addr", f->manager.metrics_addr, "Metrics (HTTP) address")
      ->capture_default_str();
  cmd->add_option("--node-timeout", f->node_timeout,
                  "Node is down after this long without a "
                  "heartbeat")
      ->capture_default_str();
  AddDnsFlags(cmd, &f->manager.dns, &f->dns_ttl);
  cmd->add_option("--prometheus-url", f->manager.prometheus_url,
                  "Prometheus for canary/blue-green analysis queries, http://host:port");
  cmd->add_option("--acme-directory", f->manager.acme_directory,
                  "ACME directory URL for `tls: acme` ingresses (https://...; empty: ACME off)");
  cmd->add_option("--acme-email", f->manager.acme_email, "Contact e-mail of the ACME account");
  cmd->add_option("--acme-ca-bundle", f->manager.acme_ca_bundle,
                  "PEM file of CAs trusted for the ACME directory's TLS besides the system's");
  AddStoreFlags(cmd, &f->store, &f->manager.store);
  cmd->add_option("--cluster-cidr", f->manager.cluster_cidr,
                  "IPv4 range of the node subnets, a /24 per node, /8../23 (default: the "
                  "cluster's, 10.99.0.0/16 when it is created; it never changes after)");
  cmd->add_option("--task-history-limit", f->manager.task_history,
                  "Terminal tasks kept per slot for `service ps` (0..100); older ones are removed")
      ->capture_default_str();
  AddReservedFdsFlag(cmd, &f->manager.reserved_fds);
}

absl::Status FinishManagerFlags(ServerFlags* f) {
  absl::StatusOr<absl::Duration> d = ParseDuration(f->node_timeout);
  if (!d.ok())
    return absl::InvalidArgumentError(absl::StrCat("--node-timeout: ", d.status().message()));
  if (*d <= absl::ZeroDuration() || *d > absl::Hours(24)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--node-timeout: must be greater than 0 and at most 24h, got ",
                     warren::FormatDuration(*d)));
  }
  f->manager.node_timeout = *d;
  if (f->insecure_plaintext) f->manager.tls = false;
  if (!f->cert_validity.empty()) {
    absl::StatusOr<absl::Duration> v = ParseDuration(f->cert_validity);
    if (!v.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--cert-validity: ", v.status().message()));
    }
    if (*v < absl::Minutes(1) || *v > absl::Hours(24 * 365 * 5)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--cert-validity: must be between 1m and 43800h (5 years), got ",
                       warren::FormatDuration(*v)));
    }
    f->manager.cert_validity = *v;
  }
  if (absl::Status s = FinishStoreFlags(f->store, &f->manager.store); !s.ok()) return s;
  if (!f->manager.cluster_cidr.empty()) {
    absl::StatusOr<ClusterCidr> cidr =
        ClusterCidr::Parse("--cluster-cidr", f->manager.cluster_cidr);
    if (!cidr.ok()) return cidr.status();
    f->manager.cluster_cidr = cidr->ToString();
  }
  if (f->manager.task_history < 0 || f->manager.task_history > limits::kMaxTaskHistory) {
    return absl::InvalidArgumentError(absl::StrCat("--task-history-limit: must be 0..",
                                                   limits::kMaxTaskHistory, ", got ",
                                                   f->manager.task_history));
  }
  const ManagerOptions& m = f->manager;
  if (m.acme_directory.empty() && (!m.acme_email.empty() || !m.acme_ca_bundle.empty())) {
    return absl::InvalidArgumentError("--acme-email, --acme-ca-bundle: need --acme-directory URL");
  }
  if (!m.acme_directory.empty() && !absl::StartsWith(m.acme_directory, "https://") &&
      !absl::StartsWith(m.acme_directory, "http://")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--acme-directory: must be an https:// (or http://) URL, got \"", m.acme_directory, "\""));
  }
  if (!m.acme_ca_bundle.empty() && !std::ifstream(m.acme_ca_bundle).good()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--acme-ca-bundle: cannot read \"", m.acme_ca_bundle, "\""));
  }
  if (absl::Status s = CheckReservedFds(f->manager.reserved_fds); !s.ok()) return s;
  f->worker.reserved_fds = f->manager.reserved_fds;
  return FinishDnsFlags(f->dns_ttl, &f->manager.dns);
}

void AddRuntimeFlags(CLI::App* cmd, WorkerOptions* w) {
  cmd->add_option("--runtime", w->runtime,
                  "Runtime driver: process (host processes), cri (containers through "
                  "containerd's CRI), or fake (runs nothing; control-plane benchmarks)")
      ->check(CLI::IsMember({"process", "cri", "fake"}))
      ->capture_default_str();
  cmd->add_option("--cri-socket", w->cri.socket, "CRI runtime socket (cri runtime)")
      ->capture_default_str();
  cmd->add_option("--cni-conf-dir", w->cri.cni_conf_dir,
                  "Where the worker writes its CNI network config; the runtime must read CNI "
                  "configs from here (cri runtime)")
      ->capture_default_str();
  cmd->add_option("--cni-network", w->cri.cni_network, "CNI network name (cri runtime)")
      ->capture_default_str();
  cmd->add_option("--cni-bridge", w->cri.cni_bridge, "Bridge device of the pods (cri runtime)")
      ->capture_default_str();
  cmd->add_option("--cni-subnet", w->cri.cni_subnet,
                  "IPv4 CIDR the pod addresses come from (cri runtime)")
      ->capture_default_str();
  cmd->add_option("--registry-auth", w->cri.registry_auth,
                  "Registry credentials for image pulls: a Docker config.json "
                  "({\"auths\": {HOST: {\"auth\": ...}}}) (cri runtime)");
  cmd->add_flag("--no-pod-dns{false}", w->cri.pod_dns,
                "Do not serve service DNS to the pods on their gateway address (cri runtime; "
                "pods then use the host's resolver)");
}

// Disk use of the tasks' files (issue 17 D7): output logs and directories of gone tasks.
void AddTaskFileFlags(CLI::App* cmd, ServerFlags* f) {
  cmd->add_option("--log-max-size", f->log_max_size,
                  "Rotate a task's output log before it grows past this size (4K or more)")
      ->capture_default_str();
  cmd->add_option("--log-max-files", f->worker.log_max_files,
                  "Output log files kept per task, the current one included (1-100)")
      ->capture_default_str();
  cmd->add_option("--task-dir-retention", f->task_dir_retention,
                  "Remove the directory (logs) of a gone task this long after it is gone")
      ->capture_default_str();
  cmd->add_option("--task-dirs-kept", f->worker.task_dirs_kept,
                  "At most this many directories of gone tasks are kept (oldest removed first)")
      ->capture_default_str();
}

absl::Status FinishTaskFileFlags(ServerFlags* f) {
  absl::StatusOr<int64_t> size = ParseByteSize(f->log_max_size);
  if (!size.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--log-max-size: ", size.status().message()));
  }
  if (*size < 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("--log-max-size: must be at least 4K, got ", f->log_max_size));
  }
  f->worker.log_max_size = *size;
  if (f->worker.log_max_files < 1 || f->worker.log_max_files > 100) {
    return absl::InvalidArgumentError(
        absl::StrCat("--log-max-files: must be between 1 and 100, got ", f->worker.log_max_files));
  }
  absl::StatusOr<absl::Duration> retention = ParseDuration(f->task_dir_retention);
  if (!retention.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--task-dir-retention: ", retention.status().message()));
  }
  if (*retention < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--task-dir-retention: must not be negative");
  }
  f->worker.task_dir_retention = *retention;
  if (f->worker.task_dirs_kept < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--task-dirs-kept: must be 0 or more, got ", f->worker.task_dirs_kept));
  }
  return absl::OkStatus();
}

absl::Status FinishWorkerFlags(ServerFlags* f) {
  if (absl::Status s = FinishTaskFileFlags(f); !s.ok()) return s;
  if (!f->worker.advertise_addr.empty()) {
    absl::StatusOr<std::string> addr =
        ParseAdvertiseAddr("--advertise-addr", f->worker.advertise_addr);
    if (!addr.ok()) return addr.status();
    f->worker.advertise_addr = *addr;
  }
  if (f->worker.runtime == "cri") {
    if (auto s = ValidateCniOptions(f->worker.cri); !s.ok()) return s;
  }
  if (f->worker.network == kAutoNetwork) {
    // --encrypt always routes; an --address-range or --cni-subnet of one's own means local.
    if (f->encrypt) {
      f->worker.network = "wireguard";
    } else if (f->address_range_given || f->cni_subnet_given) {
      f->worker.network = "local";
    } else {
      absl::StatusOr<std::vector<std::string>> managers =
          ParseManagerList("--manager", f->worker.manager_addr);
      if (!managers.ok()) return managers.status();
      std::string why;
      const NodeNetworkMode chosen = AutoNodeNetwork(
          *managers,
          f->worker.advertise_addr.empty() ? DetectAdvertiseAddr() : f->worker.advertise_addr,
          geteuid() == 0, &why);
      f->worker.network = std::string(NodeNetworkModeName(chosen));
      spdlog::info("--network auto: {} ({})", f->worker.network, why);
    }
  }
  absl::StatusOr<NodeNetworkMode> network = ParseNodeNetworkMode("--network", f->worker.network);
  if (!network.ok()) return network.status();
  if (f->encrypt) {
    // WireGuard carries the node subnets itself: it takes the place of the overlay.
    if (f->network_given && !IsRouted(*network)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--encrypt: not with --network ", f->worker.network,
                       " (tasks of network local reach this host only; --encrypt routes the "
                       "node's subnet through WireGuard tunnels, i.e. --network wireguard)"));
    }
    network = NodeNetworkMode::kWireguard;
    f->worker.network = std::string(NodeNetworkModeName(*network));
  }
  if (IsRouted(*network)) {
    if (f->address_range_given) {
      return absl::InvalidArgumentError(
          absl::StrCat("--address-range: not with --network ", f->worker.network,
                       " (task addresses come from the node's subnet of the cluster CIDR)"));
    }
    if (f->cni_subnet_given) {
      return absl::InvalidArgumentError(
          absl::StrCat("--cni-subnet: not with --network ", f->worker.network,
                       " (the pods' addresses come from the node's subnet of the cluster CIDR)"));
    }
  }
  auto labels = ParseLabels(f->labels);
  if (!labels.ok()) return labels.status();
  f->worker.labels = *labels;
  if (!f->memory.empty()) {
    absl::StatusOr<int64_t> bytes = ParseByteSize(f->memory);
    if (!bytes.ok())
      return absl::InvalidArgumentError(absl::StrCat("--memory: ", bytes.status().message()));
    f->worker.memory_bytes = *bytes;
  }
  if (!std::isfinite(f->worker.cpus) || f->worker.cpus < 0 || f->worker.cpus > limits::kMaxCpus) {
    return absl::InvalidArgumentError(
        absl::StrCat("--cpus: must be 0 (detect)..", limits::kMaxCpus, ", got ", f->worker.cpus));
  }
  if (absl::Status s = CheckReservedFds(f->worker.reserved_fds); !s.ok()) return s;
  for (const auto& [flag, value, example] :
       {std::tuple{"--ingress-http", &f->worker.ingress_http, ":80"},
        std::tuple{"--ingress-https", &f->worker.ingress_https, ":443"}}) {
    if (value->empty()) continue;
    if (auto hp = SplitHostPort(*value); !hp.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          flag, ": ", hp.status().message(), " (HOST:PORT, e.g. ", example, "; empty disables)"));
    }
  }
  return FinishProxyLimitFlags(f->proxy, &f->worker.proxy);
}

// ---- client commands ---------------------------------------------------------------------------

int ServiceCreate(Context& ctx, CLI::App& cmd, CreateFlags& flags) {
  RecordGivenFlags(cmd, &flags.t);
  RecordGivenFlags(cmd, &flags.u);
  absl::StatusOr<v1::ServiceSpec> spec = SpecFromCreateFlags(flags);
  if (!spec.ok()) return UsageError(ctx, spec.status());
  Client client(ctx);
  grpc::ClientContext call;
  Client::Prepare(&call);
  v1::CreateServiceRequest req;
  *req.mutable_spec() = *spec;
  v1::Service svc;
  grpc::Status s = client.stub().CreateService(&call, req, &svc);
  if (!s.ok()) return client.Fail(s);
  *ctx.out << svc.id() << "\n";
  return 0;
}

grpc::Status GetService(Client& client, const std::string& name, v1::Service* svc) {
  grpc::ClientContext call;
  Client::Prepare(&call);
  v1::GetServiceRequest req;
  req.set_name_or_id(name);
  return client.stub().GetService(&call, req, svc);
}

// The id of the service's latest deployment, "" when it has none (or it cannot be read: the
// follow loop then takes the first deployment it sees).
std::string LatestDeploymentId(Client& client, const std::string& service) {
  grpc::ClientContext call;
  Client::Prepare(&call);
  v1::RolloutRequest req;
  req.set_name_or_id(service);
  v1::Deployment d;
  if (!client.stub().GetRollout(&call, req, &d).ok()) return "";
  return d.id();
}

int Follow(Context& ctx, Client& client, const std::string& service, std::string previous_id,
           const v1::UpdateConfig& config, absl::Time since, bool rollback = false,
           bool until_end = false) {
  FollowRequest req;
  req.service = service;
  req.rollback = rollback;
  req.until_end = until_end;
  req.previous_deployment_id = std::move(previous_id);
  if (config.has_progress_deadline()) {
    req.progress_deadline = RolloutQuietLimit(config.strategy(), config);
  }
  req.events_since = since;
  return FollowRollout(client.stub(), req, *ctx.env, *ctx.out, *ctx.err);
}

int ServiceUpdate(Context& ctx, CLI::App& cmd, UpdateFlags& flags) {
  RecordGivenFlags(cmd, &flags.t);
  RecordGivenFlags(cmd, &flags.u);
  std::set<std::string> changes = flags.t.given;
  changes.erase("--message");
  changes.erase("--detach");
  changes.erase("--force");
  // `service restart` and `update --force` alone: the same template, every task replaced.
  const bool removes = !flags.env_rm.empty() || !flags.secret_rm.empty();
  const bool restart_only = flags.force && changes.empty() && !removes;
  if (changes.empty() && !removes && !flags.force) {
    *ctx.err << "error: nothing to change: give at least one flag (see --help)\n";
    return 2;
  }
  Client client(ctx);
  v1::Service svc;
  if (grpc::Status s = GetService(client, flags.name, &svc); !s.ok()) return client.Fail(s);
  v1::ServiceSpec spec = svc.spec();
  if (absl::Status s = ApplyUpdateFlags(flags, &spec); !s.ok()) return UsageError(ctx, s);
  v1::ServiceSpec current = svc.spec();
  ApplySpecDefaults(&current);
  if (google::protobuf::util::MessageDifferencer::Equals(current, spec)) {
    *ctx.out << spec.name() << ": unchanged\n";
    return 0;
  }
  const absl::Time started = ctx.env->now();
  const std::string previous = flags.detach ? "" : LatestDeploymentId(client, svc.id());
  grpc::ClientContext call;
  Client::Prepare(&call);
  v1::UpdateServiceRequest req;
  *req.mutable_spec() = spec;
  req.set_expected_version(svc.version());
  req.set_change_cause(flags.message.empty() ? ctx.command_line : flags.message);
  v1::Service updated;
  if (grpc::Status s = client.stub().UpdateService(&call, req, &updated); !s.ok()) {
    return client.Fail(s);
  }
  *ctx.out << updated.spec().name() << (restart_only ? ": restarting every task" : ": updated")
           << " (revision " << updated.revision() << ")\n";
  // A change of replicas (or of the rollout settings) alone makes no revision: nothing rolls.
  if (flags.detach || updated.revision() == svc.revision()) return 0;
  ctx.out->flush();
  return Follow(ctx, client, updated.spec().name(), previous, updated.spec().update_config(),
                started);
}

int RolloutStatus(Context& ctx, const std::string& name, bool watch) {
  Client client(ctx);
  if (watch) {
    v1::Service svc;
    if (grpc::Status s = GetService(client, name, &svc); !s.ok()) return client.Fail(s);
    v1::ServiceSpec spec = svc.spec();
    ApplySpecDefaults(&spec);
    return Follow(ctx, client, spec.name(), "", spec.update_config(), ctx.env->now(),
                  /*rollback=*/false, /*until_end=*/true);
  }
  grpc::ClientContext call;
  Client::Prepare(&call);
  v1::RolloutRequest req;
  req.set_name_or_id(name);
  v1::Deployment d;
  if (grpc::Status s = client.stub().GetRollout(&call, req, &d); !s.ok()) return client.Fail(s);
  *ctx.out << RenderRolloutStatus(d, ctx.format(), ctx.env->now());
  return 0;
}

int PauseOrResume(Context& ctx, const std::string& name, bool pause) {
  Client client(ctx);
  grpc::ClientContext call;
  Client::Prepare(&call);
  v1::RolloutRequest req;
  req.set_name_or_id(name);
  v1::Deployment d;
  grpc::Status s = pause ? client.stub().PauseRollout(&call, req, &d)
                         : client.stub().ResumeRollout(&call, req, &d);
  if (!s.ok()) return client.Fail(s);
  *ctx.out << (d.service_name().empty() ? name : d.service_name()) << ": "
           << (d.rollback() ? "rollback" : "rollout") << " to revision " << d.to_revision() << " "
           << (pause ? "paused" : "resumed") << " (" << RenderProgress(d) << ")\n";
  return 0;
}

int Promote(Context& ctx, const std::string& name, bool full) {
  Client client(ctx);
  grpc::ClientContext call;
  Client::Prepare(&call);
  v1::PromoteRequest req;
  req.set_name_or_id(name);
  req.set_full(full);
  v1::Deployment d;
  if (grpc::Status s = client.stub().PromoteRollout(&call, req, &d); !s.ok()) {
    return client.Fail(s);
  }
  *ctx.out << DescribePromotion(d, name);
  return 0;
}

int Abort(Context& ctx, const std::string& name) {
  Client client(ctx);
  grpc::ClientContext call;
  Client::Prepare(&call);
  v1::RolloutRequest req;
  req.set_name_or_id(name);
  v1::Deployment d;
  if (grpc::Status s = client.stub().AbortRollout(&call, req, &d); !s.ok()) return client.Fail(s);
  *ctx.out << absl::StrFormat(
      "%s: rollout to revision %d aborted; traffic back on revision %d (%s)\n",
      d.service_name().empty() ? name : d.service_name(), d.to_revision(), d.from_revision(),
      PhaseName(d.phase()));
  return 0;
}

int CanaryStatus(Context& ctx, const std::string& name) {
  Client client(ctx);
  v1::Deployment d;
  {
    grpc::ClientContext call;
    Client::Prepare(&call);
    v1::RolloutRequest req;
    req.set_name_or_id(name);
    if (grpc::Status s = client.stub().GetRollout(&call, req, &d); !s.ok()) return client.Fail(s);
  }
  // The weights the proxies use; the deployment's own fields stand in when unavailable.
  v1::ServiceEndpoints endpoints;
  bool have_endpoints = false;
  {
    grpc::ClientContext call;
    Client::Prepare(&call);
    v1::GetEndpointsRequest req;
    req.set_name_or_id(name);
    have_endpoints = client.stub().GetEndpoints(&call, req, &endpoints).ok();
  }
  v1::ListTasksResponse tasks;
  {
    grpc::ClientContext call;
    Client::Prepare(&call);
    v1::ListTasksRequest req;
    req.set_service(d.service_id().empty() ? name : d.service_id());
    if (grpc::Status s = client.stub().ListTasks(&call, req, &tasks); !s.ok()) {
      return client.Fail(s);
    }
  }
  *ctx.out << RenderCanaryStatus(
      d, have_endpoints ? &endpoints : nullptr,
      CountReplicasByRevision({tasks.tasks().begin(), tasks.tasks().end()}), ctx.format(),
      ctx.env->now());
  return 0;
}

struct RollbackFlags {
  std::string name;
  int64_t to_revision = 0;
  bool detach = false;
  std::string message;
};

int ServiceRollback(Context& ctx, const RollbackFlags& flags) {
  if (flags.to_revision < 0) {
    *ctx.err << "error: --to-revision: must be 1 or more, got " << flags.to_revision << "\n";
    return 2;
  }
  Client client(ctx);
  const absl::Time started = ctx.env->now();
  const std::string previous = flags.detach ? "" : LatestDeploymentId(client, flags.name);
  grpc::ClientContext call;
  Client::Prepare(&call);
  v1::RollbackServiceRequest req;
  req.set_name_or_id(flags.name);
  req.set_to_revision(flags.to_revision);
  req.set_change_cause(flags.message.empty() ? ctx.command_line : flags.message);
  v1::Service svc;
  if (grpc::Status s = client.stub().RollbackService(&call, req, &svc); !s.ok()) {
    return client.Fail(s);
  }
  *ctx.out << svc.spec().name() << ": rolling back (revision " << svc.revision() << ")\n";
  if (flags.detach) return 0;
  ctx.out->flush();
  return Follow(ctx, client, svc.spec().name(), previous, EffectiveRollbackConfig(svc.spec()),
                started, /*rollback=*/true);
}

int ServiceHistory(Context& ctx, const std::string& name) {
  Client client(ctx);
  v1::Service svc;
  if (grpc::Status s = GetService(client, name, &svc); !s.ok()) return client.Fail(s);
  grpc::ClientContext call;
  Client::Prepare(&call);
  v1::ListRevisionsRequest req;
  req.set_name_or_id(svc.id());
  v1::ListRevisionsResponse resp;
  if (grpc::Status s = client.stub().ListRevisions(&call, req, &resp); !s.ok()) {
    return client.Fail(s);
  }
  *ctx.out << RenderHistory(resp, svc.revision(), ctx.format(), ctx.env->now());
  return 0;
}

int ServiceEndpoints(Context& ctx, const std::string& name) {
  Client client(ctx);
  grpc::ClientContext call;
  Client::Prepare(&call);
  v1::GetEndpointsRequest req;
  req.set_name_or_id(name);
  v1::ServiceEndpoints resp;
  if (grpc::Status s = client.stub().GetEndpoints(&call, req, &resp); !s.ok()) {
    return client.Fail(s);
  }
  *ctx.out << RenderEndpoints(resp, ctx.format());
  return 0;
}

int ServiceList(Context& ctx) {
  Client client(ctx);
  // Paged: one answer for 10,000 services would pass gRPC's message limit. The manager counts
  // the running tasks, so no task list crosses the wire.
  v1::ListServicesResponse services;
  v1::ListServicesRequest req;
  req.set_page_size(1000);
  req.set_with_running_counts(ctx.format() == OutputFormat::kTable && !ctx.quiet);
  do {
    grpc::ClientContext call;
    Client::Prepare(&call);
    v1::ListServicesResponse page;
    if (grpc::Status s = client.stub().ListServices(&call, req, &page); !s.ok()) {
      return client.Fail(s);
    }
    for (auto& s : *page.mutable_services()) *services.add_services() = std::move(s);
    services.mutable_running_tasks()->insert(page.running_tasks().begin(),
                                             page.running_tasks().end());
    req.set_page_token(page.next_page_token());
  } while (!req.page_token().empty());
  if (ctx.quiet) {
    for (const v1::Service& s : services.services()) *ctx.out << s.id() << "\n";
    return 0;
  }
  std::map<std::string, int> running(services.running_tasks().begin(),
                                     services.running_tasks().end());
  services.clear_running_tasks();
  if (req.with_running_counts() && running.empty() && services.services_size() > 0) {
    // A manager from before the counts (it fills one per service, 0 included): count here.
    grpc::ClientContext call;
    Client::Prepare(&call);
    v1::ListTasksResponse tasks;
    if (grpc::Status s = client.stub().ListTasks(&call, {}, &tasks); !s.ok()) return client.Fail(s);
    running = CountRunning({tasks.tasks().begin(), tasks.tasks().end()});
  }
  *ctx.out << RenderServices(services, running, ctx.format(), absl::Now());
  return 0;
}

int ServiceInspect(Context& ctx, const std::string& name, int64_t revision) {
  Client client(ctx);
  if (revision != 0) {
    grpc::ClientContext call;
    Client::Prepare(&call);
    v1::GetRevisionRequest req;
    req.set_name_or_id(name);
    req.set_number(revision);
    v1::Revision rev;
    if (grpc::Status s = client.stub().GetRevision(&call, req, &rev); !s.ok()) {
      return client.Fail(s);
    }
    *ctx.out << RenderMessage(rev, ctx.format());
    return 0;
  }
  v1::Service svc;
  if (grpc::Status s = GetService(client, name, &svc); !s.ok()) return client.Fail(s);
  *ctx.out << RenderMessage(svc, ctx.format());
  return 0;
}

int ServicePs(Context& ctx, const std::string& name, bool no_trunc) {
  Client client(ctx);
  v1::Service svc;
  if (grpc::Status s = GetService(client, name, &svc); !s.ok()) return client.Fail(s);
  v1::ListTasksResponse tasks;
  {
    grpc::ClientContext call;
    Client::Prepare(&call);
    v1::ListTasksRequest req;
    req.set_service(svc.id());
    if (grpc::Status s = client.stub().ListTasks(&call, req, &tasks); !s.ok()) {
      return client.Fail(s);
    }
  }
  if (ctx.quiet) {
    *ctx.out << RenderTaskIds(tasks);
    return 0;
  }
  std::map<std::string, std::string> node_names;
  if (ctx.format() == OutputFormat::kTable) {
    grpc::ClientContext call;
    Client::Prepare(&call);
    v1::ListNodesResponse nodes;
    if (grpc::Status s = client.stub().ListNodes(&call, {}, &nodes); !s.ok()) {
      return client.Fail(s);
    }
    for (const v1::Node& n : nodes.nodes()) node_names[n.id()] = n.name();
  }
  *ctx.out << RenderTasks(tasks, node_names, ctx.format(), absl::Now(), no_trunc);
  // Not a task's failure, but why the service does not answer on a node.
  if (ctx.format() == OutputFormat::kTable) {
    for (const v1::PublishError& e : svc.publish_errors()) {
      *ctx.err << "warning: port " << e.port() << " is not published on node " << e.node_name()
               << ": " << e.error() << " (" << e.attempts() << " attempts; retrying)\n";
    }
  }
  return 0;
}

int ServiceScale(Context& ctx, const std::vector<std::string>& items) {
  std::vector<std::pair<std::string, int>> scales;
  for (const std::string& item : items) {
    size_t eq = item.rfind('=');
    int n;
    if (eq == std::string::npos || eq == 0 || !absl::SimpleAtoi(item.substr(eq + 1), &n) || n < 0) {
      *ctx.err << "error: expected NAME=REPLICAS with REPLICAS 0 or more, got \"" << item << "\"\n";
      return 2;
    }
    if (absl::Status s = ValidateReplicas(n); !s.ok()) {
      *ctx.err << "error: " << item << ": " << s.message() << "\n";
      return 2;
    }
    scales.emplace_back(item.substr(0, eq), n);
  }
  Client client(ctx);
  for (const auto& [name, n] : scales) {
    grpc::ClientContext call;
    Client::Prepare(&call);
    v1::ScaleServiceRequest req;
    req.set_name_or_id(name);
    req.set_replicas(n);
    v1::Service svc;
    if (grpc::Status s = client.stub().ScaleService(&call, req, &svc); !s.ok()) {
      return client.Fail(s);
    }
    *ctx.out << svc.spec().name() << " scaled to " << svc.spec().replicas() << "\n";
  }
  return 0;
}

int ServiceRemove(Context& ctx, const std::vector<std::string>& names) {
  Client client(ctx);
  int rc = 0;
  for (const std::string& name : names) {
    grpc::ClientContext call;
    Client::Prepare(&call);
    v1::DeleteServiceRequest req;
    req.set_name_or_id(name);
    v1::DeleteServiceResponse resp;
    grpc::Status s = client.stub().DeleteService(&call, req, &resp);
    if (!s.ok()) {
      rc = client.Fail(s);
      // Without the manager nothing else can succeed either.
      if (s.error_code() == grpc::StatusCode::UNAVAILABLE) return rc;
      continue;
    }
    *ctx.out << name << "\n";
  }
  return rc;
}

int ServiceLogs(Context& ctx, const std::string& name, bool follow, int tail) {
  if (tail < 0 || tail > limits::kMaxLogTail) {
    *ctx.err << "error: --tail: must be 0 (all lines).." << limits::kMaxLogTail << ", got " << tail
             << "\n";
    return 2;
  }
  Client client(ctx);
  v1::Service svc;
  if (grpc::Status s = GetService(client, name, &svc); !s.ok()) return client.Fail(s);
  grpc::ClientContext call;
  Client::Prepare(&call, /*stream=*/follow);
  if (!follow) call.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  v1::ServiceLogsRequest req;
  req.set_name_or_id(svc.id());
  req.set_follow(follow);
  req.set_tail(tail);
  auto reader = client.stub().ServiceLogs(&call, req);
  v1::LogLine line;
  while (reader->Read(&line)) {
    *ctx.out << TaskLabel(svc.spec().name(), line.slot(), line.task_id()) << " | " << line.line();
    if (line.line().empty() || line.line().back() != '\n') *ctx.out << "\n";
    ctx.out->flush();
  }
  grpc::Status s = reader->Finish();
  return s.ok() ? 0 : client.Fail(s);
}

int NodeList(Context& ctx) {
  Client client(ctx);
  grpc::ClientContext call;
  Client::Prepare(&call);
  v1::ListNodesResponse nodes;
  if (grpc::Status s = client.stub().ListNodes(&call, {}, &nodes); !s.ok()) return client.Fail(s);
  if (ctx.quiet) {
    for (const v1::Node& n : nodes.nodes()) *ctx.out << n.id() << "\n";
    return 0;
  }
  *ctx.out << RenderNodes(nodes, ctx.format(), absl::Now());
  if (ctx.format() == OutputFormat::kTable && !nodes.managers_error().empty()) {
    *ctx.err << "warning: the managers cannot be listed: " << nodes.managers_error() << "\n";
  }
  return 0;
}

int NodeInspect(Context& ctx, const std::string& name) {
  Client client(ctx);
  grpc::ClientContext call;
  Client::Prepare(&call);
  v1::GetNodeRequest req;
  req.set_name_or_id(name);
  v1::Node node;
  if (grpc::Status s = client.stub().GetNode(&call, req, &node); !s.ok()) return client.Fail(s);
  *ctx.out << RenderMessage(node, ctx.format());
  return 0;
}

int Events(Context& ctx, const std::string& service, const std::string& since_text) {
  uint64_t since = 0;
  // Read by hand: CLI11 wraps "-5" around to a huge unsigned id, which silently matches nothing.
  if (!since_text.empty() && (since_text.find_first_not_of("0123456789") != std::string::npos ||
                              !absl::SimpleAtoi(since_text, &since))) {
    *ctx.err << "error: --since: must be an event id (a whole number, 0 or more, as `warren "
                "events` shows them), got \""
             << since_text << "\"\n";
    return 2;
  }
  Client client(ctx);
  grpc::ClientContext call;
  Client::Prepare(&call, /*stream=*/true);
  v1::WatchEventsRequest req;
  req.set_service(service);
  req.set_since_id(since);
  auto reader = client.stub().WatchEvents(&call, req);
  v1::Event event;
  while (reader->Read(&event)) {
    *ctx.out << RenderEvent(event, ctx.format());
    ctx.out->flush();
  }
  grpc::Status s = reader->Finish();
  return s.ok() ? 0 : client.Fail(s);
}

absl::StatusOr<std::string> ReadInput(const std::string& path) {
  std::stringstream buf;
  if (path == "-") {
    buf << std::cin.rdbuf();
    return buf.str();
  }
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrFormat("-f: cannot read \"%s\"", path));
  buf << in.rdbuf();
  return buf.str();
}

int Apply(Context& ctx, const std::string& file, bool dry_run) {
  absl::StatusOr<std::string> text = ReadInput(file);
  if (!text.ok()) {
    *ctx.err << "error: " << text.status().message() << "\n";
    return 1;
  }
  const std::string base_dir =
      file == "-" ? "." : std::filesystem::path(file).parent_path().string();
  absl::StatusOr<SplitYaml> split = SplitIngressYaml(*text, base_dir.empty() ? "." : base_dir);
  if (!split.ok()) {
    *ctx.err << "error: " << file << ": " << split.status().message() << "\n";
    return 1;
  }
  absl::StatusOr<std::vector<v1::ServiceSpec>> specs = ParseServicesYaml(split->services_yaml);
  if (!specs.ok()) {
    *ctx.err << "error: " << file << ": " << specs.status().message() << "\n";
    return 1;
  }
  if (specs->empty() && split->ingresses.empty()) {
    *ctx.err << "error: " << file << ": no services\n";
    return 1;
  }
  Client client(ctx);
  if (specs->empty()) {
    auto stub = v1::Ingresses::NewStub(ctx.env_for_commands().Channel());
    return ApplyIngresses(*stub, split->ingresses, dry_run, ctx.env_for_commands());
  }
  ApplyRequest request;
  request.specs = std::move(*specs);
  request.describe = [&file](size_t i, const v1::ServiceSpec& spec) {
    return absl::StrCat(file, ": service ", i + 1, " (",
                        spec.name().empty() ? "no name" : spec.name(), ")");
  };
  request.source = file;
  request.change_cause = absl::StrCat("warren apply -f ", file);
  request.dry_run = dry_run;
  // Nothing is applied unless every ingress is valid too.
  if (!CheckIngressSpecs(split->ingresses, ctx.env_for_commands())) return 1;
  int rc = ApplyServices(client.stub(), request, ctx.env_for_commands());
  if (rc != 0 || split->ingresses.empty()) return rc;
  // After the services: an ingress needs its service to exist.
  auto stub = v1::Ingresses::NewStub(ctx.env_for_commands().Channel());
  return ApplyIngresses(*stub, split->ingresses, dry_run, ctx.env_for_commands());
}

std::string QuoteForDisplay(const std::string& arg) {
  if (!arg.empty() && arg.find_first_of(" \t\"'$\\") == std::string::npos) return arg;
  std::string out = "'";
  for (char c : arg) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

void AddQuietFlag(CLI::App* cmd, Context* ctx, const std::string& what) {
  cmd->add_flag("-q,--quiet", ctx->quiet, absl::StrCat("Only ", what, ", one per line"));
}

// CLI11 takes an argument starting with '-' for an option; when that leaves a required
// positional empty ("service create -web"), it reports only the missing NAME. Name the
// argument that was taken for an unknown option instead.
std::string DescribeParseError(const CLI::App& app, const CLI::ParseError& e) {
  if (e.get_name() != "RequiredError") return e.what();
  for (const std::string& arg : app.remaining(/*recurse=*/true)) {
    if (arg.size() > 1 && arg[0] == '-') {
      return absl::StrCat("\"", arg,
                          "\" is not an option of this command, and a value cannot start with "
                          "'-' (",
                          e.what(), ")");
    }
  }
  return e.what();
}

void AddOutputFlag(CLI::App* cmd, Context* ctx) {
  cmd->add_option("-o,--output", ctx->output, "Output format: table, json or yaml")
      ->check(CLI::IsMember({"table", "json", "yaml"}))
      ->capture_default_str();
}

}  // namespace

int RunCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  FollowEnv env = FollowEnv::Real();
  env.tty = false;  // the streams may be anything
  return RunCli(args, out, err, env);
}

int RunCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
           const FollowEnv& env) {
  Context ctx;
  ctx.out = &out;
  ctx.err = &err;
  ctx.env = &env;
  std::vector<std::string> shown;
  for (size_t i = 0; i < args.size(); ++i)
    shown.push_back(QuoteForDisplay(i == 0 ? "warren" : args[i]));
  ctx.command_line = absl::StrJoin(shown, " ");

  CLI::App app{"Warren: a small container orchestrator", "warren"};
  app.require_subcommand(1);
  // Lets the global --manager follow a subcommand: `warren service ls --manager host:8080`.
  app.fallthrough();
  app.add_option("--manager", ctx.manager,
                 "Manager API address, or several managers on etcd as a comma list (env "
                 "WARREN_MANAGER)")
      ->envname("WARREN_MANAGER")
      ->capture_default_str();
  app.add_option("--tls-dir", ctx.tls_dir,
                 "Admin client bundle of the cluster (env WARREN_TLS_DIR; default "
                 "~/.warren/current when it exists, else plaintext, for an "
                 "--insecure-plaintext manager)")
      ->envname("WARREN_TLS_DIR");

  std::function<int()> action;

  // cluster init
  ServerFlags init_flags;
  init_flags.worker.data_dir.clear();
  CLI::App* cluster =
      app.add_subcommand("cluster", "Single-node cluster; status, backup and restore of the store");
  cluster->require_subcommand(1);
  AddClusterAdminCommands(cluster, ctx.env_for_commands(), &action);
  CLI::App* init = cluster->add_subcommand("init", "Start a manager and a worker in one process");
  AddManagerFlags(init, &init_flags);
  AddLogFlags(init);
  init->add_option("--node-name", init_flags.worker.node_name, "Node name (default: host name)");
  init->add_option("--address-range", init_flags.worker.address_range,
                   "Loopback CIDR for task addresses")
      ->capture_default_str();
  AddAdvertiseAddrFlag(init, &init_flags.worker);
  init->add_option("--label", init_flags.labels, "Node label K=V (repeatable)");
  AddRuntimeFlags(init, &init_flags.worker);
  AddTaskFileFlags(init, &init_flags);
  AddProxyLimitFlags(init, &init_flags.proxy);
  AddIngressFlags(init, &init_flags.worker);
  init->add_flag("--stop-tasks-on-exit", init_flags.worker.stop_tasks_on_exit,
                 "Stop every task on exit (default: leave them running for the next start to "
                 "adopt)");
  init->callback([&] {
    action = [&] {
      if (absl::Status s = FinishManagerFlags(&init_flags); !s.ok()) return UsageError(ctx, s);
      if (absl::Status s = FinishWorkerFlags(&init_flags); !s.ok()) return UsageError(ctx, s);
      init_flags.worker.manager_addr = init_flags.manager.api_addr;
      return RunHybrid(init_flags.manager, init_flags.worker);
    };
  });

  // manager
  ServerFlags manager_flags;
  CLI::App* manager = app.add_subcommand("manager", "Run the manager (API, store, controllers)");
  AddManagerFlags(manager, &manager_flags);
  AddLogFlags(manager);
  manager->callback([&] {
    action = [&] {
      if (absl::Status s = FinishManagerFlags(&manager_flags); !s.ok()) return UsageError(ctx, s);
      return RunManager(manager_flags.manager);
    };
  });

  // worker
  ServerFlags worker_flags;
  worker_flags.worker.data_dir = "./warren-worker-data";
  CLI::App* worker = app.add_subcommand("worker", "Run a worker that joins --manager");
  worker->add_option("--node-name", worker_flags.worker.node_name,
                     "Node name (default: host name)");
  worker->add_option("--data-dir", worker_flags.worker.data_dir, "Task logs and state")
      ->capture_default_str();
  worker->add_option("--agent-addr", worker_flags.worker.agent_addr, "Worker gRPC address")
      ->capture_default_str();
  CLI::Option* worker_range = worker
                                  ->add_option("--address-range", worker_flags.worker.address_range,
                                               "Loopback CIDR for task addresses (--network local)")
                                  ->capture_default_str();
  AddAdvertiseAddrFlag(worker, &worker_flags.worker);
  worker_flags.worker.network = kAutoNetwork;
  CLI::Option* worker_network =
      worker
          ->add_option(
              "--network", worker_flags.worker.network,
              "How task addresses reach other nodes: local (a loopback --address-range, "
              "this host only), host-gw (the node's subnet, routed through each node's "
              "advertise address; nodes on one L2 network), vxlan (the node's subnet "
              "over a VXLAN overlay, UDP 4789) or wireguard (the same over encrypted "
              "WireGuard tunnels, UDP 51820; also --encrypt); all but local need root. auto: "
              "vxlan for a worker of managers on other hosts running as root, else "
              "local")
          ->capture_default_str();
  worker->add_flag("--encrypt", worker_flags.encrypt,
                   "Encrypt task traffic between nodes with WireGuard (the kernel's, else "
                   "wireguard-go): --network wireguard");
  worker->add_option("--label", worker_flags.labels, "Node label K=V (repeatable)");
  worker
      ->add_option("--token", worker_flags.worker.join_token,
                   "Join token (`warren cluster join-token worker -q` on the manager); needed "
                   "until the data dir holds the worker's certificate, and not with an "
                   "--insecure-plaintext manager")
      ->envname("WARREN_JOIN_TOKEN");
  worker->add_option("--cpus", worker_flags.worker.cpus, "CPUs offered (0: detect)");
  worker->add_option("--memory", worker_flags.memory, "Memory offered, e.g. 4G (default: detect)");
  AddRuntimeFlags(worker, &worker_flags.worker);
  AddTaskFileFlags(worker, &worker_flags);
  worker->add_flag("--stop-tasks-on-exit", worker_flags.worker.stop_tasks_on_exit,
                   "Stop every task on exit (default: leave them running for the next start to "
                   "adopt)");
  worker->add_option("--metrics-addr", worker_flags.worker.metrics_addr,
                     "Metrics (HTTP) address; empty disables");
  worker
      ->add_option("--publish-ip", worker_flags.worker.publish_ip,
                   "Address published ports listen on (unless a port names its own)")
      ->capture_default_str();
  AddDnsFlags(worker, &worker_flags.worker.dns, &worker_flags.dns_ttl);
  AddProxyLimitFlags(worker, &worker_flags.proxy);
  AddIngressFlags(worker, &worker_flags.worker);
  AddReservedFdsFlag(worker, &worker_flags.worker.reserved_fds);
  AddLogFlags(worker);
  worker->callback([&] {
    action = [&] {
      worker_flags.address_range_given = worker_range->count() > 0;
      worker_flags.network_given = worker_network->count() > 0;
      worker_flags.cni_subnet_given = worker->get_option("--cni-subnet")->count() > 0;
      worker_flags.worker.manager_addr = ctx.manager;
      if (absl::Status s = FinishWorkerFlags(&worker_flags); !s.ok()) return UsageError(ctx, s);
      if (absl::Status s = FinishDnsFlags(worker_flags.dns_ttl, &worker_flags.worker.dns); !s.ok())
        return UsageError(ctx, s);
      return RunWorker(worker_flags.worker);
    };
  });

  // service ...
  CLI::App* service = app.add_subcommand("service", "Manage services");
  service->require_subcommand(1);

  CreateFlags create_flags;
  CLI::App* create = service->add_subcommand("create", "Create a service");
  create->add_option("NAME", create_flags.name, "Service name (a DNS label)")->required();
  AddTemplateFlags(create, &create_flags.t);
  AddUpdateConfigFlags(create, &create_flags.u);
  create->callback([&] { action = [&] { return ServiceCreate(ctx, *create, create_flags); }; });

  UpdateFlags update_flags;
  CLI::App* update = service->add_subcommand(
      "update", "Change a service: each flag given changes that field only");
  update->add_option("NAME", update_flags.name, "Service name or id")->required();
  AddTemplateFlags(update, &update_flags.t);
  update->add_option("--env-rm", update_flags.env_rm,
                     "Remove an environment variable (repeatable)");
  update->add_option("--secret-rm", update_flags.secret_rm,
                     "Stop giving the tasks this secret (repeatable)");
  AddUpdateConfigFlags(update, &update_flags.u);
  update->add_option("--message", update_flags.message,
                     "Change cause recorded with the revision (default: the command line)");
  update->add_flag("-d,--detach", update_flags.detach,
                   "Return once the update is accepted instead of following the rollout");
  update->add_flag("--force", update_flags.force,
                   "Replace every task even when nothing else changes (as `service restart`)");
  update->callback([&] { action = [&] { return ServiceUpdate(ctx, *update, update_flags); }; });

  UpdateFlags restart_flags;
  restart_flags.force = true;
  CLI::App* restart = service->add_subcommand(
      "restart",
      "Replace every task with a new one of the same template: a rolling update with the "
      "service's settings, health-gated (update --force)");
  restart->add_option("NAME", restart_flags.name, "Service name or id")->required();
  restart->add_option("--message", restart_flags.message,
                      "Change cause recorded with the revision (default: the command line)");
  restart->add_flag("-d,--detach", restart_flags.detach,
                    "Return once the restart is accepted instead of following it");
  restart->callback([&] { action = [&] { return ServiceUpdate(ctx, *restart, restart_flags); }; });

  CLI::App* rollout = service->add_subcommand("rollout", "Rollouts of a service");
  rollout->require_subcommand(1);
  std::string status_name;
  bool status_watch = false;
  CLI::App* status = rollout->add_subcommand("status", "Show the latest rollout");
  status->add_option("NAME", status_name, "Service name or id")->required();
  status->add_flag("-w,--watch", status_watch, "Follow it until it ends");
  AddOutputFlag(status, &ctx);
  status->callback([&] { action = [&] { return RolloutStatus(ctx, status_name, status_watch); }; });

  std::string pause_name;
  CLI::App* pause = service->add_subcommand("pause", "Pause the service's rollout");
  pause->add_option("NAME", pause_name, "Service name or id")->required();
  pause->callback([&] { action = [&] { return PauseOrResume(ctx, pause_name, true); }; });

  std::string resume_name;
  CLI::App* resume = service->add_subcommand("resume", "Resume the service's paused rollout");
  resume->add_option("NAME", resume_name, "Service name or id")->required();
  resume->callback([&] { action = [&] { return PauseOrResume(ctx, resume_name, false); }; });

  std::string promote_name;
  CLI::App* promote = service->add_subcommand(
      "promote", "Blue/green: switch traffic to green now. Canary: go to the next step");
  promote->add_option("NAME", promote_name, "Service name or id")->required();
  promote->callback([&] { action = [&] { return Promote(ctx, promote_name, false); }; });

  std::string abort_name;
  CLI::App* abort_cmd = service->add_subcommand(
      "abort",
      "Canary and blue/green: traffic back to the stable revision at once, new tasks removed");
  abort_cmd->add_option("NAME", abort_name, "Service name or id")->required();
  abort_cmd->callback([&] { action = [&] { return Abort(ctx, abort_name); }; });

  CLI::App* canary = service->add_subcommand("canary", "Canary and blue/green rollouts");
  canary->require_subcommand(1);
  std::string canary_status_name;
  CLI::App* canary_status = canary->add_subcommand(
      "status", "Step, weights, replicas per revision, analysis checks and time left");
  canary_status->add_option("NAME", canary_status_name, "Service name or id")->required();
  AddOutputFlag(canary_status, &ctx);
  canary_status->callback([&] { action = [&] { return CanaryStatus(ctx, canary_status_name); }; });
  std::string canary_promote_name;
  bool canary_promote_full = false;
  CLI::App* canary_promote =
      canary->add_subcommand("promote", "Go to the next step now (--full: straight to 100%)");
  canary_promote->add_option("NAME", canary_promote_name, "Service name or id")->required();
  canary_promote->add_flag("--full", canary_promote_full, "Skip the remaining steps");
  canary_promote->callback(
      [&] { action = [&] { return Promote(ctx, canary_promote_name, canary_promote_full); }; });

  RollbackFlags rollback_flags;
  CLI::App* rollback = service->add_subcommand(
      "rollback", "Roll back to the previous revision (or --to-revision N) and follow it");
  rollback->add_option("NAME", rollback_flags.name, "Service name or id")->required();
  rollback->add_option("--to-revision", rollback_flags.to_revision,
                       "Revision to go back to (default: the previous one)");
  rollback->add_flag("-d,--detach", rollback_flags.detach,
                     "Return once the rollback is accepted instead of following it");
  rollback->add_option("--message", rollback_flags.message,
                       "Change cause (default: the command line)");
  rollback->callback([&] { action = [&] { return ServiceRollback(ctx, rollback_flags); }; });

  std::string history_name;
  CLI::App* history = service->add_subcommand("history", "List a service's revisions");
  history->add_option("NAME", history_name, "Service name or id")->required();
  AddOutputFlag(history, &ctx);
  history->callback([&] { action = [&] { return ServiceHistory(ctx, history_name); }; });

  std::string endpoints_name;
  CLI::App* endpoints = service->add_subcommand(
      "endpoints", "Revisions, weights, endpoints and recent traffic of a service");
  endpoints->add_option("NAME", endpoints_name, "Service name or id")->required();
  AddOutputFlag(endpoints, &ctx);
  endpoints->callback([&] { action = [&] { return ServiceEndpoints(ctx, endpoints_name); }; });

  CLI::App* ls = service->add_subcommand("ls", "List services");
  AddOutputFlag(ls, &ctx);
  AddQuietFlag(ls, &ctx, "service ids");
  ls->callback([&] { action = [&] { return ServiceList(ctx); }; });

  std::string inspect_name;
  int64_t inspect_revision = 0;
  CLI::App* inspect =
      service->add_subcommand("inspect", "Show a service (or one revision) in full");
  inspect->add_option("NAME", inspect_name, "Service name or id")->required();
  inspect->add_option("--revision", inspect_revision, "Show this revision of the template")
      ->check(CLI::PositiveNumber);
  AddOutputFlag(inspect, &ctx);
  inspect->callback(
      [&] { action = [&] { return ServiceInspect(ctx, inspect_name, inspect_revision); }; });

  std::string ps_name;
  bool ps_no_trunc = false;
  CLI::App* ps = service->add_subcommand("ps", "List a service's tasks");
  ps->add_option("NAME", ps_name, "Service name or id")->required();
  AddOutputFlag(ps, &ctx);
  AddQuietFlag(ps, &ctx, "task ids");
  ps->add_flag("--no-trunc", ps_no_trunc, "Show errors whole instead of shortened");
  ps->callback([&] { action = [&] { return ServicePs(ctx, ps_name, ps_no_trunc); }; });

  std::vector<std::string> scale_items;
  CLI::App* scale = service->add_subcommand("scale", "Set replica counts");
  scale->add_option("NAME=REPLICAS", scale_items, "One or more NAME=N")->required();
  scale->callback([&] { action = [&] { return ServiceScale(ctx, scale_items); }; });

  std::vector<std::string> rm_names;
  CLI::App* rm = service->add_subcommand("rm", "Remove services");
  rm->add_option("NAME", rm_names, "Service names or ids")->required();
  rm->callback([&] { action = [&] { return ServiceRemove(ctx, rm_names); }; });

  std::string logs_name;
  bool logs_follow = false;
  int logs_tail = 0;
  CLI::App* logs = service->add_subcommand("logs", "Print a service's task logs");
  logs->add_option("NAME", logs_name, "Service name or id")->required();
  logs->add_flag("-f,--follow", logs_follow, "Keep printing new lines");
  logs->add_option("--tail", logs_tail, "Lines from the end of each task's log (0: all)");
  logs->callback(
      [&] { action = [&] { return ServiceLogs(ctx, logs_name, logs_follow, logs_tail); }; });

  // node ...
  CLI::App* node = app.add_subcommand("node", "Inspect and manage nodes");
  node->require_subcommand(1);
  CLI::App* node_ls =
      node->add_subcommand("ls", "List nodes, then the managers and which one leads");
  AddOutputFlag(node_ls, &ctx);
  AddQuietFlag(node_ls, &ctx, "node ids");
  node_ls->callback([&] { action = [&] { return NodeList(ctx); }; });
  std::string node_name;
  CLI::App* node_inspect = node->add_subcommand("inspect", "Show a node in full");
  node_inspect->add_option("NAME", node_name, "Node name or id")->required();
  AddOutputFlag(node_inspect, &ctx);
  node_inspect->callback([&] { action = [&] { return NodeInspect(ctx, node_name); }; });
  AddNodeCommands(node, ctx.env_for_commands(), &action);
  AddSecretCommands(&app, ctx.env_for_commands(), &action);

  // events
  std::string events_service;
  std::string events_since;
  CLI::App* events = app.add_subcommand("events", "Stream cluster events until interrupted");
  events->add_option("--service", events_service, "Only this service's events");
  events->add_option("--since", events_since,
                     "Start after this event id (0: from the oldest kept)");
  AddOutputFlag(events, &ctx);
  events->callback([&] { action = [&] { return Events(ctx, events_service, events_since); }; });

  // apply
  std::string apply_file;
  bool apply_dry_run = false;
  CLI::App* apply = app.add_subcommand("apply", "Create or update services from a YAML file");
  apply->add_option("-f,--file", apply_file, "YAML file ('-' for standard input)")->required();
  apply->add_flag("--dry-run", apply_dry_run, "Print what would change; change nothing");
  apply->callback([&] { action = [&] { return Apply(ctx, apply_file, apply_dry_run); }; });

  AddStackCommands(&app, ctx.env_for_commands(), &action);
  AddIngressCommands(&app, ctx.env_for_commands(), &action);
  AddDashboardCommands(&app, ctx.env_for_commands(), &action);

  AddVersionCommand(&app, ctx.env_for_commands(), &action);
  AddCompletionCommand(&app, ctx.env_for_commands(), &action);

  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::Success& e) {
    return app.exit(e, out, err);
  } catch (const CLI::ParseError& e) {
    if (std::optional<std::string> unknown = UnknownCommandError(app)) {
      err << "error: " << *unknown << "\n";
      return 2;
    }
    err << "error: " << DescribeParseError(app, e) << "\n"
        << "Run with --help for more information.\n";
    return 2;
  }
  if (!action) return 2;
  // One address, or several managers on etcd (any of them serves the API).
  if (!init->parsed() && !app.got_subcommand("manager")) {
    if (auto managers = ParseManagerList("--manager", ctx.manager); !managers.ok()) {
      err << "error: " << managers.status().message() << "\n";
      return 2;
    }
  }
  // The server roles make their own connections; a client command presents the bundle.
  if (!app.got_subcommand("manager") && !app.got_subcommand("worker") && !init->parsed()) {
    if (const std::string dir = security::ChooseBundleDir(ctx.tls_dir); !dir.empty()) {
      auto creds = security::BundleChannelCredentials(dir);
      if (!creds.ok()) {
        err << "error: " << creds.status().message() << "\n";
        return 1;
      }
      ctx.credentials = std::move(*creds);
    }
  }
  return action();
}

int RunCli(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  return RunCli(args, std::cout, std::cerr, FollowEnv::Real());
}

}  // namespace warren
