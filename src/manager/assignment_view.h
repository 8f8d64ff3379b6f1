#ifndef WARREN_MANAGER_ASSIGNMENT_VIEW_H_
#define WARREN_MANAGER_ASSIGNMENT_VIEW_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "store/store.h"
#include "warren/v1/api.pb.h"
#include "warren/v1/objects.pb.h"

namespace warren {

// One node's assignments (its placed, non-terminal tasks), kept current from the store's
// change feed: a store change costs what it changed, not a parse of every task in the
// cluster (issue 18). Not thread-safe; one per WatchAssignments stream.
class AssignmentView {
 public:
  AssignmentView(const Store& store, std::string node_id)
      : store_(store), node_id_(std::move(node_id)) {}

  // Applies the changes since the last call; true when what the worker runs changed (a task
  // came, went, or changed other than in its status), and at the first call.
  bool Update();

  // The assignments as of the last Update, stamped with `version`: the full set.
  v1::Assignments Build(uint64_t version) const;

  // What to send after Update: the full set the first time and after the feed no longer
  // reached back, otherwise (with `deltas`) only the tasks that changed since the previous
  // Next and the ids of those that left, so one task's change costs one task (issue 18).
  v1::Assignments Next(uint64_t version, bool deltas);

 private:
  void Reload();
  // True when the set changed.
  bool Apply(const std::string& id, const v1::Task* task);

  const Store& store_;
  const std::string node_id_;
  bool loaded_ = false;
  uint64_t version_ = 0;
  // Task id -> the task (version 0: versions churn on status reports).
  std::map<std::string, v1::Task> tasks_;
  // Since the previous Next: ids of the tasks that came, went or changed, and whether the
  // whole set was read again (the stream then gets it whole).
  std::set<std::string> changed_;
  bool reloaded_ = true;
  uint64_t sent_version_ = 0;
};

}  // namespace warren

#endif  // WARREN_MANAGER_ASSIGNMENT_VIEW_H_
