#include "manager/dispatcher_service.h"

#include "common/cluster_cidr.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/advertise_addr.h"
#include "common/cluster_cidr.h"
#include "common/enum_names.h"
#include "common/ids.h"
#include "common/limits.h"
#include "common/published_ports.h"
#include "common/spec.h"
#include "common/task_state.h"
#include "common/time_util.h"
#include "common/version.h"
#include "google/protobuf/util/message_differencer.h"
#include "grpcpp/grpcpp.h"
#include "ingress/ingress_api.h"
#include "ingress/ingress_tls.h"
#include "manager/assignment_view.h"
#include "manager/commit_retry.h"
#include "manager/node_subnets.h"
#include "manager/rollout/intents.h"
#include "manager/rollout/rollout.h"
#include "manager/scheduler.h"
#include "manager/secret_service.h"
#include "spdlog/spdlog.h"
#include "store/typed_store.h"

namespace warren {
namespace {

using google::protobuf::util::MessageDifferencer;

absl::Status NodeNameError(const std::string& name) {
  return absl::InvalidArgumentError(
      absl::StrCat("name: \"", name,
                   "\" is not a valid node name (letters, digits, '-', '_' and '.', 1..253 "
                   "characters)"));
}

bool ValidNodeName(const std::string& n) {
  if (n.empty() || n.size() > 253) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

// With a certificate, a worker or manager acts only for its own node (admins for any).
absl::Status CheckOwnNode(const std::optional<security::CertificateIdentity>& peer,
                          const std::string& node_id, absl::string_view method) {
  if (!peer) return absl::OkStatus();
  return security::AuthorizeNode(*peer, node_id, method);
}

// A node stored before the field existed is local.
std::string NetworkOf(const v1::Node& node) {
  return node.network().empty() ? "local" : node.network();
}

// Its tasks hold addresses of the network it registered with first.
absl::Status NetworkChangeError(const v1::Node& existing) {
  return absl::PermissionDeniedError(absl::StrCat(
      "network: node ", existing.name(), " registered with network ", NetworkOf(existing),
      "; a node may not change it by registering again (remove the node with `warren node rm` "
      "and join it anew)"));
}

}  // namespace

DispatcherService::DispatcherService(ApiShared& shared)
    : shared_(shared),
      store_(shared.store),
      clock_(shared.clock),
      events_(shared.events),
      liveness_(shared.liveness),
      options_(shared.options),
      publish_errors_(shared.publish_errors) {}

grpc::Status DispatcherService::RegisterNode(grpc::ServerContext* ctx,
                                             const v1::RegisterNodeRequest* req, v1::Node* resp) {
  auto peer = shared_.Authorize(ctx, "/warren.v1.Dispatcher/RegisterNode");
  if (!peer.ok()) return ToGrpc(peer.status());
  if (auto s = shared_.CheckLeads(); !s.ok()) return ToGrpc(s);
  if (!ValidNodeName(req->name())) return ToGrpc(NodeNameError(req->name()));
  if (auto s = ValidateLabels("labels", req->labels()); !s.ok()) return ToGrpc(s);
  uint32_t base = 0, size = 0;
  const std::string runtime = req->runtime().empty() ? "process" : req->runtime();
  // Container tasks get their address from the CNI network, not from a loopback range.
  const bool runtime_addresses = runtime == "cri";
  absl::StatusOr<NodeNetworkMode> mode = ParseNodeNetworkMode("network", req->network());
  if (!mode.ok()) return ToGrpc(mode.status());
  // A routed node's tasks take addresses of its subnet (given below), not of a range it sends.
  const bool routed = IsRouted(*mode);
  const std::string network(NodeNetworkModeName(*mode));
  if (routed && !req->address_range().empty()) {
    return grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        absl::StrCat("address_range: \"", req->address_range(), "\" must be empty with network ",
                     network, " (task addresses come from the node's subnet)"));
  }
  if (runtime_addresses && !req->address_range().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("address_range: \"", req->address_range(),
                                     "\" must be empty for the cri runtime (task addresses "
                                     "come from its CNI network)"));
  }
  if (!runtime_addresses && !routed && !ParseLoopbackRange(req->address_range(), &base, &size)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("address_range: \"", req->address_range(),
                                     "\" is not a loopback CIDR inside 127.0.0.0/8 with a "
                                     "prefix of 8..30 bits, e.g. 127.1.0.0/16"));
  }
  // Empty from a worker older than the field: the node keeps the address it had.
  std::string advertise;
  if (!req->advertise_addr().empty()) {
    absl::StatusOr<std::string> parsed =
        ParseAdvertiseAddr("advertise_addr", req->advertise_addr());
    if (!parsed.ok()) return ToGrpc(parsed.status());
    advertise = *parsed;
  }
  // The other nodes route to a routed node's subnet through its advertise address (the
  // overlay's MACs come from its IPv4 bytes).
  if (routed && (advertise.empty() || advertise.find(':') != std::string::npos ||
                 absl::StartsWith(advertise, "127."))) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("advertise_addr: network ", network,
                                     " needs an IPv4 address the other "
                                     "nodes reach, not \"",
                                     req->advertise_addr(), "\""));
  }
  // The other nodes encrypt to this key: a wireguard node without a valid one is unreachable.
  std::string wg_key;
  if (*mode == NodeNetworkMode::kWireguard) {
    std::string raw;
    // Canonical base64 only: `wg` refuses stray bits in the last character.
    if (!absl::Base64Unescape(req->wireguard_public_key(), &raw) || raw.size() != 32 ||
        absl::Base64Escape(raw) != req->wireguard_public_key()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("wireguard_public_key: network wireguard needs the node's "
                                       "WireGuard public key, base64 of 32 bytes (44 characters), "
                                       "not \"",
                                       req->wireguard_public_key(), "\""));
    }
    wg_key = req->wireguard_public_key();
  } else if (!req->wireguard_public_key().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("wireguard_public_key: only with network wireguard (this node "
                                     "registers with network ",
                                     network, ")"));
  }
  absl::StatusOr<ClusterCidr> cidr = StoredClusterCidr(store_);
  if (!cidr.ok()) return ToGrpc(cidr.status());
  // A node certificate fixes who registers: the node id is its CN and the role its OU. Admins
  // (and plaintext mode) register by name as before.
  const std::optional<security::CertificateIdentity>& cert = *peer;
  const bool node_cert = cert && cert->role != security::Role::kAdmin;
  // A hybrid node is the manager's own worker: it holds a manager certificate.
  const bool hybrid =
      node_cert && req->role() == "hybrid" && cert->role == security::Role::kManager;
  if (node_cert && !hybrid && !req->role().empty() &&
      req->role() != security::RoleName(cert->role)) {
    return grpc::Status(
        grpc::StatusCode::PERMISSION_DENIED,
        absl::StrCat("role: \"", req->role(), "\" differs from the certificate's role ",
                     security::RoleName(cert->role), " (node ", cert->node_id, ")"));
  }
  v1::Node node;
  absl::StatusOr<uint64_t> v = CommitWithRetry(
      store_,
      [&]() -> absl::StatusOr<std::vector<Mutation>> {
        const absl::Time now = clock_.Now();
        auto existing = GetObjectByName<v1::Node>(store_, req->name());
        if (node_cert) {
          if (existing && existing->id() != cert->node_id) {
            return absl::PermissionDeniedError(
                absl::StrCat("RegisterNode: name \"", req->name(), "\" belongs to node ",
                             existing->id(), "; node ", cert->node_id, " may not take it"));
          }
          existing = GetObject<v1::Node>(store_, cert->node_id);
          if (existing && NetworkOf(*existing) != network) {
            return NetworkChangeError(*existing);
          }
          if (existing && !routed && existing->address_range() != req->address_range()) {
            return absl::PermissionDeniedError(absl::StrCat(
                "address_range: node ", cert->node_id, " registered with \"",
                existing->address_range(), "\"; a node may not change it by registering again"));
          }
        }
        if (existing && NetworkOf(*existing) != network) return NetworkChangeError(*existing);
        node = v1::Node();
        uint64_t expected = Mutation::kMustNotExist;
        if (existing) {
          node = *existing;
          expected = existing->version();
        } else {
          node.set_id(node_cert ? cert->node_id : NewId());
          node.set_name(req->name());
          *node.mutable_registered_at() = ToProtoTime(now);
          node.set_availability(v1::NODE_AVAILABILITY_ACTIVE);
        }
        // Two nodes must not hand out the same task addresses.
        for (const auto& other : ListObjects<v1::Node>(store_)) {
          if (other.id() == node.id()) continue;
          // One key, one host: the peers route a key's packets to one endpoint. The same host
          // joining anew (its old node not gone yet) keeps its key and address.
          if (!wg_key.empty() && other.wireguard_public_key() == wg_key &&
              other.advertise_addr() != advertise) {
            return absl::FailedPreconditionError(absl::StrCat(
                "wireguard_public_key: node ", other.name(), " (", other.advertise_addr(),
                ") has the same key; each host needs its own (a copied data dir? remove "
                "wireguard.key from this worker's data dir and start it again)"));
          }
          uint32_t ob = 0, os = 0;
          if (size > 0 && ParseLoopbackRange(other.address_range(), &ob, &os) && base < ob + os &&
              ob < base + size) {
            return absl::InvalidArgumentError(absl::StrCat(
                "address_range: ", req->address_range(), " overlaps node ", other.name(), "'s ",
                other.address_range(), "; give each worker its own range"));
          }
        }
        *node.mutable_labels() = req->labels();
        if (node_cert) {
          node.set_role(hybrid ? "hybrid" : std::string(security::RoleName(cert->role)));
        } else {
          node.set_role(req->role().empty() ? "worker" : req->role());
        }
        node.set_state(v1::NODE_STATE_READY);
        *node.mutable_capacity() = req->capacity();
        node.set_agent_addr(req->agent_addr());
        node.set_address_range(req->address_range());
        node.set_network(network);
        node.set_wireguard_public_key(wg_key);
        node.set_cluster_cidr(cidr->ToString());
        node.set_runtime(runtime);
        node.set_message("");
        if (!advertise.empty()) node.set_advertise_addr(advertise);
        std::vector<Mutation> m;
        // A node keeps its subnet for life; the claim is written in the node's commit, so two
        // registrations can never both get one subnet.
        if (node.subnet().empty()) {
          std::string subnet;
          absl::StatusOr<Mutation> claim = ClaimNodeSubnet(store_, node.id(), &subnet);
          if (!claim.ok()) return claim.status();
          node.set_subnet(subnet);
          m.push_back(std::move(*claim));
        }
        if (routed) node.set_address_range(node.subnet());
        m.push_back(PutMutation(node, expected));
        m.push_back(events_.Make(
            "node", node.id(), node.name(), existing ? "rejoined" : "registered",
            absl::StrCat(
                "agent ", node.agent_addr(), ", advertise address ",
                node.advertise_addr().empty() ? "unknown" : node.advertise_addr(), ", subnet ",
                node.subnet(), ", runtime ", runtime, ", tasks from ",
                // Routed: the subnet, also for the cri runtime's pods.
                runtime_addresses && !routed ? "the runtime's network" : node.address_range(),
                ", network ", network)));
        return m;
      },
      {absl::StatusCode::kAlreadyExists});
  if (!v.ok()) return ToGrpc(v.status());
  liveness_.Beat(node.id());
  publish_errors_.Forget(node.id());
  node.set_version(*v);
  shared_.FillLiveness(&node);
  *resp = node;
  return grpc::Status::OK;
}

