// ACME (RFC 8555, HTTP-01): the client against an in-process fake ACME server that checks what
// a real one does (every JWS signature against the account key, the url and a fresh nonce in
// each protected header, the key authorization a challenge serves, the CSR), and the
// controller that orders, stores and renews ingress certificates.

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/time_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "http/http_server.h"
#include "ingress/acme_client.h"
#include "ingress/acme_controller.h"
#include "ingress/ingress_api.h"
#include "ingress/ingress_spec.h"
#include "ingress/ingress_tls.h"
#include "manager/events.h"
#include "manager/manager_api.h"
#include "manager/node_liveness.h"
#include "manager/traffic.h"
#include "nlohmann/json.hpp"
#include "security/aead.h"
#include "security/certificates.h"
#include "security/openssl_util.h"
#include "store/sqlite_store.h"
#include "store/typed_store.h"
#include "test_util.h"

namespace warren {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

// ---- the fake server's checks ---------------------------------------------------------------

// The public key of a P-256 JWK.
security::EvpPkeyPtr KeyFromJwk(const json& jwk) {
  auto x = Base64UrlDecode(jwk.value("x", ""));
  auto y = Base64UrlDecode(jwk.value("y", ""));
  if (!x.ok() || !y.ok() || x->size() != 32 || y->size() != 32 || jwk.value("kty", "") != "EC" ||
      jwk.value("crv", "") != "P-256") {
    return nullptr;
  }
  const std::string point = absl::StrCat(std::string(1, '\x04'), *x, *y);
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
  OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size());
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
  EVP_PKEY* key = nullptr;
  if (ctx == nullptr || EVP_PKEY_fromdata_init(ctx) != 1 ||
      EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1) {
    key = nullptr;
  }
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  return security::EvpPkeyPtr(key);
}

// Whether `sig` (raw r||s) is the ES256 signature of `input` by `key`.
bool VerifyEs256(EVP_PKEY* key, const std::string& input, const std::string& sig) {
  if (sig.size() != 64) return false;
  ECDSA_SIG* es = ECDSA_SIG_new();
  ECDSA_SIG_set0(es, BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()), 32, nullptr),
                 BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()) + 32, 32, nullptr));
  unsigned char* der = nullptr;
  const int n = i2d_ECDSA_SIG(es, &der);
  ECDSA_SIG_free(es);
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  const bool ok =
      n > 0 && EVP_DigestVerifyInit(md, nullptr, EVP_sha256(), nullptr, key) == 1 &&
      EVP_DigestVerify(md, der, static_cast<size_t>(n),
                       reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  EVP_MD_CTX_free(md);
  OPENSSL_free(der);
  return ok;
}

// The SHA-256 thumbprint of a JWK computed from its members (RFC 7638 3.2), independently of
// how the client serialized it.
std::string ThumbprintOf(const json& jwk) {
  const std::string canonical =
      json({{"crv", jwk["crv"]}, {"kty", jwk["kty"]}, {"x", jwk["x"]}, {"y", jwk["y"]}})
          .dump();  // nlohmann sorts keys: the RFC's order
  unsigned char d[32];
  EVP_Digest(canonical.data(), canonical.size(), d, nullptr, EVP_sha256(), nullptr);
  return Base64Url(std::string(reinterpret_cast<char*>(d), 32));
}

// An in-process ACME server (HTTP on 127.0.0.1, port 0) with one CA. Orders need one http-01
// authorization each; the challenge "validates" by asking `fetch` for the token's key
// authorization and comparing it with token.thumbprint(account key).
class FakeAcme {
 public:
  // Knobs, set before use.
  int bad_nonces = 0;     // valid POSTs answered badNonce first
  int pending_polls = 1;  // polls that still see "pending"/"processing"
  bool fail_validation = false;
  long validity_seconds = 3600L * 24 * 90;  // of the certificates it issues
  std::function<std::string(const std::string& token)> fetch;

  FakeAcme() {
    ca_key_.reset(EVP_EC_gen("P-256"));
    ca_.reset(X509_new());
    X509_set_version(ca_.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(ca_.get()), 1);
    X509_gmtime_adj(X509_getm_notBefore(ca_.get()), -60);
    X509_gmtime_adj(X509_getm_notAfter(ca_.get()), 3600L * 24 * 365);
    X509_set_pubkey(ca_.get(), ca_key_.get());
    X509_NAME* name = X509_get_subject_name(ca_.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("Fake ACME CA"), -1, -1, 0);
    X509_set_issuer_name(ca_.get(), name);
    X509_sign(ca_.get(), ca_key_.get(), EVP_sha256());
    HttpServerOptions o;
    o.threads = 1;
    auto s = HttpServer::Start(
        "127.0.0.1:0", [this](const HttpRequest& r) { return Handle(r); }, o);
    EXPECT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    base_ = absl::StrCat("http://127.0.0.1:", server_->port());
  }

  std::string directory() const { return base_ + "/dir"; }

  struct Counts {
    int accounts = 0, orders = 0, finalized = 0, bad_nonce_answers = 0, rejected = 0;
    std::vector<std::string> errors;  // what the checks refused, other than badNonce
  };
  Counts counts() {
    absl::MutexLock l(&mu_);
    return counts_;
  }

