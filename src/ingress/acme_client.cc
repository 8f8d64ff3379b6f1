#include "ingress/acme_client.h"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <thread>
#include <utility>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast.hpp>
#include <boost/beast/ssl.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "http/safe_read.h"
#include "nlohmann/json.hpp"
#include "security/certificates.h"
#include "security/openssl_util.h"

namespace warren {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using json = nlohmann::json;

std::string Base64Url(absl::string_view bytes) { return absl::WebSafeBase64Escape(bytes); }

absl::StatusOr<std::string> Base64UrlDecode(absl::string_view text) {
  std::string out;
  if (!absl::WebSafeBase64Unescape(text, &out)) {
    return absl::InvalidArgumentError("not base64url");
  }
  return out;
}

// ---- transport ------------------------------------------------------------------------------

namespace {

struct Url {
  bool tls = false;
  std::string host;
  std::string port;
  std::string target;
};

absl::StatusOr<Url> ParseUrl(const std::string& url) {
  Url u;
  std::string rest;
  if (absl::StartsWith(url, "https://")) {
    u.tls = true;
    rest = url.substr(8);
  } else if (absl::StartsWith(url, "http://")) {
    rest = url.substr(7);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", url, "\": an ACME URL must start with https:// or http://"));
  }
  const size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  u.target = slash == std::string::npos ? "/" : rest.substr(slash);
  u.port = u.tls ? "443" : "80";
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string::npos)
      return absl::InvalidArgumentError(absl::StrCat(url, ": bad host"));
    u.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size() && authority[close + 1] == ':') {
      u.port = authority.substr(close + 2);
    }
  } else if (const size_t colon = authority.rfind(':'); colon != std::string::npos) {
    u.host = authority.substr(0, colon);
    u.port = authority.substr(colon + 1);
  } else {
    u.host = authority;
  }
  if (u.host.empty()) return absl::InvalidArgumentError(absl::StrCat("\"", url, "\": no host"));
  return u;
}

// Connects `stream` (a tcp_stream, or an ssl_stream over one), runs `after_connect(next)` (the
// TLS handshake, or nothing), then writes `req` and reads the answer into `parser`. The first
// error lands in `result`; success leaves `result` as the read's (empty) error.
template <class Stream, class Endpoints, class Request, class Parser, class AfterConnect>
void ConnectAndExchange(Stream& stream, const Endpoints& endpoints, Request& req,
                        beast::flat_buffer& buffer, Parser& parser, beast::error_code& result,
                        AfterConnect after_connect) {
  beast::get_lowest_layer(stream).async_connect(
      endpoints, [&, after_connect](beast::error_code e, auto) {
        if (e) {
          result = e;
          return;
        }
        after_connect([&] {
          http::async_write(stream, req, [&](beast::error_code e, std::size_t) {
            if (e) {
              result = e;
              return;
            }
            SafeAsyncRead(stream, buffer, parser, ReadUntil::kMessage,
                          [&](beast::error_code e, std::size_t) { result = e; });
          });
        });
      });
}

class HttpAcmeTransport final : public AcmeTransport {
 public:
  HttpAcmeTransport(std::string ca_bundle, absl::Duration timeout)
      : ca_bundle_(std::move(ca_bundle)), timeout_(timeout) {}

