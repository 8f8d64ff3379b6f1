#include "cli/listener_flags.h"

#include "absl/strings/str_cat.h"
#include "common/spec.h"

namespace warren {

namespace {

absl::Status SetTimeout(const std::string& flag, const std::string& text, absl::Duration* out) {
  if (text.empty()) return absl::OkStatus();  // the default
  absl::StatusOr<absl::Duration> d = ParseDuration(text);
  if (!d.ok()) return absl::InvalidArgumentError(absl::StrCat(flag, ": ", d.status().message()));
  if (*d < absl::ZeroDuration() || *d > absl::Hours(24)) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": must be between 0s (no limit) and 24h, got \"", text, "\""));
  }
  *out = *d;
  return absl::OkStatus();
}

}  // namespace

void AddProxyLimitFlags(CLI::App* cmd, ProxyLimitFlags* f) {
  const ProxyLimits defaults;
  cmd->add_option("--proxy-header-timeout", f->header_timeout,
                  absl::StrCat("Published ports (HTTP): the whole request head must arrive within "
                               "this time, else 408 and close; 0 = no limit (default ",
                               absl::FormatDuration(defaults.header_timeout), ")"));
  cmd->add_option("--proxy-idle-timeout", f->idle_timeout,
                  absl::StrCat("Published ports (HTTP): close a keep-alive connection without a "
                               "request, or a client that stops sending or reading, after this "
                               "long; 0 = no limit (default ",
                               absl::FormatDuration(defaults.idle_timeout), ")"));
  cmd->add_option("--proxy-max-connections", f->max_connections,
                  "Client connections at once per published port; more get 503 (HTTP) or are "
                  "closed (TCP)")
      ->capture_default_str();
}

absl::Status FinishProxyLimitFlags(const ProxyLimitFlags& f, ProxyLimits* out) {
  if (auto s = SetTimeout("--proxy-header-timeout", f.header_timeout, &out->header_timeout);
      !s.ok()) {
    return s;
  }
  if (auto s = SetTimeout("--proxy-idle-timeout", f.idle_timeout, &out->idle_timeout); !s.ok()) {
    return s;
  }
  if (f.max_connections < 1 || f.max_connections > 1000000) {
    return absl::InvalidArgumentError(
        absl::StrCat("--proxy-max-connections: must be 1..1000000, got ", f.max_connections));
  }
  out->max_connections = f.max_connections;
  return absl::OkStatus();
}

void AddReservedFdsFlag(CLI::App* cmd, int64_t* reserved) {
  cmd->add_option("--reserved-fds", *reserved,
                  "File descriptors kept for the control plane (API, store, tasks): published "
                  "ports and DNS refuse new connections before the process would run out "
                  "(their budget is RLIMIT_NOFILE minus this, at least half of it)")
      ->capture_default_str();
}

absl::Status CheckReservedFds(int64_t reserved) {
  if (reserved < 0 || reserved > 1000000) {
    return absl::InvalidArgumentError(
        absl::StrCat("--reserved-fds: must be 0..1000000, got ", reserved));
  }
  return absl::OkStatus();
}

}  // namespace warren
