#include "dns/dns_message.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace warren::dns {
namespace {

class Reader {
 public:
  explicit Reader(std::span<const uint8_t> wire) : wire_(wire) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return wire_.size() - pos_; }

  absl::Status Need(size_t n, absl::string_view what) const {
    if (remaining() < n) {
      return absl::InvalidArgumentError(absl::StrCat("truncated ", what, " at offset ", pos_,
                                                     " (need ", n, " bytes, have ", remaining(),
                                                     ")"));
    }
    return absl::OkStatus();
  }
  absl::StatusOr<uint8_t> U8(absl::string_view what) {
    if (auto s = Need(1, what); !s.ok()) return s;
    return wire_[pos_++];
  }
  absl::StatusOr<uint16_t> U16(absl::string_view what) {
    if (auto s = Need(2, what); !s.ok()) return s;
    uint16_t v = static_cast<uint16_t>((wire_[pos_] << 8) | wire_[pos_ + 1]);
    pos_ += 2;
    return v;
  }
  absl::StatusOr<uint32_t> U32(absl::string_view what) {
    if (auto s = Need(4, what); !s.ok()) return s;
    uint32_t v = (uint32_t{wire_[pos_]} << 24) | (uint32_t{wire_[pos_ + 1]} << 16) |
                 (uint32_t{wire_[pos_ + 2]} << 8) | uint32_t{wire_[pos_ + 3]};
    pos_ += 4;
    return v;
  }
  absl::Status Bytes(uint8_t* out, size_t n, absl::string_view what) {
    if (auto s = Need(n, what); !s.ok()) return s;
    std::copy_n(wire_.begin() + pos_, n, out);
    pos_ += n;
    return absl::OkStatus();
  }

  // Reads a possibly compressed name starting at the current position. Each pointer must point
  // before the start of the name piece that contained it, so the walk strictly moves backwards
  // and always terminates.
  absl::StatusOr<std::string> Name(absl::string_view what) {
    std::string out;
    size_t wire_length = 1;  // the terminating root label
    size_t p = pos_;
    size_t piece_start = pos_;
    bool jumped = false;
    while (true) {
      if (p >= wire_.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("truncated name in ", what, " at offset ", p));
      }
      uint8_t len = wire_[p];
      if ((len & 0xC0) == 0xC0) {
        if (p + 1 >= wire_.size()) {
          return absl::InvalidArgumentError(
              absl::StrCat("truncated compression pointer in ", what, " at offset ", p));
        }
        size_t target = ((len & 0x3F) << 8) | wire_[p + 1];
        if (target >= piece_start) {
          return absl::InvalidArgumentError(absl::StrCat("compression pointer in ", what,
                                                         " at offset ", p, " to ", target,
                                                         " does not point backwards"));
        }
        if (!jumped) pos_ = p + 2;
        jumped = true;
        p = target;
        piece_start = target;
        continue;
      }
      if ((len & 0xC0) != 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("unsupported label type 0x", absl::Hex(len), " in ", what));
      }
      if (len == 0) {
        if (!jumped) pos_ = p + 1;
        return out;
      }
      if (p + 1 + len > wire_.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("truncated label in ", what, " at offset ", p));
      }
      wire_length += 1 + len;
      if (wire_length > kMaxNameWireLength) {
        return absl::InvalidArgumentError(absl::StrCat("name in ", what, " longer than 255 bytes"));
      }
      if (!out.empty()) out.push_back('.');
      for (size_t i = 0; i < len; ++i) {
        char c = static_cast<char>(wire_[p + 1 + i]);
        if (c == '.' || c == '\\') out.push_back('\\');
        out.push_back(c);
      }
      p += 1 + len;
    }
  }

  void Seek(size_t pos) { pos_ = pos; }

 private:
  std::span<const uint8_t> wire_;
  size_t pos_ = 0;
};

