#include "security/authz.h"

#include <arpa/inet.h>
#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/types/span.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"

namespace warren::security {

absl::Status CheckPeer(const CertificateInfo& peer, const PeerPolicy& policy) {
  if (peer.identity.cluster_id != policy.cluster_id) {
    return absl::UnauthenticatedError(absl::StrCat(
        "certificate of cluster ", peer.identity.cluster_id, ", expected ", policy.cluster_id));
  }
  if (policy.revoked != nullptr) {
    if (auto s = policy.revoked->Check(peer); !s.ok()) return s;
  }
  if (!policy.roles.empty() && std::find(policy.roles.begin(), policy.roles.end(),
                                         peer.identity.role) == policy.roles.end()) {
    std::vector<absl::string_view> names;
    for (Role r : policy.roles) names.push_back(RoleName(r));
    return absl::PermissionDeniedError(absl::StrCat("peer ", peer.identity.node_id, " has role ",
                                                    RoleName(peer.identity.role), ", expected ",
                                                    absl::StrJoin(names, " or ")));
  }
  if (!policy.node_id.empty() && peer.identity.node_id != policy.node_id) {
    return absl::PermissionDeniedError(
        absl::StrCat("peer is node ", peer.identity.node_id, ", expected node ", policy.node_id));
  }
  return absl::OkStatus();
}

namespace {

// Parsed peer certificates by PEM. Every authorized call reads its peer's certificate, and
// OpenSSL 3 parses one in about as long as the rest of a small call takes (its key decoder
// looks providers up by name each time): tls_bench, docs/benchmarks.md. A PEM always parses to
// the same result, and the handshake already verified it; revocation is checked on the result
// at every call. Bounded: emptied when full (a renewal brings a new PEM per node).
class ParsedPeerCertificates {
 public:
  static ParsedPeerCertificates& Get() {
    static auto* cache = new ParsedPeerCertificates();
    return *cache;
  }
  absl::StatusOr<CertificateInfo> Parse(absl::string_view pem) {
    {
      absl::MutexLock lock(&mu_);
      if (auto it = parsed_.find(pem); it != parsed_.end()) return it->second;
    }
    auto info = ParseNodeCertificate(pem);
    if (!info.ok()) return info.status();
    absl::MutexLock lock(&mu_);
    if (parsed_.size() >= kMaxEntries) parsed_.clear();
    parsed_.emplace(std::string(pem), *info);
    return info;
  }

