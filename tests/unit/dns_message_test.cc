#include "dns/dns_message.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace warren::dns {
namespace {

Message Query(const std::string& name, uint16_t type, std::optional<uint16_t> edns = {}) {
  Message m;
  m.header.id = 0x1234;
  m.header.rd = true;
  m.questions.push_back({name, type, kClassIn});
  if (edns) {
    m.edns.emplace();
    m.edns->udp_payload_size = *edns;
  }
  return m;
}

TEST(DnsMessageTest, QueryRoundTrip) {
  Message q = Query("web.warren", kTypeA, 4096);
  q.edns->options.push_back({10, {1, 2, 3, 4, 5, 6, 7, 8}});
  q.edns->dnssec_ok = true;
  auto wire = SerializeMessage(q);
  ASSERT_TRUE(wire.ok()) << wire.status();
  auto back = ParseMessage(*wire);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->header.id, 0x1234);
  EXPECT_TRUE(back->header.rd);
  EXPECT_FALSE(back->header.qr);
  ASSERT_EQ(back->questions.size(), 1u);
  EXPECT_EQ(back->questions[0].name, "web.warren");
  EXPECT_EQ(back->questions[0].type, kTypeA);
  ASSERT_TRUE(back->edns.has_value());
  EXPECT_EQ(back->edns->udp_payload_size, 4096);
  EXPECT_TRUE(back->edns->dnssec_ok);
  ASSERT_EQ(back->edns->options.size(), 1u);
  EXPECT_EQ(back->edns->options[0].code, 10);
  EXPECT_EQ(back->edns->options[0].data.size(), 8u);
  EXPECT_TRUE(back->additionals.empty());
}

TEST(DnsMessageTest, ResponseRoundTripAllRecordTypes) {
  Message r = MakeResponse(Query("_http._tcp.web.warren", kTypeSrv), 1232);
  r.header.aa = true;
  r.answers.push_back(MakeSrv("_http._tcp.web.warren", 5, 0, 50, 8080, "1.web.warren"));
  r.additionals.push_back(MakeA("1.web.warren", 5, {127, 1, 0, 1}));
  r.additionals.push_back(ResourceRecord{"1.web.warren", kTypeAaaa, kClassIn, 5, AaaaData{}});
  r.authorities.push_back(
      MakeSoa("warren", 5, SoaData{"ns.warren", "hostmaster.warren", 7, 1, 2, 3, 4}));
  r.answers.push_back(ResourceRecord{"x.warren", kTypeCname, kClassIn, 9, NameData{"web.warren"}});
  r.answers.push_back(ResourceRecord{"x.warren", kTypeMx, kClassIn, 9, MxData{10, "mail.warren"}});
  r.answers.push_back(
      ResourceRecord{"x.warren", kTypeTxt, kClassIn, 9, OpaqueData{{3, 'a', 'b', 'c'}}});
  auto wire = SerializeMessage(r);
  ASSERT_TRUE(wire.ok()) << wire.status();
  auto back = ParseMessage(*wire);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(back->header.qr);
  EXPECT_TRUE(back->header.aa);
  ASSERT_EQ(back->answers.size(), 4u);
  const auto& srv = std::get<SrvData>(back->answers[0].data);
  EXPECT_EQ(srv.port, 8080);
  EXPECT_EQ(srv.weight, 50);
  EXPECT_EQ(srv.target, "1.web.warren");
  EXPECT_EQ(std::get<NameData>(back->answers[1].data).name, "web.warren");
  EXPECT_EQ(std::get<MxData>(back->answers[2].data).exchange, "mail.warren");
  EXPECT_EQ(std::get<OpaqueData>(back->answers[3].data).bytes.size(), 4u);
  ASSERT_EQ(back->authorities.size(), 1u);
  const auto& soa = std::get<SoaData>(back->authorities[0].data);
  EXPECT_EQ(soa.mname, "ns.warren");
  EXPECT_EQ(soa.rname, "hostmaster.warren");
  EXPECT_EQ(soa.serial, 7u);
  EXPECT_EQ(soa.minimum, 4u);
  ASSERT_EQ(back->additionals.size(), 2u);
  EXPECT_EQ(std::get<AData>(back->additionals[0].data).address,
            (std::array<uint8_t, 4>{127, 1, 0, 1}));
  EXPECT_EQ(back->answers[0].ttl, 5u);
}

