#include "manager/server.h"

#include <signal.h>
#include <sys/resource.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/cluster_cidr.h"
#include "common/data_dir.h"
#include "common/grpc_services.h"
#include "common/ids.h"
#include "common/manager_list.h"
#include "common/role_defaults.h"
#include "common/systemd_notify.h"
#include "common/task_state.h"
#include "dns/cluster_dns.h"
#include "http/descriptor_budget.h"
#include "http/grpc_acceptor.h"
#include "http/http_server.h"
#include "http/metrics.h"
#include "manager/ca_service.h"
#include "manager/cluster_admin_service.h"
#include "manager/cluster_identity.h"
#include "manager/dashboard_access_service.h"
#include "manager/etcd_compactor.h"
#include "manager/manager_store.h"
#include "manager/node_subnets.h"
#include "manager/readiness.h"
#include "manager/secret_service.h"
#include "security/cert_renewer.h"
#include "security/client_bundle.h"
#include "security/https_context.h"
#include "security/tls_credentials.h"
#include "spdlog/spdlog.h"
#include "store/typed_store.h"
#include "ui/dashboard.h"
#include "ui/login.h"
#include "worker/agent.h"
#include "worker/cni_config.h"
#include "worker/cri_driver.h"
#include "worker/fake_driver.h"
#include "worker/join.h"
#include "worker/process_driver.h"

namespace warren {

void BlockTerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

int WaitForTerminationSignal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

// Like WaitForTerminationSignal, or 0 as soon as `done` returns true (checked every 200 ms).
int WaitForTerminationSignalOr(const std::function<bool()>& done) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  const timespec period = {0, 200'000'000};
  while (!done()) {
    int sig = sigtimedwait(&set, nullptr, &period);
    if (sig > 0) return sig;
  }
  return 0;
}

namespace {

// The SANs of the manager's certificate.
// The host a browser or the CLI would name for a listen address: its own host, or this
// machine's name for every interface.
std::string DisplayHost(const std::string& addr) {
  std::string host = addr.substr(0, addr.rfind(':'));
  if (host.empty() || host == "0.0.0.0" || host == "[::]") {
    char name[256] = {};
    if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "127.0.0.1";
    return name;
  }
  return host;
}

// The names in the manager's certificate: loopback, the API's and the dashboard's (metrics)
// hosts, and the machine's name when either listens on every interface, so a browser opening
// the dashboard by that name accepts it.
std::vector<std::string> ManagerHosts(const ManagerOptions& options) {
  std::vector<std::string> hosts = {"127.0.0.1", "localhost"};
  for (const std::string& addr : {options.api_addr, options.metrics_addr}) {
    if (addr.empty()) continue;
    std::string host(absl::StripSuffix(absl::StripPrefix(DisplayHost(addr), "["), "]"));
    // A machine name that is not a DNS name (an underscore...) would fail the certificate.
    if (host.find_first_not_of(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:") !=
        std::string::npos) {
      continue;
    }
    if (std::find(hosts.begin(), hosts.end(), host) == hosts.end()) hosts.push_back(host);
  }
  return hosts;
}

// The manager's own certificate, issued afresh at every start into <data-dir>/tls (re-read by
// gRPC from there), and server credentials that ask for a client certificate without requiring
// one: the CA bootstrap calls come without, and every other call is refused per RPC.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ManagerServerCredentials(
    const security::ClusterAuthority& authority, const ManagerOptions& options,
    std::shared_ptr<const security::RevocationList> revoked, absl::Time now) {
  auto kc = authority.ca().IssueKeyAndCertificate(
      {"manager", security::Role::kManager, authority.cluster_id()},
      {authority.node_cert_validity(), ManagerHosts(options)}, now);
  if (!kc.ok()) return kc.status();
  security::CredentialsDirectory dir((std::filesystem::path(options.data_dir) / "tls").string());
  if (auto s = dir.Install({authority.ca().cert_pem(), kc->cert_pem, kc->key_pem}, now); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("manager certificate: ", s.message()));
  }
  security::ServerTlsOptions tls;
  tls.client_certificates = security::ClientCertificates::kVerifyIfPresent;
  tls.clients = {authority.cluster_id(), {}, "", std::move(revoked)};
  return security::MakeServerCredentials(dir.files(), tls);
}

// A new revision of `name` with its template's secret references at the secrets' current
// versions, through the API's own update (same checks, same rolling update). Retried when the
// service changes between the read and the write, so no concurrent update is lost.
absl::Status RollServiceOntoSecrets(ControlService& api, const std::string& name,
                                    const std::string& cause) {
  absl::Status last;
  for (int attempt = 0; attempt < 8; ++attempt) {
    v1::GetServiceRequest get;
    get.set_name_or_id(name);
    v1::Service current;
    if (grpc::Status s = api.GetService(nullptr, &get, &current); !s.ok()) {
      return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
    }
    v1::UpdateServiceRequest update;
    *update.mutable_spec() = current.spec();
    update.set_expected_version(current.version());
    update.set_change_cause(cause);
    v1::Service updated;
    grpc::Status s = api.UpdateService(nullptr, &update, &updated);
    if (s.ok()) return absl::OkStatus();
    last = absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
    if (s.error_code() != grpc::StatusCode::FAILED_PRECONDITION) return last;
  }
  return last;
}

}  // namespace

