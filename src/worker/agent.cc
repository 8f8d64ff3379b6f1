#include "worker/agent.h"

#include <openssl/crypto.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/advertise_addr.h"
#include "common/bind_probe.h"
#include "common/limits.h"
#include "common/manager_list.h"
#include "common/role_defaults.h"
#include "common/routing_delta.h"
#include "common/task_state.h"
#include "common/time_util.h"
#include "http/http_server.h"
#include "security/cert_renewer.h"
#include "security/revocation.h"
#include "security/tls_credentials.h"
#include "spdlog/spdlog.h"
#include "warren/v1/security.grpc.pb.h"
#include "worker/task_address.h"
#include "worker/task_logs.h"

namespace warren {
namespace {

std::chrono::system_clock::time_point Deadline(absl::Duration d) {
  return std::chrono::system_clock::now() + absl::ToChronoMilliseconds(d);
}

int64_t MachineMemory() {
  long pages = sysconf(_SC_PHYS_PAGES);
  long page_size = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page_size > 0 ? static_cast<int64_t>(pages) * page_size : 0;
}

}  // namespace

// Serves task logs from the driver's log files.
class WorkerAgent::LogService final : public v1::WorkerAgent::Service {
 public:
  LogService(WorkerAgent& agent, std::shared_ptr<const security::Authorizer> authorizer)
      : agent_(agent), authorizer_(std::move(authorizer)) {}

  grpc::Status TaskLogs(grpc::ServerContext* ctx, const v1::TaskLogsRequest* req,
                        grpc::ServerWriter<v1::LogLine>* writer) override {
    // The handshake already demands a manager (or admin) certificate of the cluster; the table
    // is checked per call as on every other server.
    if (auto peer = authorizer_->AuthorizeCall(ctx, "/warren.v1.WorkerAgent/TaskLogs");
        !peer.ok()) {
      return grpc::Status(static_cast<grpc::StatusCode>(peer.status().code()),
                          std::string(peer.status().message()));
    }
    // The id names a directory under the driver's: "../x" would read another directory's log.
    const std::string& id = req->task_id();
    if (id.empty() || id == "." || id == ".." || id.find('/') != std::string::npos ||
        id.find('\0') != std::string::npos) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("task_id: \"", absl::CEscape(id), "\" is not a task id"));
    }
    // The rotated files too (output.log.2, output.log.1, output.log), oldest first; container
    // logs come in the CRI format and are decoded to the lines they carry.
    TaskLogReader reader(agent_.driver_->LogPath(id), agent_.driver_->CriLogFormat());
    absl::StatusOr<std::vector<std::string>> lines = reader.ReadLines(req->tail());
    if (!lines.ok()) {
      return grpc::Status(
          grpc::StatusCode::NOT_FOUND,
          absl::StrCat("no logs for task ", req->task_id(), " (", lines.status().message(), ")"));
    }
    v1::LogLine out;
    out.set_task_id(req->task_id());
    auto send = [&](const std::vector<std::string>& batch) {
      for (const std::string& line : batch) {
        out.set_line(line);
        if (!writer->Write(out)) return false;
      }
      return true;
    };
    if (!send(*lines)) return grpc::Status::OK;
    if (!req->follow()) {
      // A line still being written, or pieces of a line without their final record.
      if (std::optional<std::string> rest = reader.TakePartial()) {
        out.set_line(*rest);
        writer->Write(out);
      }
      return grpc::Status::OK;
    }
    while (!ctx->IsCancelled() && !agent_.stop_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (!send(reader.Poll())) return grpc::Status::OK;
    }
    return grpc::Status::OK;
  }

 private:
  WorkerAgent& agent_;
  const std::shared_ptr<const security::Authorizer> authorizer_;
};

absl::Status WorkerAgent::ServeLogs() {
  const bool tls = !options_.tls_cert.empty();
  // Plaintext keeps its old rule (any caller; loopback is the default address).
  std::shared_ptr<const security::Authorizer> authorizer =
      security::Authorizer::PlaintextLoopback();
  if (tls) {
    auto mtls = security::Authorizer::Create(security::AuthMode::kMutualTls, agent_listen_,
                                             options_.cluster_id, nullptr);
    if (!mtls.ok()) {
      return absl::Status(mtls.status().code(),
                          absl::StrCat("agent-addr ", mtls.status().message()));
    }
    authorizer = *mtls;
  }
  log_service_ = std::make_unique<LogService>(*this, std::move(authorizer));
  grpc::ServerBuilder builder;
  ConfigureGrpcServer(builder);
  // Accepted by us in both modes: gRPC 1.51's own listener stops for good after one EMFILE.
  auto acceptor = GrpcAcceptor::Listen(agent_listen_);
  if (!acceptor.ok()) {
    return absl::Status(acceptor.status().code(),
                        absl::StrCat("agent-addr ", acceptor.status().message()));
  }
  acceptor_ = std::move(*acceptor);
  if (tls) {
    // Only managers read task logs: the handshake refuses any other certificate (by its
    // identity, not a host name), and a client without one.
    security::ServerTlsOptions server_tls;
    server_tls.client_certificates = security::ClientCertificates::kRequire;
    server_tls.clients = {
        options_.cluster_id, {security::Role::kManager, security::Role::kAdmin}, "", nullptr};
    auto creds = security::MakeServerCredentials(
        {options_.tls_ca_cert, options_.tls_cert, options_.tls_key}, server_tls);
    if (!creds.ok()) {
      return absl::Status(creds.status().code(),
                          absl::StrCat("agent-addr certificate: ", creds.status().message()));
    }
    acceptor_->UseTls(builder, *creds);
  }
  builder.RegisterService(log_service_.get());
  server_ = builder.BuildAndStart();
  if (!server_) {
    return absl::InternalError(
        absl::StrCat("agent-addr ", agent_listen_, ": gRPC server failed to start"));
  }
  acceptor_->Start(server_.get());
  const int port = acceptor_->port();
  std::string host = agent_listen_.substr(0, agent_listen_.rfind(':'));
  agent_addr_ = absl::StrCat(host, ":", port);
  return absl::OkStatus();
}

void WorkerAgent::StartCertificateRenewal() {
  // tls_cert is <dir>/current/cert.pem (security::CredentialsDirectory::files()).
  const std::filesystem::path dir =
      std::filesystem::path(options_.tls_cert).parent_path().parent_path();
  // Renewal presents the current certificate over the manager channel (its file watcher
  // follows each installed generation): the same identity comes back, no token needed.
  security::RenewFn renew =
      [this](const security::CertificateInfo&,
             const std::string& csr) -> absl::StatusOr<security::RenewedCertificate> {
    // Any manager renews; the one in use now.
    std::shared_ptr<grpc::Channel> channel;
    {
      absl::MutexLock lock(&mu_);
      channel = managers_[manager_].channel;
    }
    auto ca = v1::Ca::NewStub(channel);
    v1::RenewCertificateRequest req;
    req.set_csr_pem(csr);
    req.add_hosts("127.0.0.1");
    req.add_hosts("localhost");
    const std::string host = agent_listen_.substr(0, agent_listen_.rfind(':'));
    if (!host.empty() && host != "0.0.0.0" && host != "127.0.0.1" && host.front() != '[') {
      req.add_hosts(host);
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(absl::Seconds(10)));
    v1::NodeCertificate issued;
    if (grpc::Status s = ca->Renew(&ctx, req, &issued); !s.ok()) {
      return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                          absl::StrCat("warren.v1.Ca/Renew: ", s.error_message()));
    }
    return security::RenewedCertificate{issued.cert_pem(), issued.ca_cert_pem()};
  };
  renewer_ = std::make_unique<security::CertificateRenewer>(
      security::CredentialsDirectory(dir.string()), std::move(renew),
      options_.renewal_clock != nullptr ? *options_.renewal_clock : clock_,
      options_.renewal_seed != 0 ? options_.renewal_seed : std::random_device()());
  renewer_->Start();
}

