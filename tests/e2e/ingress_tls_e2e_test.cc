// End-to-end TLS termination on the ingress (issue 15 step 3, docs/ingress.md): the real
// binary listens on --ingress-https, serves the certificate of the rule SNI names (checked with
// `openssl s_client` and curl --cacert), redirects HTTP to HTTPS, and swaps a replaced
// certificate under load without a failed request. Certificates are made at test time by the
// openssl command, signed by a CA of the test's own.
#include <atomic>
#include <thread>

#include "e2e_fixture.h"
#include "load_loop.h"

namespace warren::e2e {
namespace {

class IngressTlsE2eTest : public E2eTest {
 protected:
  int http_port_ = FreePort();
  int https_port_ = FreePort();

  std::vector<std::string> IngressFlags() {
    return {"--ingress-http", "127.0.0.1:" + std::to_string(http_port_), "--ingress-https",
            "127.0.0.1:" + std::to_string(https_port_)};
  }

  std::string Path(const std::string& name) { return (dir_ / name).string(); }

  // sh -c `script` in the test's dir.
  CommandResult Sh(const std::string& script) {
    return e2e::Run({"/bin/sh", "-c", "cd '" + dir_.string() + "' && " + script});
  }

  void MakeCa() {
    auto r =
        Sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
           "-subj /CN=warren-e2e-ca -keyout ca.key -out ca.crt");
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  // NAME.crt and NAME.key for `host`, signed by the CA, with this (hex) serial.
  void MakeLeaf(const std::string& name, const std::string& host, const std::string& serial) {
    auto r = Sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=" + host +
                " -addext subjectAltName=DNS:" + host + " -keyout " + name + ".key -out " + name +
                ".csr && openssl x509 -req -in " + name +
                ".csr -CA ca.crt -CAkey ca.key -set_serial 0x" + serial +
                " -days 2 -copy_extensions copy -out " + name + ".crt");
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  // The serial of the certificate the HTTPS ingress presents for `sni` ("" when refused).
  std::string ServedSerial(const std::string& sni) {
    auto r = Sh("openssl s_client -connect 127.0.0.1:" + std::to_string(https_port_) +
                " -servername " + sni + " </dev/null 2>/dev/null | openssl x509 -noout -serial");
    if (r.exit_code != 0) return "";
    std::string out = r.out;
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return out.rfind("serial=", 0) == 0 ? out.substr(7) : "";
  }

  // One HTTPS request with curl, the certificate checked against the CA: "<code> <body>".
  std::string Curl(const std::string& host, const std::string& path) {
    const std::string port = std::to_string(https_port_);
    auto r = e2e::Run({"/usr/bin/curl", "-sS", "--max-time", "10", "--cacert", Path("ca.crt"),
                       "--resolve", host + ":" + port + ":127.0.0.1", "-w", " %{http_code}",
                       "https://" + host + ":" + port + path});
    if (r.exit_code != 0) return "curl exit " + std::to_string(r.exit_code) + ": " + r.err;
    const size_t sp = r.out.rfind(' ');
    return r.out.substr(sp + 1) + " " + r.out.substr(0, sp);
  }

  void CreateWeb() {
    auto r = CreateTestapp("web", 1, {"--env", "VERSION=web"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_TRUE(WaitFor([&] { return HealthyTasks("web").size() == 1u; }));
  }

  CommandResult CreateTlsIngress(const std::string& cert, bool replace = false) {
    std::vector<std::string> args = {"ingress",
                                     "create",
                                     "shop",
                                     "--host",
                                     "shop.example.com",
                                     "--service",
                                     "web",
                                     "--tls",
                                     "--cert",
                                     Path(cert + ".crt"),
                                     "--key",
                                     Path(cert + ".key")};
    if (replace) args.push_back("--replace");
    return Cli(args);
  }
};

TEST_F(IngressTlsE2eTest, ATlsHostServesItsCertificateAndHttpIsRedirected) {
  MakeCa();
  MakeLeaf("shop", "shop.example.com", "1001");
  StartHybrid(IngressFlags());
  CreateWeb();
  auto r = CreateTlsIngress("shop");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  ASSERT_TRUE(WaitFor([&] { return Curl("shop.example.com", "/").rfind("200 ", 0) == 0; }))
      << Curl("shop.example.com", "/");
  EXPECT_NE(Curl("shop.example.com", "/").find("version=web"), std::string::npos);
  // The testapp answers an unknown path 404 naming it: the path went through TLS unchanged.
  EXPECT_NE(Curl("shop.example.com", "/a/b?c=1").find("404 "), std::string::npos);
  EXPECT_EQ(ServedSerial("shop.example.com"), "1001");
  EXPECT_EQ(ServedSerial("unknown.example.org"), "") << "no rule, no certificate";

  // TLS 1.1 is refused, 1.2 and 1.3 are served.
  const std::string connect = "openssl s_client -connect 127.0.0.1:" + std::to_string(https_port_) +
                              " -servername shop.example.com ";
  EXPECT_NE(Sh(connect + "-tls1_1 -cipher DEFAULT@SECLEVEL=0 </dev/null").exit_code, 0);
  EXPECT_EQ(Sh(connect + "-tls1_2 </dev/null").exit_code, 0);
  EXPECT_EQ(Sh(connect + "-tls1_3 </dev/null").exit_code, 0);

  // HTTP for a TLS host: 308 to the same path and query on the HTTPS port.
  auto redirect = e2e::Run({"/usr/bin/curl", "-sS", "--max-time", "10", "-o", "/dev/null", "-w",
                            "%{http_code} %{redirect_url}", "-H", "Host: shop.example.com",
                            "http://127.0.0.1:" + std::to_string(http_port_) + "/cart?id=7"});
  ASSERT_EQ(redirect.exit_code, 0) << redirect.err;
  EXPECT_EQ(redirect.out,
            "308 https://shop.example.com:" + std::to_string(https_port_) + "/cart?id=7");

  // The private key is nowhere in the node's log.
  const std::string key = ReadFile(Path("shop.key"));
  const size_t body = key.find('\n') + 1;
  EXPECT_EQ(processes_.back()->Log().find(key.substr(body, 40)), std::string::npos);
}

TEST_F(IngressTlsE2eTest, AReplacedCertificateIsSwappedUnderLoadWithoutAFailedRequest) {
  MakeCa();
  MakeLeaf("old", "shop.example.com", "2001");
  MakeLeaf("new", "shop.example.com", "2002");
  StartHybrid(IngressFlags());
  CreateWeb();
  auto r = CreateTlsIngress("old");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  ASSERT_TRUE(WaitFor([&] { return ServedSerial("shop.example.com") == "2001"; }));

  // A bounded load loop: one curl (a new TLS connection) after another.
  LoadLoop load([&]() -> std::optional<std::string> {
    std::string got = Curl("shop.example.com", "/");
    if (got.rfind("200 ", 0) == 0 && got.find("version=web") != std::string::npos) {
      return std::nullopt;
    }
    return got;
  });
  ASSERT_TRUE(WaitFor([&] { return load.sent() >= 20; }));
  r = CreateTlsIngress("new", /*replace=*/true);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(WaitFor([&] { return ServedSerial("shop.example.com") == "2002"; }));
  const int at_swap = load.sent();
  WaitFor([&] { return load.sent() >= at_swap + 20; });
  load.Stop();
  std::printf("certificate swap under load: %d requests, %d failed\n", load.sent(), load.failed());
  EXPECT_GE(load.sent(), 40);
  EXPECT_EQ(load.failed(), 0) << load.last_failure();
}

}  // namespace
}  // namespace warren::e2e