 private:
  HttpResponse Json(int status, const json& body, const std::string& location = "") {
    HttpResponse r;
    r.status = status;
    r.content_type = status / 100 == 2 ? "application/json" : "application/problem+json";
    r.body = body.dump();
    r.headers.emplace_back("Replay-Nonce", NewNonce());
    if (!location.empty()) r.headers.emplace_back("Location", location);
    return r;
  }
  HttpResponse Problem(int status, const std::string& type, const std::string& detail) {
    if (type != "badNonce") counts_.errors.push_back(absl::StrCat(type, ": ", detail));
    ++counts_.rejected;
    return Json(status, {{"type", "urn:ietf:params:acme:error:" + type}, {"detail", detail}});
  }
  std::string NewNonce() {
    std::string n = absl::StrCat("nonce-", ++next_nonce_);
    nonces_.insert(n);
    return n;
  }

  HttpResponse Handle(const HttpRequest& r) {
    absl::MutexLock l(&mu_);
    const std::string url = base_ + r.path;
    if (r.path == "/dir") {
      return Json(200, {{"newNonce", base_ + "/nonce"},
                        {"newAccount", base_ + "/account"},
                        {"newOrder", base_ + "/order"}});
    }
    if (r.path == "/nonce") {
      HttpResponse res;
      res.status = 200;
      res.headers.emplace_back("Replay-Nonce", NewNonce());
      res.headers.emplace_back("Cache-Control", "no-store");
      return res;
    }
    if (r.method != "POST") return Problem(405, "malformed", "POST only");
    if (!absl::StartsWith(r.Header("Content-Type").value_or(""), "application/jose+json")) {
      return Problem(415, "malformed", "Content-Type must be application/jose+json");
    }
    // The JWS: flattened JSON, ES256, protected url == this URL, a nonce issued and unused.
    json jws = json::parse(r.body, nullptr, false);
    if (!jws.is_object()) return Problem(400, "malformed", "not JSON");
    auto prot = Base64UrlDecode(jws.value("protected", ""));
    auto payload = Base64UrlDecode(jws.value("payload", ""));
    auto sig = Base64UrlDecode(jws.value("signature", ""));
    if (!prot.ok() || !payload.ok() || !sig.ok()) return Problem(400, "malformed", "base64url");
    json header = json::parse(*prot, nullptr, false);
    if (!header.is_object() || header.value("alg", "") != "ES256") {
      return Problem(400, "badSignatureAlgorithm", "ES256 expected");
    }
    if (header.value("url", "") != url) return Problem(401, "unauthorized", "url mismatch");
    const std::string nonce = header.value("nonce", "");
    if (!nonces_.erase(nonce)) return Problem(400, "badNonce", "unknown or reused nonce");
    if (bad_nonces > 0) {
      --bad_nonces;
      ++counts_.bad_nonce_answers;
      --counts_.rejected;
      return Problem(400, "badNonce", "try again with the new nonce");
    }
    json jwk;
    if (r.path == "/account") {
      if (!header.contains("jwk") || header.contains("kid")) {
        return Problem(400, "malformed", "newAccount needs jwk, not kid");
      }
      jwk = header["jwk"];
    } else {
      auto account = accounts_.find(header.value("kid", ""));
      if (header.contains("jwk") || account == accounts_.end()) {
        return Problem(401, "unauthorized", "kid must be an account URL");
      }
      jwk = account->second;
    }
    security::EvpPkeyPtr key = KeyFromJwk(jwk);
    if (!key) return Problem(400, "malformed", "bad jwk");
    if (!VerifyEs256(key.get(),
                     absl::StrCat(jws.value("protected", ""), ".", jws.value("payload", "")),
                     *sig)) {
      return Problem(401, "unauthorized", "signature does not verify");
    }
    return Route(r.path, *payload, jwk);
  }

