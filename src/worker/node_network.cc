#include "worker/node_network.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <set>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/processes.h"
#include "nlohmann/json.hpp"
#include "openssl/evp.h"
#include "spdlog/spdlog.h"

extern char** environ;

namespace warren {
namespace {

// An `ip` or `bridge` command that does not answer within this long is stuck.
constexpr absl::Duration kCommandTimeout = absl::Seconds(10);

class SystemCommandRunner final : public CommandRunner {
 public:
  absl::Status StartDaemon(const std::vector<std::string>& argv,
                           const std::vector<std::string>& env,
                           const std::string& log_path) override {
    ReapDaemons();
    const std::string shown = absl::StrJoin(argv, " ");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                     0600);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    // Nothing else of the worker's: it outlives the worker, and an inherited listener (metrics,
    // published ports, DNS; Asio's sockets are not close-on-exec) or connection would stay
    // open with it.
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    // Its own session (a Ctrl-C to the worker's process group does not reach it), no signal
    // blocked or ignored that the worker blocks or ignores.
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr,
                             POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    std::vector<std::string> environment;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string_view entry(*e);
      const std::string_view name = entry.substr(0, entry.find('='));
      const bool replaced = std::any_of(env.begin(), env.end(), [&](const std::string& v) {
        return v.size() > name.size() && v.compare(0, name.size(), name) == 0 &&
               v[name.size()] == '=';
      });
      if (!replaced) environment.emplace_back(entry);
    }
    environment.insert(environment.end(), env.begin(), env.end());
    std::vector<char*> envp;
    for (std::string& e : environment) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = 0;
    const int spawned = posix_spawnp(&pid, args[0], &actions, &attr, args.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (spawned != 0) return Failed(shown, "starting it", spawned);
    daemons_.push_back(pid);
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> Run(const std::vector<std::string>& argv) override {
    ReapDaemons();
    const std::string shown = absl::StrJoin(argv, " ");
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) != 0) return Failed(shown, "pipe", errno);
    if (pipe2(err, O_CLOEXEC) != 0) {
      const int e = errno;
      close(out[0]);
      close(out[1]);
      return Failed(shown, "pipe", e);
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err[1], 2);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = 0;
    const int spawned = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    close(err[1]);
    if (spawned != 0) {
      close(out[0]);
      close(err[0]);
      return Failed(shown, "starting it", spawned);
    }
    std::string stdout_text, stderr_text;
    const absl::Time deadline = absl::Now() + kCommandTimeout;
    bool timed_out = false;
    pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    int open_fds = 2;
    while (open_fds > 0) {
      const int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
      if (left <= 0) {
        timed_out = true;
        break;
      }
      const int n = poll(fds, 2, static_cast<int>(left));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        timed_out = true;  // cannot watch it: stop it rather than wait without a bound
        break;
      }
      for (int i = 0; i < 2; ++i) {
        if (fds[i].fd < 0 || fds[i].revents == 0) continue;
        char buf[4096];
        const ssize_t got = read(fds[i].fd, buf, sizeof(buf));
        if (got > 0) {
          (i == 0 ? stdout_text : stderr_text).append(buf, static_cast<size_t>(got));
        } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
          close(fds[i].fd);
          fds[i].fd = -1;
          --open_fds;
        }
      }
    }
    for (pollfd& f : fds) {
      if (f.fd >= 0) close(f.fd);
    }
    if (timed_out) kill(pid, SIGKILL);
    int status = 0;
    pid_t waited = 0;
    while ((waited = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
    }
    if (waited < 0) return Failed(shown, "waiting for it", errno);
    if (timed_out) {
      return absl::DeadlineExceededError(absl::StrCat("`", shown, "` did not finish within ",
                                                      absl::FormatDuration(kCommandTimeout)));
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return stdout_text;
    const std::string why(absl::StripAsciiWhitespace(stderr_text));
    const std::string how = WIFEXITED(status) ? absl::StrCat("exit status ", WEXITSTATUS(status))
                                              : absl::StrCat("signal ", WTERMSIG(status));
    return absl::FailedPreconditionError(
        absl::StrCat("`", shown, "` failed (", how, ")", why.empty() ? "" : ": ", why));
  }

 private:
  // Daemons this process started that ended (a wireguard-go that died) are reaped here, not
  // left as zombies; one that runs on is never waited for.
  void ReapDaemons() {
    std::erase_if(daemons_, [](pid_t pid) {
      int status = 0;
      return waitpid(pid, &status, WNOHANG) != 0;
    });
  }

  std::vector<pid_t> daemons_;

  static absl::Status Failed(const std::string& shown, const char* what, int err) {
    return absl::UnavailableError(absl::StrCat("`", shown, "`: ", what, ": ", ErrnoText(err)));
  }
};

// Parses an `ip -j` answer; an empty answer is an empty list.
nlohmann::json ParseJson(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_array()) return nlohmann::json::array();
  return j;
}

