#ifndef WARREN_TESTS_UNIT_FD_EXHAUSTION_H_
#define WARREN_TESTS_UNIT_FD_EXHAUSTION_H_

// Running out of descriptors on purpose, in a child process so the test runner is unaffected.

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <vector>

namespace warren::testing_util {

// Runs `fn` in a forked child and returns its result (or -1): for tests that change
// process-wide state such as the descriptor limit.
inline int RunInChild(const std::function<int()>& fn) {
  pid_t pid = fork();
  if (pid == 0) _exit(fn());
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Uses up every descriptor of this process (below a lowered soft limit) until Release.
class FdExhaustion {
 public:
  FdExhaustion() { Exhaust(); }
  ~FdExhaustion() { Release(); }
  void Exhaust() {
    getrlimit(RLIMIT_NOFILE, &saved_);
    rlimit low = saved_;
    low.rlim_cur = std::min<rlim_t>(saved_.rlim_cur, 128);
    setrlimit(RLIMIT_NOFILE, &low);
    for (int fd; (fd = dup(0)) >= 0;) held_.push_back(fd);
  }
  void Release() {
    for (int fd : held_) close(fd);
    held_.clear();
    setrlimit(RLIMIT_NOFILE, &saved_);
  }

 private:
  rlimit saved_{};
  std::vector<int> held_;
};

}  // namespace warren::testing_util

#endif  // WARREN_TESTS_UNIT_FD_EXHAUSTION_H_
