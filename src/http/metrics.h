#ifndef WARREN_HTTP_METRICS_H_
#define WARREN_HTTP_METRICS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "http/http_server.h"

namespace warren {

// Prometheus metrics (text exposition format 0.0.4). Every type here is thread-safe.
//
// Registration mistakes (an invalid metric or label name, the same name registered with
// another type, labels or buckets, WithLabels with the wrong number of values) are programming
// errors: they abort with a message naming the metric, so a test catches them on first use.

using LabelValues = std::vector<std::string>;

class Counter {
 public:
  // Counters only go up: a negative or NaN increment is ignored.
  void Inc(double v = 1);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Inc(double v = 1);
  void Dec(double v = 1) { Inc(-v); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  // `bounds`: the finite upper bounds, strictly increasing (+Inf is implicit).
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative;  // per bound, then +Inf (== count)
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot Get() const;

 private:
  const std::vector<double> bounds_;
  // One more than bounds_: the last counts observations above every bound.
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<double> sum_{0};
};

// Prometheus' client default buckets (seconds): .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10.
std::vector<double> DefaultLatencyBuckets();

// A metric name with its label names; one child per combination of label values.
template <typename T>
class Family {
 public:
  Family(std::string name, std::vector<std::string> label_names,
         std::function<std::unique_ptr<T>()> make);

  // The child for these label values (in label-name order), created at first use. The
  // reference stays valid until Remove of the same values.
  T& WithLabels(const LabelValues& values);
  // Drops a child (e.g. a task that went away) so it is no longer exported.
  void Remove(const LabelValues& values);

  const std::string& name() const { return name_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  // Calls fn for each child, ordered by label values.
  void ForEach(const std::function<void(const LabelValues&, const T&)>& fn) const;

 private:
  const std::string name_;
  const std::vector<std::string> label_names_;
  const std::function<std::unique_ptr<T>()> make_;
  mutable absl::Mutex mu_;
  std::map<LabelValues, std::unique_ptr<T>> children_ ABSL_GUARDED_BY(mu_);
};

class Registry {
 public:
  // (label values in label-name order, value)
  using Samples = std::vector<std::pair<LabelValues, double>>;
  using SampleFunction = std::function<Samples()>;

  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Registering an existing name again with the same type and labels returns the existing
  // family, so independent components may share one. A family without labels exports its
  // single child (value 0) from the start.
  Family<Counter>& AddCounter(const std::string& name, const std::string& help,
                              const std::vector<std::string>& label_names = {});
  Family<Gauge>& AddGauge(const std::string& name, const std::string& help,
                          const std::vector<std::string>& label_names = {});
  // Empty `buckets` means DefaultLatencyBuckets().
  Family<Histogram>& AddHistogram(const std::string& name, const std::string& help,
                                  const std::vector<std::string>& label_names,
                                  std::vector<double> buckets = {});

  // Values computed at scrape time (e.g. per-revision counts kept elsewhere). `fn` runs on the
  // scraping thread without registry locks held. Registering the name again replaces the
  // function; whoever owns what `fn` captures must call Remove(name) before it goes away.
  void AddCallbackGauge(const std::string& name, const std::string& help,
                        const std::vector<std::string>& label_names, SampleFunction fn);
  void AddCallbackCounter(const std::string& name, const std::string& help,
                          const std::vector<std::string>& label_names, SampleFunction fn);

  // Unregisters a family of any kind. References into it become invalid.
  void Remove(const std::string& name);

  // Text exposition format 0.0.4, families sorted by name.
  std::string Render() const;

  struct Entry;

 private:
  Entry& AddEntry(const std::string& name, const std::string& help, int kind,
                  const std::vector<std::string>& label_names, const std::vector<double>& buckets);

  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Entry>> entries_ ABSL_GUARDED_BY(mu_);
};

// The process-wide registry.
Registry& DefaultRegistry();

// Content type of Render()'s output.
inline constexpr char kPrometheusContentType[] = "text/plain; version=0.0.4; charset=utf-8";

// GET /metrics → registry.Render(); /healthz → 200 "ok"; /readyz → 200 "ready" when ready()
// (or when ready is empty), else 503 "not ready"; anything else 404.
HttpServer::Handler MetricsHandler(Registry& registry, std::function<bool()> ready);

}  // namespace warren

#endif  // WARREN_HTTP_METRICS_H_