grpc::Status DispatcherService::Heartbeat(grpc::ServerContext* ctx, const v1::HeartbeatRequest* req,
                                          v1::HeartbeatResponse* resp) {
  auto peer = shared_.Authorize(ctx, "/warren.v1.Dispatcher/Heartbeat");
  if (!peer.ok()) return ToGrpc(peer.status());
  if (auto s = shared_.CheckLeads(); !s.ok()) return ToGrpc(s);
  if (auto s = CheckOwnNode(*peer, req->node_id(), "Heartbeat"); !s.ok()) return ToGrpc(s);
  auto node = GetObject<v1::Node>(store_, req->node_id());
  if (!node) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("node \"", req->node_id(), "\" not found; register again"));
  }
  liveness_.Beat(node->id());
  if (node->state() != v1::NODE_STATE_READY) {
    v1::Node ready = *node;
    ready.set_state(v1::NODE_STATE_READY);
    ready.set_message("");
    auto v = store_.Commit(
        {PutMutation(ready, node->version()),
         events_.Make("node", node->id(), node->name(), "ready", "heartbeats resumed")});
    if (!v.ok() && v.status().code() != absl::StatusCode::kAborted) {
      return ToGrpc(v.status());
    }
  }
  std::vector<v1::PublishError> errors(req->publish_errors().begin(), req->publish_errors().end());
  std::vector<Mutation> events;
  for (const auto& c : publish_errors_.Report(node->id(), node->name(), errors)) {
    const v1::PublishError& e = c.error;
    events.push_back(events_.Make(
        "service", e.service_id(), e.service_name(), c.resolved ? "published" : "publish-failed",
        c.resolved ? absl::StrCat("port ", e.port(), " on node ", node->name(), " listens")
                   : absl::StrCat("port ", e.port(), " on node ", node->name(), ": ", e.error(),
                                  "; retrying with backoff"),
        e.service_id()));
  }
  if (!events.empty()) {
    if (auto v = store_.Commit(events); !v.ok()) {
      spdlog::warn("recording published-port events: {}", v.status().ToString());
    }
  }
  *resp->mutable_period() = ToProtoDuration(options_.node_timeout / 5);
  return grpc::Status::OK;
}

