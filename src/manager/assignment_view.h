#ifndef WARREN_MANAGER_ASSIGNMENT_VIEW_H_
#define WARREN_MANAGER_ASSIGNMENT_VIEW_H_

#include <cstdint>
#include <map>
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

  // The assignments as of the last Update, stamped with `version`.
  v1::Assignments Build(uint64_t version) const;

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
};

}  // namespace warren

#endif  // WARREN_MANAGER_ASSIGNMENT_VIEW_H_
