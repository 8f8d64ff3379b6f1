#include "manager/analysis/window.h"

#include <algorithm>
#include <utility>

#include "common/time_util.h"

namespace warren::analysis {
namespace {

const Counters* Find(const RevisionCounters& m, int64_t rev) {
  auto it = m.find(rev);
  return it == m.end() ? nullptr : &it->second;
}

// What node `n` counted for `rev` since the checkpoint `at` (null: the checkpoint does not
// know the node).
Counters NodeGrowth(const v1::NodeTrafficCheckpoint* at, const NodeCounters& n, int64_t rev) {
  const Counters* now = Find(n.latest, rev);
  if (now == nullptr) return {};
  if (at != nullptr && at->counters_instance() != n.instance) {
    return *now;  // the worker restarted after the checkpoint: all it holds is newer
  }
  Counters base;
  if (at != nullptr) {
    for (const auto& r : at->revisions()) {
      if (r.revision() == rev) base = FromProto(r);
    }
  } else if (const Counters* first = Find(n.first, rev)) {
    base = *first;
  }
  return GrowthOrRestart(*now, base);
}

std::vector<int64_t> Revisions(const v1::AnalysisWindow& w) {
  std::vector<int64_t> out;
  for (const auto& r : w.seen()) out.push_back(r.revision());
  return out;
}

v1::NodeTrafficCheckpoint NodeEntry(const std::string& id, const NodeCounters& n,
                                    const std::vector<int64_t>& revisions) {
  v1::NodeTrafficCheckpoint e;
  e.set_node_id(id);
  e.set_counters_instance(n.instance);
  for (int64_t rev : revisions) {
    if (const Counters* c = Find(n.latest, rev)) {
      v1::RevisionTraffic t = ToProto(rev, *c);
      t.clear_latency_p99_seconds();
      *e.add_revisions() = std::move(t);
    }
  }
  return e;
}

}  // namespace

v1::AnalysisWindow OpenWindow(absl::Time start, const TrafficSnapshot& s,
                              const std::vector<int64_t>& revisions) {
  v1::AnalysisWindow w;
  *w.mutable_started_at() = ToProtoTime(start);
  *w.mutable_checkpoint_at() = ToProtoTime(start);
  for (int64_t rev : revisions) w.add_seen()->set_revision(rev);
  for (const auto& [id, n] : s.nodes) *w.add_nodes() = NodeEntry(id, n, revisions);
  return w;
}

RevisionCounters WindowTraffic(const v1::AnalysisWindow& w, const TrafficSnapshot& s) {
  std::map<std::string, const v1::NodeTrafficCheckpoint*> at;
  for (const auto& n : w.nodes()) at[n.node_id()] = &n;
  RevisionCounters out;
  for (const auto& seen : w.seen()) {
    Counters c = FromProto(seen);
    for (const auto& [id, n] : s.nodes) {
      auto it = at.find(id);
      Add(&c, NodeGrowth(it == at.end() ? nullptr : it->second, n, seen.revision()));
    }
    out[seen.revision()] = std::move(c);
  }
  return out;
}

void Checkpoint(v1::AnalysisWindow* w, const TrafficSnapshot& s, absl::Time now) {
  const std::vector<int64_t> revisions = Revisions(*w);
  RevisionCounters traffic = WindowTraffic(*w, s);
  w->clear_seen();
  for (int64_t rev : revisions) {
    v1::RevisionTraffic t = ToProto(rev, traffic[rev]);
    t.clear_latency_p99_seconds();
    *w->add_seen() = std::move(t);
  }
  std::map<std::string, v1::NodeTrafficCheckpoint> nodes;
  for (const auto& n : w->nodes()) nodes[n.node_id()] = n;
  for (const auto& [id, n] : s.nodes) nodes[id] = NodeEntry(id, n, revisions);
  w->clear_nodes();
  for (auto& [id, n] : nodes) *w->add_nodes() = std::move(n);
  *w->mutable_checkpoint_at() = ToProtoTime(now);
}

bool SyncWindow(std::optional<absl::Time> start, const TrafficSnapshot& s, absl::Time now,
                bool writing, const std::vector<int64_t>& revisions, bool* has_window,
                v1::AnalysisWindow* window) {
  if (!start) {
    if (!*has_window) return false;
    *has_window = false;
    window->Clear();
    return true;
  }
  if (!*has_window || FromProtoTime(window->started_at()) != *start) {
    *window = OpenWindow(*start, s, revisions);
    *has_window = true;
    return true;
  }
  const absl::Duration age = now - FromProtoTime(window->checkpoint_at());
  if (age < (writing ? absl::Seconds(1) : kCheckpointPeriod)) return false;
  v1::AnalysisWindow next = *window;
  Checkpoint(&next, s, now);
  // An idle window keeps its old checkpoint: no write when no node counted anything.
  bool moved = next.nodes_size() != window->nodes_size();
  for (int i = 0; !moved && i < next.nodes_size(); ++i) {
    moved = next.nodes(i).SerializeAsString() != window->nodes(i).SerializeAsString();
  }
  if (!moved) return false;
  *window = std::move(next);
  return true;
}

RevisionCounters GrowthSince(const std::deque<Sample>& samples, absl::Time since,
                             const RevisionCounters& current) {
  if (samples.empty()) return current;
  // The newest sample at or before `since`, so that the window holds all it should; the
  // oldest one when the history is shorter than the window.
  auto after =
      std::find_if(samples.begin(), samples.end(), [&](const Sample& s) { return s.time > since; });
  const Sample& from = after == samples.begin() ? samples.front() : *std::prev(after);
  RevisionCounters out;
  for (const auto& [rev, c] : current) {
    const Counters* base = Find(from.totals, rev);
    out[rev] = base ? GrowthOrRestart(c, *base) : c;
  }
  return out;
}

void ThinSamples(std::deque<Sample>* samples, absl::Time now, absl::Duration keep) {
  while (!samples->empty() && now - samples->front().time > keep) samples->pop_front();
  if (samples->size() < 3) return;
  std::deque<Sample> kept;
  kept.push_back(std::move(samples->front()));
  for (size_t i = 1; i + 1 < samples->size(); ++i) {
    const absl::Duration age = now - (*samples)[i].time;
    const absl::Duration resolution = age < absl::Minutes(2) ? absl::Seconds(1) : absl::Seconds(10);
    // Dropped when its successor is still within the resolution of the last kept sample.
    if ((*samples)[i + 1].time - kept.back().time > resolution) {
      kept.push_back(std::move((*samples)[i]));
    }
  }
  kept.push_back(std::move(samples->back()));
  *samples = std::move(kept);
}

absl::Time SlidingWindowStart(absl::Time floor, absl::Time now, absl::Duration length) {
  return std::max(floor, now - length);
}

}  // namespace warren::analysis
