#include "manager/traffic.h"

#include <algorithm>
#include <numeric>
#include <optional>
#include <set>
#include <tuple>

#include "common/spec.h"
#include "common/task_state.h"
#include "common/time_util.h"
#include "ingress/ingress_tls.h"
#include "manager/rollout/rollout.h"
#include "store/typed_store.h"

namespace warren {
namespace {

constexpr absl::Duration kHistory = absl::Minutes(10);

// Blue after a blue/green switch: no new requests, but a repeatable request green answered
// with a 5xx is answered from it (0: none).
int64_t FallbackRevision(const v1::Deployment& d) {
  if (d.strategy() != v1::DEPLOYMENT_STRATEGY_BLUE_GREEN || !d.switched()) return 0;
  if (d.phase() == v1::DEPLOYMENT_PHASE_ROLLING_BACK) return 0;
  return d.from_revision();
}

// The ingress rules as the data plane needs them, by host, path, name. A rule goes to the
// service that now has its service's name (one removed and created again keeps its rules);
// with none, to the id it was written with, which routes nowhere (503).
std::vector<v1::IngressRoute> IngressRoutes(const Store& store) {
  std::vector<v1::IngressRoute> out;
  for (const v1::Ingress& i : ListObjects<v1::Ingress>(store)) {
    v1::IngressRoute& r = out.emplace_back();
    r.set_name(i.spec().name());
    r.set_host(i.spec().host());
    r.set_path(i.spec().path().empty() ? "/" : i.spec().path());
    std::optional<StoredObject> service = store.GetByName(Kind::kService, i.spec().service());
    r.set_service_id(service ? service->id : i.service_id());
    r.set_target_port(i.spec().port());
    // An ACME rule is TLS before its certificate is issued too: HTTP redirects to HTTPS, whose
    // handshakes for the name fail until the certificate comes; never plaintext in between.
    r.set_tls(i.spec().tls().mode() != v1::INGRESS_TLS_MODE_NONE);
    // Which certificate, never the key: nodes fetch the pair (GetIngressCertificates).
    if (r.tls() && !i.spec().tls().certificate_pem().empty()) {
      r.set_certificate_sha256(CertificateSha256(i.spec().tls().certificate_pem()));
    }
    // An ACME order's HTTP-01 challenges: every node answers them on HTTP.
    *r.mutable_acme_challenges() = i.acme().challenges();
  }
  std::sort(out.begin(), out.end(), [](const v1::IngressRoute& a, const v1::IngressRoute& b) {
    return std::tie(a.host(), a.path(), a.name()) < std::tie(b.host(), b.path(), b.name());
  });
  return out;
}

}  // namespace

std::vector<int> ProportionalWeights(const std::vector<int>& counts) {
  std::vector<int> out(counts.size(), 0);
  int total = std::accumulate(counts.begin(), counts.end(), 0);
  if (total == 0) return out;
  std::vector<std::pair<int, size_t>> remainders;
  int given = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    out[i] = counts[i] * 100 / total;
    given += out[i];
    remainders.emplace_back((counts[i] * 100) % total, i);
  }
  std::stable_sort(remainders.begin(), remainders.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t k = 0; given < 100 && k < remainders.size(); ++k, ++given) {
    out[remainders[k].second]++;
  }
  return out;
}

