#ifndef WARREN_TESTS_UNIT_ETCD_TEST_UTIL_H_
#define WARREN_TESTS_UNIT_ETCD_TEST_UTIL_H_

// A real etcd cluster for tests: members on free loopback ports with data in a temp dir,
// killed and removed at the end. Tests skip (GTEST_SKIP with EtcdCluster::Unavailable()) where
// /usr/bin/etcd is not installed; scripts/setup.sh installs it.

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "store/etcd_client.h"
#include "test_subprocess.h"
#include "test_util.h"

namespace warren::testing_util {

// PEM files for an etcd cluster with TLS: the CA, the members' certificate (for 127.0.0.1) and
// a client certificate.
struct EtcdTlsFiles {
  std::string ca;
  std::string server_cert;
  std::string server_key;
  std::string client_cert;
  std::string client_key;
};

class EtcdCluster {
 public:
  static constexpr const char* kBinary = "/usr/bin/etcd";

  // Why etcd tests cannot run here, or empty.
  static std::string Unavailable() {
    if (access(kBinary, X_OK) != 0) {
      return absl::StrCat(kBinary, " is not installed (scripts/setup.sh installs etcd-server)");
    }
    return "";
  }

  // Starts `members` members and waits until they serve with a leader. With `tls`, clients
  // must use TLS and present a certificate signed by tls->ca.
  static absl::StatusOr<std::unique_ptr<EtcdCluster>> Start(
      int members = 1, std::optional<EtcdTlsFiles> tls = std::nullopt) {
    absl::Status last;
    // A free port can be taken by someone else before etcd binds it: start again on others.
    for (int attempt = 0; attempt < 3; ++attempt) {
      std::unique_ptr<EtcdCluster> c(new EtcdCluster(members, tls));
      last = c->StartAll();
      if (last.ok()) return c;
    }
    return last;
  }

  ~EtcdCluster() {
    for (auto& m : members_) m.process.reset();
  }

  std::vector<std::string> endpoints() const {
    std::vector<std::string> out;
    for (const auto& m : members_) out.push_back(absl::StrCat("127.0.0.1:", m.client_port));
    return out;
  }

  EtcdClientOptions ClientOptions() const {
    EtcdClientOptions o;
    o.endpoints = endpoints();
    if (tls_) {
      o.ca_file = tls_->ca;
      o.cert_file = tls_->client_cert;
      o.key_file = tls_->client_key;
    }
    return o;
  }

  std::shared_ptr<EtcdClient> Client() const {
    auto c = EtcdClient::Create(ClientOptions());
    return c.ok() ? std::shared_ptr<EtcdClient>(std::move(*c)) : nullptr;
  }

  // SIGKILL, as a crash.
  void Kill(int member) { members_[member].process.reset(); }

  // Starts a killed member again on its data and ports.
  absl::Status Restart(int member) {
    if (absl::Status s = Spawn(member, "existing"); !s.ok()) return s;
    return WaitServing(member);
  }

  std::string Logs(int member) const {
    const auto& p = members_[member].process;
    return p ? p->Stderr() : "";
  }

 private:
  struct Member {
    int client_port = 0;
    int peer_port = 0;
    std::unique_ptr<test::Subprocess> process;
  };

  EtcdCluster(int members, std::optional<EtcdTlsFiles> tls)
      : members_(static_cast<size_t>(members)), tls_(std::move(tls)) {}

  std::string PeerUrl(int i) const {
    return absl::StrCat("http://127.0.0.1:", members_[i].peer_port);
  }

