#ifndef WARREN_MANAGER_PUBLISH_ERRORS_H_
#define WARREN_MANAGER_PUBLISH_ERRORS_H_

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "warren/v1/objects.pb.h"

namespace warren {

// The published ports each node's proxy cannot listen on, as its worker last reported them
// with a heartbeat. In memory, like heartbeats: a worker sends its full set every few seconds,
// so a restarted manager knows them again within one heartbeat period.
class PublishErrorBoard {
 public:
  struct Change {
    v1::PublishError error;
    bool resolved = false;  // the port listens now (or is no longer published)
  };

  // Replaces the node's set; returns the failures that began or whose error changed, and the
  // ones that ended.
  std::vector<Change> Report(const std::string& node_id, const std::string& node_name,
                             const std::vector<v1::PublishError>& errors);
  // A node that registered again starts with a clean slate (its new agent reports afresh).
  void Forget(const std::string& node_id);
  // The failures of one service on the nodes for which `live` holds, by node then port.
  std::vector<v1::PublishError> ForService(
      const std::string& service_id, const std::function<bool(const std::string&)>& live) const;

 private:
  using Key = std::pair<std::string, int>;  // service id, port
  mutable absl::Mutex mu_;
  std::map<std::string, std::map<Key, v1::PublishError>> by_node_ ABSL_GUARDED_BY(mu_);
};

}  // namespace warren

#endif  // WARREN_MANAGER_PUBLISH_ERRORS_H_
