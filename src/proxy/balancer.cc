#include "proxy/balancer.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"

namespace warren {

Balancer::Balancer(BalancerOptions options) : options_(std::move(options)) {}

std::string Balancer::EndpointKey(const v1::Endpoint& e) {
  return absl::StrCat(e.task_id(), "@", e.address(), ":", e.port());
}

void Balancer::Update(const v1::ServiceRoute& route) {
  std::vector<std::pair<int64_t, int>> wanted;  // (revision, weight) in route order
  std::vector<const v1::RevisionRoute*> sources;
  for (const v1::RevisionRoute& r : route.revisions()) {
    if (options_.preview) {
      if (!r.preview()) continue;
      // Preview revisions share the preview address evenly.
      wanted.emplace_back(r.revision(), 1);
    } else {
      // A fallback revision (weight 0) only answers what another revision failed.
      if (r.preview() || (r.weight() <= 0 && !r.fallback())) continue;
      wanted.emplace_back(r.revision(), std::max(0, r.weight()));
    }
    sources.push_back(&r);
  }

  absl::MutexLock lock(&mu_);
  absl::flat_hash_map<std::string, std::shared_ptr<BalancedEndpoint>> old;
  for (Revision& r : revisions_) {
    for (auto& ep : r.endpoints) old.emplace(ep->key, ep);
  }
  bool same_weights = wanted.size() == revisions_.size();
  for (size_t i = 0; same_weights && i < wanted.size(); ++i) {
    same_weights =
        revisions_[i].revision == wanted[i].first && revisions_[i].weight == wanted[i].second;
  }

  std::vector<Revision> next(wanted.size());
  for (size_t i = 0; i < wanted.size(); ++i) {
    Revision& r = next[i];
    r.revision = wanted[i].first;
    r.weight = wanted[i].second;
    // Keeping the round-robin state when only endpoints changed keeps the split exact across
    // updates; new weights start a fresh cycle.
    if (same_weights) {
      r.current = revisions_[i].current;
      r.cursor = revisions_[i].cursor;
    }
    for (const v1::Endpoint& e : sources[i]->endpoints()) {
      std::string key = EndpointKey(e);
      std::shared_ptr<BalancedEndpoint> ep;
      if (auto it = old.find(key); it != old.end() && it->second->revision == r.revision) {
        ep = it->second;
        old.erase(it);  // same key, same task: nothing a lease reads changes
      } else {
        ep = std::make_shared<BalancedEndpoint>();
        ep->endpoint = e;
        ep->revision = r.revision;
        ep->key = std::move(key);
      }
      r.endpoints.push_back(std::move(ep));
    }
  }
  for (auto& [key, ep] : old) ep->removed.store(true, std::memory_order_relaxed);
  revisions_ = std::move(next);
}

int Balancer::PickInRevision(Revision& r, absl::Span<const std::string> exclude, absl::Time now,
                             bool honor_ejection) {
  const size_t n = r.endpoints.size();
  int best = -1;
  int best_load = 0;
  for (size_t k = 0; k < n; ++k) {
    size_t i = (r.cursor + k) % n;
    const BalancedEndpoint& ep = *r.endpoints[i];
    if (honor_ejection && ep.ejected_until > now) continue;
    if (!exclude.empty() && std::find(exclude.begin(), exclude.end(), ep.key) != exclude.end()) {
      continue;
    }
    if (options_.policy == BalancePolicy::kRoundRobin) {
      best = static_cast<int>(i);
      break;
    }
    int load = ep.in_flight.load(std::memory_order_relaxed);
    if (best < 0 || load < best_load) {
      best = static_cast<int>(i);
      best_load = load;
      if (load == 0) break;  // nothing beats an idle endpoint; the cursor breaks ties
    }
  }
  if (best >= 0) r.cursor = (static_cast<size_t>(best) + 1) % n;
  return best;
}

absl::StatusOr<Balancer::Lease> Balancer::Pick(absl::Span<const std::string> exclude_keys) {
  absl::MutexLock lock(&mu_);
  bool any_endpoint = false;
  for (const Revision& r : revisions_) any_endpoint |= r.weight > 0 && !r.endpoints.empty();
  if (!any_endpoint) return absl::UnavailableError("the service has no endpoints");

  absl::Time now = absl::InfinitePast();
  if (any_ejected_) {
    now = options_.clock->Now();
    bool still = false;
    for (Revision& r : revisions_) {
      for (auto& ep : r.endpoints) {
        // Expired ejections are cleared so picks without a clock read see them as usable.
        if (ep->ejected_until <= now) ep->ejected_until = absl::InfinitePast();
        still |= ep->ejected_until > now;
      }
    }
    any_ejected_ = still;
  }

  // With every endpoint ejected, trying one beats failing the request outright.
  for (bool honor : {true, false}) {
    if (!honor && !any_ejected_) break;
    // Smooth weighted round robin over the revisions that can take the request right now.
    int64_t total = 0;
    int chosen = -1;
    for (size_t i = 0; i < revisions_.size(); ++i) {
      Revision& r = revisions_[i];
      if (r.weight <= 0) continue;
      bool usable = false;
      for (const auto& ep : r.endpoints) {
        if (honor && ep->ejected_until > now) continue;
        if (!exclude_keys.empty() &&
            std::find(exclude_keys.begin(), exclude_keys.end(), ep->key) != exclude_keys.end()) {
          continue;
        }
        usable = true;
        break;
      }
      if (!usable) continue;
      r.current += r.weight;
      total += r.weight;
      if (chosen < 0 || r.current > revisions_[chosen].current) chosen = static_cast<int>(i);
    }
    if (chosen < 0) continue;
    Revision& r = revisions_[chosen];
    r.current -= total;
    int i = PickInRevision(r, exclude_keys, now, honor);
    if (i >= 0) return Lease(r.endpoints[i]);
  }
  return absl::NotFoundError("every endpoint of the service is excluded");
}

absl::StatusOr<Balancer::Lease> Balancer::PickOtherRevision(int64_t revision) {
  absl::MutexLock lock(&mu_);
  if (options_.preview) return absl::NotFoundError("preview traffic is not retried");
  const absl::Time now = any_ejected_ ? options_.clock->Now() : absl::InfinitePast();
  // The other revision with the most weight; a fallback (weight 0) only when none has any.
  Revision* best = nullptr;
  for (Revision& r : revisions_) {
    if (r.revision == revision || r.endpoints.empty()) continue;
    if (best == nullptr || r.weight > best->weight) best = &r;
  }
  if (best == nullptr) return absl::NotFoundError("no other revision takes traffic");
  int i = PickInRevision(*best, {}, now, /*honor_ejection=*/true);
  if (i < 0) return absl::NotFoundError("the other revision has no usable endpoint");
  return Lease(best->endpoints[i]);
}

void Balancer::Eject(const std::string& key) {
  absl::MutexLock lock(&mu_);
  absl::Time until = options_.clock->Now() + options_.ejection_period;
  for (Revision& r : revisions_) {
    for (auto& ep : r.endpoints) {
      if (ep->key == key) {
        ep->ejected_until = until;
        any_ejected_ = true;
      }
    }
  }
}

bool Balancer::IsEjected(const std::string& key) const {
  absl::MutexLock lock(&mu_);
  absl::Time now = options_.clock->Now();
  for (const Revision& r : revisions_) {
    for (const auto& ep : r.endpoints) {
      if (ep->key == key) return ep->ejected_until > now;
    }
  }
  return false;
}

std::vector<std::shared_ptr<BalancedEndpoint>> Balancer::Endpoints() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::shared_ptr<BalancedEndpoint>> out;
  for (const Revision& r : revisions_)
    out.insert(out.end(), r.endpoints.begin(), r.endpoints.end());
  return out;
}

}  // namespace warren
