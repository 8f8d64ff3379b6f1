#include "ui/login.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "security/openssl_util.h"

namespace warren::ui {

namespace {

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr std::string_view kTokenPrefix = "wdt1.";
constexpr std::string_view kSessionPrefix = "wds1.";
constexpr std::string_view kDerivation = "warren dashboard login v1";
// Longer values are refused before any work (a cookie or token is about 120 bytes).
constexpr size_t kMaxLength = 512;

std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &n) == nullptr) {
    return "";
  }
  return std::string(reinterpret_cast<const char*>(out), n);
}

}  // namespace

std::string_view DashboardRoleName(DashboardRole role) {
  return role == DashboardRole::kAdmin ? "admin" : "read-only";
}

absl::StatusOr<DashboardRole> ParseDashboardRole(std::string_view name, std::string_view field) {
  if (name == "admin") return DashboardRole::kAdmin;
  if (name == "read-only") return DashboardRole::kReadOnly;
  return absl::InvalidArgumentError(
      absl::StrCat(AV(field), ": expected \"admin\" or \"read-only\", got \"", AV(name), "\""));
}

absl::Status CheckTokenTtl(absl::Duration ttl, std::string_view field) {
  if (ttl < kMinTokenTtl || ttl > kMaxTokenTtl) {
    return absl::InvalidArgumentError(
        absl::StrCat(AV(field), ": must be 1m..24h, got ", absl::FormatDuration(ttl)));
  }
  return absl::OkStatus();
}

absl::StatusOr<DashboardKeys> DashboardKeys::Derive(const security::SecretBytes& cluster_key) {
  if (cluster_key.reveal().size() < 32) {
    return absl::InvalidArgumentError("the cluster key is shorter than 32 bytes");
  }
  std::string key = HmacSha256(
      std::string_view(cluster_key.reveal().data(), cluster_key.reveal().size()), kDerivation);
  if (key.empty()) return absl::InternalError("HMAC-SHA256 failed");
  return DashboardKeys(security::SecretBytes(std::move(key)));
}

std::string DashboardKeys::Mac(std::string_view data) const {
  return HmacSha256(std::string_view(key_.reveal().data(), key_.reveal().size()), data);
}

absl::StatusOr<std::string> DashboardKeys::Issue(std::string_view prefix, DashboardRole role,
                                                 absl::Time expires) const {
  auto nonce = security::RandomBytes(16);
  if (!nonce.ok()) return nonce.status();
  const std::string payload =
      absl::StrCat(AV(DashboardRoleName(role)), "|", absl::ToUnixSeconds(expires), "|",
                   absl::BytesToHexString(*nonce));
  std::string signed_part = absl::StrCat(AV(prefix), absl::WebSafeBase64Escape(payload));
  const std::string mac = Mac(signed_part);
  if (mac.empty()) return absl::InternalError("HMAC-SHA256 failed");
  return absl::StrCat(signed_part, ".", absl::WebSafeBase64Escape(mac));
}

absl::StatusOr<std::string> DashboardKeys::IssueToken(DashboardRole role,
                                                      absl::Time expires) const {
  return Issue(kTokenPrefix, role, expires);
}

absl::StatusOr<std::string> DashboardKeys::IssueSession(DashboardRole role,
                                                        absl::Time expires) const {
  return Issue(kSessionPrefix, role, expires);
}

absl::StatusOr<DashboardGrant> DashboardKeys::Verify(std::string_view prefix, std::string_view what,
                                                     std::string_view value, absl::Time now) const {
  auto malformed = [&] {
    return absl::UnauthenticatedError(
        absl::StrCat("not a dashboard ", AV(what), " (expected ", AV(prefix),
                     "PAYLOAD.MAC, as `warren dashboard token` prints)"));
  };
  if (value.size() > kMaxLength || !absl::StartsWith(AV(value), AV(prefix))) return malformed();
  const size_t dot = value.rfind('.');
  if (dot == std::string_view::npos || dot < prefix.size()) return malformed();
  const std::string_view signed_part = value.substr(0, dot);
  std::string mac;
  // Only the one spelling of the MAC: base64's last character has bits the decoder ignores,
  // so a changed one could otherwise still verify.
  if (!absl::WebSafeBase64Unescape(AV(value.substr(dot + 1)), &mac) ||
      absl::WebSafeBase64Escape(mac) != AV(value.substr(dot + 1))) {
    return malformed();
  }
  const std::string want = Mac(signed_part);
  if (want.empty() || mac.size() != want.size() ||
      CRYPTO_memcmp(mac.data(), want.data(), want.size()) != 0) {
    return absl::UnauthenticatedError(
        absl::StrCat("the dashboard ", AV(what),
                     "'s signature does not match: it was changed, or made by another cluster"));
  }
  std::string payload;
  if (!absl::WebSafeBase64Unescape(AV(signed_part.substr(prefix.size())), &payload)) {
    return malformed();
  }
  std::vector<std::string> parts = absl::StrSplit(payload, '|');
  int64_t expiry = 0;
  if (parts.size() != 3 || !absl::SimpleAtoi(parts[1], &expiry)) return malformed();
  auto role = ParseDashboardRole(parts[0], "role");
  if (!role.ok()) return malformed();
  DashboardGrant grant{*role, absl::FromUnixSeconds(expiry)};
  if (now >= grant.expires) {
    return absl::UnauthenticatedError(
        absl::StrCat("the dashboard ", AV(what), " expired at ",
                     absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", grant.expires, absl::UTCTimeZone()),
                     ": create a new one with `warren dashboard token`"));
  }
  return grant;
}

absl::StatusOr<DashboardGrant> DashboardKeys::VerifyToken(std::string_view token,
                                                          absl::Time now) const {
  return Verify(kTokenPrefix, "login token", token, now);
}

absl::StatusOr<DashboardGrant> DashboardKeys::VerifySession(std::string_view session,
                                                            absl::Time now) const {
  return Verify(kSessionPrefix, "session", session, now);
}

}  // namespace warren::ui