TEST(DnsMessageTest, CompressionSharesSuffixesCaseInsensitively) {
  Message r = MakeResponse(Query("Web.Warren", kTypeA), 512);
  for (int i = 0; i < 10; ++i) r.answers.push_back(MakeA("web.warren", 5, {127, 0, 0, uint8_t(i)}));
  auto wire = SerializeMessage(r);
  ASSERT_TRUE(wire.ok());
  // Header 12 + question (12-byte name + 4) + 10 answers of pointer(2)+10+4 bytes.
  EXPECT_EQ(wire->size(), 12u + 16u + 10u * 16u);
  auto back = ParseMessage(*wire);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->questions[0].name, "Web.Warren");
  EXPECT_EQ(back->answers[9].name, "Web.Warren");  // owner follows the pointer
  // SRV targets are never compressed (RFC 2782), so the bytes of the name appear literally.
  Message s = MakeResponse(Query("_p._tcp.web.warren", kTypeSrv), 512);
  s.answers.push_back(MakeSrv("_p._tcp.web.warren", 5, 0, 1, 80, "web.warren"));
  auto swire = SerializeMessage(s);
  ASSERT_TRUE(swire.ok());
  std::string bytes(swire->begin(), swire->end());
  EXPECT_EQ(bytes.find(std::string("\x03web\x06warren\x00", 12), 40 /* past the question */),
            swire->size() - 12);
}

TEST(DnsMessageTest, TruncatesToLimitAndSetsTc) {
  Message r = MakeResponse(Query("big.warren", kTypeA), 512);
  for (int i = 0; i < 100; ++i) r.answers.push_back(MakeA("big.warren", 5, {10, 0, 0, uint8_t(i)}));
  auto full = SerializeMessage(r);
  ASSERT_TRUE(full.ok());
  EXPECT_GT(full->size(), 512u);
  auto cut = SerializeMessage(r, 512);
  ASSERT_TRUE(cut.ok());
  EXPECT_LE(cut->size(), 512u);
  auto back = ParseMessage(*cut);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(back->header.tc);
  EXPECT_EQ(back->answers.size(), (512u - 12 - 16) / 16);
  // Without truncation TC stays clear.
  EXPECT_FALSE(ParseMessage(*full)->header.tc);
}

TEST(DnsMessageTest, TruncationKeepsOptAndDropsAdditionalsSilently) {
  Message r = MakeResponse(Query("big.warren", kTypeA, 1232), 1232);
  r.answers.push_back(MakeA("big.warren", 5, {10, 0, 0, 1}));
  for (int i = 0; i < 100; ++i) {
    r.additionals.push_back(MakeA("x" + std::to_string(i) + ".warren", 5, {10, 0, 0, 2}));
  }
  auto cut = SerializeMessage(r, 600);
  ASSERT_TRUE(cut.ok());
  EXPECT_LE(cut->size(), 600u);
  auto back = ParseMessage(*cut);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_FALSE(back->header.tc);
  EXPECT_EQ(back->answers.size(), 1u);
  EXPECT_LT(back->additionals.size(), 100u);
  ASSERT_TRUE(back->edns.has_value());
  EXPECT_EQ(back->edns->udp_payload_size, 1232);
}

TEST(DnsMessageTest, ExtendedRcodeLivesInOpt) {
  Message r = MakeResponse(Query("a", kTypeA, 1232), 1232);
  r.SetRcode(kRcodeBadVers);
  auto back = ParseMessage(*SerializeMessage(r));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->Rcode(), kRcodeBadVers);
  EXPECT_EQ(back->header.rcode, 0);
}

TEST(DnsMessageTest, ClientUdpLimit) {
  EXPECT_EQ(ClientUdpLimit(Query("a", kTypeA)), 512u);
  EXPECT_EQ(ClientUdpLimit(Query("a", kTypeA, 4096)), 4096u);
  EXPECT_EQ(ClientUdpLimit(Query("a", kTypeA, 100)), 512u);
}

TEST(DnsMessageTest, RejectsBadNamesWhenBuilding) {
  EXPECT_FALSE(SerializeMessage(Query(std::string(64, 'a') + ".warren", kTypeA)).ok());
  std::string long_name;
  for (int i = 0; i < 5; ++i) long_name += std::string(60, 'b') + ".";
  EXPECT_FALSE(SerializeMessage(Query(long_name, kTypeA)).ok());
  EXPECT_FALSE(SerializeMessage(Query("a..b", kTypeA)).ok());
}

TEST(DnsMessageTest, EscapedDotsSurviveARoundTrip) {
  auto wire = SerializeMessage(Query("a\\.b.warren", kTypeA));
  ASSERT_TRUE(wire.ok());
  EXPECT_EQ((*wire)[12], 3);  // one label "a.b"
  EXPECT_EQ(ParseMessage(*wire)->questions[0].name, "a\\.b.warren");
}

std::vector<uint8_t> Bytes(std::initializer_list<int> v) {
  return std::vector<uint8_t>(v.begin(), v.end());
}

