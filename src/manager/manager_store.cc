#include "manager/manager_store.h"

#include <unistd.h>

#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spdlog/spdlog.h"
#include "store/etcd_store.h"
#include "store/sqlite_store.h"
#include "store/typed_store.h"

namespace warren {
namespace {

// The watch feed keeps whole objects in memory (bounded by the stores' byte budget, 64 MiB);
// watchers relist (or resume from the event backlog) when they fall further behind than this.
// 10,000 was less than one burst of a large cluster: 10,000 creates bring 30,000 tasks, and the
// controller that writes them fell behind its own commits and relisted again and again
// (issue 18, scale_bench at N = 10,000).
constexpr size_t kFeedChanges = 100000;

std::string HostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "manager";
  return buf;
}

absl::StatusOr<ManagerStore> OpenEtcd(const ManagerOptions& options) {
  const StoreOptions& so = options.store;
  EtcdClientOptions co;
  co.endpoints = so.etcd_endpoints;
  co.ca_file = so.etcd_ca_file;
  co.cert_file = so.etcd_cert_file;
  co.key_file = so.etcd_key_file;
  auto client = EtcdClient::Create(co);
  if (!client.ok()) return client.status();
  std::shared_ptr<EtcdClient> shared = std::move(*client);

  EtcdStoreOptions eo;
  eo.prefix = so.etcd_prefix;
  eo.max_changes = kFeedChanges;
  eo.parse = ParseStoredObject;
  auto store = EtcdStore::Open(shared, eo);
  if (!store.ok()) return store.status();

  EtcdElectionOptions lo;
  lo.key = so.etcd_prefix + "leader";
  lo.candidate = absl::StrCat(HostName(), " ", options.api_addr);
  lo.ttl = so.leader_ttl;
  auto election = EtcdElection::Start(shared, lo);
  if (!election.ok()) return election.status();
  // A manager that crashed a moment ago still holds the lease for up to its TTL.
  if (!(*election)->WaitUntilLeader(so.leader_ttl * 2 + absl::Seconds(1))) {
    auto leader = (*election)->Leader();
    std::string who = "another manager";
    if (leader.ok() && leader->has_value())
      who = absl::StrCat("manager \"", (*leader)->candidate, "\"");
    return absl::FailedPreconditionError(
        absl::StrCat(who, " leads the controllers on etcd ", absl::StrJoin(so.etcd_endpoints, ","),
                     " (prefix ", so.etcd_prefix,
                     "); for now one manager runs per etcd cluster and prefix (see "
                     "docs/high-availability.md)"));
  }
  ManagerStore ms;
  EtcdStore* raw = store->get();
  EtcdElection* leader = election->get();
  ms.controller_store =
      std::make_unique<EtcdFencedStore>(*raw, [leader] { return leader->Fence(); });
  ms.store = std::move(*store);
  ms.election = std::move(*election);
  spdlog::info("store: etcd {} (prefix {}), this manager leads the controllers",
               absl::StrJoin(so.etcd_endpoints, ","), so.etcd_prefix);
  return ms;
}

}  // namespace

absl::StatusOr<ManagerStore> OpenManagerStore(const ManagerOptions& options) {
  if (!options.store.etcd_endpoints.empty()) return OpenEtcd(options);
  SqliteStoreOptions store_options;
  store_options.max_changes = kFeedChanges;
  store_options.parse = ParseStoredObject;
  auto store = SqliteStore::Open((std::filesystem::path(options.data_dir) / "store.db").string(),
                                 store_options);
  if (!store.ok()) return store.status();
  ManagerStore ms;
  ms.store = std::move(*store);
  return ms;
}

}  // namespace warren
