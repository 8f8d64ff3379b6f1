#include "worker/join.h"

#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/manager_list.h"
#include "security/certificates.h"
#include "security/client_bundle.h"
#include "security/join_token.h"
#include "security/tls_credentials.h"
#include "spdlog/spdlog.h"
#include "warren/v1/security.grpc.pb.h"

namespace warren {
namespace {

constexpr absl::Duration kJoinCallTimeout = absl::Seconds(10);

security::CredentialsDirectory NodeTlsDir(const WorkerOptions& options) {
  return security::CredentialsDirectory((std::filesystem::path(options.data_dir) / "tls").string());
}

void SetDeadline(grpc::ClientContext* ctx) {
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + kJoinCallTimeout));
}

absl::Status FromGrpc(const grpc::Status& s, absl::string_view what) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat(what, ": ", s.error_message()));
}

// The certificate's SANs: the agent's listen address (when it names one) and loopback.
std::vector<std::string> NodeHosts(const WorkerOptions& options) {
  std::vector<std::string> hosts = {"127.0.0.1", "localhost"};
  const std::string host = options.agent_addr.substr(0, options.agent_addr.rfind(':'));
  if (!host.empty() && host != "0.0.0.0" && host != "127.0.0.1" && host != "localhost" &&
      host.front() != '[') {
    hosts.push_back(host);
  }
  return hosts;
}

absl::Status JoinVia(WorkerOptions* options, const std::string& manager, absl::Time now) {
  auto token = security::ParseJoinToken(options->join_token);
  if (!token.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--token: ", token.status().message()));
  }
  // 1. The CA certificate, over TLS that trusts nothing yet; nothing secret is sent.
  v1::GetCaCertificateResponse ca;
  {
    auto stub =
        v1::Ca::NewStub(grpc::CreateChannel(manager, security::MakeBootstrapChannelCredentials()));
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    if (grpc::Status s = stub->GetCaCertificate(&ctx, {}, &ca); !s.ok()) {
      return FromGrpc(s,
                      absl::StrCat("joining ", manager, ": fetching the cluster CA certificate"));
    }
  }
  // 2. Pinned by the token: an impostor (or another cluster) never sees the token.
  if (absl::Status s = security::CheckJoinTokenCa(*token, ca.ca_cert_pem()); !s.ok()) {
    return absl::Status(s.code(),
                        absl::StrCat("joining ", manager,
                                     ": the manager's CA is "
                                     "not the one the join token names (another cluster, or an "
                                     "impostor); nothing was sent: ",
                                     s.message()));
  }
  // 3. The join itself, verifying the manager against that CA.
  auto key = security::GeneratePrivateKey();
  if (!key.ok()) return key.status();
  auto csr = security::CreateCsr(*key);
  if (!csr.ok()) return csr.status();
  auto creds = security::MakeStaticChannelCredentials(
      ca.ca_cert_pem(), std::nullopt,
      security::PeerPolicy{ca.cluster_id(), {security::Role::kManager}, "", nullptr});
  if (!creds.ok()) return creds.status();
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto stub = v1::Ca::NewStub(grpc::CreateCustomChannel(manager, *creds, args));
  v1::JoinClusterRequest req;
  req.set_token(options->join_token);
  req.set_csr_pem(*csr);
  for (const std::string& h : NodeHosts(*options)) req.add_hosts(h);
  v1::NodeCertificate issued;
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  if (grpc::Status s = stub->JoinCluster(&ctx, req, &issued); !s.ok()) {
    return FromGrpc(s, absl::StrCat("joining ", manager));
  }
  if (issued.role() != "worker") {
    return absl::InvalidArgumentError(
        absl::StrCat("--token: a ", issued.role(),
                     " join token; `warren worker` joins with a worker token "
                     "(warren cluster join-token worker)"));
  }
  if (absl::Status s =
          NodeTlsDir(*options).Install({ca.ca_cert_pem(), issued.cert_pem(), *key}, now);
      !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("worker certificate: ", s.message()));
  }
  spdlog::info("joined cluster {} as node {}", ca.cluster_id(), issued.node_id());
  return absl::OkStatus();
}

// Any manager serves the join (several on etcd: the first that answers).
absl::Status Join(WorkerOptions* options, absl::Time now) {
  auto managers = ParseManagerList("--manager", options->manager_addr);
  if (!managers.ok()) return managers.status();
  absl::Status last;
  for (const std::string& manager : *managers) {
    last = JoinVia(options, manager, now);
    if (last.ok() || last.code() != absl::StatusCode::kUnavailable) return last;
  }
  return last;
}

}  // namespace

absl::Status CheckPlaintextManager(const WorkerOptions& options) {
  auto managers = ParseManagerList("--manager", options.manager_addr);
  if (!managers.ok()) return managers.status();
  const std::string& first = managers->front();
  if (!security::ServesTls(first, kJoinCallTimeout)) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "the manager at ", first, " serves mutual TLS and this worker has no certificate in ",
      NodeTlsDir(options).dir(),
      ": join with --token TOKEN (or WARREN_JOIN_TOKEN); print the token on the manager with "
      "`warren cluster join-token worker -q`"));
}

bool HasNodeCertificate(const WorkerOptions& options) {
  return NodeTlsDir(options).HasCredentials();
}

absl::Status PrepareNodeCertificate(WorkerOptions* options, absl::Time now) {
  security::CredentialsDirectory dir = NodeTlsDir(*options);
  bool usable = false;
  if (dir.HasCredentials()) {
    auto kept = dir.Read();
    if (!kept.ok()) return kept.status();
    auto info = security::VerifyCertificate(kept->ca_cert_pem, kept->cert_pem, now);
    usable = info.ok();
    if (!usable && options->join_token.empty()) {
      return absl::FailedPreconditionError(absl::StrCat("worker certificate in ", dir.dir(), ": ",
                                                        info.status().message(),
                                                        "; join again with --token"));
    }
    if (usable && !options->join_token.empty()) {
      auto token = security::ParseJoinToken(options->join_token);
      if (!token.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("--token: ", token.status().message()));
      }
      if (!security::CheckJoinTokenCa(*token, kept->ca_cert_pem).ok()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "--token names another cluster's CA than the certificate in ", dir.dir(), " (cluster ",
            info->identity.cluster_id, "); give the worker a new --data-dir"));
      }
    }
  }
  if (!usable) {
    if (absl::Status s = Join(options, now); !s.ok()) return s;
  }
  auto material = dir.Read();
  if (!material.ok()) return material.status();
  auto info = security::ParseNodeCertificate(material->cert_pem);
  if (!info.ok()) return info.status();
  const security::TlsFiles files = dir.files();
  options->tls_ca_cert = files.ca_cert;
  options->tls_cert = files.cert;
  options->tls_key = files.key;
  options->cluster_id = info->identity.cluster_id;
  return absl::OkStatus();
}

}  // namespace warren