  HttpResponse Route(const std::string& path, const std::string& payload, const json& jwk) {
    json body = payload.empty() ? json() : json::parse(payload, nullptr, false);
    if (path == "/account") {
      if (!body.is_object() || !body.value("termsOfServiceAgreed", false)) {
        return Problem(400, "malformed", "termsOfServiceAgreed");
      }
      for (const auto& [url, known] : accounts_) {
        if (ThumbprintOf(known) == ThumbprintOf(jwk)) return Json(200, {{"status", "valid"}}, url);
      }
      const std::string url = absl::StrCat(base_, "/acct/", ++counts_.accounts);
      accounts_[url] = jwk;
      return Json(201, {{"status", "valid"}}, url);
    }
    if (path == "/order") {
      if (!body.is_object() || !body.contains("identifiers") || body["identifiers"].size() != 1 ||
          body["identifiers"][0].value("type", "") != "dns") {
        return Problem(400, "malformed", "one dns identifier");
      }
      const int n = ++counts_.orders;
      Order& o = orders_[n];
      o.domain = body["identifiers"][0].value("value", "");
      o.account_jwk = jwk;
      o.token = absl::StrCat("tok", n, "_A-z");
      return Json(201, OrderJson(n), absl::StrCat(base_, "/order/", n));
    }
    int n = 0;
    for (const char* prefix : {"/order/", "/authz/", "/chall/", "/finalize/", "/cert/"}) {
      if (absl::StartsWith(path, prefix) && absl::SimpleAtoi(path.substr(strlen(prefix)), &n) &&
          orders_.contains(n)) {
        Order& o = orders_[n];
        const std::string p(prefix);
        if (!payload.empty() && p != "/chall/" && p != "/finalize/") {
          return Problem(400, "malformed", "POST-as-GET has an empty payload");
        }
        if (p == "/order/") {
          if (o.state == "processing" && o.polls++ >= pending_polls) o.state = "valid";
          return Json(200, OrderJson(n));
        }
        if (p == "/authz/") {
          if (o.authz == "processing" && o.authz_polls++ >= pending_polls) {
            o.authz = Validate(o) ? "valid" : "invalid";
            o.state = o.authz == "valid" ? "ready" : "invalid";
          }
          json c = {{"type", "http-01"},
                    {"url", absl::StrCat(base_, "/chall/", n)},
                    {"token", o.token},
                    {"status", o.authz == "processing" ? "pending" : o.authz}};
          if (o.authz == "invalid") {
            c["error"] = {{"type", "urn:ietf:params:acme:error:unauthorized"}, {"detail", o.why}};
          }
          json dns = {{"type", "dns-01"}, {"url", base_ + "/other"}, {"token", "x"}};
          return Json(200, {{"status", o.authz == "processing" ? "pending" : o.authz},
                            {"identifier", {{"type", "dns"}, {"value", o.domain}}},
                            {"challenges", json::array({dns, c})}});
        }
        if (p == "/chall/") {
          if (payload != "{}") return Problem(400, "malformed", "a challenge response is {}");
          if (o.authz == "pending") o.authz = "processing";
          return Json(200, {{"type", "http-01"}, {"status", "processing"}});
        }
        if (p == "/finalize/") {
          if (o.state != "ready") return Problem(403, "orderNotReady", o.state);
          auto issued = Issue(o, body.value("csr", ""));
          if (!issued.ok()) return Problem(400, "badCSR", std::string(issued.status().message()));
          o.certificate = *issued;
          o.state = "processing";
          o.polls = 0;
          ++counts_.finalized;
          return Json(200, OrderJson(n));
        }
        if (p == "/cert/") {
          HttpResponse res;
          res.status = 200;
          res.content_type = "application/pem-certificate-chain";
          res.body = o.certificate;
          res.headers.emplace_back("Replay-Nonce", NewNonce());
          return res;
        }
      }
    }
    return Problem(404, "malformed", absl::StrCat("no such resource ", path));
  }

  struct Order {
    std::string domain, token, state = "pending", authz = "pending", certificate, why;
    json account_jwk;
    int polls = 0, authz_polls = 0;
  };

  json OrderJson(int n) {
    const Order& o = orders_[n];
    json j = {{"status", o.state},
              {"identifiers", json::array({{{"type", "dns"}, {"value", o.domain}}})},
              {"authorizations", json::array({absl::StrCat(base_, "/authz/", n)})},
              {"finalize", absl::StrCat(base_, "/finalize/", n)}};
    if (o.state == "valid") j["certificate"] = absl::StrCat(base_, "/cert/", n);
    return j;
  }

  bool Validate(Order& o) {
    if (fail_validation) {
      o.why = "the fake was told to fail";
      return false;
    }
    const std::string want = absl::StrCat(o.token, ".", ThumbprintOf(o.account_jwk));
    const std::string got = fetch ? fetch(o.token) : "";
    if (got != want) {
      o.why = absl::StrCat("key authorization \"", got, "\", expected \"", want, "\"");
      counts_.errors.push_back(o.why);
      return false;
    }
    return true;
  }

