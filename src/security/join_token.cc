#include "security/join_token.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "security/openssl_util.h"

namespace warren::security {
namespace {

constexpr absl::string_view kPrefix = "SWMTKN";
constexpr absl::string_view kVersion = "1";
constexpr size_t kSecretBytes = 16;
constexpr char kDigits[] = "0123456789abcdefghijklmnopqrstuvwxyz";

// Big-endian bytes as a base-36 number, left-padded with '0' to `width`.
std::string Base36(absl::string_view bytes, size_t width) {
  std::vector<uint8_t> n(bytes.begin(), bytes.end());
  std::string out;
  auto is_zero = [&n] {
    for (uint8_t b : n) {
      if (b != 0) return false;
    }
    return true;
  };
  while (!is_zero()) {
    uint32_t rem = 0;
    for (uint8_t& b : n) {
      const uint32_t cur = (rem << 8) | b;
      b = static_cast<uint8_t>(cur / 36);
      rem = cur % 36;
    }
    out.push_back(kDigits[rem]);
  }
  while (out.size() < width) out.push_back('0');
  return std::string(out.rbegin(), out.rend());
}

// Whether `s` is a base-36 number below 2^bits (so it could have come from Base36 above).
bool FitsBits(absl::string_view s, size_t bits) {
  std::vector<uint8_t> n((bits + 7) / 8 + 1, 0);  // one spare byte catches the overflow
  for (char c : s) {
    uint32_t carry = static_cast<uint32_t>((c >= 'a') ? c - 'a' + 10 : c - '0');
    for (auto it = n.rbegin(); it != n.rend(); ++it) {
      const uint32_t cur = *it * 36u + carry;
      *it = static_cast<uint8_t>(cur & 0xff);
      carry = cur >> 8;
    }
    if (carry != 0 || n.front() != 0) return false;
  }
  return true;
}

absl::Status CheckBase36(absl::string_view part, absl::string_view label, size_t length,
                         size_t bits) {
  if (part.size() != length) {
    return absl::InvalidArgumentError(absl::StrCat("join token: ", label, " has ", part.size(),
                                                   " characters, must have ", length));
  }
  for (char c : part) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z'))) {
      return absl::InvalidArgumentError(
          absl::StrCat("join token: ", label, " must be base-36 (0-9, a-z)"));
    }
  }
  if (!FitsBits(part, bits)) {
    return absl::InvalidArgumentError(
        absl::StrCat("join token: ", label, " is larger than a ", bits, "-bit value"));
  }
  return absl::OkStatus();
}

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

absl::StatusOr<std::string> CaCertificateDigest(absl::string_view ca_cert_pem) {
  auto cert = ParseCertificate(ca_cert_pem, "CA certificate");
  if (!cert.ok()) return cert.status();
  auto der = CertificateDer(cert->get());
  if (!der.ok()) return der.status();
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(der->data()), der->size(), digest);
  return Base36(absl::string_view(reinterpret_cast<char*>(digest), sizeof(digest)),
                kJoinTokenDigestLength);
}

absl::StatusOr<std::string> NewJoinToken(absl::string_view ca_cert_pem) {
  auto digest = CaCertificateDigest(ca_cert_pem);
  if (!digest.ok()) return digest.status();
  auto secret = RandomBytes(kSecretBytes);
  if (!secret.ok()) return secret.status();
  std::string token = absl::StrCat(kPrefix, "-", kVersion, "-", *digest, "-",
                                   Base36(*secret, kJoinTokenSecretLength));
  OPENSSL_cleanse(secret->data(), secret->size());
  return token;
}