  absl::StatusOr<AcmeHttpResponse> Do(const std::string& method, const std::string& url,
                                      const std::string& content_type,
                                      const std::string& body) override {
    auto u = ParseUrl(url);
    if (!u.ok()) return u.status();
    http::request<http::string_body> req{http::string_to_verb(method), u->target, 11};
    const bool default_port = u->port == (u->tls ? "443" : "80");
    req.set(http::field::host, default_port ? u->host : absl::StrCat(u->host, ":", u->port));
    req.set(http::field::user_agent, "warren-acme");
    req.set(http::field::accept, "application/json, application/pem-certificate-chain, */*");
    req.set(http::field::connection, "close");
    if (!content_type.empty()) req.set(http::field::content_type, content_type);
    req.body() = body;
    req.prepare_payload();

    net::io_context ioc;
    net::ip::tcp::resolver resolver(ioc);
    beast::error_code ec;
    auto endpoints = resolver.resolve(u->host, u->port, ec);
    if (ec) return Unavailable(url, "resolve", ec);
    http::response_parser<http::string_body> parser;
    parser.header_limit(64 << 10);
    parser.body_limit(1 << 20);
    if (method == "HEAD") parser.skip(true);
    beast::flat_buffer buffer(64 << 10);
    beast::error_code result = net::error::timed_out;
    const auto deadline = absl::ToChronoMilliseconds(timeout_);
    if (u->tls) {
      net::ssl::context ctx(net::ssl::context::tls_client);
      ctx.set_default_verify_paths(ec);
      if (!ca_bundle_.empty()) {
        ctx.load_verify_file(ca_bundle_, ec);
        if (ec) {
          return absl::FailedPreconditionError(
              absl::StrCat("acme CA bundle \"", ca_bundle_, "\": ", ec.message()));
        }
      }
      ctx.set_verify_mode(net::ssl::verify_peer);
      beast::ssl_stream<beast::tcp_stream> stream(ioc, ctx);
      SSL_set_tlsext_host_name(stream.native_handle(), u->host.c_str());
      stream.set_verify_callback(net::ssl::host_name_verification(u->host));
      beast::get_lowest_layer(stream).expires_after(deadline);
      ConnectAndExchange(stream, endpoints, req, buffer, parser, result, [&](auto next) {
        stream.async_handshake(net::ssl::stream_base::client, [&, next](beast::error_code e) {
          if (e) {
            result = e;
            return;
          }
          next();
        });
      });
      ioc.run_for(deadline + std::chrono::milliseconds(100));
    } else {
      beast::tcp_stream stream(ioc);
      stream.expires_after(deadline);
      ConnectAndExchange(stream, endpoints, req, buffer, parser, result, [](auto next) { next(); });
      ioc.run_for(deadline + std::chrono::milliseconds(100));
    }
    // A TLS peer that closes without close_notify after a complete answer is fine.
    if (!parser.is_header_done() || (!parser.is_done() && method != "HEAD")) {
      return Unavailable(url, method, result);
    }
    AcmeHttpResponse out;
    out.status = parser.get().result_int();
    for (const auto& f : parser.get()) {
      out.headers[absl::AsciiStrToLower(std::string(f.name_string()))] = std::string(f.value());
    }
    out.body = parser.get().body();
    return out;
  }

 private:
  static absl::Status Unavailable(const std::string& url, const std::string& what,
                                  const beast::error_code& ec) {
    return absl::UnavailableError(
        absl::StrCat(what, " ", url, ": ", ec ? ec.message() : std::string("incomplete answer")));
  }

  const std::string ca_bundle_;
  const absl::Duration timeout_;
};

}  // namespace

std::unique_ptr<AcmeTransport> MakeHttpAcmeTransport(std::string ca_bundle,
                                                     absl::Duration timeout) {
  return std::make_unique<HttpAcmeTransport>(std::move(ca_bundle), timeout);
}

// ---- account key and JWS --------------------------------------------------------------------

namespace {

EVP_PKEY* Pkey(const std::shared_ptr<void>& p) { return static_cast<EVP_PKEY*>(p.get()); }

std::string Sha256(absl::string_view data) {
  unsigned char out[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), out);
  return std::string(reinterpret_cast<char*>(out), sizeof(out));
}

absl::StatusOr<std::string> Coordinate(EVP_PKEY* key, const char* name) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &bn) != 1) {
    return security::OpenSslError(absl::StatusCode::kInternal, "read the account key");
  }
  security::BignumPtr owned(bn);
  std::string out(32, '\0');
  if (BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), 32) != 32) {
    return absl::InternalError("account key coordinate does not fit 32 bytes");
  }
  return out;
}

}  // namespace