std::string Str(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

// `ip route show` prints a /24 as "10.99.3.0/24".
std::string RouteDst(const nlohmann::json& route) { return Str(route, "dst"); }

// `ip route show` prints a /32 without its prefix ("10.99.3.0").
bool IsRoute(const std::string& dst, const std::string& cidr) {
  return dst == cidr || absl::StrCat(dst, "/32") == cidr;
}

bool IsMissing(const absl::Status& s) {
  // `ip route del` of a route that is not there: "RTNETLINK answers: No such process".
  return absl::StrContains(s.message(), "No such process") ||
         absl::StrContains(s.message(), "No such file or directory") ||
         absl::StrContains(s.message(), "Cannot find device");
}

bool IsIpv4(const std::string& text) {
  in_addr a{};
  return inet_pton(AF_INET, text.c_str(), &a) == 1;
}

// "A.B.C.0/24": what a node subnet must look like before it reaches `ip` (a manager's word is
// not taken for it: "default" or 0.0.0.0/0 would replace the host's default route).
bool IsNodeSubnet(const std::string& subnet) {
  const std::vector<std::string> parts = absl::StrSplit(subnet, '/');
  return parts.size() == 2 && parts[1] == "24" && IsIpv4(parts[0]) &&
         absl::EndsWith(parts[0], ".0");
}

// A spawn that failed: the program is not there.
bool CouldNotStart(const absl::Status& s) { return absl::StrContains(s.message(), "starting it"); }

}  // namespace

std::unique_ptr<CommandRunner> MakeSystemCommandRunner() {
  return std::make_unique<SystemCommandRunner>();
}

absl::StatusOr<int> ClaimHostNetwork() {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("socket: ", ErrnoText(errno)));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  // Abstract (a leading NUL): one name per network namespace, no file left behind.
  constexpr char kName[] = "warren-routed-network";
  std::memcpy(addr.sun_path + 1, kName, sizeof(kName) - 1);
  const socklen_t len = offsetof(sockaddr_un, sun_path) + 1 + sizeof(kName) - 1;
  if (bind(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
    const int err = errno;
    close(fd);
    if (err == EADDRINUSE) {
      return absl::FailedPreconditionError(
          "another worker with a routed --network runs on this host (in this network "
          "namespace); its devices and routes are the host's, so one routed worker runs per "
          "host");
    }
    return absl::UnavailableError(absl::StrCat("claiming the host's network: ", ErrnoText(err)));
  }
  return fd;
}

std::string VxlanMacFor(const std::string& addr) {
  in_addr a{};
  if (inet_pton(AF_INET, addr.c_str(), &a) != 1) return "";
  const auto* b = reinterpret_cast<const unsigned char*>(&a.s_addr);
  return absl::StrFormat("02:57:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3]);
}

std::string NodeAddressOf(const std::string& subnet) {
  std::vector<std::string> parts = absl::StrSplit(subnet, '/');
  return parts.empty() ? "" : parts[0];
}

bool IsWireguardKey(const std::string& text) {
  std::string raw;
  // Canonical base64 only (`wg` refuses a key whose last character carries stray bits).
  return text.size() == 44 && absl::Base64Unescape(text, &raw) && raw.size() == 32 &&
         absl::Base64Escape(raw) == text;
}

absl::StatusOr<std::string> LoadOrCreateWireguardKey(const std::string& path) {
  std::string raw;
  absl::StatusOr<std::string> stored = ReadWholeFile(path, 4096);
  if (stored.ok()) {
    struct stat st {};
    if (stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
      spdlog::warn("network: {} was readable by others (mode {:o}); making it 0600", path,
                   st.st_mode & 0777);
      if (chmod(path.c_str(), 0600) != 0) {
        return absl::PermissionDeniedError(
            absl::StrCat("chmod 0600 ", path, ": ", ErrnoText(errno)));
      }
    }
    const std::string text(absl::StripAsciiWhitespace(*stored));
    if (!IsWireguardKey(text) || !absl::Base64Unescape(text, &raw)) {
      return absl::FailedPreconditionError(
          absl::StrCat(path,
                       " is not a WireGuard private key (base64 of 32 bytes, as `wg genkey` "
                       "writes it); remove it to have a new key made"));
    }
  } else if (absl::IsNotFound(stored.status())) {
    EVP_PKEY* made = nullptr;
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_X25519, nullptr);
    const bool generated =
        ctx != nullptr && EVP_PKEY_keygen_init(ctx) == 1 && EVP_PKEY_keygen(ctx, &made) == 1;
    EVP_PKEY_CTX_free(ctx);
    raw.resize(32);
    size_t len = raw.size();
    const bool got =
        generated &&
        EVP_PKEY_get_raw_private_key(made, reinterpret_cast<unsigned char*>(raw.data()), &len) == 1;
    EVP_PKEY_free(made);
    if (!got || len != 32) return absl::InternalError("making a WireGuard key (X25519) failed");
    // Written aside and renamed: a worker killed meanwhile leaves no half key.
    const std::string tmp = path + ".tmp";
    unlink(tmp.c_str());  // a leftover of a worker killed here, with whatever mode it had
    const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return absl::UnavailableError(absl::StrCat(tmp, ": ", ErrnoText(errno)));
    const std::string text = absl::StrCat(absl::Base64Escape(raw), "\n");
    // On disk before the rename: after a power loss the key is there whole or not at all.
    const bool written =
        write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && fsync(fd) == 0;
    const int err = errno;
    close(fd);
    if (!written || rename(tmp.c_str(), path.c_str()) != 0) {
      unlink(tmp.c_str());
      return absl::UnavailableError(absl::StrCat(path, ": ", ErrnoText(written ? errno : err)));
    }
    spdlog::info("network: made this node's WireGuard key ({})", path);
  } else {
    return stored.status();
  }
  EVP_PKEY* key = EVP_PKEY_new_raw_private_key(
      EVP_PKEY_X25519, nullptr, reinterpret_cast<const unsigned char*>(raw.data()), raw.size());
  std::string pub(32, '\0');
  size_t len = pub.size();
  const bool derived =
      key != nullptr &&
      EVP_PKEY_get_raw_public_key(key, reinterpret_cast<unsigned char*>(pub.data()), &len) == 1;
  EVP_PKEY_free(key);
  if (!derived || len != 32) return absl::InternalError("deriving the WireGuard public key failed");
  return absl::Base64Escape(pub);
}