  absl::Status StartAll() {
    for (auto& m : members_) {
      m.client_port = FreePort();
      m.peer_port = FreePort();
    }
    std::vector<std::string> cluster;
    for (size_t i = 0; i < members_.size(); ++i) {
      cluster.push_back(absl::StrCat("m", i, "=", PeerUrl(static_cast<int>(i))));
    }
    initial_cluster_ = absl::StrJoin(cluster, ",");
    for (size_t i = 0; i < members_.size(); ++i) {
      if (absl::Status s = Spawn(static_cast<int>(i), "new"); !s.ok()) return s;
    }
    for (size_t i = 0; i < members_.size(); ++i) {
      if (absl::Status s = WaitServing(static_cast<int>(i)); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  absl::Status Spawn(int i, const std::string& state) {
    const std::string scheme = tls_ ? "https" : "http";
    const std::string client_url = absl::StrCat(scheme, "://127.0.0.1:", members_[i].client_port);
    std::vector<std::string> argv = {
        kBinary,
        absl::StrCat("--name=m", i),
        absl::StrCat("--data-dir=", (dir_.path() / absl::StrCat("m", i)).string()),
        "--listen-client-urls=" + client_url,
        "--advertise-client-urls=" + client_url,
        "--listen-peer-urls=" + PeerUrl(i),
        "--initial-advertise-peer-urls=" + PeerUrl(i),
        "--initial-cluster=" + initial_cluster_,
        "--initial-cluster-state=" + state,
        absl::StrCat("--initial-cluster-token=", dir_.path().filename().string()),
        // Short Raft timings: a test cluster elects in a fraction of a second, and the
        // shortest lease etcd grants is 1 s.
        "--heartbeat-interval=50",
        "--election-timeout=500",
        "--logger=zap",
        "--log-level=warn",
    };
    if (tls_) {
      argv.push_back("--cert-file=" + tls_->server_cert);
      argv.push_back("--key-file=" + tls_->server_key);
      argv.push_back("--trusted-ca-file=" + tls_->ca);
      argv.push_back("--client-cert-auth");
    }
    auto p = test::Subprocess::Start(argv, {{"PATH", "/usr/bin:/bin"}});
    if (!p.ok()) return p.status();
    members_[i].process = std::move(*p);
    return absl::OkStatus();
  }

  absl::Status WaitServing(int i) {
    EtcdClientOptions o = ClientOptions();
    o.endpoints = {absl::StrCat("127.0.0.1:", members_[i].client_port)};
    auto client = EtcdClient::Create(o);
    if (!client.ok()) return client.status();
    absl::Status last = absl::DeadlineExceededError("etcd did not answer");
    // Generous: a loaded 2-core machine starts etcd in well under a second, but not always.
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (absl::Now() < deadline) {
      auto exited = members_[i].process->Wait(absl::ZeroDuration());
      if (exited.ok()) {
        return absl::UnavailableError(absl::StrCat("etcd member ", i, " exited with ", *exited,
                                                   ": ", members_[i].process->Stderr()));
      }
      auto status = (*client)->MemberStatus(0);
      if (status.ok() && status->leader() != 0) return absl::OkStatus();
      if (!status.ok()) last = status.status();
      absl::SleepFor(absl::Milliseconds(50));  // polling for readiness, not timing a result
    }
    return absl::DeadlineExceededError(
        absl::StrCat("etcd member ", i, " not serving: ", last.ToString(), "; ", Logs(i)));
  }

  TempDir dir_;
  std::vector<Member> members_;
  std::optional<EtcdTlsFiles> tls_;
  std::string initial_cluster_;
};

// One single-member cluster shared by the tests of a process (each under its own key prefix):
// started by the first Get, stopped by Release (a suite's TearDownTestSuite).
class SharedEtcd {
 public:
  static absl::StatusOr<EtcdCluster*> Get() {
    if (cluster() == nullptr) {
      auto started = EtcdCluster::Start();
      if (!started.ok()) return started.status();
      cluster() = std::move(*started);
    }
    return cluster().get();
  }
  static void Release() { cluster().reset(); }

 private:
  static std::unique_ptr<EtcdCluster>& cluster() {
    static std::unique_ptr<EtcdCluster> c;
    return c;
  }
};

// A key prefix no other test of this process uses.
inline std::string UniqueEtcdPrefix(const std::string& name) {
  static int counter = 0;
  std::random_device rd;
  return absl::StrCat("/test-", name, "-", ++counter, "-", rd(), "/");
}

// A fixture on the shared cluster: a client of it and a key prefix of the test's own. Skips
// where etcd is not installed.
class SharedEtcdTest : public ::testing::Test {
 protected:
  explicit SharedEtcdTest(std::string name) : name_(std::move(name)) {}
  static void TearDownTestSuite() { SharedEtcd::Release(); }

  void SetUp() override {
    if (std::string why = EtcdCluster::Unavailable(); !why.empty()) GTEST_SKIP() << why;
    auto etcd = SharedEtcd::Get();
    ASSERT_TRUE(etcd.ok()) << etcd.status();
    client_ = (*etcd)->Client();
    ASSERT_NE(client_, nullptr);
    prefix_ = UniqueEtcdPrefix(name_);
  }

  std::shared_ptr<EtcdClient> client_;
  std::string prefix_;

 private:
  std::string name_;
};

}  // namespace warren::testing_util

#endif  // WARREN_TESTS_UNIT_ETCD_TEST_UTIL_H_
