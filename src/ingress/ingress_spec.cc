#include "ingress/ingress_spec.h"

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/limits.h"
#include "common/time_util.h"
#include "security/openssl_util.h"
#include "security/secret_bytes.h"

namespace warren {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view msg) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", msg));
}

bool IsLabel(absl::string_view s) {
  if (s.empty() || s.size() > 63 || s.front() == '-' || s.back() == '-') return false;
  for (char c : s) {
    if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c) && c != '-') return false;
  }
  return true;
}

// A host name of two or more labels (an ingress host is something DNS resolves to the cluster).
bool IsHostName(absl::string_view s) {
  if (s.size() > 253) return false;
  std::vector<absl::string_view> labels = absl::StrSplit(s, '.');
  if (labels.size() < 2) return false;
  for (absl::string_view l : labels) {
    if (!IsLabel(l)) return false;
  }
  return true;
}

std::vector<std::string> DnsNames(X509* cert) {
  std::vector<std::string> out;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, i);
    if (gn->type != GEN_DNS) continue;
    const ASN1_IA5STRING* s = gn->d.dNSName;
    out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<size_t>(ASN1_STRING_length(s)));
  }
  GENERAL_NAMES_free(names);
  return out;
}

std::string IssuerName(X509* cert) {
  char buf[256];
  X509_NAME_oneline(X509_get_issuer_name(cert), buf, sizeof(buf));
  return buf;
}

absl::StatusOr<std::string> ReadFile(const std::string& path, absl::string_view field) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Invalid(field, absl::StrCat("cannot read \"", path, "\""));
  std::ostringstream buf;
  buf << in.rdbuf();
  if (buf.str().size() > (1 << 20)) return Invalid(field, "larger than 1 MiB");
  return buf.str();
}

}  // namespace

void ApplyIngressDefaults(v1::IngressSpec* spec) {
  spec->set_host(absl::AsciiStrToLower(spec->host()));
  if (spec->path().empty()) spec->set_path("/");
}