absl::Status NodeNetwork::Prepare() {
  in_addr a{};
  if (inet_pton(AF_INET, advertise_addr_.c_str(), &a) != 1 || (ntohl(a.s_addr) >> 24) == 127) {
    return absl::InvalidArgumentError(absl::StrCat("--network ", NodeNetworkModeName(mode_),
                                                   " needs an IPv4 --advertise-addr that the other "
                                                   "nodes reach (got \"",
                                                   advertise_addr_, "\")"));
  }
  const auto link = [&](const char* dev) {
    return run_.Run({"ip", "-d", "-j", "link", "show", "dev", dev});
  };
  absl::StatusOr<std::string> local = link(kLocalDevice);
  if (!local.ok() && CouldNotStart(local.status())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--network ", NodeNetworkModeName(mode_),
        " needs iproute2 (the `ip` and `bridge` commands): ", local.status().message()));
  }
  if (!local.ok()) {
    // A bridge with no ports: a device that is always there and holds nothing but the route
    // (this kernel may lack the dummy type).
    absl::StatusOr<std::string> made =
        run_.Run({"ip", "link", "add", kLocalDevice, "type", "bridge"});
    if (!made.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("--network ", NodeNetworkModeName(mode_),
                       " needs root (CAP_NET_ADMIN) to create the device ", kLocalDevice, ": ",
                       made.status().message()));
    }
  }
  if (auto up = run_.Run({"ip", "link", "set", kLocalDevice, "up"}); !up.ok()) return up.status();
  if (mode_ == NodeNetworkMode::kVxlan) return PrepareVxlan();
  if (mode_ == NodeNetworkMode::kWireguard) return PrepareWireguard();
  return absl::OkStatus();
}

const char* NodeNetwork::OverlayDevice() const {
  switch (mode_) {
    case NodeNetworkMode::kVxlan:
      return kVxlanDevice;
    case NodeNetworkMode::kWireguard:
      return kWireguardDevice;
    default:
      return "";
  }
}

absl::Status NodeNetwork::FindUnderlay(std::string* dev, int* mtu) {
  // The tunnel runs over the device that holds the advertise address. An address of no device
  // here (a NAT's public address) cannot be the tunnel's end.
  absl::StatusOr<std::string> addrs = run_.Run({"ip", "-j", "-4", "addr", "show"});
  if (!addrs.ok()) return addrs.status();
  for (const nlohmann::json& l : ParseJson(*addrs)) {
    for (const nlohmann::json& ai : l.value("addr_info", nlohmann::json::array())) {
      if (Str(ai, "local") != advertise_addr_) continue;
      *dev = Str(l, "ifname");
      *mtu = l.value("mtu", 1500);
    }
  }
  if (!dev->empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "--network ", NodeNetworkModeName(mode_), ": --advertise-addr ", advertise_addr_,
      " is not an address of this host (`ip -4 addr` lists no device with it); give the "
      "address of this host's interface that the other nodes reach"));
}

absl::Status NodeNetwork::PrepareVxlan() {
  const std::string mac = VxlanMacFor(advertise_addr_);
  absl::StatusOr<std::string> shown =
      run_.Run({"ip", "-d", "-j", "link", "show", "dev", kVxlanDevice});
  bool keep = false;
  if (shown.ok()) {
    nlohmann::json links = ParseJson(*shown);
    if (!links.empty()) {
      const nlohmann::json& l = links[0];
      const nlohmann::json info = l.value("linkinfo", nlohmann::json::object());
      const nlohmann::json data = info.value("info_data", nlohmann::json::object());
      keep = Str(info, "info_kind") == "vxlan" && data.value("id", -1) == kVxlanId &&
             Str(data, "local") == advertise_addr_ && data.value("port", -1) == kVxlanPort &&
             Str(l, "address") == mac;
    }
    if (!keep) {
      spdlog::info("network: {} does not match this node (advertise address {}); making it anew",
                   kVxlanDevice, advertise_addr_);
      if (auto del = run_.Run({"ip", "link", "del", kVxlanDevice}); !del.ok()) return del.status();
    }
  }
  if (!keep) {
    // The kernel sizes the MTU for the 50 bytes of encapsulation from the underlay device.
    std::string dev;
    int mtu = 0;
    if (absl::Status s = FindUnderlay(&dev, &mtu); !s.ok()) return s;
    const std::vector<std::string> add = {
        "ip",         "link",          "add",     kVxlanDevice,
        "type",       "vxlan",         "id",      absl::StrCat(kVxlanId),
        "local",      advertise_addr_, "dstport", absl::StrCat(kVxlanPort),
        "nolearning", "dev",           dev};
    if (auto made = run_.Run(add); !made.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("--network vxlan: creating ", kVxlanDevice, ": ", made.status().message()));
    }
    // No IPv6 link-local address: its neighbour discovery has nowhere to go on a non-learning
    // overlay (the kernel counted each such packet as dropped).
    if (auto set =
            run_.Run({"ip", "link", "set", kVxlanDevice, "address", mac, "addrgenmode", "none"});
        !set.ok()) {
      return set.status();
    }
  }
  if (auto up = run_.Run({"ip", "link", "set", kVxlanDevice, "up"}); !up.ok()) return up.status();
  return absl::OkStatus();
}

