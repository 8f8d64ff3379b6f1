#ifndef WARREN_SECURITY_OPENSSL_UTIL_H_
#define WARREN_SECURITY_OPENSSL_UTIL_H_

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "security/secret_bytes.h"

// Small RAII and conversion helpers over OpenSSL 3; nothing here makes a trust decision.
namespace warren::security {

template <auto Free>
struct OpenSslDeleter {
  template <typename T>
  void operator()(T* p) const {
    Free(p);
  }
};
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, OpenSslDeleter<EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, OpenSslDeleter<X509_free>>;
using X509ReqPtr = std::unique_ptr<X509_REQ, OpenSslDeleter<X509_REQ_free>>;
using X509StorePtr = std::unique_ptr<X509_STORE, OpenSslDeleter<X509_STORE_free>>;
using X509StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, OpenSslDeleter<X509_STORE_CTX_free>>;
using BioPtr = std::unique_ptr<BIO, OpenSslDeleter<BIO_free_all>>;
using BignumPtr = std::unique_ptr<BIGNUM, OpenSslDeleter<BN_free>>;
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, OpenSslDeleter<EVP_CIPHER_CTX_free>>;

// "what: <OpenSSL's queued errors>" (the queue is emptied), with the given code.
absl::Status OpenSslError(absl::StatusCode code, absl::string_view what);

// Bytes from OpenSSL's CSPRNG.
absl::StatusOr<std::string> RandomBytes(size_t n);

// The PEM certificates in `pem`, in order. `field` names the input in errors.
absl::StatusOr<std::vector<X509Ptr>> ParseCertificates(absl::string_view pem,
                                                       absl::string_view field);
// Exactly one certificate (the first of a chain is taken by the callers that accept chains).
absl::StatusOr<X509Ptr> ParseCertificate(absl::string_view pem, absl::string_view field);
absl::StatusOr<std::string> CertificatePem(X509* cert);
absl::StatusOr<std::string> CertificateDer(X509* cert);

absl::StatusOr<EvpPkeyPtr> ParsePrivateKey(const SecretBytes& pem, absl::string_view field);
// PKCS#8 PEM ("BEGIN PRIVATE KEY").
absl::StatusOr<SecretBytes> PrivateKeyPem(EVP_PKEY* key);

absl::StatusOr<absl::Time> Asn1TimeToTime(const ASN1_TIME* t);
// Upper-case hex, no separators.
std::string SerialHex(X509* cert);

}  // namespace warren::security

#endif  // WARREN_SECURITY_OPENSSL_UTIL_H_
