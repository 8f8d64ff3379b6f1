// Ingress rules (issue 15, step 1): validation, host and path matching, the Ingresses API on a
// manager's pieces (SQLite store in a temp dir, fake clock), and the CLI with `apply -f`.
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/clock.h"
#include "file_bytes.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "in_process_cluster.h"
#include "ingress/ingress_api.h"
#include "ingress/ingress_match.h"
#include "ingress/ingress_spec.h"
#include "ingress/ingress_tls.h"
#include "manager/events.h"
#include "manager/manager_api.h"
#include "manager/node_liveness.h"
#include "manager/traffic.h"
#include "security/aead.h"
#include "security/openssl_util.h"
#include "store/sqlite_store.h"
#include "store/typed_store.h"
#include "test_certs.h"
#include "test_util.h"

namespace warren {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

using testing_util::CertAndKey;
using testing_util::MakeCertificate;

v1::IngressSpec Spec(const std::string& name, const std::string& host, const std::string& path,
                     const std::string& service = "web") {
  v1::IngressSpec s;
  s.set_name(name);
  s.set_host(host);
  s.set_path(path);
  s.set_service(service);
  return s;
}

// Spec(name, host, "/") served over TLS with `cert`.
v1::IngressSpec TlsSpec(const std::string& name, const std::string& host, const CertAndKey& cert) {
  v1::IngressSpec s = Spec(name, host, "/");
  s.mutable_tls()->set_mode(v1::INGRESS_TLS_MODE_FILES);
  s.mutable_tls()->set_certificate_pem(cert.cert_pem);
  s.mutable_tls()->set_key_pem(cert.key_pem);
  return s;
}

// The validation error of `spec` after defaults, or "" when it is valid.
std::string Validate(v1::IngressSpec spec) {
  ApplyIngressDefaults(&spec);
  absl::Status s = ValidateIngressSpec(spec);
  return s.ok() ? "" : std::string(s.message());
}

TEST(IngressSpecTest, EveryFieldErrorNamesTheField) {
  EXPECT_EQ(Validate(Spec("shop", "Shop.Example.com", "")), "");
  EXPECT_EQ(Validate(Spec("shop", "*.example.com", "/api")), "");
  EXPECT_THAT(Validate(Spec("", "a.example.com", "/")), StartsWith("name: required"));
  EXPECT_THAT(Validate(Spec("Shop_1", "a.example.com", "/")), StartsWith("name: \"Shop_1\""));
  EXPECT_THAT(Validate(Spec("shop", "", "/")), StartsWith("host: required"));
  for (const char* host : {"localhost", "shop.example.com:80", "http://shop.example.com", "*.com",
                           "a.*.example.com", "-a.example.com", "a..example.com"}) {
    EXPECT_THAT(Validate(Spec("shop", host, "/")), StartsWith("host: ")) << host;
  }
  EXPECT_THAT(Validate(Spec("shop", "a.example.com", "api")),
              StartsWith("path: \"api\" must start with '/'"));
  EXPECT_THAT(Validate(Spec("shop", "a.example.com", "/a b")), StartsWith("path: "));
  EXPECT_THAT(Validate(Spec("shop", "a.example.com", "/a?b=1")), StartsWith("path: "));
  EXPECT_THAT(Validate(Spec("shop", "a.example.com", "/", "")), StartsWith("service: required"));
  v1::IngressSpec port = Spec("shop", "a.example.com", "/");
  port.set_port(70000);
  EXPECT_THAT(Validate(port), StartsWith("port: must be 0..65535"));
  v1::IngressSpec tls = Spec("shop", "a.example.com", "/");
  tls.mutable_tls()->set_certificate_pem("x");
  EXPECT_THAT(Validate(tls), StartsWith("tls: "));
  tls.mutable_tls()->set_mode(v1::INGRESS_TLS_MODE_FILES);
  EXPECT_THAT(Validate(tls), StartsWith("tls.key: required"));
  tls.mutable_tls()->clear_certificate_pem();
  tls.mutable_tls()->set_key_pem("y");
  EXPECT_THAT(Validate(tls), StartsWith("tls.certificate: required"));
  tls.mutable_tls()->set_mode(v1::INGRESS_TLS_MODE_ACME);
  EXPECT_THAT(Validate(tls), StartsWith("tls: acme orders its own certificate and key"));
  tls.mutable_tls()->clear_key_pem();
  EXPECT_EQ(Validate(tls), "");
  v1::IngressSpec wild = Spec("shop", "*.example.com", "/");
  wild.mutable_tls()->set_mode(v1::INGRESS_TLS_MODE_ACME);
  EXPECT_THAT(Validate(wild), StartsWith("host: \"*.example.com\": acme proves a name with the "
                                         "HTTP-01 challenge, which cannot prove a wildcard"));
}

TEST(IngressSpecTest, CertificateAndKeyMustParseMatchAndNameTheHost) {
  CertAndKey shop = MakeCertificate({"shop.example.com", "www.example.com"});
  CertAndKey other = MakeCertificate({"shop.example.com"});
  auto info = CheckIngressCertificate("shop.example.com", shop.cert_pem, shop.key_pem);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_THAT(info->names(), ::testing::ElementsAre("shop.example.com", "www.example.com"));
  EXPECT_GT(info->not_after().seconds(), info->not_before().seconds());
  EXPECT_THAT(info->issuer(), HasSubstr("shop.example.com"));

  auto bad_cert = CheckIngressCertificate("shop.example.com", "not a pem", shop.key_pem);
  EXPECT_THAT(std::string(bad_cert.status().message()), StartsWith("tls.certificate: "));
  auto bad_key = CheckIngressCertificate("shop.example.com", shop.cert_pem, "not a key");
  EXPECT_THAT(std::string(bad_key.status().message()), StartsWith("tls.key: "));
  auto mismatch = CheckIngressCertificate("shop.example.com", shop.cert_pem, other.key_pem);
  EXPECT_THAT(std::string(mismatch.status().message()), StartsWith("tls.key: does not match"));
  auto wrong_host = CheckIngressCertificate("api.example.com", shop.cert_pem, shop.key_pem);
  EXPECT_THAT(std::string(wrong_host.status().message()),
              StartsWith("tls.certificate: does not name host api.example.com"));

  CertAndKey wild = MakeCertificate({"*.example.com"});
  EXPECT_TRUE(CheckIngressCertificate("*.example.com", wild.cert_pem, wild.key_pem).ok());
  EXPECT_TRUE(CheckIngressCertificate("a.example.com", wild.cert_pem, wild.key_pem).ok());
  // A wildcard rule needs the same wildcard in the certificate, not one of its names.
  EXPECT_FALSE(CheckIngressCertificate("*.example.com", shop.cert_pem, shop.key_pem).ok());
}

TEST(IngressSpecTest, DuplicateHostAndPathIsAConflict) {
  v1::Ingress existing;
  *existing.mutable_spec() = Spec("shop", "shop.example.com", "/api", "api");
  EXPECT_TRUE(
      CheckIngressConflicts(Spec("other", "shop.example.com", "/", "web"), {existing}).ok());
  EXPECT_TRUE(
      CheckIngressConflicts(Spec("other", "a.example.com", "/api", "web"), {existing}).ok());
  // The same rule replaced under its own name is no conflict.
  EXPECT_TRUE(
      CheckIngressConflicts(Spec("shop", "shop.example.com", "/api", "web"), {existing}).ok());
  absl::Status s = CheckIngressConflicts(Spec("other", "shop.example.com", "/api"), {existing});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("already routed by ingress shop (to service api)"));
}

