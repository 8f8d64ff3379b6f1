#ifndef WARREN_INGRESS_ACME_CONTROLLER_H_
#define WARREN_INGRESS_ACME_CONTROLLER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/time/time.h"
#include "common/clock.h"
#include "ingress/acme_client.h"
#include "manager/api_shared.h"
#include "manager/events.h"
#include "store/store.h"
#include "warren/v1/ingress.pb.h"

namespace warren {

struct AcmeControllerOptions {
  AcmeOptions acme;
  // PEM file of CAs trusted for the directory's TLS besides the system's (pebble's test CA).
  std::string ca_bundle;
  // One HTTP exchange with the ACME server.
  absl::Duration request_timeout = absl::Seconds(10);
  // A certificate is renewed this long before it expires.
  absl::Duration renew_before = absl::Hours(30 * 24);
  // After an order's challenges are in the routing table, how long the nodes get to receive it
  // before the ACME server is told to validate.
  absl::Duration propagation_delay = absl::Seconds(1);
  // Retries after a failure: min_backoff doubled per failure in a row, at most max_backoff.
  absl::Duration min_backoff = absl::Seconds(5);
  absl::Duration max_backoff = absl::Hours(1);
};

// Orders and renews the certificates of the ingresses with tls mode ACME (docs/ingress.md). It
// runs beside the controller on the manager that runs the controllers (the leader), on a thread
// of its own: every ACME exchange blocks here, never on the control loop. One order at a time.
//
// An ingress is due when it has no certificate, when its certificate expires within
// renew_before, or when `ingress renew` asked (renew_requested > renewed); and not before its
// next_attempt_at after a failure. An order's challenges go into the ingress's status, from
// which the routing table hands them to every node's HTTP ingress. The issued chain and key are
// stored exactly as a user's --cert/--key (the key sealed under the cluster key), so nodes pick
// the certificate up and swap it like any other. Failures become an event and the ingress's
// acme.state FAILED with the error, retried with backoff.
class AcmeController {
 public:
  // `transport` makes the HTTP client of each AcmeClient (tests: a fake server); null: the real
  // one with options.ca_bundle.
  using TransportFactory = std::function<std::unique_ptr<AcmeTransport>()>;
  AcmeController(Store& store, const Clock& clock, EventLog& events, ClusterKeyFn cluster_key,
                 AcmeControllerOptions options, TransportFactory transport = nullptr);
  ~AcmeController();
  AcmeController(const AcmeController&) = delete;
  AcmeController& operator=(const AcmeController&) = delete;

  void Start();
  void Stop();

  // Several managers: orders run only while `leads` says this manager's controllers lead; an
  // order in flight stops when it no longer does (the next leader starts it over). Unset: one
  // manager, always leading.
  void SetLeadership(std::function<bool()> leads) { leads_ = std::move(leads); }

  // Orders for the first due ingress (by name), if any; returns when to look again even if the
  // store does not change. Tests call it directly.
  absl::Time RunOnce();

 private:
  void Loop();
  bool Leads() const { return !leads_ || leads_(); }
  // Stop() was called, or this manager no longer leads.
  bool Abandoned() const { return stop_.load() || !Leads(); }
  // When `ingress` needs an order next (InfinitePast: now).
  absl::Time DueAt(const v1::Ingress& ingress) const;
  void Order(const v1::Ingress& ingress);
  // Read-modify-write of the stored ingress `id` while it still is the ACME ingress for `host`;
  // false when it is gone or changed into something else.
  absl::StatusOr<bool> Update(const std::string& id, const std::string& host,
                              const std::function<absl::Status(v1::Ingress&)>& change,
                              const std::string& event_action, const std::string& event_message);

  Store& store_;
  const Clock& clock_;
  EventLog& events_;
  const ClusterKeyFn cluster_key_;
  const AcmeControllerOptions options_;
  const TransportFactory transport_;
  std::function<bool()> leads_;  // set before Start
  std::unique_ptr<AcmeClient> client_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// When a certificate valid from `not_before` to `not_after` is renewed: `renew_before` ahead of
// its expiry, or after two thirds of its life when it lives shorter than three times that.
absl::Time AcmeRenewAt(absl::Time not_before, absl::Time not_after, absl::Duration renew_before);

// The delay before retry number `failures` (1 after the first failure).
absl::Duration AcmeBackoff(int failures, absl::Duration min, absl::Duration max);

}  // namespace warren

#endif  // WARREN_INGRESS_ACME_CONTROLLER_H_