WorkerAgent::WorkerAgent(WorkerOptions options, std::unique_ptr<RuntimeDriver> driver, Clock& clock,
                         Registry* registry)
    : options_(std::move(options)),
      driver_(std::move(driver)),
      clock_(clock),
      registry_(registry ? registry : &DefaultRegistry()),
      counters_instance_(std::random_device()() | (uint64_t{std::random_device()()} << 32)) {}

int WorkerAgent::dns_port() const { return dns_ ? dns_->port() : 0; }

WorkerAgent::~WorkerAgent() {
  Stop();
  if (network_claim_ >= 0) close(network_claim_);
}

std::string WorkerAgent::node_id() const {
  absl::MutexLock lock(&mu_);
  return node_id_;
}

int WorkerAgent::RunningTasks() const {
  absl::MutexLock lock(&mu_);
  int n = 0;
  for (const auto& [id, l] : tasks_) {
    if (l.status.state() == v1::TASK_STATE_RUNNING) n++;
  }
  return n;
}

absl::Status WorkerAgent::Start() {
  if (options_.advertise_addr.empty()) {
    advertise_addr_ = DetectAdvertiseAddr();
  } else {
    absl::StatusOr<std::string> addr =
        ParseAdvertiseAddr("--advertise-addr", options_.advertise_addr);
    if (!addr.ok()) return addr.status();
    advertise_addr_ = *addr;
  }
  absl::StatusOr<NodeNetworkMode> mode = ParseNodeNetworkMode("--network", options_.network);
  if (!mode.ok()) return mode.status();
  network_mode_ = *mode;
  if (IsRouted(network_mode_)) {
    absl::StatusOr<int> claim = ClaimHostNetwork();
    if (!claim.ok()) {
      return absl::Status(claim.status().code(), absl::StrCat("--network ", options_.network, ": ",
                                                              claim.status().message()));
    }
    network_claim_ = *claim;
    commands_ = MakeSystemCommandRunner();
    network_ = std::make_unique<NodeNetwork>(network_mode_, advertise_addr_, *commands_,
                                             options_.data_dir);
    // The cri runtime's pods hold the subnet's addresses on their bridge, not this host.
    network_->SetPodBridge(driver_->AssignsAddresses());
    absl::MutexLock lock(&net_mu_);
    if (absl::Status s = network_->Prepare(); !s.ok()) return s;
  } else {
    absl::MutexLock lock(&mu_);
    task_range_ = options_.address_range;
  }
  // Managers on other hosts read task logs from the agent: on a routed network it listens on
  // the advertise address unless --agent-addr says otherwise.
  // Only with mutual TLS: a plaintext agent answers anyone, so it stays on loopback.
  agent_listen_ = IsRouted(network_mode_) && !options_.tls_cert.empty() &&
                          options_.agent_addr == WorkerOptions().agent_addr
                      ? absl::StrCat(advertise_addr_, ":0")
                      : options_.agent_addr;
  prober_ = std::make_unique<HealthProber>(
      clock_, *driver_,
      [this](const std::string& id, const v1::TaskHealth& h) { OnHealthChange(id, h); });
  driver_->SetListener(
      [this](const std::string& id, const TaskRuntimeState& s) { OnRuntimeChange(id, s); });

  absl::Status serving = ServeLogs();
  if (!serving.ok()) return serving;
  secret_files_ =
      std::make_unique<SecretFiles>(std::filesystem::path(options_.data_dir) / "secrets");
  // Tasks left by an earlier agent on this data dir: kept until the manager says otherwise.
  // A runtime that cannot be read just now (out of descriptors, containerd busy) is asked
  // again: no assignment is applied before, since a task not recovered would be declared
  // lost.
  absl::StatusOr<std::vector<std::string>> recovered = driver_->Recover();
  const absl::Time give_up = absl::Now() + options_.recover_timeout;
  for (absl::Duration backoff = absl::Milliseconds(50);
       absl::IsUnavailable(recovered.status()) && absl::Now() < give_up;
       backoff = std::min(backoff * 2, absl::Seconds(2))) {
    spdlog::warn("recovering tasks: {}; retrying", std::string(recovered.status().message()));
    absl::SleepFor(backoff);
    recovered = driver_->Recover();
  }
  if (!recovered.ok()) {
    return absl::Status(
        recovered.status().code(),
        absl::StrCat("recovering the tasks of an earlier worker: ", recovered.status().message(),
                     " (no task was stopped; start the worker again)"));
  }
  for (const std::string& id : *recovered) {
    auto st = driver_->Inspect(id);
    absl::MutexLock lock(&mu_);
    Local& l = tasks_[id];
    unassigned_.insert(id);
    l.task.set_id(id);
    if (st && st->phase != TaskRuntimeState::Phase::kExited) {
      l.status.set_state(v1::TASK_STATE_RUNNING);
      l.status.set_pid(st->pid);
      l.status.set_address(st->address);
      *l.status.mutable_started_at() = ToProtoTime(st->started_at);
    } else {
      l.exited = true;
      l.status.set_state(v1::TASK_STATE_FAILED);
      l.status.set_error(st ? st->error : "lost while the worker was down");
    }
    spdlog::info("recovered task {} ({})", id, TaskStateName(l.status.state()));
  }
  {
    // Secrets left by a worker that died (kill -9): only tasks still running keep theirs.
    std::set<std::string> running;
    absl::MutexLock lock(&mu_);
    for (const auto& [id, l] : tasks_) {
      if (!l.exited) running.insert(id);
    }
    secret_files_->RemoveAllExcept(running);
  }

  ProxyManagerOptions po;
  po.proxy.registry = registry_;
  po.proxy.host_ip = options_.publish_ip;
  po.proxy.header_timeout = options_.proxy.header_timeout;
  po.proxy.idle_timeout = options_.proxy.idle_timeout;
  po.proxy.max_connections = options_.proxy.max_connections;
  proxies_ = std::make_unique<ProxyManager>(po);
  // HTTPS first: the HTTP ingress's redirects name its port.
  for (const bool tls : {true, false}) {
    const std::string& addr = tls ? options_.ingress_https : options_.ingress_http;
    if (addr.empty()) continue;
    auto hp = SplitHostPort(addr);
    if (!hp.ok()) return hp.status();
    absl::Status s = tls ? proxies_->StartIngressTls(hp->first, hp->second)
                         : proxies_->StartIngress(hp->first, hp->second);
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat(tls ? "--ingress-https " : "--ingress-http ", addr,
                                                 ": ", s.message()));
    }
    spdlog::info("ingress listening for {} on {}:{}", tls ? "HTTPS" : "HTTP", hp->first,
                 tls ? proxies_->IngressTlsPort() : proxies_->IngressPort());
  }
  publisher_ = std::make_unique<PortPublisher>(*proxies_, clock_);
  // On a routed network the DNS's address is the node's own of its subnet, known once the
  // node registered.
  if (IsRouted(network_mode_) && options_.dns.addr == kAutoDnsAddr) {
    dns_after_registration_ = true;
  } else if (absl::Status s = StartDns(options_.address_range); !s.ok()) {
    return s;
  }
  // On a routed network the pods' gateway is known once the node registered (Register).
  if (absl::Status s = StartPodDns(); !s.ok()) return s;

  janitor_ = std::make_unique<TaskDirJanitor>(
      (std::filesystem::path(options_.data_dir) / "tasks").string(),
      TaskDirRetention{options_.task_dir_retention, options_.task_dirs_kept}, clock_);

  // A node's assignment set carries every task's template (up to 1 MiB each).
  grpc::ChannelArguments channel_args;
  channel_args.SetMaxReceiveMessageSize(limits::kMaxClientReceiveBytes);
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (!options_.tls_cert.empty()) {
    security::ChannelTlsOptions tls;
    tls.server = {options_.cluster_id, {security::Role::kManager}, "", nullptr};
    auto mtls = security::MakeChannelCredentials(
        {options_.tls_ca_cert, options_.tls_cert, options_.tls_key}, tls);
    if (!mtls.ok()) {
      return absl::Status(mtls.status().code(),
                          absl::StrCat("worker certificate: ", mtls.status().message()));
    }
    creds = std::move(*mtls);
  }
  auto addrs = ParseManagerList("--manager", options_.manager_addr);
  if (!addrs.ok()) return addrs.status();
  manager_creds_ = creds;
  manager_args_ = channel_args;
  {
    absl::MutexLock lock(&mu_);
    managers_.clear();
    for (const std::string& addr : *addrs) managers_.push_back(ConnectManager(addr));
  }
  if (!options_.tls_cert.empty()) StartCertificateRenewal();
  stop_ = false;
  loops_.emplace_back([this] { ConnectLoop(); });
  loops_.emplace_back([this] { HeartbeatLoop(); });
  loops_.emplace_back([this] { ReportLoop(); });
  loops_.emplace_back([this] { RoutesLoop(); });
  loops_.emplace_back([this] { StatsLoop(); });
  if (network_) loops_.emplace_back([this] { NetworkLoop(); });
  return absl::OkStatus();
}

