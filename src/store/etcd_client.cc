#include "store/etcd_client.h"

#include <algorithm>
#include <climits>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace warren {
namespace {

absl::StatusOr<std::string> ReadPemFile(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat("etcd ", what, " ", path, ": cannot be read"));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  if (text.find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("etcd ", what, " ", path, ": not PEM"));
  }
  return text;
}

absl::StatusCode MapCode(grpc::StatusCode code) {
  switch (code) {
    // Our own deadline: the member did not answer in time, which for a caller is the same as
    // a cluster it cannot reach.
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return absl::StatusCode::kUnavailable;
    default:
      return static_cast<absl::StatusCode>(code);
  }
}

}  // namespace

absl::Status ValidateEtcdEndpoint(const std::string& endpoint) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("etcd endpoint \"", endpoint, "\": ", why,
                                                   "; expected HOST:PORT, e.g. 10.0.0.1:2379"));
  };
  size_t colon = endpoint.rfind(':');
  if (colon == std::string::npos || colon == 0) return bad("no port");
  std::string host = endpoint.substr(0, colon);
  if (host.front() == '[' ? host.back() != ']' || host.size() < 3
                          : host.find_first_of("[]:/ ") != std::string::npos) {
    return bad("the host is not a name, an IPv4 address or a bracketed IPv6 address");
  }
  int port = 0;
  if (!absl::SimpleAtoi(endpoint.substr(colon + 1), &port) || port < 1 || port > 65535) {
    return bad("the port is not a number from 1 to 65535");
  }
  return absl::OkStatus();
}

std::string EtcdPrefixEnd(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) < 0xff) {
      end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  // Every key: etcd's "\0" range end.
  return std::string(1, '\0');
}

absl::StatusOr<std::unique_ptr<EtcdClient>> EtcdClient::Create(const EtcdClientOptions& options) {
  if (options.endpoints.empty()) return absl::InvalidArgumentError("no etcd endpoint given");
  for (const std::string& e : options.endpoints) {
    if (absl::Status s = ValidateEtcdEndpoint(e); !s.ok()) return s;
  }
  if (options.cert_file.empty() != options.key_file.empty()) {
    return absl::InvalidArgumentError(
        "an etcd client certificate needs its key and a key its certificate: give both or "
        "neither");
  }
  if (!options.cert_file.empty() && options.ca_file.empty()) {
    return absl::InvalidArgumentError(
        "an etcd client certificate is only used over TLS: give the etcd CA certificate too");
  }
  if (options.rpc_timeout <= absl::ZeroDuration() ||
      options.connect_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("etcd timeouts must be positive");
  }
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (!options.ca_file.empty()) {
    grpc::SslCredentialsOptions ssl;
    auto ca = ReadPemFile(options.ca_file, "CA certificate");
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = std::move(*ca);
    if (!options.cert_file.empty()) {
      auto cert = ReadPemFile(options.cert_file, "client certificate");
      if (!cert.ok()) return cert.status();
      auto key = ReadPemFile(options.key_file, "client key");
      if (!key.ok()) return key.status();
      ssl.pem_cert_chain = std::move(*cert);
      ssl.pem_private_key = std::move(*key);
    }
    creds = grpc::SslCredentials(ssl);
  }
  std::unique_ptr<EtcdClient> client(new EtcdClient(options));
  for (const std::string& e : options.endpoints) {
    grpc::ChannelArguments args;
    // A watch replay or a relist can be far larger than gRPC's 4 MiB default.
    args.SetMaxReceiveMessageSize(INT_MAX);
    // A member that comes back is used again within a second, not after gRPC's default
    // backoff of up to two minutes. (The minimum "backoff" is gRPC's connect timeout: left at
    // its default, a connect on a loaded machine is not given up too early.)
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    // After failed connects gRPC resolves the name again before it retries, at most every 30 s
    // by default: a restarted member would stay unused that long.
    args.SetInt(GRPC_ARG_DNS_MIN_TIME_BETWEEN_RESOLUTIONS_MS, 500);
    // Finds a member that vanished without closing the connection (etcd allows pings every
    // 5 s by default).
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
    auto m = std::make_unique<Member>();
    m->endpoint = e;
    m->channel = grpc::CreateCustomChannel(e, creds, args);
    m->kv = etcdserverpb::KV::NewStub(m->channel);
    m->lease = etcdserverpb::Lease::NewStub(m->channel);
    m->watch = etcdserverpb::Watch::NewStub(m->channel);
    m->maintenance = etcdserverpb::Maintenance::NewStub(m->channel);
    client->members_.push_back(std::move(m));
  }
  return client;
}

