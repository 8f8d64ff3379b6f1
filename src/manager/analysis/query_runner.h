#ifndef WARREN_MANAGER_ANALYSIS_QUERY_RUNNER_H_
#define WARREN_MANAGER_ANALYSIS_QUERY_RUNNER_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "manager/analysis/verdict.h"

namespace boost::asio {
class thread_pool;
}

namespace warren::analysis {

// Which analysis a query result belongs to: a result is only used for the deployment, the
// stage (a canary step, blue/green before or after the switch) and the query it was asked
// for, so a new step never reads the previous step's answer.
struct QueryKey {
  std::string deployment_id;
  std::string stage;
  std::string query;
  bool operator<(const QueryKey& o) const {
    return std::tie(deployment_id, stage, query) < std::tie(o.deployment_id, o.stage, o.query);
  }
};

struct QueryRunnerOptions {
  int threads = 2;
  // A result older than this is asked again (and reads as pending until the new answer).
  absl::Duration max_age = absl::Minutes(1);
  // Results kept at most (the oldest go first).
  size_t max_entries = 256;
};

// Runs analysis queries (Prometheus) on its own threads, so the control loop never waits on
// the network: Get() returns at once with the latest answer for the key, or pending after
// starting the query.
class QueryRunner {
 public:
  using Fetch = std::function<absl::StatusOr<double>(const std::string& query)>;

  QueryRunner(Fetch fetch, const Clock& clock, QueryRunnerOptions options = {});
  // Waits for the queries in flight (each bounded by the fetch's own timeout).
  ~QueryRunner();
  QueryRunner(const QueryRunner&) = delete;
  QueryRunner& operator=(const QueryRunner&) = delete;

  QueryOutcome Get(const QueryKey& key);

  // Queries started so far (tests, metrics).
  uint64_t started() const;

 private:
  struct Entry {
    bool done = false;
    uint64_t seq = 0;  // which ask an answer belongs to
    absl::Time asked_at;
    absl::Time answered_at;
    absl::StatusOr<double> result = 0.0;
  };
  void Start(const QueryKey& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Fetch fetch_;
  const Clock& clock_;
  const QueryRunnerOptions options_;
  mutable absl::Mutex mu_;
  std::map<QueryKey, Entry> entries_ ABSL_GUARDED_BY(mu_);
  uint64_t started_ ABSL_GUARDED_BY(mu_) = 0;
  // Last: its threads are joined before the members above go away.
  std::unique_ptr<boost::asio::thread_pool> pool_;
};

}  // namespace warren::analysis

#endif  // WARREN_MANAGER_ANALYSIS_QUERY_RUNNER_H_
