#ifndef WARREN_TESTS_E2E_NETNS_HOSTS_H_
#define WARREN_TESTS_E2E_NETNS_HOSTS_H_

// Hosts as network namespaces (issue 13): a multi-host cluster on one machine. Host i is a
// network namespace wn<id>h<i> with `lo` up and an `eth0` at 10.251.X.i/24, the peer of a veth
// pair whose other end wn<id>v<i> is a port of the bridge wn<id>br in the root namespace (the
// hosts' L2 "underlay"). The bridge holds 10.251.X.254, so the test process itself reaches
// every host's underlay address, and a manager in the root namespace listening there is
// reachable from every host. The hosts have no default route: nothing they send leaves the
// namespaces and the bridge.
//
// A process runs on host i under Prefix(i) (`ip netns exec wn<id>h<i> ...`, which execs, so a
// Process's pid is the command's own); a thread of the test runs code on host i with In(i),
// which joins the namespace with setns(2) (sockets belong to the namespace of the thread that
// creates them), so HttpGet and DNS queries work from "inside" a host without any tool.
//
// One run owns 10.251.X.0/24 through an flock on /run/lock/warren-e2e-netns-X.lock, held until
// Teardown (the kernel drops it when the process dies, SIGKILL included; the fd is close-on-exec
// so no worker or task inherits it). Two runs at once never share X; names whose id belongs to
// an X whose lock is free are leftovers of a crashed run and are removed (their processes
// killed first, and so is whatever in the root namespace still has a socket on their bridge:
// the crashed run's manager) before anything is made. The id is a random 5-digit number with
// id % 256 == X, so names differ from run to run and fit IFNAMSIZ (wn12345h1: 9 characters).

#include <arpa/inet.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "e2e_util.h"
#include "gtest/gtest.h"

namespace warren::e2e {

class NetnsHosts {
 public:
  static constexpr int kMaxHosts = 200;

  // Why hosts cannot be built on this machine ("" when they can): the caller skips the test
  // with the reason.
  static std::string Unavailable() {
    if (geteuid() != 0) return "needs root (network namespaces, veth pairs and a bridge)";
    if (IpBinary().empty()) return "needs iproute2's ip (/usr/sbin/ip or /sbin/ip)";
    if (auto r = Ip({"netns", "list"}); r.exit_code != 0) {
      return "`ip netns list` failed: " + r.err;
    }
    // With br_netfilter, bridged frames go through the root namespace's iptables FORWARD
    // chain; a DROP policy there (Docker sets one) would cut the hosts off from each other.
    if (ReadFile("/proc/sys/net/bridge/bridge-nf-call-iptables").starts_with("1")) {
      for (const char* iptables : {"/usr/sbin/iptables", "/sbin/iptables"}) {
        if (access(iptables, X_OK) != 0) continue;
        auto r = Run({iptables, "-S", "FORWARD"}, {}, std::chrono::seconds(10));
        if (r.exit_code == 0 && r.out.find("-P FORWARD DROP") != std::string::npos) {
          return "bridged traffic passes iptables FORWARD (bridge-nf-call-iptables=1), whose "
                 "policy is DROP here; the hosts could not reach each other";
        }
        break;
      }
    }
    return "";
  }

  // Builds hosts 1..n; nullptr with `error` set when that fails.
  static std::unique_ptr<NetnsHosts> Create(int n, std::string* error) {
    if (n < 1 || n > kMaxHosts) {
      *error = "NetnsHosts: 1.." + std::to_string(kMaxHosts) + " hosts";
      return nullptr;
    }
    RemoveLeftovers();
    std::unique_ptr<NetnsHosts> hosts(new NetnsHosts(n));
    if (!hosts->Claim(error) || !hosts->Build(error)) return nullptr;
    return hosts;
  }

  ~NetnsHosts() { Teardown(); }
  NetnsHosts(const NetnsHosts&) = delete;
  NetnsHosts& operator=(const NetnsHosts&) = delete;