absl::StatusOr<AcmeAccountKey> AcmeAccountKey::Generate() {
  EVP_PKEY* raw = EVP_EC_gen("P-256");
  if (raw == nullptr) {
    return security::OpenSslError(absl::StatusCode::kInternal, "generate the account key");
  }
  AcmeAccountKey k;
  k.key_ = std::shared_ptr<void>(raw, [](void* p) { EVP_PKEY_free(static_cast<EVP_PKEY*>(p)); });
  auto x = Coordinate(raw, OSSL_PKEY_PARAM_EC_PUB_X);
  if (!x.ok()) return x.status();
  auto y = Coordinate(raw, OSSL_PKEY_PARAM_EC_PUB_Y);
  if (!y.ok()) return y.status();
  // Members in lexicographic order, no whitespace: the thumbprint's input (RFC 7638 3).
  k.jwk_ = absl::StrCat(R"({"crv":"P-256","kty":"EC","x":")", Base64Url(*x), R"(","y":")",
                        Base64Url(*y), R"("})");
  return k;
}

std::string AcmeAccountKey::Thumbprint() const { return Base64Url(Sha256(jwk_)); }

absl::StatusOr<std::string> AcmeAccountKey::Sign(const std::string& url, const std::string& nonce,
                                                 const std::string& kid,
                                                 const std::string& payload) const {
  json header = {{"alg", "ES256"}, {"nonce", nonce}, {"url", url}};
  if (kid.empty()) {
    header["jwk"] = json::parse(jwk_);
  } else {
    header["kid"] = kid;
  }
  const std::string protected64 = Base64Url(header.dump());
  const std::string payload64 = Base64Url(payload);
  const std::string input = absl::StrCat(protected64, ".", payload64);
  std::unique_ptr<EVP_MD_CTX, security::OpenSslDeleter<EVP_MD_CTX_free>> md(EVP_MD_CTX_new());
  size_t len = 0;
  if (!md || EVP_DigestSignInit(md.get(), nullptr, EVP_sha256(), nullptr, Pkey(key_)) != 1 ||
      EVP_DigestSign(md.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()),
                     input.size()) != 1) {
    return security::OpenSslError(absl::StatusCode::kInternal, "sign the ACME request");
  }
  std::string der(len, '\0');
  if (EVP_DigestSign(md.get(), reinterpret_cast<unsigned char*>(der.data()), &len,
                     reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1) {
    return security::OpenSslError(absl::StatusCode::kInternal, "sign the ACME request");
  }
  // JWS wants r||s, 32 bytes each (RFC 7518 3.4), not OpenSSL's DER.
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  std::unique_ptr<ECDSA_SIG, security::OpenSslDeleter<ECDSA_SIG_free>> sig(
      d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(len)));
  if (!sig) return security::OpenSslError(absl::StatusCode::kInternal, "parse the signature");
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  std::string raw(64, '\0');
  if (BN_bn2binpad(r, reinterpret_cast<unsigned char*>(raw.data()), 32) != 32 ||
      BN_bn2binpad(s, reinterpret_cast<unsigned char*>(raw.data()) + 32, 32) != 32) {
    return absl::InternalError("signature does not fit 64 bytes");
  }
  json jws = {{"protected", protected64}, {"payload", payload64}, {"signature", Base64Url(raw)}};
  return jws.dump();
}

absl::StatusOr<std::string> CreateDomainCsrDer(const security::SecretBytes& key_pem,
                                               const std::string& domain) {
  auto key = security::ParsePrivateKey(key_pem, "certificate key");
  if (!key.ok()) return key.status();
  security::X509ReqPtr req(X509_REQ_new());
  X509_NAME* name = req ? X509_REQ_get_subject_name(req.get()) : nullptr;
  // The name goes in the subject alternative name; the CN too when it fits X.509's 64
  // characters (a longer host name, valid up to 253, made OpenSSL refuse the whole CSR).
  constexpr size_t kMaxCommonName = 64;
  if (!req || X509_REQ_set_version(req.get(), 0) != 1 || name == nullptr ||
      (domain.size() <= kMaxCommonName &&
       X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                  reinterpret_cast<const unsigned char*>(domain.c_str()), -1, -1,
                                  0) != 1) ||
      X509_REQ_set_pubkey(req.get(), key->get()) != 1) {
    return security::OpenSslError(absl::StatusCode::kInternal, "create the CSR");
  }
  STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
  const std::string san = absl::StrCat("DNS:", domain);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, san.c_str());
  bool ok = exts != nullptr && ext != nullptr && sk_X509_EXTENSION_push(exts, ext) > 0;
  if (ok) ok = X509_REQ_add_extensions(req.get(), exts) == 1;
  if (exts != nullptr) {
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  } else if (ext != nullptr) {
    X509_EXTENSION_free(ext);
  }
  if (!ok || X509_REQ_sign(req.get(), key->get(), EVP_sha256()) <= 0) {
    return security::OpenSslError(absl::StatusCode::kInternal, "sign the CSR");
  }
  const int n = i2d_X509_REQ(req.get(), nullptr);
  if (n <= 0) return security::OpenSslError(absl::StatusCode::kInternal, "encode the CSR");
  std::string der(static_cast<size_t>(n), '\0');
  unsigned char* out = reinterpret_cast<unsigned char*>(der.data());
  i2d_X509_REQ(req.get(), &out);
  return der;
}