std::vector<uint8_t> HeaderWith(int qd, int an, int ns, int ar) {
  return Bytes({0, 1, 0, 0, 0, qd, 0, an, 0, ns, 0, ar});
}

std::vector<uint8_t> Concat(std::vector<uint8_t> a, const std::vector<uint8_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(DnsMessageTest, MalformedPacketsAreErrors) {
  struct Case {
    const char* what;
    std::vector<uint8_t> wire;
  };
  std::vector<uint8_t> ok_question = Bytes({3, 'w', 'e', 'b', 0, 0, 1, 0, 1});
  std::vector<uint8_t> oversized;
  for (int i = 0; i < 5; ++i) {
    oversized.push_back(60);
    oversized.insert(oversized.end(), 60, 'x');
  }
  oversized.insert(oversized.end(), {0, 0, 1, 0, 1});
  std::vector<Case> cases = {
      {"empty", {}},
      {"short header", Bytes({0, 1, 0, 0, 0})},
      {"question missing", HeaderWith(1, 0, 0, 0)},
      {"truncated label", Concat(HeaderWith(1, 0, 0, 0), Bytes({5, 'a', 'b'}))},
      {"no root label", Concat(HeaderWith(1, 0, 0, 0), Bytes({1, 'a'}))},
      {"truncated type", Concat(HeaderWith(1, 0, 0, 0), Bytes({1, 'a', 0, 0}))},
      {"self pointer", Concat(HeaderWith(1, 0, 0, 0), Bytes({0xC0, 12, 0, 1, 0, 1}))},
      {"forward pointer", Concat(HeaderWith(1, 0, 0, 0), Bytes({0xC0, 14, 1, 'a', 0, 0, 1, 0, 1}))},
      {"pointer loop", Concat(HeaderWith(1, 0, 0, 0), Bytes({1, 'a', 0xC0, 12, 0, 1, 0, 1}))},
      {"pointer out of range", Concat(HeaderWith(1, 0, 0, 0), Bytes({0xFF, 0xFF, 0, 1, 0, 1}))},
      {"truncated pointer", Concat(HeaderWith(1, 0, 0, 0), Bytes({0xC0}))},
      {"extended label type", Concat(HeaderWith(1, 0, 0, 0), Bytes({0x41, 0, 0, 1, 0, 1}))},
      {"name over 255 bytes", Concat(HeaderWith(1, 0, 0, 0), oversized)},
      {"counts beyond length", HeaderWith(255, 255, 255, 255)},
      {"record rdata past end",
       Concat(Concat(HeaderWith(1, 1, 0, 0), ok_question),
              Bytes({0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 9, 1, 2, 3, 4}))},
      {"A with 3 bytes", Concat(Concat(HeaderWith(1, 1, 0, 0), ok_question),
                                Bytes({0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 3, 1, 2, 3}))},
      {"name rdata shorter than rdlength",
       Concat(Concat(HeaderWith(1, 1, 0, 0), ok_question),
              Bytes({0xC0, 12, 0, 5, 0, 1, 0, 0, 0, 5, 0, 4, 1, 'a', 0, 7}))},
      {"two OPT records",
       Concat(Concat(HeaderWith(1, 0, 0, 2), ok_question),
              Bytes({0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0}))},
      {"OPT in answer section", Concat(Concat(HeaderWith(1, 1, 0, 0), ok_question),
                                       Bytes({0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0}))},
      {"EDNS option past OPT", Concat(Concat(HeaderWith(1, 0, 0, 1), ok_question),
                                      Bytes({0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 4, 0, 10, 0, 8}))},
      {"trailing garbage", Concat(Concat(HeaderWith(1, 0, 0, 0), ok_question), Bytes({1, 2}))},
  };
  for (const auto& c : cases) {
    EXPECT_FALSE(ParseMessage(c.wire).ok()) << c.what;
  }
  // Sanity: the well-formed base of those cases parses.
  EXPECT_TRUE(ParseMessage(Concat(HeaderWith(1, 0, 0, 0), ok_question)).ok());
}

TEST(DnsMessageTest, Ipv4) {
  EXPECT_EQ(*ParseIpv4("127.1.0.20"), (std::array<uint8_t, 4>{127, 1, 0, 20}));
  EXPECT_FALSE(ParseIpv4("127.1.0").ok());
  EXPECT_FALSE(ParseIpv4("127.1.0.256").ok());
  EXPECT_FALSE(ParseIpv4("::1").ok());
  EXPECT_EQ(FormatIpv4({10, 0, 0, 1}), "10.0.0.1");
}

}  // namespace
}  // namespace warren::dns
