#include "security/https_context.h"

#include <openssl/pem.h>
#include <openssl/ssl.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/ssl/context.hpp>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace warren::security {

absl::StatusOr<std::shared_ptr<boost::asio::ssl::context>> MakeHttpsServerContext(
    const TlsMaterial& material) {
  namespace ssl = boost::asio::ssl;
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  boost::system::error_code ec;
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                       ssl::context::single_dh_use,
                   ec);
  if (!ec) ctx->use_certificate_chain(boost::asio::buffer(material.cert_pem), ec);
  if (!ec) {
    ctx->use_private_key(
        boost::asio::buffer(material.key_pem.reveal().data(), material.key_pem.reveal().size()),
        ssl::context::pem, ec);
  }
  // A client certificate is optional (a browser logs in with a token) and verified when sent.
  if (!ec) ctx->add_certificate_authority(boost::asio::buffer(material.ca_cert_pem), ec);
  if (!ec) ctx->set_verify_mode(ssl::verify_peer, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("HTTPS context: ", ec.message()));
  // A browser resumes its session on its next connections; with client certificates asked for,
  // OpenSSL resumes only sessions of a named context (else a TLS 1.2 resumption is refused
  // with a handshake failure and a TLS 1.3 one falls back to a full handshake).
  static constexpr unsigned char kSessionContext[] = "warren-https";
  if (SSL_CTX_set_session_id_context(ctx->native_handle(), kSessionContext,
                                     sizeof(kSessionContext) - 1) != 1) {
    return absl::InternalError("HTTPS context: cannot name the session context");
  }
  // Browsers offer only certificates of the CAs the server names.
  BIO* bio =
      BIO_new_mem_buf(material.ca_cert_pem.data(), static_cast<int>(material.ca_cert_pem.size()));
  X509* ca = bio ? PEM_read_bio_X509(bio, nullptr, nullptr, nullptr) : nullptr;
  if (ca != nullptr) {
    SSL_CTX_add_client_CA(ctx->native_handle(), ca);
    X509_free(ca);
  }
  BIO_free(bio);
  return ctx;
}

std::shared_ptr<boost::asio::ssl::context> HttpsContextSource::Get() {
  std::error_code ec;
  const std::string generation =
      std::filesystem::read_symlink(std::filesystem::path(dir_.dir()) / "current", ec).string();
  absl::MutexLock lock(&mu_);
  if (context_ && generation == generation_) return context_;
  auto material = dir_.Read();
  if (!material.ok()) {
    spdlog::warn("HTTPS: reading {}: {}", dir_.dir(), material.status().ToString());
    return context_;
  }
  auto ctx = MakeHttpsServerContext(*material);
  if (!ctx.ok()) {
    spdlog::warn("HTTPS: {}", ctx.status().ToString());
    return context_;
  }
  context_ = std::move(*ctx);
  generation_ = generation;
  return context_;
}

}  // namespace warren::security
