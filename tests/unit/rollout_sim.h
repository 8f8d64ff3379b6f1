#ifndef WARREN_TESTS_UNIT_ROLLOUT_SIM_H_
#define WARREN_TESTS_UNIT_ROLLOUT_SIM_H_

// A whole manager (store, API, controller) on a fake clock with a simulated worker: drives
// rollouts deterministically, with no threads and no sleeping.

#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "common/clock.h"
#include "common/task_state.h"
#include "common/time_util.h"
#include "gtest/gtest.h"
#include "http/metrics.h"
#include "manager/controller.h"
#include "manager/manager_api.h"
#include "manager/manager_metrics.h"
#include "manager/rollout/rollout.h"
#include "manager/traffic.h"
#include "store/sqlite_store.h"
#include "store/typed_store.h"
#include "test_util.h"

namespace warren::sim {

// How simulated tasks of a revision behave once started.
struct Behavior {
  // Time from start to the first health verdict.
  absl::Duration ready_after = absl::Seconds(1);
  bool healthy = true;
  // Never gets a verdict (stuck starting).
  bool hangs = false;
  // Exits with code 1 this long after start (0: never).
  absl::Duration crash_after = absl::ZeroDuration();
};

class Sim {
 public:
  Sim() {
    // tmpfs when there is one: fsync is free there and the scenarios run by the hundred.
    std::filesystem::path base = std::filesystem::exists("/dev/shm")
                                     ? std::filesystem::path("/dev/shm")
                                     : std::filesystem::temp_directory_path();
    // mkdtemp: a fresh directory every time. A name from the pid could meet a directory left by
    // a killed run or by a process of another pid namespace sharing /dev/shm, and its store
    // (a service "web" already there) failed CI once.
    std::string templ = (base / "warren-sim-XXXXXX").string();
    EXPECT_NE(::mkdtemp(templ.data()), nullptr)
        << "mkdtemp " << templ << ": " << std::strerror(errno);
    dir_ = templ;
    auto store = SqliteStore::Open((dir_ / "store.db").string());
    EXPECT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    metrics_ = std::make_unique<ManagerMetrics>(registry_);
    Restart();
    v1::RegisterNodeRequest req;
    req.set_name("node-1");
    req.set_address_range("127.50.0.0/16");
    req.mutable_capacity()->set_cpus(64);
    v1::Node node;
    EXPECT_TRUE(api_->dispatcher().RegisterNode(nullptr, &req, &node).ok());
    node_id_ = node.id();
  }
  ~Sim() {
    controller_.reset();
    api_.reset();
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // A manager restart: every in-memory piece is rebuilt from the store. The simulated worker's
  // proxy counters keep counting (a separate worker), unless `proxy_restarts` (hybrid mode:
  // the proxy restarts with the manager and counts from 0 again).
  void Restart(bool proxy_restarts = false) {
    controller_.reset();
    api_.reset();
    traffic_ = std::make_unique<TrafficStats>(clock_);
    if (proxy_restarts) {
      counters_.clear();
      counters_instance_++;
    }
    events_ = std::make_unique<EventLog>(*store_, clock_);
    liveness_ = std::make_unique<NodeLiveness>(clock_);
    api_ = std::make_unique<ManagerApi>(*store_, clock_, *events_, *liveness_, ApiOptions{},
                                        metrics_.get());
    controller_ = std::make_unique<Controller>(*store_, clock_, *events_, *liveness_,
                                               absl::Seconds(15), metrics_.get());
    controller_->SetTraffic(traffic_.get());
    controller_->SetPrometheusUrl(prometheus_url_, prometheus_timeout_);
    controller_->SetTaskHistory(task_history_);
    // A rollout action returns once the controller applied it, as with the real manager.
    api_->SetIntentPass([this] { controller_->RunPass(); });
  }

  ControlService& api() { return api_->control(); }
  // Survives Restart().
  void SetTaskHistory(int n) {
    task_history_ = n;
    controller_->SetTaskHistory(n);
  }
  // Survives Restart().
  void SetPrometheusUrl(const std::string& url, absl::Duration timeout = absl::Seconds(2)) {
    prometheus_url_ = url;
    prometheus_timeout_ = timeout;
    controller_->SetPrometheusUrl(url, timeout);
  }
  Store& store() { return *store_; }
  FakeClock& clock() { return clock_; }
  Registry& registry() { return registry_; }

  std::function<Behavior(const v1::Task&)> behavior = [](const v1::Task&) { return Behavior(); };

  // Proxy traffic per step: for a revision, (requests, failed requests) added each step, split
  // as the routing table's weights say (the proxies' job in the real system).
  std::function<std::pair<int, int>(int64_t revision, int weight)> traffic_gen;
  // The latency (seconds) of each generated request of a revision (default 10 ms).
  std::function<double(int64_t revision)> latency_gen;

  // A report of another (simulated) node's proxies, straight to the manager's counters.
  void Report(const v1::TrafficStatsReport& report) { traffic_->Report(report); }
  TrafficStats& traffic() { return *traffic_; }
  const std::string& node_id() const { return node_id_; }

  v1::RoutingTable Routes() {
    return ComputeRoutingTable(ListObjects<v1::Service>(*store_), Tasks(),
                               ListObjects<v1::Deployment>(*store_), clock_.Now());
  }
  // Weight of a revision of "web" in the routing table (-1: not routed).
  int Weight(int64_t revision, bool* preview = nullptr) {
    const v1::RoutingTable table = Routes();
    for (const auto& s : table.services()) {
      for (const auto& r : s.revisions()) {
        if (r.revision() != revision) continue;
        if (preview) *preview = r.preview();
        return r.weight();
      }
    }
    return -1;
  }

  // Advances time, lets the worker and the controller act (twice, so a decision and its
  // consequence land in the same step).
  void Step(absl::Duration dt = absl::Milliseconds(500)) {
    clock_.Advance(dt);
    liveness_->Beat(node_id_);
    if (traffic_gen) GenerateTraffic();
    for (int i = 0; i < 2; ++i) {
      SimulateWorker();
      controller_->RunPass();
    }
  }

  // Steps until `cond` holds (true) or `max_steps` pass (false); `each` runs after every step.
  bool RunUntil(const std::function<bool()>& cond, int max_steps = 400,
                const std::function<void()>& each = nullptr) {
    for (int i = 0; i < max_steps; ++i) {
      if (cond()) return true;
      Step();
      if (each) each();
    }
    return cond();
  }

  v1::Service Create(v1::ServiceSpec spec) {
    v1::CreateServiceRequest req;
    *req.mutable_spec() = spec;
    v1::Service out;
    grpc::Status s = api_->control().CreateService(nullptr, &req, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out;
  }

  // Creates the service and runs until all its replicas serve: where most tests start.
  bool CreateServing(const v1::ServiceSpec& spec) {
    Create(spec);
    return RunUntil([&] { return Available() == spec.replicas(); });
  }

  grpc::Status Update(const v1::ServiceSpec& spec, v1::Service* out = nullptr) {
    v1::UpdateServiceRequest req;
    *req.mutable_spec() = spec;
    v1::Service tmp;
    return api_->control().UpdateService(nullptr, &req, out ? out : &tmp);
  }

  v1::Service Service(const std::string& name) {
    return *GetObjectByName<v1::Service>(*store_, name);
  }

  std::optional<v1::Deployment> Rollout(const std::string& name) {
    v1::RolloutRequest req;
    req.set_name_or_id(name);
    v1::Deployment d;
    if (!api_->control().GetRollout(nullptr, &req, &d).ok()) return std::nullopt;
    return d;
  }

  v1::DeploymentPhase Phase(const std::string& name) {
    auto d = Rollout(name);
    return d ? d->phase() : v1::DEPLOYMENT_PHASE_UNSPECIFIED;
  }

  std::vector<v1::Task> Tasks() { return ListObjects<v1::Task>(*store_); }

  // Live tasks (desired running, not terminal), optionally of one revision.
  int Live(int64_t revision = 0) {
    int n = 0;
    for (const auto& t : Tasks()) {
      if (t.desired_state() == v1::TASK_STATE_RUNNING && !IsTerminal(t.status().state()) &&
          (revision == 0 || t.revision() == revision))
        n++;
    }
    return n;
  }

  // Tasks that serve: running and healthy (or without a check), any revision.
  int Serving(int64_t revision = 0) {
    int n = 0;
    for (const auto& t : Tasks()) {
      if (IsServing(t) && (revision == 0 || t.revision() == revision)) n++;
    }
    return n;
  }

  // Serving tasks whose desired state is still running (the ones the rollout counts).
  int Available() {
    int n = 0;
    for (const auto& t : Tasks()) {
      if (t.desired_state() == v1::TASK_STATE_RUNNING && IsServing(t)) n++;
    }
    return n;
  }

 private:
  void SimulateWorker() {
    const absl::Time now = clock_.Now();
    std::vector<Mutation> m;
    for (auto t : Tasks()) {
      auto* st = t.mutable_status();
      const auto state = st->state();
      if (IsTerminal(state)) continue;
      bool changed = false;
      if (t.desired_state() == v1::TASK_STATE_SHUTDOWN) {
        if (state != v1::TASK_STATE_PENDING) {
          st->set_state(v1::TASK_STATE_SHUTDOWN);
          *st->mutable_finished_at() = ToProtoTime(now);
          changed = true;
        }
      } else if (state == v1::TASK_STATE_ASSIGNED) {
        st->set_state(v1::TASK_STATE_RUNNING);
        *st->mutable_started_at() = ToProtoTime(now);
        st->mutable_health()->set_state(t.spec().has_health_check() ? v1::HEALTH_STATE_STARTING
                                                                    : v1::HEALTH_STATE_NONE);
        changed = true;
      } else if (state == v1::TASK_STATE_RUNNING) {
        Behavior b = behavior(t);
        absl::Duration up = now - FromProtoTime(st->started_at());
        if (b.crash_after > absl::ZeroDuration() && up >= b.crash_after) {
          st->set_state(v1::TASK_STATE_FAILED);
          st->set_has_exit_code(true);
          st->set_exit_code(1);
          *st->mutable_finished_at() = ToProtoTime(now);
          changed = true;
        } else if (t.spec().has_health_check() && !b.hangs && up >= b.ready_after) {
          auto want = b.healthy ? v1::HEALTH_STATE_HEALTHY : v1::HEALTH_STATE_UNHEALTHY;
          if (st->health().state() != want) {
            st->mutable_health()->set_state(want);
            st->mutable_health()->mutable_last_probe()->set_output(b.healthy ? "200" : "500");
            if (b.healthy) *st->mutable_health()->mutable_healthy_since() = ToProtoTime(now);
            changed = true;
          }
        }
      }
      if (changed) {
        *st->mutable_timestamp() = ToProtoTime(now);
        m.push_back(PutMutation(t, t.version()));
      }
    }
    if (!m.empty()) store_->Commit(m).IgnoreError();
  }

  void GenerateTraffic() {
    v1::TrafficStatsReport report;
    report.set_node_id(node_id_);
    report.set_counters_instance(counters_instance_);
    report.mutable_latency_bounds_seconds()->Assign(kBounds.begin(), kBounds.end());
    const v1::RoutingTable table = Routes();
    for (const auto& s : table.services()) {
      auto* st = report.add_services();
      st->set_service_id(s.service_id());
      st->set_service(s.name());
      for (const auto& r : s.revisions()) {
        auto [requests, failed] = traffic_gen(r.revision(), r.weight());
        auto& acc = counters_[{s.service_id(), r.revision()}];
        acc.set_revision(r.revision());
        acc.set_requests(acc.requests() + requests);
        acc.set_responses_5xx(acc.responses_5xx() + failed);
        acc.set_responses_2xx(acc.responses_2xx() + requests - failed);
        const double latency = latency_gen ? latency_gen(r.revision()) : 0.01;
        if (acc.latency_buckets_size() == 0)
          acc.mutable_latency_buckets()->Resize(kBounds.size() + 1, 0);
        const size_t bucket =
            std::lower_bound(kBounds.begin(), kBounds.end(), latency) - kBounds.begin();
        acc.set_latency_buckets(bucket, acc.latency_buckets(bucket) + requests);
        acc.set_latency_count(acc.latency_count() + requests);
        acc.set_latency_sum_seconds(acc.latency_sum_seconds() + latency * requests);
      }
      for (const auto& [key, acc] : counters_) {
        if (key.first == s.service_id()) *st->add_revisions() = acc;
      }
    }
    traffic_->Report(report);
  }

  static inline const std::vector<double> kBounds = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5};
  std::unique_ptr<TrafficStats> traffic_;
  uint64_t counters_instance_ = 1;
  std::map<std::pair<std::string, int64_t>, v1::RevisionTraffic> counters_;
  std::filesystem::path dir_;
  FakeClock clock_;
  Registry registry_;
  std::unique_ptr<ManagerMetrics> metrics_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<EventLog> events_;
  std::unique_ptr<NodeLiveness> liveness_;
  std::unique_ptr<ManagerApi> api_;
  std::unique_ptr<Controller> controller_;
  std::string node_id_;
  std::string prometheus_url_;
  int task_history_ = limits::kDefaultTaskHistory;
  absl::Duration prometheus_timeout_ = absl::Seconds(2);
};

// A testapp-like spec with an HTTP health check.
inline v1::ServiceSpec WebSpec(int replicas) {
  v1::ServiceSpec spec;
  spec.set_name("web");
  spec.set_replicas(replicas);
  spec.mutable_template_()->set_command("app");
  (*spec.mutable_template_()->mutable_env())["VERSION"] = "v1";
  spec.mutable_template_()->mutable_health_check()->mutable_http()->set_path("/healthz");
  return spec;
}

inline std::string Version(const v1::Task& t) {
  auto it = t.spec().env().find("VERSION");
  return it == t.spec().env().end() ? "" : it->second;
}

// A blue/green or canary service with short windows (10 s, 20 requests, 30 s scale-down).
inline v1::ServiceSpec Progressive(int replicas, const std::string& strategy) {
  v1::ServiceSpec spec = WebSpec(replicas);
  auto* uc = spec.mutable_update_config();
  uc->set_strategy(strategy);
  *uc->mutable_scale_down_delay() = ToProtoDuration(absl::Seconds(30));
  *uc->mutable_canary_window() = ToProtoDuration(absl::Seconds(10));
  uc->set_min_requests(20);
  return spec;
}

inline void ToV2(v1::ServiceSpec* spec) {
  (*spec->mutable_template_()->mutable_env())["VERSION"] = "v2";
}

// A canary of two steps (50 %, 100 %) with 2 s windows, judged from 1 request, whose
// Prometheus query `errors_ratio` must stay at or below 1.
inline v1::ServiceSpec CanaryWithQuery(int replicas) {
  v1::ServiceSpec spec = Progressive(replicas, "canary");
  auto* uc = spec.mutable_update_config();
  uc->add_canary_steps(50);
  uc->add_canary_steps(100);
  *uc->mutable_canary_window() = ToProtoDuration(absl::Seconds(2));
  uc->set_min_requests(1);
  uc->set_analysis_query("errors_ratio");
  uc->set_analysis_threshold(1.0);
  return spec;
}

}  // namespace warren::sim

#endif  // WARREN_TESTS_UNIT_ROLLOUT_SIM_H_
