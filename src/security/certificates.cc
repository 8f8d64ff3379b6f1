#include "security/certificates.h"

#include <arpa/inet.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "absl/random/distributions.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "security/openssl_util.h"

namespace warren::security {
namespace {

// The subject entry `nid` of `name`, "" when absent; error when present twice (ambiguous).
absl::StatusOr<std::string> SubjectEntry(X509_NAME* name, int nid, absl::string_view label) {
  const int idx = X509_NAME_get_index_by_NID(name, nid, -1);
  if (idx < 0) return std::string();
  if (X509_NAME_get_index_by_NID(name, nid, idx) >= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("certificate subject: more than one ", label, " entry"));
  }
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
  unsigned char* utf8 = nullptr;
  const int n = ASN1_STRING_to_UTF8(&utf8, data);
  if (n < 0) return OpenSslError(absl::StatusCode::kInvalidArgument, "certificate subject");
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

std::string IpToString(const ASN1_OCTET_STRING* ip) {
  char buf[INET6_ADDRSTRLEN] = {};
  const int len = ASN1_STRING_length(ip);
  const unsigned char* data = ASN1_STRING_get0_data(ip);
  if (len == 4) inet_ntop(AF_INET, data, buf, sizeof(buf));
  if (len == 16) inet_ntop(AF_INET6, data, buf, sizeof(buf));
  return buf;
}

absl::StatusOr<CertificateInfo> InfoFromX509(X509* cert) {
  CertificateInfo info;
  X509_NAME* subject = X509_get_subject_name(cert);
  auto cn = SubjectEntry(subject, NID_commonName, "CN");
  if (!cn.ok()) return cn.status();
  auto ou = SubjectEntry(subject, NID_organizationalUnitName, "OU");
  if (!ou.ok()) return ou.status();
  auto o = SubjectEntry(subject, NID_organizationName, "O");
  if (!o.ok()) return o.status();
  if (auto s = ValidateId(*cn, "certificate subject CN (node id)"); !s.ok()) return s;
  if (auto s = ValidateId(*o, "certificate subject O (cluster id)"); !s.ok()) return s;
  auto role = ParseRole(*ou);
  if (!role.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("certificate subject OU (role): ", role.status().message()));
  }
  info.identity = {*cn, *role, *o};
  info.serial = SerialHex(cert);
  auto nb = Asn1TimeToTime(X509_get0_notBefore(cert));
  if (!nb.ok()) return nb.status();
  auto na = Asn1TimeToTime(X509_get0_notAfter(cert));
  if (!na.ok()) return na.status();
  info.not_before = *nb;
  info.not_after = *na;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, i);
      if (gn->type == GEN_DNS) {
        const ASN1_IA5STRING* s = gn->d.dNSName;
        info.dns_names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                    static_cast<size_t>(ASN1_STRING_length(s)));
      } else if (gn->type == GEN_IPADD) {
        info.ip_addresses.push_back(IpToString(gn->d.iPAddress));
      }
    }
    GENERAL_NAMES_free(names);
  }
  return info;
}

}  // namespace

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kManager:
      return "manager";
    case Role::kWorker:
      return "worker";
    case Role::kAdmin:
      return "admin";
    case Role::kReadOnly:
      return "read-only";
  }
  return "unknown";
}

absl::StatusOr<Role> ParseRole(absl::string_view name) {
  for (Role r : {Role::kManager, Role::kWorker, Role::kAdmin, Role::kReadOnly}) {
    if (name == RoleName(r)) return r;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "role \"", absl::CHexEscape(name), "\": must be manager, worker, admin or read-only"));
}