  // A leaf for the CSR's key naming its DNS SAN, then the CA.
  absl::StatusOr<std::string> Issue(const Order& o, const std::string& csr64) {
    auto der = Base64UrlDecode(csr64);
    if (!der.ok()) return der.status();
    const unsigned char* p = reinterpret_cast<const unsigned char*>(der->data());
    security::X509ReqPtr req(d2i_X509_REQ(nullptr, &p, static_cast<long>(der->size())));
    if (!req) return absl::InvalidArgumentError("CSR does not parse");
    security::EvpPkeyPtr pub(X509_REQ_get_pubkey(req.get()));
    if (X509_REQ_verify(req.get(), pub.get()) != 1) {
      return absl::InvalidArgumentError("CSR signature");
    }
    bool names_domain = false;
    STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(req.get());
    for (int i = 0; exts != nullptr && i < sk_X509_EXTENSION_num(exts); ++i) {
      X509_EXTENSION* e = sk_X509_EXTENSION_value(exts, i);
      if (OBJ_obj2nid(X509_EXTENSION_get_object(e)) != NID_subject_alt_name) continue;
      auto* names = static_cast<GENERAL_NAMES*>(X509V3_EXT_d2i(e));
      for (int k = 0; k < sk_GENERAL_NAME_num(names); ++k) {
        GENERAL_NAME* g = sk_GENERAL_NAME_value(names, k);
        if (g->type == GEN_DNS &&
            std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(g->d.dNSName)),
                        ASN1_STRING_length(g->d.dNSName)) == o.domain) {
          names_domain = true;
        }
      }
      GENERAL_NAMES_free(names);
    }
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    if (!names_domain) return absl::InvalidArgumentError("CSR does not name the order's domain");
    security::X509Ptr cert(X509_new());
    X509_set_version(cert.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 0x100 + ++serial_);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), validity_seconds);
    X509_set_pubkey(cert.get(), pub.get());
    X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_.get()));
    const std::string san = "DNS:" + o.domain;
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, san.c_str());
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
    X509_sign(cert.get(), ca_key_.get(), EVP_sha256());
    return absl::StrCat(*security::CertificatePem(cert.get()),
                        *security::CertificatePem(ca_.get()));
  }

  absl::Mutex mu_;
  std::string base_;
  std::unique_ptr<HttpServer> server_;
  security::EvpPkeyPtr ca_key_;
  security::X509Ptr ca_;
  Counts counts_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> nonces_;
  int next_nonce_ = 0;
  int serial_ = 0;
  std::map<std::string, json> accounts_;  // account URL -> its key
  std::map<int, Order> orders_;
};

AcmeOptions FastOptions(const FakeAcme& fake) {
  AcmeOptions o;
  o.directory_url = fake.directory();
  o.email = "ops@example.com";
  o.poll_interval = absl::Milliseconds(5);
  o.order_timeout = absl::Seconds(30);
  return o;
}

std::string SerialOf(const std::string& chain) {
  auto certs = security::ParseCertificates(chain, "chain");
  return certs.ok() ? security::SerialHex(certs->front().get()) : "";
}

// ---- the client -----------------------------------------------------------------------------

TEST(AcmeClientTest, OrdersACertificateWithSignedRequestsFreshNoncesAndTheKeyAuthorization) {
  FakeAcme fake;
  std::map<std::string, std::string> served;  // what "every node" answers
  fake.fetch = [&](const std::string& token) { return served[token]; };
  AcmeClient client(FastOptions(fake), MakeHttpAcmeTransport("", absl::Seconds(10)));
  std::vector<v1::AcmeChallenge> published;
  auto publish = [&](const std::vector<v1::AcmeChallenge>& cs) {
    published = cs;
    for (const auto& c : cs) served[c.token()] = c.key_authorization();
    return absl::OkStatus();
  };
  auto issued = client.Obtain("shop.example.com", publish);
  ASSERT_TRUE(issued.ok()) << issued.status();
  ASSERT_EQ(published.size(), 1u);
  EXPECT_EQ(published[0].token(), "tok1_A-z");
  EXPECT_TRUE(absl::StartsWith(published[0].key_authorization(), "tok1_A-z."));
  // The chain names the domain and goes with the returned key.
  auto info = CheckIngressCertificate("shop.example.com", issued->certificate_pem,
                                      issued->key_pem.reveal());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_THAT(info->names(), ::testing::ElementsAre("shop.example.com"));
  EXPECT_THAT(info->issuer(), HasSubstr("CN=Fake ACME CA"));
  EXPECT_FALSE(client.account_url().empty());

  // A second order reuses the account (kid) and gets a new key.
  served.clear();
  auto again = client.Obtain("shop.example.com", publish);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_NE(SerialOf(again->certificate_pem), SerialOf(issued->certificate_pem));
  EXPECT_NE(again->key_pem.reveal(), issued->key_pem.reveal());
  FakeAcme::Counts c = fake.counts();
  EXPECT_EQ(c.accounts, 1);
  EXPECT_EQ(c.orders, 2);
  EXPECT_EQ(c.finalized, 2);
  EXPECT_EQ(c.rejected, 0) << ::testing::PrintToString(c.errors);
}

TEST(AcmeClientTest, ABadNonceIsRetriedWithTheNonceItCarries) {
  FakeAcme fake;
  fake.bad_nonces = 3;
  std::map<std::string, std::string> served;
  fake.fetch = [&](const std::string& token) { return served[token]; };
  AcmeClient client(FastOptions(fake), MakeHttpAcmeTransport("", absl::Seconds(10)));
  auto issued = client.Obtain("a.example.com", [&](const std::vector<v1::AcmeChallenge>& cs) {
    for (const auto& c : cs) served[c.token()] = c.key_authorization();
    return absl::OkStatus();
  });
  ASSERT_TRUE(issued.ok()) << issued.status();
  FakeAcme::Counts c = fake.counts();
  EXPECT_EQ(c.bad_nonce_answers, 3);
  EXPECT_TRUE(c.errors.empty()) << ::testing::PrintToString(c.errors);
}