TEST(IngressMatchTest, WildcardHosts) {
  EXPECT_TRUE(IngressHostMatches("*.example.com", "a.example.com"));
  EXPECT_TRUE(IngressHostMatches("*.example.com", "a.b.example.com"));
  EXPECT_FALSE(IngressHostMatches("*.example.com", "example.com"));
  EXPECT_FALSE(IngressHostMatches("*.example.com", "aexample.com"));
  EXPECT_FALSE(IngressHostMatches("*.example.com", "a.example.org"));
  EXPECT_TRUE(IngressHostMatches("shop.example.com", "shop.example.com"));
  EXPECT_FALSE(IngressHostMatches("shop.example.com", "a.shop.example.com"));
  EXPECT_EQ(NormalizeRequestHost("Shop.Example.COM.:8080"), "shop.example.com");
  EXPECT_EQ(NormalizeRequestHost("shop.example.com"), "shop.example.com");
  EXPECT_EQ(NormalizeRequestHost("[::1]:80"), "[::1]");
}

TEST(IngressMatchTest, LongestPathPrefixPerSegment) {
  EXPECT_TRUE(IngressPathMatches("/", "/anything"));
  EXPECT_TRUE(IngressPathMatches("/api", "/api"));
  EXPECT_TRUE(IngressPathMatches("/api", "/api/"));
  EXPECT_TRUE(IngressPathMatches("/api", "/api/v1"));
  EXPECT_FALSE(IngressPathMatches("/api", "/apiary"));
  EXPECT_FALSE(IngressPathMatches("/api/", "/api"));

  std::vector<v1::IngressRoute> routes(5);
  auto set = [](v1::IngressRoute& r, const char* name, const char* host, const char* path) {
    r.set_name(name);
    r.set_host(host);
    r.set_path(path);
  };
  set(routes[0], "root", "shop.example.com", "/");
  set(routes[1], "api", "shop.example.com", "/api");
  set(routes[2], "v2", "shop.example.com", "/api/v2");
  set(routes[3], "wild", "*.example.com", "/");
  set(routes[4], "deep", "*.eu.example.com", "/");
  auto match = [&](const char* host, const char* path) -> std::string {
    const v1::IngressRoute* r = MatchIngress(routes, host, path);
    return r == nullptr ? "404" : r->name();
  };
  EXPECT_EQ(match("shop.example.com", "/"), "root");
  EXPECT_EQ(match("shop.example.com", "/apiary"), "root");
  EXPECT_EQ(match("shop.example.com", "/api/v1"), "api");
  EXPECT_EQ(match("shop.example.com", "/api/v2/x"), "v2");
  EXPECT_EQ(match("blog.example.com", "/api"), "wild");
  EXPECT_EQ(match("x.eu.example.com", "/"), "deep");
  EXPECT_EQ(match("example.com", "/"), "404");
  EXPECT_EQ(match("shop.example.org", "/"), "404");
  // The exact host has rules, none for this path: no fallback onto the wildcard.
  routes.erase(routes.begin());
  EXPECT_EQ(match("shop.example.com", "/"), "404");
}

