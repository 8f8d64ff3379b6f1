#ifndef WARREN_UI_LOGIN_H_
#define WARREN_UI_LOGIN_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "security/secret_bytes.h"

// The dashboard's login (docs/dashboard.md, "Access"): short-lived tokens made by `warren
// dashboard token`, exchanged for a session cookie. Both are MACed (HMAC-SHA256) with a key
// derived from the cluster key, so every manager of the cluster accepts them and nothing is
// stored: a token or a session is valid until the time it carries.
//
//   token:   "wdt1." base64url(PAYLOAD) "." base64url(HMAC(key, "wdt1." base64url(PAYLOAD)))
//   session: the same with "wds1."
//   PAYLOAD: "ROLE|EXPIRY|NONCE": "admin" or "read-only", Unix seconds, 16 random bytes in hex
namespace warren::ui {

enum class DashboardRole { kReadOnly, kAdmin };

// "admin", "read-only".
std::string_view DashboardRoleName(DashboardRole role);
// InvalidArgument naming `field` and the allowed values.
absl::StatusOr<DashboardRole> ParseDashboardRole(std::string_view name, std::string_view field);

// Who a valid token or session is for, and until when.
struct DashboardGrant {
  DashboardRole role = DashboardRole::kReadOnly;
  absl::Time expires;
};

// A token's life: 1 minute to 24 hours, 1 hour when not given.
inline constexpr absl::Duration kMinTokenTtl = absl::Minutes(1);
inline constexpr absl::Duration kMaxTokenTtl = absl::Hours(24);
inline constexpr absl::Duration kDefaultTokenTtl = absl::Hours(1);
// InvalidArgument naming `field` outside kMinTokenTtl..kMaxTokenTtl.
absl::Status CheckTokenTtl(absl::Duration ttl, std::string_view field);

class DashboardKeys {
 public:
  // The MAC key: HMAC-SHA256(cluster key, "warren dashboard login v1"). InvalidArgument for a
  // cluster key shorter than 32 bytes.
  static absl::StatusOr<DashboardKeys> Derive(const security::SecretBytes& cluster_key);

  // A login token for `role` valid until `expires`.
  absl::StatusOr<std::string> IssueToken(DashboardRole role, absl::Time expires) const;
  // The value of a session cookie, valid until `expires`.
  absl::StatusOr<std::string> IssueSession(DashboardRole role, absl::Time expires) const;

  // UNAUTHENTICATED with the reason (malformed, wrong MAC, expired at T) unless `token` is a
  // token of this key that is still valid at `now`.
  absl::StatusOr<DashboardGrant> VerifyToken(std::string_view token, absl::Time now) const;
  absl::StatusOr<DashboardGrant> VerifySession(std::string_view session, absl::Time now) const;

 private:
  explicit DashboardKeys(security::SecretBytes key) : key_(std::move(key)) {}
  absl::StatusOr<std::string> Issue(std::string_view prefix, DashboardRole role,
                                    absl::Time expires) const;
  absl::StatusOr<DashboardGrant> Verify(std::string_view prefix, std::string_view what,
                                        std::string_view value, absl::Time now) const;
  std::string Mac(std::string_view data) const;

  security::SecretBytes key_;
};

}  // namespace warren::ui

#endif  // WARREN_UI_LOGIN_H_