TEST(AcmeClientTest, BadNoncesWithoutEndAreAnErrorNotALoop) {
  FakeAcme fake;
  fake.bad_nonces = 1000;
  AcmeOptions o = FastOptions(fake);
  o.bad_nonce_retries = 2;
  AcmeClient client(o, MakeHttpAcmeTransport("", absl::Seconds(10)));
  auto issued = client.Obtain("a.example.com", [](const auto&) { return absl::OkStatus(); });
  ASSERT_FALSE(issued.ok());
  EXPECT_THAT(std::string(issued.status().message()), HasSubstr("newAccount"));
  EXPECT_THAT(std::string(issued.status().message()), HasSubstr("badNonce"));
  EXPECT_EQ(fake.counts().bad_nonce_answers, 3);
}

TEST(AcmeClientTest, AChallengeTheServerCannotValidateIsAnErrorWithItsReason) {
  FakeAcme fake;
  fake.fetch = [](const std::string&) { return std::string("wrong"); };
  AcmeClient client(FastOptions(fake), MakeHttpAcmeTransport("", absl::Seconds(10)));
  auto issued = client.Obtain("shop.example.com", [](const auto&) { return absl::OkStatus(); });
  ASSERT_FALSE(issued.ok());
  EXPECT_THAT(std::string(issued.status().message()),
              HasSubstr("http-01 challenge for shop.example.com is invalid"));
  EXPECT_THAT(std::string(issued.status().message()), HasSubstr("key authorization \"wrong\""));
  EXPECT_EQ(fake.counts().finalized, 0);
}

TEST(AcmeClientTest, APublishErrorEndsTheOrderBeforeTheServerValidates) {
  FakeAcme fake;
  bool asked = false;
  fake.fetch = [&](const std::string&) {
    asked = true;
    return std::string();
  };
  AcmeClient client(FastOptions(fake), MakeHttpAcmeTransport("", absl::Seconds(10)));
  auto issued = client.Obtain("shop.example.com", [](const auto&) {
    return absl::AbortedError("the ingress was removed");
  });
  EXPECT_EQ(issued.status(), absl::AbortedError("the ingress was removed"));
  EXPECT_FALSE(asked);
}

TEST(AcmeClientTest, AnUnreachableDirectoryIsUnavailableNamingTheUrl) {
  const int port = testing_util::FreePort();
  AcmeOptions o;
  o.directory_url = absl::StrCat("http://127.0.0.1:", port, "/dir");
  AcmeClient client(o, MakeHttpAcmeTransport("", absl::Seconds(5)));
  auto issued = client.Obtain("a.example.com", [](const auto&) { return absl::OkStatus(); });
  EXPECT_EQ(issued.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(issued.status().message()), HasSubstr(o.directory_url));
}

TEST(AcmeClientTest, Base64UrlHasNoPaddingAndRoundTrips) {
  EXPECT_EQ(Base64Url(std::string("\xfb\xff", 2)), "-_8");
  EXPECT_EQ(*Base64UrlDecode("-_8"), std::string("\xfb\xff", 2));
  EXPECT_FALSE(Base64UrlDecode("a+b/").ok());
}

TEST(AcmeBackoffTest, DoublesFromTheMinimumUpToTheMaximum) {
  EXPECT_EQ(AcmeBackoff(1, absl::Seconds(5), absl::Hours(1)), absl::Seconds(5));
  EXPECT_EQ(AcmeBackoff(2, absl::Seconds(5), absl::Hours(1)), absl::Seconds(10));
  EXPECT_EQ(AcmeBackoff(4, absl::Seconds(5), absl::Hours(1)), absl::Seconds(40));
  EXPECT_EQ(AcmeBackoff(40, absl::Seconds(5), absl::Hours(1)), absl::Hours(1));
}

// ---- the controller and the API -------------------------------------------------------------

class AcmeControllerTest : public testing::Test {
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
    key_fn_ = [this]() -> absl::StatusOr<security::SecretBytes> { return key_; };
    api_->SetSecretKey(key_fn_);
    api_->SetAcmeEnabled(true);
    v1::CreateServiceRequest req;
    req.mutable_spec()->set_name("web");
    req.mutable_spec()->set_replicas(1);
    req.mutable_spec()->mutable_template_()->set_command("app");
    v1::Service out;
    ASSERT_TRUE(api_->control().CreateService(nullptr, &req, &out).ok());
    // The fake validates what the nodes would serve: the routing table's challenges.
    routes_ = std::make_unique<RoutingTableCache>(*store_, clock_);
    fake_.fetch = [this](const std::string& token) {
      std::shared_ptr<const v1::RoutingTable> t = routes_->Get();
      for (const v1::IngressRoute& r : t->ingresses()) {
        for (const v1::AcmeChallenge& c : r.acme_challenges()) {
          if (c.token() == token) return c.key_authorization();
        }
      }
      return std::string("(not in the routing table)");
    };
    AcmeControllerOptions o;
    o.acme = FastOptions(fake_);
    o.propagation_delay = absl::ZeroDuration();
    acme_ = std::make_unique<AcmeController>(*store_, clock_, *events_, key_fn_, o);
  }

  grpc::Status CreateAcme(const std::string& name, const std::string& host,
                          v1::Ingress* out = nullptr) {
    v1::CreateIngressRequest req;
    req.mutable_spec()->set_name(name);
    req.mutable_spec()->set_host(host);
    req.mutable_spec()->set_service("web");
    req.mutable_spec()->mutable_tls()->set_mode(v1::INGRESS_TLS_MODE_ACME);
    v1::Ingress ignored;
    return api_->ingress().CreateIngress(nullptr, &req, out ? out : &ignored);
  }
  v1::Ingress Stored(const std::string& name) {
    auto i = GetObjectByName<v1::Ingress>(*store_, name);
    EXPECT_TRUE(i.has_value()) << name;
    return i.value_or(v1::Ingress());
  }
  std::vector<std::string> EventActions() {
    std::vector<std::string> out;
    for (const v1::Event& e : ListObjects<v1::Event>(*store_)) {
      if (e.kind() == "ingress") out.push_back(e.action());
    }
    return out;
  }

  testing_util::TempDir dir_;
  // Near the real time: the fake CA's certificates are valid from now on.
  FakeClock clock_{absl::Now()};
  NodeLiveness liveness_{clock_};
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<EventLog> events_;
  std::unique_ptr<ManagerApi> api_;
  security::SecretBytes key_;
  ClusterKeyFn key_fn_;
  FakeAcme fake_;
  std::unique_ptr<RoutingTableCache> routes_;
  std::unique_ptr<AcmeController> acme_;
};