TEST(IngressYamlTest, SplitsIngressDocumentsAndReadsFilesBesideTheYaml) {
  testing_util::TempDir dir;
  std::ofstream(dir.path() / "tls.crt") << "CERT";
  std::ofstream(dir.path() / "tls.key") << "KEY";
  auto split = SplitIngressYaml(
      "name: web\nimage: x\n---\nkind: Ingress\nname: shop\nhost: shop.example.com\n"
      "path: /api\nservice: web\nport: 8080\ncertFile: tls.crt\nkeyFile: tls.key\n",
      dir.str());
  ASSERT_TRUE(split.ok()) << split.status();
  ASSERT_EQ(split->ingresses.size(), 1u);
  const v1::IngressSpec& s = split->ingresses[0];
  EXPECT_EQ(s.host(), "shop.example.com");
  EXPECT_EQ(s.path(), "/api");
  EXPECT_EQ(s.port(), 8080);
  EXPECT_EQ(s.tls().mode(), v1::INGRESS_TLS_MODE_FILES);
  EXPECT_EQ(s.tls().certificate_pem(), "CERT");
  EXPECT_EQ(s.tls().key_pem(), "KEY");

  auto unknown = SplitIngressYaml("kind: Ingress\nname: a\nhots: a.example.com\n", dir.str());
  EXPECT_THAT(std::string(unknown.status().message()),
              StartsWith("document 1: hots: unknown field"));
  auto kind = SplitIngressYaml("kind: Gateway\nname: a\n", dir.str());
  EXPECT_THAT(std::string(kind.status().message()),
              StartsWith("document 1: kind: must be Service or Ingress"));
  auto missing = SplitIngressYaml("kind: Ingress\nname: a\ncertFile: nope.crt\n", dir.str());
  EXPECT_THAT(std::string(missing.status().message()),
              StartsWith("document 1: certFile: cannot read"));
}

