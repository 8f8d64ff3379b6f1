#ifndef WARREN_DNS_DNS_MESSAGE_H_
#define WARREN_DNS_DNS_MESSAGE_H_

// DNS wire format (RFC 1035, 2782, 6891). Plain C++ and Abseil only, so that the parser can be
// compiled into a libFuzzer target without protobuf.

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace warren::dns {

inline constexpr uint16_t kTypeA = 1;
inline constexpr uint16_t kTypeNs = 2;
inline constexpr uint16_t kTypeCname = 5;
inline constexpr uint16_t kTypeSoa = 6;
inline constexpr uint16_t kTypePtr = 12;
inline constexpr uint16_t kTypeMx = 15;
inline constexpr uint16_t kTypeTxt = 16;
inline constexpr uint16_t kTypeAaaa = 28;
inline constexpr uint16_t kTypeSrv = 33;
inline constexpr uint16_t kTypeOpt = 41;
inline constexpr uint16_t kTypeAny = 255;
inline constexpr uint16_t kClassIn = 1;

inline constexpr uint16_t kRcodeNoError = 0;
inline constexpr uint16_t kRcodeFormErr = 1;
inline constexpr uint16_t kRcodeServFail = 2;
inline constexpr uint16_t kRcodeNxDomain = 3;
inline constexpr uint16_t kRcodeNotImp = 4;
inline constexpr uint16_t kRcodeRefused = 5;
// Extended (needs EDNS0): only representable with an OPT record.
inline constexpr uint16_t kRcodeBadVers = 16;

inline constexpr size_t kHeaderSize = 12;
inline constexpr size_t kMaxNameWireLength = 255;
inline constexpr size_t kMaxLabelLength = 63;
// Plain DNS over UDP without EDNS0.
inline constexpr size_t kClassicUdpSize = 512;
inline constexpr size_t kMaxMessageSize = 65535;

struct Header {
  uint16_t id = 0;
  bool qr = false;
  uint8_t opcode = 0;
  bool aa = false;
  bool tc = false;
  bool rd = false;
  bool ra = false;
  bool ad = false;
  bool cd = false;
  // Low 4 bits of the response code; the high bits live in the OPT record.
  uint8_t rcode = 0;
};

struct Question {
  // Presentation form without the trailing dot ("" is the root). A '.' or '\' inside a label is
  // escaped with '\'.
  std::string name;
  uint16_t type = kTypeA;
  uint16_t qclass = kClassIn;
};

struct AData {
  std::array<uint8_t, 4> address{};
};
struct AaaaData {
  std::array<uint8_t, 16> address{};
};
// NS, CNAME, PTR.
struct NameData {
  std::string name;
};
struct MxData {
  uint16_t preference = 0;
  std::string exchange;
};
struct SrvData {
  uint16_t priority = 0;
  uint16_t weight = 0;
  uint16_t port = 0;
  std::string target;
};
struct SoaData {
  std::string mname;
  std::string rname;
  uint32_t serial = 0;
  uint32_t refresh = 0;
  uint32_t retry = 0;
  uint32_t expire = 0;
  uint32_t minimum = 0;
};
// Any other type: the rdata bytes as they were on the wire.
struct OpaqueData {
  std::vector<uint8_t> bytes;
};

using RData = std::variant<OpaqueData, AData, AaaaData, NameData, MxData, SrvData, SoaData>;

struct ResourceRecord {
  std::string name;
  uint16_t type = kTypeA;
  uint16_t rclass = kClassIn;
  uint32_t ttl = 0;
  RData data;
};

struct EdnsOption {
  uint16_t code = 0;
  std::vector<uint8_t> data;
};

// The EDNS0 OPT pseudo-record, kept out of the additional section.
struct Edns {
  uint16_t udp_payload_size = kClassicUdpSize;
  uint8_t extended_rcode = 0;
  uint8_t version = 0;
  bool dnssec_ok = false;
  std::vector<EdnsOption> options;
};

struct Message {
  Header header;
  std::vector<Question> questions;
  std::vector<ResourceRecord> answers;
  std::vector<ResourceRecord> authorities;
  std::vector<ResourceRecord> additionals;
  std::optional<Edns> edns;

  // Full 12-bit response code, combining the header and the OPT record.
  uint16_t Rcode() const;
  // Sets the header bits and, for extended codes, the OPT record's (creating one if needed).
  void SetRcode(uint16_t rcode);
};

// Parses only the fixed 12-byte header, for answering FORMERR to a message that is otherwise
// unparseable.
absl::StatusOr<Header> ParseHeader(std::span<const uint8_t> wire);

// Parses a whole message. Every offset and length is bounds-checked; compression pointers must
// point strictly backwards, so a malformed packet fails instead of looping.
absl::StatusOr<Message> ParseMessage(std::span<const uint8_t> wire);

// Serializes with name compression (owner names and names inside NS/CNAME/PTR/MX/SOA rdata; SRV
// targets are written uncompressed as RFC 2782 requires). If the message does not fit in
// `max_size` (clamped to 512..65535), answer and authority records that do not fit are left out
// and TC is set; additional records that do not fit are left out silently (RFC 2181 §9). The
// OPT record is always kept.
absl::StatusOr<std::vector<uint8_t>> SerializeMessage(const Message& message,
                                                      size_t max_size = kMaxMessageSize);

// A response skeleton for `query`: same id, opcode, RD and question, QR set, and an OPT record
// when the query had one.
Message MakeResponse(const Message& query, uint16_t payload_size);

// The largest response a client accepts over UDP: 512 without EDNS0, else its advertised
// size (never below 512).
size_t ClientUdpLimit(const Message& query);

// Lowercase, without the trailing dot.
std::string CanonicalName(absl::string_view name);

absl::StatusOr<std::array<uint8_t, 4>> ParseIpv4(absl::string_view text);
std::string FormatIpv4(const std::array<uint8_t, 4>& address);

ResourceRecord MakeA(std::string name, uint32_t ttl, const std::array<uint8_t, 4>& address);
ResourceRecord MakeSrv(std::string name, uint32_t ttl, uint16_t priority, uint16_t weight,
                       uint16_t port, std::string target);
ResourceRecord MakeSoa(std::string name, uint32_t ttl, SoaData soa);

}  // namespace warren::dns

#endif  // WARREN_DNS_DNS_MESSAGE_H_
