#ifndef WARREN_WORKER_OP_RUNNER_H_
#define WARREN_WORKER_OP_RUNNER_H_

#include <deque>
#include <functional>
#include <list>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace warren {

// Runs the worker's task operations (starts, stops) each on a thread of its own, at most
// `max_threads` at once; the rest wait in order and run on the next thread that frees up.
// A thread per operation kept every finished thread until shutdown: an assignment of
// thousands of tasks ran the process out of threads (issue 18's N = 10,000 benchmark).
// A thread that finishes waits `idle_timeout` for the next operation before it ends: making a
// thread per operation was the fake worker's largest cost while 10,000 services were created
// (clone, stack mapping and faults, 40 % of its CPU).
class OpRunner {
 public:
  explicit OpRunner(int max_threads = 64, absl::Duration idle_timeout = absl::Seconds(2))
      : max_threads_(max_threads), idle_timeout_(idle_timeout) {}
  ~OpRunner() { Join(); }
  OpRunner(const OpRunner&) = delete;
  OpRunner& operator=(const OpRunner&) = delete;

  void Run(std::function<void()> op);
  // Waits until every operation given so far has run, queued ones included, and ends every
  // thread (idle ones too).
  void Join();
  // Threads alive: running an operation or waiting for the next.
  int threads() const;
  // Threads waiting for an operation.
  int idle() const;

 private:
  struct Thread {
    std::thread thread;
    bool done = false;
  };
  void Loop(Thread* self, std::function<void()> op);
  // Joins the threads that ended.
  void ReapLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int max_threads_;
  const absl::Duration idle_timeout_;
  mutable absl::Mutex mu_;
  absl::CondVar work_;
  std::list<Thread> threads_ ABSL_GUARDED_BY(mu_);
  std::deque<std::function<void()>> queued_ ABSL_GUARDED_BY(mu_);
  int alive_ ABSL_GUARDED_BY(mu_) = 0;
  int idle_ ABSL_GUARDED_BY(mu_) = 0;
  bool joining_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace warren

#endif  // WARREN_WORKER_OP_RUNNER_H_