grpc::Status DispatcherService::WatchAssignments(grpc::ServerContext* ctx,
                                                 const v1::WatchAssignmentsRequest* req,
                                                 grpc::ServerWriter<v1::Assignments>* writer) {
  constexpr absl::string_view kMethod = "/warren.v1.Dispatcher/WatchAssignments";
  uint64_t revocations = shared_.authorizer->revocation_generation();
  auto peer = shared_.Authorize(ctx, kMethod);
  if (!peer.ok()) return ToGrpc(peer.status());
  if (auto s = shared_.CheckLeads(); !s.ok()) return ToGrpc(s);
  if (auto s = CheckOwnNode(*peer, req->node_id(), "WatchAssignments"); !s.ok()) return ToGrpc(s);
  if (!GetObject<v1::Node>(store_, req->node_id())) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("node \"", req->node_id(), "\" not found; register again"));
  }
  uint64_t seen = UINT64_MAX;
  // The first set goes out even when empty: a restarted worker stops the tasks it adopted
  // only once it learns that none of them is assigned to it any more. Status churn (health
  // probes) is the worker's own report: no resend for it.
  AssignmentView view(store_, req->node_id());
  while (!ctx->IsCancelled() && !shared_.shutting_down) {
    // A node removed meanwhile (node rm) loses its stream at the next wake-up.
    if (auto s = shared_.Reauthorize(ctx, kMethod, &revocations); !s.ok()) return ToGrpc(s);
    // A manager that stops leading ends its streams: the workers go to the new leader.
    if (auto s = shared_.CheckLeads(); !s.ok()) return ToGrpc(s);
    uint64_t version = store_.Version();
    if (version != seen) {
      seen = version;
      if (view.Update()) {
        v1::Assignments a = view.Next(version, req->deltas());
        AddSecretValues(store_, shared_.secret_key, &a);
        if (!writer->Write(a)) break;
      }
    }
    store_.WaitForVersion(seen, absl::Milliseconds(500));
  }
  return grpc::Status::OK;
}