// Splits a presentation-form name into raw labels, honouring '\' escapes.
absl::StatusOr<std::vector<std::string>> SplitLabels(absl::string_view name) {
  std::vector<std::string> labels;
  if (name.empty() || name == ".") return labels;
  if (name.back() == '.' && !(name.size() >= 2 && name[name.size() - 2] == '\\')) {
    name.remove_suffix(1);
  }
  std::string current;
  size_t total = 1;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (c == '\\' && i + 1 < name.size()) {
      current.push_back(name[++i]);
    } else if (c == '.') {
      labels.push_back(std::move(current));
      current.clear();
    } else {
      current.push_back(c);
    }
  }
  labels.push_back(std::move(current));
  for (const auto& l : labels) {
    if (l.empty())
      return absl::InvalidArgumentError(absl::StrCat("empty label in name '", name, "'"));
    if (l.size() > kMaxLabelLength) {
      return absl::InvalidArgumentError(
          absl::StrCat("label longer than 63 bytes in name '", name.substr(0, 80), "'"));
    }
    total += 1 + l.size();
  }
  if (total > kMaxNameWireLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("name longer than 255 bytes: '", name.substr(0, 80), "...'"));
  }
  return labels;
}

class Writer {
 public:
  std::vector<uint8_t>& buf() { return buf_; }
  size_t size() const { return buf_.size(); }

  void U8(uint8_t v) { buf_.push_back(v); }
  void U16(uint16_t v) {
    buf_.push_back(static_cast<uint8_t>(v >> 8));
    buf_.push_back(static_cast<uint8_t>(v));
  }
  void U32(uint32_t v) {
    U16(static_cast<uint16_t>(v >> 16));
    U16(static_cast<uint16_t>(v));
  }
  void Put16At(size_t at, uint16_t v) {
    buf_[at] = static_cast<uint8_t>(v >> 8);
    buf_[at + 1] = static_cast<uint8_t>(v);
  }
  void Bytes(const uint8_t* p, size_t n) { buf_.insert(buf_.end(), p, p + n); }

  absl::Status Name(absl::string_view name, bool compress) {
    auto labels = SplitLabels(name);
    if (!labels.ok()) return labels.status();
    // New targets become usable only once this name is complete, so matching never walks
    // into a half-written name.
    size_t first_new = targets_.size();
    for (size_t i = 0; i < labels->size(); ++i) {
      if (compress) {
        for (size_t t = 0; t < first_new; ++t) {
          if (SuffixAt(targets_[t], *labels, i)) {
            U16(static_cast<uint16_t>(0xC000 | targets_[t]));
            return absl::OkStatus();
          }
        }
      }
      if (buf_.size() < 0x4000) targets_.push_back(static_cast<uint16_t>(buf_.size()));
      const std::string& l = (*labels)[i];
      U8(static_cast<uint8_t>(l.size()));
      Bytes(reinterpret_cast<const uint8_t*>(l.data()), l.size());
    }
    U8(0);
    return absl::OkStatus();
  }

  // Drops everything from `size` on, including compression targets that pointed there.
  void Truncate(size_t size) {
    buf_.resize(size);
    std::erase_if(targets_, [size](uint16_t at) { return at >= size; });
  }

 private:
  // Whether the name already written at `at` equals labels[from..], ignoring ASCII case. Names
  // in our own buffer are well-formed, with pointers only backwards.
  bool SuffixAt(size_t at, const std::vector<std::string>& labels, size_t from) const {
    size_t p = at;
    for (size_t j = from; j < labels.size(); ++j) {
      while ((buf_[p] & 0xC0) == 0xC0) p = ((buf_[p] & 0x3F) << 8) | buf_[p + 1];
      const std::string& l = labels[j];
      if (buf_[p] != l.size()) return false;
      for (size_t k = 0; k < l.size(); ++k) {
        if (absl::ascii_tolower(buf_[p + 1 + k]) != absl::ascii_tolower(l[k])) return false;
      }
      p += 1 + l.size();
    }
    while ((buf_[p] & 0xC0) == 0xC0) p = ((buf_[p] & 0x3F) << 8) | buf_[p + 1];
    return buf_[p] == 0;
  }

  std::vector<uint8_t> buf_;
  // Offsets where a label sequence was written, candidates for compression pointers.
  std::vector<uint16_t> targets_;
};

