#include "worker/op_runner.h"

#include <utility>

namespace warren {

void OpRunner::Run(std::function<void()> op) {
  absl::MutexLock lock(&mu_);
  // Finished threads are joined here, so they do not pile up until Join.
  for (auto it = threads_.begin(); it != threads_.end();) {
    if (!it->done) {
      ++it;
      continue;
    }
    it->thread.join();
    it = threads_.erase(it);
  }
  if (running_ >= max_threads_) {
    queued_.push_back(std::move(op));
    return;
  }
  ++running_;
  Thread& t = threads_.emplace_back();
  t.thread =
      std::thread([this, self = &t, op = std::move(op)]() mutable { Loop(self, std::move(op)); });
}

void OpRunner::Loop(Thread* self, std::function<void()> op) {
  for (;;) {
    op();
    absl::MutexLock lock(&mu_);
    if (queued_.empty()) {
      --running_;
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
      if (threads_.empty()) return;
      threads.swap(threads_);
    }
    // A thread runs the queued operations before it ends.
    for (Thread& t : threads) t.thread.join();
  }
}

int OpRunner::threads() const {
  absl::MutexLock lock(&mu_);
  return running_;
}

}  // namespace warren
