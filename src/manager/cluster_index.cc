#include "manager/cluster_index.h"

#include <algorithm>

#include "common/time_util.h"
#include "spdlog/spdlog.h"
#include "store/typed_store.h"

namespace warren {
namespace {

// Changes read per ChangesSince call: bounds one read's memory, not what a Sync applies.
constexpr size_t kFeedPage = 4096;

const std::set<std::string>& Empty() {
  static const auto* empty = new std::set<std::string>();
  return *empty;
}

const std::set<std::string>& Find(const std::map<std::string, std::set<std::string>>& m,
                                  const std::string& key) {
  auto it = m.find(key);
  return it == m.end() ? Empty() : it->second;
}

}  // namespace

const std::set<std::string>& ClusterIndex::TasksOf(const std::string& service_id) const {
  return Find(tasks_by_service_, service_id);
}
const std::set<std::string>& ClusterIndex::DeploymentsOf(const std::string& service_id) const {
  return Find(deployments_by_service_, service_id);
}
const std::set<std::string>& ClusterIndex::RevisionsOf(const std::string& service_id) const {
  return Find(revisions_by_service_, service_id);
}

std::vector<std::string> ClusterIndex::ServicesWithTasks() const {
  std::vector<std::string> out;
  out.reserve(tasks_by_service_.size());
  for (const auto& [id, tasks] : tasks_by_service_) out.push_back(id);
  return out;
}

ClusterIndex::Dirty ClusterIndex::Sync() {
  Dirty dirty;
  if (!loaded_) {
    Reload(&dirty);
    return dirty;
  }
  while (true) {
    auto changes = store_.ChangesSince(version_, kFeedPage);
    if (!changes.ok()) {
      // The feed was compacted past what we saw: the changes in between are lost to us.
      spdlog::info(
          "controller: the store's change feed no longer reaches version {} ({}); "
          "rebuilding from a full listing",
          version_, changes.status().ToString());
      dirty = Dirty();
      Reload(&dirty);
      return dirty;
    }
    if (changes->empty()) return dirty;
    for (const Change& c : *changes) {
      Apply(c, &dirty);
      version_ = c.version;
    }
  }
}

void ClusterIndex::Reload(Dirty* dirty) {
  dirty->all = dirty->nodes = dirty->tasks = dirty->ingresses = true;
  // The version first: changes committed while listing are applied again by the next Sync,
  // which ends at the same state.
  version_ = store_.Version();
  nodes_ = ListObjects<v1::Node>(store_);
  services_.clear();
  service_versions_.clear();
  for (const auto& so : store_.ListVersions(Kind::kService)) {
    services_.insert(so.id);
    service_versions_[so.id] = so.version;
  }
  tasks_.clear();
  tasks_by_service_.clear();
  pending_.clear();
  loads_.clear();
  for (const auto& so : store_.List(Kind::kTask)) {
    if (auto t = Decode<v1::Task>(so)) PutTask(so.id, *t, so.version, nullptr);
  }
  deployments_by_service_.clear();
  deployment_owner_.clear();
  deployment_versions_.clear();
  for (const auto& so : store_.List(Kind::kDeployment)) {
    if (auto d = Decode<v1::Deployment>(so)) {
      PutOwned(deployments_by_service_, deployment_owner_, so.id, d->service_id(), nullptr);
      deployment_versions_[so.id] = so.version;
    }
  }
  revisions_by_service_.clear();
  revision_owner_.clear();
  revision_versions_.clear();
  for (const auto& so : store_.List(Kind::kRevision)) {
    if (auto r = Decode<v1::Revision>(so)) {
      PutOwned(revisions_by_service_, revision_owner_, so.id, r->service_id(), nullptr);
      revision_versions_[so.id] = so.version;
    }
  }
  loaded_ = true;
}

const absl::flat_hash_map<std::string, uint64_t>& ClusterIndex::VersionsOf(Kind kind) const {
  switch (kind) {
    case Kind::kDeployment:
      return deployment_versions_;
    case Kind::kRevision:
      return revision_versions_;
    default:
      return service_versions_;
  }
}

std::optional<uint64_t> ClusterIndex::AppliedVersion(Kind kind, const std::string& id) const {
  if (kind == Kind::kTask) {
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return std::nullopt;
    return it->second.version;
  }
  if (kind == Kind::kNode) {
    auto it =
        std::lower_bound(nodes_.begin(), nodes_.end(), id,
                         [](const v1::Node& n, const std::string& id) { return n.id() < id; });
    if (it == nodes_.end() || it->id() != id) return std::nullopt;
    return it->version();
  }
  const auto& versions = VersionsOf(kind);
  auto it = versions.find(id);
  if (it == versions.end()) return std::nullopt;
  return it->second;
}

size_t ClusterIndex::HeldCount(Kind kind) const {
  if (kind == Kind::kTask) return tasks_.size();
  if (kind == Kind::kNode) return nodes_.size();
  return VersionsOf(kind).size();
}

std::vector<std::string> ClusterIndex::HeldIds(Kind kind) const {
  std::vector<std::string> out;
  if (kind == Kind::kTask) {
    for (const auto& [id, e] : tasks_) out.push_back(id);
  } else if (kind == Kind::kNode) {
    for (const v1::Node& n : nodes_) out.push_back(n.id());
  } else {
    for (const auto& [id, v] : VersionsOf(kind)) out.push_back(id);
  }
  return out;
}

ClusterIndex::Dirty ClusterIndex::Verify() {
  Dirty dirty;
  if (!loaded_) {
    Reload(&dirty);
    return dirty;
  }
  for (Kind kind : {Kind::kNode, Kind::kService, Kind::kTask, Kind::kDeployment, Kind::kRevision}) {
    const std::vector<ObjectVersion> stored = store_.ListVersions(kind);  // by id
    std::vector<std::string> stale;
    size_t held = 0;  // stored objects this index holds (at any version)
    for (const ObjectVersion& o : stored) {
      const std::optional<uint64_t> applied = AppliedVersion(kind, o.id);
      held += applied.has_value();
      // Committed after the last Sync: the next one brings it.
      if (o.version > version_) continue;
      if (applied != o.version) stale.push_back(o.id);
    }
    // Held but no longer stored: a deletion the feed lost (or one committed since the Sync,
    // which the next Sync would apply the same way).
    if (held < HeldCount(kind)) {
      for (std::string& id : HeldIds(kind)) {
        auto it = std::lower_bound(
            stored.begin(), stored.end(), id,
            [](const ObjectVersion& o, const std::string& id) { return o.id < id; });
        if (it == stored.end() || it->id != id) stale.push_back(std::move(id));
      }
    }
    for (const std::string& id : stale) {
      Change c;
      c.kind = kind;
      c.id = id;
      std::optional<StoredObject> so = store_.Get(kind, id);
      if (so && so->version > version_) continue;
      c.deleted = !so.has_value();
      if (so) {
        c.version = so->version;
        c.data = std::move(so->data);
      }
      spdlog::warn("controller: resync: {} {} differs from the change feed; applied again",
                   KindName(kind), id);
      Apply(c, &dirty);
      repaired_++;
    }
  }
  return dirty;
}

void ClusterIndex::Apply(const Change& c, Dirty* dirty) {
  switch (c.kind) {
    case Kind::kService:
      if (c.deleted) {
        services_.erase(c.id);
        service_versions_.erase(c.id);
      } else {
        services_.insert(c.id);
        service_versions_[c.id] = c.version;
      }
      dirty->services.insert(c.id);
      return;
    case Kind::kTask: {
      dirty->tasks = true;
      v1::Task t;
      if (c.deleted || !t.ParseFromString(c.data)) {
        EraseTask(c.id, dirty);
      } else {
        PutTask(c.id, t, c.version, dirty);
      }
      return;
    }
    case Kind::kNode: {
      dirty->nodes = true;
      auto it =
          std::lower_bound(nodes_.begin(), nodes_.end(), c.id,
                           [](const v1::Node& n, const std::string& id) { return n.id() < id; });
      const bool found = it != nodes_.end() && it->id() == c.id;
      v1::Node n;
      if (c.deleted || !n.ParseFromString(c.data)) {
        if (found) nodes_.erase(it);
        return;
      }
      n.set_version(c.version);
      if (found) {
        *it = std::move(n);
      } else {
        nodes_.insert(it, std::move(n));
      }
      return;
    }
    case Kind::kDeployment: {
      v1::Deployment d;
      if (c.deleted || !d.ParseFromString(c.data)) {
        EraseOwned(deployments_by_service_, deployment_owner_, c.id, dirty);
        deployment_versions_.erase(c.id);
      } else {
        PutOwned(deployments_by_service_, deployment_owner_, c.id, d.service_id(), dirty);
        deployment_versions_[c.id] = c.version;
      }
      return;
    }
    case Kind::kRevision: {
      v1::Revision r;
      if (c.deleted || !r.ParseFromString(c.data)) {
        EraseOwned(revisions_by_service_, revision_owner_, c.id, dirty);
        revision_versions_.erase(c.id);
      } else {
        PutOwned(revisions_by_service_, revision_owner_, c.id, r.service_id(), dirty);
        revision_versions_[c.id] = c.version;
      }
      return;
    }
    case Kind::kIngress:  // the routing table reads them itself: they are few
      dirty->ingresses = true;
      return;
    case Kind::kEvent:
    case Kind::kClusterNetwork:
    case Kind::kSubnetClaim:
      return;
  }
}

void ClusterIndex::PutTask(const std::string& id, const v1::Task& t, uint64_t version,
                           Dirty* dirty) {
  auto [it, inserted] = tasks_.try_emplace(id);
  TaskEntry& e = it->second;
  e.version = version;
  if (!inserted) CountLoad(e, -1);
  if (!inserted && e.service_id != t.service_id()) {
    // A task never moves between services; handled anyway so the index cannot go stale.
    tasks_by_service_[e.service_id].erase(id);
    if (dirty) dirty->services.insert(e.service_id);
  }
  e.service_id = t.service_id();
  e.node_id = t.node_id();
  e.state = t.status().state();
  e.desired = t.desired_state();
  e.not_before = FromProtoTime(t.not_before());
  e.cpus = t.spec().resources().cpus();
  e.memory = t.spec().resources().memory_bytes();
  e.address = ParseIpv4(t.address());
  CountLoad(e, +1);
  tasks_by_service_[e.service_id].insert(id);
  if (e.state == v1::TASK_STATE_PENDING) {
    pending_.insert(id);
  } else {
    pending_.erase(id);
  }
  if (dirty) dirty->services.insert(e.service_id);
}

void ClusterIndex::EraseTask(const std::string& id, Dirty* dirty) {
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return;
  const std::string service_id = it->second.service_id;
  CountLoad(it->second, -1);
  auto s = tasks_by_service_.find(service_id);
  if (s != tasks_by_service_.end()) {
    s->second.erase(id);
    if (s->second.empty()) tasks_by_service_.erase(s);
  }
  pending_.erase(id);
  tasks_.erase(it);
  if (dirty) dirty->services.insert(service_id);
}

void ClusterIndex::CountLoad(const TaskEntry& e, int sign) {
  if (!track_loads_ || !HoldsPlace(e.state, e.node_id)) return;
  if (sign > 0) {
    loads_[e.node_id].Add(e.service_id, e.cpus, e.memory, e.address);
    return;
  }
  auto it = loads_.find(e.node_id);
  if (it == loads_.end()) return;
  it->second.Remove(e.service_id, e.cpus, e.memory, e.address);
  if (it->second.tasks <= 0) loads_.erase(it);
}

void ClusterIndex::PutOwned(std::map<std::string, std::set<std::string>>& by_service,
                            std::map<std::string, std::string>& owner, const std::string& id,
                            const std::string& service_id, Dirty* dirty) {
  auto [it, inserted] = owner.try_emplace(id, service_id);
  if (!inserted && it->second != service_id) {
    // Never moves between services; handled anyway so the index cannot go stale.
    EraseOwned(by_service, owner, id, dirty);
    owner[id] = service_id;
  }
  by_service[service_id].insert(id);
  if (dirty) dirty->services.insert(service_id);
}

void ClusterIndex::EraseOwned(std::map<std::string, std::set<std::string>>& by_service,
                              std::map<std::string, std::string>& owner, const std::string& id,
                              Dirty* dirty) {
  auto o = owner.find(id);
  if (o == owner.end()) return;
  auto s = by_service.find(o->second);
  if (s != by_service.end()) {
    s->second.erase(id);
    if (s->second.empty()) by_service.erase(s);
  }
  if (dirty) dirty->services.insert(o->second);
  owner.erase(o);
}

}  // namespace warren
