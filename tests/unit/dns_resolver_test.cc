#include <gtest/gtest.h>

#include "gmock/gmock.h"

#include <cmath>
#include <fstream>
#include <map>

#include "dns/dns_message.h"
#include "dns/service_resolver.h"
#include "test_util.h"

namespace warren::dns {
namespace {

void AddEndpoint(v1::RevisionRoute* rev, const std::string& addr, int slot, int port = 8080) {
  auto* e = rev->add_endpoints();
  e->set_task_id("t-" + addr);
  e->set_address(addr);
  e->set_port(port);
  e->set_slot(slot);
}

// web: revision 1 (weight w1, 127.1.0.1/.2, slots 1,2), revision 2 (weight 100-w1, 127.1.0.3,
// slot 3), preview revision 3 (127.1.0.9, slot 4). db: no endpoints at all.
v1::RoutingTable Table(int w1 = 100) {
  v1::RoutingTable t;
  t.set_version(42);
  auto* web = t.add_services();
  web->set_service_id("s-web");
  web->set_name("web");
  auto* p = web->add_ports();
  p->set_name("http");
  p->set_target(8080);
  auto* p2 = web->add_ports();
  p2->set_target(9090);  // unnamed: SRV name "p9090"
  auto* r1 = web->add_revisions();
  r1->set_revision(1);
  r1->set_weight(w1);
  AddEndpoint(r1, "127.1.0.1", 1);
  AddEndpoint(r1, "127.1.0.2", 2);
  auto* r2 = web->add_revisions();
  r2->set_revision(2);
  r2->set_weight(100 - w1);
  AddEndpoint(r2, "127.1.0.3", 3);
  auto* r3 = web->add_revisions();
  r3->set_revision(3);
  r3->set_preview(true);
  AddEndpoint(r3, "127.1.0.9", 4);
  auto* db = t.add_services();
  db->set_name("db");
  db->add_revisions()->set_revision(1);
  return t;
}

std::vector<uint8_t> QueryWire(const std::string& name, uint16_t type,
                               std::optional<uint16_t> edns = {}, uint16_t id = 77) {
  Message m;
  m.header.id = id;
  m.header.rd = true;
  m.questions.push_back({name, type, kClassIn});
  if (edns) {
    m.edns.emplace();
    m.edns->udp_payload_size = *edns;
  }
  return *SerializeMessage(m);
}

class ResolverTest : public ::testing::Test {
 protected:
  ResolverOptions Options() {
    ResolverOptions o;
    o.seed = 12345;
    return o;
  }
  void SetUp() override {
    resolver_ = std::make_unique<ServiceResolver>(Options());
    ASSERT_TRUE(resolver_->Update(Table(100)).ok());
  }
  Message Ask(const std::string& name, uint16_t type, Transport t = Transport::kUdp,
              std::optional<uint16_t> edns = {}) {
    auto result = resolver_->Answer(QueryWire(name, type, edns), t);
    EXPECT_EQ(result.action, ResolverCore::Result::Action::kRespond) << name;
    auto m = ParseMessage(result.wire);
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() ? *m : Message{};
  }
  static std::vector<std::string> Addresses(const Message& m) {
    std::vector<std::string> out;
    for (const auto& rr : m.answers) {
      if (rr.type == kTypeA) out.push_back(FormatIpv4(std::get<AData>(rr.data).address));
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  std::unique_ptr<ServiceResolver> resolver_;
};

using ::testing::ElementsAre;

TEST_F(ResolverTest, ServiceNameBareAndInDomain) {
  for (const char* name : {"web", "web.warren", "WEB.Warren.", "web."}) {
    Message m = Ask(name, kTypeA);
    EXPECT_EQ(m.Rcode(), kRcodeNoError) << name;
    EXPECT_TRUE(m.header.aa);
    EXPECT_EQ(m.header.id, 77);
    EXPECT_THAT(Addresses(m), ElementsAre("127.1.0.1", "127.1.0.2")) << name;
    EXPECT_EQ(m.answers[0].ttl, 5u);
    // The owner echoes the question as asked (case kept, no trailing dot in our form).
    EXPECT_EQ(m.answers[0].name, m.questions[0].name);
    EXPECT_EQ(CanonicalName(m.answers[0].name), CanonicalName(name));
  }
}

TEST_F(ResolverTest, NonPreviewRevisionsWithWeightShareTheName) {
  ASSERT_TRUE(resolver_->Update(Table(50)).ok());
  EXPECT_THAT(Addresses(Ask("web.warren", kTypeA)),
              ElementsAre("127.1.0.1", "127.1.0.2", "127.1.0.3"));
}

TEST_F(ResolverTest, PreviewRevisionSlot) {
  EXPECT_THAT(Addresses(Ask("web-preview", kTypeA)), ElementsAre("127.1.0.9"));
  EXPECT_THAT(Addresses(Ask("web-preview.warren", kTypeA)), ElementsAre("127.1.0.9"));
  EXPECT_EQ(Ask("db-preview.warren", kTypeA).Rcode(), kRcodeNxDomain);
  EXPECT_THAT(Addresses(Ask("v2.web", kTypeA)), ElementsAre("127.1.0.3"));
  EXPECT_THAT(Addresses(Ask("v3.web.warren", kTypeA)), ElementsAre("127.1.0.9"));
  EXPECT_EQ(Ask("v9.web.warren", kTypeA).Rcode(), kRcodeNxDomain);
  EXPECT_EQ(Ask("v9.web", kTypeA).Rcode(), kRcodeNxDomain);
  EXPECT_THAT(Addresses(Ask("2.web.warren", kTypeA)), ElementsAre("127.1.0.2"));
  EXPECT_THAT(Addresses(Ask("3.web", kTypeA)), ElementsAre("127.1.0.3"));
  EXPECT_EQ(Ask("7.web.warren", kTypeA).Rcode(), kRcodeNxDomain);
}

TEST_F(ResolverTest, NxDomainAndNoDataCarrySoa) {
  Message nx = Ask("nope.warren", kTypeA);
  EXPECT_EQ(nx.Rcode(), kRcodeNxDomain);
  EXPECT_TRUE(nx.answers.empty());
  ASSERT_EQ(nx.authorities.size(), 1u);
  EXPECT_EQ(nx.authorities[0].type, kTypeSoa);
  EXPECT_EQ(nx.authorities[0].name, "warren");
  EXPECT_EQ(std::get<SoaData>(nx.authorities[0].data).serial, 42u);
  EXPECT_EQ(std::get<SoaData>(nx.authorities[0].data).minimum, 5u);
  EXPECT_EQ(Ask("a.b.c.warren", kTypeA).Rcode(), kRcodeNxDomain);

  for (uint16_t type : {kTypeAaaa, kTypeTxt, kTypeMx}) {
    Message nodata = Ask("web.warren", type);
    EXPECT_EQ(nodata.Rcode(), kRcodeNoError);
    EXPECT_TRUE(nodata.answers.empty());
    ASSERT_EQ(nodata.authorities.size(), 1u);
    EXPECT_EQ(nodata.authorities[0].type, kTypeSoa);
  }
  // A known service without endpoints exists but has nothing to return.
  Message empty = Ask("db.warren", kTypeA);
  EXPECT_EQ(empty.Rcode(), kRcodeNoError);
  EXPECT_TRUE(empty.answers.empty());
  // The apex answers SOA.
  Message apex = Ask("warren", kTypeSoa);
  ASSERT_EQ(apex.answers.size(), 1u);
  EXPECT_EQ(apex.answers[0].type, kTypeSoa);
}

TEST_F(ResolverTest, SrvWithTargetsAndGlue) {
  Message m = Ask("_http._tcp.web.warren", kTypeSrv);
  EXPECT_EQ(m.Rcode(), kRcodeNoError);
  ASSERT_EQ(m.answers.size(), 2u);  // revision 1 only: revision 2 has weight 0
  std::map<std::string, uint16_t> targets;
  for (const auto& rr : m.answers) {
    const auto& srv = std::get<SrvData>(rr.data);
    targets[srv.target] = srv.port;
  }
  EXPECT_EQ(targets.at("1.web.warren"), 8080);
  EXPECT_EQ(targets.at("2.web.warren"), 8080);
  ASSERT_EQ(m.additionals.size(), 2u);
  EXPECT_EQ(m.additionals[0].type, kTypeA);
  EXPECT_TRUE(m.additionals[0].name == "1.web.warren" || m.additionals[0].name == "2.web.warren");

  Message p = Ask("_p9090._tcp.web", kTypeSrv);
  ASSERT_EQ(p.answers.size(), 2u);
  EXPECT_EQ(std::get<SrvData>(p.answers[0].data).port, 9090);
  EXPECT_EQ(Ask("_ftp._tcp.web.warren", kTypeSrv).Rcode(), kRcodeNxDomain);
  Message a_on_srv = Ask("_http._tcp.web.warren", kTypeA);
  EXPECT_EQ(a_on_srv.Rcode(), kRcodeNoError);
  EXPECT_TRUE(a_on_srv.answers.empty());
}

TEST_F(ResolverTest, SrvWeightsFollowRevisionWeights) {
  ASSERT_TRUE(resolver_->Update(Table(20)).ok());
  Message m = Ask("_http._tcp.web.warren", kTypeSrv);
  ASSERT_EQ(m.answers.size(), 3u);
  uint32_t rev1 = 0, rev2 = 0;
  for (const auto& rr : m.answers) {
    const auto& srv = std::get<SrvData>(rr.data);
    (srv.target == "3.web.warren" ? rev2 : rev1) += srv.weight;
  }
  EXPECT_EQ(rev1 * 80, rev2 * 20);
}

TEST_F(ResolverTest, TtlIsConfigurable) {
  ResolverOptions o = Options();
  o.ttl_seconds = 30;
  ServiceResolver r(o);
  ASSERT_TRUE(r.Update(Table()).ok());
  auto m = ParseMessage(r.Answer(QueryWire("web", kTypeA), Transport::kUdp).wire);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->answers[0].ttl, 30u);
}

TEST_F(ResolverTest, CustomDomain) {
  ResolverOptions o = Options();
  o.domain = "svc.cluster";
  ServiceResolver r(o);
  ASSERT_TRUE(r.Update(Table()).ok());
  auto m = ParseMessage(r.Answer(QueryWire("web.svc.cluster", kTypeA), Transport::kUdp).wire);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->answers.size(), 2u);
  auto nx = ParseMessage(r.Answer(QueryWire("x.svc.cluster", kTypeA), Transport::kUdp).wire);
  EXPECT_EQ(nx->Rcode(), kRcodeNxDomain);
  EXPECT_EQ(nx->authorities[0].name, "svc.cluster");
}

// The first record's revision must follow the weights. Over n draws the share has standard
// deviation sqrt(p(1-p)/n) <= 0.35 points at n = 20,000, so ±1.5 points is over 4 sigma.
TEST_F(ResolverTest, WeightedFirstRecord) {
  for (int w1 : {10, 25}) {
    ASSERT_TRUE(resolver_->Update(Table(w1)).ok());
    const int n = 20000;
    int rev1_first = 0;
    std::map<std::string, int> first_counts;
    for (int i = 0; i < n; ++i) {
      auto res = resolver_->Answer(QueryWire("web.warren", kTypeA), Transport::kUdp);
      auto m = ParseMessage(res.wire);
      ASSERT_TRUE(m.ok());
      ASSERT_EQ(m->answers.size(), 3u);
      std::string first = FormatIpv4(std::get<AData>(m->answers[0].data).address);
      ++first_counts[first];
      if (first != "127.1.0.3") ++rev1_first;
    }
    double share = 100.0 * rev1_first / n;
    EXPECT_NEAR(share, w1, 1.5) << "weights " << w1 << "/" << 100 - w1;
    // Rotation within revision 1 spreads its first places evenly.
    EXPECT_NEAR(first_counts["127.1.0.1"], first_counts["127.1.0.2"], n * 0.02);
  }
}

TEST_F(ResolverTest, SingleAnswer) {
  ResolverOptions o = Options();
  o.single_answer = true;
  ServiceResolver r(o);
  ASSERT_TRUE(r.Update(Table(25)).ok());
  int rev2 = 0;
  for (int i = 0; i < 20000; ++i) {
    auto m = ParseMessage(r.Answer(QueryWire("web", kTypeA), Transport::kUdp).wire);
    ASSERT_EQ(m->answers.size(), 1u);
    if (std::get<AData>(m->answers[0].data).address[3] == 3) ++rev2;
  }
  EXPECT_NEAR(100.0 * rev2 / 20000, 75, 1.5);
}

TEST_F(ResolverTest, SameSeedSameAnswers) {
  ResolverOptions o = Options();
  ServiceResolver a(o), b(o);
  ASSERT_TRUE(a.Update(Table(50)).ok());
  ASSERT_TRUE(b.Update(Table(50)).ok());
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(a.Answer(QueryWire("web", kTypeA), Transport::kUdp).wire,
              b.Answer(QueryWire("web", kTypeA), Transport::kUdp).wire);
  }
}

TEST_F(ResolverTest, OutsideNamesRefusedOrForwarded) {
  Message refused = Ask("example.com", kTypeA);
  EXPECT_EQ(refused.Rcode(), kRcodeRefused);
  EXPECT_FALSE(refused.header.ra);
  // A relative name whose last label is a service but is not one of the forms is not ours.
  EXPECT_EQ(Ask("www.web", kTypeA).Rcode(), kRcodeRefused);

  ResolverOptions o = Options();
  o.forward_outside = true;
  ServiceResolver r(o);
  ASSERT_TRUE(r.Update(Table()).ok());
  auto wire = QueryWire("example.com", kTypeA);
  auto res = r.Answer(wire, Transport::kUdp);
  EXPECT_EQ(res.action, ResolverCore::Result::Action::kForward);
  EXPECT_EQ(res.wire, wire);
  EXPECT_EQ(r.Answer(QueryWire("web", kTypeA), Transport::kUdp).action,
            ResolverCore::Result::Action::kRespond);
}

TEST_F(ResolverTest, TruncatesOverUdpOnly) {
  v1::RoutingTable t;
  auto* big = t.add_services();
  big->set_name("big");
  auto* rev = big->add_revisions();
  rev->set_revision(1);
  rev->set_weight(100);
  for (int i = 0; i < 100; ++i) AddEndpoint(rev, "10.0.0." + std::to_string(i), i);
  ASSERT_TRUE(resolver_->Update(t).ok());
  Message udp = Ask("big.warren", kTypeA);
  EXPECT_TRUE(udp.header.tc);
  EXPECT_LT(udp.answers.size(), 100u);
  Message edns = Ask("big.warren", kTypeA, Transport::kUdp, 4096);
  EXPECT_FALSE(edns.header.tc);
  EXPECT_EQ(edns.answers.size(), 100u);
  ASSERT_TRUE(edns.edns.has_value());
  EXPECT_EQ(edns.edns->udp_payload_size, 1232);
  Message tcp = Ask("big.warren", kTypeA, Transport::kTcp);
  EXPECT_FALSE(tcp.header.tc);
  EXPECT_EQ(tcp.answers.size(), 100u);
}

TEST_F(ResolverTest, ProtocolErrors) {
  // Unparseable body: FORMERR with the client's id.
  std::vector<uint8_t> bad = {0xAB, 0xCD, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 5, 'x'};
  auto res = resolver_->Answer(bad, Transport::kUdp);
  ASSERT_EQ(res.action, ResolverCore::Result::Action::kRespond);
  auto m = ParseMessage(res.wire);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->header.id, 0xABCD);
  EXPECT_EQ(m->Rcode(), kRcodeFormErr);
  // Too short for a header, or a response: dropped.
  EXPECT_EQ(resolver_->Answer(std::vector<uint8_t>{1, 2, 3}, Transport::kUdp).action,
            ResolverCore::Result::Action::kDrop);
  auto response = QueryWire("web", kTypeA);
  response[2] |= 0x80;
  EXPECT_EQ(resolver_->Answer(response, Transport::kUdp).action,
            ResolverCore::Result::Action::kDrop);
  // EDNS version 1: BADVERS.
  Message q;
  q.questions.push_back({"web", kTypeA, kClassIn});
  q.edns.emplace();
  q.edns->version = 1;
  auto badvers = ParseMessage(resolver_->Answer(*SerializeMessage(q), Transport::kUdp).wire);
  EXPECT_EQ(badvers->Rcode(), kRcodeBadVers);
  // Non-QUERY opcode: NOTIMP.
  auto notify = QueryWire("web", kTypeA);
  notify[2] |= 4 << 3;
  EXPECT_EQ(ParseMessage(resolver_->Answer(notify, Transport::kUdp).wire)->Rcode(), kRcodeNotImp);
}

TEST_F(ResolverTest, UpdateReportsSkippedEntries) {
  v1::RoutingTable t = Table();
  AddEndpoint(t.mutable_services(0)->mutable_revisions(0), "not-an-ip", 9);
  absl::Status s = resolver_->Update(t);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("endpoints.address"), std::string::npos) << s;
  // The valid endpoints are still served.
  EXPECT_EQ(Addresses(Ask("web", kTypeA)).size(), 2u);
  EXPECT_EQ(resolver_->version(), 42u);
}

TEST(ResolvConfTest, ReadsNameservers) {
  testing_util::TempDir dir;
  std::string path = dir.str() + "/resolv.conf";
  std::ofstream(path) << "# comment\nsearch example\nnameserver 10.0.0.53\n"
                         "  nameserver\t127.0.0.1  \noptions ndots:5\n";
  auto ns = ReadResolvConfNameservers(path);
  ASSERT_TRUE(ns.ok());
  EXPECT_THAT(*ns, ElementsAre("10.0.0.53", "127.0.0.1"));
  EXPECT_FALSE(ReadResolvConfNameservers(dir.str() + "/missing").ok());
}

}  // namespace
}  // namespace warren::dns
