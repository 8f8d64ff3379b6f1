#include "security/root_ca.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "security/aead.h"

namespace warren::security {
namespace {

constexpr absl::string_view kCaCommonName = "warren-cluster-ca";

std::string CaKeyAad(absl::string_view cluster_id, absl::string_view cert_pem) {
  return AssociatedData({"warren.v1.ClusterCA.sealed_key", cluster_id, cert_pem});
}

absl::Status AddNameEntry(X509_NAME* name, const char* field, absl::string_view value) {
  if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(value.data()),
                                 static_cast<int>(value.size()), -1, 0) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, absl::StrCat("subject ", field));
  }
  return absl::OkStatus();
}

// One extension from OpenSSL's config syntax. Only fixed strings go through here: names that
// come from a request are built as GENERAL_NAMEs (a ',' in them must not add another name).
absl::Status AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) {
    return OpenSslError(absl::StatusCode::kInternal, absl::StrCat("extension ", OBJ_nid2sn(nid)));
  }
  const int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) return OpenSslError(absl::StatusCode::kInternal, "X509_add_ext");
  return absl::OkStatus();
}

absl::Status ValidateHost(absl::string_view host) {
  if (host.empty() || host.size() > 253) {
    return absl::InvalidArgumentError(
        absl::StrCat("host \"", absl::CHexEscape(host), "\": must be 1 to 253 characters"));
  }
  for (absl::string_view label : absl::StrSplit(host, '.')) {
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return absl::InvalidArgumentError(
          absl::StrCat("host \"", absl::CHexEscape(host),
                       "\": not an IP address or a DNS name (labels of 1 to 63 characters, "
                       "not starting or ending with '-')"));
    }
    for (char c : label) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-') {
        return absl::InvalidArgumentError(
            absl::StrCat("host \"", absl::CHexEscape(host),
                         "\": not an IP address or a DNS name (letters, digits, '-' and '.')"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status AddSubjectAltNames(X509* cert, const std::vector<std::string>& hosts) {
  if (hosts.empty()) return absl::OkStatus();
  GENERAL_NAMES* names = sk_GENERAL_NAME_new_null();
  absl::Status status;
  for (const std::string& host : hosts) {
    unsigned char ip[16];
    GENERAL_NAME* gn = GENERAL_NAME_new();
    ASN1_STRING* value = nullptr;
    int type = GEN_DNS;
    if (inet_pton(AF_INET, host.c_str(), ip) == 1 || inet_pton(AF_INET6, host.c_str(), ip) == 1) {
      type = GEN_IPADD;
      value = ASN1_OCTET_STRING_new();
      ASN1_OCTET_STRING_set(value, ip, host.find(':') == std::string::npos ? 4 : 16);
    } else if (status = ValidateHost(host); status.ok()) {
      value = ASN1_IA5STRING_new();
      ASN1_STRING_set(value, host.data(), static_cast<int>(host.size()));
    }
    if (!status.ok()) {
      GENERAL_NAME_free(gn);
      break;
    }
    GENERAL_NAME_set0_value(gn, type, value);
    sk_GENERAL_NAME_push(names, gn);
  }
  if (status.ok() && X509_add1_ext_i2d(cert, NID_subject_alt_name, names, 0, 0) != 1) {
    status = OpenSslError(absl::StatusCode::kInternal, "subjectAltName");
  }
  GENERAL_NAMES_free(names);
  return status;
}

absl::Status SetRandomSerial(X509* cert) {
  // 127 random bits: unpredictable (no chosen-prefix collisions), positive, under 20 bytes.
  BignumPtr bn(BN_new());
  if (!bn || BN_rand(bn.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr) {
    return OpenSslError(absl::StatusCode::kInternal, "certificate serial");
  }
  return absl::OkStatus();
}

absl::Status SetValidity(X509* cert, absl::Time from, absl::Time until) {
  if (ASN1_TIME_set(X509_getm_notBefore(cert), absl::ToTimeT(from)) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert), absl::ToTimeT(until)) == nullptr) {
    return OpenSslError(absl::StatusCode::kInternal, "certificate validity");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RootCa> RootCa::Create(absl::string_view cluster_id, absl::Time now,
                                      absl::Duration validity) {
  if (auto s = ValidateId(cluster_id, "cluster id"); !s.ok()) return s;
  if (validity < absl::Hours(24)) {
    return absl::InvalidArgumentError(
        absl::StrCat("CA validity ", absl::FormatDuration(validity), ": must be at least 24h"));
  }
  EvpPkeyPtr key(EVP_EC_gen("P-256"));
  X509Ptr cert(X509_new());
  if (!key || !cert || X509_set_version(cert.get(), 2) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "create CA");
  }
  X509_NAME* name = X509_get_subject_name(cert.get());
  absl::Status s = AddNameEntry(name, "O", cluster_id);
  if (s.ok()) s = AddNameEntry(name, "CN", kCaCommonName);
  if (s.ok() && X509_set_issuer_name(cert.get(), name) != 1) {
    s = OpenSslError(absl::StatusCode::kInternal, "issuer");
  }
  if (s.ok()) s = SetRandomSerial(cert.get());
  // Backdated by an hour: a CA is made once, and a node a little behind must accept it.
  if (s.ok()) s = SetValidity(cert.get(), now - absl::Hours(1), now + validity);
  if (s.ok() && X509_set_pubkey(cert.get(), key.get()) != 1) {
    s = OpenSslError(absl::StatusCode::kInternal, "public key");
  }
  // No pathlen: a later root rotation can cross-sign the next root as an intermediate.
  if (s.ok()) s = AddExtension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE");
  if (s.ok())
    s = AddExtension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  if (s.ok()) s = AddExtension(cert.get(), cert.get(), NID_subject_key_identifier, "hash");
  if (s.ok() && X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0) {
    s = OpenSslError(absl::StatusCode::kInternal, "sign CA certificate");
  }
  if (!s.ok()) return s;
  auto pem = CertificatePem(cert.get());
  if (!pem.ok()) return pem.status();
  RootCa ca;
  ca.cluster_id_ = std::string(cluster_id);
  ca.cert_pem_ = std::move(*pem);
  ca.not_after_ = now + validity;
  ca.cert_ = std::move(cert);
  ca.key_ = std::move(key);
  return ca;
}

absl::StatusOr<RootCa> RootCa::FromPem(absl::string_view cluster_id, absl::string_view cert_pem,
                                       const SecretBytes& key_pem) {
  auto cert = ParseCertificate(cert_pem, "CA certificate");
  if (!cert.ok()) return cert.status();
  auto key = ParsePrivateKey(key_pem, "CA key");
  if (!key.ok()) return key.status();
  if (X509_check_private_key(cert->get(), key->get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("CA key does not belong to the CA certificate");
  }
  if (X509_check_ca(cert->get()) == 0) {
    return absl::InvalidArgumentError("CA certificate: not a CA certificate (basicConstraints)");
  }
  const int idx =
      X509_NAME_get_index_by_NID(X509_get_subject_name(cert->get()), NID_organizationName, -1);
  std::string subject_cluster;
  if (idx >= 0) {
    const ASN1_STRING* o =
        X509_NAME_ENTRY_get_data(X509_NAME_get_entry(X509_get_subject_name(cert->get()), idx));
    subject_cluster.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(o)),
                           static_cast<size_t>(ASN1_STRING_length(o)));
  }
  if (subject_cluster != cluster_id) {
    return absl::InvalidArgumentError(absl::StrCat("CA certificate is for cluster \"",
                                                   absl::CHexEscape(subject_cluster), "\", not \"",
                                                   cluster_id, "\""));
  }
  auto not_after = Asn1TimeToTime(X509_get0_notAfter(cert->get()));
  if (!not_after.ok()) return not_after.status();
  RootCa ca;
  ca.cluster_id_ = std::string(cluster_id);
  ca.cert_pem_ = std::string(cert_pem);
  ca.not_after_ = *not_after;
  ca.cert_ = std::move(*cert);
  ca.key_ = std::move(*key);
  return ca;
}

absl::StatusOr<v1::ClusterCA> RootCa::Seal(const SecretBytes& kek) const {
  auto key_pem = PrivateKeyPem(key_.get());
  if (!key_pem.ok()) return key_pem.status();
  auto sealed = security::Seal(kek, key_pem->reveal(), CaKeyAad(cluster_id_, cert_pem_));
  if (!sealed.ok()) return sealed.status();
  v1::ClusterCA out;
  out.set_cluster_id(cluster_id_);
  out.set_cert_pem(cert_pem_);
  *out.mutable_sealed_key() = std::move(*sealed);
  return out;
}

absl::StatusOr<RootCa> RootCa::Unseal(const v1::ClusterCA& stored, const SecretBytes& kek) {
  auto key_pem = Open(kek, stored.sealed_key(), CaKeyAad(stored.cluster_id(), stored.cert_pem()));
  if (!key_pem.ok()) {
    return absl::Status(key_pem.status().code(),
                        absl::StrCat("CA key of cluster ", stored.cluster_id(),
                                     ": cannot decrypt with this key-encryption key (a KEK file "
                                     "from another data dir, or a changed store): ",
                                     key_pem.status().message()));
  }
  return FromPem(stored.cluster_id(), stored.cert_pem(), *key_pem);
}

absl::StatusOr<std::string> RootCa::Issue(absl::string_view csr_pem,
                                          const CertificateIdentity& subject,
                                          const IssueOptions& options, absl::Time now) const {
  if (auto s = ValidateId(subject.node_id, "node id"); !s.ok()) return s;
  if (auto s = ValidateId(subject.cluster_id, "cluster id"); !s.ok()) return s;
  if (subject.cluster_id != cluster_id_) {
    return absl::InvalidArgumentError(
        absl::StrCat("cluster id ", subject.cluster_id, ": this CA issues for ", cluster_id_));
  }
  if (options.validity < kMinNodeCertValidity || options.validity > kMaxNodeCertValidity) {
    return absl::InvalidArgumentError(
        absl::StrCat("certificate validity ", absl::FormatDuration(options.validity),
                     ": must be between ", absl::FormatDuration(kMinNodeCertValidity), " and ",
                     absl::FormatDuration(kMaxNodeCertValidity)));
  }
  BioPtr bio(BIO_new_mem_buf(csr_pem.data(), static_cast<int>(csr_pem.size())));
  X509ReqPtr req(bio ? PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!req) return OpenSslError(absl::StatusCode::kInvalidArgument, "csr: not a PEM CSR");
  EVP_PKEY* pub = X509_REQ_get0_pubkey(req.get());
  if (pub == nullptr) return OpenSslError(absl::StatusCode::kInvalidArgument, "csr: no key");
  if (X509_REQ_verify(req.get(), pub) != 1) {
    return OpenSslError(absl::StatusCode::kInvalidArgument,
                        "csr: its signature does not match its key");
  }
  if (EVP_PKEY_get_base_id(pub) != EVP_PKEY_EC || EVP_PKEY_get_bits(pub) < 256) {
    return absl::InvalidArgumentError("csr: key must be ECDSA of at least 256 bits (P-256)");
  }
  if (now + options.validity > not_after_) {
    return absl::FailedPreconditionError(absl::StrCat("the cluster CA expires at ",
                                                      absl::FormatTime(not_after_),
                                                      ", before the requested certificate would"));
  }
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "create certificate");
  }
  X509_NAME* name = X509_get_subject_name(cert.get());
  absl::Status s = AddNameEntry(name, "O", subject.cluster_id);
  if (s.ok()) s = AddNameEntry(name, "OU", RoleName(subject.role));
  if (s.ok()) s = AddNameEntry(name, "CN", subject.node_id);
  if (s.ok() && X509_set_issuer_name(cert.get(), X509_get_subject_name(cert_.get())) != 1) {
    s = OpenSslError(absl::StatusCode::kInternal, "issuer");
  }
  if (s.ok()) s = SetRandomSerial(cert.get());
  const absl::Duration backdate = std::min(kMaxCertBackdate, options.validity / 10);
  if (s.ok()) s = SetValidity(cert.get(), now - backdate, now + options.validity);
  if (s.ok() && X509_set_pubkey(cert.get(), pub) != 1) {
    s = OpenSslError(absl::StatusCode::kInternal, "public key");
  }
  if (s.ok()) s = AddExtension(cert.get(), cert_.get(), NID_basic_constraints, "critical,CA:FALSE");
  if (s.ok()) s = AddExtension(cert.get(), cert_.get(), NID_key_usage, "critical,digitalSignature");
  if (s.ok()) {
    s = AddExtension(cert.get(), cert_.get(), NID_ext_key_usage, "serverAuth,clientAuth");
  }
  if (s.ok()) s = AddExtension(cert.get(), cert_.get(), NID_subject_key_identifier, "hash");
  if (s.ok()) {
    s = AddExtension(cert.get(), cert_.get(), NID_authority_key_identifier, "keyid:always");
  }
  if (s.ok()) s = AddSubjectAltNames(cert.get(), options.hosts);
  if (s.ok() && X509_sign(cert.get(), key_.get(), EVP_sha256()) <= 0) {
    s = OpenSslError(absl::StatusCode::kInternal, "sign certificate");
  }
  if (!s.ok()) return s;
  return CertificatePem(cert.get());
}

absl::StatusOr<KeyAndCertificate> RootCa::IssueKeyAndCertificate(const CertificateIdentity& subject,
                                                                 const IssueOptions& options,
                                                                 absl::Time now) const {
  auto key = GeneratePrivateKey();
  if (!key.ok()) return key.status();
  auto csr = CreateCsr(*key);
  if (!csr.ok()) return csr.status();
  auto cert = Issue(*csr, subject, options, now);
  if (!cert.ok()) return cert.status();
  return KeyAndCertificate{std::move(*key), std::move(*cert)};
}

}  // namespace warren::security