absl::Status ValidateIngressSpec(const v1::IngressSpec& spec) {
  if (spec.name().empty()) return Invalid("name", "required");
  if (!IsLabel(spec.name())) {
    return Invalid("name", absl::StrCat("\"", spec.name(),
                                        "\" is not a DNS label (lower-case letters, digits and "
                                        "'-', 1..63 characters, starting and ending with a "
                                        "letter or digit)"));
  }
  if (spec.host().empty()) return Invalid("host", "required");
  absl::string_view host = spec.host();
  absl::ConsumePrefix(&host, "*.");
  if (!IsHostName(host)) {
    return Invalid("host", absl::StrCat("\"", spec.host(),
                                        "\" is not a host name: use a name of two or more DNS "
                                        "labels (\"shop.example.com\"), or \"*.\" and one "
                                        "(\"*.example.com\"); no port, no scheme"));
  }
  const std::string& path = spec.path();
  if (path.empty() || path.front() != '/') {
    return Invalid("path", absl::StrCat("\"", path, "\" must start with '/'"));
  }
  if (path.size() > 1024) return Invalid("path", "at most 1024 bytes");
  for (unsigned char c : path) {
    if (c <= 0x20 || c >= 0x7f || c == '?' || c == '#') {
      return Invalid("path", absl::StrCat("\"", absl::CHexEscape(path),
                                          "\": only printable characters without spaces, '?' "
                                          "or '#' (a prefix of the path, not of the query)"));
    }
  }
  if (spec.service().empty()) return Invalid("service", "required");
  if (spec.port() < 0 || spec.port() > 65535) {
    return Invalid("port",
                   absl::StrCat("must be 0..65535 (0: each task's own port), got ", spec.port()));
  }
  switch (spec.tls().mode()) {
    case v1::INGRESS_TLS_MODE_NONE:
      if (!spec.tls().certificate_pem().empty() || !spec.tls().key_pem().empty()) {
        return Invalid("tls", "a certificate or key was given without TLS (mode files)");
      }
      break;
    case v1::INGRESS_TLS_MODE_FILES:
      if (spec.tls().certificate_pem().empty()) return Invalid("tls.certificate", "required");
      if (spec.tls().key_pem().empty()) return Invalid("tls.key", "required");
      break;
    case v1::INGRESS_TLS_MODE_ACME:
      if (!spec.tls().certificate_pem().empty() || !spec.tls().key_pem().empty()) {
        return Invalid("tls", "acme orders its own certificate and key; give none (or use files)");
      }
      if (absl::StartsWith(spec.host(), "*.")) {
        return Invalid("host", absl::StrCat("\"", spec.host(),
                                            "\": acme proves a name with the HTTP-01 challenge, "
                                            "which cannot prove a wildcard; use files"));
      }
      break;
    default:
      return Invalid("tls.mode", "must be none, files or acme");
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::IngressCertificate> CheckIngressCertificate(absl::string_view host,
                                                               absl::string_view cert_pem,
                                                               absl::string_view key_pem) {
  auto chain = security::ParseCertificates(cert_pem, "tls.certificate");
  if (!chain.ok()) return Invalid("tls.certificate", chain.status().message());
  if (chain->empty()) return Invalid("tls.certificate", "no PEM certificate in it");
  auto key = security::ParsePrivateKey(security::SecretBytes(std::string(key_pem)), "tls.key");
  if (!key.ok()) return Invalid("tls.key", key.status().message());
  X509* leaf = chain->front().get();
  if (X509_check_private_key(leaf, key->get()) != 1) {
    ERR_clear_error();
    return Invalid("tls.key", "does not match the certificate (the first one of tls.certificate)");
  }
  v1::IngressCertificate info;
  std::vector<std::string> names = DnsNames(leaf);
  for (const std::string& n : names) info.add_names(n);
  auto nb = security::Asn1TimeToTime(X509_get0_notBefore(leaf));
  auto na = security::Asn1TimeToTime(X509_get0_notAfter(leaf));
  if (!nb.ok() || !na.ok()) return Invalid("tls.certificate", "unreadable validity dates");
  *info.mutable_not_before() = ToProtoTime(*nb);
  *info.mutable_not_after() = ToProtoTime(*na);
  info.set_issuer(IssuerName(leaf));
  bool covered = false;
  if (absl::StartsWith(host, "*.")) {
    for (const std::string& n : names) covered |= absl::AsciiStrToLower(n) == host;
  } else {
    const std::string h(host);
    covered = X509_check_host(leaf, h.data(), h.size(), 0, nullptr) == 1;
  }
  if (!covered) {
    return Invalid("tls.certificate",
                   absl::StrCat("does not name host ", host, " (its names: ",
                                names.empty() ? "none" : absl::StrJoin(names, ", "), ")"));
  }
  return info;
}

absl::Status CheckIngressConflicts(const v1::IngressSpec& spec,
                                   const std::vector<v1::Ingress>& existing) {
  for (const v1::Ingress& other : existing) {
    if (other.spec().name() == spec.name()) continue;
    if (other.spec().host() == spec.host() && other.spec().path() == spec.path()) {
      return absl::FailedPreconditionError(
          absl::StrCat("host ", spec.host(), " path ", spec.path(), ": already routed by ingress ",
                       other.spec().name(), " (to service ", other.spec().service(), ")"));
    }
  }
  return absl::OkStatus();
}

bool IngressHostMatches(absl::string_view pattern, absl::string_view host) {
  if (absl::StartsWith(pattern, "*.")) {
    absl::string_view suffix = pattern.substr(1);  // ".example.com"
    return host.size() > suffix.size() && absl::EndsWith(host, suffix);
  }
  return pattern == host;
}

bool IngressPathMatches(absl::string_view prefix, absl::string_view path) {
  if (!absl::StartsWith(path, prefix)) return false;
  if (prefix.empty() || prefix.back() == '/' || path.size() == prefix.size()) return true;
  return path[prefix.size()] == '/';
}

absl::StatusOr<SplitYaml> SplitIngressYaml(absl::string_view yaml, const std::string& base_dir) {
  SplitYaml out;
  out.services_yaml = std::string(yaml);
  // Without a kind, every document is a service (as before ingresses existed).
  if (!absl::StrContains(yaml, "kind")) return out;
  if (yaml.size() > limits::kMaxYamlBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the input is ", yaml.size(), " bytes; at most 4 MiB are read"));
  }
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("invalid YAML at line ", e.mark.line + 1,
                                                   ", column ", e.mark.column + 1, ": ", e.msg));
  }
  for (size_t i = 0; i < docs.size(); ++i) {
    const YAML::Node& doc = docs[i];
    if (!doc.IsMap() || !doc["kind"].IsDefined()) continue;
    const std::string where = absl::StrCat("document ", i + 1);
    try {
      if (!doc["kind"].IsScalar()) return Invalid(where + ": kind", "must be Service or Ingress");
      const std::string kind = doc["kind"].as<std::string>();
      if (kind == "Service") continue;
      if (kind != "Ingress") {
        return Invalid(where + ": kind",
                       absl::StrCat("must be Service or Ingress, got \"", kind, "\""));
      }
      v1::IngressSpec spec;
      std::string cert_file, key_file;
      for (const auto& kv : doc) {
        const std::string key = kv.first.as<std::string>();
        const YAML::Node& v = kv.second;
        const std::string field = absl::StrCat(where, ": ", key);
        if (key == "kind") continue;
        if (!v.IsScalar()) return Invalid(field, "must be a single value");
        const std::string s = v.as<std::string>();
        if (key == "name") {
          spec.set_name(s);
        } else if (key == "host") {
          spec.set_host(s);
        } else if (key == "path") {
          spec.set_path(s);
        } else if (key == "service") {
          spec.set_service(s);
        } else if (key == "port") {
          int port = 0;
          if (!absl::SimpleAtoi(s, &port)) return Invalid(field, "must be a number");
          spec.set_port(port);
        } else if (key == "tls") {
          if (s == "none") {
            spec.mutable_tls()->set_mode(v1::INGRESS_TLS_MODE_NONE);
          } else if (s == "files") {
            spec.mutable_tls()->set_mode(v1::INGRESS_TLS_MODE_FILES);
          } else if (s == "acme") {
            spec.mutable_tls()->set_mode(v1::INGRESS_TLS_MODE_ACME);
          } else {
            return Invalid(field, absl::StrCat("must be none, files or acme, got \"", s, "\""));
          }
        } else if (key == "certFile") {
          cert_file = s;
        } else if (key == "keyFile") {
          key_file = s;
        } else {
          return Invalid(field,
                         "unknown field (known: kind, name, host, path, service, port, "
                         "tls, certFile, keyFile)");
        }
      }
      if (!cert_file.empty() || !key_file.empty()) {
        if (spec.tls().mode() == v1::INGRESS_TLS_MODE_NONE) {
          spec.mutable_tls()->set_mode(v1::INGRESS_TLS_MODE_FILES);
        }
        auto resolve = [&](const std::string& f) {
          return std::filesystem::path(f).is_absolute()
                     ? f
                     : (std::filesystem::path(base_dir) / f).string();
        };
        if (!cert_file.empty()) {
          auto pem = ReadFile(resolve(cert_file), where + ": certFile");
          if (!pem.ok()) return pem.status();
          spec.mutable_tls()->set_certificate_pem(*pem);
        }
        if (!key_file.empty()) {
          auto pem = ReadFile(resolve(key_file), where + ": keyFile");
          if (!pem.ok()) return pem.status();
          spec.mutable_tls()->set_key_pem(*pem);
        }
      }
      out.ingresses.push_back(std::move(spec));
    } catch (const YAML::Exception& e) {
      return Invalid(where, e.what());
    }
  }
  return out;
}

}  // namespace warren