absl::Status ValidateId(absl::string_view id, absl::string_view field) {
  if (id.empty() || id.size() > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", id.size(), " characters, must be 1 to 64"));
  }
  for (char c : id) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return absl::InvalidArgumentError(
          absl::StrCat(field, " \"", absl::CHexEscape(id),
                       "\": only letters, digits, '.', '_' and '-' allowed"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<SecretBytes> GeneratePrivateKey() {
  EvpPkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return OpenSslError(absl::StatusCode::kInternal, "generate P-256 key");
  return PrivateKeyPem(key.get());
}

absl::StatusOr<std::string> CreateCsr(const SecretBytes& key_pem) {
  auto key = ParsePrivateKey(key_pem, "private key");
  if (!key.ok()) return key.status();
  X509ReqPtr req(X509_REQ_new());
  if (!req || X509_REQ_set_version(req.get(), 0) != 1 ||
      X509_REQ_set_pubkey(req.get(), key->get()) != 1 ||
      X509_REQ_sign(req.get(), key->get(), EVP_sha256()) <= 0) {
    return OpenSslError(absl::StatusCode::kInternal, "create CSR");
  }
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_REQ(bio.get(), req.get()) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "write CSR");
  }
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

absl::StatusOr<CertificateInfo> ParseNodeCertificate(absl::string_view cert_pem) {
  auto certs = ParseCertificates(cert_pem, "certificate");
  if (!certs.ok()) return certs.status();
  return InfoFromX509(certs->front().get());
}

absl::Status CheckValidAt(const CertificateInfo& info, absl::Time now) {
  if (now < info.not_before) {
    return absl::FailedPreconditionError(
        absl::StrCat("certificate of node ", info.identity.node_id, " is not valid before ",
                     absl::FormatTime(info.not_before), " (clock skew?)"));
  }
  if (now > info.not_after) {
    return absl::FailedPreconditionError(absl::StrCat("certificate of node ", info.identity.node_id,
                                                      " expired at ",
                                                      absl::FormatTime(info.not_after)));
  }
  return absl::OkStatus();
}

absl::StatusOr<CertificateInfo> VerifyCertificate(absl::string_view ca_pem,
                                                  absl::string_view cert_pem, absl::Time now) {
  auto ca = ParseCertificate(ca_pem, "CA certificate");
  if (!ca.ok()) return ca.status();
  auto chain = ParseCertificates(cert_pem, "certificate");
  if (!chain.ok()) return chain.status();
  X509StorePtr store(X509_STORE_new());
  if (!store || X509_STORE_add_cert(store.get(), ca->get()) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "X509_STORE_add_cert");
  }
  STACK_OF(X509)* untrusted = sk_X509_new_null();
  for (size_t i = 1; i < chain->size(); ++i) sk_X509_push(untrusted, (*chain)[i].get());
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  absl::Status status;
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store.get(), chain->front().get(), untrusted) != 1) {
    status = OpenSslError(absl::StatusCode::kInternal, "X509_STORE_CTX_init");
  } else {
    X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
    X509_VERIFY_PARAM_set_time(param, absl::ToTimeT(now));
    // The same certificate serves as TLS client and server: demand both usages.
    X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_CLIENT);
    if (X509_verify_cert(ctx.get()) != 1) {
      const int err = X509_STORE_CTX_get_error(ctx.get());
      status = absl::UnauthenticatedError(
          absl::StrCat("certificate does not verify against the cluster CA: ",
                       X509_verify_cert_error_string(err)));
    } else if (X509_check_purpose(chain->front().get(), X509_PURPOSE_SSL_SERVER, 0) != 1) {
      status = absl::UnauthenticatedError("certificate is not valid for TLS server use");
    }
  }
  sk_X509_free(untrusted);
  ERR_clear_error();
  if (!status.ok()) return status;
  return InfoFromX509(chain->front().get());
}

absl::StatusOr<bool> KeyMatchesCertificate(const SecretBytes& key_pem, absl::string_view cert_pem) {
  auto key = ParsePrivateKey(key_pem, "private key");
  if (!key.ok()) return key.status();
  auto certs = ParseCertificates(cert_pem, "certificate");
  if (!certs.ok()) return certs.status();
  const bool match = X509_check_private_key(certs->front().get(), key->get()) == 1;
  ERR_clear_error();
  return match;
}

absl::Time RenewalTime(const CertificateInfo& info, absl::BitGenRef gen) {
  const absl::Duration life = info.not_after - info.not_before;
  const double fraction = absl::Uniform(absl::IntervalClosed, gen, 0.5, 0.8);
  return info.not_before + life * fraction;
}

}  // namespace warren::security