absl::StatusOr<RData> ParseRData(Reader& r, std::span<const uint8_t> wire, uint16_t type,
                                 uint16_t rdlength) {
  size_t start = r.pos();
  size_t end = start + rdlength;
  auto name_in_rdata = [&](absl::string_view what) -> absl::StatusOr<std::string> {
    auto n = r.Name(what);
    if (n.ok() && r.pos() > end) {
      return absl::InvalidArgumentError(absl::StrCat(what, " runs past its rdata"));
    }
    return n;
  };
  RData out;
  switch (type) {
    case kTypeA: {
      if (rdlength != 4) return absl::InvalidArgumentError("A record rdata is not 4 bytes");
      AData a;
      if (auto s = r.Bytes(a.address.data(), 4, "A rdata"); !s.ok()) return s;
      out = a;
      break;
    }
    case kTypeAaaa: {
      if (rdlength != 16) return absl::InvalidArgumentError("AAAA record rdata is not 16 bytes");
      AaaaData a;
      if (auto s = r.Bytes(a.address.data(), 16, "AAAA rdata"); !s.ok()) return s;
      out = a;
      break;
    }
    case kTypeNs:
    case kTypeCname:
    case kTypePtr: {
      auto n = name_in_rdata("name rdata");
      if (!n.ok()) return n.status();
      out = NameData{*std::move(n)};
      break;
    }
    case kTypeMx: {
      MxData mx;
      auto pref = r.U16("MX preference");
      if (!pref.ok()) return pref.status();
      mx.preference = *pref;
      auto n = name_in_rdata("MX exchange");
      if (!n.ok()) return n.status();
      mx.exchange = *std::move(n);
      out = std::move(mx);
      break;
    }
    case kTypeSrv: {
      SrvData srv;
      auto a = r.U16("SRV priority");
      auto b = r.U16("SRV weight");
      auto c = r.U16("SRV port");
      if (!a.ok()) return a.status();
      if (!b.ok()) return b.status();
      if (!c.ok()) return c.status();
      srv.priority = *a;
      srv.weight = *b;
      srv.port = *c;
      auto n = name_in_rdata("SRV target");
      if (!n.ok()) return n.status();
      srv.target = *std::move(n);
      out = std::move(srv);
      break;
    }
    case kTypeSoa: {
      SoaData soa;
      auto m = name_in_rdata("SOA mname");
      if (!m.ok()) return m.status();
      auto rn = name_in_rdata("SOA rname");
      if (!rn.ok()) return rn.status();
      soa.mname = *std::move(m);
      soa.rname = *std::move(rn);
      uint32_t* fields[] = {&soa.serial, &soa.refresh, &soa.retry, &soa.expire, &soa.minimum};
      for (uint32_t* f : fields) {
        auto v = r.U32("SOA counters");
        if (!v.ok()) return v.status();
        *f = *v;
      }
      out = std::move(soa);
      break;
    }
    default: {
      OpaqueData o;
      o.bytes.resize(rdlength);
      if (auto s = r.Bytes(o.bytes.data(), rdlength, "rdata"); !s.ok()) return s;
      out = std::move(o);
      break;
    }
  }
  if (r.pos() != end) {
    return absl::InvalidArgumentError(absl::StrCat("rdata of type ", type, " is ", r.pos() - start,
                                                   " bytes, rdlength says ", rdlength));
  }
  return out;
}

