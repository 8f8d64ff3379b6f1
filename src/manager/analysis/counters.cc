#include "manager/analysis/counters.h"

#include <algorithm>

namespace warren::analysis {

Counters FromProto(const v1::RevisionTraffic& t, const std::vector<double>& bounds) {
  Counters c;
  c.requests = t.requests();
  c.responses_2xx = t.responses_2xx();
  c.responses_3xx = t.responses_3xx();
  c.responses_4xx = t.responses_4xx();
  c.responses_5xx = t.responses_5xx();
  c.connect_errors = t.connect_errors();
  c.latency_count = t.latency_count();
  c.latency_sum_seconds = t.latency_sum_seconds();
  if (t.latency_buckets_size() > 0) {
    c.latency.bounds = t.latency_bounds_seconds_size() > 0
                           ? std::vector<double>(t.latency_bounds_seconds().begin(),
                                                 t.latency_bounds_seconds().end())
                           : bounds;
    c.latency.counts.assign(t.latency_buckets().begin(), t.latency_buckets().end());
    const bool sorted = std::is_sorted(c.latency.bounds.begin(), c.latency.bounds.end());
    if (!sorted || c.latency.counts.size() != c.latency.bounds.size() + 1) c.latency = {};
  }
  return c;
}

v1::RevisionTraffic ToProto(int64_t revision, const Counters& c) {
  v1::RevisionTraffic t;
  t.set_revision(revision);
  t.set_requests(c.requests);
  t.set_responses_2xx(c.responses_2xx);
  t.set_responses_3xx(c.responses_3xx);
  t.set_responses_4xx(c.responses_4xx);
  t.set_responses_5xx(c.responses_5xx);
  t.set_connect_errors(c.connect_errors);
  t.set_latency_count(c.latency_count);
  t.set_latency_sum_seconds(c.latency_sum_seconds);
  t.set_latency_p99_seconds(LatencyP99(c));
  for (uint64_t n : c.latency.counts) t.add_latency_buckets(n);
  for (double b : c.latency.bounds) t.add_latency_bounds_seconds(b);
  return t;
}

std::map<int64_t, v1::RevisionTraffic> ToProto(const RevisionCounters& counters) {
  std::map<int64_t, v1::RevisionTraffic> out;
  for (const auto& [rev, c] : counters) out[rev] = ToProto(rev, c);
  return out;
}

void Add(Counters* to, const Counters& from) {
  to->requests += from.requests;
  to->responses_2xx += from.responses_2xx;
  to->responses_3xx += from.responses_3xx;
  to->responses_4xx += from.responses_4xx;
  to->responses_5xx += from.responses_5xx;
  to->connect_errors += from.connect_errors;
  to->latency_count += from.latency_count;
  to->latency_sum_seconds += from.latency_sum_seconds;
  MergeInto(&to->latency, from.latency);
}

void Add(RevisionCounters* to, const RevisionCounters& from) {
  for (const auto& [rev, c] : from) Add(&(*to)[rev], c);
}

std::optional<Counters> Growth(const Counters& later, const Counters& earlier) {
  const std::pair<uint64_t, uint64_t> pairs[] = {
      {later.requests, earlier.requests},           {later.responses_2xx, earlier.responses_2xx},
      {later.responses_3xx, earlier.responses_3xx}, {later.responses_4xx, earlier.responses_4xx},
      {later.responses_5xx, earlier.responses_5xx}, {later.connect_errors, earlier.connect_errors},
      {later.latency_count, earlier.latency_count},
  };
  for (const auto& [l, e] : pairs) {
    if (l < e) return std::nullopt;
  }
  std::optional<Histogram> latency = Subtract(later.latency, earlier.latency);
  // A histogram that vanished or changed its bounds is no reset of the other counters; the
  // window then has no latency figure rather than a wrong one.
  if (!latency && !later.latency.counts.empty() && earlier.latency.bounds == later.latency.bounds) {
    return std::nullopt;
  }
  Counters d;
  d.requests = later.requests - earlier.requests;
  d.responses_2xx = later.responses_2xx - earlier.responses_2xx;
  d.responses_3xx = later.responses_3xx - earlier.responses_3xx;
  d.responses_4xx = later.responses_4xx - earlier.responses_4xx;
  d.responses_5xx = later.responses_5xx - earlier.responses_5xx;
  d.connect_errors = later.connect_errors - earlier.connect_errors;
  d.latency_count = later.latency_count - earlier.latency_count;
  d.latency_sum_seconds = std::max(0.0, later.latency_sum_seconds - earlier.latency_sum_seconds);
  if (latency) d.latency = std::move(*latency);
  return d;
}

Counters GrowthOrRestart(const Counters& later, const Counters& earlier) {
  std::optional<Counters> g = Growth(later, earlier);
  return g ? *g : later;
}

double ErrorRate(const Counters& c) {
  if (c.requests == 0) return 0;
  return 100.0 * static_cast<double>(c.responses_5xx + c.connect_errors) /
         static_cast<double>(c.requests);
}

double LatencyP99(const Counters& c) { return Quantile(c.latency, 0.99); }

}  // namespace warren::analysis
