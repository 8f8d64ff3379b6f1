#ifndef WARREN_TESTS_E2E_SEPARATE_WORKERS_H_
#define WARREN_TESTS_E2E_SEPARATE_WORKERS_H_

#include <string>

#include "e2e_fixture.h"

namespace warren::e2e {

// The fixture of tests with workers in processes of their own beside the manager(s).
class SeparateWorkersTest : public E2eTest {
 protected:
  // Workers w1..wn of the managers at api_addr_ (one, or a comma list), joined with one token,
  // each with its proxy on a loopback address of its own (wi on 127.0.0.i: load sent to
  // 127.0.0.1 goes through w1), no DNS, stopping their tasks on exit.
  void StartSeparateWorkers(int n) {
    const std::string token = JoinToken();
    for (int i = 1; i <= n; ++i) {
      const std::string name = "w" + std::to_string(i);
      processes_.push_back(std::make_unique<Process>(
          std::vector<std::string>{WARREN_BINARY, "worker", "--manager", api_addr_, "--node-name",
                                   name, "--data-dir", (dir_ / name).string(), "--address-range",
                                   Range(i), "--publish-ip", "127.0.0." + std::to_string(i),
                                   "--dns-addr", "", "--stop-tasks-on-exit", "--token", token},
          (dir_ / (name + ".log")).string()));
    }
  }
};

}  // namespace warren::e2e

#endif  // WARREN_TESTS_E2E_SEPARATE_WORKERS_H_