grpc::Status DispatcherService::ReportTaskStatus(grpc::ServerContext* ctx,
                                                 const v1::ReportTaskStatusRequest* req,
                                                 v1::ReportTaskStatusResponse*) {
  auto peer = shared_.Authorize(ctx, "/warren.v1.Dispatcher/ReportTaskStatus");
  if (!peer.ok()) return ToGrpc(peer.status());
  if (auto s = shared_.CheckLeads(); !s.ok()) return ToGrpc(s);
  if (auto s = CheckOwnNode(*peer, req->node_id(), "ReportTaskStatus"); !s.ok()) return ToGrpc(s);
  absl::StatusOr<uint64_t> v = CommitWithRetry(
      store_,
      [&]() -> absl::StatusOr<std::vector<Mutation>> {
        std::vector<Mutation> m;
        for (const auto& r : req->reports()) {
          auto task = GetObject<v1::Task>(store_, r.task_id());
          if (!task || task->node_id() != req->node_id()) continue;
          const auto& old = task->status();
          // The manager's verdicts (orphaned) and earlier terminal reports are final.
          if (IsTerminal(old.state())) continue;
          if (MessageDifferencer::Equals(old, r.status())) continue;
          v1::Task next = *task;
          *next.mutable_status() = r.status();
          if (!r.status().address().empty()) next.set_address(r.status().address());
          m.push_back(PutMutation(next, task->version()));
          // A worker found the scheduler's address taken by another program (issue 11 D8).
          if (!task->address().empty() && next.address() != task->address()) {
            m.push_back(events_.Make(
                "task", task->id(), task->service_name(), "readdressed",
                absl::StrCat("slot ", task->slot(), ": ", task->address(), ":", task->port(),
                             " is taken by another program on the node; the task listens on ",
                             next.address(), " instead"),
                task->service_id()));
          }
          const auto& ns = r.status();
          if (ns.state() != old.state()) {
            std::string msg = TaskStateName(ns.state());
            if (ns.has_exit_code()) absl::StrAppend(&msg, " (exit ", ns.exit_code(), ")");
            if (!ns.error().empty()) absl::StrAppend(&msg, ": ", ns.error());
            m.push_back(
                events_.Make("task", task->id(), task->service_name(), TaskStateName(ns.state()),
                             absl::StrCat("slot ", task->slot(), " ", msg), task->service_id()));
          }
          if (ns.health().state() != old.health().state() &&
              (ns.health().state() == v1::HEALTH_STATE_HEALTHY ||
               ns.health().state() == v1::HEALTH_STATE_UNHEALTHY)) {
            m.push_back(events_.Make(
                "task", task->id(), task->service_name(), HealthStateName(ns.health().state()),
                absl::StrCat("slot ", task->slot(), " ", HealthStateName(ns.health().state()), ": ",
                             ns.health().last_probe().output()),
                task->service_id()));
          }
        }
        return m;
      },
      {absl::StatusCode::kNotFound});
  return ToGrpc(v.status());
}

