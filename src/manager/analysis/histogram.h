#ifndef WARREN_MANAGER_ANALYSIS_HISTOGRAM_H_
#define WARREN_MANAGER_ANALYSIS_HISTOGRAM_H_

#include <cstdint>
#include <optional>
#include <vector>

namespace warren::analysis {

// A latency histogram as the proxies send it: counts[i] observations of at most bounds[i]
// seconds (and more than bounds[i - 1]); counts.back() those above every bound, so
// counts.size() == bounds.size() + 1 (or both are empty: no histogram). Not cumulative across
// buckets, so histograms of several nodes or windows add bucket by bucket.
struct Histogram {
  std::vector<double> bounds;
  std::vector<uint64_t> counts;

  uint64_t Total() const;
  bool operator==(const Histogram&) const = default;
};

// Adds `b` to `a`. An empty `a` takes b's bounds. With different bounds (workers of another
// version), each of b's buckets goes to the smallest bound of `a` at or above its own upper
// bound, so a merged quantile is never lower than the truth.
void MergeInto(Histogram* a, const Histogram& b);

// `later - earlier` bucket by bucket, or nullopt when a bucket went down (the counters started
// again) or the bounds differ. An empty `earlier` is all zeros.
std::optional<Histogram> Subtract(const Histogram& later, const Histogram& earlier);

// The q-quantile (0 < q <= 1), interpolated linearly within the bucket that holds its rank; 0
// for an empty histogram. Observations above the last bound are reported at the last bound.
double Quantile(const Histogram& h, double q);

}  // namespace warren::analysis

#endif  // WARREN_MANAGER_ANALYSIS_HISTOGRAM_H_
