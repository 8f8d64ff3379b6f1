#include "store/etcd_election.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace warren {
namespace {

constexpr absl::Duration kRetry = absl::Milliseconds(200);
// A deposed leader waits this long before it campaigns again: the others, who were waiting on
// the leader key, take over instead of racing a manager that just lost its lease (probably
// hung or cut off). Alone, it leads again after the pause.
constexpr absl::Duration kHandover = absl::Seconds(1);

}  // namespace

absl::StatusOr<std::unique_ptr<EtcdElection>> EtcdElection::Start(
    std::shared_ptr<EtcdClient> client, EtcdElectionOptions options) {
  if (client == nullptr) return absl::InvalidArgumentError("no etcd client");
  if (options.key.empty()) return absl::InvalidArgumentError("the leader key is empty");
  if (options.candidate.empty()) {
    return absl::InvalidArgumentError("the candidate (this manager's name) is empty");
  }
  if (options.ttl < absl::Seconds(1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "leader lease TTL ", absl::FormatDuration(options.ttl), " is too short: at least 1s"));
  }
  std::unique_ptr<EtcdElection> e(new EtcdElection(std::move(client), std::move(options)));
  e->campaign_thread_ = std::thread([raw = e.get()] { raw->CampaignLoop(); });
  e->keepalive_thread_ = std::thread([raw = e.get()] { raw->KeepAliveLoop(); });
  return e;
}

EtcdElection::~EtcdElection() { Resign().IgnoreError(); }

std::optional<EtcdFence> EtcdElection::Fence() const {
  absl::MutexLock lock(&mu_);
  // The lease may be gone in etcd once its last confirmed TTL has run out: stop leading here
  // first. (Commits are fenced anyway; this keeps a cut-off leader from even trying.)
  if (!fence_ || absl::Now() >= lease_valid_until_) return std::nullopt;
  return fence_;
}

bool EtcdElection::WaitUntilLeader(absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    if (IsLeader()) return true;
    if (absl::Now() >= deadline) return false;
    absl::MutexLock lock(&mu_);
    auto leading = [this] {
      mu_.AssertHeld();
      return fence_.has_value() || stopping_;
    };
    // Wakes on a new fence; polls for the lease validity that Fence() also checks.
    mu_.AwaitWithDeadline(absl::Condition(&leading),
                          std::min(deadline, absl::Now() + absl::Milliseconds(50)));
    if (stopping_) return false;
  }
}

bool EtcdElection::WaitUntilNotLeader(absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    if (!IsLeader()) return true;
    if (absl::Now() >= deadline) return false;
    absl::MutexLock lock(&mu_);
    auto lost = [this] {
      mu_.AssertHeld();
      return !fence_.has_value();
    };
    // The lease validity runs out without any event: poll it.
    mu_.AwaitWithDeadline(absl::Condition(&lost),
                          std::min(deadline, absl::Now() + absl::Milliseconds(50)));
  }
}

absl::StatusOr<std::optional<EtcdLeader>> EtcdElection::Leader() const {
  etcdserverpb::RangeRequest req;
  req.set_key(opts_.key);
  auto resp = client_->Range(req);
  if (!resp.ok()) return resp.status();
  if (resp->kvs().empty()) return std::optional<EtcdLeader>();
  const auto& kv = resp->kvs(0);
  return std::optional<EtcdLeader>(EtcdLeader{kv.value(), kv.create_revision(), kv.lease()});
}

int64_t EtcdElection::lease_id() const {
  absl::MutexLock lock(&mu_);
  return lease_;
}

absl::Status EtcdElection::Resign() {
  int64_t lease = 0;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::OkStatus();
    stopping_ = true;
    fence_.reset();
    lease = lease_;
    if (watch_context_ != nullptr) watch_context_->TryCancel();
    if (keepalive_context_ != nullptr) keepalive_context_->TryCancel();
  }
  if (campaign_thread_.joinable()) campaign_thread_.join();
  if (keepalive_thread_.joinable()) keepalive_thread_.join();
  if (lease == 0) return absl::OkStatus();
  // Deletes the leader key with it: the next candidate need not wait for the TTL.
  return client_->LeaseRevoke(lease);
}

void EtcdElection::StopKeepAliveForTest() {
  absl::MutexLock lock(&mu_);
  keepalive_stopped_ = true;
  if (keepalive_context_ != nullptr) keepalive_context_->TryCancel();
}

