#ifndef WARREN_TESTS_E2E_LOAD_LOOP_H_
#define WARREN_TESTS_E2E_LOAD_LOOP_H_

// A bounded load loop on its own thread: one request after another (at most `max_requests`,
// for at most `max_time`) until Stop. A request fails when `request` returns an error text.

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <thread>

namespace warren::e2e {

class LoadLoop {
 public:
  // nullopt: the request succeeded; otherwise what it got instead.
  using Request = std::function<std::optional<std::string>()>;

  explicit LoadLoop(Request request, int max_requests = 5000,
                    std::chrono::seconds max_time = std::chrono::minutes(2))
      : thread_([this, request = std::move(request), max_requests, max_time] {
          const auto deadline = std::chrono::steady_clock::now() + max_time;
          while (!stop_ && sent_ < max_requests && std::chrono::steady_clock::now() < deadline) {
            ++sent_;
            if (std::optional<std::string> failure = request()) {
              ++failed_;
              last_failure_ = std::move(*failure);
            }
          }
        }) {}
  ~LoadLoop() { Stop(); }

  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int sent() const { return sent_; }
  int failed() const { return failed_; }
  // Only after Stop.
  const std::string& last_failure() const { return last_failure_; }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int> sent_{0}, failed_{0};
  std::string last_failure_;
  std::thread thread_;  // last: starts once the counters exist
};

}  // namespace warren::e2e

#endif  // WARREN_TESTS_E2E_LOAD_LOOP_H_
