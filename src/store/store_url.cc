#include "store/store_url.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "store/etcd_client.h"

namespace warren {

absl::StatusOr<std::vector<std::string>> ParseStoreUrl(std::string_view url) {
  if (url.empty() || url == "sqlite") return std::vector<std::string>();
  constexpr std::string_view kEtcd = "etcd://";
  if (url.substr(0, kEtcd.size()) != kEtcd) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", std::string(url),
        "\" is not a store: use etcd://HOST:PORT[,HOST:PORT...] for etcd, or sqlite (the "
        "default) for the embedded store in the data dir"));
  }
  std::vector<std::string> endpoints;
  std::set<std::string> seen;
  const std::string list(url.substr(kEtcd.size()));
  for (absl::string_view part : absl::StrSplit(list, ',')) {
    std::string endpoint(part);
    if (endpoint.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", std::string(url),
                       "\" has an empty etcd endpoint: list HOST:PORT of each member, separated "
                       "by commas"));
    }
    if (absl::Status s = ValidateEtcdEndpoint(endpoint); !s.ok()) return s;
    if (!seen.insert(endpoint).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("etcd endpoint \"", endpoint, "\" is listed twice"));
    }
    endpoints.push_back(std::move(endpoint));
  }
  return endpoints;
}

}  // namespace warren