grpc::Status DispatcherService::WatchRoutes(grpc::ServerContext* ctx,
                                            const v1::WatchRoutesRequest* req,
                                            grpc::ServerWriter<v1::RoutingTable>* writer) {
  constexpr absl::string_view kMethod = "/warren.v1.Dispatcher/WatchRoutes";
  uint64_t revocations = shared_.authorizer->revocation_generation();
  auto peer = shared_.Authorize(ctx, kMethod);
  if (!peer.ok()) return ToGrpc(peer.status());
  if (auto s = shared_.CheckLeads(); !s.ok()) return ToGrpc(s);
  if (auto s = CheckOwnNode(*peer, req->node_id(), "WatchRoutes"); !s.ok()) return ToGrpc(s);
  if (!shared_.routes) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "no traffic controller");
  uint64_t sent = 0;
  while (!ctx->IsCancelled() && !shared_.shutting_down) {
    if (auto s = shared_.Reauthorize(ctx, kMethod, &revocations); !s.ok()) return ToGrpc(s);
    // A manager that stops leading ends its streams: the workers go to the new leader.
    if (auto s = shared_.CheckLeads(); !s.ok()) return ToGrpc(s);
    const uint64_t seen = store_.Version();
    // A worker that applies deltas gets the whole table once, then only what changed.
    RoutingTableCache::Update update = shared_.routes->Since(req->deltas() ? sent : 0);
    if (update.version != sent) {
      if (!writer->Write(update.delta ? *update.delta : *update.table)) break;
      sent = update.version;
    }
    // Wakes on every commit; the timeout catches tasks passing their min-ready.
    store_.WaitForVersion(seen, absl::Milliseconds(100));
  }
  return grpc::Status::OK;
}

