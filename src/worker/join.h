#ifndef WARREN_WORKER_JOIN_H_
#define WARREN_WORKER_JOIN_H_

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "roles.h"

namespace warren {

// Where a node keeps its certificate, key and CA: <data-dir>/tls (a CredentialsDirectory).
bool HasNodeCertificate(const WorkerOptions& options);

// Gives `options` the node's mutual-TLS material (tls_* fields, cluster_id). A certificate of
// the cluster kept in <data-dir>/tls is used again (a restart keeps the node id; the join
// token is not needed). Otherwise the worker joins with options->join_token: it fetches the
// manager's CA certificate without trusting it, refuses a CA the token's digest does not name
// before the token is sent, then sends the token and a CSR over TLS verified against that CA.
absl::Status PrepareNodeCertificate(WorkerOptions* options, absl::Time now);

// For a worker with neither a certificate nor a join token, which would talk plaintext: an
// error naming the token to get when the manager serves TLS (it would refuse every call), OK
// when it does not (an --insecure-plaintext manager) or cannot be reached yet.
absl::Status CheckPlaintextManager(const WorkerOptions& options);

}  // namespace warren

#endif  // WARREN_WORKER_JOIN_H_
