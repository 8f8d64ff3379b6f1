// warren-pause: the process that holds a pod sandbox's namespaces open. It runs as PID 1 of
// the sandbox, so it must reap orphans that get re-parented to it, and it must exit promptly
// (status 0) when the runtime stops the sandbox. Linked statically so the image needs nothing
// but this one file.

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

// PID 1 of a pid namespace drops signals whose disposition is SIG_DFL, so every signal we wait
// for gets a handler, even though sigwaitinfo() takes them while they are blocked.
void Ignore(int) {}

void ReapChildren() {
  // WNOHANG: more than one child may have exited per SIGCHLD (signals do not queue).
  while (true) {
    pid_t pid = waitpid(-1, nullptr, WNOHANG);
    if (pid > 0) continue;
    if (pid < 0 && errno == EINTR) continue;
    return;  // 0: children remain but none exited; -1 ECHILD: no children.
  }
}

void Fail(const char* what) {
  const char* reason = strerror(errno);
  (void)!write(STDERR_FILENO, "warren-pause: ", 14);
  (void)!write(STDERR_FILENO, what, strlen(what));
  (void)!write(STDERR_FILENO, ": ", 2);
  (void)!write(STDERR_FILENO, reason, strlen(reason));
  (void)!write(STDERR_FILENO, "\n", 1);
  _exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && (strcmp(argv[1], "-v") == 0 || strcmp(argv[1], "--version") == 0)) {
    static const char kVersion[] = "warren-pause 1\n";
    (void)!write(STDOUT_FILENO, kVersion, sizeof(kVersion) - 1);
    return 0;
  }

  sigset_t waited;
  sigemptyset(&waited);
  sigaddset(&waited, SIGINT);
  sigaddset(&waited, SIGTERM);
  sigaddset(&waited, SIGCHLD);

  struct sigaction action = {};
  action.sa_handler = Ignore;
  sigemptyset(&action.sa_mask);
  const int handled[] = {SIGINT, SIGTERM, SIGCHLD};
  for (int sig : handled) {
    if (sigaction(sig, &action, nullptr) != 0) Fail("sigaction");
  }
  // Blocked before waiting so a signal arriving between waits stays pending instead of being
  // lost to the no-op handler.
  if (sigprocmask(SIG_BLOCK, &waited, nullptr) != 0) Fail("sigprocmask");

  // Children may have exited before SIGCHLD was blocked.
  ReapChildren();
  while (true) {
    siginfo_t info;
    int sig = sigwaitinfo(&waited, &info);
    if (sig < 0) {
      if (errno == EINTR) continue;
      Fail("sigwaitinfo");
    }
    if (sig == SIGCHLD) {
      ReapChildren();
      continue;
    }
    return 0;  // SIGINT or SIGTERM: the sandbox is being stopped.
  }
}
