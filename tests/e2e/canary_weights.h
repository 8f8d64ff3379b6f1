#ifndef WARREN_TESTS_E2E_CANARY_WEIGHTS_H_
#define WARREN_TESTS_E2E_CANARY_WEIGHTS_H_

// A canary's weight over time, as the manager reports it, and the answers of a load sorted by
// the weight in force when each was sent: what the canary e2e tests compare.

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "grpcpp/grpcpp.h"
#include "warren/v1/api.grpc.pb.h"

namespace warren::e2e {

class WeightTimeline {
 public:
  // Polls `service`'s rollout every 10 ms (for at most 120 s) from now on.
  WeightTimeline(std::shared_ptr<grpc::Channel> channel, std::string service)
      : start_(std::chrono::steady_clock::now()),
        poller_([this, channel = std::move(channel), service = std::move(service)] {
          auto stub = v1::Control::NewStub(channel);
          int last = -3;
          while (!stop_ && Ms() < 120000) {
            grpc::ClientContext ctx;
            v1::RolloutRequest req;
            req.set_name_or_id(service);
            v1::Deployment d;
            int w = -1;
            if (stub->GetRollout(&ctx, req, &d).ok() &&
                d.phase() == v1::DEPLOYMENT_PHASE_PROGRESSING) {
              w = d.weight();
            }
            if (w != last) {
              std::lock_guard<std::mutex> lock(mu_);
              changes_.emplace_back(Ms(), w);
              last = w;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
          }
        }) {}
  ~WeightTimeline() { Stop(); }

  // Milliseconds since the timeline started: the label a load gives each answer.
  int Ms() const {
    return static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::steady_clock::now() - start_)
                                .count());
  }

  void Stop() {
    stop_ = true;
    if (poller_.joinable()) poller_.join();
  }

  // (v1, v2) answers per weight, from answers counted by the millisecond they were sent in
  // (Load::by_label with Ms as the label), leaving out those sent within 300 ms of a change
  // (the data planes apply a change within milliseconds; the poll sees it within 10 ms).
  std::map<int, std::pair<int, int>> ByWeight(const std::map<int, std::pair<int, int>>& by_label) {
    std::lock_guard<std::mutex> lock(mu_);
    std::map<int, std::pair<int, int>> by_weight;
    for (const auto& [t, counts] : by_label) {
      int weight = -1;
      bool near_change = false;
      for (const auto& [at, w] : changes_) {
        if (std::abs(at - t) < 300) near_change = true;
        if (at <= t) weight = w;
      }
      if (near_change || weight <= 0) continue;
      by_weight[weight].first += counts.first;
      by_weight[weight].second += counts.second;
    }
    return by_weight;
  }

 private:
  const std::chrono::steady_clock::time_point start_;
  std::mutex mu_;
  std::vector<std::pair<int, int>> changes_;  // (ms, weight; -1 when not progressing)
  std::atomic<bool> stop_{false};
  std::thread poller_;  // last: it starts at construction and reads the members above
};

}  // namespace warren::e2e

#endif  // WARREN_TESTS_E2E_CANARY_WEIGHTS_H_