absl::Status WriteRData(Writer& w, const RData& data) {
  return std::visit(
      [&w](const auto& d) -> absl::Status {
        using T = std::decay_t<decltype(d)>;
        if constexpr (std::is_same_v<T, OpaqueData>) {
          w.Bytes(d.bytes.data(), d.bytes.size());
        } else if constexpr (std::is_same_v<T, AData> || std::is_same_v<T, AaaaData>) {
          w.Bytes(d.address.data(), d.address.size());
        } else if constexpr (std::is_same_v<T, NameData>) {
          return w.Name(d.name, true);
        } else if constexpr (std::is_same_v<T, MxData>) {
          w.U16(d.preference);
          return w.Name(d.exchange, true);
        } else if constexpr (std::is_same_v<T, SrvData>) {
          w.U16(d.priority);
          w.U16(d.weight);
          w.U16(d.port);
          return w.Name(d.target, false);
        } else if constexpr (std::is_same_v<T, SoaData>) {
          if (auto s = w.Name(d.mname, true); !s.ok()) return s;
          if (auto s = w.Name(d.rname, true); !s.ok()) return s;
          w.U32(d.serial);
          w.U32(d.refresh);
          w.U32(d.retry);
          w.U32(d.expire);
          w.U32(d.minimum);
        }
        return absl::OkStatus();
      },
      data);
}

absl::Status WriteRecord(Writer& w, const ResourceRecord& rr) {
  if (auto s = w.Name(rr.name, true); !s.ok()) return s;
  w.U16(rr.type);
  w.U16(rr.rclass);
  w.U32(rr.ttl);
  size_t len_at = w.size();
  w.U16(0);
  if (auto s = WriteRData(w, rr.data); !s.ok()) return s;
  size_t len = w.size() - len_at - 2;
  if (len > 0xFFFF) return absl::InvalidArgumentError("rdata longer than 65535 bytes");
  w.Put16At(len_at, static_cast<uint16_t>(len));
  return absl::OkStatus();
}

size_t OptSize(const Edns& e) {
  size_t n = 11;
  for (const auto& o : e.options) n += 4 + o.data.size();
  return n;
}

void WriteOpt(Writer& w, const Edns& e) {
  w.U8(0);  // root owner name
  w.U16(kTypeOpt);
  w.U16(e.udp_payload_size);
  w.U8(e.extended_rcode);
  w.U8(e.version);
  w.U16(e.dnssec_ok ? 0x8000 : 0);
  size_t rdlen = 0;
  for (const auto& o : e.options) rdlen += 4 + o.data.size();
  w.U16(static_cast<uint16_t>(rdlen));
  for (const auto& o : e.options) {
    w.U16(o.code);
    w.U16(static_cast<uint16_t>(o.data.size()));
    w.Bytes(o.data.data(), o.data.size());
  }
}

}  // namespace

uint16_t Message::Rcode() const {
  uint16_t high = edns ? edns->extended_rcode : 0;
  return static_cast<uint16_t>((high << 4) | header.rcode);
}

void Message::SetRcode(uint16_t rcode) {
  header.rcode = static_cast<uint8_t>(rcode & 0x0F);
  uint8_t high = static_cast<uint8_t>(rcode >> 4);
  if (high != 0 && !edns) edns.emplace();
  if (edns) edns->extended_rcode = high;
}

absl::StatusOr<Header> ParseHeader(std::span<const uint8_t> wire) {
  if (wire.size() < kHeaderSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("message of ", wire.size(), " bytes is shorter than the 12-byte header"));
  }
  Header h;
  h.id = static_cast<uint16_t>((wire[0] << 8) | wire[1]);
  uint8_t b2 = wire[2], b3 = wire[3];
  h.qr = b2 & 0x80;
  h.opcode = (b2 >> 3) & 0x0F;
  h.aa = b2 & 0x04;
  h.tc = b2 & 0x02;
  h.rd = b2 & 0x01;
  h.ra = b3 & 0x80;
  h.ad = b3 & 0x20;
  h.cd = b3 & 0x10;
  h.rcode = b3 & 0x0F;
  return h;
}

