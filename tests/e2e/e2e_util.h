#ifndef WARREN_TESTS_E2E_E2E_UTIL_H_
#define WARREN_TESTS_E2E_E2E_UTIL_H_

// Helpers for end-to-end tests that run the real `warren` and `warren-testapp` binaries.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../unit/test_util.h"
#include "common/processes.h"
#include "nlohmann/json.hpp"

namespace warren::e2e {

// Task processes of one test that outlive a killed worker on purpose are killed by marker.
using warren::KillProcessesWithEnv;
using warren::testing_util::FreePort;

inline bool WaitFor(const std::function<bool()>& cond,
                    std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return cond();
}

// Second octets X of the 127.X.y.z addresses that have a socket on this machine just now
// (another Warren cluster's tasks and proxies, a test server), from /proc/net. The kernel
// prints each address as its in-memory (network order) word read as a host integer.
inline std::set<int> LoopbackOctetsInUse() {
  std::set<int> out;
  for (const char* file : {"/proc/net/tcp", "/proc/net/udp", "/proc/net/tcp6", "/proc/net/udp6"}) {
    std::ifstream in(file);
    std::string line;
    std::getline(in, line);  // the header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local;
      fields >> slot >> local;
      std::string hex = local.substr(0, local.find(':'));
      if (hex.size() == 32) {  // IPv6: only IPv4-mapped addresses, ::ffff:a.b.c.d
        if (hex.compare(0, 24, "0000000000000000FFFF0000") != 0) continue;
        hex = hex.substr(24);
      }
      if (hex.size() != 8) continue;
      in_addr a{};
      a.s_addr = static_cast<uint32_t>(std::stoul(hex, nullptr, 16));
      const uint32_t host = ntohl(a.s_addr);
      if ((host >> 24) == 127) out.insert(static_cast<int>((host >> 16) & 0xff));
    }
  }
  return out;
}

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// In a forked child: stdout and stderr to `out_fd`/`err_fd`, stdin from /dev/null, `env` added,
// then exec `argv` (a path; no PATH lookup). Never returns.
[[noreturn]] inline void ExecChild(const std::vector<std::string>& argv,
                                   const std::map<std::string, std::string>& env, int out_fd,
                                   int err_fd) {
  dup2(out_fd, 1);
  dup2(err_fd, 2);
  int devnull = open("/dev/null", O_RDONLY);
  dup2(devnull, 0);
  for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  execv(args[0], args.data());
  _exit(127);
}

// Runs a command to completion (bounded by `timeout`; killed after it) and captures output.
inline CommandResult Run(const std::vector<std::string>& argv,
                         const std::map<std::string, std::string>& env = {},
                         std::chrono::seconds timeout = std::chrono::seconds(60)) {
  char out_path[] = "/tmp/warren-e2e-outXXXXXX";
  char err_path[] = "/tmp/warren-e2e-errXXXXXX";
  int out_fd = mkstemp(out_path);
  int err_fd = mkstemp(err_path);
  pid_t pid = fork();
  if (pid == 0) ExecChild(argv, env, out_fd, err_fd);
  CommandResult r;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (true) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  close(out_fd);
  close(err_fd);
  r.out = ReadFile(out_path);
  r.err = ReadFile(err_path);
  unlink(out_path);
  unlink(err_path);
  return r;
}

// A background process with its output in a log file.
class Process {
 public:
  Process(const std::vector<std::string>& argv, const std::string& log_path,
          const std::map<std::string, std::string>& env = {})
      : log_path_(log_path) {
    pid_ = fork();
    if (pid_ == 0) {
      setpgid(0, 0);
      int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ExecChild(argv, env, fd, fd);
    }
  }
  ~Process() { Kill(SIGKILL); }

  pid_t pid() const { return pid_; }
  bool Alive() {
    if (pid_ <= 0) return false;
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      exit_status_ = status;
      pid_ = -1;
      return false;
    }
    return true;
  }
  // Sends `sig` and waits (bounded) for the exit; returns the exit code or -1.
  int Kill(int sig, std::chrono::seconds timeout = std::chrono::seconds(30)) {
    if (pid_ <= 0) return exit_status_ ? WEXITSTATUS(*exit_status_) : -1;
    kill(pid_, sig);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        exit_status_ = status;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return -1;
  }
  std::string Log() const { return ReadFile(log_path_); }

 private:
  pid_t pid_ = -1;
  std::optional<int> exit_status_;
  std::string log_path_;
};

// Minimal HTTP/1.0 GET to an IPv4 address; returns the status code and body.
// `host`: the Host header (default: `ip`), for the ingress's virtual hosts.
inline std::optional<std::pair<int, std::string>> HttpGet(const std::string& ip, int port,
                                                          const std::string& path,
                                                          const std::string& host = "") {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, ip.c_str(), &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return std::nullopt;
  }
  std::string req = "GET " + path + " HTTP/1.0\r\nHost: " + (host.empty() ? ip : host) + "\r\n\r\n";
  send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string resp;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) resp.append(buf, n);
  close(fd);
  if (resp.rfind("HTTP/1.", 0) != 0 || resp.size() < 12) return std::nullopt;
  int status = std::atoi(resp.substr(9, 3).c_str());
  auto body_at = resp.find("\r\n\r\n");
  return std::make_pair(status, body_at == std::string::npos ? "" : resp.substr(body_at + 4));
}

// Protobuf JSON of a list: either a bare array or {"<key>": [...]}.
inline nlohmann::json JsonList(const std::string& text, const std::string& key) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_array()) return j;
  if (j.is_object() && j.contains(key)) return j[key];
  return nlohmann::json::array();
}

}  // namespace warren::e2e

#endif  // WARREN_TESTS_E2E_E2E_UTIL_H_
