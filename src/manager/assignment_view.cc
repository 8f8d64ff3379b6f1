#include "manager/assignment_view.h"

#include "common/task_state.h"
#include "google/protobuf/util/message_differencer.h"
#include "store/typed_store.h"

namespace warren {
namespace {

constexpr size_t kFeedPage = 4096;

// Whether the worker runs this task: placed on the node and not finished. A global task
// names its node from the start, but it has no address (nor resources) until the scheduler
// places it: started now, it would listen on 127.0.0.1.
bool Assigned(const v1::Task& t, const std::string& node_id) {
  return t.node_id() == node_id && !IsTerminal(t.status().state()) &&
         t.status().state() != v1::TASK_STATE_PENDING;
}

// Equal but for status (the worker's own report) and version.
bool SameButStatus(const v1::Task& a, const v1::Task& b) {
  google::protobuf::util::MessageDifferencer diff;
  diff.IgnoreField(v1::Task::descriptor()->FindFieldByName("status"));
  diff.IgnoreField(v1::Task::descriptor()->FindFieldByName("version"));
  return diff.Compare(a, b);
}

}  // namespace

void AssignmentView::Reload() {
  version_ = store_.Version();
  tasks_.clear();
  for (auto& t : ListObjects<v1::Task>(store_)) {
    if (!Assigned(t, node_id_)) continue;
    t.set_version(0);
    tasks_.emplace(t.id(), std::move(t));
  }
  loaded_ = true;
  reloaded_ = true;
  changed_.clear();
}

bool AssignmentView::Apply(const std::string& id, const v1::Task* task) {
  auto it = tasks_.find(id);
  if (task == nullptr || !Assigned(*task, node_id_)) {
    if (it == tasks_.end()) return false;
    tasks_.erase(it);
    changed_.insert(id);
    return true;
  }
  if (it == tasks_.end()) {
    v1::Task& t = tasks_[id] = *task;
    t.set_version(0);
    changed_.insert(id);
    return true;
  }
  const bool changed = !SameButStatus(it->second, *task);
  it->second = *task;
  it->second.set_version(0);
  if (changed) changed_.insert(id);
  return changed;
}

bool AssignmentView::Update() {
  if (!loaded_) {
    Reload();
    return true;
  }
  bool changed = false;
  while (true) {
    auto changes = store_.ChangesSince(version_, kFeedPage);
    if (!changes.ok()) {
      // The feed no longer reaches back: read everything again and send it.
      Reload();
      return true;
    }
    if (changes->empty()) return changed;
    for (const Change& c : *changes) {
      version_ = c.version;
      if (c.kind != Kind::kTask) continue;
      v1::Task t;
      const bool present = !c.deleted && t.ParseFromString(c.data);
      changed |= Apply(c.id, present ? &t : nullptr);
    }
  }
}

v1::Assignments AssignmentView::Build(uint64_t version) const {
  v1::Assignments a;
  a.set_version(version);
  a.mutable_tasks()->Reserve(static_cast<int>(tasks_.size()));
  for (const auto& [id, t] : tasks_) *a.add_tasks() = t;
  return a;
}

v1::Assignments AssignmentView::Next(uint64_t version, bool deltas) {
  v1::Assignments a;
  if (!deltas || reloaded_) {
    a = Build(version);
  } else {
    a.set_version(version);
    a.set_delta(true);
    a.set_base_version(sent_version_);
    for (const std::string& id : changed_) {
      auto it = tasks_.find(id);
      if (it == tasks_.end()) {
        a.add_removed_task_ids(id);
      } else {
        *a.add_tasks() = it->second;
      }
    }
  }
  changed_.clear();
  reloaded_ = false;
  sent_version_ = version;
  return a;
}

}  // namespace warren
