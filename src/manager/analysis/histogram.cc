#include "manager/analysis/histogram.h"

#include <algorithm>
#include <numeric>

namespace warren::analysis {

uint64_t Histogram::Total() const {
  return std::accumulate(counts.begin(), counts.end(), uint64_t{0});
}

void MergeInto(Histogram* a, const Histogram& b) {
  if (b.counts.empty()) return;
  if (a->counts.empty()) {
    *a = b;
    return;
  }
  if (a->bounds == b.bounds) {
    for (size_t i = 0; i < a->counts.size() && i < b.counts.size(); ++i) {
      a->counts[i] += b.counts[i];
    }
    return;
  }
  for (size_t i = 0; i < b.counts.size(); ++i) {
    size_t to = a->bounds.size();  // above every bound of `a`
    if (i < b.bounds.size()) {
      to = std::lower_bound(a->bounds.begin(), a->bounds.end(), b.bounds[i]) - a->bounds.begin();
    }
    a->counts[to] += b.counts[i];
  }
}

std::optional<Histogram> Subtract(const Histogram& later, const Histogram& earlier) {
  if (earlier.counts.empty()) return later;
  if (later.bounds != earlier.bounds || later.counts.size() != earlier.counts.size()) {
    return std::nullopt;
  }
  Histogram out = later;
  for (size_t i = 0; i < out.counts.size(); ++i) {
    if (later.counts[i] < earlier.counts[i]) return std::nullopt;
    out.counts[i] -= earlier.counts[i];
  }
  return out;
}

double Quantile(const Histogram& h, double q) {
  const uint64_t total = h.Total();
  if (total == 0 || h.bounds.empty()) return 0;
  const double rank = q * static_cast<double>(total);
  uint64_t below = 0;
  for (size_t i = 0; i < h.bounds.size(); ++i) {
    const uint64_t in = h.counts[i];
    if (static_cast<double>(below + in) >= rank && in > 0) {
      const double lo = i == 0 ? 0 : h.bounds[i - 1];
      return lo +
             (h.bounds[i] - lo) * (rank - static_cast<double>(below)) / static_cast<double>(in);
    }
    below += in;
  }
  return h.bounds.back();
}

}  // namespace warren::analysis