v1::RoutingTable ComputeRoutingTable(const std::vector<v1::Service>& services,
                                     const std::vector<v1::Task>& tasks,
                                     const std::vector<v1::Deployment>& deployments, absl::Time now,
                                     absl::Time* next_change) {
  // Min-ready holds back only the tasks an active deployment created (of either revision:
  // a rollback's new tasks are unproven too). Tasks that served before it began stay routed
  // whatever their healthy-since says: holding them back would take a service's whole
  // capacity out at once (a manager restart mid-rollout used to).
  struct MinReady {
    absl::Duration duration;
    absl::Time deployment_created;
  };
  std::map<std::string, MinReady> min_ready;
  std::map<std::string, const v1::Deployment*> progressive;
  std::map<std::string, std::vector<const v1::Deployment*>> deployments_by_service;
  for (const auto& d : deployments) {
    deployments_by_service[d.service_id()].push_back(&d);
    if (!IsActive(d)) continue;
    min_ready[d.service_id()] = {ResolveRolloutParams(d.config(), 1).min_ready,
                                 FromProtoTime(d.created_at())};
  }
  for (const auto& [service_id, of_service] : deployments_by_service) {
    const v1::Deployment* d = GoverningDeployment(of_service);
    if (d != nullptr && IsProgressive(*d)) progressive[service_id] = d;
  }
  std::map<std::string, std::map<int64_t, std::vector<const v1::Task*>>> by_service;
  for (const auto& t : tasks) {
    auto mr = min_ready.find(t.service_id());
    const bool held =
        mr != min_ready.end() && FromProtoTime(t.created_at()) >= mr->second.deployment_created;
    absl::Time ready_at = absl::InfiniteFuture();
    if (!IsAvailable(t, held ? mr->second.duration : absl::ZeroDuration(), now, &ready_at)) {
      if (next_change) *next_change = std::min(*next_change, ready_at);
      continue;
    }
    by_service[t.service_id()][t.revision()].push_back(&t);
  }
  v1::RoutingTable table;
  std::vector<const v1::Service*> sorted;
  for (const auto& s : services) sorted.push_back(&s);
  std::sort(sorted.begin(), sorted.end(),
            [](const auto* a, const auto* b) { return a->spec().name() < b->spec().name(); });
  for (const v1::Service* s : sorted) {
    v1::ServiceRoute* route = table.add_services();
    route->set_service_id(s->id());
    route->set_name(s->spec().name());
    *route->mutable_ports() = s->spec().template_().ports();
    if (auto p = progressive.find(s->id());
        p != progressive.end() && p->second->strategy() == v1::DEPLOYMENT_STRATEGY_BLUE_GREEN &&
        p->second->config().preview_published_port() > 0 && !p->second->switched() &&
        IsActive(*p->second) && p->second->phase() != v1::DEPLOYMENT_PHASE_ROLLING_BACK) {
      v1::Port* preview = route->add_ports();
      preview->set_name(kPreviewPortName);
      preview->set_target(TaskPort(s->spec().template_()));
      preview->set_published(p->second->config().preview_published_port());
      preview->set_protocol("tcp");
    }
    const auto& revisions = by_service[s->id()];
    std::vector<int> counts;
    for (const auto& [rev, ts] : revisions) counts.push_back(static_cast<int>(ts.size()));
    std::vector<int> weights = ProportionalWeights(counts);
    std::vector<bool> preview(weights.size(), false);
    std::vector<bool> fallback(weights.size(), false);
    if (auto p = progressive.find(s->id()); p != progressive.end()) {
      const int64_t fallback_rev = FallbackRevision(*p->second);
      // The deployment sets the split; a revision without endpoints gives its share to the
      // others (in proportion), so the weights of what is routed still sum to 100.
      auto planned = PlannedWeights(*p->second);
      std::vector<int> wanted;
      size_t k = 0;
      for (const auto& [rev, ts] : revisions) {
        auto it = planned.find(rev);
        wanted.push_back(it == planned.end() ? 0 : it->second.weight);
        fallback[k] = rev == fallback_rev;
        preview[k++] = it != planned.end() && it->second.preview;
      }
      if (std::accumulate(wanted.begin(), wanted.end(), 0) > 0) {
        std::vector<int> scaled = ProportionalWeights(wanted);
        weights = scaled;
      } else {
        std::fill(weights.begin(), weights.end(), 0);
        for (size_t j = 0; j < weights.size(); ++j) {
          if (!preview[j]) weights[j] = 0;
        }
      }
    }
    size_t i = 0;
    for (const auto& [rev, ts] : revisions) {
      v1::RevisionRoute* r = route->add_revisions();
      r->set_revision(rev);
      r->set_preview(preview[i]);
      r->set_fallback(fallback[i]);
      r->set_weight(weights[i++]);
      std::vector<const v1::Task*> ordered = ts;
      std::sort(ordered.begin(), ordered.end(), [](const auto* a, const auto* b) {
        return a->slot() != b->slot() ? a->slot() < b->slot() : a->id() < b->id();
      });
      for (const v1::Task* t : ordered) {
        if (t->address().empty()) continue;  // a cri task before its sandbox reported an IP
        v1::Endpoint* e = r->add_endpoints();
        e->set_task_id(t->id());
        e->set_address(t->address());
        e->set_port(t->port());
        e->set_slot(t->slot());
        e->set_node_id(t->node_id());
      }
    }
  }
  return table;
}

