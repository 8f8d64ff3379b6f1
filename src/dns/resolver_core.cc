#include "dns/resolver_core.h"

#include <algorithm>
#include <optional>
#include <random>
#include <unordered_map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace warren::dns {

struct ResolverCore::Index {
  struct Service {
    std::string name;
    std::vector<PortRecord> ports;
    std::vector<RevisionRecords> revisions;
    // Revisions that take production traffic: not preview, weight > 0, some endpoint.
    std::vector<size_t> weighted;
    int64_t total_weight = 0;
    std::optional<size_t> preview;
    // Round-robin position per revision; the index is otherwise immutable.
    std::unique_ptr<std::atomic<uint64_t>[]> rotation;
  };
  uint64_t version = 0;
  std::unordered_map<std::string, Service> services;
};

namespace {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

enum class NameKind { kOutside, kNxDomain, kApex, kService, kPreview, kRevision, kSlot, kSrv };

struct NameMatch {
  NameKind kind = NameKind::kOutside;
  const ResolverCore::Index::Service* service = nullptr;
  int64_t number = 0;  // revision or slot
  const PortRecord* port = nullptr;
};

bool ParseNumber(absl::string_view s, int64_t* out) {
  if (s.empty() || s.size() > 18) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return absl::SimpleAtoi(s, out);
}

}  // namespace

ResolverCore::ResolverCore(ResolverOptions options)
    : options_(std::move(options)), domain_(CanonicalName(options_.domain)) {
  if (options_.seed == 0) options_.seed = std::random_device{}();
  index_.store(std::make_shared<const Index>());
}

ResolverCore::~ResolverCore() = default;

uint64_t ResolverCore::version() const { return index_.load()->version; }

void ResolverCore::Update(const ServiceTable& table) {
  auto index = std::make_shared<Index>();
  index->version = table.version;
  for (const auto& s : table.services) {
    Index::Service svc;
    svc.name = CanonicalName(s.name);
    if (svc.name.empty()) continue;
    for (const auto& p : s.ports) {
      svc.ports.push_back(PortRecord{CanonicalName(p.name), p.target});
    }
    svc.revisions = s.revisions;
    std::sort(svc.revisions.begin(), svc.revisions.end(),
              [](const auto& a, const auto& b) { return a.revision < b.revision; });
    for (size_t i = 0; i < svc.revisions.size(); ++i) {
      const auto& r = svc.revisions[i];
      if (r.preview) {
        svc.preview = i;
      } else if (r.weight > 0 && !r.endpoints.empty()) {
        svc.weighted.push_back(i);
        svc.total_weight += r.weight;
      }
    }
    svc.rotation = std::make_unique<std::atomic<uint64_t>[]>(svc.revisions.size());
    std::string key = svc.name;
    index->services.insert_or_assign(std::move(key), std::move(svc));
  }
  index_.store(std::move(index));
}

uint64_t ResolverCore::NextRandom() const {
  return SplitMix64(options_.seed + counter_.fetch_add(1, std::memory_order_relaxed));
}

std::vector<uint8_t> ResolverCore::ServerFailure(std::span<const uint8_t> query) const {
  auto q = ParseMessage(query);
  if (!q.ok() || q->header.qr) return {};
  Message r = MakeResponse(*q, options_.edns_payload_size);
  r.header.ra = options_.forward_outside;
  r.SetRcode(kRcodeServFail);
  auto wire = SerializeMessage(r);
  return wire.ok() ? *std::move(wire) : std::vector<uint8_t>{};
}

ResolverCore::Result ResolverCore::Answer(std::span<const uint8_t> query,
                                          Transport transport) const {
  Result result;
  auto header = ParseHeader(query);
  if (!header.ok() || header->qr) return result;  // kDrop
  auto parsed = ParseMessage(query);
  Message response;
  size_t limit = kMaxMessageSize;
  if (!parsed.ok()) {
    response.header.id = header->id;
    response.header.qr = true;
    response.header.opcode = header->opcode;
    response.header.rd = header->rd;
    response.SetRcode(kRcodeFormErr);
    limit = kClassicUdpSize;
  } else {
    bool forward = false;
    response = Resolve(*parsed, &forward);
    if (forward) {
      result.action = Result::Action::kForward;
      result.wire.assign(query.begin(), query.end());
      return result;
    }
    if (transport == Transport::kUdp) limit = ClientUdpLimit(*parsed);
  }
  auto wire = SerializeMessage(response, limit);
  if (!wire.ok()) {
    // Only a question that cannot be re-encoded gets here; answer without it.
    response.questions.clear();
    response.answers.clear();
    response.authorities.clear();
    response.additionals.clear();
    response.SetRcode(kRcodeFormErr);
    wire = SerializeMessage(response, limit);
    if (!wire.ok()) return result;
  }
  result.action = Result::Action::kRespond;
  result.wire = *std::move(wire);
  return result;
}