 private:
  static constexpr size_t kMaxEntries = 4096;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, CertificateInfo> parsed_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<CertificateInfo> PeerCertificate(const grpc::AuthContext& context) {
  const auto certs = context.FindPropertyValues("x509_pem_cert");
  if (certs.empty()) {
    return absl::UnauthenticatedError(
        "no client certificate: this call needs a certificate of the cluster CA");
  }
  auto info = ParsedPeerCertificates::Get().Parse(
      absl::string_view(certs.front().data(), certs.front().size()));
  if (!info.ok()) {
    return absl::UnauthenticatedError(
        absl::StrCat("client certificate: ", info.status().message()));
  }
  return info;
}

absl::StatusOr<CertificateInfo> AuthenticatePeer(const grpc::AuthContext& context,
                                                 absl::string_view cluster_id,
                                                 const RevocationList& revoked) {
  auto peer = PeerCertificate(context);
  if (!peer.ok()) return peer.status();
  if (peer->identity.cluster_id != cluster_id) {
    return absl::UnauthenticatedError(absl::StrCat(
        "certificate of cluster ", peer->identity.cluster_id, ", expected ", cluster_id));
  }
  if (auto s = revoked.Check(*peer); !s.ok()) return s;
  return peer;
}

absl::Status AuthorizeRole(const CertificateIdentity& peer, std::initializer_list<Role> allowed,
                           absl::string_view method) {
  if (std::find(allowed.begin(), allowed.end(), peer.role) != allowed.end()) {
    return absl::OkStatus();
  }
  std::vector<absl::string_view> names;
  for (Role r : allowed) names.push_back(RoleName(r));
  return absl::PermissionDeniedError(absl::StrCat(method, ": not allowed for role ",
                                                  RoleName(peer.role), " (node ", peer.node_id,
                                                  "); allowed: ", absl::StrJoin(names, ", ")));
}

absl::Status AuthorizeNode(const CertificateIdentity& peer, absl::string_view node_id,
                           absl::string_view method) {
  if (peer.role == Role::kAdmin || peer.node_id == node_id) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat(method, ": node ", peer.node_id, " may not act for node ", node_id));
}

namespace {

constexpr Role kAdminOnly[] = {Role::kAdmin};
constexpr Role kReaders[] = {Role::kAdmin, Role::kReadOnly};
constexpr Role kNodes[] = {Role::kAdmin, Role::kManager, Role::kWorker};
constexpr Role kManagers[] = {Role::kAdmin, Role::kManager};
constexpr Role kNodesOnly[] = {Role::kManager, Role::kWorker};

// Services whose every method is open: nothing in them needs an identity.
constexpr absl::string_view kOpenServices[] = {
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
};

constexpr Role kAnyRole[] = {Role::kAdmin, Role::kReadOnly, Role::kManager, Role::kWorker};

struct TableEntry {
  absl::string_view method;
  absl::Span<const Role> roles;
  // No certificate needed: the handler checks what the caller proves instead (a join token).
  bool open = false;
};

// Every RPC of the manager and the worker, and who may call it. Read RPCs are open to the
// read-only role; node RPCs to workers and managers (for their own node only, checked in the
// handlers); a worker's log service to managers (ServiceLogs reads through it).
constexpr TableEntry kTable[] = {
    {"/warren.v1.Control/CreateService", kAdminOnly},
    {"/warren.v1.Control/GetService", kReaders},
    {"/warren.v1.Control/ListServices", kReaders},
    {"/warren.v1.Control/UpdateService", kAdminOnly},
    {"/warren.v1.Control/DeleteService", kAdminOnly},
    {"/warren.v1.Control/ScaleService", kAdminOnly},
    {"/warren.v1.Control/ServiceLogs", kReaders},
    {"/warren.v1.Control/RollbackService", kAdminOnly},
    {"/warren.v1.Control/PauseRollout", kAdminOnly},
    {"/warren.v1.Control/ResumeRollout", kAdminOnly},
    {"/warren.v1.Control/GetRollout", kReaders},
    {"/warren.v1.Control/ListDeployments", kReaders},
    {"/warren.v1.Control/ListRevisions", kReaders},
    {"/warren.v1.Control/GetRevision", kReaders},
    {"/warren.v1.Control/PromoteRollout", kAdminOnly},
    {"/warren.v1.Control/AbortRollout", kAdminOnly},
    {"/warren.v1.Control/ListTasks", kReaders},
    {"/warren.v1.Control/GetTask", kReaders},
    {"/warren.v1.Control/ListNodes", kReaders},
    {"/warren.v1.Control/GetNode", kReaders},
    {"/warren.v1.Control/UpdateNode", kAdminOnly},
    {"/warren.v1.Control/RemoveNode", kAdminOnly},
    {"/warren.v1.Control/WatchEvents", kReaders},
    {"/warren.v1.Control/GetEndpoints", kReaders},
    {"/warren.v1.Control/GetVersion", kReaders},
    {"/warren.v1.Ingresses/CreateIngress", kAdminOnly},
    {"/warren.v1.Ingresses/GetIngress", kReaders},
    {"/warren.v1.Ingresses/ListIngresses", kReaders},
    {"/warren.v1.Ingresses/DeleteIngress", kAdminOnly},
    {"/warren.v1.Ingresses/RenewIngress", kAdminOnly},
    {"/warren.v1.Dispatcher/RegisterNode", kNodes},
    {"/warren.v1.Dispatcher/Heartbeat", kNodes},
    {"/warren.v1.Dispatcher/WatchAssignments", kNodes},
    {"/warren.v1.Dispatcher/ReportTaskStatus", kNodes},
    {"/warren.v1.Dispatcher/WatchRoutes", kNodes},
    {"/warren.v1.Dispatcher/ReportTrafficStats", kNodes},
    // Private keys: the nodes' HTTPS ingress only. No user role, admin included, reads one.
    {"/warren.v1.Dispatcher/GetIngressCertificates", kNodesOnly},
    {"/warren.v1.WorkerAgent/TaskLogs", kManagers},
    {"/warren.v1.ClusterAdmin/Backup", kAdminOnly},
    // The store's and the managers' status: a read (member endpoints, sizes, leadership).
    {"/warren.v1.ClusterAdmin/Status", kReaders},
    // The CA bootstrap a joining node makes before it has a certificate: the CA certificate
    // (pinned by the token's digest) and the join itself (authorized by the token).
    {"/warren.v1.Ca/GetCaCertificate", {}, true},
    {"/warren.v1.Ca/JoinCluster", {}, true},
    // Every certificate renews itself (the handler keeps the identity and refuses revoked ones).
    {"/warren.v1.Ca/Renew", kAnyRole},
    {"/warren.v1.Ca/GetJoinToken", kAdminOnly},
    {"/warren.v1.Secrets/CreateSecret", kAdminOnly},
    {"/warren.v1.Secrets/ListSecrets", kReaders},
    {"/warren.v1.Secrets/InspectSecret", kReaders},
    {"/warren.v1.Secrets/UpdateSecret", kAdminOnly},
    {"/warren.v1.Secrets/RemoveSecret", kAdminOnly},
    {"/warren.v1.DashboardAccess/CreateDashboardToken", kAdminOnly},
};

const absl::flat_hash_map<std::string, MethodRule>& Rules() {
  static const auto* rules = [] {
    auto* m = new absl::flat_hash_map<std::string, MethodRule>();
    for (const TableEntry& e : kTable) {
      (*m)[e.method] = MethodRule{e.open, std::vector<Role>(e.roles.begin(), e.roles.end())};
    }
    return m;
  }();
  return *rules;
}

// "/pkg.Service/Method" -> "pkg.Service".
absl::string_view ServiceOf(absl::string_view full_method) {
  absl::string_view rest = absl::StripPrefix(full_method, "/");
  return rest.substr(0, rest.find('/'));
}

}  // namespace

const MethodRule* FindMethodRule(absl::string_view full_method) {
  static const MethodRule kOpen{true, {}};
  const absl::string_view service = ServiceOf(full_method);
  for (absl::string_view open : kOpenServices) {
    if (service == open) return &kOpen;
  }
  const auto& rules = Rules();
  auto it = rules.find(full_method);
  return it == rules.end() ? nullptr : &it->second;
}

std::vector<std::string> AuthorizedServiceNames() {
  std::vector<std::string> names;
  for (const TableEntry& e : kTable) {
    std::string s(ServiceOf(e.method));
    if (std::find(names.begin(), names.end(), s) == names.end()) names.push_back(s);
  }
  return names;
}

bool IsLoopbackListenAddr(absl::string_view addr) {
  absl::string_view host = addr;
  if (absl::StartsWith(host, "[")) {
    host = host.substr(1, host.find(']') == absl::string_view::npos ? 0 : host.find(']') - 1);
  } else if (size_t colon = host.rfind(':'); colon != absl::string_view::npos) {
    host = host.substr(0, colon);
  }
  if (host == "localhost" || host == "::1") return true;
  in_addr a{};
  if (inet_pton(AF_INET, std::string(host).c_str(), &a) != 1) return false;
  return (ntohl(a.s_addr) >> 24) == 127;
}

std::shared_ptr<const Authorizer> Authorizer::PlaintextLoopback() {
  static const auto* instance = new std::shared_ptr<const Authorizer>(
      new Authorizer(AuthMode::kPlaintextLoopback, "", nullptr));
  return *instance;
}

absl::StatusOr<std::shared_ptr<const Authorizer>> Authorizer::Create(
    AuthMode mode, absl::string_view listen_addr, std::string cluster_id,
    std::shared_ptr<const RevocationList> revoked) {
  if (mode == AuthMode::kPlaintextLoopback) {
    if (!IsLoopbackListenAddr(listen_addr)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "listen address ", listen_addr,
          ": without mutual TLS the API may only listen on loopback (127.0.0.0/8, [::1], "
          "localhost)"));
    }
    return PlaintextLoopback();
  }
  if (cluster_id.empty()) {
    return absl::InvalidArgumentError("mutual TLS authorization needs the cluster id");
  }
  if (revoked == nullptr) revoked = std::make_shared<const RevocationList>();
  return std::shared_ptr<const Authorizer>(
      new Authorizer(mode, std::move(cluster_id), std::move(revoked)));
}

