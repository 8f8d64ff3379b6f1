#include "ingress/ingress_tls.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/sha.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "ingress/ingress_match.h"
#include "ingress/ingress_spec.h"
#include "security/openssl_util.h"

namespace warren {

std::string CertificateSha256(absl::string_view pem) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(pem.data()), pem.size(), digest);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

std::string IngressHttpsUrl(absl::string_view host, absl::string_view target, int https_port) {
  std::string url = absl::StrCat("https://", host);
  if (https_port != 443) absl::StrAppend(&url, ":", https_port);
  absl::StrAppend(&url, target.empty() || target[0] != '/' ? "/" : "", target);
  return url;
}

namespace {

// TLS 1.2 and 1.3 only; no renegotiation (TLS 1.2 clients could start one per connection).
absl::Status RestrictVersions(SSL_CTX* ctx) {
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
    return security::OpenSslError(absl::StatusCode::kInternal, "setting the TLS versions");
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<SSL_CTX>> MakeServerContext(absl::string_view cert_pem,
                                                           absl::string_view key_pem,
                                                           absl::string_view field) {
  std::shared_ptr<SSL_CTX> ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  if (!ctx) return security::OpenSslError(absl::StatusCode::kInternal, "SSL_CTX_new");
  if (absl::Status s = RestrictVersions(ctx.get()); !s.ok()) return s;
  auto chain = security::ParseCertificates(cert_pem, absl::StrCat(field, ".certificate"));
  if (!chain.ok()) return chain.status();
  if (chain->empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".certificate: no certificate"));
  }
  const security::SecretBytes key_bytes{std::string(key_pem)};
  auto key = security::ParsePrivateKey(key_bytes, absl::StrCat(field, ".key"));
  if (!key.ok()) return key.status();
  if (SSL_CTX_use_certificate(ctx.get(), (*chain)[0].get()) != 1) {
    return security::OpenSslError(absl::StatusCode::kInvalidArgument,
                                  absl::StrCat(field, ".certificate"));
  }
  for (size_t i = 1; i < chain->size(); ++i) {
    if (SSL_CTX_add1_chain_cert(ctx.get(), (*chain)[i].get()) != 1) {
      return security::OpenSslError(absl::StatusCode::kInvalidArgument,
                                    absl::StrCat(field, ".certificate (chain)"));
    }
  }
  if (SSL_CTX_use_PrivateKey(ctx.get(), key->get()) != 1 ||
      SSL_CTX_check_private_key(ctx.get()) != 1) {
    return security::OpenSslError(absl::StatusCode::kInvalidArgument,
                                  absl::StrCat(field, ".key: not the certificate's key"));
  }
  return ctx;
}

IngressTlsContexts::IngressTlsContexts() : base_(boost::asio::ssl::context::tls_server) {
  SSL_CTX* ctx = base_.native_handle();
  // Cannot fail with constant arguments in range; checked where it could (MakeServerContext).
  (void)RestrictVersions(ctx);
  SSL_CTX_set_tlsext_servername_callback(ctx, &IngressTlsContexts::OnServerName);
  SSL_CTX_set_tlsext_servername_arg(ctx, this);
}

IngressTlsContexts::~IngressTlsContexts() = default;

int IngressTlsContexts::OnServerName(SSL* ssl, int* alert, void* arg) {
  const auto* self = static_cast<const IngressTlsContexts*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  std::shared_ptr<SSL_CTX> ctx;
  if (name != nullptr) {
    absl::string_view n(name);
    absl::ConsumeSuffix(&n, ".");
    ctx = self->Select(absl::AsciiStrToLower(n));
  }
  if (!ctx) {
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  // The connection takes a reference of its own: a swap does not pull it away.
  if (SSL_set_SSL_CTX(ssl, ctx.get()) == nullptr) {
    *alert = SSL_AD_INTERNAL_ERROR;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  return SSL_TLSEXT_ERR_OK;
}

std::shared_ptr<SSL_CTX> IngressTlsContexts::Select(absl::string_view server_name) const {
  absl::MutexLock lock(&mu_);
  const Entry* best = nullptr;
  size_t best_rank = 0;
  for (const Entry& e : entries_) {
    if (!IngressHostMatches(e.host, server_name)) continue;
    // Exact beats every wildcard; a longer wildcard beats a shorter one.
    const size_t rank = absl::StartsWith(e.host, "*.") ? e.host.size() : SIZE_MAX;
    if (best == nullptr || rank > best_rank) {
      best = &e;
      best_rank = rank;
    }
  }
  return best ? best->ctx : nullptr;
}

absl::Status IngressTlsContexts::Update(std::vector<v1::IngressKeyPair>& pairs) {
  std::vector<Entry> next;
  std::map<std::string, std::string> given;
  std::vector<std::string> errors;
  for (v1::IngressKeyPair& p : pairs) {
    given[p.name()] = p.certificate_sha256();
    std::string* key = p.mutable_key_pem();
    const bool taken =
        std::any_of(next.begin(), next.end(), [&](const Entry& e) { return e.host == p.host(); });
    if (!taken) {
      auto ctx = MakeServerContext(p.certificate_pem(), *key, absl::StrCat("ingress ", p.name()));
      if (ctx.ok()) {
        next.push_back(Entry{p.host(), std::move(*ctx)});
      } else {
        errors.push_back(std::string(ctx.status().message()));
      }
    }
    if (!key->empty()) OPENSSL_cleanse(key->data(), key->size());
    key->clear();
  }
  {
    absl::MutexLock lock(&mu_);
    entries_.swap(next);
    given_ = std::move(given);
  }
  // The old contexts go here, or with the last connection that uses one.
  if (errors.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrJoin(errors, "; "));
}

std::map<std::string, std::string> IngressTlsContexts::Given() const {
  absl::MutexLock lock(&mu_);
  return given_;
}

}  // namespace warren