namespace {

template <typename M>
bool SameMessages(const std::vector<M>& a, const std::vector<M>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const M& x, const M& y) {
    return x.SerializeAsString() == y.SerializeAsString();
  });
}

}  // namespace

std::vector<v1::NodePeer> RoutedPeers(const std::vector<v1::Node>& nodes,
                                      const std::set<std::string>& holding) {
  std::vector<v1::NodePeer> peers;
  for (const v1::Node& n : nodes) {
    if (n.state() != v1::NODE_STATE_READY || n.subnet().empty() || n.advertise_addr().empty())
      continue;
    if (n.availability() == v1::NODE_AVAILABILITY_DRAIN && !holding.contains(n.id())) continue;
    if (n.network() != "host-gw" && n.network() != "vxlan" && n.network() != "wireguard") continue;
    // Nothing can be encrypted to a node without a key (a node stored before the field).
    if (n.network() == "wireguard" && n.wireguard_public_key().empty()) continue;
    v1::NodePeer& p = peers.emplace_back();
    p.set_node_id(n.id());
    p.set_name(n.name());
    p.set_subnet(n.subnet());
    p.set_advertise_addr(n.advertise_addr());
    p.set_network(n.network());
    p.set_wireguard_public_key(n.wireguard_public_key());
  }
  std::sort(peers.begin(), peers.end(), [](const v1::NodePeer& a, const v1::NodePeer& b) {
    return a.subnet() != b.subnet() ? a.subnet() < b.subnet() : a.node_id() < b.node_id();
  });
  return peers;
}

bool RoutingTableCache::Recompute(const std::string& service_id, absl::Time now) {
  services_computed_++;
  auto entry = entries_.find(service_id);
  if (entry != entries_.end()) {
    timers_.erase({entry->second.next_change, service_id});
  }
  std::optional<v1::Service> service = GetObject<v1::Service>(store_, service_id);
  if (!service) {
    if (entry == entries_.end()) return false;
    entries_.erase(entry);
    return true;
  }
  std::vector<v1::Task> tasks;
  for (const std::string& id : index_.TasksOf(service_id)) {
    if (IsTerminal(index_.tasks().at(id).state)) continue;
    if (auto t = GetObject<v1::Task>(store_, id)) tasks.push_back(std::move(*t));
  }
  std::vector<v1::Deployment> deployments;
  for (const std::string& id : index_.DeploymentsOf(service_id)) {
    if (auto d = GetObject<v1::Deployment>(store_, id)) deployments.push_back(std::move(*d));
  }
  absl::Time next_change = absl::InfiniteFuture();
  v1::RoutingTable one = ComputeRoutingTable({*service}, tasks, deployments, now, &next_change);
  Entry fresh;
  fresh.name = service->spec().name();
  fresh.route = std::move(*one.mutable_services(0));
  fresh.content = fresh.route.SerializeAsString();
  fresh.next_change = next_change;
  if (next_change != absl::InfiniteFuture()) timers_.insert({next_change, service_id});
  if (entry == entries_.end()) {
    entries_.emplace(service_id, std::move(fresh));
    return true;
  }
  const bool changed = entry->second.content != fresh.content;
  entry->second = std::move(fresh);
  return changed;
}

std::shared_ptr<const v1::RoutingTable> RoutingTableCache::Get() {
  absl::MutexLock lock(&mu_);
  RefreshLocked();
  return TableLocked();
}

std::pair<uint64_t, std::optional<v1::ServiceRoute>> RoutingTableCache::Route(
    const std::string& service_id) {
  absl::MutexLock lock(&mu_);
  RefreshLocked();
  auto e = entries_.find(service_id);
  if (e == entries_.end()) return {version_, std::nullopt};
  return {version_, e->second.route};
}

