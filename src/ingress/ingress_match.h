#ifndef WARREN_INGRESS_INGRESS_MATCH_H_
#define WARREN_INGRESS_INGRESS_MATCH_H_

#include <string>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "warren/v1/ingress.pb.h"

namespace warren {

// The request's host as rules name it: the Host header without its port and trailing dot, in
// lower case ("Shop.Example.com.:8080" -> "shop.example.com").
std::string NormalizeRequestHost(absl::string_view host_header);

// The rule a request goes to, or null (404). The host picks first: an exact rule host wins over
// wildcards, a longer wildcard suffix over a shorter one; then, among the rules of that one
// host, the longest path prefix that matches (segment-wise, see IngressPathMatches). As in
// nginx, a request whose host has rules but none of whose paths match gets no rule, even if a
// wildcard host's rule would take the path. `host` is normalized, `path` has no query.
const v1::IngressRoute* MatchIngress(absl::Span<const v1::IngressRoute> routes,
                                     absl::string_view host, absl::string_view path);

}  // namespace warren

#endif  // WARREN_INGRESS_INGRESS_MATCH_H_
