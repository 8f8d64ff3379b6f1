#include "security/cert_renewer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace warren::security {

CertificateRenewer::CertificateRenewer(CredentialsDirectory dir, RenewFn renew, const Clock& clock,
                                       uint64_t seed)
    : dir_(std::move(dir)), renew_(std::move(renew)), clock_(clock), gen_(seed) {}

absl::StatusOr<absl::Time> CertificateRenewer::NextRenewal() {
  auto material = dir_.Read();
  if (!material.ok()) return material.status();
  auto info = ParseNodeCertificate(material->cert_pem);
  if (!info.ok()) return info.status();
  absl::MutexLock lock(&mu_);
  if (drawn_for_ != info->serial) {
    due_ = RenewalTime(*info, gen_);
    drawn_for_ = info->serial;
  }
  return due_;
}

absl::StatusOr<bool> CertificateRenewer::RenewIfDue() {
  auto due = NextRenewal();
  if (!due.ok()) return due.status();
  const absl::Time now = clock_.Now();
  if (now < *due) return false;
  auto material = dir_.Read();
  if (!material.ok()) return material.status();
  auto current = ParseNodeCertificate(material->cert_pem);
  if (!current.ok()) return current.status();
  auto key = GeneratePrivateKey();
  if (!key.ok()) return key.status();
  auto csr = CreateCsr(*key);
  if (!csr.ok()) return csr.status();
  auto renewed = renew_(*current, *csr);
  if (!renewed.ok()) return renewed.status();
  const std::string& ca =
      renewed->ca_cert_pem.empty() ? material->ca_cert_pem : renewed->ca_cert_pem;
  if (absl::Status s = dir_.Install({ca, renewed->cert_pem, *key}, now); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("installing the renewed certificate in ", dir_.dir(),
                                               ": ", s.message()));
  }
  absl::MutexLock lock(&mu_);
  renewals_++;
  spdlog::info("certificate of node {} renewed in {}", current->identity.node_id, dir_.dir());
  return true;
}

void CertificateRenewer::Start(absl::Duration poll) {
  {
    absl::MutexLock lock(&mu_);
    stop_ = false;
  }
  thread_ = std::thread([this, poll] {
    absl::MutexLock lock(&mu_);
    while (!stop_) {
      mu_.Unlock();
      absl::StatusOr<bool> renewed = RenewIfDue();
      if (!renewed.ok()) {
        spdlog::warn("renewing the certificate in {}: {} (retrying; the current one stays in use)",
                     dir_.dir(), std::string(renewed.status().message()));
      }
      mu_.Lock();
      mu_.AwaitWithTimeout(absl::Condition(&stop_), poll);
    }
  });
}

void CertificateRenewer::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

}  // namespace warren::security