RoutingTableCache::Update RoutingTableCache::Since(uint64_t since) {
  absl::MutexLock lock(&mu_);
  RefreshLocked();
  Update out;
  out.version = version_;
  if (since == version_) return out;
  auto first = since == 0 ? steps_.end()
                          : std::find_if(steps_.begin(), steps_.end(),
                                         [&](const Step& s) { return s.from == since; });
  if (first == steps_.end()) {
    out.table = TableLocked();
    return out;
  }
  std::set<std::string> ids;
  for (auto it = first; it != steps_.end(); ++it)
    ids.insert(it->services.begin(), it->services.end());
  v1::RoutingTable& delta = out.delta.emplace();
  delta.set_version(version_);
  delta.set_delta(true);
  delta.set_base_version(since);
  // A delta carries every ingress rule: there are few, and the worker replaces its list.
  for (const v1::IngressRoute& r : ingresses_) *delta.add_ingresses() = r;
  for (const v1::NodePeer& p : peers_) *delta.add_peers() = p;
  // entries_ holds what the current table is made of.
  for (const std::string& id : ids) {
    auto e = entries_.find(id);
    if (e == entries_.end()) {
      delta.add_removed_service_ids(id);
    } else {
      *delta.add_services() = e->second.route;
    }
  }
  return out;
}

v1::RoutingTable RoutingTableCache::BuildLocked() {
  // Ordered by name, as ComputeRoutingTable orders them.
  std::vector<const Entry*> sorted;
  sorted.reserve(entries_.size());
  for (const auto& [id, e] : entries_) sorted.push_back(&e);
  std::sort(sorted.begin(), sorted.end(), [](const Entry* a, const Entry* b) {
    return a->name != b->name ? a->name < b->name : a->route.service_id() < b->route.service_id();
  });
  v1::RoutingTable table;
  table.mutable_services()->Reserve(static_cast<int>(sorted.size()));
  for (const Entry* e : sorted) *table.add_services() = e->route;
  for (const v1::IngressRoute& r : ingresses_) *table.add_ingresses() = r;
  for (const v1::NodePeer& p : peers_) *table.add_peers() = p;
  tables_built_++;
  return table;
}

std::shared_ptr<const v1::RoutingTable> RoutingTableCache::TableLocked() {
  // Versions only grow, so a table of the current version is made of the current entries.
  if (table_->version() == version_) return table_;
  v1::RoutingTable table = BuildLocked();
  table.set_version(version_);
  table_ = std::make_shared<const v1::RoutingTable>(std::move(table));
  return table_;
}

void RoutingTableCache::RefreshLocked() {
  const uint64_t version = store_.Version();
  const absl::Time now = clock_.Now();
  const bool due = !timers_.empty() && timers_.begin()->first <= now;
  if (version == computed_at_ && !due) return;
  ClusterIndex::Dirty dirty = index_.Sync();
  computed_at_ = version;
  std::set<std::string> todo;
  std::string before;
  if (dirty.all) {
    // Rebuilt from scratch (first use, or the feed no longer reached back): a new version only
    // if the content differs, which takes the whole table before and after.
    v1::RoutingTable old = *TableLocked();
    old.clear_version();
    before = old.SerializeAsString();
    entries_.clear();
    timers_.clear();
    todo = index_.service_ids();
  } else {
    todo = std::move(dirty.services);
  }
  while (!timers_.empty() && timers_.begin()->first <= now) {
    todo.insert(timers_.begin()->second);
    timers_.erase(timers_.begin());
  }
  bool changed = false;
  Step step;
  for (const std::string& id : todo) {
    if (Recompute(id, now)) {
      changed = true;
      step.services.push_back(id);
    }
  }
  // Rules name services by name: a service that comes or goes can change where one goes.
  if (dirty.all || dirty.ingresses || !step.services.empty()) {
    std::vector<v1::IngressRoute> fresh = IngressRoutes(store_);
    if (!SameMessages(fresh, ingresses_)) {
      changed = true;
      ingresses_ = std::move(fresh);
    }
  }
  // A node that comes, goes down or changes its address moves the routes between nodes; so does
  // a drained node whose last task stopped (a few nodes: looked at on every refresh).
  std::set<std::string> drained_holding;
  for (const v1::Node& n : index_.nodes()) {
    if (n.availability() == v1::NODE_AVAILABILITY_DRAIN && index_.node_loads().contains(n.id())) {
      drained_holding.insert(n.id());
    }
  }
  if (dirty.all || dirty.nodes || drained_holding != drained_holding_) {
    drained_holding_ = std::move(drained_holding);
    std::vector<v1::NodePeer> fresh = RoutedPeers(index_.nodes(), drained_holding_);
    if (!SameMessages(fresh, peers_)) {
      changed = true;
      peers_ = std::move(fresh);
    }
  }
  // Monotonic even when only time (min-ready) changed the content.
  const uint64_t next = std::max<uint64_t>(version, version_ + 1);
  if (dirty.all) {
    v1::RoutingTable fresh = BuildLocked();
    if (fresh.SerializeAsString() == before) return;  // table_ still holds this content
    // Which services differ from the previous table is not known: streams start over.
    steps_.clear();
    version_ = next;
    fresh.set_version(version_);
    table_ = std::make_shared<const v1::RoutingTable>(std::move(fresh));
    return;
  }
  if (!changed) return;
  step.from = version_;
  step.to = next;
  steps_.push_back(std::move(step));
  if (steps_.size() > kMaxSteps) steps_.pop_front();
  version_ = next;
}

