#ifndef WARREN_PROXY_BALANCER_H_
#define WARREN_PROXY_BALANCER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/clock.h"
#include "warren/v1/objects.pb.h"

namespace warren {

enum class BalancePolicy { kLeastRequest, kRoundRobin };

struct BalancerOptions {
  // Preview balancers serve `<service>-preview`: only revisions marked preview, weights ignored.
  bool preview = false;
  // How an endpoint is chosen within the revision picked by weight.
  BalancePolicy policy = BalancePolicy::kLeastRequest;
  // An endpoint whose connect failed is skipped this long (unless every endpoint is ejected).
  absl::Duration ejection_period = absl::Seconds(5);
  const Clock* clock = &RealClock::Get();
};

// One endpoint as the balancer tracks it. Shared with leases, so a request that outlives a
// route update still sees its endpoint (and learns that it was removed).
struct BalancedEndpoint {
  v1::Endpoint endpoint;
  int64_t revision = 0;
  // task id @ address:port: identifies the endpoint across route updates.
  std::string key;
  std::atomic<int> in_flight{0};
  // Set when a route update dropped the endpoint: it gets no new requests and its idle
  // upstream connections are closed.
  std::atomic<bool> removed{false};
  // Guarded by the owning balancer's mutex.
  absl::Time ejected_until = absl::InfinitePast();
};

// Picks endpoints for one service: an exact weighted split between revisions by smooth
// weighted round robin, then least-request or round robin within the revision. Thread-safe.
class Balancer {
 public:
  // Holds one in-flight request on an endpoint; releasing (or destroying) it ends the request.
  class Lease {
   public:
    Lease() = default;
    explicit Lease(std::shared_ptr<BalancedEndpoint> ep) : ep_(std::move(ep)) {
      if (ep_) ep_->in_flight.fetch_add(1, std::memory_order_relaxed);
    }
    Lease(Lease&& o) noexcept : ep_(std::move(o.ep_)) {}
    Lease& operator=(Lease&& o) noexcept {
      if (this != &o) {
        Release();
        ep_ = std::move(o.ep_);
      }
      return *this;
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() { Release(); }

    void Release() {
      if (ep_) ep_->in_flight.fetch_sub(1, std::memory_order_relaxed);
      ep_.reset();
    }
    explicit operator bool() const { return ep_ != nullptr; }
    const v1::Endpoint& endpoint() const { return ep_->endpoint; }
    int64_t revision() const { return ep_->revision; }
    const std::string& key() const { return ep_->key; }
    bool removed() const { return ep_->removed.load(std::memory_order_relaxed); }
    const std::shared_ptr<BalancedEndpoint>& state() const { return ep_; }

   private:
    std::shared_ptr<BalancedEndpoint> ep_;
  };

  explicit Balancer(BalancerOptions options = {});
  Balancer(const Balancer&) = delete;
  Balancer& operator=(const Balancer&) = delete;

  // Replaces the route. Endpoints present before and after keep their in-flight counts and
  // ejection; dropped ones are marked removed at once.
  void Update(const v1::ServiceRoute& route);

  // An endpoint for a new request. UnavailableError when the service has no endpoint at all
  // (no revision with weight and endpoints), NotFoundError when every candidate is excluded.
  absl::StatusOr<Lease> Pick(absl::Span<const std::string> exclude_keys = {});

  // An endpoint of the revision with the most weight other than `revision` (a 5xx from
  // `revision` is retried there), or of a fallback revision (weight 0, still running: blue
  // after a blue/green switch) when no other revision has weight. NotFoundError when there is
  // none, and always for preview balancers.
  absl::StatusOr<Lease> PickOtherRevision(int64_t revision);

  // The connect to this endpoint failed: skip it for the ejection period.
  void Eject(const std::string& key);

  // Endpoints the current route has (for draining and tests).
  std::vector<std::shared_ptr<BalancedEndpoint>> Endpoints() const;
  bool IsEjected(const std::string& key) const;

  static std::string EndpointKey(const v1::Endpoint& e);

 private:
  struct Revision {
    int64_t revision = 0;
    int weight = 0;
    int64_t current = 0;  // smooth WRR state
    size_t cursor = 0;    // round robin position within the revision
    std::vector<std::shared_ptr<BalancedEndpoint>> endpoints;
  };

  // Index of the endpoint to use in `r`, or -1 when none is usable.
  int PickInRevision(Revision& r, absl::Span<const std::string> exclude, absl::Time now,
                     bool honor_ejection) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const BalancerOptions options_;
  mutable absl::Mutex mu_;
  std::vector<Revision> revisions_ ABSL_GUARDED_BY(mu_);
  // Whether any endpoint might still be ejected: spares a clock read per pick.
  bool any_ejected_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace warren

#endif  // WARREN_PROXY_BALANCER_H_
