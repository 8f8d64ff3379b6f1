#ifndef WARREN_MANAGER_ANALYSIS_COUNTERS_H_
#define WARREN_MANAGER_ANALYSIS_COUNTERS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "manager/analysis/histogram.h"
#include "warren/v1/objects.pb.h"

namespace warren::analysis {

// The proxy counters of one revision as plain numbers: cumulative (what a node reported), or
// the growth over a window.
struct Counters {
  uint64_t requests = 0;
  uint64_t responses_2xx = 0;
  uint64_t responses_3xx = 0;
  uint64_t responses_4xx = 0;
  uint64_t responses_5xx = 0;
  uint64_t connect_errors = 0;
  uint64_t latency_count = 0;
  double latency_sum_seconds = 0;
  Histogram latency{};

  bool operator==(const Counters&) const = default;
};

// Counters of each revision of one service.
using RevisionCounters = std::map<int64_t, Counters>;

// `bounds` apply when the message carries buckets but no bounds of its own (a worker's report
// sends them once). A histogram whose bucket count does not fit its bounds is dropped.
Counters FromProto(const v1::RevisionTraffic& t, const std::vector<double>& bounds = {});
// With latency_p99_seconds estimated from the histogram.
v1::RevisionTraffic ToProto(int64_t revision, const Counters& c);
std::map<int64_t, v1::RevisionTraffic> ToProto(const RevisionCounters& counters);

void Add(Counters* to, const Counters& from);
void Add(RevisionCounters* to, const RevisionCounters& from);

// `later - earlier`, or nullopt when any counter went down: the counters started again from 0
// (a restarted worker, a proxy whose metrics were dropped and made again).
std::optional<Counters> Growth(const Counters& later, const Counters& earlier);
// Growth, or all of `later` when the counters started again since `earlier` (everything they
// hold was counted after it).
Counters GrowthOrRestart(const Counters& later, const Counters& earlier);

// Percent of requests that failed (5xx answers and connect errors); 0 without requests.
double ErrorRate(const Counters& c);
// p99 latency in seconds from the histogram; 0 without observations.
double LatencyP99(const Counters& c);

}  // namespace warren::analysis

#endif  // WARREN_MANAGER_ANALYSIS_COUNTERS_H_