absl::Status EtcdClient::FromGrpc(const grpc::Status& s, const std::string& endpoint) {
  if (s.ok()) return absl::OkStatus();
  absl::Status out(MapCode(s.error_code()),
                   absl::StrCat("etcd ", endpoint, ": ", s.error_message()));
  // The member may have taken the request before the deadline: a write may still be applied.
  if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    out.SetPayload(kEtcdOutcomeUnknown, absl::Cord("deadline"));
  }
  return out;
}

bool EtcdOutcomeUnknown(const absl::Status& s) {
  return s.GetPayload(kEtcdOutcomeUnknown).has_value();
}

bool EtcdClient::Connect(Member& m, absl::Time deadline) const {
  // A call on a channel that failed to connect fails at once, without trying again; asking
  // for the connection does try.
  return m.channel->GetState(/*try_to_connect=*/true) == GRPC_CHANNEL_READY ||
         m.channel->WaitForConnected(
             absl::ToChronoTime(std::min(absl::Now() + options_.connect_timeout, deadline)));
}

absl::StatusOr<EtcdClient::Member*> EtcdClient::Pick() {
  size_t start;
  {
    absl::MutexLock lock(&mu_);
    start = current_;
  }
  auto use = [&](size_t index) {
    if (index != start) {
      absl::MutexLock lock(&mu_);
      current_ = index;
    }
    return members_[index].get();
  };
  // A member that is connected now comes first: after the member in use failed, waiting up to
  // connect_timeout for each member that is down before coming back to one that answers would
  // make every call of a cluster without quorum take seconds instead of failing at once.
  for (size_t i = 0; i < members_.size(); ++i) {
    const size_t index = (start + i) % members_.size();
    if (members_[index]->channel->GetState(/*try_to_connect=*/true) == GRPC_CHANNEL_READY) {
      return use(index);
    }
  }
  std::vector<std::string> failed;
  for (size_t i = 0; i < members_.size(); ++i) {
    const size_t index = (start + i) % members_.size();
    if (!Connect(*members_[index])) {
      failed.push_back(members_[index]->endpoint);
      continue;
    }
    return use(index);
  }
  return absl::UnavailableError(
      absl::StrCat("cannot connect to any etcd member (", absl::StrJoin(failed, ", "), ")"));
}

void EtcdClient::ReportFailure(const std::string& endpoint) {
  absl::MutexLock lock(&mu_);
  if (members_[current_]->endpoint == endpoint) current_ = (current_ + 1) % members_.size();
}

void EtcdClient::SetDeadline(grpc::ClientContext& ctx) const {
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + options_.rpc_timeout));
}

template <typename Call>
absl::Status EtcdClient::Unary(Call call) {
  auto m = Pick();
  if (!m.ok()) return m.status();
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  // A member cut off from its leader fails at once instead of after etcd's request timeout.
  ctx.AddMetadata("hasleader", "true");
  grpc::Status s = call(**m, ctx);
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE ||
      s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    ReportFailure((*m)->endpoint);
  }
  return FromGrpc(s, (*m)->endpoint);
}

