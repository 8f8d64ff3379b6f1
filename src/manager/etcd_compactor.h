#ifndef WARREN_MANAGER_ETCD_COMPACTOR_H_
#define WARREN_MANAGER_ETCD_COMPACTOR_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "http/metrics.h"
#include "store/etcd_store.h"

namespace warren {

// Compaction of etcd's history by the leading manager (Kubernetes' scheme): while it leads,
// every `interval` of the manager's clock it compacts etcd to the revision it saw one interval
// earlier, so at least one interval of history is always kept (a watch that falls behind by
// less than that resumes; one further behind relists). A manager that stops leading stops
// compacting and starts over when it leads again. Errors are logged and counted
// (`warren_etcd_compactions_total{result}`), never fatal: the next interval tries again.
class EtcdCompactor {
 public:
  // `leading` says whether this manager leads now. `registry` may be null (tests).
  EtcdCompactor(EtcdStore& store, const Clock& clock, absl::Duration interval,
                std::function<bool()> leading, Registry* registry);
  ~EtcdCompactor();
  EtcdCompactor(const EtcdCompactor&) = delete;
  EtcdCompactor& operator=(const EtcdCompactor&) = delete;

  // A thread that calls Tick about every second (of real time; the interval is measured on
  // the clock). Not started with a zero interval.
  void Start();
  void Stop();

  // One step: compacts when an interval has passed since the revision to compact to was seen.
  void Tick();

  // The revision etcd was last compacted to by this manager (0: never).
  uint64_t compacted() const;

 private:
  struct Mark {
    absl::Time at;
    uint64_t revision = 0;
  };

  EtcdStore& store_;
  const Clock& clock_;
  const absl::Duration interval_;
  const std::function<bool()> leading_;
  Counter* ok_ = nullptr;
  Counter* failed_ = nullptr;
  Counter* already_ = nullptr;

  mutable absl::Mutex mu_;
  // The revision seen one interval (or less) ago while leading; unset while not leading.
  std::optional<Mark> mark_ ABSL_GUARDED_BY(mu_);
  uint64_t compacted_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace warren

#endif  // WARREN_MANAGER_ETCD_COMPACTOR_H_
