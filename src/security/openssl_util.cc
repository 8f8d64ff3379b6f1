#include "security/openssl_util.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "absl/strings/str_cat.h"

namespace warren::security {

bool SecretBytes::Equals(const SecretBytes& other) const {
  return value_.size() == other.value_.size() &&
         CRYPTO_memcmp(value_.data(), other.value_.data(), value_.size()) == 0;
}

void SecretBytes::Clear() {
  if (!value_.empty()) OPENSSL_cleanse(value_.data(), value_.size());
  value_.clear();
}

absl::Status OpenSslError(absl::StatusCode code, absl::string_view what) {
  std::string detail;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    absl::StrAppend(&detail, detail.empty() ? "" : "; ", buf);
  }
  if (detail.empty()) return absl::Status(code, what);
  return absl::Status(code, absl::StrCat(what, ": ", detail));
}

absl::StatusOr<std::string> RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (n > 0 && RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "random bytes");
  }
  return out;
}

absl::StatusOr<std::vector<X509Ptr>> ParseCertificates(absl::string_view pem,
                                                       absl::string_view field) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return OpenSslError(absl::StatusCode::kInternal, "BIO_new_mem_buf");
  std::vector<X509Ptr> out;
  while (X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    out.emplace_back(c);
  }
  // The loop ends on "no start line" at the end of the input; anything else is a broken block.
  const unsigned long last = ERR_peek_last_error();
  if (ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE) {
    ERR_clear_error();
  } else if (last != 0) {
    return OpenSslError(absl::StatusCode::kInvalidArgument,
                        absl::StrCat(field, ": not a valid PEM certificate"));
  }
  if (out.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": no PEM certificate (expected \"-----BEGIN CERTIFICATE-----\")"));
  }
  return out;
}

absl::StatusOr<X509Ptr> ParseCertificate(absl::string_view pem, absl::string_view field) {
  auto certs = ParseCertificates(pem, field);
  if (!certs.ok()) return certs.status();
  if (certs->size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": expected one certificate, found ", certs->size()));
  }
  return std::move(certs->front());
}

absl::StatusOr<std::string> CertificatePem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "PEM_write_bio_X509");
  }
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

absl::StatusOr<std::string> CertificateDer(X509* cert) {
  unsigned char* der = nullptr;
  const int n = i2d_X509(cert, &der);
  if (n <= 0) return OpenSslError(absl::StatusCode::kInternal, "i2d_X509");
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(n));
  OPENSSL_free(der);
  return out;
}

absl::StatusOr<EvpPkeyPtr> ParsePrivateKey(const SecretBytes& pem, absl::string_view field) {
  const absl::string_view text = pem.reveal();
  BioPtr bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  if (!bio) return OpenSslError(absl::StatusCode::kInternal, "BIO_new_mem_buf");
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    // OpenSSL's error text never contains key bytes, only the decoder's reason.
    return OpenSslError(absl::StatusCode::kInvalidArgument,
                        absl::StrCat(field, ": not a PEM private key"));
  }
  return key;
}

absl::StatusOr<SecretBytes> PrivateKeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_secmem()));
  if (!bio) bio.reset(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "PEM_write_bio_PrivateKey");
  }
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return SecretBytes(std::string(data, static_cast<size_t>(n)));
}

absl::StatusOr<absl::Time> Asn1TimeToTime(const ASN1_TIME* t) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) {
    return OpenSslError(absl::StatusCode::kInvalidArgument, "certificate time");
  }
  return absl::FromTimeT(timegm(&tm));
}

std::string SerialHex(X509* cert) {
  BignumPtr bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  if (!bn) return "";
  char* hex = BN_bn2hex(bn.get());
  std::string out = hex ? hex : "";
  OPENSSL_free(hex);
  return out;
}

}  // namespace warren::security