absl::StatusOr<etcdserverpb::RangeResponse> EtcdClient::Range(
    const etcdserverpb::RangeRequest& req) {
  etcdserverpb::RangeResponse resp;
  absl::Status s =
      Unary([&](Member& m, grpc::ClientContext& ctx) { return m.kv->Range(&ctx, req, &resp); });
  if (!s.ok()) return s;
  return resp;
}

absl::StatusOr<etcdserverpb::TxnResponse> EtcdClient::Txn(const etcdserverpb::TxnRequest& req) {
  etcdserverpb::TxnResponse resp;
  absl::Status s =
      Unary([&](Member& m, grpc::ClientContext& ctx) { return m.kv->Txn(&ctx, req, &resp); });
  if (!s.ok()) return s;
  return resp;
}

absl::StatusOr<etcdserverpb::LeaseGrantResponse> EtcdClient::LeaseGrant(int64_t ttl_seconds) {
  etcdserverpb::LeaseGrantRequest req;
  req.set_ttl(ttl_seconds);
  etcdserverpb::LeaseGrantResponse resp;
  absl::Status s = Unary(
      [&](Member& m, grpc::ClientContext& ctx) { return m.lease->LeaseGrant(&ctx, req, &resp); });
  if (!s.ok()) return s;
  if (!resp.error().empty()) return absl::UnavailableError("etcd lease grant: " + resp.error());
  return resp;
}

absl::Status EtcdClient::LeaseRevoke(int64_t lease_id) {
  etcdserverpb::LeaseRevokeRequest req;
  req.set_id(lease_id);
  etcdserverpb::LeaseRevokeResponse resp;
  return Unary(
      [&](Member& m, grpc::ClientContext& ctx) { return m.lease->LeaseRevoke(&ctx, req, &resp); });
}

absl::Status EtcdClient::Compact(int64_t revision) {
  etcdserverpb::CompactionRequest req;
  req.set_revision(revision);
  etcdserverpb::CompactionResponse resp;
  return Unary(
      [&](Member& m, grpc::ClientContext& ctx) { return m.kv->Compact(&ctx, req, &resp); });
}

absl::StatusOr<etcdserverpb::StatusResponse> EtcdClient::MemberStatus(size_t endpoint,
                                                                      absl::Duration timeout) {
  if (endpoint >= members_.size()) return absl::InvalidArgumentError("no such etcd endpoint");
  Member& m = *members_[endpoint];
  const absl::Time deadline = absl::Now() + std::min(timeout, options_.rpc_timeout);
  if (!Connect(m, deadline)) {
    return absl::UnavailableError(absl::StrCat("etcd ", m.endpoint, ": cannot connect"));
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(deadline));
  etcdserverpb::StatusResponse resp;
  absl::Status s =
      FromGrpc(m.maintenance->Status(&ctx, etcdserverpb::StatusRequest(), &resp), m.endpoint);
  if (!s.ok()) return s;
  return resp;
}

absl::StatusOr<EtcdClient::WatchStream> EtcdClient::OpenWatch() {
  auto m = Pick();
  if (!m.ok()) return m.status();
  WatchStream ws;
  ws.context = std::make_unique<grpc::ClientContext>();
  // A watch on a member cut off from its leader would otherwise wait silently for quorum.
  ws.context->AddMetadata("hasleader", "true");
  ws.stream = (*m)->watch->Watch(ws.context.get());
  ws.endpoint = (*m)->endpoint;
  return ws;
}

absl::StatusOr<EtcdClient::KeepAliveStream> EtcdClient::OpenKeepAlive() {
  auto m = Pick();
  if (!m.ok()) return m.status();
  KeepAliveStream ks;
  ks.context = std::make_unique<grpc::ClientContext>();
  ks.context->AddMetadata("hasleader", "true");
  ks.stream = (*m)->lease->LeaseKeepAlive(ks.context.get());
  ks.endpoint = (*m)->endpoint;
  return ks;
}

}  // namespace warren