class IngressApiTest : public testing::Test {
 protected:
  void SetUp() override {
    auto store = SqliteStore::Open((dir_.path() / "store.db").string());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    events_ = std::make_unique<EventLog>(*store_, clock_);
    api_ = std::make_unique<ManagerApi>(*store_, clock_, *events_, liveness_, ApiOptions{});
    auto key = security::NewAeadKey();
    ASSERT_TRUE(key.ok());
    key_ = *key;
    api_->SetSecretKey([this]() -> absl::StatusOr<security::SecretBytes> {
      if (!have_key_) return absl::FailedPreconditionError("no cluster key");
      return key_;
    });
    for (const char* name : {"web", "api"}) {
      v1::CreateServiceRequest req;
      req.mutable_spec()->set_name(name);
      req.mutable_spec()->set_replicas(1);
      req.mutable_spec()->mutable_template_()->set_command("app");
      v1::Service out;
      ASSERT_TRUE(api_->control().CreateService(nullptr, &req, &out).ok());
    }
  }

  grpc::Status Create(const v1::IngressSpec& spec, v1::Ingress* out, bool replace = false) {
    v1::CreateIngressRequest req;
    *req.mutable_spec() = spec;
    req.set_replace(replace);
    return api_->ingress().CreateIngress(nullptr, &req, out);
  }
  std::vector<v1::Ingress> Stored() { return ListObjects<v1::Ingress>(*store_); }
  std::string StoreBytes() { return testing_util::BytesUnder(dir_.path()); }

  testing_util::TempDir dir_;
  FakeClock clock_;
  NodeLiveness liveness_{clock_};
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<EventLog> events_;
  std::unique_ptr<ManagerApi> api_;
  security::SecretBytes key_;
  bool have_key_ = true;
};

// Step 3: the nodes' HTTPS ingress gets the opened key from GetIngressCertificates; the routing
// table (sent to every node, DNS and the dashboard) names only the certificate's digest.
TEST_F(IngressApiTest, NodesFetchTheOpenedKeyAndTheRoutingTableNeverHoldsIt) {
  CertAndKey shop = MakeCertificate({"shop.example.com"});
  v1::IngressSpec spec = TlsSpec("shop", "shop.example.com", shop);
  v1::Ingress created;
  ASSERT_TRUE(Create(spec, &created).ok());
  ASSERT_TRUE(Create(Spec("plain", "plain.example.com", "/"), &created).ok());

  RoutingTableCache cache(*store_, clock_);
  std::shared_ptr<const v1::RoutingTable> table = cache.Get();
  ASSERT_EQ(table->ingresses_size(), 2);
  const v1::IngressRoute& plain = table->ingresses(0);
  const v1::IngressRoute& tls = table->ingresses(1);
  EXPECT_FALSE(plain.tls());
  EXPECT_TRUE(plain.certificate_sha256().empty());
  EXPECT_TRUE(tls.tls());
  EXPECT_EQ(tls.certificate_sha256(), CertificateSha256(shop.cert_pem));
  EXPECT_EQ(tls.certificate_sha256().size(), 64u);
  const std::string bytes = table->SerializeAsString();
  EXPECT_FALSE(absl::StrContains(bytes, shop.key_pem.substr(28, 40)));
  auto stored = GetObjectByName<v1::Ingress>(*store_, "shop");
  ASSERT_TRUE(stored.has_value());
  EXPECT_FALSE(absl::StrContains(bytes, stored->spec().tls().sealed_key().value().ciphertext()));
  EXPECT_FALSE(absl::StrContains(bytes, "PRIVATE KEY"));

  v1::GetIngressCertificatesRequest req;
  v1::GetIngressCertificatesResponse resp;
  ASSERT_TRUE(api_->dispatcher().GetIngressCertificates(nullptr, &req, &resp).ok());
  ASSERT_EQ(resp.certificates_size(), 1) << "the TLS rules only";
  EXPECT_EQ(resp.certificates(0).name(), "shop");
  EXPECT_EQ(resp.certificates(0).host(), "shop.example.com");
  EXPECT_EQ(resp.certificates(0).certificate_pem(), shop.cert_pem);
  EXPECT_EQ(resp.certificates(0).key_pem(), shop.key_pem);
  EXPECT_EQ(resp.certificates(0).certificate_sha256(), tls.certificate_sha256());

  // A manager without the cluster key cannot open keys: an error, not an empty list.
  have_key_ = false;
  v1::GetIngressCertificatesResponse none;
  grpc::Status s = api_->dispatcher().GetIngressCertificates(nullptr, &req, &none);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(none.certificates_size(), 0);
}

