// End-to-end ACME (issue 15, docs/ingress.md) against pebble, the ACME test server Debian 12
// packages: an `--acme` ingress gets a certificate pebble issued, served on --ingress-https, and
// `ingress renew` swaps it under a bounded load loop without a failed request. pebble validates
// HTTP-01 by connecting to the name on the node's --ingress-http port; pebble-challtestsrv (same
// package) is its DNS server and answers 127.0.0.1 for every name. pebble's own HTTPS
// certificate comes from a CA of the test's, which the manager trusts through --acme-ca-bundle.
// Skipped, with the reason, when pebble is not installed.
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "e2e_fixture.h"
#include "load_loop.h"

namespace warren::e2e {
namespace {

constexpr char kPebble[] = "/usr/bin/pebble";
constexpr char kChallTestSrv[] = "/usr/bin/pebble-challtestsrv";
constexpr char kHost[] = "shop.warren.test";

class IngressAcmeE2eTest : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    if (access(kPebble, X_OK) != 0 || access(kChallTestSrv, X_OK) != 0) {
      GTEST_SKIP() << "pebble not installed (Debian package pebble; scripts/setup.sh installs it)";
    }
  }
  void TearDown() override {
    for (auto& p : helpers_) p->Kill(SIGTERM, std::chrono::seconds(5));
    helpers_.clear();
    E2eTest::TearDown();
  }

  int http_port_ = FreePort();
  int https_port_ = FreePort();
  int acme_port_ = FreePort();
  std::vector<std::unique_ptr<Process>> helpers_;

  std::string Path(const std::string& name) { return (dir_ / name).string(); }
  CommandResult Sh(const std::string& script) {
    return e2e::Run({"/bin/sh", "-c", "cd '" + dir_.string() + "' && " + script});
  }

