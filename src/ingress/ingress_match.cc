#include "ingress/ingress_match.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "ingress/ingress_spec.h"

namespace warren {

std::string NormalizeRequestHost(absl::string_view host) {
  host = absl::StripAsciiWhitespace(host);
  if (absl::StartsWith(host, "[")) {
    // An IPv6 literal: no rule names one, but keep it whole for the 404.
    size_t end = host.find(']');
    if (end != absl::string_view::npos) host = host.substr(0, end + 1);
  } else if (size_t colon = host.rfind(':'); colon != absl::string_view::npos) {
    host = host.substr(0, colon);
  }
  absl::ConsumeSuffix(&host, ".");
  return absl::AsciiStrToLower(host);
}

const v1::IngressRoute* MatchIngress(absl::Span<const v1::IngressRoute> routes,
                                     absl::string_view host, absl::string_view path) {
  // How well a rule's host takes `host`: exact beats every wildcard; a wildcard by its length.
  auto host_rank = [&](const std::string& pattern) -> int {
    if (!IngressHostMatches(pattern, host)) return -1;
    return absl::StartsWith(pattern, "*.") ? static_cast<int>(pattern.size()) : 1 << 20;
  };
  const std::string* best_host = nullptr;
  int best_rank = -1;
  for (const v1::IngressRoute& r : routes) {
    int rank = host_rank(r.host());
    if (rank > best_rank) {
      best_rank = rank;
      best_host = &r.host();
    }
  }
  if (best_host == nullptr) return nullptr;
  const v1::IngressRoute* best = nullptr;
  for (const v1::IngressRoute& r : routes) {
    if (r.host() != *best_host || !IngressPathMatches(r.path(), path)) continue;
    if (best == nullptr || r.path().size() > best->path().size()) best = &r;
  }
  return best;
}

}  // namespace warren