absl::Status NodeNetwork::PrepareWireguard() {
  if (data_dir_.empty()) {
    return absl::FailedPreconditionError("--network wireguard needs a data dir for its key");
  }
  const std::string key_path = absl::StrCat(data_dir_, "/", kWireguardKeyFile);
  absl::StatusOr<std::string> pub = LoadOrCreateWireguardKey(key_path);
  if (!pub.ok()) return pub.status();
  if (!public_key_.empty() && *pub != public_key_) {
    // The peers encrypt to the key this node registered; a new one reaches them only with a
    // registration.
    return absl::FailedPreconditionError(
        absl::StrCat(key_path,
                     " holds another key than the one this node registered with; start the worker "
                     "again to register it"));
  }
  public_key_ = *pub;
  std::string dev;
  int mtu = 0;
  if (absl::Status s = FindUnderlay(&dev, &mtu); !s.ok()) return s;

  std::string kind;
  if (auto shown = run_.Run({"ip", "-d", "-j", "link", "show", "dev", kWireguardDevice});
      shown.ok()) {
    nlohmann::json links = ParseJson(*shown);
    if (!links.empty()) {
      kind = Str(links[0].value("linkinfo", nlohmann::json::object()), "info_kind");
      if (kind != "wireguard" && kind != "tun") {
        spdlog::info("network: {} is a {} device, not WireGuard; making it anew", kWireguardDevice,
                     kind);
        if (auto del = run_.Run({"ip", "link", "del", kWireguardDevice}); !del.ok()) {
          return del.status();
        }
        kind.clear();
      }
    }
  }
  if (kind.empty()) {
    absl::StatusOr<std::string> made =
        run_.Run({"ip", "link", "add", kWireguardDevice, "type", "wireguard"});
    if (made.ok()) {
      kind = "wireguard";
    } else if (absl::StrContains(made.status().message(), "Unknown device type") ||
               absl::StrContains(made.status().message(), "not supported")) {
      // No WireGuard in this kernel: wireguard-go on a TUN device that outlives it, so the
      // node's address and routes stay when it is started again.
      spdlog::info("network: this kernel has no WireGuard; using wireguard-go");
      if (auto tun = run_.Run({"ip", "tuntap", "add", "dev", kWireguardDevice, "mode", "tun"});
          !tun.ok()) {
        return absl::FailedPreconditionError(
            absl::StrCat("--network wireguard: creating the TUN device ", kWireguardDevice,
                         " (needs root and /dev/net/tun): ", tun.status().message()));
      }
      kind = "tun";
    } else {
      return absl::FailedPreconditionError(
          absl::StrCat("--network wireguard needs root (CAP_NET_ADMIN) to create the device ",
                       kWireguardDevice, ": ", made.status().message()));
    }
    // No IPv6 link-local address: no peer would take its packets.
    if (auto set = run_.Run({"ip", "link", "set", kWireguardDevice, "addrgenmode", "none"});
        !set.ok()) {
      return set.status();
    }
  }
  wireguard_go_ = kind == "tun";
  if (kind == "tun" && !WireguardPeers().ok()) {
    if (absl::Status s = StartWireguardGo(); !s.ok()) return s;
  }
  // The same key again leaves the tunnels' sessions alone (an adopted device).
  if (auto set = run_.Run({"wg", "set", kWireguardDevice, "private-key", key_path, "listen-port",
                           absl::StrCat(kWireguardPort)});
      !set.ok()) {
    if (CouldNotStart(set.status())) {
      return absl::FailedPreconditionError(
          absl::StrCat("--network wireguard needs wireguard-tools (the `wg` command): ",
                       set.status().message()));
    }
    return set.status();
  }
  if (auto up = run_.Run({"ip", "link", "set", kWireguardDevice, "mtu",
                          absl::StrCat(mtu - kWireguardOverhead), "up"});
      !up.ok()) {
    return up.status();
  }
  return absl::OkStatus();
}

bool NodeNetwork::WireguardGoGone() const {
  if (!wireguard_go_) return false;
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;  // cannot tell: the periodic check will
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, kWireguardGoSocket, sizeof(addr.sun_path) - 1);
  const bool answers = connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return !answers;
}

absl::Status NodeNetwork::StartWireguardGo() {
  const std::string log = absl::StrCat(data_dir_, "/", kWireguardLogFile);
  // In the foreground of a session of its own: it stays when the worker stops (the tunnels of
  // the adopted tasks go on) and the next worker finds it through `wg`.
  absl::Status started = run_.StartDaemon({"wireguard-go", "-f", kWireguardDevice},
                                          {"WG_PROCESS_FOREGROUND=1", "LOG_LEVEL=error"}, log);
  if (!started.ok()) {
    if (CouldNotStart(started)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--network wireguard: this kernel has no WireGuard and wireguard-go is not installed "
          "(apt-get install wireguard-go): ",
          started.message()));
    }
    return started;
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  absl::StatusOr<std::set<std::string>> up = WireguardPeers();
  while (!up.ok() && absl::Now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    up = WireguardPeers();
  }
  if (!up.ok()) {
    return absl::UnavailableError(absl::StrCat("wireguard-go did not answer on ", kWireguardDevice,
                                               " within 5 s (its log: ", log,
                                               "): ", up.status().message()));
  }
  spdlog::info("network: wireguard-go runs {} (log {})", kWireguardDevice, log);
  return absl::OkStatus();
}