void TrafficStats::Report(const v1::TrafficStatsReport& report) {
  const std::vector<double> bounds(report.latency_bounds_seconds().begin(),
                                   report.latency_bounds_seconds().end());
  const absl::Time now = clock_.Now();
  absl::MutexLock lock(&mu_);
  auto [it, first_report] = nodes_.try_emplace(report.node_id());
  Node& node = it->second;
  // The worker restarted: its counters start again from 0, so nothing held is a baseline.
  if (!first_report && node.instance != report.counters_instance()) node.services.clear();
  node.instance = report.counters_instance();
  for (const auto& s : report.services()) {
    analysis::NodeCounters& counters = node.services[s.service_id()];
    counters.instance = node.instance;
    Service& service = services_[s.service_id()];
    for (const auto& r : s.revisions()) {
      analysis::Counters raw = analysis::FromProto(r, bounds);
      auto prev = counters.latest.find(r.revision());
      analysis::Add(
          &service.totals[r.revision()],
          prev == counters.latest.end() ? raw : analysis::GrowthOrRestart(raw, prev->second));
      counters.latest[r.revision()] = std::move(raw);
    }
    if (first_report) {
      // What a node had counted before this manager heard from it happened at some unknown
      // earlier time: it is in the totals, but in no window (every sample holds it too).
      counters.first = counters.latest;
      for (analysis::Sample& sample : service.history)
        analysis::Add(&sample.totals, counters.first);
    }
    service.history.push_back({now, service.totals});
    analysis::ThinSamples(&service.history, now, kHistory);
  }
}

std::map<int64_t, v1::RevisionTraffic> TrafficStats::Totals(const std::string& service_id) const {
  absl::MutexLock lock(&mu_);
  auto it = services_.find(service_id);
  if (it == services_.end()) return {};
  return analysis::ToProto(it->second.totals);
}

std::map<int64_t, v1::RevisionTraffic> TrafficStats::Recent(const std::string& service_id,
                                                            absl::Duration window) const {
  const absl::Time now = clock_.Now();
  absl::MutexLock lock(&mu_);
  auto it = services_.find(service_id);
  if (it == services_.end()) return {};
  return analysis::ToProto(
      analysis::GrowthSince(it->second.history, now - window, it->second.totals));
}

analysis::TrafficSnapshot TrafficStats::Snapshot(const std::string& service_id) const {
  absl::MutexLock lock(&mu_);
  analysis::TrafficSnapshot out;
  for (const auto& [id, node] : nodes_) {
    auto it = node.services.find(service_id);
    if (it != node.services.end()) out.nodes[id] = it->second;
  }
  return out;
}

double ErrorRate(const v1::RevisionTraffic& t) {
  uint64_t attempts = t.requests();
  if (attempts == 0) return 0;
  return 100.0 * static_cast<double>(t.responses_5xx() + t.connect_errors()) /
         static_cast<double>(attempts);
}

}  // namespace warren
