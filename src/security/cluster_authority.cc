#include "security/cluster_authority.h"

#include "absl/strings/str_cat.h"
#include "common/time_util.h"
#include "security/aead.h"

namespace warren::security {
namespace {

std::string ClusterKeyAad(absl::string_view cluster_id) {
  return AssociatedData({"warren.v1.ClusterSecurity.sealed_cluster_key", cluster_id});
}
std::string TokensAad(absl::string_view cluster_id) {
  return AssociatedData({"warren.v1.ClusterSecurity.sealed_join_tokens", cluster_id});
}

absl::Status CheckValidity(absl::Duration validity) {
  if (validity < kMinNodeCertValidity || validity > kMaxNodeCertValidity) {
    return absl::InvalidArgumentError(
        absl::StrCat("node certificate validity ", absl::FormatDuration(validity),
                     ": must be between ", absl::FormatDuration(kMinNodeCertValidity), " and ",
                     absl::FormatDuration(kMaxNodeCertValidity)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ClusterAuthority::set_node_cert_validity(absl::Duration validity) {
  if (auto s = CheckValidity(validity); !s.ok()) return s;
  node_cert_validity_ = validity;
  return absl::OkStatus();
}

absl::StatusOr<ClusterAuthority> ClusterAuthority::Create(absl::string_view cluster_id,
                                                          absl::Time now,
                                                          const ClusterAuthorityOptions& options) {
  if (auto s = CheckValidity(options.node_cert_validity); !s.ok()) return s;
  auto ca = RootCa::Create(cluster_id, now, options.ca_validity);
  if (!ca.ok()) return ca.status();
  auto tokens = JoinTokens::Create(ca->cert_pem());
  if (!tokens.ok()) return tokens.status();
  auto key = NewAeadKey();
  if (!key.ok()) return key.status();
  return ClusterAuthority(std::move(*ca), std::move(*tokens), std::move(*key),
                          options.node_cert_validity);
}

absl::StatusOr<v1::ClusterSecurity> ClusterAuthority::Seal(const SecretBytes& kek) const {
  v1::ClusterSecurity out;
  auto ca = ca_.Seal(kek);
  if (!ca.ok()) return ca.status();
  *out.mutable_ca() = std::move(*ca);
  auto key = security::Seal(kek, cluster_key_.reveal(), ClusterKeyAad(cluster_id()));
  if (!key.ok()) return key.status();
  *out.mutable_sealed_cluster_key() = std::move(*key);
  SecretBytes tokens(tokens_.ToProto().SerializeAsString());
  auto sealed_tokens = security::Seal(kek, tokens.reveal(), TokensAad(cluster_id()));
  if (!sealed_tokens.ok()) return sealed_tokens.status();
  *out.mutable_sealed_join_tokens() = std::move(*sealed_tokens);
  *out.mutable_node_cert_validity() = ToProtoDuration(node_cert_validity_);
  return out;
}

absl::StatusOr<ClusterAuthority> ClusterAuthority::Unseal(const v1::ClusterSecurity& stored,
                                                          const SecretBytes& kek) {
  const absl::Duration validity = FromProtoDuration(stored.node_cert_validity());
  if (auto s = CheckValidity(validity); !s.ok()) return s;
  auto ca = RootCa::Unseal(stored.ca(), kek);
  if (!ca.ok()) return ca.status();
  const std::string& cluster_id = stored.ca().cluster_id();
  auto key = Open(kek, stored.sealed_cluster_key(), ClusterKeyAad(cluster_id));
  if (!key.ok()) {
    return absl::Status(key.status().code(), absl::StrCat("cluster key: ", key.status().message()));
  }
  if (key->size() != kAeadKeySize) {
    return absl::DataLossError(absl::StrCat("cluster key: ", key->size(), " bytes, must be 32"));
  }
  auto tokens_bytes = Open(kek, stored.sealed_join_tokens(), TokensAad(cluster_id));
  if (!tokens_bytes.ok()) {
    return absl::Status(tokens_bytes.status().code(),
                        absl::StrCat("join tokens: ", tokens_bytes.status().message()));
  }
  v1::JoinTokens proto;
  if (!proto.ParseFromArray(tokens_bytes->reveal().data(),
                            static_cast<int>(tokens_bytes->size()))) {
    return absl::DataLossError("join tokens: not a JoinTokens message");
  }
  auto tokens = JoinTokens::FromProto(proto);
  proto.Clear();
  if (!tokens.ok()) return tokens.status();
  return ClusterAuthority(std::move(*ca), std::move(*tokens), std::move(*key), validity);
}

absl::StatusOr<IssuedCertificate> ClusterAuthority::Admit(absl::string_view token,
                                                          absl::string_view csr_pem,
                                                          absl::string_view new_node_id,
                                                          const std::vector<std::string>& hosts,
                                                          absl::Time now) const {
  auto role = tokens_.Authenticate(token);
  if (!role.ok()) return role.status();
  CertificateIdentity identity{std::string(new_node_id), *role, cluster_id()};
  auto cert = ca_.Issue(csr_pem, identity, {node_cert_validity_, hosts}, now);
  if (!cert.ok()) return cert.status();
  return IssuedCertificate{std::move(identity), std::move(*cert)};
}

absl::StatusOr<IssuedCertificate> ClusterAuthority::Renew(const CertificateInfo& current,
                                                          absl::string_view csr_pem,
                                                          const std::vector<std::string>& hosts,
                                                          const RevocationList& revoked,
                                                          absl::Time now) const {
  if (current.identity.cluster_id != cluster_id()) {
    return absl::UnauthenticatedError(absl::StrCat(
        "certificate of cluster ", current.identity.cluster_id, ", not ", cluster_id()));
  }
  if (auto s = revoked.Check(current); !s.ok()) return s;
  auto cert = ca_.Issue(csr_pem, current.identity, {node_cert_validity_, hosts}, now);
  if (!cert.ok()) return cert.status();
  return IssuedCertificate{current.identity, std::move(*cert)};
}

absl::Time ClusterAuthority::RevocationHorizon(absl::Time now) const {
  return now + node_cert_validity_;
}

}  // namespace warren::security
