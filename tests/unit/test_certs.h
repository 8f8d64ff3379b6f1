#ifndef WARREN_TESTS_UNIT_TEST_CERTS_H_
#define WARREN_TESTS_UNIT_TEST_CERTS_H_

// Certificates made at test time for the ingress tests.

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "security/openssl_util.h"

namespace warren::testing_util {

struct CertAndKey {
  std::string cert_pem;
  std::string key_pem;
};

// A self-signed P-256 certificate naming `dns_names` (subject alternative names), valid for 30
// days, with this serial number.
inline CertAndKey MakeCertificate(const std::vector<std::string>& dns_names, long serial = 1) {
  security::EvpPkeyPtr key(EVP_EC_gen("P-256"));
  EXPECT_NE(key, nullptr);
  security::X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600L * 24 * 30);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(dns_names[0].c_str()), -1, -1,
                             0);
  X509_set_issuer_name(cert.get(), name);
  const std::string san = "DNS:" + absl::StrJoin(dns_names, ",DNS:");
  X509_EXTENSION* ext =
      X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, const_cast<char*>(san.c_str()));
  EXPECT_NE(ext, nullptr);
  X509_add_ext(cert.get(), ext, -1);
  X509_EXTENSION_free(ext);
  EXPECT_GT(X509_sign(cert.get(), key.get(), EVP_sha256()), 0);
  CertAndKey out;
  out.cert_pem = *security::CertificatePem(cert.get());
  out.key_pem = std::string(security::PrivateKeyPem(key.get())->reveal());
  return out;
}

}  // namespace warren::testing_util

#endif  // WARREN_TESTS_UNIT_TEST_CERTS_H_