// ---- the protocol ---------------------------------------------------------------------------

namespace {

// "what: 403 urn:ietf:params:acme:error:unauthorized: detail" from a problem document.
absl::Status ProblemStatus(const std::string& what, const AcmeHttpResponse& r) {
  std::string type, detail;
  auto j = json::parse(r.body, nullptr, false);
  if (j.is_object()) {
    type = j.value("type", "");
    detail = j.value("detail", "");
  }
  std::string msg = absl::StrCat(what, ": the ACME server answered ", r.status);
  if (!type.empty()) absl::StrAppend(&msg, " ", type);
  if (!detail.empty()) absl::StrAppend(&msg, ": ", detail);
  const absl::StatusCode code = r.status >= 500 || r.status == 429
                                    ? absl::StatusCode::kUnavailable
                                    : absl::StatusCode::kFailedPrecondition;
  return absl::Status(code, msg);
}

absl::StatusOr<json> ParseObject(const std::string& what, const std::string& body) {
  auto j = json::parse(body, nullptr, false);
  if (!j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": the answer is not a JSON object"));
  }
  return j;
}

std::string StringField(const json& j, const char* name) {
  auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

AcmeClient::AcmeClient(AcmeOptions options, std::unique_ptr<AcmeTransport> transport)
    : options_(std::move(options)), transport_(std::move(transport)) {}

absl::Status AcmeClient::LoadDirectory() {
  if (directory_) return absl::OkStatus();
  auto r = transport_->Do("GET", options_.directory_url, "", "");
  if (!r.ok()) return r.status();
  if (r->status != 200)
    return ProblemStatus(absl::StrCat("directory ", options_.directory_url), *r);
  auto j = ParseObject("directory", r->body);
  if (!j.ok()) return j.status();
  Directory d{StringField(*j, "newNonce"), StringField(*j, "newAccount"),
              StringField(*j, "newOrder")};
  if (d.new_nonce.empty() || d.new_account.empty() || d.new_order.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("directory ", options_.directory_url,
                                                   ": newNonce, newAccount or newOrder missing"));
  }
  directory_ = std::move(d);
  return absl::OkStatus();
}

absl::Status AcmeClient::FetchNonce() {
  auto r = transport_->Do("HEAD", directory_->new_nonce, "", "");
  if (!r.ok()) return r.status();
  nonce_ = r->Header("replay-nonce");
  if (nonce_.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("newNonce: answered ", r->status, " without a Replay-Nonce"));
  }
  return absl::OkStatus();
}

absl::StatusOr<AcmeHttpResponse> AcmeClient::Post(const std::string& what, const std::string& url,
                                                  const std::string& payload, bool use_jwk) {
  for (int attempt = 0;; ++attempt) {
    if (nonce_.empty()) {
      if (auto s = FetchNonce(); !s.ok()) return s;
    }
    auto body = key_->Sign(url, nonce_, use_jwk ? "" : kid_, payload);
    if (!body.ok()) return body.status();
    nonce_.clear();  // each nonce is good for one request
    auto r = transport_->Do("POST", url, "application/jose+json", *body);
    if (!r.ok()) return r.status();
    nonce_ = r->Header("replay-nonce");
    if (r->status / 100 == 2) return r;
    if (r->status == 400 && attempt < options_.bad_nonce_retries) {
      auto j = json::parse(r->body, nullptr, false);
      if (j.is_object() && j.value("type", "") == "urn:ietf:params:acme:error:badNonce") continue;
    }
    return ProblemStatus(what, *r);
  }
}