TEST_F(AcmeControllerTest, IssuesAndStoresTheCertificateLikeAUsersWithTheKeySealed) {
  v1::Ingress created;
  ASSERT_TRUE(CreateAcme("shop", "shop.example.com", &created).ok());
  EXPECT_EQ(created.acme().state(), v1::ACME_STATE_PENDING);
  // Before the certificate: a TLS rule (HTTP redirects) without a certificate to fetch.
  std::shared_ptr<const v1::RoutingTable> before = routes_->Get();
  ASSERT_EQ(before->ingresses_size(), 1);
  EXPECT_TRUE(before->ingresses(0).tls());
  EXPECT_TRUE(before->ingresses(0).certificate_sha256().empty());
  v1::GetIngressCertificatesRequest get;
  v1::GetIngressCertificatesResponse none;
  ASSERT_TRUE(api_->dispatcher().GetIngressCertificates(nullptr, &get, &none).ok());
  EXPECT_EQ(none.certificates_size(), 0);

  acme_->RunOnce();
  v1::Ingress i = Stored("shop");
  ASSERT_EQ(i.acme().state(), v1::ACME_STATE_VALID) << i.acme().error();
  EXPECT_TRUE(i.acme().challenges().empty()) << "the challenges go once answered";
  EXPECT_EQ(i.acme().directory(), fake_.directory());
  EXPECT_THAT(i.certificate().names(), ::testing::ElementsAre("shop.example.com"));
  EXPECT_THAT(i.certificate().issuer(), HasSubstr("CN=Fake ACME CA"));
  EXPECT_TRUE(i.spec().tls().key_pem().empty()) << "never in the clear";
  auto key = OpenIngressKey(key_, i);
  ASSERT_TRUE(key.ok()) << key.status();
  auto matches = security::KeyMatchesCertificate(*key, i.spec().tls().certificate_pem());
  ASSERT_TRUE(matches.ok() && *matches);
  EXPECT_THAT(EventActions(), ::testing::Contains("certificate-issued"));
  FakeAcme::Counts c = fake_.counts();
  EXPECT_EQ(c.orders, 1);
  EXPECT_TRUE(c.errors.empty()) << ::testing::PrintToString(c.errors);

  // The nodes get it as they get a user's: digest in the table, the pair from the dispatcher.
  std::shared_ptr<const v1::RoutingTable> after = routes_->Get();
  EXPECT_EQ(after->ingresses(0).certificate_sha256(),
            CertificateSha256(i.spec().tls().certificate_pem()));
  EXPECT_TRUE(after->ingresses(0).acme_challenges().empty());
  v1::GetIngressCertificatesResponse pairs;
  ASSERT_TRUE(api_->dispatcher().GetIngressCertificates(nullptr, &get, &pairs).ok());
  ASSERT_EQ(pairs.certificates_size(), 1);
  EXPECT_EQ(pairs.certificates(0).key_pem(), key->reveal());
  // The API never returns the key; inspect shows the names and expiry.
  v1::GetIngressRequest inspect;
  inspect.set_ingress("shop");
  v1::Ingress shown;
  ASSERT_TRUE(api_->ingress().GetIngress(nullptr, &inspect, &shown).ok());
  EXPECT_FALSE(shown.spec().tls().has_sealed_key());
  EXPECT_TRUE(IsSet(shown.certificate().not_after()));

  // Nothing is due now: no new order.
  acme_->RunOnce();
  EXPECT_EQ(fake_.counts().orders, 1);
}

