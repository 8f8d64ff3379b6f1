#ifndef WARREN_INGRESS_INGRESS_SPEC_H_
#define WARREN_INGRESS_INGRESS_SPEC_H_

#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "warren/v1/ingress.pb.h"

namespace warren {

// Lower-cases the host and fills the default path "/".
void ApplyIngressDefaults(v1::IngressSpec* spec);

// Checks an ingress spec (after defaults) on its own: name, host, path, port, TLS mode. The
// error is INVALID_ARGUMENT naming the field and what is allowed. The certificate is checked
// by CheckIngressCertificate, which needs the key.
absl::Status ValidateIngressSpec(const v1::IngressSpec& spec);

// The certificate and key of a TLS ingress: both parse, the key is the certificate's and the
// certificate names the host (a wildcard host needs the same wildcard name). Returns what
// `ingress inspect` shows of it.
absl::StatusOr<v1::IngressCertificate> CheckIngressCertificate(absl::string_view host,
                                                               absl::string_view cert_pem,
                                                               absl::string_view key_pem);

// FAILED_PRECONDITION naming the other ingress when one of `existing` (other than one with
// `spec`'s name) has the same host and path.
absl::Status CheckIngressConflicts(const v1::IngressSpec& spec,
                                   const std::vector<v1::Ingress>& existing);

// Whether `host` (lower case, no port) is served by the rule host `pattern`: equal, or for
// "*.example.com" a name with at least one more label in front of ".example.com".
bool IngressHostMatches(absl::string_view pattern, absl::string_view host);

// Whether the request path (without query) falls under the rule prefix, segment-wise: "/api"
// takes "/api", "/api/" and "/api/v1", not "/apiary"; "/" takes everything.
bool IngressPathMatches(absl::string_view prefix, absl::string_view path);

// The YAML documents of `apply -f` that have `kind: Ingress`, parsed (each document an
// IngressSpec in protobuf's JSON mapping plus `kind`, `certFile` and `keyFile`), and the other
// documents as YAML text for ParseServicesYaml. File paths are read relative to `base_dir`.
struct SplitYaml {
  std::string services_yaml;
  std::vector<v1::IngressSpec> ingresses;
};
absl::StatusOr<SplitYaml> SplitIngressYaml(absl::string_view yaml, const std::string& base_dir);

}  // namespace warren

#endif  // WARREN_INGRESS_INGRESS_SPEC_H_
