#ifndef WARREN_WORKER_CHILD_SETUP_H_
#define WARREN_WORKER_CHILD_SETUP_H_

// For a forked child about to exec a task (or warren-shim): async-signal-safe only. Shared by
// the process driver and warren-shim, which links nothing else of Warren.

#include <signal.h>

#include <cstring>

namespace warren {

// The parent may block or ignore signals (SIGPIPE, usually); what it execs starts clean.
inline void ResetSignalsForExec() {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction dfl;
  memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) sigaction(sig, &dfl, nullptr);
}

}  // namespace warren

#endif  // WARREN_WORKER_CHILD_SETUP_H_