grpc::Status DispatcherService::ReportTrafficStats(grpc::ServerContext* ctx,
                                                   const v1::TrafficStatsReport* req,
                                                   v1::ReportTrafficStatsResponse*) {
  auto peer = shared_.Authorize(ctx, "/warren.v1.Dispatcher/ReportTrafficStats");
  if (!peer.ok()) return ToGrpc(peer.status());
  if (auto s = shared_.CheckLeads(); !s.ok()) return ToGrpc(s);
  if (auto s = CheckOwnNode(*peer, req->node_id(), "ReportTrafficStats"); !s.ok()) return ToGrpc(s);
  if (!shared_.traffic) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "no traffic controller");
  shared_.traffic->Report(*req);
  return grpc::Status::OK;
}

grpc::Status DispatcherService::GetIngressCertificates(grpc::ServerContext* ctx,
                                                       const v1::GetIngressCertificatesRequest* req,
                                                       v1::GetIngressCertificatesResponse* resp) {
  auto peer = shared_.Authorize(ctx, "/warren.v1.Dispatcher/GetIngressCertificates");
  if (!peer.ok()) return ToGrpc(peer.status());
  if (auto s = CheckOwnNode(*peer, req->node_id(), "GetIngressCertificates"); !s.ok()) {
    return ToGrpc(s);
  }
  std::vector<v1::Ingress> tls;
  for (v1::Ingress& i : ListObjects<v1::Ingress>(store_)) {
    // An ACME rule has nothing to send until its certificate is issued.
    if (i.spec().tls().mode() != v1::INGRESS_TLS_MODE_NONE && i.spec().tls().has_sealed_key()) {
      tls.push_back(std::move(i));
    }
  }
  std::sort(tls.begin(), tls.end(), [](const v1::Ingress& a, const v1::Ingress& b) {
    return std::tie(a.spec().host(), a.spec().path(), a.spec().name()) <
           std::tie(b.spec().host(), b.spec().path(), b.spec().name());
  });
  if (tls.empty()) return grpc::Status::OK;
  absl::StatusOr<security::SecretBytes> key =
      shared_.secret_key ? shared_.secret_key()
                         : absl::FailedPreconditionError("this manager has no cluster key");
  if (!key.ok()) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("ingress keys cannot be opened: ", key.status().message()));
  }
  for (const v1::Ingress& i : tls) {
    absl::StatusOr<security::SecretBytes> opened = OpenIngressKey(*key, i);
    if (!opened.ok()) {
      // One bad envelope must not take the other hosts' TLS down; its host gets no certificate.
      spdlog::warn("ingress {}: its key does not open: {}", i.spec().name(),
                   std::string(opened.status().message()));
      continue;
    }
    v1::IngressKeyPair* p = resp->add_certificates();
    p->set_name(i.spec().name());
    p->set_host(i.spec().host());
    p->set_certificate_pem(i.spec().tls().certificate_pem());
    p->set_certificate_sha256(CertificateSha256(i.spec().tls().certificate_pem()));
    p->set_key_pem(std::string(opened->reveal()));
  }
  return grpc::Status::OK;
}

}  // namespace warren