absl::Status WorkerAgent::StartDns(const std::string& range) {
  // Several workers may share a machine: by default each serves DNS on an address of its own
  // range, never the manager's.
  DnsOptions dns_options = options_.dns;
  if (dns_options.addr == kAutoDnsAddr) {
    absl::StatusOr<std::string> own = WorkerDnsAddr(range);
    if (!own.ok()) return own.status();
    const DnsAddrChoice choice = ChooseDnsAddr(dns_options.addr, *own);
    if (!choice.warning.empty()) spdlog::warn("{}", choice.warning);
    dns_options.addr = choice.addr;
  }
  if (!dns_options.addr.empty()) {
    auto d = dns::ClusterDns::Start(dns_options);
    if (!d.ok()) return d.status();
    dns_ = std::move(*d);
  }
  return absl::OkStatus();
}

absl::Status WorkerAgent::StartPodDns() {
  // Tasks in their own network (pods) cannot reach a loopback DNS: serve them where they look.
  const std::string server = driver_->TaskDnsServer();
  if (server.empty() || pod_dns_) return absl::OkStatus();
  DnsOptions d = options_.dns;
  d.addr = absl::StrCat(server, ":53");
  d.freebind = true;
  auto pd = dns::ClusterDns::Start(d);
  if (!pd.ok()) {
    return absl::Status(pd.status().code(), absl::StrCat("pod DNS (--no-pod-dns turns it off): ",
                                                         pd.status().message()));
  }
  pod_dns_ = std::move(*pd);
  return absl::OkStatus();
}