absl::Status AcmeClient::EnsureAccount() {
  if (!kid_.empty()) return absl::OkStatus();
  if (!key_) {
    auto k = AcmeAccountKey::Generate();
    if (!k.ok()) return k.status();
    key_ = std::move(*k);
  }
  json payload = {{"termsOfServiceAgreed", true}};
  if (!options_.email.empty()) {
    payload["contact"] = json::array({absl::StrCat("mailto:", options_.email)});
  }
  auto r = Post("newAccount", directory_->new_account, payload.dump(), /*use_jwk=*/true);
  if (!r.ok()) return r.status();
  kid_ = r->Header("location");
  if (kid_.empty()) return absl::InvalidArgumentError("newAccount: no Location (account URL)");
  return absl::OkStatus();
}

absl::StatusOr<std::string> AcmeClient::PollStatus(const std::string& what, const std::string& url,
                                                   const std::vector<std::string>& waiting,
                                                   absl::Time deadline,
                                                   const std::function<bool()>& stop) {
  for (;;) {
    auto r = Post(what, url, "");
    if (!r.ok()) return r.status();
    auto j = ParseObject(what, r->body);
    if (!j.ok()) return j.status();
    const std::string status = StringField(*j, "status");
    if (std::find(waiting.begin(), waiting.end(), status) == waiting.end()) return r->body;
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat(what, ": still ", status, " after the order's time ran out"));
    }
    if (stop && stop()) return absl::CancelledError("stopping");
    absl::Duration wait = options_.poll_interval;
    int64_t retry_after = 0;
    if (absl::SimpleAtoi(r->Header("retry-after"), &retry_after) && retry_after > 0) {
      wait = std::min(absl::Seconds(retry_after), absl::Seconds(10));
    }
    absl::SleepFor(std::min(wait, std::max(deadline - absl::Now(), absl::ZeroDuration())));
  }
}

