#ifndef WARREN_MANAGER_ANALYSIS_WINDOW_H_
#define WARREN_MANAGER_ANALYSIS_WINDOW_H_

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "manager/analysis/counters.h"
#include "warren/v1/objects.pb.h"

namespace warren::analysis {

// One node's proxy counters of one service as the manager last received them (cumulative
// since the node's proxies started).
struct NodeCounters {
  // Changes when the worker restarted (its counters started again from 0).
  uint64_t instance = 0;
  RevisionCounters latest;
  // What the node had already counted when this manager first heard from it: a window whose
  // checkpoint does not know the node counts only what came after. Absent revisions are 0.
  RevisionCounters first;
};

// Every node's counters of one service, by node id.
struct TrafficSnapshot {
  std::map<std::string, NodeCounters> nodes;
};

// Analysis windows that survive a manager restart. The window's state is a
// v1::AnalysisWindow kept in the deployment: the traffic seen up to a checkpoint, and each
// node's cumulative counters at that checkpoint. The window's traffic at any later time is
// that plus what every node's counters grew by since, so nothing is lost when the manager's
// memory is (a restart): the workers' proxies keep counting, and a proxy that restarted
// itself (new counters_instance, or counters that went down) counts from 0.

// A window of `revisions` that starts now, with the snapshot as its baseline.
v1::AnalysisWindow OpenWindow(absl::Time start, const TrafficSnapshot& s,
                              const std::vector<int64_t>& revisions);

// The window's traffic per revision (the revisions it was opened for), up to the snapshot.
RevisionCounters WindowTraffic(const v1::AnalysisWindow& w, const TrafficSnapshot& s);

// Moves the checkpoint to the snapshot. Nodes missing from the snapshot keep their counters
// (a manager that has not heard from a node yet must not forget where it was).
void Checkpoint(v1::AnalysisWindow* w, const TrafficSnapshot& s, absl::Time now);

// How often a window's checkpoint is written when nothing else writes the deployment: the
// traffic a restarted manager can lose when the proxies restarted with it (hybrid mode).
inline constexpr absl::Duration kCheckpointPeriod = absl::Seconds(5);

// Keeps `*window` (present when `*has_window`) in step with the analysis window that starts
// at `start` (nullopt: none runs): opens it with the snapshot as its baseline, drops it when
// no window runs, and moves the checkpoint when the deployment is written anyway (`writing`,
// at most once a second) or when kCheckpointPeriod passed and the counters moved. Returns
// whether the window changed (and must be written).
bool SyncWindow(std::optional<absl::Time> start, const TrafficSnapshot& s, absl::Time now,
                bool writing, const std::vector<int64_t>& revisions, bool* has_window,
                v1::AnalysisWindow* window);

// Time-stamped totals of one service (reset-corrected, summed over nodes), oldest first: the
// in-memory history behind sliding windows.
struct Sample {
  absl::Time time;
  RevisionCounters totals;
};

// Growth of `current` since the newest sample at or before `since` (the oldest sample when
// none is that old; all of `current` without samples).
RevisionCounters GrowthSince(const std::deque<Sample>& samples, absl::Time since,
                             const RevisionCounters& current);

// Drops samples so that those younger than 2 minutes are about a second apart and older ones
// about 10 seconds, and none is older than `keep`: bounded memory for any report rate.
void ThinSamples(std::deque<Sample>* samples, absl::Time now, absl::Duration keep);

// The start of a sliding window of `length` that never reaches back before `floor` (a rolling
// update judges its new revision over the last `length`, but only since its first batch).
absl::Time SlidingWindowStart(absl::Time floor, absl::Time now, absl::Duration length);

}  // namespace warren::analysis

#endif  // WARREN_MANAGER_ANALYSIS_WINDOW_H_
