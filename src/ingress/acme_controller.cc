#include "ingress/acme_controller.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/time_util.h"
#include "ingress/ingress_api.h"
#include "ingress/ingress_spec.h"
#include "manager/commit_retry.h"
#include "spdlog/spdlog.h"
#include "store/typed_store.h"

namespace warren {

absl::Duration AcmeBackoff(int failures, absl::Duration min, absl::Duration max) {
  absl::Duration d = min;
  for (int i = 1; i < failures && d < max; ++i) d *= 2;
  return std::min(d, max);
}

AcmeController::AcmeController(Store& store, const Clock& clock, EventLog& events,
                               ClusterKeyFn cluster_key, AcmeControllerOptions options,
                               TransportFactory transport)
    : store_(store),
      clock_(clock),
      events_(events),
      cluster_key_(std::move(cluster_key)),
      options_(std::move(options)),
      transport_(std::move(transport)) {}

AcmeController::~AcmeController() { Stop(); }

void AcmeController::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void AcmeController::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void AcmeController::Loop() {
  while (!stop_) {
    if (!Leads()) {
      // A follower orders nothing; the leader's writes wake nothing here, so look again soon.
      absl::SleepFor(absl::Milliseconds(100));
      continue;
    }
    const uint64_t seen = store_.Version();
    absl::Time next = RunOnce();
    // A store change (a new ACME ingress, `ingress renew`) is looked at at once; the wait is
    // short so that Stop never waits long.
    const absl::Duration wait =
        std::clamp(next - clock_.Now(), absl::ZeroDuration(), absl::Milliseconds(500));
    if (wait > absl::ZeroDuration()) store_.WaitForVersion(seen, wait);
  }
}

absl::Time AcmeRenewAt(absl::Time not_before, absl::Time not_after, absl::Duration renew_before) {
  // A certificate that lives shorter than renew_before (a CA's 6-day or 24-hour ones) would
  // be due as soon as it is issued and ordered again without end: renewed after two thirds
  // of its life instead.
  const absl::Duration life = not_after - not_before;
  return not_after - std::min(renew_before, life / 3);
}

absl::Time AcmeController::DueAt(const v1::Ingress& ingress) const {
  const v1::IngressAcmeStatus& acme = ingress.acme();
  absl::Time due = absl::InfinitePast();
  const v1::IngressCertificate& cert = ingress.certificate();
  const bool has_certificate =
      !ingress.spec().tls().certificate_pem().empty() && IsSet(cert.not_after());
  if (has_certificate && acme.renew_requested() <= acme.renewed()) {
    const absl::Time not_after = FromProtoTime(cert.not_after());
    due = IsSet(cert.not_before())
              ? AcmeRenewAt(FromProtoTime(cert.not_before()), not_after, options_.renew_before)
              : not_after - options_.renew_before;
  }
  if (IsSet(acme.next_attempt_at())) due = std::max(due, FromProtoTime(acme.next_attempt_at()));
  return due;
}

absl::Time AcmeController::RunOnce() {
  if (!Leads()) return clock_.Now() + absl::Milliseconds(100);
  std::vector<v1::Ingress> acme;
  for (v1::Ingress& i : ListObjects<v1::Ingress>(store_)) {
    if (i.spec().tls().mode() == v1::INGRESS_TLS_MODE_ACME) acme.push_back(std::move(i));
  }
  std::sort(acme.begin(), acme.end(), [](const v1::Ingress& a, const v1::Ingress& b) {
    return a.spec().name() < b.spec().name();
  });
  const absl::Time now = clock_.Now();
  absl::Time next = now + absl::Minutes(10);
  for (const v1::Ingress& i : acme) {
    const absl::Time due = DueAt(i);
    if (due <= now) {
      Order(i);
      // Look again soon: others may be due too (not at once: a store that refuses every
      // commit must not turn this into a busy loop).
      return now + absl::Milliseconds(100);
    }
    next = std::min(next, due);
  }
  return next;
}

absl::StatusOr<bool> AcmeController::Update(const std::string& id, const std::string& host,
                                            const std::function<absl::Status(v1::Ingress&)>& change,
                                            const std::string& event_action,
                                            const std::string& event_message) {
  bool applied = false;
  auto v = CommitWithRetry(store_, [&]() -> absl::StatusOr<std::vector<Mutation>> {
    applied = false;
    auto current = GetObject<v1::Ingress>(store_, id);
    // Removed, or replaced by something that is no longer this order's: drop the result.
    if (!current || current->spec().tls().mode() != v1::INGRESS_TLS_MODE_ACME ||
        current->spec().host() != host) {
      return std::vector<Mutation>{};
    }
    v1::Ingress next = *current;
    if (auto s = change(next); !s.ok()) return s;
    next.clear_version();
    std::vector<Mutation> m = {PutMutation(next, current->version())};
    if (!event_action.empty()) {
      m.push_back(events_.Make("ingress", next.id(), next.spec().name(), event_action,
                               event_message, next.service_id()));
    }
    applied = true;
    return m;
  });
  if (!v.ok()) return v.status();
  return applied;
}

void AcmeController::Order(const v1::Ingress& ingress) {
  const std::string id = ingress.id();
  const std::string name = ingress.spec().name();
  const std::string host = ingress.spec().host();
  const uint64_t renew_requested = ingress.acme().renew_requested();
  auto started = Update(
      id, host,
      [&](v1::Ingress& i) {
        i.mutable_acme()->set_state(v1::ACME_STATE_ORDERING);
        i.mutable_acme()->clear_challenges();
        i.mutable_acme()->clear_order_url();
        return absl::OkStatus();
      },
      "", "");
  if (!started.ok() || !*started) return;
  if (!client_) {
    AcmeOptions o = options_.acme;
    client_ = std::make_unique<AcmeClient>(
        o, transport_ ? transport_()
                      : MakeHttpAcmeTransport(options_.ca_bundle, options_.request_timeout));
  }
  spdlog::info("ingress {}: ordering a certificate for {} from {}", name, host,
               options_.acme.directory_url);
  auto publish = [&](const std::vector<v1::AcmeChallenge>& challenges) -> absl::Status {
    auto put = Update(
        id, host,
        [&](v1::Ingress& i) {
          auto* acme = i.mutable_acme();
          acme->clear_challenges();
          for (const v1::AcmeChallenge& c : challenges) *acme->add_challenges() = c;
          return absl::OkStatus();
        },
        "", "");
    if (!put.ok()) return put.status();
    if (!*put) return absl::AbortedError("the ingress was removed or changed during the order");
    // The routing table carries the challenges to the nodes; give them a moment to get it.
    absl::SleepFor(options_.propagation_delay);
    return absl::OkStatus();
  };
  absl::StatusOr<AcmeIssued> issued =
      client_->Obtain(host, publish, [this] { return Abandoned(); });
  // The next leader (or this one after a restart) starts over.
  if (Abandoned()) {
    spdlog::info("ingress {}: the order for {} stops here: this manager {}", name, host,
                 stop_ ? "stops" : "no longer leads");
    return;
  }
  absl::StatusOr<v1::IngressCertificate> info =
      issued.ok() ? CheckIngressCertificate(host, issued->certificate_pem, issued->key_pem.reveal())
                  : absl::StatusOr<v1::IngressCertificate>(issued.status());
  if (issued.ok() && !info.ok()) {
    info = absl::Status(info.status().code(),
                        absl::StrCat("the issued certificate: ", info.status().message()));
  }
  const absl::Time now = clock_.Now();
  if (info.ok()) {
    const std::string names = absl::StrJoin(info->names(), ", ");
    const std::string expires = absl::FormatTime(
        "%Y-%m-%dT%H:%M:%SZ", FromProtoTime(info->not_after()), absl::UTCTimeZone());
    auto done = Update(
        id, host,
        [&](v1::Ingress& i) -> absl::Status {
          v1::IngressTls* tls = i.mutable_spec()->mutable_tls();
          tls->set_certificate_pem(issued->certificate_pem);
          tls->set_key_pem(std::string(issued->key_pem.reveal()));
          if (auto s = SealIngressKey(cluster_key_, &i); !s.ok()) return s;
          *i.mutable_certificate() = *info;
          v1::IngressAcmeStatus* acme = i.mutable_acme();
          acme->set_state(v1::ACME_STATE_VALID);
          acme->clear_error();
          acme->set_failures(0);
          acme->clear_next_attempt_at();
          *acme->mutable_issued_at() = ToProtoTime(now);
          acme->clear_order_url();
          acme->clear_challenges();
          acme->set_renewed(std::max(acme->renewed(), renew_requested));
          acme->set_directory(options_.acme.directory_url);
          return absl::OkStatus();
        },
        "certificate-issued",
        absl::StrCat("ACME certificate for ", names, " from ", options_.acme.directory_url,
                     ", expires ", expires));
    if (done.ok()) {
      if (*done)
        spdlog::info("ingress {}: certificate issued for {}, expires {}", name, names, expires);
      return;
    }
    info = done.status();
  }
  const std::string error(info.status().message());
  // The account is kept across failures (a CA limits how many a host may create). Only a
  // server that no longer knows it (a restarted pebble, a deactivated account) gets a new one.
  if (!issued.ok() && absl::StrContains(error, "urn:ietf:params:acme:error:accountDoesNotExist")) {
    client_.reset();
  }
  int failures = 0;
  auto failed = Update(
      id, host,
      [&](v1::Ingress& i) {
        v1::IngressAcmeStatus* acme = i.mutable_acme();
        failures = acme->failures() + 1;
        acme->set_state(v1::ACME_STATE_FAILED);
        acme->set_error(error);
        acme->set_failures(failures);
        *acme->mutable_next_attempt_at() =
            ToProtoTime(now + AcmeBackoff(failures, options_.min_backoff, options_.max_backoff));
        acme->clear_order_url();
        acme->clear_challenges();
        return absl::OkStatus();
      },
      "acme-failed", absl::StrCat("ordering a certificate for ", host, " failed: ", error));
  spdlog::warn("ingress {}: ordering a certificate for {} failed (attempt {}): {}", name, host,
               failures, error);
  if (!failed.ok()) {
    spdlog::warn("ingress {}: recording the ACME failure: {}", name, failed.status().ToString());
  }
}

}  // namespace warren
