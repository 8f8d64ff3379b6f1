#ifndef WARREN_SECURITY_CERT_RENEWER_H_
#define WARREN_SECURITY_CERT_RENEWER_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "security/certificates.h"
#include "security/tls_credentials.h"

namespace warren::security {

// A new certificate for the same identity as `current`, for the public key in `csr_pem`
// (warren.v1.Ca/Renew for a node, the in-process CA for the manager). Returns the new
// certificate and the CA certificate, as PEM.
struct RenewedCertificate {
  std::string cert_pem;
  std::string ca_cert_pem;
};
using RenewFn = std::function<absl::StatusOr<RenewedCertificate>(const CertificateInfo& current,
                                                                 const std::string& csr_pem)>;

// Keeps a node's certificate in a CredentialsDirectory fresh: at a random point between 50 % and
// 80 % of the current certificate's life (drawn once per certificate, from a seeded generator
// so tests know it) it makes a new key and CSR, asks `renew` and installs the result. gRPC's
// file watchers pick the new files up for new handshakes; open connections and streams stay.
class CertificateRenewer {
 public:
  CertificateRenewer(CredentialsDirectory dir, RenewFn renew, const Clock& clock, uint64_t seed);
  ~CertificateRenewer() { Stop(); }
  CertificateRenewer(const CertificateRenewer&) = delete;
  CertificateRenewer& operator=(const CertificateRenewer&) = delete;

  // When the installed certificate is due.
  absl::StatusOr<absl::Time> NextRenewal();
  // Renews when the installed certificate is due (true), else does nothing (false).
  absl::StatusOr<bool> RenewIfDue();

  // Checks every `poll` (real time) until Stop; a failed renewal is retried at the next check
  // and logged, the current certificate stays in use.
  void Start(absl::Duration poll = absl::Seconds(1));
  void Stop();

  int renewals() const {
    absl::MutexLock lock(&mu_);
    return renewals_;
  }

 private:
  CredentialsDirectory dir_;
  const RenewFn renew_;
  const Clock& clock_;
  mutable absl::Mutex mu_;
  std::mt19937_64 gen_ ABSL_GUARDED_BY(mu_);
  // The serial the renewal time was drawn for, and that time.
  std::string drawn_for_ ABSL_GUARDED_BY(mu_);
  absl::Time due_ ABSL_GUARDED_BY(mu_);
  int renewals_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace warren::security

#endif  // WARREN_SECURITY_CERT_RENEWER_H_
