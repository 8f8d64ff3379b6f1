// libFuzzer target: any bytes through the wire parser, the resolver (UDP and TCP limits), and
// a re-parse of every answer the resolver produces.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "dns/dns_message.h"
#include "dns/resolver_core.h"

namespace {

const warren::dns::ResolverCore& Resolver() {
  static warren::dns::ResolverCore* resolver = [] {
    using namespace warren::dns;
    ResolverOptions o;
    o.seed = 1;
    auto* r = new ResolverCore(o);
    ServiceTable t;
    t.version = 7;
    ServiceRecords web{"web", {{"http", 8080}, {"admin", 9090}}, {}};
    web.revisions.push_back({1, 90, false, {{{127, 1, 0, 1}, 8080, 1}, {{127, 1, 0, 2}, 8080, 2}}});
    web.revisions.push_back({2, 10, false, {{{127, 1, 0, 3}, 8080, 1}}});
    web.revisions.push_back({3, 0, true, {{{127, 1, 0, 4}, 8080, 3}}});
    t.services.push_back(web);
    ServiceRecords big{"big", {{"p80", 80}}, {}};
    RevisionRecords rev{1, 100, false, {}};
    for (int i = 0; i < 200; ++i) {
      rev.endpoints.push_back({{10, 0, uint8_t(i / 250), uint8_t(i % 250)}, 80, i});
    }
    big.revisions.push_back(rev);
    t.services.push_back(big);
    r->Update(t);
    return r;
  }();
  return *resolver;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace warren::dns;
  std::span<const uint8_t> in(data, size);
  auto parsed = ParseMessage(in);
  if (parsed.ok()) {
    // Whatever parses must serialize again, within any limit, without crashing.
    (void)SerializeMessage(*parsed, 512);
    (void)SerializeMessage(*parsed);
  }
  for (Transport t : {Transport::kUdp, Transport::kTcp}) {
    auto result = Resolver().Answer(in, t);
    if (result.action == ResolverCore::Result::Action::kRespond) {
      // Our own answers must be well-formed and within the transport's limit.
      if (!ParseMessage(result.wire).ok()) abort();
      if (t == Transport::kUdp && parsed.ok() && result.wire.size() > ClientUdpLimit(*parsed)) {
        abort();
      }
    }
  }
  return 0;
}