absl::StatusOr<std::set<std::string>> NodeNetwork::WireguardPeers() {
  absl::StatusOr<std::string> dump = run_.Run({"wg", "show", kWireguardDevice, "dump"});
  if (!dump.ok()) return dump.status();
  // Line 1 is the device (private key, public key, port, fwmark); then one line per peer,
  // its public key first.
  std::set<std::string> keys;
  bool first = true;
  for (absl::string_view line : absl::StrSplit(*dump, '\n', absl::SkipEmpty())) {
    if (first) {
      first = false;
      continue;
    }
    std::vector<absl::string_view> fields = absl::StrSplit(line, '\t');
    if (!fields.empty() && !fields[0].empty()) keys.insert(std::string(fields[0]));
  }
  return keys;
}

absl::Status NodeNetwork::SetSubnet(const std::string& subnet) {
  if (!IsNodeSubnet(subnet)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the node's subnet \"", subnet, "\" is not an IPv4 /24 (A.B.C.0/24)"));
  }
  const std::string proto = absl::StrCat(kRouteProtocol);
  const std::string wanted = LocalRouteOf(subnet);
  // A subnet of an earlier registration (the node was removed and joined anew), or the whole
  // subnet of a worker that ran the process runtime before. One routed worker runs per network
  // namespace (Claim), so no other node's route is here.
  if (auto local = run_.Run({"ip", "-j", "-4", "route", "show", "table", "local", "proto", proto});
      local.ok()) {
    for (const nlohmann::json& r : ParseJson(*local)) {
      const std::string dst = RouteDst(r);
      if (dst.empty() || IsRoute(dst, wanted)) continue;
      spdlog::info("network: removing the local route of {} (an earlier subnet of this node)", dst);
      if (auto del =
              run_.Run({"ip", "route", "del", "local", dst, "table", "local", "proto", proto});
          !del.ok() && !IsMissing(del.status())) {
        return del.status();
      }
    }
  }
  if (!wanted.empty()) {
    if (auto r = run_.Run({"ip", "route", "replace", "local", wanted, "dev", kLocalDevice, "table",
                           "local", "proto", proto});
        !r.ok()) {
      return r.status();
    }
  }
  if (const std::string overlay = OverlayDevice(); !overlay.empty()) {
    // The tunnel's end: packets this host sends into the overlay leave from it, so the answers
    // come back through the overlay (and WireGuard's peers accept them: the source is in this
    // node's subnet). The new address goes on before another comes off: a device left without
    // an address loses every route and neighbour through it.
    const std::string mine = NodeAddressOf(subnet);
    if (auto r = run_.Run({"ip", "addr", "replace", absl::StrCat(mine, "/32"), "dev", overlay});
        !r.ok()) {
      return r.status();
    }
    absl::StatusOr<std::string> held = run_.Run({"ip", "-j", "-4", "addr", "show", "dev", overlay});
    if (!held.ok()) return held.status();
    for (const nlohmann::json& l : ParseJson(*held)) {
      for (const nlohmann::json& ai : l.value("addr_info", nlohmann::json::array())) {
        const std::string other = Str(ai, "local");
        if (other.empty() || other == mine) continue;
        const std::string with_prefix = absl::StrCat(other, "/", ai.value("prefixlen", 32));
        if (auto del = run_.Run({"ip", "addr", "del", with_prefix, "dev", overlay});
            !del.ok() && !IsMissing(del.status())) {
          return del.status();
        }
      }
    }
  }
  subnet_ = subnet;
  return absl::OkStatus();
}

std::string NodeNetwork::AllowedIps(const std::string& key, const std::string& plus,
                                    const std::string& minus) const {
  // A node that joined anew from the same data dir (the old one not yet gone) has the same key:
  // the one peer then carries both subnets.
  std::set<std::string> subnets;
  for (const auto& [subnet, p] : routed_) {
    if (p.wireguard_public_key() == key) subnets.insert(subnet);
  }
  if (!plus.empty()) subnets.insert(plus);
  subnets.erase(minus);
  return absl::StrJoin(subnets, ",");
}