  int size() const { return n_; }
  int id() const { return id_; }
  // Host i's namespace, e.g. wn12345h1 (i in 1..size()).
  std::string Name(int i) const { return Prefix() + "h" + std::to_string(i); }
  std::string Bridge() const { return Prefix() + "br"; }
  // The root-namespace end of host i's veth pair (its "cable").
  std::string Veth(int i) const { return Prefix() + "v" + std::to_string(i); }
  // 10.251.X.i, host i's address on the underlay (its eth0).
  std::string UnderlayIp(int i) const { return Net() + std::to_string(i); }
  // 10.251.X.254: the bridge, the root namespace's (the test's) address on the underlay.
  std::string GatewayIp() const { return Net() + "254"; }
  std::string UnderlayCidr() const { return Net() + "0/24"; }

  // Runs a command on host i: {ip, netns, exec, wn<id>h<i>} before its argv.
  std::vector<std::string> Prefix(int i) const { return {IpBinary(), "netns", "exec", Name(i)}; }

  CommandResult Exec(int i, std::vector<std::string> argv,
                     std::chrono::seconds timeout = std::chrono::seconds(20)) const {
    std::vector<std::string> full = Prefix(i);
    full.insert(full.end(), argv.begin(), argv.end());
    return Run(full, {}, timeout);
  }

  // Runs `f` on a thread of this process inside host i's network namespace and returns its
  // result (a default-constructed one, with a test failure, when the namespace cannot be
  // joined). `f` must not start threads that outlive it: they would stay in the namespace.
  template <typename F>
  std::invoke_result_t<F&> In(int i, F&& f) const {
    return InNetns("/run/netns/" + Name(i), std::forward<F>(f));
  }

  // The same for the network namespace file `path` (/run/netns/NAME, /proc/PID/ns/net).
  template <typename F>
  static std::invoke_result_t<F&> InNetns(const std::string& path, F&& f) {
    using R = std::invoke_result_t<F&>;
    std::optional<R> out;
    std::string error;
    std::thread thread([&] {
      const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
        error = "setns " + path + ": " + std::strerror(errno);
        if (fd >= 0) close(fd);
        return;
      }
      close(fd);
      out.emplace(f());
    });
    thread.join();
    if (!out) {
      ADD_FAILURE() << error;
      return R{};
    }
    return std::move(*out);
  }