bool EtcdElection::Idle(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  auto stop = [this] {
    mu_.AssertHeld();
    return stopping_;
  };
  mu_.AwaitWithTimeout(absl::Condition(&stop), d);
  return !stopping_;
}

void EtcdElection::LoseLease(int64_t lease) {
  absl::MutexLock lock(&mu_);
  if (lease_ != lease) return;
  if (fence_) spdlog::warn("leader election: the lease expired; no longer leading");
  lease_ = 0;
  fence_.reset();
  lease_valid_until_ = absl::InfinitePast();
  if (watch_context_ != nullptr) watch_context_->TryCancel();
}

void EtcdElection::CampaignLoop() {
  const auto ttl_seconds = static_cast<int64_t>(std::ceil(absl::ToDoubleSeconds(opts_.ttl)));
  for (;;) {
    int64_t lease = 0;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      lease = lease_;
    }
    if (lease == 0) {
      const absl::Time asked = absl::Now();
      auto grant = client_->LeaseGrant(ttl_seconds);
      if (!grant.ok()) {
        spdlog::warn("leader election: {}; retrying", grant.status().ToString());
        if (!Idle(kRetry)) return;
        continue;
      }
      absl::MutexLock lock(&mu_);
      if (stopping_) {
        // Resign found no lease to revoke: etcd expires this one after its TTL.
        return;
      }
      lease = lease_ = grant->id();
      lease_ttl_seconds_ = grant->ttl();
      lease_valid_until_ = asked + absl::Seconds(grant->ttl());
    }
    if (absl::Status s = Register(lease); !s.ok()) {
      spdlog::warn("leader election: registering {}: {}; retrying", opts_.member_key, s.ToString());
      if (s.code() == absl::StatusCode::kNotFound) {
        LoseLease(lease);
      } else if (!Idle(kRetry)) {
        return;
      }
      continue;
    }
    bool led = false;
    absl::Status s = CampaignOnce(lease, &led);
    if (led && !Idle(kHandover)) return;
    if (s.code() == absl::StatusCode::kNotFound) {
      // etcd no longer has the lease ("requested lease not found"): it expired.
      LoseLease(lease);
    } else if (!s.ok() && s.code() != absl::StatusCode::kCancelled) {
      spdlog::warn("leader election: {}; retrying", s.ToString());
      if (!Idle(kRetry)) return;
    }
  }
}

absl::Status EtcdElection::Register(int64_t lease) {
  if (opts_.member_key.empty()) return absl::OkStatus();
  etcdserverpb::TxnRequest txn;
  auto* put = txn.add_success()->mutable_request_put();
  put->set_key(opts_.member_key);
  put->set_value(opts_.member_value);
  put->set_lease(lease);
  return client_->Txn(txn).status();
}

absl::Status EtcdElection::CampaignOnce(int64_t lease, bool* led) {
  etcdserverpb::TxnRequest txn;
  auto* cmp = txn.add_compare();
  cmp->set_key(opts_.key);
  cmp->set_target(etcdserverpb::Compare::CREATE);
  cmp->set_result(etcdserverpb::Compare::EQUAL);
  cmp->set_create_revision(0);
  auto* put = txn.add_success()->mutable_request_put();
  put->set_key(opts_.key);
  put->set_value(opts_.candidate);
  put->set_lease(lease);
  txn.add_failure()->mutable_request_range()->set_key(opts_.key);
  auto resp = client_->Txn(txn);
  if (!resp.ok()) return resp.status();
  int64_t create_revision = resp->header().revision();
  if (!resp->succeeded()) {
    const auto& kvs = resp->responses(0).response_range().kvs();
    // Deleted meanwhile: campaign again at once.
    if (kvs.empty()) return absl::OkStatus();
    if (kvs[0].lease() != lease) {
      // Someone else leads: wait for the key to go.
      return WatchKey(resp->header().revision() + 1, 0);
    }
    // This candidate's own key, from before a lost watch.
    create_revision = kvs[0].create_revision();
  }
  {
    absl::MutexLock lock(&mu_);
    if (lease_ != lease || stopping_) return absl::CancelledError("lease lost");
    fence_ = EtcdFence{opts_.key, create_revision};
  }
  *led = true;
  spdlog::info("leader election: {} leads (leader key {} created at revision {})", opts_.candidate,
               opts_.key, create_revision);
  int64_t from = create_revision + 1;
  absl::Status result;
  for (;;) {
    absl::Status s = WatchKey(from, create_revision);
    if (s.ok() || s.code() == absl::StatusCode::kCancelled) {
      result = s;
      break;
    }
    // The watch broke, not the office: ask etcd whether the key is still this leader's.
    etcdserverpb::RangeRequest get;
    get.set_key(opts_.key);
    auto now = client_->Range(get);
    if (now.ok()) {
      if (now->kvs().empty() || now->kvs(0).create_revision() != create_revision) break;
      from = now->header().revision() + 1;
    } else if (!Idle(kRetry)) {
      break;
    }
  }
  {
    absl::MutexLock lock(&mu_);
    fence_.reset();
  }
  spdlog::info("leader election: {} no longer leads", opts_.candidate);
  return result;
}