absl::StatusOr<ParsedJoinToken> ParseJoinToken(absl::string_view token) {
  if (token.empty()) return absl::InvalidArgumentError("join token: empty");
  std::vector<absl::string_view> parts = absl::StrSplit(token, '-');
  if (parts.size() != 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("join token: ", parts.size(),
                     " parts separated by '-', expected 4 (SWMTKN-1-<ca "
                     "digest>-<secret>)"));
  }
  if (parts[0] != kPrefix) {
    return absl::InvalidArgumentError("join token: must start with \"SWMTKN-\"");
  }
  if (parts[1] != kVersion) {
    return absl::InvalidArgumentError("join token: unsupported version (only \"SWMTKN-1-\")");
  }
  if (auto s = CheckBase36(parts[2], "CA digest", kJoinTokenDigestLength, 256); !s.ok()) return s;
  if (auto s = CheckBase36(parts[3], "secret", kJoinTokenSecretLength, 128); !s.ok()) return s;
  return ParsedJoinToken{std::string(parts[2]), std::string(parts[3])};
}

absl::Status CheckJoinTokenCa(const ParsedJoinToken& token, absl::string_view ca_cert_pem) {
  auto digest = CaCertificateDigest(ca_cert_pem);
  if (!digest.ok()) return digest.status();
  if (*digest != token.ca_digest) {
    return absl::FailedPreconditionError(
        "the manager's CA certificate does not match the CA digest in the join token: wrong "
        "cluster, or someone in between (refusing to send the token)");
  }
  return absl::OkStatus();
}

absl::StatusOr<JoinTokens> JoinTokens::Create(absl::string_view ca_cert_pem) {
  JoinTokens t;
  if (auto s = t.Rotate(Role::kWorker, ca_cert_pem); !s.ok()) return s;
  if (auto s = t.Rotate(Role::kManager, ca_cert_pem); !s.ok()) return s;
  return t;
}

absl::StatusOr<JoinTokens> JoinTokens::FromProto(const v1::JoinTokens& proto) {
  for (const auto& [label, token] :
       {std::pair<absl::string_view, const std::string&>{"worker", proto.worker()},
        {"manager", proto.manager()}}) {
    if (auto parsed = ParseJoinToken(token); !parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("stored ", label, " ", parsed.status().message()));
    }
  }
  JoinTokens t;
  t.worker_ = SecretBytes(proto.worker());
  t.manager_ = SecretBytes(proto.manager());
  return t;
}

v1::JoinTokens JoinTokens::ToProto() const {
  v1::JoinTokens out;
  out.set_worker(std::string(worker_.reveal()));
  out.set_manager(std::string(manager_.reveal()));
  return out;
}

absl::StatusOr<SecretBytes> JoinTokens::Get(Role role) const {
  if (role == Role::kWorker) return worker_;
  if (role == Role::kManager) return manager_;
  return absl::InvalidArgumentError(
      absl::StrCat("join token role ", RoleName(role), ": must be worker or manager"));
}

absl::Status JoinTokens::Rotate(Role role, absl::string_view ca_cert_pem) {
  if (role != Role::kWorker && role != Role::kManager) {
    return absl::InvalidArgumentError(
        absl::StrCat("join token role ", RoleName(role), ": must be worker or manager"));
  }
  auto token = NewJoinToken(ca_cert_pem);
  if (!token.ok()) return token.status();
  (role == Role::kWorker ? worker_ : manager_) = SecretBytes(std::move(*token));
  return absl::OkStatus();
}

absl::StatusOr<Role> JoinTokens::Authenticate(absl::string_view presented) const {
  auto parsed = ParseJoinToken(presented);
  if (!parsed.ok()) return absl::UnauthenticatedError(parsed.status().message());
  // Both comparisons always run, so the time taken says nothing about which (if any) matched.
  const bool worker = ConstantTimeEquals(presented, worker_.reveal());
  const bool manager = ConstantTimeEquals(presented, manager_.reveal());
  if (manager) return Role::kManager;
  if (worker) return Role::kWorker;
  return absl::UnauthenticatedError(
      "join token not valid for this cluster (rotated, or from another cluster)");
}

}  // namespace warren::security
