#ifndef WARREN_WORKER_OP_RUNNER_H_
#define WARREN_WORKER_OP_RUNNER_H_

#include <deque>
#include <functional>
#include <list>
#include <thread>

#include "absl/synchronization/mutex.h"

namespace warren {

// Runs the worker's task operations (starts, stops) each on a thread of its own, at most
// `max_threads` at once; the rest wait in order and run on the next thread that frees up.
// A thread per operation kept every finished thread until shutdown: an assignment of
// thousands of tasks ran the process out of threads (issue 18's N = 10,000 benchmark).
class OpRunner {
 public:
  explicit OpRunner(int max_threads = 64) : max_threads_(max_threads) {}
  ~OpRunner() { Join(); }
  OpRunner(const OpRunner&) = delete;
  OpRunner& operator=(const OpRunner&) = delete;

  void Run(std::function<void()> op);
  // Waits until every operation given so far has run, queued ones included.
  void Join();
  int threads() const;

 private:
  struct Thread {
    std::thread thread;
    bool done = false;
  };
  void Loop(Thread* self, std::function<void()> op);

  const int max_threads_;
  mutable absl::Mutex mu_;
  std::list<Thread> threads_ ABSL_GUARDED_BY(mu_);
  std::deque<std::function<void()>> queued_ ABSL_GUARDED_BY(mu_);
  int running_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace warren

#endif  // WARREN_WORKER_OP_RUNNER_H_