absl::StatusOr<Message> ParseMessage(std::span<const uint8_t> wire) {
  auto header = ParseHeader(wire);
  if (!header.ok()) return header.status();
  Message m;
  m.header = *header;
  Reader r(wire);
  r.Seek(4);
  uint16_t counts[4];
  for (auto& c : counts) c = *r.U16("header counts");

  // Each question needs at least 5 bytes and each record 11, so counts beyond what the packet
  // can hold are rejected before reserving anything.
  if (size_t{counts[0]} * 5 + (size_t{counts[1]} + counts[2] + counts[3]) * 11 > r.remaining()) {
    return absl::InvalidArgumentError("section counts exceed the message length");
  }
  m.questions.reserve(counts[0]);
  for (int i = 0; i < counts[0]; ++i) {
    Question q;
    auto name = r.Name("question");
    if (!name.ok()) return name.status();
    q.name = *std::move(name);
    auto type = r.U16("question type");
    if (!type.ok()) return type.status();
    auto qclass = r.U16("question class");
    if (!qclass.ok()) return qclass.status();
    q.type = *type;
    q.qclass = *qclass;
    m.questions.push_back(std::move(q));
  }
  std::vector<ResourceRecord>* sections[] = {&m.answers, &m.authorities, &m.additionals};
  for (int s = 0; s < 3; ++s) {
    for (int i = 0; i < counts[s + 1]; ++i) {
      ResourceRecord rr;
      auto name = r.Name("record owner");
      if (!name.ok()) return name.status();
      rr.name = *std::move(name);
      auto type = r.U16("record type");
      if (!type.ok()) return type.status();
      auto rclass = r.U16("record class");
      if (!rclass.ok()) return rclass.status();
      auto ttl = r.U32("record ttl");
      if (!ttl.ok()) return ttl.status();
      auto rdlength = r.U16("record rdlength");
      if (!rdlength.ok()) return rdlength.status();
      if (auto st = r.Need(*rdlength, "rdata"); !st.ok()) return st;
      if (*type == kTypeOpt) {
        if (s != 2) return absl::InvalidArgumentError("OPT record outside the additional section");
        if (m.edns) return absl::InvalidArgumentError("more than one OPT record");
        if (!rr.name.empty()) return absl::InvalidArgumentError("OPT record owner is not the root");
        Edns e;
        e.udp_payload_size = *rclass;
        e.extended_rcode = static_cast<uint8_t>(*ttl >> 24);
        e.version = static_cast<uint8_t>(*ttl >> 16);
        e.dnssec_ok = (*ttl & 0x8000) != 0;
        size_t end = r.pos() + *rdlength;
        while (r.pos() < end) {
          EdnsOption o;
          auto code = r.U16("EDNS option code");
          if (!code.ok()) return code.status();
          auto len = r.U16("EDNS option length");
          if (!len.ok()) return len.status();
          if (r.pos() + *len > end) {
            return absl::InvalidArgumentError("EDNS option runs past the OPT record");
          }
          o.code = *code;
          o.data.resize(*len);
          if (auto st = r.Bytes(o.data.data(), *len, "EDNS option"); !st.ok()) return st;
          e.options.push_back(std::move(o));
        }
        if (r.pos() != end) return absl::InvalidArgumentError("EDNS option header truncated");
        m.edns = std::move(e);
        continue;
      }
      rr.type = *type;
      rr.rclass = *rclass;
      rr.ttl = *ttl;
      auto data = ParseRData(r, wire, rr.type, *rdlength);
      if (!data.ok()) return data.status();
      rr.data = *std::move(data);
      sections[s]->push_back(std::move(rr));
    }
  }
  if (r.remaining() != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(r.remaining(), " trailing bytes after the last record"));
  }
  return m;
}

