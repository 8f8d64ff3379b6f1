#include "manager/port_index.h"

#include <vector>

#include "common/published_ports.h"
#include "spdlog/spdlog.h"
#include "store/typed_store.h"

namespace warren {
namespace {

// Changes read per ChangesSince call: bounds one read's memory, not what a Sync applies.
constexpr size_t kFeedPage = 4096;

// Only what PublishedPorts and ListenPortNumbers read: a full spec per service would keep every
// environment and command of the cluster in memory twice.
v1::ServiceSpec PortFields(const v1::ServiceSpec& spec) {
  v1::ServiceSpec out;
  out.set_name(spec.name());
  const v1::TaskTemplate& t = spec.template_();
  v1::TaskTemplate* o = out.mutable_template_();
  o->set_image(t.image());
  *o->mutable_ports() = t.ports();
  if (t.has_health_check()) {
    if (t.health_check().has_http()) {
      o->mutable_health_check()->mutable_http()->set_port(t.health_check().http().port());
    }
    if (t.health_check().has_tcp()) {
      o->mutable_health_check()->mutable_tcp()->set_port(t.health_check().tcp().port());
    }
  }
  out.mutable_update_config()->set_preview_published_port(
      spec.update_config().preview_published_port());
  return out;
}

}  // namespace

void PortIndex::Sync() {
  if (!loaded_) return Reload();
  while (true) {
    auto changes = store_.ChangesSince(version_, kFeedPage);
    if (!changes.ok()) {
      spdlog::info(
          "port index: the store's change feed no longer reaches version {} ({}); "
          "rebuilding from a full listing",
          version_, changes.status().ToString());
      return Reload();
    }
    if (changes->empty()) return;
    for (const Change& c : *changes) {
      version_ = c.version;
      if (c.kind != Kind::kService) continue;
      v1::Service s;
      if (c.deleted || !s.ParseFromString(c.data)) {
        Erase(c.id);
      } else {
        Put(c.id, s.spec());
      }
    }
  }
}

void PortIndex::Reload() {
  // The version first: changes committed while listing are applied again by the next Sync,
  // which ends at the same state.
  version_ = store_.Version();
  services_.clear();
  published_.clear();
  listen_.clear();
  for (const auto& so : store_.List(Kind::kService)) {
    if (auto s = Decode<v1::Service>(so)) Put(so.id, s->spec());
  }
  loaded_ = true;
}

void PortIndex::Put(const std::string& id, const v1::ServiceSpec& spec) {
  Erase(id);
  Entry& e = services_[id];
  e.service.set_id(id);
  *e.service.mutable_spec() = PortFields(spec);
  for (const PublishedPort& p : PublishedPorts(spec)) e.published.insert(p.port);
  for (int port : ListenPortNumbers(spec.template_())) e.listen.insert(port);
  for (int port : e.published) published_[port].insert(id);
  for (int port : e.listen) listen_[port].insert(id);
}

void PortIndex::Erase(const std::string& id) {
  auto it = services_.find(id);
  if (it == services_.end()) return;
  auto drop = [&](std::map<int, std::set<std::string>>& by_port, int port) {
    auto p = by_port.find(port);
    if (p == by_port.end()) return;
    p->second.erase(id);
    if (p->second.empty()) by_port.erase(p);
  };
  for (int port : it->second.published) drop(published_, port);
  for (int port : it->second.listen) drop(listen_, port);
  services_.erase(it);
}

std::vector<v1::Service> PortIndex::Candidates(const v1::ServiceSpec& spec) const {
  std::set<std::string> ids;
  auto add = [&](const std::map<int, std::set<std::string>>& by_port, int port) {
    auto it = by_port.find(port);
    if (it != by_port.end()) ids.insert(it->second.begin(), it->second.end());
  };
  std::set<int> mine;
  for (const PublishedPort& p : PublishedPorts(spec)) {
    mine.insert(p.port);
    // Only a port published on every address covers the loopback addresses tasks listen on.
    if (IsWildcardAddress(p.host_ip)) add(listen_, p.port);
  }
  for (int port : ListenPortNumbers(spec.template_())) mine.insert(port);
  // Their published ports against both what this service publishes and where it listens.
  for (int port : mine) add(published_, port);
  std::vector<v1::Service> out;
  out.reserve(ids.size() + reserved_.size());
  for (const std::string& id : ids) out.push_back(services_.at(id).service);
  for (const auto& [token, e] : reserved_) out.push_back(e.service);
  return out;
}

absl::Status PortIndex::CheckOne(const v1::ServiceSpec& spec) {
  const std::vector<v1::Service> candidates = Candidates(spec);
  services_examined_ += candidates.size();
  return CheckPortConflicts(spec, candidates);
}

absl::Status PortIndex::Check(const v1::ServiceSpec& spec, const v1::ServiceSpec* current) {
  Sync();
  absl::Status s = CheckOne(spec);
  // A conflict the service already had (from before this check existed) does not block
  // changes that leave it as it is.
  if (!s.ok() && current != nullptr && CheckOne(*current) == s) return absl::OkStatus();
  return s;
}

uint64_t PortIndex::Reserve(const v1::ServiceSpec& spec) {
  const uint64_t token = next_token_++;
  Entry& e = reserved_[token];
  // A reservation has no id yet; the name keeps CheckPortConflicts from comparing a service
  // with itself.
  *e.service.mutable_spec() = PortFields(spec);
  return token;
}

void PortIndex::Release(uint64_t token) { reserved_.erase(token); }

}  // namespace warren
