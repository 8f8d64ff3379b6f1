#ifndef WARREN_WORKER_HEALTH_PROBER_H_
#define WARREN_WORKER_HEALTH_PROBER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "warren/v1/objects.pb.h"
#include "worker/runtime_driver.h"

namespace warren {

// How long a new task that has not been healthy yet may fail its probes without them counting,
// when its check sets no start period. A wall time, not a number of intervals: with a short
// interval the first one alone ended before a loaded machine had the program listening.
inline constexpr absl::Duration kDefaultHealthStartPeriod = absl::Seconds(5);

// A HealthCheck with its defaults applied (unset or non-positive fields take the default; a
// start period given as 0 stays 0).
struct HealthCheckParams {
  absl::Duration interval = absl::Seconds(5);
  absl::Duration timeout = absl::Seconds(2);
  int retries = 3;
  int success_threshold = 1;
  absl::Duration start_period = kDefaultHealthStartPeriod;
};
HealthCheckParams ResolveHealthCheck(const v1::HealthCheck& check);

// The health of one task as a pure state machine over probe results; time comes from the caller.
//  - STARTING until `success_threshold` consecutive successes (HEALTHY) or `retries`
//    consecutive failures (UNHEALTHY).
//  - Failures before the end of the start period (kDefaultHealthStartPeriod unless the check
//    sets one) do not count, unless the task has already been healthy once.
//  - HEALTHY becomes UNHEALTHY after `retries` consecutive failures and UNHEALTHY becomes HEALTHY
//    again after `success_threshold` consecutive successes.
// The first probe is due one interval after the task started, each next one an interval after
// the previous result was recorded.
class HealthTracker {
 public:
  // Probes within a new task's first interval (until it is healthy): at 1/4, 2/4 and 3/4 of
  // the interval, then at the interval as before. Failures among them never count.
  static constexpr int kStartupProbesPerInterval = 4;

  HealthTracker(const v1::HealthCheck& check, absl::Time started_at);
  // Resumes the health an earlier worker established for an adopted task: its state,
  // healthy_since and last probe carry on (a restart is no reason to doubt a healthy task, nor
  // to restart its min-ready), streaks start over, and the first probe is due at once.
  HealthTracker(const v1::HealthCheck& check, absl::Time started_at, const v1::TaskHealth& resume);

  absl::Time NextProbeAt() const { return next_probe_at_; }
  // Returns true when the state changed (HEALTHY/UNHEALTHY/STARTING); streaks and last_probe
  // are updated on every call.
  bool Record(const v1::ProbeResult& result, absl::Time now);
  // healthy_since is set while HEALTHY: the time it last became healthy.
  const v1::TaskHealth& health() const { return health_; }
  const HealthCheckParams& params() const { return params_; }

 private:
  bool InFirstInterval(absl::Time now) const;

  HealthCheckParams params_;
  absl::Time started_at_;
  absl::Time next_probe_at_;
  bool ever_healthy_ = false;
  v1::TaskHealth health_;
};

// One probe each. They fill ok, output (status line, exit code or error, shortened) and latency;
// the caller sets time. `host` empty means 127.0.0.1. `inconclusive` (optional) is set when the
// probe failed for a reason of the worker's own (out of descriptors, memory or ports; the
// runtime not answering): the result then says nothing about the task.
v1::ProbeResult ProbeHttp(std::string_view host, int port, const v1::HttpProbe& probe,
                          absl::Duration timeout, bool* inconclusive = nullptr);
v1::ProbeResult ProbeTcp(std::string_view host, int port, absl::Duration timeout,
                         bool* inconclusive = nullptr);
v1::ProbeResult ProbeExec(RuntimeDriver& driver, std::string_view task_id,
                          const v1::ExecProbe& probe, absl::Duration timeout,
                          bool* inconclusive = nullptr);

// Probes the health of many tasks with a small fixed pool of threads that run due probes from a
// time-ordered queue. The listener is called (from a prober thread, one call at a time per
// task) when a task's health state changes.
class HealthProber {
 public:
  using Listener = std::function<void(const std::string& task_id, const v1::TaskHealth& health)>;
  struct Options {
    int threads = 4;
    // Upper bound on how long a prober thread sleeps before looking at the clock again, so a
    // clock that jumps (a FakeClock in tests) is noticed.
    absl::Duration max_wait = absl::Milliseconds(100);
  };

  HealthProber(Clock& clock, RuntimeDriver& driver, Listener on_change);
  HealthProber(Clock& clock, RuntimeDriver& driver, Listener on_change, Options options);
  ~HealthProber();

  HealthProber(const HealthProber&) = delete;
  HealthProber& operator=(const HealthProber&) = delete;

  // Starts (or restarts, replacing an earlier watch) probing a task; its health starts as
  // STARTING. A check without a probe means the task is not watched (and an earlier watch ends).
  // `port` is used when the probe's own port is 0.
  void Watch(const std::string& task_id, const std::string& address, int port,
             const v1::HealthCheck& check, absl::Time started_at);
  // Watch for a task adopted after a worker restart: its health carries on from `resume`
  // (see HealthTracker); with no known state it starts as STARTING like a new task. The first
  // probe's result is passed to the listener even when the state stays the same.
  void Resume(const std::string& task_id, const std::string& address, int port,
              const v1::HealthCheck& check, absl::Time started_at, const v1::TaskHealth& resume);
  // Stops probing. A listener call already under way may still complete.
  void Unwatch(std::string_view task_id);
  // nullopt for tasks not watched.
  std::optional<v1::TaskHealth> Get(std::string_view task_id) const;
  size_t WatchedCount() const;
  // Probes that could not run (see ProbeHttp's `inconclusive`); they change no task's health.
  uint64_t InconclusiveProbes() const;

 private:
  struct Watched {
    std::string task_id;
    std::string address;
    int port = 0;
    v1::HealthCheck check;
    uint64_t generation = 0;
    std::unique_ptr<HealthTracker> tracker;
    // Resumed after adoption: its first probe is reported even without a change, so the
    // manager sees that the task was checked again.
    bool report_next = false;
    bool warned_inconclusive = false;
  };
  struct Due {
    absl::Time at;
    uint64_t generation;
    std::string task_id;
    bool operator>(const Due& other) const { return at > other.at; }
  };

  void Add(const std::string& task_id, const std::string& address, int port,
           const v1::HealthCheck& check, std::unique_ptr<HealthTracker> tracker,
           bool report_first = false);
  void Run();
  v1::ProbeResult RunProbe(const std::string& task_id, const std::string& address, int port,
                           const v1::HealthCheck& check, absl::Duration timeout,
                           bool* inconclusive);

  Clock& clock_;
  RuntimeDriver& driver_;
  const Listener on_change_;
  const Options options_;

  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  std::map<std::string, std::unique_ptr<Watched>, std::less<>> watched_ ABSL_GUARDED_BY(mu_);
  std::priority_queue<Due, std::vector<Due>, std::greater<Due>> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t next_generation_ ABSL_GUARDED_BY(mu_) = 1;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t inconclusive_probes_ ABSL_GUARDED_BY(mu_) = 0;

  std::vector<std::thread> threads_;
};

}  // namespace warren

#endif  // WARREN_WORKER_HEALTH_PROBER_H_
