#include "cli/store_flags.h"

#include <unistd.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/spec.h"
#include "store/store_url.h"

namespace warren {

void AddStoreFlags(CLI::App* cmd, StoreFlags* flags, StoreOptions* options) {
  cmd->add_option("--store", flags->url,
                  "Where the cluster state lives: etcd://HOST:PORT[,HOST:PORT...] for an etcd "
                  "cluster (default: the embedded SQLite store in --data-dir)");
  cmd->add_option("--etcd-ca", options->etcd_ca_file,
                  "TLS to etcd: the CA certificate of the etcd members (PEM)");
  cmd->add_option("--etcd-cert", options->etcd_cert_file,
                  "TLS client certificate for etcd (PEM; with --etcd-key)");
  cmd->add_option("--etcd-key", options->etcd_key_file, "Key of --etcd-cert (PEM)");
  cmd->add_option("--etcd-prefix", options->etcd_prefix,
                  "Prefix of every key Warren writes to etcd (one cluster per prefix)")
      ->capture_default_str();
  cmd->add_option("--leader-ttl", flags->leader_ttl,
                  "Lease of the controllers' leader on etcd, whole seconds: how long a crashed "
                  "manager keeps the controllers")
      ->capture_default_str();
  cmd->add_option("--etcd-compaction-interval", flags->compaction_interval,
                  "While leading, compact etcd's history every interval to the revision of one "
                  "interval earlier (0: never; then run etcd with --auto-compaction-*)")
      ->capture_default_str();
}

absl::Status FinishStoreFlags(const StoreFlags& flags, StoreOptions* options) {
  auto endpoints = ParseStoreUrl(flags.url);
  if (!endpoints.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--store: ", endpoints.status().message()));
  }
  options->etcd_endpoints = std::move(*endpoints);
  const bool etcd = !options->etcd_endpoints.empty();
  struct File {
    const char* flag;
    const std::string& path;
  };
  for (const File& f :
       {File{"--etcd-ca", options->etcd_ca_file}, File{"--etcd-cert", options->etcd_cert_file},
        File{"--etcd-key", options->etcd_key_file}}) {
    if (f.path.empty()) continue;
    if (!etcd) {
      return absl::InvalidArgumentError(
          absl::StrCat(f.flag, " is for an etcd store: give --store etcd://HOST:PORT too"));
    }
    if (access(f.path.c_str(), R_OK) != 0) {
      return absl::InvalidArgumentError(absl::StrCat(f.flag, " ", f.path, ": cannot be read"));
    }
  }
  if (options->etcd_cert_file.empty() != options->etcd_key_file.empty()) {
    return absl::InvalidArgumentError("--etcd-cert and --etcd-key go together: give both");
  }
  if (!options->etcd_cert_file.empty() && options->etcd_ca_file.empty()) {
    return absl::InvalidArgumentError(
        "--etcd-cert is sent over TLS only: give the etcd members' CA with --etcd-ca");
  }
  if (options->etcd_prefix.empty() || options->etcd_prefix.front() != '/' ||
      options->etcd_prefix.back() != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("--etcd-prefix \"", options->etcd_prefix,
                     "\": must start and end with '/', e.g. /warren/"));
  }
  auto ttl = ParseDuration(flags.leader_ttl);
  if (!ttl.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--leader-ttl: ", ttl.status().message()));
  }
  const double seconds = absl::ToDoubleSeconds(*ttl);
  if (seconds < 1 || seconds > 600 || seconds != std::floor(seconds)) {
    return absl::InvalidArgumentError(
        "--leader-ttl: must be whole seconds from 1s to 10m (etcd leases count seconds)");
  }
  options->leader_ttl = *ttl;
  auto compaction = ParseDuration(flags.compaction_interval);
  if (!compaction.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--etcd-compaction-interval: ", compaction.status().message()));
  }
  if (*compaction != absl::ZeroDuration() &&
      (*compaction < absl::Minutes(1) || *compaction > absl::Hours(24 * 7))) {
    return absl::InvalidArgumentError(
        absl::StrCat("--etcd-compaction-interval \"", flags.compaction_interval,
                     "\": must be 0 (never compact) or from 1m to 168h (one week), e.g. 5m"));
  }
  options->etcd_compaction_interval = *compaction;
  return absl::OkStatus();
}

}  // namespace warren
