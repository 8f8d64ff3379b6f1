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
  for (const auto& so : store_.List(Kind::kService)) services_.insert(so.id);
  tasks_.clear();
  tasks_by_service_.clear();
  pending_.clear();
  loads_.clear();
  for (const auto& so : store_.List(Kind::kTask)) {
    if (auto t = Decode<v1::Task>(so)) PutTask(so.id, *t, nullptr);
  }
  deployments_by_service_.clear();
  deployment_owner_.clear();
  for (const auto& so : store_.List(Kind::kDeployment)) {
    if (auto d = Decode<v1::Deployment>(so)) {
      PutOwned(deployments_by_service_, deployment_owner_, so.id, d->service_id(), nullptr);
    }
  }
  revisions_by_service_.clear();
  revision_owner_.clear();
  for (const auto& so : store_.List(Kind::kRevision)) {
    if (auto r = Decode<v1::Revision>(so)) {
      PutOwned(revisions_by_service_, revision_owner_, so.id, r->service_id(), nullptr);
    }
  }
  loaded_ = true;
}

void ClusterIndex::Apply(const Change& c, Dirty* dirty) {
  switch (c.kind) {
    case Kind::kService:
      if (c.deleted) {
        services_.erase(c.id);
      } else {
        services_.insert(c.id);
      }
      dirty->services.insert(c.id);
      return;
    case Kind::kTask: {
      dirty->tasks = true;
      v1::Task t;
      if (c.deleted || !t.ParseFromString(c.data)) {
        EraseTask(c.id, dirty);
      } else {
        PutTask(c.id, t, dirty);
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
      } else {
        PutOwned(deployments_by_service_, deployment_owner_, c.id, d.service_id(), dirty);
      }
      return;
    }
    case Kind::kRevision: {
      v1::Revision r;
      if (c.deleted || !r.ParseFromString(c.data)) {
        EraseOwned(revisions_by_service_, revision_owner_, c.id, dirty);
      } else {
        PutOwned(revisions_by_service_, revision_owner_, c.id, r.service_id(), dirty);
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

void ClusterIndex::PutTask(const std::string& id, const v1::Task& t, Dirty* dirty) {
  auto [it, inserted] = tasks_.try_emplace(id);
  TaskEntry& e = it->second;
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
  owner[id] = service_id;
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
