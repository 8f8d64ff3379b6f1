#include "ui/history.h"

#include <algorithm>

namespace warren::ui {

TrafficSample SampleOf(absl::Time now, const v1::ServiceEndpoints& endpoints) {
  TrafficSample s;
  s.time = now;
  for (const v1::RevisionEndpoints& r : endpoints.revisions()) {
    if (r.preview()) continue;
    s.weight[r.revision()] = r.weight();
    s.error_rate[r.revision()] = r.recent_error_rate();
    s.p99_ms[r.revision()] = r.recent().latency_p99_seconds() * 1000;
  }
  return s;
}

void TrafficHistory::Watch(const std::string& service_id, absl::Time now) {
  if (service_id.empty()) return;
  absl::MutexLock lock(&mu_);
  absl::Time& seen = watched_[service_id];
  seen = std::max(seen, now);
}

void TrafficHistory::Sample(absl::Time now, const EndpointsFn& endpoints, const ActiveFn& active) {
  std::map<std::string, absl::Time> watched;
  {
    absl::MutexLock lock(&mu_);
    watched = watched_;
  }
  // The calls go to the API without the lock: a page reading the history does not wait.
  std::map<std::string, TrafficSample> taken;
  std::vector<std::string> ended, still_active;
  for (const auto& [id, seen] : watched) {
    const bool is_active = active(id);
    if (is_active) still_active.push_back(id);
    if (now - (is_active ? now : seen) > options_.tail) {
      ended.push_back(id);
      continue;
    }
    if (std::optional<v1::ServiceEndpoints> ep = endpoints(id)) taken[id] = SampleOf(now, *ep);
  }
  absl::MutexLock lock(&mu_);
  for (auto& [id, sample] : taken) {
    std::deque<TrafficSample>& list = samples_[id];
    if (!list.empty() && list.back().time >= now) continue;  // one per moment
    list.push_back(std::move(sample));
  }
  for (const std::string& id : still_active) {
    if (auto it = watched_.find(id); it != watched_.end()) it->second = std::max(it->second, now);
  }
  for (const std::string& id : ended) {
    // Unless Watch saw news of it meanwhile.
    if (auto it = watched_.find(id); it != watched_.end() && now - it->second > options_.tail) {
      watched_.erase(it);
    }
  }
  Prune(now);
}

void TrafficHistory::Prune(absl::Time now) {
  const absl::Time oldest = now - options_.retention;
  for (auto it = samples_.begin(); it != samples_.end();) {
    std::deque<TrafficSample>& list = it->second;
    while (!list.empty() && list.front().time < oldest) list.pop_front();
    it = list.empty() ? samples_.erase(it) : std::next(it);
  }
  while (samples_.size() > options_.max_services) {
    auto stalest = std::min_element(
        samples_.begin(), samples_.end(),
        [](const auto& a, const auto& b) { return a.second.back().time < b.second.back().time; });
    watched_.erase(stalest->first);
    samples_.erase(stalest);
  }
}

std::vector<TrafficSample> TrafficHistory::Samples(const std::string& service_id) const {
  absl::MutexLock lock(&mu_);
  auto it = samples_.find(service_id);
  if (it == samples_.end()) return {};
  return {it->second.begin(), it->second.end()};
}

size_t TrafficHistory::watched() const {
  absl::MutexLock lock(&mu_);
  return watched_.size();
}

}  // namespace warren::ui