  // Unplugs (or plugs back) host i's cable: its veth end on the bridge goes down, so its eth0
  // loses the carrier and nothing passes between the host and the others or the manager.
  bool SetCable(int i, bool up) const {
    auto r = Ip({"link", "set", Veth(i), up ? "up" : "down"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0;
  }

  // SIGKILLs every process in host i's namespace (a killed worker's tasks, for instance) and
  // waits (bounded) until none is left; returns how many it killed.
  int KillProcesses(int i) const { return KillNamespaceProcesses(Name(i)); }

  // Kills every process in the namespaces, deletes them, the veth pairs and the bridge, and
  // releases the subnet. Idempotent; also run by the destructor.
  void Teardown() {
    if (lock_fd_ < 0) return;
    RemoveNames(Prefix());
    close(lock_fd_);
    lock_fd_ = -1;
  }

  // Why host 1 cannot have a VXLAN device ("" when it can): the kernel may lack the module.
  std::string VxlanUnavailable() const {
    auto add = Exec(1, {IpBinary(), "link", "add", "wnprobe", "type", "vxlan", "id", "4242",
                        "dstport", "4789", "dev", "eth0"});
    if (add.exit_code != 0) return "no VXLAN device can be made: " + add.err;
    Exec(1, {IpBinary(), "link", "delete", "wnprobe"});
    return "";
  }

  // The path of iproute2's ip ("" when there is none); Run does no PATH lookup.
  static std::string IpBinary() {
    for (const char* path : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
      if (access(path, X_OK) == 0) return path;
    }
    return "";
  }

  // `ip ARGS` in the root namespace, bounded.
  static CommandResult Ip(std::vector<std::string> args) {
    args.insert(args.begin(), IpBinary());
    return Run(args, {}, std::chrono::seconds(20));
  }

 private:
  explicit NetnsHosts(int n) : n_(n) {}

  std::string Prefix() const { return "wn" + std::to_string(id_); }
  std::string Net() const { return "10.251." + std::to_string(x_) + "."; }

  static std::string LockPath(int x) {
    const char* dir = std::filesystem::is_directory("/run/lock") ? "/run/lock" : "/tmp";
    return std::string(dir) + "/warren-e2e-netns-" + std::to_string(x) + ".lock";
  }

  // The fd of an exclusive lock on subnet x, or -1 when another live run holds it.
  static int TryLock(int x) {
    const int fd = open(LockPath(x).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      close(fd);
      return -1;
    }
    return fd;
  }

  // The 5-digit id of one of our names (wn<id>h<i>, wn<id>v<i>, wn<id>br), or -1.
  static int IdOf(const std::string& name) {
    if (name.size() < 9 || name.compare(0, 2, "wn") != 0) return -1;
    for (int k = 2; k < 7; ++k) {
      if (!std::isdigit(static_cast<unsigned char>(name[k]))) return -1;
    }
    const std::string rest = name.substr(7);
    const bool numbered = (rest[0] == 'h' || rest[0] == 'v') && rest.size() > 1 &&
                          rest.find_first_not_of("0123456789", 1) == std::string::npos;
    if (rest != "br" && !numbered) return -1;
    return std::stoi(name.substr(2, 5));
  }

  // Namespaces (from /run/netns) and root-namespace links that are named like ours.
  static std::vector<std::string> OurNames() {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/run/netns", ec)) {
      const std::string name = entry.path().filename().string();
      if (IdOf(name) >= 0) out.push_back(name);
    }
    // "7: wn12345v1@if2: <BROADCAST,..." (the @ part names the peer).
    std::istringstream links(Ip({"-o", "link", "show"}).out);
    std::string line;
    while (std::getline(links, line)) {
      std::istringstream fields(line);
      std::string index, name;
      fields >> index >> name;
      name = name.substr(0, name.find_first_of("@:"));
      if (IdOf(name) >= 0) out.push_back(name);
    }
    return out;
  }

  static int KillNamespaceProcesses(const std::string& ns) {
    int killed = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      // A zombie has no namespace files left: it is not listed.
      auto r = Ip({"netns", "pids", ns});
      std::istringstream pids(r.out);
      int pid = 0, left = 0;
      while (pids >> pid) {
        if (pid <= 1 || pid == getpid()) continue;
        left++;
        killed += kill(pid, SIGKILL) == 0 ? 1 : 0;
      }
      if (r.exit_code != 0 || left == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return killed;
  }

  // SIGKILLs the processes of the root namespace (this one excepted) that have a TCP or UDP
  // socket on `ip`: the manager a crashed run left listening on its bridge. Returns how many.
  static int KillProcessesOn(const std::string& ip) {
    in_addr addr{};
    if (inet_pton(AF_INET, ip.c_str(), &addr) != 1) return 0;
    // /proc/net prints an address as its in-memory (network order) word read as a host integer.
    char hex[9];
    std::snprintf(hex, sizeof(hex), "%08X", addr.s_addr);
    std::set<std::string> sockets;
    for (const char* file : {"/proc/net/tcp", "/proc/net/udp"}) {
      std::istringstream lines(ReadFile(file));
      std::string line;
      std::getline(lines, line);  // the header
      while (std::getline(lines, line)) {
        // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
        std::istringstream fields(line);
        std::string field[10];
        for (auto& f : field) fields >> f;
        if (field[1].compare(0, 8, hex) == 0) sockets.insert("socket:[" + field[9] + "]");
      }
    }
    if (sockets.empty()) return 0;
    int killed = 0;
    std::error_code ec;
    for (const auto& proc : std::filesystem::directory_iterator("/proc", ec)) {
      const std::string pid_text = proc.path().filename().string();
      if (pid_text.find_first_not_of("0123456789") != std::string::npos) continue;
      const int pid = std::stoi(pid_text);
      if (pid == getpid()) continue;
      std::error_code fd_ec;
      for (const auto& fd : std::filesystem::directory_iterator(proc.path() / "fd", fd_ec)) {
        std::error_code link_ec;
        const auto target = std::filesystem::read_symlink(fd.path(), link_ec);
        if (!link_ec && sockets.contains(target.string())) {
          killed += kill(pid, SIGKILL) == 0 ? 1 : 0;
          break;
        }
      }
    }
    return killed;
  }

  // Deletes the namespaces (their processes killed first) and links whose names start with
  // `prefix` (wn<id>); kills what listens on the bridge's address first.
  static void RemoveNames(const std::string& prefix) {
    std::vector<std::string> links;
    for (const std::string& name : OurNames()) {
      if (name.compare(0, prefix.size(), prefix) != 0) continue;
      if (std::filesystem::exists("/run/netns/" + name)) {
        KillNamespaceProcesses(name);
        // Deleting a namespace deletes the veth end in it, and so the pair.
        Ip({"netns", "delete", name});
      } else {
        links.push_back(name);
      }
    }
    for (const std::string& link : links) {
      if (link.ends_with("br")) {
        // "9: wn12345br    inet 10.251.7.254/24 brd ..."
        std::istringstream words(Ip({"-4", "-o", "addr", "show", "dev", link}).out);
        std::string word;
        while (words >> word) {
          if (word == "inet" && words >> word) KillProcessesOn(word.substr(0, word.find('/')));
        }
      }
      Ip({"link", "delete", link});
    }
  }

  // Removes what crashed runs left: every id whose subnet lock nobody holds.
  static void RemoveLeftovers() {
    std::set<int> ids;
    for (const std::string& name : OurNames()) ids.insert(IdOf(name));
    for (const int id : ids) {
      const int fd = TryLock(id % 256);
      if (fd < 0) continue;  // a live run's
      RemoveNames("wn" + std::to_string(id));
      close(fd);
    }
  }

  // Whether anything on this machine (an address or a route of the root namespace) is in
  // 10.251.x.0/24 or covers it more narrowly than a /16.
  static bool SubnetInUse(int x) {
    const std::string net = "10.251." + std::to_string(x) + ".";
    const std::string text = Ip({"-4", "-o", "addr", "show"}).out + "\n" +
                             Ip({"-4", "route", "show", "table", "all"}).out;
    std::istringstream words(text);
    std::string word;
    while (words >> word) {
      if (word.starts_with(net) || word == "10.251.0.0/16") return true;
    }
    return false;
  }

  bool Claim(std::string* error) {
    std::random_device rd;
    const int first = static_cast<int>(rd() % 256);
    for (int k = 0; k < 256; ++k) {
      const int x = (first + k) % 256;
      const int fd = TryLock(x);
      if (fd < 0) continue;
      // Names of x of a crashed run that started after the sweep above looked: gone too.
      for (const std::string& name : OurNames()) {
        if (IdOf(name) % 256 == x) RemoveNames(name.substr(0, 7));
      }
      if (SubnetInUse(x)) {
        close(fd);
        continue;
      }
      x_ = x;
      lock_fd_ = fd;
      // 10000 <= x + 256 * m <= 99999.
      const int low = (10000 - x + 255) / 256, high = (99999 - x) / 256;
      id_ = x + 256 * (low + static_cast<int>(rd() % (high - low + 1)));
      return true;
    }
    *error = "no 10.251.X.0/24 is free (each is in use on this machine or by another run)";
    return false;
  }

  bool Build(std::string* error) {
    auto step = [&](const CommandResult& r, const std::string& what) {
      if (r.exit_code != 0) *error = what + ": " + r.err + r.out;
      return r.exit_code == 0;
    };
    if (!step(Ip({"link", "add", Bridge(), "type", "bridge"}), "bridge " + Bridge()) ||
        !step(Ip({"addr", "add", GatewayIp() + "/24", "dev", Bridge()}), "bridge address") ||
        !step(Ip({"link", "set", Bridge(), "up"}), "bridge up")) {
      return false;
    }
    for (int i = 1; i <= n_; ++i) {
      const std::string ns = Name(i);
      if (!step(Ip({"netns", "add", ns}), "netns " + ns) ||
          !step(Ip({"link", "add", Veth(i), "type", "veth", "peer", "name", "eth0", "netns", ns}),
                "veth of " + ns) ||
          !step(Ip({"link", "set", Veth(i), "master", Bridge(), "up"}), "bridge port " + ns) ||
          !step(Exec(i, {IpBinary(), "link", "set", "lo", "up"}), "lo of " + ns) ||
          !step(Exec(i, {IpBinary(), "addr", "add", UnderlayIp(i) + "/24", "dev", "eth0"}),
                "eth0 address of " + ns) ||
          !step(Exec(i, {IpBinary(), "link", "set", "eth0", "up"}), "eth0 of " + ns)) {
        return false;
      }
    }
    return true;
  }

  const int n_;
  int x_ = -1;
  int id_ = 0;
  int lock_fd_ = -1;
};

}  // namespace warren::e2e

#endif  // WARREN_TESTS_E2E_NETNS_HOSTS_H_
