#ifndef WARREN_TESTS_UNIT_TEST_SUBPROCESS_H_
#define WARREN_TESTS_UNIT_TEST_SUBPROCESS_H_

// Runs a program for a test: explicit environment, stdout/stderr captured, bounded waits, and
// the whole process group killed if the test leaves it running.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace warren::test {

class Subprocess {
 public:
  // `env` is the child's whole environment (nothing is inherited, for hermetic tests).
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(
      const std::vector<std::string>& argv, const std::map<std::string, std::string>& env) {
    if (argv.empty()) return absl::InvalidArgumentError("Subprocess: empty argv");
    int out[2];
    int err[2];
    if (pipe2(out, O_CLOEXEC) != 0) return absl::InternalError(strerror(errno));
    if (pipe2(err, O_CLOEXEC) != 0) {
      close(out[0]);
      close(out[1]);
      return absl::InternalError(strerror(errno));
    }
    std::vector<std::string> env_strings;
    for (const auto& [k, v] : env) env_strings.push_back(absl::StrCat(k, "=", v));
    std::vector<char*> c_argv;
    for (const std::string& a : argv) c_argv.push_back(const_cast<char*>(a.c_str()));
    c_argv.push_back(nullptr);
    std::vector<char*> c_env;
    for (std::string& e : env_strings) c_env.push_back(e.data());
    c_env.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGINT);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(
        &attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
    pid_t pid = 0;
    int rc = posix_spawn(&pid, c_argv[0], &actions, &attr, c_argv.data(), c_env.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    close(out[1]);
    close(err[1]);
    if (rc != 0) {
      close(out[0]);
      close(err[0]);
      return absl::InternalError(absl::StrCat("spawn ", argv[0], ": ", strerror(rc)));
    }
    return std::unique_ptr<Subprocess>(new Subprocess(pid, out[0], err[0]));
  }

  ~Subprocess() {
    if (!exited_) {
      kill(-pid_, SIGKILL);
      int status;
      waitpid(pid_, &status, 0);
    }
    stdout_reader_.join();
    stderr_reader_.join();
  }

  int pid() const { return pid_; }
  void Signal(int sig) {
    if (!exited_) kill(pid_, sig);
  }

  std::string Stdout() const {
    absl::MutexLock lock(&mu_);
    return stdout_;
  }
  std::string Stderr() const {
    absl::MutexLock lock(&mu_);
    return stderr_;
  }

  // The first complete stdout line containing `text`. Fails when the deadline passes or the
  // program closes its stdout (exits) first.
  absl::StatusOr<std::string> WaitForStdoutLine(std::string_view text, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    std::string line;
    auto found = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      size_t start = 0;
      for (;;) {
        size_t end = stdout_.find('\n', start);
        if (end == std::string::npos) return false;
        std::string_view l(stdout_.data() + start, end - start);
        if (l.find(text) != std::string_view::npos) {
          line = std::string(l);
          return true;
        }
        start = end + 1;
      }
    };
    auto done = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return found() || stdout_closed_; };
    mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
    if (found()) return line;
    return absl::DeadlineExceededError(absl::StrCat(
        "no stdout line containing \"", std::string(text), "\"", stdout_closed_ ? " (exited)" : "",
        "; stdout: ", stdout_, "; stderr: ", stderr_));
  }

  // Exit code, or -N when killed by signal N (after which the captured output is complete).
  // DEADLINE_EXCEEDED while still running.
  absl::StatusOr<int> Wait(absl::Duration timeout) {
    absl::Time deadline = absl::Now() + timeout;
    for (;;) {
      if (exited_) return exit_code_;
      siginfo_t info{};
      // WNOWAIT leaves the child a zombie, so its process group id cannot be reused yet while
      // the rest of the group is killed.
      int r = waitid(P_PID, pid_, &info, WEXITED | WNOHANG | WNOWAIT);
      if (r == 0 && info.si_pid == pid_) {
        kill(-pid_, SIGKILL);
        int status = 0;
        waitpid(pid_, &status, 0);
        exited_ = true;
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
        // Then Stdout() and Stderr() hold everything the program wrote.
        absl::MutexLock lock(&mu_);
        auto closed = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
          return stdout_closed_ && stderr_closed_;
        };
        mu_.AwaitWithDeadline(absl::Condition(&closed), deadline);
        continue;
      }
      if (r < 0 && errno != EINTR) return absl::InternalError(strerror(errno));
      if (absl::Now() >= deadline) {
        return absl::DeadlineExceededError(absl::StrCat("pid ", pid_, " still running"));
      }
      absl::SleepFor(absl::Milliseconds(5));  // polling a child's exit, not timing a result
    }
  }

 private:
  Subprocess(pid_t pid, int out_fd, int err_fd) : pid_(pid) {
    stdout_reader_ = std::thread([this, out_fd] { Read(out_fd, &stdout_, &stdout_closed_); });
    stderr_reader_ = std::thread([this, err_fd] { Read(err_fd, &stderr_, &stderr_closed_); });
  }

  void Read(int fd, std::string* sink, bool* closed) {
    char buf[4096];
    for (;;) {
      ssize_t n = read(fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      absl::MutexLock lock(&mu_);
      if (n <= 0) {
        *closed = true;
        break;
      }
      sink->append(buf, static_cast<size_t>(n));
    }
    close(fd);
  }

  const pid_t pid_;
  bool exited_ = false;
  int exit_code_ = 0;
  mutable absl::Mutex mu_;
  std::string stdout_ ABSL_GUARDED_BY(mu_);
  std::string stderr_ ABSL_GUARDED_BY(mu_);
  bool stdout_closed_ ABSL_GUARDED_BY(mu_) = false;
  bool stderr_closed_ ABSL_GUARDED_BY(mu_) = false;
  std::thread stdout_reader_;
  std::thread stderr_reader_;
};

}  // namespace warren::test

#endif  // WARREN_TESTS_UNIT_TEST_SUBPROCESS_H_