TEST_F(IngressApiTest, TlsKeyIsStoredOnlySealedAndNeverReturned) {
  CertAndKey shop = MakeCertificate({"shop.example.com"});
  v1::IngressSpec spec = TlsSpec("shop", "shop.example.com", shop);
  v1::Ingress created;
  ASSERT_TRUE(Create(spec, &created).ok());
  EXPECT_TRUE(created.spec().tls().key_pem().empty());
  EXPECT_FALSE(created.spec().tls().has_sealed_key());
  EXPECT_THAT(created.certificate().names(), ::testing::ElementsAre("shop.example.com"));

  auto stored = GetObjectByName<v1::Ingress>(*store_, "shop");
  ASSERT_TRUE(stored.has_value());
  EXPECT_TRUE(stored->spec().tls().key_pem().empty());
  auto opened = OpenIngressKey(key_, *stored);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->reveal(), shop.key_pem);
  // The key's base64 body, not just its PEM framing, is nowhere in the store's files.
  const std::string body = shop.key_pem.substr(28, 40);
  EXPECT_FALSE(absl::StrContains(StoreBytes(), body));
  // An envelope copied onto another ingress does not open there.
  v1::Ingress moved = *stored;
  moved.set_id("other-id");
  EXPECT_FALSE(OpenIngressKey(key_, moved).ok());

  v1::GetIngressRequest get;
  get.set_ingress("shop");
  v1::Ingress shown;
  ASSERT_TRUE(api_->ingress().GetIngress(nullptr, &get, &shown).ok());
  EXPECT_TRUE(shown.spec().tls().key_pem().empty());
  EXPECT_FALSE(shown.spec().tls().has_sealed_key());
  v1::ListIngressesResponse list;
  ASSERT_TRUE(api_->ingress().ListIngresses(nullptr, nullptr, &list).ok());
  ASSERT_EQ(list.ingresses_size(), 1);
  EXPECT_FALSE(list.ingresses(0).spec().tls().has_sealed_key());
}

TEST_F(IngressApiTest, WithoutTheClusterKeyATlsIngressIsRefusedAndNothingStored) {
  have_key_ = false;
  CertAndKey shop = MakeCertificate({"shop.example.com"});
  v1::IngressSpec spec = TlsSpec("shop", "shop.example.com", shop);
  v1::Ingress out;
  grpc::Status s = Create(spec, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), StartsWith("tls.key: cannot be stored"));
  EXPECT_TRUE(Stored().empty());
  // A plain ingress needs no key.
  EXPECT_TRUE(Create(Spec("plain", "shop.example.com", "/"), &out).ok());
}