  // pebble on 127.0.0.1 with a certificate from the test's CA, validating HTTP-01 on the
  // ingress's HTTP port, names resolved by pebble-challtestsrv to 127.0.0.1.
  void StartPebble() {
    auto r = Sh(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
        "-subj /CN=warren-e2e-ca -keyout ca.key -out ca.crt && "
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost "
        "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout pebble.key -out pebble.csr && "
        "openssl x509 -req -in pebble.csr -CA ca.crt -CAkey ca.key -set_serial 0x77 -days 2 "
        "-copy_extensions copy -out pebble.crt");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const int dns_port = FreePort();
    std::ofstream(Path("pebble.json"))
        << R"({"pebble": {"listenAddress": "127.0.0.1:)" << acme_port_
        << R"(", "managementListenAddress": "127.0.0.1:)" << FreePort() << R"(", "certificate": ")"
        << Path("pebble.crt") << R"(", "privateKey": ")" << Path("pebble.key")
        << R"(", "httpPort": )" << http_port_ << R"(, "tlsPort": )" << FreePort()
        << R"(, "ocspResponderURL": "", "externalAccountBindingRequired": false}})";
    helpers_.push_back(std::make_unique<Process>(
        std::vector<std::string>{kChallTestSrv, "-dns01", "127.0.0.1:" + std::to_string(dns_port),
                                 "-http01", "", "-https01", "", "-tlsalpn01", "", "-management",
                                 "127.0.0.1:" + std::to_string(FreePort()), "-defaultIPv4",
                                 "127.0.0.1", "-defaultIPv6", ""},
        Path("challtestsrv.log")));
    // No random validation sleeps; pebble still rejects 5 % of good nonces (badNonce), which
    // the client retries.
    helpers_.push_back(std::make_unique<Process>(
        std::vector<std::string>{kPebble, "-config", Path("pebble.json"), "-dnsserver",
                                 "127.0.0.1:" + std::to_string(dns_port)},
        Path("pebble.log"), std::map<std::string, std::string>{{"PEBBLE_VA_NOSLEEP", "1"}}));
    ASSERT_TRUE(WaitFor([&] {
      return e2e::Run({"/usr/bin/curl", "-sf", "--max-time", "2", "--cacert", Path("ca.crt"),
                       Directory()})
                 .exit_code == 0;
    })) << ReadFile(Path("pebble.log"));
  }

  std::string Directory() { return "https://127.0.0.1:" + std::to_string(acme_port_) + "/dir"; }

  void StartCluster() {
    StartHybrid({"--ingress-http", "127.0.0.1:" + std::to_string(http_port_), "--ingress-https",
                 "127.0.0.1:" + std::to_string(https_port_), "--acme-directory", Directory(),
                 "--acme-email", "ops@example.com", "--acme-ca-bundle", Path("ca.crt")});
    auto r = CreateTestapp("web", 1, {"--env", "VERSION=web"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_TRUE(WaitFor([&] { return HealthyTasks("web").size() == 1u; }));
  }

  // "<serial> <issuer>" of the certificate the HTTPS ingress serves for kHost ("" if none).
  std::string Served() {
    auto r = Sh("openssl s_client -connect 127.0.0.1:" + std::to_string(https_port_) +
                " -servername " + std::string(kHost) +
                " </dev/null 2>/dev/null | openssl x509 -noout -serial -issuer -nameopt compat");
    if (r.exit_code != 0) return "";
    std::string out = r.out;
    std::replace(out.begin(), out.end(), '\n', ' ');
    return out;
  }

  // One HTTPS request through the ingress (certificate not checked: pebble's root is made at
  // its start): "<code> <body>".
  std::string Curl() {
    const std::string port = std::to_string(https_port_);
    auto r = e2e::Run({"/usr/bin/curl", "-sS", "-k", "--max-time", "10", "--resolve",
                       std::string(kHost) + ":" + port + ":127.0.0.1", "-w", " %{http_code}",
                       "https://" + std::string(kHost) + ":" + port + "/"});
    if (r.exit_code != 0) return "curl exit " + std::to_string(r.exit_code) + ": " + r.err;
    const size_t sp = r.out.rfind(' ');
    return r.out.substr(sp + 1) + " " + r.out.substr(0, sp);
  }

  std::string Inspect() { return Cli({"ingress", "inspect", "shop", "-o", "json"}).out; }
};

TEST_F(IngressAcmeE2eTest, AnAcmeIngressServesAPebbleCertificateAndARenewalSwapsItUnderLoad) {
  StartPebble();
  StartCluster();
  auto r =
      Cli({"ingress", "create", "shop", "--host", kHost, "--service", "web", "--tls", "--acme"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto created = std::chrono::steady_clock::now();
  ASSERT_TRUE(WaitFor([&] { return Served().find("Pebble Intermediate CA") != std::string::npos; },
                      std::chrono::seconds(30)))
      << Inspect() << "\n"
      << ReadFile(Path("pebble.log")) << processes_.back()->Log();
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - created).count();
  std::printf("pebble certificate served %.1f s after ingress create\n", took);
  const std::string first = Served();
  EXPECT_NE(Curl().find("version=web"), std::string::npos) << Curl();
  const std::string inspect = Inspect();
  EXPECT_NE(inspect.find("ACME_STATE_VALID"), std::string::npos) << inspect;
  EXPECT_NE(inspect.find(kHost), std::string::npos);
  EXPECT_NE(inspect.find("notAfter"), std::string::npos) << inspect;
  EXPECT_NE(inspect.find("Pebble Intermediate CA"), std::string::npos) << inspect;

  // A forced renewal under a bounded load loop: new TLS connections one after another.
  LoadLoop load([&]() -> std::optional<std::string> {
    std::string got = Curl();
    if (got.rfind("200 ", 0) == 0 && got.find("version=web") != std::string::npos) {
      return std::nullopt;
    }
    return got;
  });
  ASSERT_TRUE(WaitFor([&] { return load.sent() >= 20; }));
  r = Cli({"ingress", "renew", "shop"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(WaitFor(
      [&] {
        const std::string now = Served();
        return !now.empty() && now != first;
      },
      std::chrono::seconds(30)))
      << Inspect() << "\n"
      << ReadFile(Path("pebble.log"));
  const int at_swap = load.sent();
  WaitFor([&] { return load.sent() >= at_swap + 20; });
  load.Stop();
  std::printf("ACME renewal under load: %d requests, %d failed\n", load.sent(), load.failed());
  EXPECT_GE(load.sent(), 40);
  EXPECT_EQ(load.failed(), 0) << load.last_failure();
  EXPECT_NE(Served().find("Pebble Intermediate CA"), std::string::npos);
}

}  // namespace
}  // namespace warren::e2e
