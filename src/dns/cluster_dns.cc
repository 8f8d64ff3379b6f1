#include "dns/cluster_dns.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace warren::dns {

absl::StatusOr<std::unique_ptr<ClusterDns>> ClusterDns::Start(const DnsOptions& options) {
  std::unique_ptr<ClusterDns> d(new ClusterDns());
  ResolverOptions ro;
  ro.domain = options.domain;
  ro.ttl_seconds = static_cast<uint32_t>(absl::ToInt64Seconds(options.ttl));
  ro.single_answer = options.single_answer;
  ro.forward_outside = !options.refuse_external;
  ro.seed = static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()));
  d->resolver_ = std::make_unique<ServiceResolver>(ro);

  DnsServerOptions so;
  auto colon = options.addr.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(options.addr.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dns-addr: \"", options.addr, "\" is not HOST:PORT (e.g. 127.0.0.11:53, port 0 for any)"));
  }
  so.address = options.addr.substr(0, colon);
  if (so.address.size() > 2 && so.address.front() == '[') {
    so.address = so.address.substr(1, so.address.size() - 2);
  }
  so.port = static_cast<uint16_t>(port);
  so.freebind = options.freebind;
  if (!options.refuse_external) {
    so.upstreams = options.upstreams;
    if (so.upstreams.empty()) {
      auto from_conf = ReadResolvConfNameservers();
      if (from_conf.ok()) so.upstreams = *from_conf;
    }
  }
  d->server_ = std::make_unique<DnsServer>(so, *d->resolver_);
  if (absl::Status s = d->server_->Start(); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("dns-addr ", options.addr, ": ", s.message()));
  }
  spdlog::info("service DNS on {}:{} (domain {}, ttl {}s, other names {})", so.address,
               d->server_->port(), options.domain, ro.ttl_seconds,
               options.refuse_external ? "refused" : "forwarded");
  return d;
}

ClusterDns::~ClusterDns() {
  if (server_) server_->Stop();
}

void ClusterDns::Update(const v1::RoutingTable& table) {
  if (absl::Status s = resolver_->Update(table); !s.ok()) {
    spdlog::warn("dns: {}", std::string(s.message()));
  }
}

}  // namespace warren::dns
