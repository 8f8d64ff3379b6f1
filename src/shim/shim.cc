// warren-shim: the parent of one task of the process runtime (like containerd's shim).
//
//   warren-shim TASK_DIR LOG_MAX_SIZE LOG_MAX_FILES -- PATH ARGV0 [ARGS...]
//
// Started by the worker with the task's environment and fd 3 a socket to the worker. It
// forks the task (leader of its own session and process group, stdin /dev/null, stdout and
// stderr on a pipe), tells the worker {task pid, exec errno} over fd 3 and waits for one byte
// (or EOF) back, so the worker can record the task before it could be reaped. Then it
//  - drains the task's output into TASK_DIR/output.log, rotated by size (log_files.h), so a
//    task writing at full speed neither fills the disk nor waits for the worker;
//  - when the task exits, kills what is left of its process group (while the unreaped leader
//    holds the group id), reaps it and writes the wait status to TASK_DIR/exit (atomically),
//    so a worker that restarted meanwhile still learns the exit code.
// It outlives worker restarts: it is in a session of its own and needs nothing from the
// worker after the handshake. Linked statically; a few hundred KB of memory per task.

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "worker/child_setup.h"
#include "worker/log_files.h"

namespace {

constexpr int kReportFd = 3;

// Once the task runs, the shim's own messages go into the task's log like its output.
warren::RotatingLogWriter* g_log = nullptr;

void Fail(const char* what) {
  std::string line = std::string("warren-shim: ") + what + ": " + strerror(errno) + "\n";
  if (g_log != nullptr) {
    g_log->Write(line.data(), line.size());
  } else {
    (void)!write(STDERR_FILENO, line.data(), line.size());
  }
  _exit(1);
}

bool WriteAll(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// Writes `status` to <dir>/exit through a temporary file and a rename: readers see all or
// nothing.
void RecordExit(const std::string& dir, int status) {
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  char text[128];
  int len = snprintf(text, sizeof(text), "{\"wait_status\":%d,\"finished_at_unix_nanos\":%lld}\n",
                     status, static_cast<long long>(now.tv_sec) * 1000000000LL + now.tv_nsec);
  const std::string tmp = dir + "/exit.tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return;
  bool ok = WriteAll(fd, text, static_cast<size_t>(len));
  close(fd);
  if (ok) rename(tmp.c_str(), (dir + "/exit").c_str());
}

int64_t ParseSize(const char* s) {
  char* end = nullptr;
  long long v = strtoll(s, &end, 10);
  return end != s && *end == '\0' && v >= 0 ? v : -1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "--version") == 0) {
    static const char kVersion[] = "warren-shim 1\n";
    (void)!write(STDOUT_FILENO, kVersion, sizeof(kVersion) - 1);
    return 0;
  }
  if (argc < 7 || strcmp(argv[4], "--") != 0) {
    static const char kUsage[] =
        "usage: warren-shim TASK_DIR LOG_MAX_SIZE LOG_MAX_FILES -- PATH ARGV0 [ARGS...]\n"
        "(started by the warren worker)\n";
    (void)!write(STDERR_FILENO, kUsage, sizeof(kUsage) - 1);
    return 2;
  }
  const std::string dir = argv[1];
  warren::LogLimits limits;
  limits.max_size = ParseSize(argv[2]);
  limits.max_files = static_cast<int>(ParseSize(argv[3]));
  if (limits.max_size < 0 || limits.max_files < 1) {
    errno = EINVAL;
    Fail("log limits");
  }
  const char* path = argv[5];
  char** task_argv = argv + 6;

  // Not in the worker's process group or session: a terminal's signals and the worker's
  // fate are not ours. The worker signals the task's group, never the shim.
  setsid();
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGINT, SIG_IGN);

  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) Fail("pipe");
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull < 0) Fail("open /dev/null");

  pid_t pid = fork();
  if (pid < 0) Fail("fork");
  if (pid == 0) {
    warren::ResetSignalsForExec();
    setsid();
    dup2(devnull, 0);
    dup2(out[1], 1);
    dup2(out[1], 2);
    // Everything else is close-on-exec but the report socket, which the task must not hold.
    close(kReportFd);
    execv(path, task_argv);  // the environment is the task's already
    int e = errno;
    (void)!write(err[1], &e, sizeof(e));
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  int exec_errno = 0;
  ssize_t n;
  do {
    n = read(err[0], &exec_errno, sizeof(exec_errno));
  } while (n < 0 && errno == EINTR);
  close(err[0]);
  if (n != sizeof(exec_errno)) exec_errno = 0;

  int32_t report[2] = {static_cast<int32_t>(pid), exec_errno};
  WriteAll(kReportFd, report, sizeof(report));
  if (exec_errno != 0) {
    waitpid(pid, nullptr, 0);
    return 0;
  }
  // The worker records the task (pid and start time) before it may be reaped.
  char ack;
  while (read(kReportFd, &ack, 1) < 0 && errno == EINTR) {
  }
  close(kReportFd);

  warren::RotatingLogWriter log(dir + "/output.log", limits);
  log.Open();
  g_log = &log;
  // stdout and stderr were the log file as it was at the start: once rotated away, holding it
  // would keep its space on disk for the task's lifetime.
  dup2(devnull, STDOUT_FILENO);
  dup2(devnull, STDERR_FILENO);
  fcntl(out[0], F_SETFL, O_NONBLOCK);
  // A pidfd turns the task's exit into a poll event; without one (old kernels) the exit is
  // polled for every 100 ms.
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  static char buf[1 << 16];
  bool out_open = true;
  while (true) {
    pollfd fds[2] = {{out_open ? out[0] : -1, POLLIN, 0}, {pidfd, POLLIN, 0}};
    int r = poll(fds, pidfd >= 0 ? 2 : 1, pidfd >= 0 ? -1 : 100);
    if (r < 0 && errno != EINTR) Fail("poll");
    if (out_open && r > 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t got = read(out[0], buf, sizeof(buf));
      if (got > 0) log.Write(buf, static_cast<size_t>(got));
      if (got == 0) out_open = false;
    }
    // One cheap call per chunk: output that never stops must not hide the leader's exit.
    siginfo_t info;
    memset(&info, 0, sizeof(info));
    if (waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0 && errno != EINTR) {
      Fail("waitid");
    }
    if (info.si_pid != pid) continue;
    // The leader exited: what is left of its group dies with it, while the unreaped leader
    // keeps the group id from being reused.
    kill(-pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    // Whatever the task wrote before it died (a process that left the group could hold the
    // pipe open for ever: read what is there, then stop).
    while (out_open) {
      ssize_t got = read(out[0], buf, sizeof(buf));
      if (got > 0) {
        log.Write(buf, static_cast<size_t>(got));
      } else if (got < 0 && errno == EINTR) {
        continue;
      } else {
        break;
      }
    }
    RecordExit(dir, status);
    return 0;
  }
}
