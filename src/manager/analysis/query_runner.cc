#include "manager/analysis/query_runner.h"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

namespace warren::analysis {

QueryRunner::QueryRunner(Fetch fetch, const Clock& clock, QueryRunnerOptions options)
    : fetch_(std::move(fetch)),
      clock_(clock),
      options_(options),
      pool_(std::make_unique<boost::asio::thread_pool>(std::max(1, options.threads))) {}

QueryRunner::~QueryRunner() { pool_->join(); }

uint64_t QueryRunner::started() const {
  absl::MutexLock lock(&mu_);
  return started_;
}

void QueryRunner::Start(const QueryKey& key) {
  Entry& e = entries_[key];
  e = Entry();
  e.seq = ++started_;
  e.asked_at = clock_.Now();
  if (entries_.size() > options_.max_entries) {
    auto oldest = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->first < key || key < it->first) {
        if (oldest == entries_.end() || it->second.asked_at < oldest->second.asked_at) oldest = it;
      }
    }
    if (oldest != entries_.end()) entries_.erase(oldest);
  }
  boost::asio::post(*pool_, [this, key, seq = e.seq] {
    absl::StatusOr<double> result = fetch_(key.query);
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(key);
    // Dropped or asked again meanwhile: this answer belongs to nobody.
    if (it == entries_.end() || it->second.seq != seq || it->second.done) return;
    it->second.done = true;
    it->second.answered_at = clock_.Now();
    it->second.result = std::move(result);
  });
}

QueryOutcome QueryRunner::Get(const QueryKey& key) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(key);
  if (it == entries_.end() ||
      (it->second.done && clock_.Now() - it->second.answered_at > options_.max_age)) {
    Start(key);
    return QueryOutcome::Pending();
  }
  if (!it->second.done) return QueryOutcome::Pending();
  if (!it->second.result.ok()) {
    return QueryOutcome::Error(std::string(it->second.result.status().message()));
  }
  return QueryOutcome::Value(*it->second.result);
}

}  // namespace warren::analysis
