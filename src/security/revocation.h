#ifndef WARREN_SECURITY_REVOCATION_H_
#define WARREN_SECURITY_REVOCATION_H_

#include <atomic>
#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/support/status.h"
#include "security/certificates.h"
#include "warren/v1/security.pb.h"

namespace warren::security {

// Why the manager refuses a call of a node that `node rm` removed: an UNAUTHENTICATED status
// whose absl payload under kRefusalPayloadUrl is kNodeRemovedReason, sent to the client as the
// grpc::Status error_details. A worker exits on it (it must not retry), so both strings are
// stable (docs/security.md).
inline constexpr char kRefusalPayloadUrl[] = "warren.dev/refusal";
inline constexpr char kNodeRemovedReason[] = "node-removed";

// The refusal of a call of a removed node (UNAUTHENTICATED with the reason above).
absl::Status NodeRemovedError(absl::string_view node_id);
// Whether the manager refused a call with NodeRemovedError (by code and reason, not message).
bool IsNodeRemoved(const grpc::Status& s);

// Node ids and certificate serials whose certificates are refused although still within their
// validity (`node rm`, a leaked key). Consulted at every TLS handshake and on every RPC, so a
// revocation takes effect on open connections too. An entry is kept until every certificate it
// covers has expired (`keep_until`), then Prune() drops it. Thread-safe.
class RevocationList {
 public:
  void RevokeNode(absl::string_view node_id, absl::Time now, absl::Time keep_until);
  void RevokeCertificate(absl::string_view serial, absl::Time now, absl::Time keep_until);

  bool IsRevoked(const CertificateInfo& cert) const;
  // UNAUTHENTICATED naming the node when `cert` is revoked.
  absl::Status Check(const CertificateInfo& cert) const;

  // Drops the entries whose keep_until has passed.
  void Prune(absl::Time now);

  v1::RevocationList ToProto() const;
  // Replaces the whole list (e.g. after reading the store); InvalidArgument for an entry
  // without a node id or serial, in which case nothing changes.
  absl::Status Replace(const v1::RevocationList& proto);

  size_t size() const;
  // Changes with every revocation and Replace(): a long-lived stream authorizes its caller
  // again only when it moved.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

 private:
  struct Entry {
    absl::Time revoked_at;
    absl::Time keep_until;
  };
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> nodes_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Entry> serials_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> generation_{0};
};

}  // namespace warren::security

#endif  // WARREN_SECURITY_REVOCATION_H_