absl::StatusOr<std::optional<CertificateIdentity>> Authorizer::AuthorizeCall(
    const grpc::ServerContextBase* ctx, absl::string_view full_method) const {
  if (ctx == nullptr) return std::nullopt;
  return Authorize(ctx->auth_context().get(), full_method);
}

absl::Status Authorizer::Reauthorize(const grpc::ServerContextBase* ctx,
                                     absl::string_view full_method, uint64_t* checked) const {
  // Read before the check: a revocation landing during it is seen at the next call.
  const uint64_t now = revocation_generation();
  if (now == *checked) return absl::OkStatus();
  auto again = AuthorizeCall(ctx, full_method);
  if (!again.ok()) return again.status();
  *checked = now;
  return absl::OkStatus();
}

absl::StatusOr<std::optional<CertificateIdentity>> Authorizer::Authorize(
    const grpc::AuthContext* auth, absl::string_view full_method) const {
  if (mode_ == AuthMode::kPlaintextLoopback) return std::nullopt;
  const MethodRule* rule = FindMethodRule(full_method);
  if (rule != nullptr && rule->open) return std::nullopt;
  if (auth == nullptr) {
    return absl::UnauthenticatedError(
        absl::StrCat(full_method,
                     ": no client certificate: this call needs a certificate of the "
                     "cluster CA"));
  }
  auto peer = AuthenticatePeer(*auth, cluster_id_, *revoked_);
  if (!peer.ok()) return peer.status();
  if (rule == nullptr) {
    return absl::PermissionDeniedError(
        absl::StrCat(full_method, ": not in the authorization table; denied"));
  }
  if (std::find(rule->roles.begin(), rule->roles.end(), peer->identity.role) == rule->roles.end()) {
    std::vector<absl::string_view> names;
    for (Role r : rule->roles) names.push_back(RoleName(r));
    return absl::PermissionDeniedError(absl::StrCat(
        full_method, ": not allowed for role ", RoleName(peer->identity.role), " (node ",
        peer->identity.node_id, "); allowed: ", absl::StrJoin(names, ", ")));
  }
  return std::optional<CertificateIdentity>(peer->identity);
}

}  // namespace warren::security
