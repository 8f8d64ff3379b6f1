#ifndef WARREN_SECURITY_TLS_CREDENTIALS_H_
#define WARREN_SECURITY_TLS_CREDENTIALS_H_

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "security/authz.h"
#include "security/root_ca.h"
#include "security/secret_bytes.h"

// gRPC mutual-TLS credentials for Warren's servers and clients, with certificates that renew
// without a restart.
//
// gRPC 1.51 (Debian 12) has no public way to push new key material into running credentials:
// its certificate providers are StaticData (fixed) and FileWatcher (re-reads files every N
// seconds). Renewal therefore writes the new files and lets FileWatcher pick them up; existing
// connections and streams keep going (TLS authenticates once per connection), new handshakes
// use the new certificate.
namespace warren::security {

// Where a node's TLS material lives.
struct TlsFiles {
  std::string ca_cert;
  std::string cert;
  std::string key;
};

// TLS material as PEM in memory.
struct TlsMaterial {
  std::string ca_cert_pem;
  std::string cert_pem;
  SecretBytes key_pem;
};

// A directory of TLS material that a FileWatcher can re-read at any moment without ever seeing a
// key from one certificate with the other's certificate: every install writes a new generation
// directory and switches the `current` symlink to it in one rename.
//
//   <dir>/current -> gen-3      (files() points through it)
//   <dir>/gen-3/{ca.pem,cert.pem,key.pem}
//
// FileWatcher compares the files' modification times (in whole seconds) before and after it
// reads the key and the certificate; each new generation's files get a time different from the
// previous one's, so a switch between those two reads is always noticed and read again.
class CredentialsDirectory {
 public:
  explicit CredentialsDirectory(std::string dir) : dir_(std::move(dir)) {}

  // Checks the key belongs to the certificate and the certificate to the CA, then installs.
  // Keeps the previous generation (a reader may still be inside it) and removes older ones.
  absl::Status Install(const TlsMaterial& material, absl::Time now);
  bool HasCredentials() const;
  TlsFiles files() const;
  absl::StatusOr<TlsMaterial> Read() const;

  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

enum class ClientCertificates {
  // The handshake fails without a client certificate of the cluster CA.
  kRequire,
  // A client may connect without a certificate (a joining node's bootstrap calls); one it sends
  // must verify. Every RPC then checks the peer itself (AuthenticatePeer).
  kVerifyIfPresent,
};

struct ServerTlsOptions {
  ClientCertificates client_certificates = ClientCertificates::kRequire;
  // Checked for every client certificate at the handshake.
  PeerPolicy clients;
  // How often the certificate files are re-read (whole seconds, at least 1).
  absl::Duration refresh_interval = absl::Seconds(5);
};

struct ChannelTlsOptions {
  // The server must be of this cluster (and role / node when set). It replaces host name
  // checks: nodes are known by their certificate's identity, not by an address.
  PeerPolicy server;
  absl::Duration refresh_interval = absl::Seconds(5);
};

// Server credentials from files that are re-read (renewal). Fails when the files are missing.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsFiles& files, const ServerTlsOptions& options);

// Channel credentials presenting the node's certificate from re-read files.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsFiles& files, const ChannelTlsOptions& options);

// Channel credentials from PEM in memory, not reloaded: the CLI's client bundle, and a joining
// node's certificate request (pinned CA, no client certificate yet: `identity` empty).
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeStaticChannelCredentials(
    absl::string_view ca_cert_pem, const std::optional<KeyAndCertificate>& identity,
    const PeerPolicy& server);

// TLS that accepts any server certificate. Only for the unauthenticated bootstrap call that
// fetches the CA certificate, which the caller then checks against its join token's digest
// (CheckJoinTokenCa) before trusting or sending anything.
std::shared_ptr<grpc::ChannelCredentials> MakeBootstrapChannelCredentials();

}  // namespace warren::security

#endif  // WARREN_SECURITY_TLS_CREDENTIALS_H_
