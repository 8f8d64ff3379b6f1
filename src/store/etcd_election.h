#ifndef WARREN_STORE_ETCD_ELECTION_H_
#define WARREN_STORE_ETCD_ELECTION_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "store/etcd_client.h"
#include "store/etcd_store.h"

// Leader election on etcd, so that one manager at a time runs the controllers.
//
// Each candidate holds an etcd lease that it keeps alive. The leader is the candidate whose
// transaction created the leader key (attached to its lease) while the key did not exist; the
// others watch the key and try again when it is deleted, which etcd does when the leader's
// lease expires (a crashed or cut-off leader: at most the TTL later) or is revoked (a leader
// that stops). The leader's fence (the key and the revision that created it) goes into every
// controller commit (EtcdStore::CommitFenced), so a deposed leader that has not noticed yet
// cannot write.

namespace warren {

struct EtcdElectionOptions {
  // The leader key; every candidate of one cluster uses the same.
  std::string key = "/warren/leader";
  // Who this candidate is (the leader key's value): the manager's id or address.
  std::string candidate;
  // The lease's time to live, whole seconds: how long a crashed leader keeps the office.
  // etcd raises a shorter one to its minimum (1.5 times its election timeout).
  absl::Duration ttl = absl::Seconds(5);
  // Optional: a key written with `member_value` under each lease this candidate holds, so that
  // it lives exactly as long as the candidate (the managers' registry, `node ls`).
  std::string member_key;
  std::string member_value;
};

// Who leads, as etcd has it.
struct EtcdLeader {
  std::string candidate;
  int64_t create_revision = 0;
  int64_t lease = 0;
};

// Campaigns from Start until destroyed or Resign. Thread-safe.
class EtcdElection {
 public:
  static absl::StatusOr<std::unique_ptr<EtcdElection>> Start(std::shared_ptr<EtcdClient> client,
                                                             EtcdElectionOptions options);
  // Resigns.
  ~EtcdElection();
  EtcdElection(const EtcdElection&) = delete;
  EtcdElection& operator=(const EtcdElection&) = delete;

  // The fence while this candidate leads. Leadership ends here as soon as the lease may have
  // expired in etcd (no keepalive answered within the TTL), even before etcd says so.
  std::optional<EtcdFence> Fence() const;
  bool IsLeader() const { return Fence().has_value(); }
  // Wait (real time: etcd's lease runs on it) until this candidate leads, or no longer leads.
  bool WaitUntilLeader(absl::Duration timeout) const;
  bool WaitUntilNotLeader(absl::Duration timeout) const;

  // The current leader as etcd has it; nullopt when there is none.
  absl::StatusOr<std::optional<EtcdLeader>> Leader() const;

  // Stops campaigning and revokes the lease, so another candidate takes over at once.
  absl::Status Resign();

  // The lease in use (0 while none is held).
  int64_t lease_id() const;

  // Tests: stops answering for the lease, as a hung process would; etcd expires it after the TTL.
  void StopKeepAliveForTest();

 private:
  EtcdElection(std::shared_ptr<EtcdClient> client, EtcdElectionOptions options)
      : client_(std::move(client)), opts_(std::move(options)) {}

  void CampaignLoop();
  void KeepAliveLoop();
  // One campaign: returns when this candidate has led and lost, or has seen the key deleted,
  // or on an error. Takes the lease it was given.
  // Sets *led once this candidate became the leader.
  absl::Status CampaignOnce(int64_t lease, bool* led);
  // Writes the member key under `lease`.
  absl::Status Register(int64_t lease);
  // Watches the leader key from `revision` until it is deleted or, with `create_revision`
  // set, created anew; or until cancelled.
  absl::Status WatchKey(int64_t revision, int64_t create_revision);
  // The lease expired or was revoked: drop leadership and the lease.
  void LoseLease(int64_t lease);
  // Sleeps for `d` unless stopping; false when stopping.
  bool Idle(absl::Duration d);

  const std::shared_ptr<EtcdClient> client_;
  const EtcdElectionOptions opts_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool keepalive_stopped_ ABSL_GUARDED_BY(mu_) = false;
  int64_t lease_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t lease_ttl_seconds_ ABSL_GUARDED_BY(mu_) = 0;
  // The lease is alive in etcd at least until then (the last answered keepalive's send time
  // plus its TTL).
  absl::Time lease_valid_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::optional<EtcdFence> fence_ ABSL_GUARDED_BY(mu_);
  // The streams in use, cancelled to stop or to drop a lost lease.
  grpc::ClientContext* watch_context_ ABSL_GUARDED_BY(mu_) = nullptr;
  grpc::ClientContext* keepalive_context_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::thread campaign_thread_;
  std::thread keepalive_thread_;
};

}  // namespace warren

#endif  // WARREN_STORE_ETCD_ELECTION_H_
