#include "manager/manager_store.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <tuple>
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
  // Both ranges in one transaction: the registry and the leader key at one revision.
  etcdserverpb::TxnRequest txn;
  etcdserverpb::RangeRequest* registry = txn.add_success()->mutable_request_range();
  registry->set_key(managers);
  registry->set_range_end(EtcdPrefixEnd(managers));
  txn.add_success()->mutable_request_range()->set_key(prefix + "leader");
  auto resp = etcd.Txn(txn);
  if (!resp.ok()) return resp.status();
  if (resp->responses_size() != 2) {
    return absl::InternalError("etcd: the managers' registry read answered without its ranges");
  }
  const auto& leader = resp->responses(1).response_range();
  int64_t leader_lease = 0;
  ManagerRoster roster;
  if (leader.kvs_size() > 0) {
    roster.leader_addr = leader.kvs(0).value();
    leader_lease = leader.kvs(0).lease();
  }
  for (const auto& kv : resp->responses(0).response_range().kvs()) {
    auto m = ParseManagerRecord(kv.value());
    if (!m.ok()) {
      spdlog::warn("{}: {}", kv.key(), m.status().ToString());
      continue;
    }
    // The leader key and the leader's registry entry live on the same lease.
    if (leader_lease != 0 && kv.lease() == leader_lease) roster.leader_id = m->id;
    roster.managers.push_back(std::move(*m));
  }
  std::sort(roster.managers.begin(), roster.managers.end(),
            [](const ManagerRecord& a, const ManagerRecord& b) {
              return std::tie(a.name, a.id) < std::tie(b.name, b.id);
            });
  return roster;
}

std::vector<v1::ManagerInfo> ManagerInfos(const ManagerRoster& roster, const std::string& self_id) {
  std::vector<v1::ManagerInfo> out;
  for (const ManagerRecord& m : roster.managers) {
    v1::ManagerInfo info;
    info.set_id(m.id);
    info.set_name(m.name);
    info.set_api_addr(m.api_addr);
    info.set_leader(!roster.leader_id.empty() && m.id == roster.leader_id);
    info.set_answered(m.id == self_id);
    out.push_back(std::move(info));
  }
  return out;
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