absl::StatusOr<AcmeIssued> AcmeClient::Obtain(const std::string& domain,
                                              const AcmePublishFn& publish,
                                              const std::function<bool()>& stop) {
  const absl::Time deadline = absl::Now() + options_.order_timeout;
  if (auto s = LoadDirectory(); !s.ok()) return s;
  if (auto s = EnsureAccount(); !s.ok()) return s;
  json order_req = {{"identifiers", json::array({{{"type", "dns"}, {"value", domain}}})}};
  auto order = Post("newOrder", directory_->new_order, order_req.dump());
  if (!order.ok()) return order.status();
  const std::string order_url = order->Header("location");
  auto oj = ParseObject("newOrder", order->body);
  if (!oj.ok()) return oj.status();
  if (order_url.empty()) return absl::InvalidArgumentError("newOrder: no Location (order URL)");
  const std::string finalize = StringField(*oj, "finalize");
  if (finalize.empty() || !oj->contains("authorizations") || !(*oj)["authorizations"].is_array()) {
    return absl::InvalidArgumentError("newOrder: no finalize URL or authorizations");
  }

  // Every pending authorization's HTTP-01 challenge.
  struct Pending {
    std::string authz_url, challenge_url;
  };
  std::vector<Pending> pending;
  std::vector<v1::AcmeChallenge> challenges;
  for (const json& a : (*oj)["authorizations"]) {
    if (!a.is_string()) continue;
    const std::string authz_url = a.get<std::string>();
    auto r = Post("authorization", authz_url, "");
    if (!r.ok()) return r.status();
    auto aj = ParseObject("authorization", r->body);
    if (!aj.ok()) return aj.status();
    const std::string status = StringField(*aj, "status");
    if (status == "valid") continue;  // reused from an earlier order
    if (status != "pending") {
      return absl::FailedPreconditionError(
          absl::StrCat("authorization for ", domain, " is ", status));
    }
    std::string url, token;
    if (aj->contains("challenges") && (*aj)["challenges"].is_array()) {
      for (const json& c : (*aj)["challenges"]) {
        if (c.is_object() && StringField(c, "type") == "http-01") {
          url = StringField(c, "url");
          token = StringField(c, "token");
        }
      }
    }
    if (url.empty() || token.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("authorization for ", domain, ": the server offers no http-01 challenge"));
    }
    // A token goes into a URL path the proxy matches: base64url only (RFC 8555 8.3).
    if (token.find_first_not_of(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") !=
        std::string::npos) {
      return absl::InvalidArgumentError("http-01 token: not base64url");
    }
    v1::AcmeChallenge& ch = challenges.emplace_back();
    ch.set_token(token);
    ch.set_key_authorization(absl::StrCat(token, ".", key_->Thumbprint()));
    pending.push_back({authz_url, url});
  }
  if (!challenges.empty()) {
    if (auto s = publish(challenges); !s.ok()) return s;
  }
  for (const Pending& p : pending) {
    if (stop && stop()) return absl::CancelledError("stopping");
    // The server validates once told the challenge is ready: an empty JSON object.
    auto r = Post("challenge", p.challenge_url, "{}");
    if (!r.ok()) return r.status();
    auto body = PollStatus("authorization", p.authz_url, {"pending"}, deadline, stop);
    if (!body.ok()) return body.status();
    auto aj = json::parse(*body);
    const std::string status = StringField(aj, "status");
    if (status != "valid") {
      std::string why;
      if (aj.contains("challenges") && aj["challenges"].is_array()) {
        for (const json& c : aj["challenges"]) {
          if (c.is_object() && c.contains("error") && c["error"].is_object()) {
            why = absl::StrCat(": ", StringField(c["error"], "type"), ": ",
                               StringField(c["error"], "detail"));
          }
        }
      }
      return absl::FailedPreconditionError(
          absl::StrCat("http-01 challenge for ", domain, " is ", status, why));
    }
  }

  // The server's reason for an invalid order (RFC 8555 7.1.3, the order's "error").
  auto order_error = [](const json& order) -> std::string {
    if (!order.contains("error") || !order["error"].is_object()) return "";
    return absl::StrCat(": ", StringField(order["error"], "type"), ": ",
                        StringField(order["error"], "detail"));
  };
  auto ready = PollStatus("order", order_url, {"pending"}, deadline, stop);
  if (!ready.ok()) return ready.status();
  const json rj = json::parse(*ready);
  if (const std::string st = StringField(rj, "status"); st != "ready" && st != "valid") {
    return absl::FailedPreconditionError(
        absl::StrCat("order for ", domain, " is ", st, order_error(rj)));
  }
  // Not past this point once the caller gives up: finalizing makes the CA issue (and count) a
  // certificate nobody would store.
  if (stop && stop()) return absl::CancelledError("stopping");
  AcmeIssued issued;
  auto key = security::GeneratePrivateKey();
  if (!key.ok()) return key.status();
  issued.key_pem = std::move(*key);
  auto csr = CreateDomainCsrDer(issued.key_pem, domain);
  if (!csr.ok()) return csr.status();
  json fin = {{"csr", Base64Url(*csr)}};
  auto f = Post("finalize", finalize, fin.dump());
  if (!f.ok()) return f.status();
  auto done = PollStatus("order", order_url, {"ready", "processing"}, deadline, stop);
  if (!done.ok()) return done.status();
  auto dj = json::parse(*done);
  if (StringField(dj, "status") != "valid") {
    return absl::FailedPreconditionError(absl::StrCat("order for ", domain, " is ",
                                                      StringField(dj, "status"), " after finalize",
                                                      order_error(dj)));
  }
  const std::string cert_url = StringField(dj, "certificate");
  if (cert_url.empty()) return absl::InvalidArgumentError("order: valid without a certificate URL");
  auto cert = Post("certificate", cert_url, "");
  if (!cert.ok()) return cert.status();
  if (cert->body.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
    return absl::InvalidArgumentError("certificate: the answer holds no PEM certificate");
  }
  issued.certificate_pem = cert->body;
  return issued;
}

}  // namespace warren
