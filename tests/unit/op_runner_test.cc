// The worker's task operations run on a bounded set of threads (src/worker/op_runner.h).
#include "worker/op_runner.h"

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace warren {
namespace {

TEST(OpRunnerTest, ThousandsOfOperationsRunOnABoundedNumberOfThreads) {
  std::atomic<int> ran{0}, concurrent{0}, most{0};
  {
    OpRunner runner(8);
    for (int i = 0; i < 20000; ++i) {
      runner.Run([&] {
        const int now = ++concurrent;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        ++ran;
        --concurrent;
      });
      ASSERT_LE(runner.threads(), 8);
    }
    runner.Join();
    EXPECT_EQ(runner.threads(), 0);
  }
  EXPECT_EQ(ran.load(), 20000);
  EXPECT_LE(most.load(), 8);
}

TEST(OpRunnerTest, QueuedOperationsRunWhenAThreadFreesUp) {
  OpRunner runner(2);
  absl::Notification release;
  std::atomic<int> ran{0};
  for (int i = 0; i < 2; ++i) {
    runner.Run([&] {
      release.WaitForNotification();
      ++ran;
    });
  }
  runner.Run([&] { ++ran; });  // waits: both threads are busy
  EXPECT_EQ(runner.threads(), 2);
  EXPECT_EQ(ran.load(), 0);
  release.Notify();
  runner.Join();
  EXPECT_EQ(ran.load(), 3);
}

// Polls `f` for up to 30 s (the test's own bound, not a timing claim).
bool Eventually(const std::function<bool()>& f) {
  for (int i = 0; i < 3000; ++i) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return f();
}

TEST(OpRunnerTest, AFinishedThreadRunsTheNextOperation) {
  OpRunner runner(4, absl::Minutes(5));
  std::thread::id first, second;
  runner.Run([&] { first = std::this_thread::get_id(); });
  ASSERT_TRUE(Eventually([&] { return runner.idle() == 1; }));
  runner.Run([&] { second = std::this_thread::get_id(); });
  ASSERT_TRUE(Eventually([&] { return runner.idle() == 1; }));
  EXPECT_EQ(runner.threads(), 1);
  runner.Join();
  EXPECT_EQ(first, second);
  EXPECT_EQ(runner.threads(), 0);
}

TEST(OpRunnerTest, AnIdleThreadEndsAfterItsTimeout) {
  OpRunner runner(4, absl::Milliseconds(1));
  std::atomic<int> ran{0};
  runner.Run([&] { ++ran; });
  EXPECT_TRUE(Eventually([&] { return runner.threads() == 0; }));
  EXPECT_EQ(ran.load(), 1);
  // And a later operation gets a thread again.
  runner.Run([&] { ++ran; });
  runner.Join();
  EXPECT_EQ(ran.load(), 2);
}

}  // namespace
}  // namespace warren