TEST_F(IngressApiTest, BadInputGetsTheFieldAndStoresNothing) {
  v1::Ingress out;
  ASSERT_TRUE(Create(Spec("shop", "shop.example.com", "/api", "api"), &out).ok());
  const uint64_t version = store_->Version();
  struct Case {
    v1::IngressSpec spec;
    grpc::StatusCode code;
    std::string message;
  };
  CertAndKey shop = MakeCertificate({"shop.example.com"});
  CertAndKey other = MakeCertificate({"shop.example.com"});
  v1::IngressSpec mismatched = Spec("tls", "shop.example.com", "/tls");
  mismatched.mutable_tls()->set_mode(v1::INGRESS_TLS_MODE_FILES);
  mismatched.mutable_tls()->set_certificate_pem(shop.cert_pem);
  mismatched.mutable_tls()->set_key_pem(other.key_pem);
  v1::IngressSpec garbage = mismatched;
  garbage.mutable_tls()->set_certificate_pem("-----BEGIN CERTIFICATE-----\nAAAA\n");
  std::vector<Case> cases = {
      {Spec("x", "shop.example.com", "/", "nope"), grpc::StatusCode::NOT_FOUND,
       "service: no service named \"nope\""},
      {Spec("dup", "shop.example.com", "/api", "web"), grpc::StatusCode::FAILED_PRECONDITION,
       "host shop.example.com path /api: already routed by ingress shop"},
      {Spec("shop", "shop.example.com", "/other", "web"), grpc::StatusCode::ALREADY_EXISTS,
       "ingress \"shop\" already exists"},
      {Spec("x", "shop", "/", "web"), grpc::StatusCode::INVALID_ARGUMENT, "host: "},
      {Spec("x", "a.example.com", "api", "web"), grpc::StatusCode::INVALID_ARGUMENT, "path: "},
      {mismatched, grpc::StatusCode::INVALID_ARGUMENT, "tls.key: does not match"},
      {garbage, grpc::StatusCode::INVALID_ARGUMENT, "tls.certificate: "},
  };
  for (const Case& c : cases) {
    grpc::Status s = Create(c.spec, &out);
    EXPECT_EQ(s.error_code(), c.code) << c.spec.ShortDebugString();
    EXPECT_THAT(s.error_message(), StartsWith(c.message));
  }
  EXPECT_EQ(store_->Version(), version);
  ASSERT_EQ(Stored().size(), 1u);
  EXPECT_EQ(Stored()[0].spec().service(), "api");
}