absl::Status NodeNetwork::Route(const v1::NodePeer& peer) {
  const std::string proto = absl::StrCat(kRouteProtocol);
  if (mode_ == NodeNetworkMode::kWireguard) {
    const std::string& key = peer.wireguard_public_key();
    if (auto r = run_.Run({"wg", "set", kWireguardDevice, "peer", key, "endpoint",
                           absl::StrCat(peer.advertise_addr(), ":", kWireguardPort), "allowed-ips",
                           AllowedIps(key, peer.subnet(), "")});
        !r.ok()) {
      return r.status();
    }
    return run_
        .Run({"ip", "route", "replace", peer.subnet(), "dev", kWireguardDevice, "proto", proto})
        .status();
  }
  if (mode_ == NodeNetworkMode::kHostGw) {
    return run_
        .Run(
            {"ip", "route", "replace", peer.subnet(), "via", peer.advertise_addr(), "proto", proto})
        .status();
  }
  const std::string gw = NodeAddressOf(peer.subnet());
  const std::string mac = VxlanMacFor(peer.advertise_addr());
  if (mac.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("node ", peer.name(), "'s advertise address ",
                                                   peer.advertise_addr(), " is not IPv4"));
  }
  if (auto r = run_.Run(
          {"ip", "neigh", "replace", gw, "lladdr", mac, "dev", kVxlanDevice, "nud", "permanent"});
      !r.ok()) {
    return r.status();
  }
  if (auto r = run_.Run({"bridge", "fdb", "replace", mac, "dev", kVxlanDevice, "dst",
                         peer.advertise_addr(), "self", "permanent"});
      !r.ok()) {
    return r.status();
  }
  return run_
      .Run({"ip", "route", "replace", peer.subnet(), "via", gw, "dev", kVxlanDevice, "onlink",
            "proto", proto})
      .status();
}

absl::Status NodeNetwork::Unroute(const std::string& subnet, const v1::NodePeer* known) {
  auto ok = [](const absl::StatusOr<std::string>& r) { return r.ok() || IsMissing(r.status()); };
  auto del = run_.Run({"ip", "route", "del", subnet, "proto", absl::StrCat(kRouteProtocol)});
  if (!ok(del)) return del.status();
  if (mode_ == NodeNetworkMode::kWireguard && known != nullptr) {
    const std::string& key = known->wireguard_public_key();
    const std::string rest = AllowedIps(key, "", subnet);
    auto w = rest.empty()
                 ? run_.Run({"wg", "set", kWireguardDevice, "peer", key, "remove"})
                 : run_.Run({"wg", "set", kWireguardDevice, "peer", key, "allowed-ips", rest});
    if (!ok(w)) return w.status();
  }
  if (mode_ == NodeNetworkMode::kVxlan) {
    auto n = run_.Run({"ip", "neigh", "del", NodeAddressOf(subnet), "dev", kVxlanDevice});
    if (!ok(n)) return n.status();
    // Two nodes of one host (one that joined anew before the old one went down) share the
    // host's MAC: its entry stays while another routed node uses it.
    const bool shared =
        known != nullptr && std::any_of(routed_.begin(), routed_.end(), [&](const auto& r) {
          return r.first != subnet && r.second.advertise_addr() == known->advertise_addr();
        });
    if (known != nullptr && !shared) {
      auto f = run_.Run({"bridge", "fdb", "del", VxlanMacFor(known->advertise_addr()), "dev",
                         kVxlanDevice, "dst", known->advertise_addr(), "self"});
      if (!ok(f)) return f.status();
    }
  }
  return absl::OkStatus();
}

std::string NodeNetwork::LocalRouteOf(const std::string& subnet) const {
  if (!pod_bridge_) return subnet;
  // The node's own address (its DNS, the answers to what it sends into the network): the
  // overlays hold it on their device already.
  const char* overlay = OverlayDevice();
  return overlay != nullptr && overlay[0] != '\0' ? "" : absl::StrCat(NodeAddressOf(subnet), "/32");
}

absl::Status NodeNetwork::SetPodNat(const std::string& cluster_cidr) {
  if (subnet_.empty()) {
    return absl::FailedPreconditionError("the pods' NAT needs the node's subnet (SetSubnet)");
  }
  if (absl::StatusOr<ClusterCidr> parsed = ClusterCidr::Parse("cluster_cidr", cluster_cidr);
      !parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(parsed.status().message(),
                     " (the manager sends it with the node; an older manager sends none)"));
  }
  // The bridge plugin turns it on at every pod's start; the pods' traffic should not depend
  // on that.
  if (auto r = run_.Run({"sysctl", "-q", "-w", "net.ipv4.ip_forward=1"}); !r.ok()) {
    return r.status();
  }
  absl::Status s = EnsureChain("nat", kMasqueradeChain,
                               {{"-d", cluster_cidr, "-j", "RETURN"},
                                {"-d", "224.0.0.0/4", "-j", "RETURN"},
                                {"-j", "MASQUERADE"}});
  if (s.ok()) s = EnsureJump("nat", "POSTROUTING", {"-s", subnet_}, kMasqueradeChain);
  if (s.ok()) {
    s = EnsureChain("filter", kForwardChain,
                    {{"-s", cluster_cidr, "-j", "ACCEPT"}, {"-d", cluster_cidr, "-j", "ACCEPT"}});
  }
  if (s.ok()) s = EnsureJump("filter", "FORWARD", {}, kForwardChain);
  if (!s.ok()) {
    if (CouldNotStart(s)) {
      return absl::FailedPreconditionError(
          absl::StrCat("the cri runtime on --network ", NodeNetworkModeName(mode_),
                       " needs iptables (apt-get install iptables): ", s.message()));
    }
    return s;
  }
  if (cluster_cidr_ != cluster_cidr) {
    spdlog::info("network: pods of {} keep their addresses within {}, NATed beyond (chains {}, {})",
                 subnet_, cluster_cidr, kMasqueradeChain, kForwardChain);
  }
  cluster_cidr_ = cluster_cidr;
  return absl::OkStatus();
}

