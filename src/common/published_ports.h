#ifndef WARREN_COMMON_PUBLISHED_PORTS_H_
#define WARREN_COMMON_PUBLISHED_PORTS_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "warren/v1/objects.pb.h"

namespace warren {

// A port a service publishes on every node (its proxy listens there), with the spec field it
// comes from for error messages.
struct PublishedPort {
  std::string field;    // "template.ports[0].published", "updateConfig.previewPublishedPort"
  std::string host_ip;  // as written; empty means the node's publish address (0.0.0.0)
  int port = 0;
};

// The published ports of a spec: its template's and the blue/green preview port.
std::vector<PublishedPort> PublishedPorts(const v1::ServiceSpec& spec);

// The port numbers the tasks of a service listen on that a port published on every address would
// cover (process runtime only; empty for images).
std::vector<int> ListenPortNumbers(const v1::TaskTemplate& tmpl);

// Whether two listeners on these host addresses and one port number would collide: the same
// address, or either one every address ("", 0.0.0.0, ::).
bool HostAddressesOverlap(std::string_view a, std::string_view b);

// Whether a host address is "every address" (empty means the node's default, 0.0.0.0).
bool IsWildcardAddress(std::string_view host_ip);

// On the process runtime (a command and no image), a port published on every address must not
// be one the service's own tasks listen on: `--publish 8080` (published = target = 8080) made
// the proxy and the task both want 8080, and the task crash-looped on "address already in use".
// INVALID_ARGUMENT naming the field and a port to publish instead.
absl::Status CheckOwnPorts(const v1::ServiceSpec& spec);

// CheckOwnPorts, then `spec` against the other services of the cluster (a service with the same
// name is the one being updated and is skipped). Rejected, as INVALID_ARGUMENT naming the field:
// - a published port another service publishes on an overlapping address (the proxies of
//   every node would need both);
// - a port published on every address that equals a port the tasks of another service of the
//   process runtime (a command and no image) listen on, either way round: those tasks listen
//   on loopback addresses of the node, which 0.0.0.0 covers, so the task or the proxy would
//   fail to bind ("address already in use").
absl::Status CheckPortConflicts(const v1::ServiceSpec& spec,
                                const std::vector<v1::Service>& others);

}  // namespace warren

#endif  // WARREN_COMMON_PUBLISHED_PORTS_H_