TEST_F(AcmeControllerTest, AFailureIsVisibleAnEventAndRetriedWithBackoff) {
  fake_.fail_validation = true;
  ASSERT_TRUE(CreateAcme("shop", "shop.example.com").ok());
  acme_->RunOnce();
  v1::Ingress i = Stored("shop");
  EXPECT_EQ(i.acme().state(), v1::ACME_STATE_FAILED);
  EXPECT_THAT(i.acme().error(), HasSubstr("http-01 challenge for shop.example.com is invalid"));
  EXPECT_EQ(i.acme().failures(), 1);
  EXPECT_EQ(FromProtoTime(i.acme().next_attempt_at()), clock_.Now() + absl::Seconds(5));
  EXPECT_TRUE(i.spec().tls().certificate_pem().empty());
  EXPECT_THAT(EventActions(), ::testing::Contains("acme-failed"));
  // Not before the backoff.
  clock_.Advance(absl::Seconds(4));
  acme_->RunOnce();
  EXPECT_EQ(fake_.counts().orders, 1);
  clock_.Advance(absl::Seconds(1));
  acme_->RunOnce();
  EXPECT_EQ(fake_.counts().orders, 2);
  i = Stored("shop");
  EXPECT_EQ(i.acme().failures(), 2);
  EXPECT_EQ(FromProtoTime(i.acme().next_attempt_at()), clock_.Now() + absl::Seconds(10));
  // The server comes right: the next attempt issues, and the failures are forgotten.
  fake_.fail_validation = false;
  clock_.Advance(absl::Seconds(10));
  acme_->RunOnce();
  i = Stored("shop");
  EXPECT_EQ(i.acme().state(), v1::ACME_STATE_VALID);
  EXPECT_EQ(i.acme().failures(), 0);
  EXPECT_TRUE(i.acme().error().empty());
  // One account for all three attempts: a CA limits how many a host may create.
  EXPECT_EQ(fake_.counts().accounts, 1);
}

// A CA's short-lived certificates (6 days here, less than the 30 days renewed before expiry)
// were due as soon as they were issued, and ordered again without end.
TEST_F(AcmeControllerTest, AShortLivedCertificateIsRenewedAfterTwoThirdsOfItsLife) {
  fake_.validity_seconds = 3600L * 24 * 6;
  ASSERT_TRUE(CreateAcme("shop", "shop.example.com").ok());
  acme_->RunOnce();
  ASSERT_EQ(Stored("shop").acme().state(), v1::ACME_STATE_VALID);
  acme_->RunOnce();
  EXPECT_EQ(fake_.counts().orders, 1);
  clock_.Advance(absl::Hours(24 * 4 - 2));
  acme_->RunOnce();
  EXPECT_EQ(fake_.counts().orders, 1);
  clock_.Advance(absl::Hours(3));
  acme_->RunOnce();
  EXPECT_EQ(fake_.counts().orders, 2);
  EXPECT_EQ(AcmeRenewAt(absl::UnixEpoch(), absl::UnixEpoch() + absl::Hours(24 * 90),
                        absl::Hours(24 * 30)),
            absl::UnixEpoch() + absl::Hours(24 * 60));
}

// A host name may be 253 characters; X.509's common name takes 64. OpenSSL refused the whole
// CSR, so such an ingress failed on every attempt.
TEST_F(AcmeControllerTest, AHostLongerThanACommonNameGetsACertificate) {
  const std::string host = absl::StrCat(std::string(60, 'a'), ".shop.example.com");
  ASSERT_GT(host.size(), 64u);
  ASSERT_TRUE(CreateAcme("long", host).ok());
  acme_->RunOnce();
  v1::Ingress i = Stored("long");
  EXPECT_EQ(i.acme().state(), v1::ACME_STATE_VALID) << i.acme().error();
  EXPECT_THAT(i.certificate().names(), ::testing::ElementsAre(host));
}

// Several managers: only the leader orders, and a leader that stops leading mid-order drops it
// (the next leader starts over) instead of finishing a certificate its fenced writes could not
// store.
TEST_F(AcmeControllerTest, OnlyTheLeaderOrdersAndALostLeadershipEndsTheOrder) {
  std::atomic<bool> leading{false};
  acme_->SetLeadership([&] { return leading.load(); });
  ASSERT_TRUE(CreateAcme("shop", "shop.example.com").ok());
  acme_->RunOnce();
  EXPECT_EQ(fake_.counts().orders, 0);
  EXPECT_EQ(Stored("shop").acme().state(), v1::ACME_STATE_PENDING);

  // Leadership goes while the CA validates the challenge.
  leading = true;
  auto fetch = fake_.fetch;
  fake_.fetch = [&, fetch](const std::string& token) {
    leading = false;
    return fetch(token);
  };
  acme_->RunOnce();
  EXPECT_EQ(fake_.counts().orders, 1);
  EXPECT_EQ(fake_.counts().finalized, 0);
  EXPECT_TRUE(Stored("shop").spec().tls().certificate_pem().empty());

  fake_.fetch = fetch;
  leading = true;
  acme_->RunOnce();
  v1::Ingress i = Stored("shop");
  EXPECT_EQ(i.acme().state(), v1::ACME_STATE_VALID);
  EXPECT_FALSE(i.spec().tls().certificate_pem().empty());
}