TEST_F(IngressApiTest, ReplaceKeepsTheIdAndABadReplacementKeepsTheOldRule) {
  v1::Ingress first;
  ASSERT_TRUE(Create(Spec("shop", "shop.example.com", "/api", "api"), &first).ok());
  v1::Ingress second;
  ASSERT_TRUE(Create(Spec("shop", "shop.example.com", "/v2", "web"), &second, true).ok());
  EXPECT_EQ(second.id(), first.id());
  EXPECT_GT(second.version(), first.version());
  ASSERT_EQ(Stored().size(), 1u);
  EXPECT_EQ(Stored()[0].spec().path(), "/v2");

  v1::Ingress out;
  EXPECT_EQ(Create(Spec("shop", "shop.example.com", "/v3", "nope"), &out, true).error_code(),
            grpc::StatusCode::NOT_FOUND);
  ASSERT_EQ(Stored().size(), 1u);
  EXPECT_EQ(Stored()[0].spec().path(), "/v2");

  v1::DeleteIngressRequest del;
  del.set_ingress("shop");
  v1::DeleteIngressResponse deleted;
  ASSERT_TRUE(api_->ingress().DeleteIngress(nullptr, &del, &deleted).ok());
  EXPECT_EQ(deleted.id(), first.id());
  EXPECT_TRUE(Stored().empty());
  EXPECT_EQ(api_->ingress().DeleteIngress(nullptr, &del, &deleted).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

using testing_util::CliClusterTest;

TEST_F(CliClusterTest, IngressCreateListInspectRemove) {
  ASSERT_EQ(Run({"service", "create", "web", "--command", "app"}), 0) << err_.str();
  ASSERT_EQ(Run({"ingress", "create", "shop", "--host", "Shop.Example.com", "--path", "/api",
                 "--service", "web", "--port", "8080"}),
            0)
      << err_.str();
  ASSERT_EQ(Run({"ingress", "ls"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("NAME"));
  EXPECT_THAT(out_.str(), ::testing::ContainsRegex("shop +shop.example.com +/api +web +8080 +-"));
  ASSERT_EQ(Run({"ingress", "inspect", "shop", "-o", "json"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("\"host\": \"shop.example.com\""));
  EXPECT_EQ(Run({"ingress", "create", "dup", "--host", "shop.example.com", "--path", "/api",
                 "--service", "web"}),
            1);
  EXPECT_THAT(err_.str(), HasSubstr("already routed by ingress shop"));
  EXPECT_EQ(Run({"ingress", "create", "x", "--host", "a.example.com", "--service", "nope"}), 1);
  EXPECT_THAT(err_.str(), HasSubstr("service: no service named \"nope\""));
  EXPECT_EQ(Run({"ingress", "create", "x", "--host", "a.example.com", "--service", "web", "--cert",
                 "c.pem"}),
            2);
  EXPECT_THAT(err_.str(), HasSubstr("--cert, --key and --acme need --tls"));
  EXPECT_EQ(Run({"ingress", "create", "x", "--host", "a.example.com", "--service", "web", "--tls",
                 "--acme", "--cert", "c.pem"}),
            2);
  EXPECT_THAT(err_.str(), HasSubstr("--acme orders the certificate: give no --cert or --key"));
  // This cluster's manager has no --acme-directory.
  EXPECT_EQ(Run({"ingress", "create", "x", "--host", "a.example.com", "--service", "web", "--tls",
                 "--acme"}),
            1);
  EXPECT_THAT(err_.str(), HasSubstr("tls: acme needs an ACME directory"));
  EXPECT_EQ(Run({"ingress", "renew", "shop"}), 1);
  EXPECT_THAT(err_.str(), HasSubstr("only an ingress with tls acme renews its certificate"));
  ASSERT_EQ(Run({"ingress", "rm", "shop"}), 0) << err_.str();
  ASSERT_EQ(Run({"ingress", "ls", "-q"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "");
}

TEST_F(CliClusterTest, ApplyCreatesAndUpdatesIngressesAndRefusesABadOneWhole) {
  testing_util::TempDir dir;
  CertAndKey shop = MakeCertificate({"shop.example.com"});
  std::ofstream(dir.path() / "tls.crt") << shop.cert_pem;
  std::ofstream(dir.path() / "tls.key") << shop.key_pem;
  const std::string file = (dir.path() / "stack.yaml").string();
  auto write = [&](const std::string& path) {
    std::ofstream(file) << "name: web\ntemplate:\n  command: app\n---\nkind: Ingress\nname: shop\n"
                           "host: shop.example.com\npath: "
                        << path << "\nservice: web\ncertFile: tls.crt\nkeyFile: tls.key\n";
  };
  write("/");
  ASSERT_EQ(Run({"apply", "-f", file}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("ingress shop: created"));
  ASSERT_EQ(Run({"ingress", "inspect", "shop"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("INGRESS_TLS_MODE_FILES"));
  EXPECT_THAT(out_.str(), HasSubstr("shop.example.com"));
  EXPECT_THAT(out_.str(), Not(HasSubstr("PRIVATE KEY")));
  ASSERT_EQ(Run({"apply", "-f", file}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("ingress shop: unchanged"));
  write("/shop");
  ASSERT_EQ(Run({"apply", "-f", file}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("ingress shop: replaced"));
  ASSERT_EQ(Run({"ingress", "ls"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), ::testing::ContainsRegex("shop +shop.example.com +/shop +web"));

  // A bad ingress in the file: neither the new service nor the ingress is applied.
  std::ofstream(file) << "name: other\ntemplate:\n  command: app\n---\nkind: Ingress\nname: bad\n"
                         "host: bad.example.com\npath: nope\nservice: other\n";
  EXPECT_EQ(Run({"apply", "-f", file}), 1);
  EXPECT_THAT(err_.str(), HasSubstr("ingress bad: path: \"nope\" must start with '/'"));
  ASSERT_EQ(Run({"service", "ls", "-q"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), Not(HasSubstr("other")));
  ASSERT_EQ(Run({"ingress", "ls", "-q"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "shop\n");
}

}  // namespace
}  // namespace warren
