#include "worker/port_publisher.h"

#include <optional>
#include <set>

#include "common/time_util.h"
#include "spdlog/spdlog.h"

namespace warren {

PortPublisher::PortPublisher(ProxyManager& proxies, const Clock& clock,
                             PortPublisherOptions options)
    : proxies_(proxies), clock_(clock), options_(options) {}

absl::Duration PortPublisher::Backoff(int attempts) const {
  absl::Duration d = options_.initial_backoff;
  for (int i = 1; i < attempts && d < options_.max_backoff; ++i) d *= 2;
  return std::min(d, options_.max_backoff);
}

void PortPublisher::Apply(const v1::RoutingTable& table) {
  absl::MutexLock lock(&mu_);
  ApplyLocked(table, clock_.Now());
  if (failing_.empty()) {
    table_.Clear();
  } else {
    table_ = table;
  }
}

bool PortPublisher::RetryIfDue() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_.Now();
  bool due = false;
  for (const auto& [key, f] : failing_) due = due || f.retry_at <= now;
  if (!due) return false;
  v1::RoutingTable table = std::move(table_);
  ApplyLocked(table, now);
  if (!failing_.empty()) table_ = std::move(table);
  return true;
}

void PortPublisher::ApplyLocked(const v1::RoutingTable& table, absl::Time now) {
  // Ports still in backoff stay out of this attempt; the rest of the table applies. The table
  // is copied only to leave such ports out.
  std::set<Key> wanted, tried;
  bool held_back = false;
  auto in_backoff = [&](const Key& key) {
    auto f = failing_.find(key);
    return f != failing_.end() && f->second.retry_at > now;
  };
  for (const v1::ServiceRoute& route : table.services()) {
    for (const v1::Port& port : route.ports()) {
      if (port.published() == 0) continue;
      const Key key{route.service_id(), port.published()};
      wanted.insert(key);
      if (in_backoff(key)) {
        held_back = true;
      } else {
        tried.insert(key);
      }
    }
  }
  std::optional<v1::RoutingTable> attempt;
  if (held_back) {
    attempt = table;
    for (v1::ServiceRoute& route : *attempt->mutable_services()) {
      auto* ports = route.mutable_ports();
      for (auto it = ports->begin(); it != ports->end();) {
        if (it->published() != 0 && in_backoff({route.service_id(), it->published()})) {
          it = ports->erase(it);
        } else {
          ++it;
        }
      }
    }
  }
  std::vector<ProxyManager::Failure> failures;
  // The status repeats what `failures` lists port by port, which is what is reported below.
  proxies_.Apply(attempt ? *attempt : table, &failures).IgnoreError();

  std::set<Key> failed;
  for (const ProxyManager::Failure& pf : failures) {
    const Key key{pf.service_id, pf.port};
    failed.insert(key);
    auto [it, inserted] = failing_.try_emplace(key);
    Failing& f = it->second;
    const bool changed = inserted || f.error.error() != pf.error;
    if (inserted) f.since = now;
    f.error.set_service_id(pf.service_id);
    f.error.set_service_name(pf.service_name);
    f.error.set_port(pf.port);
    f.error.set_host_ip(pf.host_ip);
    f.error.set_error(pf.error);
    f.error.set_attempts(f.error.attempts() + 1);
    *f.error.mutable_since() = ToProtoTime(f.since);
    f.retry_at = now + Backoff(f.error.attempts());
    if (changed) {
      generation_++;
      spdlog::warn("service {} port {}: cannot publish: {}; retrying with backoff (logged once)",
                   pf.service_name, pf.port, pf.error);
    } else {
      spdlog::debug("service {} port {}: still cannot publish (attempt {}): {}", pf.service_name,
                    pf.port, f.error.attempts(), pf.error);
    }
  }
  for (auto it = failing_.begin(); it != failing_.end();) {
    const Key& key = it->first;
    if (failed.contains(key) || (wanted.contains(key) && !tried.contains(key))) {
      ++it;  // failing still, or waiting for its retry
      continue;
    }
    if (wanted.contains(key)) {
      spdlog::info("service {} port {}: published after {} failed attempts",
                   it->second.error.service_name(), key.second, it->second.error.attempts());
    }
    generation_++;
    it = failing_.erase(it);
  }
}

std::vector<v1::PublishError> PortPublisher::Failures() const {
  absl::MutexLock lock(&mu_);
  std::vector<v1::PublishError> out;
  for (const auto& [key, f] : failing_) out.push_back(f.error);
  return out;
}

uint64_t PortPublisher::generation() const {
  absl::MutexLock lock(&mu_);
  return generation_;
}

}  // namespace warren
