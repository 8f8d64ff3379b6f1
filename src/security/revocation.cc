#include "security/revocation.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/time_util.h"

namespace warren::security {

absl::Status NodeRemovedError(absl::string_view node_id) {
  absl::Status s =
      absl::UnauthenticatedError(absl::StrCat("node ", node_id, " was removed from the cluster"));
  s.SetPayload(kRefusalPayloadUrl, absl::Cord(kNodeRemovedReason));
  return s;
}

bool IsNodeRemoved(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAUTHENTICATED &&
         s.error_details() == kNodeRemovedReason;
}

void RevocationList::RevokeNode(absl::string_view node_id, absl::Time now, absl::Time keep_until) {
  absl::MutexLock lock(&mu_);
  nodes_[node_id] = {now, keep_until};
  generation_.fetch_add(1, std::memory_order_release);
}

void RevocationList::RevokeCertificate(absl::string_view serial, absl::Time now,
                                       absl::Time keep_until) {
  absl::MutexLock lock(&mu_);
  serials_[absl::AsciiStrToUpper(serial)] = {now, keep_until};
  generation_.fetch_add(1, std::memory_order_release);
}

bool RevocationList::IsRevoked(const CertificateInfo& cert) const {
  absl::MutexLock lock(&mu_);
  return nodes_.contains(cert.identity.node_id) || serials_.contains(cert.serial);
}

absl::Status RevocationList::Check(const CertificateInfo& cert) const {
  absl::MutexLock lock(&mu_);
  if (nodes_.contains(cert.identity.node_id)) {
    return NodeRemovedError(cert.identity.node_id);
  }
  if (serials_.contains(cert.serial)) {
    return absl::UnauthenticatedError(absl::StrCat("certificate ", cert.serial, " of node ",
                                                   cert.identity.node_id, " was revoked"));
  }
  return absl::OkStatus();
}

void RevocationList::Prune(absl::Time now) {
  absl::MutexLock lock(&mu_);
  absl::erase_if(nodes_, [now](const auto& kv) { return kv.second.keep_until < now; });
  absl::erase_if(serials_, [now](const auto& kv) { return kv.second.keep_until < now; });
}

v1::RevocationList RevocationList::ToProto() const {
  absl::MutexLock lock(&mu_);
  v1::RevocationList out;
  for (const auto& [id, e] : nodes_) {
    auto* n = out.add_nodes();
    n->set_node_id(id);
    *n->mutable_revoked_at() = ToProtoTime(e.revoked_at);
    *n->mutable_keep_until() = ToProtoTime(e.keep_until);
  }
  for (const auto& [serial, e] : serials_) {
    auto* c = out.add_certificates();
    c->set_serial(serial);
    *c->mutable_revoked_at() = ToProtoTime(e.revoked_at);
    *c->mutable_keep_until() = ToProtoTime(e.keep_until);
  }
  return out;
}

absl::Status RevocationList::Replace(const v1::RevocationList& proto) {
  absl::flat_hash_map<std::string, Entry> nodes;
  absl::flat_hash_map<std::string, Entry> serials;
  for (int i = 0; i < proto.nodes_size(); ++i) {
    const auto& n = proto.nodes(i);
    if (n.node_id().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("revocation list: nodes[", i, "].node_id empty"));
    }
    nodes[n.node_id()] = {FromProtoTime(n.revoked_at()), FromProtoTime(n.keep_until())};
  }
  for (int i = 0; i < proto.certificates_size(); ++i) {
    const auto& c = proto.certificates(i);
    if (c.serial().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("revocation list: certificates[", i, "].serial empty"));
    }
    serials[absl::AsciiStrToUpper(c.serial())] = {FromProtoTime(c.revoked_at()),
                                                  FromProtoTime(c.keep_until())};
  }
  absl::MutexLock lock(&mu_);
  nodes_ = std::move(nodes);
  serials_ = std::move(serials);
  generation_.fetch_add(1, std::memory_order_release);
  return absl::OkStatus();
}

size_t RevocationList::size() const {
  absl::MutexLock lock(&mu_);
  return nodes_.size() + serials_.size();
}

}  // namespace warren::security
