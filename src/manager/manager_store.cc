#include "manager/manager_store.h"

#include <unistd.h>

#include <filesystem>
#include <utility>

#include <nlohmann/json.hpp>

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

  ManagerStore ms;
  ms.etcd_store = store->get();
  ms.election_slot = std::make_shared<std::atomic<EtcdElection*>>(nullptr);
  ms.controller_store = std::make_unique<EtcdFencedStore>(
      *ms.etcd_store, [slot = ms.election_slot]() -> std::optional<EtcdFence> {
        EtcdElection* e = slot->load();
        if (e == nullptr) return std::nullopt;
        return e->Fence();
      });
  ms.store = std::move(*store);
  ms.etcd = std::move(shared);
  ms.etcd_prefix = so.etcd_prefix;
  spdlog::info("store: etcd {} (prefix {})", absl::StrJoin(so.etcd_endpoints, ","), so.etcd_prefix);
  return ms;
}

}  // namespace

ManagerRecord ThisManager(const std::string& id, const std::string& bound_api_addr) {
  ManagerRecord me;
  me.id = id;
  me.name = HostName();
  const size_t colon = bound_api_addr.rfind(':');
  const std::string host = bound_api_addr.substr(0, colon);
  // A wildcard listener is reached through the host's name.
  if (host.empty() || host == "0.0.0.0" || host == "[::]") {
    me.api_addr = absl::StrCat(me.name, bound_api_addr.substr(colon));
  } else {
    me.api_addr = bound_api_addr;
  }
  return me;
}

std::string FormatManagerRecord(const ManagerRecord& m) {
  return nlohmann::json{{"id", m.id}, {"name", m.name}, {"api_addr", m.api_addr}}.dump();
}

absl::StatusOr<ManagerRecord> ParseManagerRecord(const std::string& json) {
  nlohmann::json j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("id") || !j["id"].is_string() || !j.contains("api_addr") ||
      !j["api_addr"].is_string()) {
    return absl::DataLossError(
        absl::StrCat("manager record is not {\"id\", \"name\", \"api_addr\"}: ", json));
  }
  ManagerRecord m;
  m.id = j["id"].get<std::string>();
  m.api_addr = j["api_addr"].get<std::string>();
  if (j.contains("name") && j["name"].is_string()) m.name = j["name"].get<std::string>();
  return m;
}

absl::Status StartManagerElection(ManagerStore& ms, const ManagerOptions& options,
                                  const ManagerRecord& me) {
  if (!ms.etcd) return absl::OkStatus();
  EtcdElectionOptions lo;
  lo.key = ms.etcd_prefix + "leader";
  lo.candidate = me.api_addr;
  lo.ttl = options.store.leader_ttl;
  lo.member_key = absl::StrCat(ms.etcd_prefix, "managers/", me.id);
  lo.member_value = FormatManagerRecord(me);
  auto election = EtcdElection::Start(ms.etcd, lo);
  if (!election.ok()) return election.status();
  ms.election = std::move(*election);
  ms.election_slot->store(ms.election.get());
  spdlog::info("manager {} ({}) on etcd: campaigning for the controllers' leadership", me.id,
               me.api_addr);
  return absl::OkStatus();
}

absl::StatusOr<ManagerRoster> ListManagers(EtcdClient& etcd, const std::string& prefix) {
  const std::string managers = prefix + "managers/";
  etcdserverpb::RangeRequest req;
  req.set_key(managers);
  req.set_range_end(EtcdPrefixEnd(managers));
  auto resp = etcd.Range(req);
  if (!resp.ok()) return resp.status();
  ManagerRoster roster;
  for (const auto& kv : resp->kvs()) {
    auto m = ParseManagerRecord(kv.value());
    if (!m.ok()) {
      spdlog::warn("{}: {}", kv.key(), m.status().ToString());
      continue;
    }
    roster.managers.push_back(std::move(*m));
  }
  etcdserverpb::RangeRequest leader;
  leader.set_key(prefix + "leader");
  auto l = etcd.Range(leader);
  if (!l.ok()) return l.status();
  if (!l->kvs().empty()) roster.leader_addr = l->kvs(0).value();
  return roster;
}

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