namespace {
// `iptables -w 5 -t TABLE` and `args`: waits up to 5 s for the xtables lock.
std::vector<std::string> Iptables(const std::string& table, std::vector<std::string> args) {
  std::vector<std::string> argv = {"iptables", "-w", "5", "-t", table};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}
}  // namespace

absl::Status NodeNetwork::EnsureChain(const std::string& table, const std::string& chain,
                                      const std::vector<std::vector<std::string>>& rules) {
  std::vector<std::string> wanted;
  for (const auto& r : rules)
    wanted.push_back(absl::StrCat("-A ", chain, " ", absl::StrJoin(r, " ")));
  absl::StatusOr<std::string> listed = run_.Run(Iptables(table, {"-S", chain}));
  if (!listed.ok() && CouldNotStart(listed.status())) return listed.status();
  if (listed.ok()) {
    // `-S` prints the rules as given: "-N CHAIN", then "-A CHAIN ..." each.
    std::vector<std::string> have;
    for (absl::string_view line : absl::StrSplit(*listed, '\n', absl::SkipWhitespace())) {
      if (absl::StartsWith(line, "-A ")) have.emplace_back(absl::StripAsciiWhitespace(line));
    }
    if (have == wanted) return absl::OkStatus();
    if (auto f = run_.Run(Iptables(table, {"-F", chain})); !f.ok()) return f.status();
  } else if (auto n = run_.Run(Iptables(table, {"-N", chain})); !n.ok()) {
    return n.status();
  }
  for (const auto& r : rules) {
    std::vector<std::string> args = {"-A", chain};
    args.insert(args.end(), r.begin(), r.end());
    if (auto a = run_.Run(Iptables(table, args)); !a.ok()) return a.status();
  }
  return absl::OkStatus();
}

absl::Status NodeNetwork::EnsureJump(const std::string& table, const std::string& parent,
                                     const std::vector<std::string>& match,
                                     const std::string& chain) {
  std::vector<std::string> rule = match;
  rule.insert(rule.end(), {"-j", chain});
  const std::string wanted = absl::StrCat("-A ", parent, " ", absl::StrJoin(rule, " "));
  absl::StatusOr<std::string> listed = run_.Run(Iptables(table, {"-S", parent}));
  if (!listed.ok()) return listed.status();
  bool present = false;
  for (absl::string_view line : absl::StrSplit(*listed, '\n', absl::SkipWhitespace())) {
    line = absl::StripAsciiWhitespace(line);
    if (!absl::StartsWith(line, "-A ") || !absl::EndsWith(line, absl::StrCat(" -j ", chain))) {
      continue;
    }
    if (line == wanted && !present) {
      present = true;
      continue;
    }
    // Another subnet's (an earlier registration) or a copy.
    std::vector<std::string> del = absl::StrSplit(line, ' ', absl::SkipEmpty());
    del[0] = "-D";
    if (auto d = run_.Run(Iptables(table, del)); !d.ok() && !IsMissing(d.status())) {
      return d.status();
    }
  }
  if (present) return absl::OkStatus();
  std::vector<std::string> insert = {"-I", parent, "1"};
  insert.insert(insert.end(), rule.begin(), rule.end());
  return run_.Run(Iptables(table, insert)).status();
}

absl::Status NodeNetwork::RemoveStale(const std::map<std::string, v1::NodePeer>& wanted) {
  auto routes =
      run_.Run({"ip", "-j", "-4", "route", "show", "proto", absl::StrCat(kRouteProtocol)});
  if (!routes.ok()) return routes.status();
  for (const nlohmann::json& r : ParseJson(*routes)) {
    const std::string dst = RouteDst(r);
    if (dst.empty() || wanted.contains(dst)) continue;
    spdlog::info("network: removing the route to {} (a node no longer in the cluster)", dst);
    if (auto s = Unroute(dst, nullptr); !s.ok()) return s;
  }
  if (mode_ == NodeNetworkMode::kWireguard) {
    std::set<std::string> keys;
    for (const auto& [subnet, p] : wanted) keys.insert(p.wireguard_public_key());
    absl::StatusOr<std::set<std::string>> have = WireguardPeers();
    if (!have.ok()) return have.status();
    for (const std::string& key : *have) {
      if (keys.contains(key)) continue;
      spdlog::info("network: removing WireGuard peer {} (a node no longer in the cluster)", key);
      auto w = run_.Run({"wg", "set", kWireguardDevice, "peer", key, "remove"});
      if (!w.ok() && !IsMissing(w.status())) return w.status();
    }
    return absl::OkStatus();
  }
  if (mode_ != NodeNetworkMode::kVxlan) return absl::OkStatus();
  std::set<std::string> macs;
  for (const auto& [subnet, p] : wanted) macs.insert(VxlanMacFor(p.advertise_addr()));
  auto fdb = run_.Run({"bridge", "-j", "fdb", "show", "dev", kVxlanDevice});
  if (!fdb.ok()) return fdb.status();
  for (const nlohmann::json& e : ParseJson(*fdb)) {
    const std::string mac = Str(e, "mac");
    const std::string dst = Str(e, "dst");
    if (dst.empty() || macs.contains(mac)) continue;
    auto f = run_.Run({"bridge", "fdb", "del", mac, "dev", kVxlanDevice, "dst", dst, "self"});
    if (!f.ok() && !IsMissing(f.status())) return f.status();
  }
  return absl::OkStatus();
}

