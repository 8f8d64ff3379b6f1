#include "manager/etcd_compactor.h"

#include <utility>

#include "absl/strings/match.h"
#include "spdlog/spdlog.h"

namespace warren {

EtcdCompactor::EtcdCompactor(EtcdStore& store, const Clock& clock, absl::Duration interval,
                             std::function<bool()> leading, Registry* registry)
    : store_(store), clock_(clock), interval_(interval), leading_(std::move(leading)) {
  if (registry != nullptr) {
    auto& family = registry->AddCounter(
        "warren_etcd_compactions_total",
        "Compactions of etcd's history by this manager while it leads, by result (ok, error, "
        "already_compacted: etcd's history was compacted past the revision by someone else).",
        {"result"});
    ok_ = &family.WithLabels({"ok"});
    failed_ = &family.WithLabels({"error"});
    already_ = &family.WithLabels({"already_compacted"});
  }
}

EtcdCompactor::~EtcdCompactor() { Stop(); }

void EtcdCompactor::Start() {
  if (interval_ <= absl::ZeroDuration() || thread_.joinable()) return;
  thread_ = std::thread([this] {
    while (true) {
      Tick();
      absl::MutexLock lock(&mu_);
      // Real time between looks at the clock: the interval itself is measured on the clock.
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Seconds(1))) return;
    }
  });
}

void EtcdCompactor::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

uint64_t EtcdCompactor::compacted() const {
  absl::MutexLock lock(&mu_);
  return compacted_;
}

void EtcdCompactor::Tick() {
  if (interval_ <= absl::ZeroDuration()) return;
  const bool leading = leading_();
  const absl::Time now = clock_.Now();
  uint64_t target = 0;
  {
    absl::MutexLock lock(&mu_);
    if (!leading) {
      // A deposed leader stops; when it leads again it waits a whole interval first.
      mark_.reset();
      return;
    }
    // Read after the leadership: the revision the leader has seen now.
    const Mark current{now, store_.Version()};
    if (!mark_) {
      mark_ = current;
      return;
    }
    if (now - mark_->at < interval_) return;
    target = mark_->revision;
    mark_ = current;
    // Nothing written since the last compaction (or before the store had a revision).
    if (target == 0 || target <= compacted_) return;
  }
  absl::Status s = store_.Compact(target);
  if (s.ok()) {
    {
      absl::MutexLock lock(&mu_);
      compacted_ = target;
    }
    if (ok_ != nullptr) ok_->Inc();
    spdlog::info("etcd: compacted the history before revision {}", target);
  } else if (absl::StrContains(s.message(), "required revision has been compacted")) {
    // etcd's own --auto-compaction (or another tool) went further: nothing to do.
    {
      absl::MutexLock lock(&mu_);
      compacted_ = target;
    }
    if (already_ != nullptr) already_->Inc();
    spdlog::info("etcd: the history before revision {} was compacted already: {}", target,
                 s.ToString());
  } else {
    if (failed_ != nullptr) failed_->Inc();
    spdlog::warn("etcd: compacting the history before revision {} failed (tried again in {}): {}",
                 target, absl::FormatDuration(interval_), s.ToString());
  }
}

}  // namespace warren
