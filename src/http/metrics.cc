#include "http/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace warren {

namespace {

enum Kind { kCounter, kGauge, kHistogram, kCallbackGauge, kCallbackCounter };

const char* KindName(int kind) {
  switch (kind) {
    case kCounter:
    case kCallbackCounter:
      return "counter";
    case kGauge:
    case kCallbackGauge:
      return "gauge";
    case kHistogram:
      return "histogram";
  }
  return "untyped";
}

[[noreturn]] void Fail(const std::string& message) {
  std::fprintf(stderr, "metrics: %s\n", message.c_str());
  std::fflush(stderr);
  std::abort();
}

bool ValidMetricName(const std::string& name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool ValidLabelName(const std::string& name) {
  if (name.empty() || name.rfind("__", 0) == 0) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

void AtomicAdd(std::atomic<double>& target, double v) {
  double old = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(old, old + v, std::memory_order_relaxed)) {
  }
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, end);
}

// Exposition-format escaping: backslash and newline; label values also escape '"'.
std::string Escape(const std::string& s, bool quotes) {
  std::string out;
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quotes && c == '"') {
      out += "\\\"";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string EscapeHelp(const std::string& s) { return Escape(s, false); }

std::string EscapeLabelValue(const std::string& s) { return Escape(s, true); }

// `{a="x",b="y"}` (empty when there are no labels). `extra` is appended last (histogram le).
std::string LabelSet(const std::vector<std::string>& names, const LabelValues& values,
                     const std::string& extra_name = "", const std::string& extra_value = "") {
  std::vector<std::string> parts;
  for (size_t i = 0; i < names.size() && i < values.size(); ++i) {
    parts.push_back(absl::StrCat(names[i], "=\"", EscapeLabelValue(values[i]), "\""));
  }
  if (!extra_name.empty()) {
    parts.push_back(absl::StrCat(extra_name, "=\"", EscapeLabelValue(extra_value), "\""));
  }
  if (parts.empty()) return "";
  return absl::StrCat("{", absl::StrJoin(parts, ","), "}");
}

}  // namespace

void Counter::Inc(double v) {
  if (!(v >= 0)) return;
  AtomicAdd(value_, v);
}

void Gauge::Inc(double v) { AtomicAdd(value_, v); }

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0);
}

void Histogram::Observe(double v) {
  // Buckets are inclusive upper bounds: v == bound lands in that bucket.
  size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(sum_, v);
}

Histogram::Snapshot Histogram::Get() const {
  Snapshot s;
  s.bounds = bounds_;
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    total += counts_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(total);
  }
  // The count is derived from the buckets so that +Inf and _count always agree.
  s.count = total;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

std::vector<double> DefaultLatencyBuckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

template <typename T>
Family<T>::Family(std::string name, std::vector<std::string> label_names,
                  std::function<std::unique_ptr<T>()> make)
    : name_(std::move(name)), label_names_(std::move(label_names)), make_(std::move(make)) {}

template <typename T>
T& Family<T>::WithLabels(const LabelValues& values) {
  if (values.size() != label_names_.size()) {
    Fail(absl::StrCat(name_, ": WithLabels got ", values.size(), " values for labels [",
                      absl::StrJoin(label_names_, ","), "]"));
  }
  absl::MutexLock lock(&mu_);
  std::unique_ptr<T>& child = children_[values];
  if (!child) child = make_();
  return *child;
}

template <typename T>
void Family<T>::Remove(const LabelValues& values) {
  absl::MutexLock lock(&mu_);
  children_.erase(values);
}

template <typename T>
void Family<T>::ForEach(const std::function<void(const LabelValues&, const T&)>& fn) const {
  absl::MutexLock lock(&mu_);
  for (const auto& [values, child] : children_) fn(values, *child);
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

struct Registry::Entry {
  std::string name;
  std::string help;
  int kind = kCounter;
  std::vector<std::string> label_names;
  std::vector<double> buckets;
  std::unique_ptr<Family<Counter>> counters;
  std::unique_ptr<Family<Gauge>> gauges;
  std::unique_ptr<Family<Histogram>> histograms;
  SampleFunction fn;  // guarded by the registry's mutex
};

Registry::Registry() = default;
Registry::~Registry() = default;

Registry::Entry& Registry::AddEntry(const std::string& name, const std::string& help, int kind,
                                    const std::vector<std::string>& label_names,
                                    const std::vector<double>& buckets) {
  if (!ValidMetricName(name)) Fail(absl::StrCat("invalid metric name \"", name, "\""));
  for (const std::string& label : label_names) {
    if (!ValidLabelName(label) || (kind == kHistogram && label == "le")) {
      Fail(absl::StrCat(name, ": invalid label name \"", label, "\""));
    }
  }
  for (size_t i = 0; i < buckets.size(); ++i) {
    if (!std::isfinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1])) {
      Fail(absl::StrCat(name, ": histogram buckets must be finite and strictly increasing"));
    }
  }
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(name);
  if (it != entries_.end()) {
    Entry& e = *it->second;
    if (e.kind != kind || e.label_names != label_names || e.buckets != buckets) {
      Fail(absl::StrCat(name, ": already registered as a ", KindName(e.kind), " with labels [",
                        absl::StrJoin(e.label_names, ","), "]"));
    }
    return e;
  }
  auto e = std::make_shared<Entry>();
  e->name = name;
  e->help = help;
  e->kind = kind;
  e->label_names = label_names;
  e->buckets = buckets;
  switch (kind) {
    case kCounter:
      e->counters = std::make_unique<Family<Counter>>(name, label_names,
                                                      [] { return std::make_unique<Counter>(); });
      if (label_names.empty()) e->counters->WithLabels({});
      break;
    case kGauge:
      e->gauges = std::make_unique<Family<Gauge>>(name, label_names,
                                                  [] { return std::make_unique<Gauge>(); });
      if (label_names.empty()) e->gauges->WithLabels({});
      break;
    case kHistogram:
      e->histograms = std::make_unique<Family<Histogram>>(
          name, label_names, [buckets] { return std::make_unique<Histogram>(buckets); });
      if (label_names.empty()) e->histograms->WithLabels({});
      break;
    default:
      break;
  }
  Entry& ref = *e;
  entries_.emplace(name, std::move(e));
  return ref;
}

