// The worker's task operations run on a bounded set of threads (src/worker/op_runner.h).
#include "worker/op_runner.h"

#include <atomic>

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

}  // namespace
}  // namespace warren