void WorkerAgent::Stop(bool stop_tasks) {
  if (stop_tasks && driver_) {
    std::vector<std::pair<std::string, absl::Duration>> running;
    {
      absl::MutexLock lock(&mu_);
      stopping_tasks_ = true;
      for (const auto& [id, l] : tasks_) {
        if (!l.exited) {
          running.emplace_back(id, DurationOr(l.task.spec().stop_timeout(), absl::Seconds(10)));
        }
      }
    }
    std::vector<std::thread> stoppers;
    for (const auto& [id, timeout] : running) {
      stoppers.emplace_back(
          [this, id = id, timeout = timeout] { StopTask(id, timeout, true, false); });
    }
    for (auto& t : stoppers) t.join();
    // Stopped for good: free their runtime state (pod sandboxes) now, not at the next start.
    for (const auto& [id, timeout] : running) {
      driver_->Remove(id);
      if (secret_files_) secret_files_->Remove(id);
    }
    // Give the reporter a moment to tell the manager.
    for (int i = 0; i < 20; ++i) {
      {
        absl::MutexLock lock(&mu_);
        if (pending_reports_.empty()) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  if (stop_.exchange(true)) return;
  if (renewer_) renewer_->Stop();
  {
    absl::MutexLock lock(&mu_);
    if (watch_ctx_) watch_ctx_->TryCancel();
    if (routes_ctx_) routes_ctx_->TryCancel();
    report_cv_.SignalAll();
  }
  for (auto& t : loops_) t.join();
  loops_.clear();
  ops_.Join();
  prober_.reset();
  if (proxies_) proxies_->Stop();
  dns_.reset();
  pod_dns_.reset();
  if (acceptor_) acceptor_->Stop();
  if (server_) server_->Shutdown(Deadline(absl::Milliseconds(200)));
  server_.reset();
}

void WorkerAgent::Spawn(std::function<void()> fn) { ops_.Run(std::move(fn)); }

std::string NodeName(const WorkerOptions& options) {
  if (!options.node_name.empty()) return options.node_name;
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  return host;
}

absl::Status WorkerAgent::Register() {
  v1::RegisterNodeRequest req;
  req.set_name(NodeName(options_));
  for (const auto& [k, v] : options_.labels) (*req.mutable_labels())[k] = v;
  req.set_role(options_.role.empty() ? "worker" : options_.role);
  double cpus = options_.cpus > 0 ? options_.cpus : std::thread::hardware_concurrency();
  req.mutable_capacity()->set_cpus(cpus);
  req.mutable_capacity()->set_memory_bytes(options_.memory_bytes > 0 ? options_.memory_bytes
                                                                     : MachineMemory());
  req.set_agent_addr(agent_addr_);
  if (!driver_->AssignsAddresses() && !IsRouted(network_mode_)) {
    req.set_address_range(options_.address_range);
  }
  req.set_network(std::string(NodeNetworkModeName(network_mode_)));
  if (network_mode_ == NodeNetworkMode::kWireguard) {
    absl::MutexLock lock(&net_mu_);
    req.set_wireguard_public_key(network_->wireguard_public_key());
  }
  req.set_runtime(driver_->Name());
  req.set_advertise_addr(advertise_addr_);
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(absl::Seconds(5)));
  v1::Node node;
  auto [used, stub] = Manager();
  grpc::Status s = stub->RegisterNode(&ctx, req, &node);
  if (!s.ok()) {
    ManagerFailed(used, s);
    CheckRemoved(s);
    return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
  }
  if (network_) {
    // The subnet first: the DNS binds its first address, tasks the others.
    {
      absl::MutexLock lock(&net_mu_);
      if (absl::Status set = network_->SetSubnet(node.address_range()); !set.ok()) {
        return absl::Status(set.code(), absl::StrCat("network: the node's subnet ",
                                                     node.address_range(), ": ", set.message()));
      }
      // Pods leave the cluster through NAT; between nodes they keep their addresses.
      if (driver_->AssignsAddresses()) {
        if (absl::Status nat = network_->SetPodNat(node.cluster_cidr()); !nat.ok()) {
          return absl::Status(nat.code(), absl::StrCat("network: NAT of the pods of ",
                                                       node.address_range(), ": ", nat.message()));
        }
      }
      // Registered anew (after a manager lost the node, say): route every peer again from
      // the last table at once, and sweep what is stale.
      network_->Forget();
      peers_done_ = false;
    }
    // The runtime's own network (the pods' bridge) on the subnet, before any task starts.
    if (absl::Status use = driver_->UseNodeSubnet(node.address_range()); !use.ok()) {
      return absl::Status(use.code(),
                          absl::StrCat("the ", driver_->Name(), " runtime's network on ",
                                       node.address_range(), ": ", use.message()));
    }
    {
      absl::MutexLock lock(&mu_);
      task_range_ = node.address_range();
    }
    // Once: RoutesLoop reads dns_ from the first registration on.
    if (dns_after_registration_) {
      dns_after_registration_ = false;
      if (absl::Status d = StartDns(node.address_range()); !d.ok()) {
        spdlog::warn("service DNS is off: {}", d.ToString());
      }
    }
    // Once: RoutesLoop reads pod_dns_ from the first registration on.
    if (!pod_dns_started_) {
      pod_dns_started_ = true;
      if (absl::Status d = StartPodDns(); !d.ok()) {
        spdlog::warn("service DNS of the pods is off: {}", d.ToString());
      }
    }
  }
  absl::MutexLock lock(&mu_);
  node_id_ = node.id();
  spdlog::info("registered as node {} ({}), agent {}, advertise address {}, subnet {}", node.name(),
               node.id(), agent_addr_, node.advertise_addr(), node.subnet());
  return absl::OkStatus();
}

std::pair<size_t, std::shared_ptr<v1::Dispatcher::Stub>> WorkerAgent::Manager() const {
  absl::MutexLock lock(&mu_);
  return {manager_, managers_[manager_].stub};
}

WorkerAgent::ManagerConn WorkerAgent::ConnectManager(const std::string& addr) const {
  ManagerConn c;
  c.addr = addr;
  c.channel = grpc::CreateCustomChannel(addr, manager_creds_, manager_args_);
  c.stub = v1::Dispatcher::NewStub(c.channel);
  return c;
}

void WorkerAgent::ManagerFailed(size_t used, const grpc::Status& s) {
  if (s.ok()) return;
  const absl::Status status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
  absl::MutexLock lock(&mu_);
  // Another loop moved on already.
  if (used != manager_) return;
  if (status.code() == absl::StatusCode::kUnavailable) {
    if (std::optional<std::string> leader = ParseLeaderHint(status.message())) {
      const bool known = std::any_of(managers_.begin(), managers_.end(),
                                     [&](const ManagerConn& m) { return m.addr == *leader; });
      if (!known) managers_.push_back(ConnectManager(*leader));
    }
  }
  if (managers_.size() < 2) return;
  const size_t next = NextManager(
      [this] {
        std::vector<std::string> addrs;
        for (const auto& m : managers_) addrs.push_back(m.addr);
        return addrs;
      }(),
      used, status);
  if (next == used) return;
  manager_ = next;
  spdlog::warn("manager {}: {}; trying {}", managers_[used].addr, s.error_message(),
               managers_[next].addr);
  // The streams follow at once: they were on the manager just left.
  if (watch_ctx_) watch_ctx_->TryCancel();
  if (routes_ctx_) routes_ctx_->TryCancel();
}

bool WorkerAgent::WaitUntilRemoved(absl::Duration timeout) const {
  return removed_.WaitForNotificationWithTimeout(timeout);
}

bool WorkerAgent::CheckRemoved(const grpc::Status& s) {
  if (options_.role == "hybrid" || !security::IsNodeRemoved(s)) return false;
  absl::MutexLock lock(&mu_);
  if (!removed_.HasBeenNotified()) {
    removed_.Notify();
    // Retrying cannot help: the node's certificate stays refused until it expires.
    if (watch_ctx_) watch_ctx_->TryCancel();
    if (routes_ctx_) routes_ctx_->TryCancel();
  }
  return true;
}

void WorkerAgent::ConnectLoop() {
  absl::Duration backoff = absl::Milliseconds(100);
  while (!stop_ && !removed()) {
    if (node_id().empty()) {
      absl::Status s = Register();
      if (removed()) break;
      if (!s.ok()) {
        spdlog::warn("cannot register with the manager: {}", s.ToString());
        if (s.code() == absl::StatusCode::kInvalidArgument) {
          // A configuration error does not fix itself; keep trying slowly so it stays visible.
          backoff = absl::Seconds(5);
        }
        std::this_thread::sleep_for(absl::ToChronoMilliseconds(backoff));
        backoff = std::min(backoff * 2, absl::Seconds(2));
        continue;
      }
    }
    grpc::ClientContext ctx;
    {
      absl::MutexLock lock(&mu_);
      if (stop_) break;
      watch_ctx_ = &ctx;
    }
    v1::WatchAssignmentsRequest req;
    req.set_node_id(node_id());
    req.set_deltas(true);
    auto [used, stub] = Manager();
    auto reader = stub->WatchAssignments(&ctx, req);
    v1::Assignments a;
    uint64_t applied = 0;
    bool have_set = false;
    while (reader->Read(&a)) {
      backoff = absl::Milliseconds(100);
      if (a.delta() && (!have_set || a.base_version() != applied)) {
        // A delta that does not follow what this worker holds: start over with a full set.
        spdlog::warn("assignment delta from version {} does not follow {}; resyncing",
                     a.base_version(), applied);
        ctx.TryCancel();
        break;
      }
      Apply(a);
      applied = a.version();
      have_set = true;
    }
    grpc::Status s = reader->Finish();
    ManagerFailed(used, s);
    {
      absl::MutexLock lock(&mu_);
      watch_ctx_ = nullptr;
      if (s.error_code() == grpc::StatusCode::NOT_FOUND) node_id_.clear();
    }
    if (stop_ || CheckRemoved(s) || removed()) break;
    spdlog::warn("assignment stream ended: {}", s.error_message());
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(backoff));
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

void WorkerAgent::RoutesLoop() {
  absl::Duration backoff = absl::Milliseconds(100);
  while (!stop_ && !removed()) {
    std::string id = node_id();
    if (id.empty()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    grpc::ClientContext ctx;
    {
      absl::MutexLock lock(&mu_);
      if (stop_) break;
      routes_ctx_ = &ctx;
    }
    v1::WatchRoutesRequest req;
    req.set_node_id(id);
    req.set_deltas(true);
    auto [used, stub] = Manager();
    auto reader = stub->WatchRoutes(&ctx, req);
    v1::RoutingTable received;
    v1::RoutingTable table;
    while (reader->Read(&received)) {
      backoff = absl::Milliseconds(100);
      if (absl::Status s = ApplyRoutingTable(received, &table); !s.ok()) {
        // Start over with a whole table (the stream's first message).
        spdlog::warn("{}; resyncing", std::string(s.message()));
        ctx.TryCancel();
        break;
      }
      // Routes to the other nodes first: the proxies may send to their tasks at once.
      if (network_) ApplyPeers(table);
      publisher_->Apply(table);
      WantIngressCertificates(table);
      if (dns_) dns_->Update(table);
      if (pod_dns_) pod_dns_->Update(table);
      routes_version_ = table.version();
    }
    grpc::Status s = reader->Finish();
    ManagerFailed(used, s);
    {
      absl::MutexLock lock(&mu_);
      routes_ctx_ = nullptr;
    }
    if (stop_ || CheckRemoved(s) || removed()) break;
    spdlog::warn("routing table stream ended: {}", s.error_message());
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(backoff));
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

void WorkerAgent::ApplyPeers(const v1::RoutingTable& table) {
  {
    absl::MutexLock lock(&pending_mu_);
    pending_wanted_.clear();
    for (const v1::NodePeer& p : table.peers()) pending_wanted_ += p.SerializeAsString();
    pending_peers_.assign(table.peers().begin(), table.peers().end());
    pending_fresh_ = true;
  }
  // While NetworkLoop repairs the network (a wireguard-go starting again takes seconds), the
  // table's services and DNS do not wait for it: NetworkLoop routes these peers when it is done.
  if (!net_mu_.TryLock()) return;
  TakePendingPeersLocked();
  net_mu_.Unlock();
}

void WorkerAgent::TakePendingPeersLocked() {
  std::string wanted;
  std::vector<v1::NodePeer> peers;
  {
    absl::MutexLock lock(&pending_mu_);
    if (!pending_fresh_) return;
    pending_fresh_ = false;
    wanted = pending_wanted_;
    peers = pending_peers_;
  }
  if (wanted == peers_wanted_ && peers_done_) return;
  peers_wanted_ = std::move(wanted);
  peers_ = std::move(peers);
  RoutePeersLocked();
}

void WorkerAgent::NetworkLoop() {
  // Routes that failed are tried again each second; the kernel is compared with what was
  // routed every kNetworkCheckPeriod (an interface that went down and up lost its routes).
  constexpr absl::Duration kNetworkCheckPeriod = absl::Seconds(30);
  absl::Time next_check = absl::Now() + kNetworkCheckPeriod;
  // A repair that failed (wireguard-go does not come up) is tried again after a growing pause.
  absl::Duration backoff = absl::Seconds(1);
  absl::Time repair_after = absl::InfinitePast();
  while (!stop_ && !removed()) {
    for (int i = 0; i < 20 && !stop_; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (stop_ || node_id().empty()) continue;
    absl::MutexLock lock(&net_mu_);
    // A wireguard-go that died took the peers with it: set it up again now, not at the next
    // periodic check.
    if (absl::Now() >= repair_after && network_->WireguardGoGone()) next_check = absl::Now();
    if (absl::Now() >= next_check) {
      next_check = absl::Now() + kNetworkCheckPeriod;
      absl::Status s = network_->Check();
      if (!s.ok() && !absl::IsDataLoss(s)) {
        spdlog::warn("network: checking the routes: {} (again in {})", s.ToString(),
                     absl::FormatDuration(backoff));
        repair_after = absl::Now() + backoff;
        backoff = std::min(backoff * 2, kNetworkCheckPeriod);
      } else {
        backoff = absl::Seconds(1);
      }
      if (!s.ok()) peers_done_ = false;
    }
    TakePendingPeersLocked();
    if (!peers_done_) RoutePeersLocked();
  }
}

void WorkerAgent::RoutePeersLocked() {
  absl::Status s = network_->SetPeers(peers_, node_id());
  if (!s.ok() && peers_done_) {
    spdlog::warn("network: routing to the other nodes: {} (trying again)", s.ToString());
  }
  peers_done_ = s.ok();
}

void WorkerAgent::WantIngressCertificates(const v1::RoutingTable& table) {
  if (proxies_->IngressTlsPort() < 0) return;
  std::map<std::string, std::string> wanted;
  for (const v1::IngressRoute& r : table.ingresses()) {
    if (r.tls()) wanted[r.name()] = r.certificate_sha256();
  }
  {
    absl::MutexLock lock(&certs_mu_);
    certs_wanted_ = std::move(wanted);
  }
  SyncIngressCertificates();
}

void WorkerAgent::SyncIngressCertificates() {
  absl::MutexLock lock(&certs_mu_);
  if (!certs_wanted_ || (certs_fetched_ && *certs_wanted_ == certs_fetched_for_)) return;
  const std::map<std::string, std::string> wanted = *certs_wanted_;
  std::string id = node_id();
  if (id.empty() || stop_) return;
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(absl::Seconds(5)));
  v1::GetIngressCertificatesRequest req;
  req.set_node_id(id);
  v1::GetIngressCertificatesResponse resp;
  auto [used, stub] = Manager();
  grpc::Status s = stub->GetIngressCertificates(&ctx, req, &resp);
  ManagerFailed(used, s);
  if (!s.ok()) {
    std::string error = absl::StrCat("fetching the ingress certificates: ", s.error_message());
    if (error != certs_error_) spdlog::warn("{} (trying again every second)", error);
    certs_error_ = std::move(error);
    return;
  }
  std::vector<v1::IngressKeyPair> pairs(resp.certificates().begin(), resp.certificates().end());
  // The response's copies of the keys are wiped too; the proxies' contexts hold the only ones.
  for (v1::IngressKeyPair& p : *resp.mutable_certificates()) {
    if (!p.key_pem().empty()) OPENSSL_cleanse(p.mutable_key_pem()->data(), p.key_pem().size());
  }
  const size_t n = pairs.size();
  absl::Status loaded = proxies_->SetIngressCertificates(pairs);
  certs_fetched_ = true;
  certs_fetched_for_ = wanted;
  certs_error_.clear();
  if (!loaded.ok()) {
    spdlog::warn("ingress certificates: {}", std::string(loaded.message()));
  } else {
    spdlog::info("ingress certificates loaded: {} TLS rule(s)", n);
  }
}

void WorkerAgent::SweepTaskDirs() {
  std::vector<std::string> removed = janitor_->Sweep([this] {
    std::vector<std::string> known = driver_->List();
    std::set<std::string> live(known.begin(), known.end());
    absl::MutexLock lock(&mu_);
    for (const auto& [id, l] : tasks_) live.insert(id);
    return live;
  });
  if (!removed.empty()) {
    spdlog::info("removed the directories of {} gone tasks", removed.size());
  }
}

void WorkerAgent::StatsLoop() {
  absl::Time next_sweep = absl::InfinitePast();
  while (!stop_) {
    for (int i = 0; i < 20 && !stop_; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    publisher_->RetryIfDue();
    SyncIngressCertificates();
    if (clock_.Now() >= next_sweep) {
      SweepTaskDirs();
      // Often enough that a directory outlives its retention by a quarter at most.
      next_sweep = clock_.Now() +
                   std::clamp(options_.task_dir_retention / 4, absl::Seconds(1), absl::Seconds(10));
    }
    std::string id = node_id();
    if (id.empty() || stop_) continue;
    std::vector<ProxyStats> snapshot = proxies_->Snapshot();
    if (snapshot.empty()) continue;
    v1::TrafficStatsReport report;
    report.set_node_id(id);
    report.set_counters_instance(counters_instance_);
    // Every proxy uses the same buckets: the bounds go once per report.
    const std::vector<double>& bounds = snapshot.front().latency_bounds;
    report.mutable_latency_bounds_seconds()->Assign(bounds.begin(), bounds.end());
    for (const auto& s : snapshot) {
      auto* st = report.add_services();
      st->set_service_id(s.service_id);
      st->set_service(s.service);
      for (const auto& r : s.revisions) {
        auto* rt = st->add_revisions();
        rt->set_revision(r.revision);
        rt->set_requests(r.requests);
        rt->set_responses_2xx(r.responses_2xx);
        rt->set_responses_3xx(r.responses_3xx);
        rt->set_responses_4xx(r.responses_4xx);
        rt->set_responses_5xx(r.responses_5xx);
        rt->set_connect_errors(r.connect_errors);
        rt->set_latency_count(r.latency_count);
        rt->set_latency_sum_seconds(r.latency_sum_seconds);
        rt->mutable_latency_buckets()->Assign(r.latency_buckets.begin(), r.latency_buckets.end());
        if (s.latency_bounds != bounds) {
          rt->mutable_latency_bounds_seconds()->Assign(s.latency_bounds.begin(),
                                                       s.latency_bounds.end());
        }
      }
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(absl::Seconds(2)));
    v1::ReportTrafficStatsResponse resp;
    auto [used, stub] = Manager();
    grpc::Status s = stub->ReportTrafficStats(&ctx, report, &resp);
    if (!s.ok()) {
      ManagerFailed(used, s);
      spdlog::debug("reporting traffic stats: {}", s.error_message());
    }
  }
}

void WorkerAgent::HeartbeatLoop() {
  while (!stop_ && !removed()) {
    // Failures of published ports as of this heartbeat; a change wakes the next one early.
    const uint64_t publish_generation = publisher_->generation();
    std::string id = node_id();
    absl::Duration period;
    {
      absl::MutexLock lock(&mu_);
      period = heartbeat_period_;
    }
    if (!id.empty()) {
      grpc::ClientContext ctx;
      ctx.set_deadline(Deadline(absl::Seconds(2)));
      v1::HeartbeatRequest req;
      req.set_node_id(id);
      for (v1::PublishError& e : publisher_->Failures()) *req.add_publish_errors() = std::move(e);
      v1::HeartbeatResponse resp;
      auto [used, stub] = Manager();
      grpc::Status s = stub->Heartbeat(&ctx, req, &resp);
      ManagerFailed(used, s);
      if (s.ok()) {
        absl::MutexLock lock(&mu_);
        heartbeat_period_ =
            std::clamp(FromProtoDuration(resp.period()), absl::Milliseconds(100), absl::Seconds(5));
        period = heartbeat_period_;
      } else if (CheckRemoved(s)) {
        break;
      } else if (s.error_code() == grpc::StatusCode::NOT_FOUND) {
        absl::MutexLock lock(&mu_);
        node_id_.clear();
        if (watch_ctx_) watch_ctx_->TryCancel();
      }
    }
    // Sleep in small steps so Stop() is prompt, and so the first heartbeat follows a
    // registration at once (the node would otherwise go silent for a whole period).
    // A published port that starts or stops failing is reported at once, too.
    for (absl::Duration slept; slept < period && !stop_ && !(id.empty() && !node_id().empty()) &&
                               publisher_->generation() == publish_generation;
         slept += absl::Milliseconds(50)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
}

void WorkerAgent::QueueReport(const std::string& task_id, const v1::TaskStatus& status) {
  pending_reports_[task_id] = status;
  report_cv_.Signal();
}

void WorkerAgent::ReportLoop() {
  while (true) {
    v1::ReportTaskStatusRequest req;
    {
      absl::MutexLock lock(&mu_);
      while (pending_reports_.empty() && !stop_) report_cv_.WaitWithTimeout(&mu_, absl::Seconds(1));
      if (stop_ && pending_reports_.empty()) return;
      if (node_id_.empty()) {
        mu_.Unlock();
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        mu_.Lock();
        if (stop_) return;
        continue;
      }
      req.set_node_id(node_id_);
      for (auto& [id, st] : pending_reports_) {
        auto* r = req.add_reports();
        r->set_task_id(id);
        *r->mutable_status() = st;
      }
      pending_reports_.clear();
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(absl::Seconds(5)));
    v1::ReportTaskStatusResponse resp;
    auto [used, stub] = Manager();
    grpc::Status s = stub->ReportTaskStatus(&ctx, req, &resp);
    if (!s.ok()) {
      ManagerFailed(used, s);
      spdlog::warn("reporting task status: {}", s.error_message());
      absl::MutexLock lock(&mu_);
      // Newer reports queued meanwhile win; put back the rest.
      for (const auto& r : req.reports()) pending_reports_.try_emplace(r.task_id(), r.status());
      if (stop_) return;
      mu_.Unlock();
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      mu_.Lock();
    }
  }
}

std::map<std::string, std::string> WorkerAgent::TaskEnv(const v1::Task& task) const {
  std::map<std::string, std::string> env(task.spec().env().begin(), task.spec().env().end());
  env["WARREN_TASK_IP"] = task.address();
  env["WARREN_TASK_PORT"] = std::to_string(task.port());
  env["WARREN_SERVICE"] = task.service_name();
  env["WARREN_REVISION"] = std::to_string(task.revision());
  env["WARREN_TASK_ID"] = task.id();
  env["WARREN_TASK_SLOT"] = std::to_string(task.slot());
  env["WARREN_NODE_ID"] = task.node_id();
  return env;
}

void WorkerAgent::Apply(const v1::Assignments& assignments) {
  std::set<std::string> assigned_ids;
  std::vector<v1::Task> to_start;
  std::vector<std::pair<std::string, absl::Duration>> to_stop;
  std::vector<std::pair<std::string, v1::Task>> to_adopt;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_.Now();
    // A delta carries only the secrets of its own tasks: the others keep theirs.
    if (!assignments.delta()) secret_values_.clear();
    for (const v1::SecretValue& v : assignments.secrets()) {
      secret_values_[v.name()] = security::SecretBytes(v.value());
    }
    for (const v1::Task& t : assignments.tasks()) {
      assigned_ids.insert(t.id());
      auto it = tasks_.find(t.id());
      const bool want_running = t.desired_state() == v1::TASK_STATE_RUNNING;
      const absl::Duration stop_timeout = DurationOr(t.spec().stop_timeout(), absl::Seconds(10));
      if (it == tasks_.end()) {
        if (!want_running) {
          v1::TaskStatus st = t.status();
          st.set_state(v1::TASK_STATE_SHUTDOWN);
          st.set_message("stopped before it started");
          *st.mutable_timestamp() = ToProtoTime(now);
          QueueReport(t.id(), st);
          continue;
        }
        if (stopping_tasks_) continue;  // the agent is going away with its tasks
        // Not placed yet (no address): the manager sends it again once it is.
        if (t.status().state() == v1::TASK_STATE_PENDING) continue;
        if (t.status().state() == v1::TASK_STATE_ASSIGNED) {
          Local& l = tasks_[t.id()];
          l.task = t;
          l.assigned = true;
          unassigned_.erase(t.id());
          l.starting = true;
          l.status.set_state(v1::TASK_STATE_STARTING);
          l.status.set_message("starting");
          *l.status.mutable_timestamp() = ToProtoTime(now);
          QueueReport(t.id(), l.status);
          to_start.push_back(t);
        } else {
          // The manager believes it runs here, but this worker does not have it: the worker
          // went away before it started it, or the task's state went with the machine. Not
          // the task's doing, so orphaned (replaced at once, not counted against a rollout).
          v1::TaskStatus st = t.status();
          st.set_state(v1::TASK_STATE_ORPHANED);
          st.clear_error();
          st.set_message("task not found on the worker (lost while the worker was down)");
          *st.mutable_timestamp() = ToProtoTime(now);
          *st.mutable_finished_at() = ToProtoTime(now);
          QueueReport(t.id(), st);
        }
        continue;
      }
      Local& l = it->second;
      const bool adopting = !l.assigned;
      l.task = t;
      if (!l.status.address().empty()) l.task.set_address(l.status.address());
      l.assigned = true;
      if (adopting) unassigned_.erase(t.id());
      if (adopting && !l.exited) {
        if (want_running) {
          l.status.set_message("adopted after a worker restart");
          l.may_have_served = true;
          *l.status.mutable_timestamp() = ToProtoTime(now);
          // The health the manager holds goes on (state and healthy-since): the task kept
          // running, and reporting it starting again would take it out of the routing table
          // and restart its min-ready (issue 17 D6). The prober checks it again at once.
          if (!t.spec().has_health_check()) {
            l.status.mutable_health()->set_state(v1::HEALTH_STATE_NONE);
          } else {
            v1::TaskHealth health = t.status().health();
            if (health.state() == v1::HEALTH_STATE_UNSPECIFIED ||
                health.state() == v1::HEALTH_STATE_NONE) {
              health.Clear();
              health.set_state(v1::HEALTH_STATE_STARTING);
            }
            *l.status.mutable_health() = health;
          }
          QueueReport(t.id(), l.status);
          to_adopt.emplace_back(t.id(), l.task);
        } else {
          l.stopping = true;
          to_stop.emplace_back(t.id(), stop_timeout);
        }
        continue;
      }
      if (adopting && l.exited) {
        *l.status.mutable_timestamp() = ToProtoTime(now);
        QueueReport(t.id(), l.status);
        continue;
      }
      if (!want_running && !l.stopping && !l.exited) {
        l.stopping = true;
        to_stop.emplace_back(t.id(), stop_timeout);
      }
    }
    // Local tasks the manager no longer assigns here: stop and forget them. A delta names
    // them; a full set leaves them out.
    auto unassign = [&](const std::string& id, Local& l) {
      l.assigned = false;
      unassigned_.insert(id);
      if (!l.exited && !l.stopping) {
        l.stopping = true;
        to_stop.emplace_back(id, DurationOr(l.task.spec().stop_timeout(), absl::Seconds(10)));
      }
    };
    if (assignments.delta()) {
      for (const std::string& id : assignments.removed_task_ids()) {
        if (auto it = tasks_.find(id); it != tasks_.end()) unassign(id, it->second);
      }
      if (!assignments.removed_task_ids().empty() && !secret_values_.empty()) {
        // Need to know: drop the values no task still assigned here uses.
        std::set<std::string> used;
        for (const auto& [id, l] : tasks_) {
          if (!l.assigned) continue;
          for (const v1::SecretReference& ref : l.task.spec().secrets()) used.insert(ref.name());
        }
        std::erase_if(secret_values_, [&](const auto& kv) { return !used.count(kv.first); });
      }
    } else {
      for (auto& [id, l] : tasks_) {
        if (!assigned_ids.count(id)) unassign(id, l);
      }
    }
    // Forget the unassigned tasks that have exited (the others are still stopping).
    for (auto it = unassigned_.begin(); it != unassigned_.end();) {
      auto t = tasks_.find(*it);
      if (t != tasks_.end() && !t->second.exited) {
        ++it;
        continue;
      }
      if (t != tasks_.end()) {
        driver_->Remove(*it);
        secret_files_->Remove(*it);
        tasks_.erase(t);
      }
      it = unassigned_.erase(it);
    }
  }
  for (const auto& [id, t] : to_adopt) {
    if (t.spec().has_health_check()) {
      prober_->Resume(id, t.address(), t.port(), t.spec().health_check(),
                      FromProtoTime(t.status().started_at()), t.status().health());
    }
  }
  for (const auto& t : to_start) {
    Spawn([this, t] { StartTask(t); });
  }
  for (const auto& [id, timeout] : to_stop) {
    Spawn([this, id = id, timeout = timeout] { StopTask(id, timeout, true, /*drain=*/true); });
  }
}

std::optional<std::string> WorkerAgent::FreeTaskAddress(const v1::Task& task) {
  auto in_use = [&] {
    std::set<std::string> addresses;
    absl::MutexLock lock(&mu_);
    for (const auto& [id, l] : tasks_) {
      if (id != task.id() && !l.exited) addresses.insert(l.task.address());
    }
    return addresses;
  };
  std::vector<int> ports = {task.port()};
  for (const v1::Port& p : task.spec().ports()) {
    if (p.target() > 0 && p.target() != task.port()) ports.push_back(p.target());
  }
  absl::StatusOr<std::string> ip =
      PickTaskAddress(task.address(), ports, TaskRange(), in_use,
                      [](const std::string& host_port) { return ProbeBind(host_port); });
  if (ip.ok()) return *ip;
  const absl::Time now = clock_.Now();
  absl::MutexLock lock(&mu_);
  auto it = tasks_.find(task.id());
  if (it == tasks_.end()) return std::nullopt;
  Local& l = it->second;
  l.starting = false;
  l.exited = true;
  l.status.set_state(v1::TASK_STATE_FAILED);
  l.status.set_error(std::string(ip.status().message()));
  l.status.set_message("could not start");
  *l.status.mutable_timestamp() = ToProtoTime(now);
  *l.status.mutable_finished_at() = ToProtoTime(now);
  QueueReport(task.id(), l.status);
  return std::nullopt;
}

void WorkerAgent::StartTask(const v1::Task& assigned) {
  v1::Task task = assigned;
  // Another program may hold the scheduler's address (another cluster on this machine): the
  // task then listens on the next free one, which the status report tells the manager.
  std::string moved_from;
  if (!driver_->AssignsAddresses() && !task.address().empty()) {
    std::optional<std::string> ip = FreeTaskAddress(task);
    if (!ip) return;  // reported as failed
    if (*ip != task.address()) {
      spdlog::warn("task {} of {}: {}:{} is taken by another program; it listens on {} instead",
                   task.id(), task.service_name(), task.address(), task.port(), *ip);
      moved_from = task.address();
      task.set_address(*ip);
      absl::MutexLock lock(&mu_);
      if (auto it = tasks_.find(task.id()); it != tasks_.end()) it->second.task.set_address(*ip);
    }
  }
  TaskRunSpec spec;
  spec.task_id = task.id();
  spec.service_name = task.service_name();
  spec.revision = task.revision();
  spec.spec = task.spec();
  spec.address = task.address();
  spec.port = task.port();
  spec.env = TaskEnv(task);
  absl::Status s = WriteSecrets(task, &spec);
  if (s.ok()) s = driver_->Start(spec);
  if (!s.ok()) secret_files_->Remove(task.id());
  const absl::Time now = clock_.Now();
  bool stop_now = false;
  std::string address = task.address();
  {
    absl::MutexLock lock(&mu_);
    auto it = tasks_.find(task.id());
    if (it == tasks_.end()) return;
    Local& l = it->second;
    l.starting = false;
    if (!s.ok()) {
      l.exited = true;
      l.status.set_state(v1::TASK_STATE_FAILED);
      l.status.set_error(std::string(s.message()));
      l.status.set_message("could not start");
      *l.status.mutable_timestamp() = ToProtoTime(now);
      *l.status.mutable_finished_at() = ToProtoTime(now);
      QueueReport(task.id(), l.status);
      return;
    }
    auto st = driver_->Inspect(task.id());
    if (l.exited) return;  // it already exited (listener ran first)
    l.status.set_state(v1::TASK_STATE_RUNNING);
    l.status.set_message(moved_from.empty()
                             ? "running"
                             : absl::StrCat("running on ", task.address(), " (", moved_from,
                                            " was taken by another program)"));
    if (st) l.status.set_pid(st->pid);
    if (!moved_from.empty()) l.status.set_address(task.address());
    if (st && !st->address.empty()) {
      l.status.set_address(st->address);
      l.task.set_address(st->address);
      address = st->address;
    }
    *l.status.mutable_started_at() = ToProtoTime(now);
    *l.status.mutable_timestamp() = ToProtoTime(now);
    l.status.mutable_health()->set_state(task.spec().has_health_check() ? v1::HEALTH_STATE_STARTING
                                                                        : v1::HEALTH_STATE_NONE);
    QueueReport(task.id(), l.status);
    stop_now = l.stopping;
  }
  if (task.spec().has_health_check()) {
    prober_->Watch(task.id(), address, task.port(), task.spec().health_check(), now);
  }
  if (stop_now)
    StopTask(task.id(), DurationOr(task.spec().stop_timeout(), absl::Seconds(10)), true, false);
}

void WorkerAgent::StopTask(const std::string& task_id, absl::Duration timeout, bool report,
                           bool drain) {
  absl::Duration drain_for = absl::ZeroDuration();
  {
    absl::MutexLock lock(&mu_);
    auto it = tasks_.find(task_id);
    if (it != tasks_.end()) it->second.stopping = true;
    if (it != tasks_.end() && it->second.starting) return;  // StartTask stops it when done
    // Only a task that may have served traffic needs draining: a task with a health check
    // that never passed was never routed to, and draining it would only delay a rollback.
    if (drain && it != tasks_.end() && it->second.status.state() == v1::TASK_STATE_RUNNING &&
        (!it->second.task.spec().has_health_check() || it->second.may_have_served)) {
      drain_for = DurationOr(it->second.task.spec().drain_timeout(), absl::ZeroDuration());
      if (drain_for > absl::ZeroDuration()) {
        it->second.status.set_message(
            absl::StrCat("draining for ", absl::FormatDuration(drain_for), " before stop"));
        QueueReport(task_id, it->second.status);
      }
    }
  }
  // The task has left the routing table (its desired state is shutdown); in-flight requests
  // finish while it keeps running. A stopping agent cuts the wait short.
  const absl::Time drain_until = clock_.Now() + drain_for;
  while (clock_.Now() < drain_until && !stop_) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (prober_) prober_->Unwatch(task_id);
  absl::Status s = driver_->Stop(task_id, timeout);
  if (secret_files_) secret_files_->Remove(task_id);
  const absl::Time now = clock_.Now();
  absl::MutexLock lock(&mu_);
  auto it = tasks_.find(task_id);
  if (it == tasks_.end()) return;
  Local& l = it->second;
  l.exited = true;
  l.status.set_state(v1::TASK_STATE_SHUTDOWN);
  l.status.set_message(s.ok() ? "stopped" : absl::StrCat("stop: ", s.message()));
  *l.status.mutable_timestamp() = ToProtoTime(now);
  *l.status.mutable_finished_at() = ToProtoTime(now);
  if (report) QueueReport(task_id, l.status);
}

absl::Status WorkerAgent::WriteSecrets(const v1::Task& task, TaskRunSpec* spec) {
  if (task.spec().secrets().empty()) return absl::OkStatus();
  std::vector<SecretFile> files;
  {
    absl::MutexLock lock(&mu_);
    for (const v1::SecretReference& ref : task.spec().secrets()) {
      auto it = secret_values_.find(ref.name());
      if (it == secret_values_.end()) {
        return absl::FailedPreconditionError(
            absl::StrCat("secret \"", ref.name(), "\" was not sent with the task (removed?)"));
      }
      files.push_back(SecretFile{ref.target(), ref.mode() == 0 ? 0400u : ref.mode(), it->second,
                                 ref.uid(), ref.gid()});
    }
  }
  absl::StatusOr<std::string> dir = secret_files_->Create(task.id(), files);
  if (!dir.ok()) return dir.status();
  spec->secrets_dir = *dir;
  spec->env["WARREN_SECRETS_DIR"] = *dir;
  return absl::OkStatus();
}

void WorkerAgent::OnRuntimeChange(const std::string& task_id, const TaskRuntimeState& state) {
  if (state.phase == TaskRuntimeState::Phase::kStarting) {
    // Progress of a slow start (an image pull): shown by `service ps` while it lasts.
    absl::MutexLock lock(&mu_);
    auto it = tasks_.find(task_id);
    if (it == tasks_.end() || !it->second.starting || state.message.empty() ||
        it->second.status.message() == state.message) {
      return;
    }
    it->second.status.set_message(state.message);
    *it->second.status.mutable_timestamp() = ToProtoTime(clock_.Now());
    QueueReport(task_id, it->second.status);
    return;
  }
  if (state.phase != TaskRuntimeState::Phase::kExited) return;
  const absl::Time now = clock_.Now();
  bool unwatch = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = tasks_.find(task_id);
    if (it == tasks_.end()) return;
    Local& l = it->second;
    if (l.stopping || l.exited) return;  // StopTask reports SHUTDOWN
    l.exited = true;
    unwatch = true;
    auto* st = &l.status;
    st->set_has_exit_code(state.has_exit_code);
    st->set_exit_code(state.exit_code);
    st->set_error(state.error);
    if (state.has_exit_code && state.exit_code == 0) {
      st->set_state(v1::TASK_STATE_COMPLETE);
      st->set_message("exited 0");
    } else {
      st->set_state(v1::TASK_STATE_FAILED);
      st->set_message(state.has_exit_code ? absl::StrCat("exited ", state.exit_code)
                                          : std::string("exited"));
    }
    *st->mutable_timestamp() = ToProtoTime(now);
    *st->mutable_finished_at() = ToProtoTime(now);
    QueueReport(task_id, *st);
  }
  if (unwatch && prober_) prober_->Unwatch(task_id);
  // The task is gone: so are its secrets (a restart is a new task with a new directory).
  if (unwatch && secret_files_) secret_files_->Remove(task_id);
}

void WorkerAgent::OnHealthChange(const std::string& task_id, const v1::TaskHealth& health) {
  absl::MutexLock lock(&mu_);
  auto it = tasks_.find(task_id);
  if (it == tasks_.end() || it->second.exited || it->second.stopping) return;
  if (health.state() == v1::HEALTH_STATE_HEALTHY) it->second.may_have_served = true;
  v1::TaskHealth& current = *it->second.status.mutable_health();
  // Every probe result would be a store write; report what changes, and the last probe
  // now and then so `service ps` stays fresh.
  const bool significant =
      current.state() != health.state() || current.last_probe().ok() != health.last_probe().ok() ||
      current.last_probe().output() != health.last_probe().output() ||
      FromProtoTime(health.last_probe().time()) - FromProtoTime(current.last_probe().time()) >=
          absl::Seconds(10);
  if (!significant) return;
  current = health;
  QueueReport(task_id, it->second.status);
}

}  // namespace warren