Family<Counter>& Registry::AddCounter(const std::string& name, const std::string& help,
                                      const std::vector<std::string>& label_names) {
  return *AddEntry(name, help, kCounter, label_names, {}).counters;
}

Family<Gauge>& Registry::AddGauge(const std::string& name, const std::string& help,
                                  const std::vector<std::string>& label_names) {
  return *AddEntry(name, help, kGauge, label_names, {}).gauges;
}

Family<Histogram>& Registry::AddHistogram(const std::string& name, const std::string& help,
                                          const std::vector<std::string>& label_names,
                                          std::vector<double> buckets) {
  if (buckets.empty()) buckets = DefaultLatencyBuckets();
  return *AddEntry(name, help, kHistogram, label_names, buckets).histograms;
}

void Registry::AddCallbackGauge(const std::string& name, const std::string& help,
                                const std::vector<std::string>& label_names, SampleFunction fn) {
  Entry& e = AddEntry(name, help, kCallbackGauge, label_names, {});
  absl::MutexLock lock(&mu_);
  e.fn = std::move(fn);
}

void Registry::AddCallbackCounter(const std::string& name, const std::string& help,
                                  const std::vector<std::string>& label_names, SampleFunction fn) {
  Entry& e = AddEntry(name, help, kCallbackCounter, label_names, {});
  absl::MutexLock lock(&mu_);
  e.fn = std::move(fn);
}

void Registry::Remove(const std::string& name) {
  std::shared_ptr<Entry> removed;
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(name);
  if (it == entries_.end()) return;
  removed = std::move(it->second);
  entries_.erase(it);
}

std::string Registry::Render() const {
  std::vector<std::pair<std::shared_ptr<Entry>, SampleFunction>> entries;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, e] : entries_) entries.emplace_back(e, e->fn);
  }
  std::string out;
  for (const auto& [e, fn] : entries) {
    std::string body;
    const std::vector<std::string>& names = e->label_names;
    switch (e->kind) {
      case kCounter:
        e->counters->ForEach([&](const LabelValues& values, const Counter& c) {
          absl::StrAppend(&body, e->name, LabelSet(names, values), " ", FormatValue(c.Value()),
                          "\n");
        });
        break;
      case kGauge:
        e->gauges->ForEach([&](const LabelValues& values, const Gauge& g) {
          absl::StrAppend(&body, e->name, LabelSet(names, values), " ", FormatValue(g.Value()),
                          "\n");
        });
        break;
      case kHistogram:
        e->histograms->ForEach([&](const LabelValues& values, const Histogram& h) {
          Histogram::Snapshot s = h.Get();
          for (size_t i = 0; i <= s.bounds.size(); ++i) {
            std::string le = i < s.bounds.size() ? FormatValue(s.bounds[i]) : "+Inf";
            absl::StrAppend(&body, e->name, "_bucket", LabelSet(names, values, "le", le), " ",
                            s.cumulative[i], "\n");
          }
          absl::StrAppend(&body, e->name, "_sum", LabelSet(names, values), " ", FormatValue(s.sum),
                          "\n");
          absl::StrAppend(&body, e->name, "_count", LabelSet(names, values), " ", s.count, "\n");
        });
        break;
      case kCallbackGauge:
      case kCallbackCounter: {
        if (!fn) break;
        Samples samples = fn();
        // Same order as the other families, and one line per label set.
        std::map<LabelValues, double> sorted;
        for (auto& [values, value] : samples) {
          if (values.size() != names.size()) {
            // A comment keeps the scrape valid while making the bug visible in the output.
            absl::StrAppend(&body, "# warren: dropped a sample of ", e->name, " with ",
                            values.size(), " label values for ", names.size(), " labels\n");
            continue;
          }
          sorted[values] = value;
        }
        for (const auto& [values, value] : sorted) {
          absl::StrAppend(&body, e->name, LabelSet(names, values), " ", FormatValue(value), "\n");
        }
        break;
      }
    }
    if (body.empty()) continue;
    absl::StrAppend(&out, "# HELP ", e->name, " ", EscapeHelp(e->help), "\n", "# TYPE ", e->name,
                    " ", KindName(e->kind), "\n", body);
  }
  return out;
}

Registry& DefaultRegistry() {
  static Registry* registry = new Registry();
  return *registry;
}

HttpServer::Handler MetricsHandler(Registry& registry, std::function<bool()> ready) {
  return [&registry, ready = std::move(ready)](const HttpRequest& req) {
    if (req.method != "GET" && req.method != "HEAD") {
      HttpResponse r = HttpResponse::Text(405, "method not allowed\n");
      r.headers.emplace_back("Allow", "GET, HEAD");
      return r;
    }
    if (req.path == "/metrics") {
      HttpResponse r;
      r.content_type = kPrometheusContentType;
      r.body = registry.Render();
      return r;
    }
    if (req.path == "/healthz") return HttpResponse::Text(200, "ok");
    if (req.path == "/readyz") {
      if (!ready || ready()) return HttpResponse::Text(200, "ready");
      return HttpResponse::Text(503, "not ready");
    }
    return HttpResponse::Text(404, "not found\n");
  };
}

}  // namespace warren