absl::StatusOr<security::SecretBytes> ManagerServer::ClusterKey() const {
  // Loaded before the API serves; a manager without it never started.
  if (!authority_) return absl::FailedPreconditionError("secrets: the cluster key is not loaded");
  return authority_->cluster_key();
}

absl::StatusOr<std::unique_ptr<ManagerServer>> ManagerServer::Start(const ManagerOptions& options,
                                                                    const Clock& clock) {
  EnableStandardGrpcServices();
  // Before anything is written: a refused plaintext listener must leave no CA, key or store.
  if (!options.tls) {
    auto plaintext = security::Authorizer::Create(security::AuthMode::kPlaintextLoopback,
                                                  options.api_addr, "", nullptr);
    if (!plaintext.ok()) {
      return absl::Status(plaintext.status().code(),
                          absl::StrCat("api-addr ", plaintext.status().message()));
    }
  }
  // Before anything is written, like the plaintext check.
  if (!options.cluster_cidr.empty()) {
    if (auto cidr = ClusterCidr::Parse("--cluster-cidr", options.cluster_cidr); !cidr.ok()) {
      return cidr.status();
    }
  }
  std::unique_ptr<ManagerServer> m(new ManagerServer());
  m->manager_id_ = NewId();
  // Before the store opens: a second manager on the same store would overwrite what the first
  // one acknowledged.
  auto lock = DataDirLock::Acquire(options.data_dir, "manager");
  if (!lock.ok()) return lock.status();
  m->data_dir_lock_ = std::move(*lock);
  auto store = OpenManagerStore(options);
  if (!store.ok()) return store.status();
  m->store_ = std::move(store->store);
  m->etcd_ = std::move(*store);
  security::ClusterAuthorityOptions authority_options;
  if (options.cert_validity != absl::ZeroDuration()) {
    authority_options.node_cert_validity = options.cert_validity;
  }
  auto authority =
      LoadOrCreateClusterAuthority(*m->store_, options.data_dir, clock.Now(), authority_options);
  if (!authority.ok()) return authority.status();
  m->authority_ = std::make_unique<security::ClusterAuthority>(std::move(*authority));
  // Stored with the cluster at its first start; never changed after (docs/networking.md).
  auto cidr = LoadOrStoreClusterCidr(*m->store_, options.cluster_cidr);
  if (!cidr.ok()) return cidr.status();
  spdlog::info("cluster CIDR {}: a /24 for each of up to {} nodes", cidr->ToString(),
               cidr->SubnetCount());
  if (options.cert_validity != absl::ZeroDuration() &&
      options.cert_validity != m->authority_->node_cert_validity()) {
    if (auto s = m->authority_->set_node_cert_validity(options.cert_validity); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("--cert-validity: ", s.message()));
    }
    if (auto s = SaveClusterAuthority(*m->store_, options.data_dir, *m->authority_); !s.ok()) {
      return s;
    }
  }
  m->registry_ = std::make_unique<Registry>();
  m->metrics_ = std::make_unique<ManagerMetrics>(*m->registry_);
  m->events_ = std::make_unique<EventLog>(*m->store_, clock);
  m->liveness_ = std::make_unique<NodeLiveness>(clock);
  ApiOptions api_options;
  api_options.node_timeout = options.node_timeout;
  m->api_ = std::make_unique<ManagerApi>(*m->store_, clock, *m->events_, *m->liveness_, api_options,
                                         m->metrics_.get());
  m->revoked_ = std::make_shared<security::RevocationList>();
  // The nodes removed before this start stay refused.
  auto stored_revocations = LoadRevocationList(*m->store_);
  if (!stored_revocations.ok()) return stored_revocations.status();
  if (auto s = m->revoked_->Replace(*stored_revocations); !s.ok()) return s;
  m->revoked_->Prune(clock.Now());
  m->api_->SetRevocation(m->revoked_, m->authority_->node_cert_validity());
  // Plaintext allows every call; Create refuses it on a non-loopback address.
  auto authorizer = security::Authorizer::Create(
      options.tls ? security::AuthMode::kMutualTls : security::AuthMode::kPlaintextLoopback,
      options.api_addr, m->authority_->cluster_id(), m->revoked_);
  if (!authorizer.ok()) {
    return absl::Status(authorizer.status().code(),
                        absl::StrCat("api-addr ", authorizer.status().message()));
  }
  m->api_->SetAuthorizer(*authorizer);
  Store& controller_store = m->etcd_.controller_store ? *m->etcd_.controller_store : *m->store_;
  m->controller_ = std::make_unique<Controller>(controller_store, clock, *m->events_, *m->liveness_,
                                                options.node_timeout, m->metrics_.get());

  m->routes_ = std::make_unique<RoutingTableCache>(*m->store_, clock);
  m->traffic_ = std::make_unique<TrafficStats>(clock);
  m->api_->SetTraffic(m->routes_.get(), m->traffic_.get());
  m->api_->SetSecretKey([raw = m.get()] { return raw->ClusterKey(); });
  m->api_->SetAcmeEnabled(!options.acme_directory.empty());
  if (!options.acme_directory.empty()) {
    AcmeControllerOptions acme;
    acme.acme.directory_url = options.acme_directory;
    acme.acme.email = options.acme_email;
    acme.ca_bundle = options.acme_ca_bundle;
    // Through the controllers' store: on several managers only the leader's commits land.
    m->acme_ = std::make_unique<AcmeController>(
        controller_store, clock, *m->events_, [raw = m.get()] { return raw->ClusterKey(); },
        std::move(acme));
  }
  m->controller_->SetTraffic(m->traffic_.get());
  if (m->etcd_.etcd) {
    // Several managers share etcd: this one's controllers run, and its Dispatcher serves the
    // workers, only while it leads.
    m->controller_->SetLeadership([raw = m.get()] { return raw->IsLeader(); });
    if (m->acme_) m->acme_->SetLeadership([raw = m.get()] { return raw->IsLeader(); });
    m->api_->SetLeadership([raw = m.get()] { return raw->LeadsOrNamesLeader(); });
    m->compactor_ = std::make_unique<EtcdCompactor>(
        *m->etcd_.etcd_store, clock, options.store.etcd_compaction_interval,
        [raw = m.get()] { return raw->IsLeader(); }, m->registry_.get());
  }
  m->api_->SetManagers([raw = m.get()] { return raw->Managers(); });
  m->controller_->SetPrometheusUrl(options.prometheus_url);
  m->controller_->SetTaskHistory(options.task_history);
  m->metrics_->AddCanaryGauges(*m->store_, *m->traffic_);
  DnsOptions dns_options = options.dns;
  const DnsAddrChoice dns_addr = ChooseDnsAddr(options.dns.addr, kManagerDnsAddr);
  if (!dns_addr.warning.empty()) spdlog::warn("{}", dns_addr.warning);
  dns_options.addr = dns_addr.addr;
  if (!dns_options.addr.empty()) {
    auto d = dns::ClusterDns::Start(dns_options);
    if (!d.ok()) return d.status();
    m->dns_ = std::move(*d);
    ManagerServer* raw = m.get();
    m->dns_thread_ = std::thread([raw] {
      uint64_t applied = 0;
      while (!raw->stopping_) {
        const uint64_t seen = raw->store_->Version();
        const std::shared_ptr<const v1::RoutingTable> table = raw->routes_->Get();
        if (table->version() != applied) {
          raw->dns_->Update(*table);
          applied = table->version();
        }
        raw->store_->WaitForVersion(seen, absl::Milliseconds(100));
      }
    });
  }

  grpc::ServerBuilder builder;
  ConfigureGrpcServer(builder);
  // Our own accept loop feeds the server in both modes: gRPC 1.51's listener dies on the first
  // EMFILE.
  auto acceptor = GrpcAcceptor::Listen(options.api_addr);
  if (!acceptor.ok()) {
    return absl::Status(acceptor.status().code(),
                        absl::StrCat("api-addr ", acceptor.status().message()));
  }
  m->grpc_acceptor_ = std::move(*acceptor);
  // Before the server starts: calls read it (Managers).
  m->api_addr_ = absl::StrCat(options.api_addr.substr(0, options.api_addr.rfind(':')), ":",
                              m->grpc_acceptor_->port());
  if (options.tls) {
    auto creds = ManagerServerCredentials(*m->authority_, options, m->revoked_, clock.Now());
    if (!creds.ok()) return creds.status();
    m->grpc_acceptor_->UseTls(builder, *creds);
    const std::string tls_root =
        options.tls_root.empty() ? security::DefaultTlsRoot() : options.tls_root;
    auto bundle = security::WriteAdminBundle(tls_root, *m->authority_,
                                             m->authority_->node_cert_validity(), clock.Now());
    if (!bundle.ok()) return bundle.status();
    m->admin_bundle_dir_ = *bundle;
    // The manager renews its own certificate from the in-process CA, as nodes do theirs, and
    // with it the admin bundle issued together with it: the CLI on this host keeps working
    // under a short --cert-validity.
    m->tls_renewer_ = std::make_unique<security::CertificateRenewer>(
        security::CredentialsDirectory((std::filesystem::path(options.data_dir) / "tls").string()),
        [raw = m.get(), hosts = ManagerHosts(options), tls_root, &clock](
            const security::CertificateInfo& current,
            const std::string& csr) -> absl::StatusOr<security::RenewedCertificate> {
          auto issued = raw->authority_->Renew(current, csr, hosts, *raw->revoked_, clock.Now());
          if (!issued.ok()) return issued.status();
          auto admin = security::WriteAdminBundle(
              tls_root, *raw->authority_, raw->authority_->node_cert_validity(), clock.Now());
          if (!admin.ok()) {
            spdlog::warn("renewing the admin client bundle: {}", admin.status().ToString());
          }
          return security::RenewedCertificate{issued->cert_pem, raw->authority_->ca().cert_pem()};
        },
        clock, std::random_device()());
    m->tls_renewer_->Start();
    // The manager reads task logs with its own certificate and accepts only the node that runs
    // the task (its id in the certificate, not a host name).
    m->api_->SetNodeCredentials(
        [files = security::CredentialsDirectory(
                     (std::filesystem::path(options.data_dir) / "tls").string())
                     .files(),
         cluster = m->authority_->cluster_id()](const std::string& node_id) {
          security::ChannelTlsOptions tls;
          tls.server = {cluster, {}, node_id, nullptr};
          return security::MakeChannelCredentials(files, tls);
        });
  }
  builder.RegisterService(&m->api_->control());
  builder.RegisterService(&m->api_->dispatcher());
  builder.RegisterService(&m->api_->ingress());
  ClusterStatusSource status_source;
  status_source.etcd = m->etcd_.etcd;
  status_source.etcd_prefix = m->etcd_.etcd_prefix;
  status_source.managers = [raw = m.get()] { return raw->Managers(); };
  m->admin_ =
      std::make_unique<ClusterAdminService>(*m->store_, options.data_dir, std::move(status_source));
  m->admin_->SetAuthorizer(*authorizer);
  builder.RegisterService(m->admin_.get());
  m->ca_ = std::make_unique<CaService>(*m->authority_, *m->store_, options.data_dir, m->revoked_,
                                       clock, *authorizer);
  builder.RegisterService(m->ca_.get());
  m->secrets_ = std::make_unique<SecretService>(
      *m->store_, clock, *m->events_, [raw = m.get()] { return raw->ClusterKey(); },
      [api = m->api_.get()](const std::string& name, const std::string& cause) {
        return RollServiceOntoSecrets(api->control(), name, cause);
      });
  m->secrets_->SetAuthorizer(*authorizer);
  builder.RegisterService(m->secrets_.get());
  if (options.tls) {
    auto keys = ui::DashboardKeys::Derive(m->authority_->cluster_key());
    if (!keys.ok()) return keys.status();
    m->dashboard_keys_ = std::make_shared<const ui::DashboardKeys>(std::move(*keys));
  }
  // The URL `warren dashboard token` prints, with the HTTP server's bound port (port 0 in tests).
  std::function<std::string()> dashboard_url = [] { return std::string(); };
  if (!options.metrics_addr.empty()) {
    dashboard_url = [raw = m.get(), scheme = options.tls ? "https://" : "http://",
                     host = DisplayHost(options.metrics_addr)] {
      return absl::StrCat(scheme, host, ":", raw->metrics_port(), "/ui/");
    };
  }
  m->dashboard_access_ = std::make_unique<DashboardAccessService>(
      m->dashboard_keys_, std::move(dashboard_url), clock, *authorizer);
  builder.RegisterService(m->dashboard_access_.get());
  m->grpc_server_ = builder.BuildAndStart();
  if (!m->grpc_server_) {
    return absl::InternalError(
        absl::StrCat("api-addr ", options.api_addr, ": gRPC server failed to start"));
  }
  m->grpc_acceptor_->Start(m->grpc_server_.get());
  m->health_ = std::make_unique<HealthStatusUpdater>(
      *m->grpc_server_, [st = m->store_.get()] { return st->Corruption().empty(); },
      std::vector<std::string>{v1::Control::service_full_name(),
                               v1::Dispatcher::service_full_name(),
                               v1::ClusterAdmin::service_full_name(), v1::Ca::service_full_name(),
                               v1::Secrets::service_full_name(), v1::Ingresses::service_full_name(),
                               v1::DashboardAccess::service_full_name()});

  // Gauges are read from the store at scrape time.
  Store* st = m->store_.get();
  m->registry_->AddCallbackGauge("warren_services", "Services in the store.", {}, [st] {
    return Registry::Samples{{{}, static_cast<double>(st->List(Kind::kService).size())}};
  });
  m->registry_->AddCallbackGauge("warren_tasks", "Tasks by observed state.", {"state"}, [st] {
    std::map<std::string, double> counts;
    for (int s = v1::TASK_STATE_PENDING; s <= v1::TASK_STATE_ORPHANED; ++s) {
      counts[TaskStateName(static_cast<v1::TaskState>(s))] = 0;
    }
    for (const auto& t : ListObjects<v1::Task>(*st)) counts[TaskStateName(t.status().state())]++;
    Registry::Samples out;
    for (const auto& [k, v] : counts) out.push_back({{k}, v});
    return out;
  });
  m->registry_->AddCallbackGauge("warren_nodes", "Nodes by state.", {"state"}, [st] {
    std::map<std::string, double> counts{{"ready", 0}, {"down", 0}};
    for (const auto& n : ListObjects<v1::Node>(*st)) counts[NodeStateName(n.state())]++;
    Registry::Samples out;
    for (const auto& [k, v] : counts) out.push_back({{k}, v});
    return out;
  });
  m->registry_->AddCallbackGauge("warren_revisions", "Service revisions kept.", {}, [st] {
    return Registry::Samples{{{}, static_cast<double>(st->List(Kind::kRevision).size())}};
  });
  m->registry_->AddCallbackGauge(
      "warren_store_version", "Version of the last store commit.", {}, [st] {
        return Registry::Samples{{{}, static_cast<double>(st->Version())}};
      });
  Controller* ctl = m->controller_.get();
  m->registry_->AddCallbackGauge(
      "warren_controller_passes", "Control loop passes since start.", {}, [ctl] {
        return Registry::Samples{{{}, static_cast<double>(ctl->stats().passes)}};
      });
  m->registry_->AddCallbackGauge(
      "warren_controller_leading",
      "1 while this manager's controllers run (it leads on etcd; always on SQLite).", {}, [ctl] {
        return Registry::Samples{{{}, ctl->stats().leading ? 1.0 : 0.0}};
      });
  m->registry_->AddCallbackGauge(
      "warren_controller_term_passes", "Control loop passes since this manager last began to lead.",
      {}, [ctl] {
        return Registry::Samples{{{}, static_cast<double>(ctl->stats().term_passes)}};
      });
  m->registry_->AddCallbackGauge(
      "warren_store_corrupt_objects",
      "Objects found corrupt in the store (left out of reads; /readyz is not ready meanwhile).", {},
      [st] {
        return Registry::Samples{{{}, static_cast<double>(st->Corruption().size())}};
      });
  m->registry_->AddCallbackGauge(
      "warren_store_disk_full",
      "1 while the store's disk is too full for commits that add objects.", {}, [st] {
        return Registry::Samples{{{}, st->CheckSpace().ok() ? 0.0 : 1.0}};
      });
  if (!options.metrics_addr.empty()) {
    // Not ready while objects are corrupt: the API would answer without them.
    ui::DashboardOptions dashboard_options;
    dashboard_options.http_addr = options.metrics_addr;
    if (options.tls) {
      dashboard_options.tls = true;
      dashboard_options.access = {m->dashboard_keys_, m->authority_->ca().cert_pem(),
                                  m->authority_->cluster_id(), m->revoked_};
    }
    m->dashboard_ = std::make_unique<ui::Dashboard>(m->api_->control(), *m->store_,
                                                    std::move(dashboard_options));
    HttpServer::Handler metrics =
        MetricsHandler(*m->registry_, [st] { return st->Corruption().empty(); });
    ui::Dashboard* dashboard = m->dashboard_.get();
    HttpServerOptions http_options;
    // A second thread keeps /metrics and the dashboard's reads going while one is busy.
    http_options.threads = 2;
    if (options.tls) {
      // HTTPS for the dashboard with the manager's own certificate, on the same port as plain
      // HTTP for /metrics and the probes (Prometheus and health checks need no certificate).
      auto source = std::make_shared<security::HttpsContextSource>(security::CredentialsDirectory(
          (std::filesystem::path(options.data_dir) / "tls").string()));
      http_options.tls_context = [source] { return source->Get(); };
    }
    auto http = HttpServer::StartAsync(
        options.metrics_addr,
        [metrics = std::move(metrics), dashboard](const HttpRequest& req,
                                                  HttpServer::Responder respond) {
          if (ui::Dashboard::Owns(req.path)) {
            dashboard->Handle(req, std::move(respond));
          } else {
            respond(metrics(req));
          }
        },
        http_options);
    if (!http.ok()) {
      return absl::Status(http.status().code(),
                          absl::StrCat("metrics-addr: ", http.status().message()));
    }
    m->metrics_server_ = std::move(*http);
  }
  const ManagerRecord me = ThisManager(m->manager_id_, m->api_addr_);
  m->advertise_addr_ = me.api_addr;
  if (auto s = StartManagerElection(m->etcd_, options, me); !s.ok()) return s;
  m->controller_->Start();
  if (m->compactor_) m->compactor_->Start();
  if (m->acme_) m->acme_->Start();
  spdlog::info("manager listening on {} (data in {})", m->api_addr_, options.data_dir);
  if (options.tls) {
    spdlog::info(
        "mutual TLS on the API; admin client bundle in {} (the CLI's default, or "
        "--tls-dir / WARREN_TLS_DIR)",
        m->admin_bundle_dir_);
  }
  if (m->dashboard_ && m->dashboard_->disabled_reason().empty()) {
    spdlog::info("dashboard on {}://{}:{}/ui/{}", options.tls ? "https" : "http",
                 DisplayHost(options.metrics_addr), m->metrics_port(),
                 options.tls ? " (log in with `warren dashboard token`; /metrics stays plain "
                               "HTTP on the same port)"
                             : "");
  }
  return m;
}