absl::Status EtcdElection::WatchKey(int64_t revision, int64_t create_revision) {
  int64_t lease = 0;
  auto ws = client_->OpenWatch();
  if (!ws.ok()) return ws.status();
  bool cancelled = false;
  {
    absl::MutexLock lock(&mu_);
    lease = lease_;
    cancelled = stopping_ || lease_ == 0;
    if (!cancelled) watch_context_ = ws->context.get();
  }
  etcdserverpb::WatchRequest req;
  req.mutable_create_request()->set_key(opts_.key);
  req.mutable_create_request()->set_start_revision(revision);
  absl::Status result = absl::UnavailableError(absl::StrCat("watch on ", ws->endpoint, " ended"));
  bool done = false;
  if (!cancelled && ws->stream->Write(req)) {
    etcdserverpb::WatchResponse resp;
    while (!done && ws->stream->Read(&resp)) {
      if (resp.canceled()) {
        result = absl::UnavailableError(
            absl::StrCat("etcd cancelled the leader key's watch: ", resp.cancel_reason()));
        break;
      }
      for (const auto& ev : resp.events()) {
        const bool deleted = ev.type() == mvccpb::Event::DELETE;
        const bool replaced = create_revision != 0 && ev.kv().create_revision() != create_revision;
        if (deleted || replaced) {
          result = absl::OkStatus();
          done = true;
          break;
        }
      }
    }
  }
  {
    absl::MutexLock lock(&mu_);
    watch_context_ = nullptr;
    if (!done && (stopping_ || lease_ != lease)) result = absl::CancelledError("stopping");
  }
  ws->context->TryCancel();
  ws->stream->Finish().IgnoreError();
  return result;
}

void EtcdElection::KeepAliveLoop() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this] {
        mu_.AssertHeld();
        return stopping_ || (lease_ != 0 && !keepalive_stopped_);
      };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
    }
    auto ks = client_->OpenKeepAlive();
    if (!ks.ok()) {
      if (!Idle(kRetry)) return;
      continue;
    }
    {
      absl::MutexLock lock(&mu_);
      if (stopping_ || keepalive_stopped_) {
        ks->context->TryCancel();
      } else {
        keepalive_context_ = ks->context.get();
      }
    }
    for (;;) {
      int64_t lease = 0;
      int64_t ttl = 0;
      {
        absl::MutexLock lock(&mu_);
        if (stopping_ || keepalive_stopped_ || lease_ == 0) break;
        lease = lease_;
        ttl = lease_ttl_seconds_;
      }
      const absl::Time sent = absl::Now();
      etcdserverpb::LeaseKeepAliveRequest req;
      req.set_id(lease);
      etcdserverpb::LeaseKeepAliveResponse resp;
      if (!ks->stream->Write(req) || !ks->stream->Read(&resp)) break;
      if (resp.ttl() <= 0) {
        LoseLease(lease);
        break;
      }
      {
        absl::MutexLock lock(&mu_);
        if (lease_ == lease) lease_valid_until_ = sent + absl::Seconds(resp.ttl());
      }
      // Three keepalives per TTL: one lost or late still leaves the lease alive.
      if (!Idle(absl::Seconds(std::max<int64_t>(ttl, 1)) / 3)) break;
    }
    {
      absl::MutexLock lock(&mu_);
      keepalive_context_ = nullptr;
    }
    ks->context->TryCancel();
    grpc::Status s = ks->stream->Finish();
    if (!s.ok() && s.error_code() != grpc::StatusCode::CANCELLED) {
      client_->ReportFailure(ks->endpoint);
      if (!Idle(kRetry)) return;
    }
  }
}

}  // namespace warren
