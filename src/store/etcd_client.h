#ifndef WARREN_STORE_ETCD_CLIENT_H_
#define WARREN_STORE_ETCD_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "grpcpp/grpcpp.h"

// A small client of etcd's v3 gRPC API: the calls the etcd store and the leader election make,
// over one channel per cluster member, with failover between members.

namespace warren {

struct EtcdClientOptions {
  // The members' client addresses, "host:port" ("[v6]:port" for IPv6 literals).
  std::vector<std::string> endpoints;
  // TLS to etcd: the CA that signed the members' certificates (PEM file). Empty: plain TCP.
  std::string ca_file;
  // Client certificate and key (PEM files) for members that require them
  // (--client-cert-auth); both or neither, and only with ca_file.
  std::string cert_file;
  std::string key_file;
  // Each call gives up after this long; a member that has not yet noticed it lost its quorum
  // answers only after etcd's own request timeout (5 s and more), so this bounds how long a
  // caller waits for an unavailable cluster. Below the CLI's 5 s, so that a user sees the
  // manager's UNAVAILABLE rather than the CLI's own deadline.
  absl::Duration rpc_timeout = absl::Seconds(3);
  // How long a call waits to connect to one member before trying the next.
  absl::Duration connect_timeout = absl::Seconds(1);
};

// The payload of an error after which a write may or may not have been applied (the call
// timed out once sent).
inline constexpr absl::string_view kEtcdOutcomeUnknown = "warren.etcd/outcome-unknown";
bool EtcdOutcomeUnknown(const absl::Status& s);

// Checks one "host:port" endpoint; the error names it and says what is allowed.
absl::Status ValidateEtcdEndpoint(const std::string& endpoint);

// Thread-safe. Unary calls go to the member currently in use; a member that cannot be reached
// is skipped before anything is sent to it, so a call is never sent twice. Errors carry the
// member's address; a member without quorum or an unreachable cluster is UNAVAILABLE.
class EtcdClient {
 public:
  // Checks the options and reads the TLS files; connects lazily.
  static absl::StatusOr<std::unique_ptr<EtcdClient>> Create(const EtcdClientOptions& options);

  absl::StatusOr<etcdserverpb::RangeResponse> Range(const etcdserverpb::RangeRequest& req);
  absl::StatusOr<etcdserverpb::TxnResponse> Txn(const etcdserverpb::TxnRequest& req);
  absl::StatusOr<etcdserverpb::LeaseGrantResponse> LeaseGrant(int64_t ttl_seconds);
  absl::Status LeaseRevoke(int64_t lease_id);
  // Discards the history before `revision` (etcd's compaction).
  absl::Status Compact(int64_t revision);
  // The status of one member (by index into the endpoints), asked of that member only. Gives
  // up after `timeout` (connecting included) or the client's own timeouts, whichever is first.
  absl::StatusOr<etcdserverpb::StatusResponse> MemberStatus(
      size_t endpoint, absl::Duration timeout = absl::InfiniteDuration());

  // A bidirectional stream on a member that is reachable now. The caller may cancel it from
  // another thread with context->TryCancel().
  template <typename Request, typename Response>
  struct Stream {
    std::unique_ptr<grpc::ClientContext> context;
    std::unique_ptr<grpc::ClientReaderWriter<Request, Response>> stream;
    std::string endpoint;
  };
  using WatchStream = Stream<etcdserverpb::WatchRequest, etcdserverpb::WatchResponse>;
  using KeepAliveStream =
      Stream<etcdserverpb::LeaseKeepAliveRequest, etcdserverpb::LeaseKeepAliveResponse>;
  absl::StatusOr<WatchStream> OpenWatch();
  absl::StatusOr<KeepAliveStream> OpenKeepAlive();

  // The endpoint that failed a call: the next call starts with another member.
  void ReportFailure(const std::string& endpoint);

  const EtcdClientOptions& options() const { return options_; }

  // "etcd 127.0.0.1:2379: <message>", with the code mapped for Warren's callers.
  static absl::Status FromGrpc(const grpc::Status& s, const std::string& endpoint);

 private:
  struct Member {
    std::string endpoint;
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<etcdserverpb::KV::Stub> kv;
    std::unique_ptr<etcdserverpb::Lease::Stub> lease;
    std::unique_ptr<etcdserverpb::Watch::Stub> watch;
    std::unique_ptr<etcdserverpb::Maintenance::Stub> maintenance;
  };

  explicit EtcdClient(EtcdClientOptions options) : options_(std::move(options)) {}

  // A member that is connected (or connects within connect_timeout), starting with the one in
  // use; UNAVAILABLE naming every member when none is.
  absl::StatusOr<Member*> Pick();
  // True when `m` is connected or connects within connect_timeout (and before `deadline`).
  bool Connect(Member& m, absl::Time deadline = absl::InfiniteFuture()) const;
  void SetDeadline(grpc::ClientContext& ctx) const;
  // Runs `call` on a picked member and maps its status.
  template <typename Call>
  absl::Status Unary(Call call);

  const EtcdClientOptions options_;
  std::vector<std::unique_ptr<Member>> members_;
  absl::Mutex mu_;
  size_t current_ ABSL_GUARDED_BY(mu_) = 0;
};

// The end of the key range holding every key that starts with `prefix` (etcd's "prefix + 1").
std::string EtcdPrefixEnd(const std::string& prefix);

}  // namespace warren

#endif  // WARREN_STORE_ETCD_CLIENT_H_