absl::Status ManagerServer::InstallHybridWorkerCertificate(WorkerOptions* worker) const {
  security::CredentialsDirectory dir((std::filesystem::path(worker->data_dir) / "tls").string());
  // The node id is the certificate's: a restart keeps the one it had (its tasks, its name).
  std::string node_id;
  if (dir.HasCredentials()) {
    if (auto old = dir.Read(); old.ok()) {
      auto info = security::ParseNodeCertificate(old->cert_pem);
      // A node removed with `node rm --force` while running comes back as a new node.
      if (info.ok() && info->identity.cluster_id == authority_->cluster_id() &&
          !revoked_->IsRevoked(*info)) {
        node_id = info->identity.node_id;
      }
    }
  }
  if (node_id.empty()) node_id = NewId();
  const absl::Time now = absl::Now();
  auto kc = authority_->ca().IssueKeyAndCertificate(
      {node_id, security::Role::kManager, authority_->cluster_id()},
      {authority_->node_cert_validity(), {"127.0.0.1", "localhost"}}, now);
  if (!kc.ok()) return kc.status();
  if (auto s = dir.Install({authority_->ca().cert_pem(), kc->cert_pem, kc->key_pem}, now);
      !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("worker certificate: ", s.message()));
  }
  const security::TlsFiles files = dir.files();
  worker->tls_ca_cert = files.ca_cert;
  worker->tls_cert = files.cert;
  worker->tls_key = files.key;
  worker->cluster_id = authority_->cluster_id();
  return absl::OkStatus();
}