absl::StatusOr<std::vector<uint8_t>> SerializeMessage(const Message& message, size_t max_size) {
  max_size = std::clamp(max_size, kClassicUdpSize, kMaxMessageSize);
  Writer w;
  Header h = message.header;
  w.U16(h.id);
  w.U8(static_cast<uint8_t>((h.qr ? 0x80 : 0) | ((h.opcode & 0x0F) << 3) | (h.aa ? 0x04 : 0) |
                            (h.tc ? 0x02 : 0) | (h.rd ? 0x01 : 0)));
  w.U8(static_cast<uint8_t>((h.ra ? 0x80 : 0) | (h.ad ? 0x20 : 0) | (h.cd ? 0x10 : 0) |
                            (h.rcode & 0x0F)));
  if (message.questions.size() > 0xFFFF || message.answers.size() > 0xFFFF ||
      message.authorities.size() > 0xFFFF || message.additionals.size() + 1 > 0xFFFF) {
    return absl::InvalidArgumentError("section with more than 65535 entries");
  }
  for (int i = 0; i < 4; ++i) w.U16(0);  // counts, patched below
  for (const auto& q : message.questions) {
    if (auto s = w.Name(q.name, true); !s.ok()) return s;
    w.U16(q.type);
    w.U16(q.qclass);
  }
  size_t reserve = message.edns ? OptSize(*message.edns) : 0;
  if (w.size() + reserve > max_size) {
    return absl::InvalidArgumentError("question section alone exceeds the size limit");
  }
  uint16_t counts[3] = {0, 0, 0};
  bool truncated = false;
  const std::vector<ResourceRecord>* sections[] = {&message.answers, &message.authorities,
                                                   &message.additionals};
  for (int s = 0; s < 3 && !truncated; ++s) {
    for (const auto& rr : *sections[s]) {
      size_t before = w.size();
      if (auto st = WriteRecord(w, rr); !st.ok()) return st;
      if (w.size() + reserve > max_size) {
        w.Truncate(before);
        if (s < 2) w.buf()[2] |= 0x02;  // TC
        truncated = true;
        break;
      }
      ++counts[s];
    }
  }
  uint16_t arcount = counts[2];
  if (message.edns) {
    WriteOpt(w, *message.edns);
    ++arcount;
  }
  w.Put16At(4, static_cast<uint16_t>(message.questions.size()));
  w.Put16At(6, counts[0]);
  w.Put16At(8, counts[1]);
  w.Put16At(10, arcount);
  return std::move(w.buf());
}

Message MakeResponse(const Message& query, uint16_t payload_size) {
  Message r;
  r.header.id = query.header.id;
  r.header.qr = true;
  r.header.opcode = query.header.opcode;
  r.header.rd = query.header.rd;
  r.header.cd = query.header.cd;
  r.questions = query.questions;
  if (query.edns) {
    Edns e;
    e.udp_payload_size = payload_size;
    e.dnssec_ok = query.edns->dnssec_ok;
    r.edns = std::move(e);
  }
  return r;
}

size_t ClientUdpLimit(const Message& query) {
  if (!query.edns) return kClassicUdpSize;
  return std::max<size_t>(kClassicUdpSize, query.edns->udp_payload_size);
}

std::string CanonicalName(absl::string_view name) {
  if (!name.empty() && name.back() == '.' && !(name.size() >= 2 && name[name.size() - 2] == '\\')) {
    name.remove_suffix(1);
  }
  return absl::AsciiStrToLower(name);
}

absl::StatusOr<std::array<uint8_t, 4>> ParseIpv4(absl::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, '.');
  std::array<uint8_t, 4> out{};
  if (parts.size() != 4) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not an IPv4 address"));
  }
  for (size_t i = 0; i < 4; ++i) {
    uint32_t v = 0;
    if (parts[i].empty() || parts[i].size() > 3 || !absl::SimpleAtoi(parts[i], &v) || v > 255) {
      return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not an IPv4 address"));
    }
    out[i] = static_cast<uint8_t>(v);
  }
  return out;
}

std::string FormatIpv4(const std::array<uint8_t, 4>& a) {
  return absl::StrCat(a[0], ".", a[1], ".", a[2], ".", a[3]);
}

ResourceRecord MakeA(std::string name, uint32_t ttl, const std::array<uint8_t, 4>& address) {
  return ResourceRecord{std::move(name), kTypeA, kClassIn, ttl, AData{address}};
}

ResourceRecord MakeSrv(std::string name, uint32_t ttl, uint16_t priority, uint16_t weight,
                       uint16_t port, std::string target) {
  return ResourceRecord{std::move(name), kTypeSrv, kClassIn, ttl,
                        SrvData{priority, weight, port, std::move(target)}};
}

ResourceRecord MakeSoa(std::string name, uint32_t ttl, SoaData soa) {
  return ResourceRecord{std::move(name), kTypeSoa, kClassIn, ttl, std::move(soa)};
}

}  // namespace warren::dns
