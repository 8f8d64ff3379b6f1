#ifndef WARREN_MANAGER_LIST_PAGING_H_
#define WARREN_MANAGER_LIST_PAGING_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "manager/cluster_index.h"
#include "store/store.h"
#include "warren/v1/api.pb.h"

namespace warren {

// The largest page ListServices serves.
inline constexpr int kMaxPageSize = 10'000;

// One page of ListServices: services ordered by name after the request's token, filtered by
// its name prefix; `next_page_token` is set when more follow. INVALID_ARGUMENT names the field
// for a page size out of range or a token this server did not issue.
absl::StatusOr<v1::ListServicesResponse> ListServicesPage(const Store& store,
                                                          const v1::ListServicesRequest& req);

// Which tasks, revisions and deployments belong to which service, kept from the store's change
// feed, so the API reads one service's objects without parsing every one of the cluster (at
// 10,000 services, listing every revision to update one service was most of its cost).
// Thread-safe; each answer is as of the store's version when asked.
class ServiceLookup {
 public:
  explicit ServiceLookup(const Store& store) : index_(store) {}

  std::vector<std::string> TaskIdsOf(const std::string& service_id);
  std::vector<std::string> RevisionIdsOf(const std::string& service_id);
  std::vector<std::string> DeploymentIdsOf(const std::string& service_id);
  // Service id -> its tasks that should run and run, for these services.
  std::map<std::string, int> Running(const std::vector<std::string>& service_ids);

 private:
  // The ids `of` gives for the service, with the index brought up to date first.
  using OwnedIds = const std::set<std::string>& (ClusterIndex::*)(const std::string&) const;
  std::vector<std::string> IdsOf(OwnedIds of, const std::string& service_id);

  absl::Mutex mu_;
  ClusterIndex index_ ABSL_GUARDED_BY(mu_);
};

}  // namespace warren

#endif  // WARREN_MANAGER_LIST_PAGING_H_
