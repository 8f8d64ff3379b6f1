#ifndef WARREN_HTTP_DESCRIPTOR_BUDGET_H_
#define WARREN_HTTP_DESCRIPTOR_BUDGET_H_

#include <atomic>
#include <cstdint>
#include <utility>

namespace warren {

// A count of file descriptors that listeners facing untrusted clients (the proxies, DNS) may
// hold together. It is set below RLIMIT_NOFILE so that a flood of data-plane connections is
// refused while the control plane (gRPC API, store, task processes, health checks) still has
// descriptors: the process must never reach EMFILE because of its data plane.
class DescriptorBudget {
 public:
  static constexpr int64_t kUnlimited = INT64_MAX;

  explicit DescriptorBudget(int64_t limit = kUnlimited) : limit_(limit) {}
  DescriptorBudget(const DescriptorBudget&) = delete;
  DescriptorBudget& operator=(const DescriptorBudget&) = delete;

  // The process-wide budget of the data plane; unlimited until SetLimit.
  static DescriptorBudget& DataPlane();

  // Units held from a budget; returned when the lease is destroyed or reset.
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& o) noexcept
        : budget_(std::exchange(o.budget_, nullptr)), n_(std::exchange(o.n_, 0)) {}
    Lease& operator=(Lease&& o) noexcept {
      if (this != &o) {
        Reset();
        budget_ = std::exchange(o.budget_, nullptr);
        n_ = std::exchange(o.n_, 0);
      }
      return *this;
    }
    ~Lease() { Reset(); }
    explicit operator bool() const { return n_ > 0; }
    void Reset() {
      if (budget_ && n_ > 0) budget_->used_.fetch_sub(n_, std::memory_order_relaxed);
      budget_ = nullptr;
      n_ = 0;
    }

   private:
    friend class DescriptorBudget;
    Lease(DescriptorBudget* b, int64_t n) : budget_(b), n_(n) {}
    DescriptorBudget* budget_ = nullptr;
    int64_t n_ = 0;
  };

  // `n` (> 0) units, or an empty lease when they would exceed the limit.
  Lease TryAcquire(int64_t n) {
    int64_t before = used_.fetch_add(n, std::memory_order_relaxed);
    if (before + n > limit_.load(std::memory_order_relaxed)) {
      used_.fetch_sub(n, std::memory_order_relaxed);
      return Lease();
    }
    return Lease(this, n);
  }

  void SetLimit(int64_t limit) { limit_.store(limit, std::memory_order_relaxed); }
  int64_t limit() const { return limit_.load(std::memory_order_relaxed); }
  int64_t in_use() const { return used_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> limit_;
  std::atomic<int64_t> used_{0};
};

// Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit in force afterwards.
// The soft limit from before is what processes started later get (RestoreTaskFileLimit).
int64_t RaiseFileLimit();

// In a forked child before exec: the soft RLIMIT_NOFILE from before RaiseFileLimit (the hard
// limit stays). Tasks and the commands of health checks get the limit Warren was started with,
// not Warren's own, which can be a million: programs that close every possible descriptor at
// start or use select(2) break or slow down with such a limit. Async-signal-safe.
void RestoreTaskFileLimit();

// Sets the data plane's budget to the descriptor limit minus `reserved` (kept for the control
// plane), but never below half the limit. Returns the budget.
int64_t ConfigureDataPlaneBudget(int64_t reserved);

}  // namespace warren

#endif  // WARREN_HTTP_DESCRIPTOR_BUDGET_H_