TEST_F(AcmeControllerTest, AnUnreachableDirectoryIsAFailureNotACrash) {
  AcmeControllerOptions o;
  o.acme.directory_url = absl::StrCat("http://127.0.0.1:", testing_util::FreePort(), "/dir");
  o.request_timeout = absl::Seconds(5);
  AcmeController unreachable(*store_, clock_, *events_, key_fn_, o);
  ASSERT_TRUE(CreateAcme("shop", "shop.example.com").ok());
  unreachable.RunOnce();
  v1::Ingress i = Stored("shop");
  EXPECT_EQ(i.acme().state(), v1::ACME_STATE_FAILED);
  EXPECT_THAT(i.acme().error(), HasSubstr(o.acme.directory_url));
}

TEST_F(AcmeControllerTest, RenewOrdersANewCertificateNowAndExpiryRenews30DaysBefore) {
  ASSERT_TRUE(CreateAcme("shop", "shop.example.com").ok());
  acme_->RunOnce();
  const std::string first = SerialOf(Stored("shop").spec().tls().certificate_pem());
  ASSERT_FALSE(first.empty());

  v1::RenewIngressRequest renew;
  renew.set_ingress("shop");
  v1::Ingress renewed;
  ASSERT_TRUE(api_->ingress().RenewIngress(nullptr, &renew, &renewed).ok());
  EXPECT_EQ(renewed.acme().renew_requested(), 1u);
  EXPECT_EQ(renewed.acme().state(), v1::ACME_STATE_PENDING);
  acme_->RunOnce();
  v1::Ingress i = Stored("shop");
  const std::string second = SerialOf(i.spec().tls().certificate_pem());
  EXPECT_NE(second, first);
  EXPECT_EQ(i.acme().renewed(), 1u);
  EXPECT_EQ(fake_.counts().orders, 2);

  // The fake's certificates last 90 days: renewed once fewer than 30 are left.
  clock_.Advance(absl::Hours(24 * 59));
  acme_->RunOnce();
  EXPECT_EQ(fake_.counts().orders, 2);
  clock_.Advance(absl::Hours(24 * 2));
  acme_->RunOnce();
  EXPECT_EQ(fake_.counts().orders, 3);
  EXPECT_NE(SerialOf(Stored("shop").spec().tls().certificate_pem()), second);
}

TEST_F(AcmeControllerTest, ReplacingWithTheSameHostKeepsTheCertificate) {
  ASSERT_TRUE(CreateAcme("shop", "shop.example.com").ok());
  acme_->RunOnce();
  const std::string pem = Stored("shop").spec().tls().certificate_pem();
  v1::CreateIngressRequest req;
  req.mutable_spec()->set_name("shop");
  req.mutable_spec()->set_host("shop.example.com");
  req.mutable_spec()->set_path("/v2");
  req.mutable_spec()->set_service("web");
  req.mutable_spec()->mutable_tls()->set_mode(v1::INGRESS_TLS_MODE_ACME);
  req.set_replace(true);
  v1::Ingress out;
  ASSERT_TRUE(api_->ingress().CreateIngress(nullptr, &req, &out).ok());
  v1::Ingress i = Stored("shop");
  EXPECT_EQ(i.spec().path(), "/v2");
  EXPECT_EQ(i.spec().tls().certificate_pem(), pem);
  EXPECT_EQ(i.acme().state(), v1::ACME_STATE_VALID);
  acme_->RunOnce();
  EXPECT_EQ(fake_.counts().orders, 1);
}

TEST_F(AcmeControllerTest, BadAcmeInputIsRefusedNamingTheFieldAndNothingIsStored) {
  api_->SetAcmeEnabled(false);
  grpc::Status s = CreateAcme("shop", "shop.example.com");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("--acme-directory"));
  api_->SetAcmeEnabled(true);
  s = CreateAcme("wild", "*.example.com");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("host: \"*.example.com\": acme proves a name"));
  v1::CreateIngressRequest req;
  req.mutable_spec()->set_name("given");
  req.mutable_spec()->set_host("given.example.com");
  req.mutable_spec()->set_service("web");
  req.mutable_spec()->mutable_tls()->set_mode(v1::INGRESS_TLS_MODE_ACME);
  req.mutable_spec()->mutable_tls()->set_certificate_pem("-----BEGIN CERTIFICATE-----");
  v1::Ingress out;
  s = api_->ingress().CreateIngress(nullptr, &req, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("tls: acme orders its own certificate"));
  EXPECT_TRUE(ListObjects<v1::Ingress>(*store_).empty());
  // Renewal is for ACME ingresses only.
  v1::CreateIngressRequest plain;
  plain.mutable_spec()->set_name("plain");
  plain.mutable_spec()->set_host("plain.example.com");
  plain.mutable_spec()->set_service("web");
  ASSERT_TRUE(api_->ingress().CreateIngress(nullptr, &plain, &out).ok());
  v1::RenewIngressRequest renew;
  renew.set_ingress("plain");
  s = api_->ingress().RenewIngress(nullptr, &renew, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("only an ingress with tls acme"));
  renew.set_ingress("nope");
  EXPECT_EQ(api_->ingress().RenewIngress(nullptr, &renew, &out).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace warren