bool ManagerServer::IsLeader() const {
  if (!etcd_.etcd) return true;
  // Through the slot: API calls may come before the election starts and after it stops.
  EtcdElection* e = etcd_.election_slot->load();
  return e != nullptr && e->IsLeader();
}

absl::Status ManagerServer::LeadsOrNamesLeader() const {
  if (IsLeader()) return absl::OkStatus();
  EtcdElection* e = etcd_.election_slot->load();
  // Not campaigning yet (starting) or any more (stopping).
  if (e == nullptr) return absl::UnavailableError(FormatNotLeader("(starting or stopping)", ""));
  // advertise_addr_ was set before the slot: it is read only once the slot is.
  std::string leader;
  auto l = e->Leader();
  if (l.ok() && l->has_value() && (*l)->candidate != advertise_addr_) leader = (*l)->candidate;
  return absl::UnavailableError(FormatNotLeader(advertise_addr_, leader));
}

absl::StatusOr<std::vector<v1::ManagerInfo>> ManagerServer::Managers() const {
  if (!etcd_.etcd) {
    // SQLite: this manager is the only one, and it leads.
    ManagerRoster alone;
    alone.managers.push_back(ThisManager(manager_id_, api_addr_));
    alone.leader_id = manager_id_;
    return ManagerInfos(alone, manager_id_);
  }
  auto roster = ListManagers(*etcd_.etcd, etcd_.etcd_prefix);
  if (!roster.ok()) return roster.status();
  return ManagerInfos(*roster, manager_id_);
}

