#include "manager/events.h"

#include <algorithm>
#include <vector>

#include "absl/strings/numbers.h"
#include "google/protobuf/util/time_util.h"
#include "spdlog/spdlog.h"
#include "store/typed_store.h"

namespace warren {

using google::protobuf::util::TimeUtil;

EventLog::EventLog(Store& store, const Clock& clock) : store_(store), clock_(clock), next_id_(1) {
  // From the store ids (the numbers, zero-padded), corrupt events included: an id taken again
  // would overwrite an event.
  uint64_t last = 0;
  auto note = [&last](const std::string& store_id) {
    uint64_t id = 0;
    if (absl::SimpleAtoi(store_id, &id)) last = std::max(last, id);
  };
  auto events = store_.List(Kind::kEvent);
  if (!events.empty()) note(events.back().id);
  for (const auto& c : store_.Corruption()) {
    if (c.kind == Kind::kEvent) note(c.id);
  }
  next_id_ = last + 1;
}

Mutation EventLog::Make(std::string_view kind, std::string_view object_id,
                        std::string_view object_name, std::string_view action,
                        std::string_view message, std::string_view service_id) {
  v1::Event e;
  e.set_id(next_id_.fetch_add(1));
  *e.mutable_time() = TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(clock_.Now()));
  e.set_kind(std::string(kind));
  e.set_object_id(std::string(object_id));
  e.set_object_name(std::string(object_name));
  e.set_action(std::string(action));
  e.set_message(std::string(message));
  e.set_service_id(std::string(service_id));
  return PutMutation(e);
}

void EventLog::Prune(const std::function<bool()>& keep_going) {
  // Ids only: copying 10,000 events' data every 10 s was a visible share of the controller's
  // time at 10,000 services.
  auto events = store_.ListVersions(Kind::kEvent);
  if (events.size() <= kMaxEvents) return;
  const size_t excess = events.size() - kMaxEvents;
  // In small commits: after 10,000 creates (about 54,000 events made) one commit deleted tens of
  // thousands and held the store (and a reaction waiting to commit) for ~250 ms; other commits go
  // between these. etcd
  // takes fewer mutations per transaction than kPruneBatch.
  const size_t batch = std::max<size_t>(1, std::min(kPruneBatch, store_.MaxMutationsPerCommit()));
  for (size_t from = 0; from < excess; from += batch) {
    if (keep_going && !keep_going()) return;
    std::vector<Mutation> deletes;
    for (size_t i = from; i < std::min(excess, from + batch); ++i) {
      Mutation m;
      m.kind = Kind::kEvent;
      m.id = events[i].id;
      deletes.push_back(std::move(m));
    }
    if (auto s = store_.Commit(deletes); !s.ok()) {
      spdlog::warn("pruning events: {}", s.status().ToString());
      return;
    }
  }
}

EventReader::EventReader(const Store& store, uint64_t since_id,
                         std::function<bool(const v1::Event&)> matches)
    : store_(store), since_id_(since_id), matches_(std::move(matches)) {}

std::vector<v1::Event> EventReader::Next(absl::Duration wait) {
  std::vector<v1::Event> out;
  if (!started_) {
    started_ = true;
    CatchUp(&out);
    return out;
  }
  store_.WaitForVersion(version_, wait);
  auto changes = store_.ChangesSince(version_, 1000);
  if (!changes.ok()) {
    CatchUp(&out);
    return out;
  }
  for (const Change& c : *changes) {
    version_ = c.version;
    if (c.kind != Kind::kEvent || c.deleted) continue;
    v1::Event e;
    if (e.ParseFromString(c.data)) Keep(std::move(e), &out);
  }
  return out;
}

void EventReader::CatchUp(std::vector<v1::Event>* out) {
  // Events are written once and never changed, so an event's version is its commit's. The
  // listing may be newer than `through`: its events are sent now and the feed resumes after
  // the newest of them, so none comes twice and none is skipped.
  uint64_t through = store_.Version();
  for (const StoredObject& so : store_.List(Kind::kEvent)) {
    if (so.version <= version_) continue;
    through = std::max(through, so.version);
    v1::Event e;
    if (e.ParseFromString(so.data)) Keep(std::move(e), out);
  }
  version_ = through;
}

void EventReader::Keep(v1::Event e, std::vector<v1::Event>* out) const {
  if (e.id() <= since_id_ || (matches_ && !matches_(e))) return;
  out->push_back(std::move(e));
}

}  // namespace warren
