#include "common/processes.h"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "absl/strings/numbers.h"

namespace warren {

void ForEachProcessEnvironment(const std::function<void(int pid, std::string_view environ)>& fn) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    int pid = 0;
    if (!absl::SimpleAtoi(entry.path().filename().string(), &pid) || pid <= 1 || pid == getpid()) {
      continue;
    }
    std::ifstream in(entry.path() / "environ", std::ios::binary);
    std::string env((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    fn(pid, env);
  }
}

int KillProcessesWithEnv(const std::string& marker) {
  int killed = 0;
  ForEachProcessEnvironment([&](int pid, std::string_view env) {
    if (env.find(marker) != std::string_view::npos && kill(pid, SIGKILL) == 0) killed++;
  });
  return killed;
}

}  // namespace warren