void NodeNetwork::Forget() {
  routed_.clear();
  swept_ = false;
}

absl::Status NodeNetwork::Check() {
  std::set<std::string> wg_peers;
  if (mode_ == NodeNetworkMode::kWireguard) {
    absl::StatusOr<std::set<std::string>> have = WireguardPeers();
    if (!have.ok()) {
      // wireguard-go died (or the device was deleted): its peers went with it.
      spdlog::warn("network: WireGuard on {} does not answer ({}); setting it up again",
                   kWireguardDevice, std::string(have.status().message()));
      if (absl::Status s = PrepareWireguard(); !s.ok()) return s;
      if (!subnet_.empty()) {
        if (absl::Status s = SetSubnet(subnet_); !s.ok()) return s;
      }
    } else {
      wg_peers = std::move(*have);
    }
  }
  if (const std::string wanted = LocalRouteOf(subnet_); !subnet_.empty() && !wanted.empty()) {
    auto local = run_.Run({"ip", "-j", "-4", "route", "show", "table", "local", "proto",
                           absl::StrCat(kRouteProtocol)});
    if (!local.ok()) return local.status();
    bool present = false;
    for (const nlohmann::json& r : ParseJson(*local)) {
      present = present || IsRoute(RouteDst(r), wanted);
    }
    if (!present) {
      spdlog::warn("network: the local route of {} was gone; adding it again", wanted);
      if (absl::Status s = SetSubnet(subnet_); !s.ok()) return s;
    }
  }
  // A firewall reloaded (its rules flushed) takes the pods' NAT and forwarding with it.
  if (!cluster_cidr_.empty()) {
    if (absl::Status s = SetPodNat(cluster_cidr_); !s.ok()) return s;
  }
  auto routes =
      run_.Run({"ip", "-j", "-4", "route", "show", "proto", absl::StrCat(kRouteProtocol)});
  if (!routes.ok()) return routes.status();
  std::set<std::string> present;
  for (const nlohmann::json& r : ParseJson(*routes)) present.insert(RouteDst(r));
  int lost = 0;
  for (auto it = routed_.begin(); it != routed_.end();) {
    const bool tunnel = mode_ != NodeNetworkMode::kWireguard ||
                        wg_peers.contains(it->second.wireguard_public_key());
    if (present.contains(it->first) && tunnel) {
      ++it;
      continue;
    }
    spdlog::warn("network: the {} to {} (node {}) was gone; routing it again",
                 tunnel ? "route" : "WireGuard peer", it->first, it->second.name());
    it = routed_.erase(it);
    ++lost;
  }
  return lost == 0 ? absl::OkStatus()
                   : absl::DataLossError(absl::StrCat(lost, " routes to other nodes were gone"));
}

absl::Status NodeNetwork::SetPeers(const std::vector<v1::NodePeer>& peers,
                                   const std::string& self_id) {
  std::map<std::string, v1::NodePeer> wanted;
  for (const v1::NodePeer& p : peers) {
    if (p.node_id() == self_id || p.subnet() == subnet_) continue;
    std::string why;
    if (p.network() != NodeNetworkModeName(mode_)) {
      // The modes do not interwork: a host-gw node cannot decapsulate VXLAN.
      why =
          absl::StrCat("it uses network ", p.network(), ", this node ", NodeNetworkModeName(mode_));
    } else if (!IsNodeSubnet(p.subnet()) || !IsIpv4(p.advertise_addr())) {
      why = absl::StrCat("its subnet \"", p.subnet(), "\" or advertise address \"",
                         p.advertise_addr(), "\" is not IPv4");
    } else if (mode_ == NodeNetworkMode::kWireguard && !IsWireguardKey(p.wireguard_public_key())) {
      why = absl::StrCat("its WireGuard public key \"", p.wireguard_public_key(),
                         "\" is not base64 of 32 bytes");
    }
    if (!why.empty()) {
      if (warned_.insert(p.node_id() + why).second) {
        spdlog::warn("network: node {} is not routed from here: {}", p.name(), why);
      }
      continue;
    }
    wanted[p.subnet()] = p;
  }
  if (!swept_) {
    if (absl::Status s = RemoveStale(wanted); !s.ok()) return s;
    swept_ = true;
  }
  absl::Status first_error;
  for (auto it = routed_.begin(); it != routed_.end();) {
    auto w = wanted.find(it->first);
    if (w != wanted.end() && w->second.advertise_addr() == it->second.advertise_addr() &&
        w->second.wireguard_public_key() == it->second.wireguard_public_key()) {
      ++it;
      continue;
    }
    if (w == wanted.end()) {
      spdlog::info("network: node {} ({}) left; removing its route", it->second.name(), it->first);
    }
    if (absl::Status s = Unroute(it->first, &it->second); !s.ok()) {
      if (first_error.ok()) first_error = s;
      ++it;
      continue;
    }
    it = routed_.erase(it);
  }
  for (const auto& [subnet, p] : wanted) {
    if (routed_.contains(subnet)) continue;
    if (absl::Status s = Route(p); !s.ok()) {
      if (first_error.ok()) first_error = s;
      continue;
    }
    spdlog::info("network: {} reaches node {} through {} ({})", subnet, p.name(),
                 p.advertise_addr(), std::string(NodeNetworkModeName(mode_)));
    routed_[subnet] = p;
  }
  return first_error;
}

}  // namespace warren
