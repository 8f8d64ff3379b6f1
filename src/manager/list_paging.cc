#include "manager/list_paging.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "store/typed_store.h"

namespace warren {

absl::StatusOr<v1::ListServicesResponse> ListServicesPage(const Store& store,
                                                          const v1::ListServicesRequest& req) {
  if (req.page_size() < 0 || req.page_size() > kMaxPageSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size: must be 0 (all) to ", kMaxPageSize, ", got ", req.page_size()));
  }
  // The token is the last name of the previous page: keyset paging, stable under creates.
  std::string after;
  if (!req.page_token().empty() && !absl::WebSafeBase64Unescape(req.page_token(), &after)) {
    return absl::InvalidArgumentError(
        "page_token: not a token this server issued (pass next_page_token unchanged)");
  }
  // Names come with the stored objects: only the services of the page are parsed.
  std::vector<StoredObject> all = store.List(Kind::kService);
  std::vector<const StoredObject*> chosen;
  chosen.reserve(all.size());
  for (const auto& so : all) {
    if (!absl::StartsWith(so.name, req.name_prefix())) continue;
    if (!req.page_token().empty() && so.name <= after) continue;
    chosen.push_back(&so);
  }
  std::sort(chosen.begin(), chosen.end(),
            [](const StoredObject* a, const StoredObject* b) { return a->name < b->name; });
  v1::ListServicesResponse resp;
  size_t n = chosen.size();
  if (req.page_size() > 0 && n > static_cast<size_t>(req.page_size())) {
    n = req.page_size();
    resp.set_next_page_token(absl::WebSafeBase64Escape(chosen[n - 1]->name));
  }
  for (size_t i = 0; i < n; ++i) {
    if (auto s = Decode<v1::Service>(*chosen[i])) *resp.add_services() = std::move(*s);
  }
  return resp;
}

std::vector<std::string> ServiceLookup::IdsOf(OwnedIds of, const std::string& service_id) {
  absl::MutexLock lock(&mu_);
  index_.Sync();
  const std::set<std::string>& ids = (index_.*of)(service_id);
  return {ids.begin(), ids.end()};
}

std::vector<std::string> ServiceLookup::TaskIdsOf(const std::string& service_id) {
  return IdsOf(&ClusterIndex::TasksOf, service_id);
}

std::vector<std::string> ServiceLookup::RevisionIdsOf(const std::string& service_id) {
  return IdsOf(&ClusterIndex::RevisionsOf, service_id);
}

std::vector<std::string> ServiceLookup::DeploymentIdsOf(const std::string& service_id) {
  return IdsOf(&ClusterIndex::DeploymentsOf, service_id);
}

std::map<std::string, int> ServiceLookup::Running(const std::vector<std::string>& service_ids) {
  absl::MutexLock lock(&mu_);
  index_.Sync();
  std::map<std::string, int> out;
  for (const std::string& service_id : service_ids) {
    int n = 0;
    for (const std::string& id : index_.TasksOf(service_id)) {
      const TaskEntry& e = index_.tasks().at(id);
      n += e.desired == v1::TASK_STATE_RUNNING && e.state == v1::TASK_STATE_RUNNING;
    }
    out[service_id] = n;
  }
  return out;
}

}  // namespace warren
