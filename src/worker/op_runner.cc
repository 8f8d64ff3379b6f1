#include "worker/op_runner.h"

#include <utility>

namespace warren {

void OpRunner::ReapLocked() {
  for (auto it = threads_.begin(); it != threads_.end();) {
    if (!it->done) {
      ++it;
      continue;
    }
    it->thread.join();
    it = threads_.erase(it);
  }
}

void OpRunner::Run(std::function<void()> op) {
  absl::MutexLock lock(&mu_);
  // Finished threads are joined here, so they do not pile up until Join.
  ReapLocked();
  // An idle thread takes it; else a new thread while there is room; else it waits its turn.
  if (static_cast<int>(queued_.size()) < idle_ || alive_ >= max_threads_) {
    queued_.push_back(std::move(op));
    work_.Signal();
    return;
  }
  ++alive_;
  Thread& t = threads_.emplace_back();
  t.thread =
      std::thread([this, self = &t, op = std::move(op)]() mutable { Loop(self, std::move(op)); });
}

void OpRunner::Loop(Thread* self, std::function<void()> op) {
  for (;;) {
    op();
    op = nullptr;  // what it captured goes now, not when the next operation comes
    absl::MutexLock lock(&mu_);
    const absl::Time give_up = absl::Now() + idle_timeout_;
    ++idle_;
    while (queued_.empty() && !joining_ && !work_.WaitWithDeadline(&mu_, give_up)) {
    }
    --idle_;
    if (queued_.empty()) {
      --alive_;
      self->done = true;
      return;
    }
    op = std::move(queued_.front());
    queued_.pop_front();
  }
}

void OpRunner::Join() {
  for (;;) {
    std::list<Thread> threads;
    {
      absl::MutexLock lock(&mu_);
      if (threads_.empty()) {
        joining_ = false;
        return;
      }
      // Threads run what is queued, then end instead of waiting for more.
      joining_ = true;
      work_.SignalAll();
      threads.swap(threads_);
    }
    for (Thread& t : threads) t.thread.join();
  }
}

int OpRunner::threads() const {
  absl::MutexLock lock(&mu_);
  return alive_;
}

int OpRunner::idle() const {
  absl::MutexLock lock(&mu_);
  return idle_;
}

}  // namespace warren