Message ResolverCore::Resolve(const Message& query, bool* forward) const {
  Message r = MakeResponse(query, options_.edns_payload_size);
  r.header.ra = options_.forward_outside;
  if (query.edns && query.edns->version != 0) {
    r.SetRcode(kRcodeBadVers);
    return r;
  }
  if (query.header.opcode != 0) {
    r.SetRcode(kRcodeNotImp);
    return r;
  }
  if (query.questions.size() != 1) {
    r.SetRcode(kRcodeFormErr);
    return r;
  }
  const Question& q = query.questions[0];
  std::string name = CanonicalName(q.name);
  std::shared_ptr<const Index> index = index_.load();

  // Work out which of the served name forms this is. A name in the cluster domain is always
  // ours; a relative name only when it has one of the exact forms and names a known service,
  // so that `example.com` still goes upstream.
  NameMatch m;
  bool in_domain = false;
  absl::string_view rel = name;
  if (name == domain_) {
    m.kind = NameKind::kApex;
  } else {
    if (!domain_.empty() && absl::EndsWith(name, "." + domain_)) {
      in_domain = true;
      rel = absl::string_view(name).substr(0, name.size() - domain_.size() - 1);
    }
    std::vector<absl::string_view> labels = absl::StrSplit(rel, '.');
    auto find = [&](absl::string_view s) -> const Index::Service* {
      auto it = index->services.find(std::string(s));
      return it == index->services.end() ? nullptr : &it->second;
    };
    if (labels.size() == 1 && !rel.empty()) {
      if (const auto* s = find(rel)) {
        m = {NameKind::kService, s};
      } else if (absl::EndsWith(rel, "-preview")) {
        if (const auto* base = find(rel.substr(0, rel.size() - 8))) {
          m = {base->preview ? NameKind::kPreview : NameKind::kNxDomain, base};
        }
      }
    } else if (labels.size() == 2) {
      if (const auto* s = find(labels[1])) {
        int64_t n = 0;
        if (labels[0].size() > 1 && labels[0][0] == 'v' && ParseNumber(labels[0].substr(1), &n)) {
          m = {NameKind::kNxDomain, s, n};
          for (const auto& rev : s->revisions) {
            if (rev.revision == n) m.kind = NameKind::kRevision;
          }
        } else if (ParseNumber(labels[0], &n)) {
          m = {NameKind::kNxDomain, s, n};
          for (const auto& rev : s->revisions) {
            for (const auto& e : rev.endpoints) {
              if (e.slot == n) m.kind = NameKind::kSlot;
            }
          }
        }
      }
    } else if (labels.size() == 3 && labels[1] == "_tcp" && labels[0].size() > 1 &&
               labels[0][0] == '_') {
      if (const auto* s = find(labels[2])) {
        m = {NameKind::kNxDomain, s};
        for (const auto& p : s->ports) {
          if (p.name == labels[0].substr(1)) {
            m.kind = NameKind::kSrv;
            m.port = &p;
          }
        }
      }
    }
    if (m.kind == NameKind::kOutside && in_domain) m.kind = NameKind::kNxDomain;
  }

  if (m.kind == NameKind::kOutside) {
    if (options_.forward_outside) {
      *forward = true;
    } else {
      r.SetRcode(kRcodeRefused);
    }
    return r;
  }
  if (q.qclass != kClassIn && q.qclass != kTypeAny) {
    r.SetRcode(kRcodeRefused);
    return r;
  }
  r.header.aa = true;
  const uint32_t ttl = options_.ttl_seconds;
  std::string fqdn_suffix = domain_.empty() ? "" : "." + domain_;
  SoaData soa{"ns" + fqdn_suffix,
              "hostmaster" + fqdn_suffix,
              static_cast<uint32_t>(index->version),
              3600,
              600,
              86400,
              ttl};
  auto negative = [&](uint16_t rcode) {
    r.SetRcode(rcode);
    r.authorities.push_back(MakeSoa(domain_, ttl, soa));
  };
  if (m.kind == NameKind::kNxDomain) {
    negative(kRcodeNxDomain);
    return r;
  }
  if (m.kind == NameKind::kApex) {
    if (q.type == kTypeSoa || q.type == kTypeAny) {
      r.answers.push_back(MakeSoa(q.name, ttl, soa));
    } else {
      negative(kRcodeNoError);
    }
    return r;
  }

  const Index::Service& svc = *m.service;
  // Endpoints of one revision, starting at its round-robin position.
  auto rotated = [&](size_t rev_index, std::vector<EndpointRecord>* out) {
    const auto& eps = svc.revisions[rev_index].endpoints;
    if (eps.empty()) return;
    size_t start = svc.rotation[rev_index].fetch_add(1, std::memory_order_relaxed) % eps.size();
    for (size_t i = 0; i < eps.size(); ++i) out->push_back(eps[(start + i) % eps.size()]);
  };

  if (m.kind == NameKind::kSrv) {
    if (q.type != kTypeSrv && q.type != kTypeAny) {
      negative(kRcodeNoError);
      return r;
    }
    bool first_port = &svc.ports.front() == m.port;
    for (size_t ri : svc.weighted) {
      const auto& rev = svc.revisions[ri];
      // Clients pick among equal-priority SRV records in proportion to the weight field, so
      // each endpoint carries its revision's share divided among the revision's endpoints.
      uint32_t per_endpoint = static_cast<uint32_t>(
          std::clamp<int64_t>(int64_t{rev.weight} * 100 / int64_t(rev.endpoints.size()), 1, 65535));
      for (const auto& e : rev.endpoints) {
        uint16_t port = first_port && e.port != 0 ? e.port : m.port->target;
        std::string target = absl::StrCat(e.slot, ".", svc.name, fqdn_suffix);
        r.answers.push_back(
            MakeSrv(q.name, ttl, 0, static_cast<uint16_t>(per_endpoint), port, target));
        r.additionals.push_back(MakeA(std::move(target), ttl, e.address));
      }
    }
    if (r.answers.empty()) negative(kRcodeNoError);
    return r;
  }

  if (q.type != kTypeA && q.type != kTypeAny) {
    negative(kRcodeNoError);
    return r;
  }
  std::vector<EndpointRecord> eps;
  switch (m.kind) {
    case NameKind::kService: {
      if (svc.weighted.empty()) break;
      int64_t pick = static_cast<int64_t>(NextRandom() % uint64_t(svc.total_weight));
      size_t chosen = svc.weighted.back();
      for (size_t ri : svc.weighted) {
        if (pick < svc.revisions[ri].weight) {
          chosen = ri;
          break;
        }
        pick -= svc.revisions[ri].weight;
      }
      rotated(chosen, &eps);
      for (size_t ri : svc.weighted) {
        if (ri != chosen) rotated(ri, &eps);
      }
      break;
    }
    case NameKind::kPreview:
      rotated(*svc.preview, &eps);
      break;
    case NameKind::kRevision:
      for (size_t ri = 0; ri < svc.revisions.size(); ++ri) {
        if (svc.revisions[ri].revision == m.number) rotated(ri, &eps);
      }
      break;
    case NameKind::kSlot:
      // During a rolling update two revisions can briefly share a slot; newest first.
      for (size_t ri = svc.revisions.size(); ri-- > 0;) {
        for (const auto& e : svc.revisions[ri].endpoints) {
          if (e.slot == m.number) eps.push_back(e);
        }
      }
      break;
    default:
      break;
  }
  if (eps.empty()) {
    negative(kRcodeNoError);
    return r;
  }
  if (options_.single_answer) eps.resize(1);
  for (const auto& e : eps) r.answers.push_back(MakeA(q.name, ttl, e.address));
  return r;
}

}  // namespace warren::dns