int ManagerServer::metrics_port() const { return metrics_server_ ? metrics_server_->port() : 0; }

int ManagerServer::dns_port() const { return dns_ ? dns_->port() : 0; }

void ManagerServer::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  stopping_ = true;
  if (tls_renewer_) tls_renewer_->Stop();
  if (dns_thread_.joinable()) dns_thread_.join();
  dns_.reset();
  // Start() may have failed half way: only what exists is stopped.
  if (grpc_acceptor_) grpc_acceptor_->Stop();
  health_.reset();
  if (api_) api_->Shutdown();
  if (acme_) acme_->Stop();
  if (controller_) controller_->Stop();
  if (compactor_) compactor_->Stop();
  if (grpc_server_) {
    grpc_server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }
  if (dashboard_) dashboard_->Shutdown();
  if (metrics_server_) metrics_server_->Stop();
  // Hands the leadership over at once (the lease is revoked) rather than after its TTL. Last:
  // the API's calls read the leadership until the server has stopped.
  if (etcd_.election_slot) etcd_.election_slot->store(nullptr);
  etcd_.election.reset();
}

ManagerServer::~ManagerServer() { Shutdown(); }

namespace {

absl::StatusOr<std::unique_ptr<RuntimeDriver>> MakeCriDriver(const WorkerOptions& options,
                                                             const std::string& tasks_dir,
                                                             Clock& clock) {
  absl::StatusOr<NodeNetworkMode> mode = ParseNodeNetworkMode("--network", options.network);
  if (!mode.ok()) return mode.status();
  // On a routed network the pods take the node's subnet, known once the node registered: the
  // driver writes their network then (UseNodeSubnet), and the worker NATs what leaves the
  // cluster itself (NodeNetwork::SetPodNat), so pods keep their addresses between nodes.
  const bool routed = IsRouted(*mode);
  if (routed) {
    CriOptions checked = options.cri;
    checked.cni_subnet = "10.99.0.0/24";  // the node's subnet comes from the manager
    if (absl::Status s = ValidateCniOptions(checked); !s.ok()) return s;
  } else if (absl::Status s = ValidateCniOptions(options.cri); !s.ok()) {
    return s;
  }
  std::string path = "(written once the node has its subnet)";
  CriDriver::Options o;
  if (routed) {
    // host-local's record of the addresses it gave out, one per worker (the CNI plugin runs in
    // containerd's directory: an absolute path).
    std::error_code ec;
    const std::string ipam_dir =
        (std::filesystem::absolute(options.data_dir, ec) / "cni-ipam").lexically_normal().string();
    o.pod_network = [cri = options.cri,
                     ipam_dir](const std::string& subnet) -> absl::StatusOr<std::string> {
      CriOptions c = cri;
      c.cni_subnet = subnet;
      if (absl::Status s = PrepareBridge(c); !s.ok()) return s;
      absl::StatusOr<std::string> written = WriteCniConfig(c, /*masquerade=*/false, ipam_dir);
      if (!written.ok()) return written.status();
      spdlog::info("cri runtime: pod network {} on the node's subnet {} (bridge {}) in {}",
                   c.cni_network, subnet, c.cni_bridge, *written);
      return PodGateway(c);
    };
    o.dns_on_gateway = options.cri.pod_dns;
  } else {
    // Pods reach beyond the host through NAT when iptables is there to set it up; the host
    // reaches them over the bridge either way.
    std::error_code ec;
    const bool masquerade = std::filesystem::exists("/usr/sbin/iptables", ec) ||
                            std::filesystem::exists("/sbin/iptables", ec);
    if (absl::Status s = PrepareBridge(options.cri); !s.ok()) return s;
    auto written = WriteCniConfig(options.cri, masquerade);
    if (!written.ok()) return written.status();
    path = *written;
    if (options.cri.pod_dns) o.dns_server = PodGateway(options.cri);
  }
  o.socket = options.cri.socket;
  o.identity = NodeName(options);
  o.state_dir = tasks_dir;
  o.cni_network = options.cri.cni_network;
  if (!options.cri.registry_auth.empty()) {
    auto auth = RegistryAuth::Load(options.cri.registry_auth);
    if (!auth.ok()) return auth.status();
    o.auth = std::move(*auth);
    spdlog::info("registry credentials for {} registries from {}", o.auth.size(),
                 options.cri.registry_auth);
  }
  if (options.cri.pod_dns) {
    o.dns_searches = {options.dns.domain.empty() ? "warren" : options.dns.domain};
  }
  o.log_limits = {options.log_max_size, options.log_max_files};
  o.call_timeout = options.cri.call_timeout;
  o.pull_timeout = options.cri.pull_timeout;
  auto driver = CriDriver::Connect(o, clock);
  if (!driver.ok()) return driver.status();
  spdlog::info("cri runtime: {} on {}; pod network {} ({}, bridge {}) in {}",
               (*driver)->RuntimeVersion(), options.cri.socket, options.cri.cni_network,
               routed ? "the node's subnet" : options.cri.cni_subnet, options.cri.cni_bridge, path);
  if (!routed) {
    if (absl::Status s = (*driver)->WaitUntilReady(absl::Seconds(30)); !s.ok()) return s;
  }
  return std::unique_ptr<RuntimeDriver>(std::move(*driver));
}

std::unique_ptr<WorkerAgent> MakeAgent(const WorkerOptions& options, Clock& clock,
                                       Registry* registry, absl::Status* error) {
  if (options.runtime != "process" && options.runtime != "fake" && options.runtime != "cri") {
    *error = absl::InvalidArgumentError(absl::StrCat(
        "runtime: \"", options.runtime, "\" is not supported (allowed: process, cri, fake)"));
    return nullptr;
  }
  std::filesystem::path tasks_dir = std::filesystem::path(options.data_dir) / "tasks";
  if (absl::Status s = MakePrivateDir(tasks_dir.string()); !s.ok()) {
    *error =
        absl::InvalidArgumentError(absl::StrCat("data-dir ", options.data_dir, ": ", s.message()));
    return nullptr;
  }
  // "fake" runs nothing: tasks are reported running at once (control-plane benchmarks).
  std::unique_ptr<RuntimeDriver> driver;
  if (options.runtime == "fake") {
    driver = std::make_unique<FakeDriver>();
  } else if (options.runtime == "cri") {
    auto cri = MakeCriDriver(options, tasks_dir.string(), clock);
    if (!cri.ok()) {
      *error = cri.status();
      return nullptr;
    }
    driver = std::move(*cri);
  } else {
    ProcessDriver::Options po;
    po.log_limits = {options.log_max_size, options.log_max_files};
    driver = std::make_unique<ProcessDriver>(tasks_dir.string(), clock, po);
  }
  EnableStandardGrpcServices();
  auto agent = std::make_unique<WorkerAgent>(options, std::move(driver), clock, registry);
  *error = agent->Start();
  if (!error->ok()) return nullptr;
  return agent;
}

// The published ports and DNS refuse connections before the process runs out of descriptors, so
// the API, the store and the tasks keep theirs.
void LimitDataPlaneDescriptors(int64_t reserved) {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  int64_t budget = ConfigureDataPlaneBudget(reserved);
  spdlog::info(
      "file descriptors: limit {}, {} for published ports and DNS, the rest for the API, "
      "store and tasks",
      rl.rlim_cur == RLIM_INFINITY ? std::string("unlimited") : std::to_string(rl.rlim_cur),
      budget);
}

// Starts the worker agent, runs it until SIGINT/SIGTERM, stops it; the process exit code.
int RunAgentUntilSignal(const WorkerOptions& o, Registry* registry) {
  // Two workers on one data dir would adopt, restart and remove each other's tasks.
  auto lock = DataDirLock::Acquire(o.data_dir, o.role);
  if (!lock.ok()) {
    spdlog::error("{}", std::string(lock.status().message()));
    return 1;
  }
  WorkerOptions options = o;
  // A hybrid node has its certificate already; a worker joins, or uses the one it kept.
  if (options.tls_cert.empty() && (!options.join_token.empty() || HasNodeCertificate(options))) {
    if (absl::Status s = PrepareNodeCertificate(&options, absl::Now()); !s.ok()) {
      spdlog::error("{}", std::string(s.message()));
      return 1;
    }
  } else if (options.tls_cert.empty() && options.role == "worker") {
    if (absl::Status s = CheckPlaintextManager(options); !s.ok()) {
      spdlog::error("{}", std::string(s.message()));
      return 1;
    }
  }
  absl::Status error;
  auto agent = MakeAgent(options, RealClock::Get(), registry, &error);
  if (!agent) {
    spdlog::error("{}", std::string(error.message()));
    return 1;
  }
  NotifyReady(absl::StrCat(o.role, " ", NodeName(o), " serving; agent on ", agent->agent_addr()));
  auto watchdog = WatchdogPinger::StartIfEnabled();
  int sig =
      WaitForTerminationSignalOr([&] { return agent->WaitUntilRemoved(absl::ZeroDuration()); });
  NotifyStopping();
  if (sig == 0) {
    // The manager has placed this node's tasks elsewhere: none of them may go on outside the
    // cluster.
    agent->Stop(/*stop_tasks=*/true);
    spdlog::error(
        "this node was removed from the cluster by node rm: its tasks were stopped; join again "
        "with a new token");
    return 1;
  }
  spdlog::info("signal {}: shutting down{}", sig,
               o.stop_tasks_on_exit ? " and stopping tasks" : " (tasks keep running)");
  agent->Stop(o.stop_tasks_on_exit);
  return 0;
}

}  // namespace

int RunManager(const ManagerOptions& options) {
  BlockTerminationSignals();
  RestrictUmask();
  LimitDataPlaneDescriptors(options.reserved_fds);
  auto m = ManagerServer::Start(options, RealClock::Get());
  if (!m.ok()) {
    spdlog::error("{}", std::string(m.status().message()));
    return 1;
  }
  NotifyReady(absl::StrCat("manager serving on ", (*m)->api_addr()));
  auto watchdog = WatchdogPinger::StartIfEnabled();
  int sig = WaitForTerminationSignal();
  NotifyStopping();
  spdlog::info("signal {}: shutting down", sig);
  (*m)->Shutdown();
  return 0;
}

int RunWorker(const WorkerOptions& options) {
  BlockTerminationSignals();
  RestrictUmask();
  LimitDataPlaneDescriptors(options.reserved_fds);
  WorkerOptions o = options;
  if (o.data_dir.empty()) o.data_dir = "./warren-worker-data";
  Registry& registry = DefaultRegistry();
  std::unique_ptr<HttpServer> metrics;
  if (!o.metrics_addr.empty()) {
    auto http = HttpServer::Start(o.metrics_addr, MetricsHandler(registry, [] { return true; }));
    if (!http.ok()) {
      spdlog::error("metrics-addr: {}", std::string(http.status().message()));
      return 1;
    }
    metrics = std::move(*http);
  }
  return RunAgentUntilSignal(o, &registry);
}

int RunHybrid(const ManagerOptions& manager, const WorkerOptions& worker) {
  BlockTerminationSignals();
  RestrictUmask();
  LimitDataPlaneDescriptors(manager.reserved_fds);
  auto m = ManagerServer::Start(manager, RealClock::Get());
  if (!m.ok()) {
    spdlog::error("{}", std::string(m.status().message()));
    return 1;
  }
  WorkerOptions o = worker;
  o.manager_addr = (*m)->api_addr();
  o.role = "hybrid";
  o.dns = manager.dns;  // same domain, TTL and upstreams for the pods' DNS
  o.dns.addr.clear();   // the manager's DNS serves the node
  if (o.data_dir.empty())
    o.data_dir = (std::filesystem::path(manager.data_dir) / "worker").string();
  if (manager.tls) {
    if (absl::Status s = (*m)->InstallHybridWorkerCertificate(&o); !s.ok()) {
      spdlog::error("{}", std::string(s.message()));
      (*m)->Shutdown();
      return 1;
    }
  }
  int code = RunAgentUntilSignal(o, &(*m)->registry());
  (*m)->Shutdown();
  return code;
}

}  // namespace warren
