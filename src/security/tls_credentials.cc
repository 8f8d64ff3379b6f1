#include "security/tls_credentials.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "security/key_file.h"

namespace warren::security {
namespace {

namespace fs = std::filesystem;
using grpc::experimental::ExternalCertificateVerifier;
using grpc::experimental::TlsCustomVerificationCheckRequest;

constexpr char kCurrent[] = "current";
constexpr absl::string_view kGenerationPrefix = "gen-";

// Runs CheckPeer on the certificate the peer presented, after gRPC verified its chain.
class PeerVerifier : public ExternalCertificateVerifier {
 public:
  PeerVerifier(PeerPolicy policy, bool allow_no_certificate)
      : policy_(std::move(policy)), allow_no_certificate_(allow_no_certificate) {}

  bool Verify(TlsCustomVerificationCheckRequest* request,
              std::function<void(grpc::Status)> /*callback*/, grpc::Status* sync_status) override {
    const grpc::string_ref pem = request->peer_cert();
    if (pem.empty()) {
      *sync_status = allow_no_certificate_
                         ? grpc::Status::OK
                         : grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "no peer certificate");
      return true;  // decided synchronously
    }
    auto info = ParseNodeCertificate(absl::string_view(pem.data(), pem.size()));
    absl::Status s = info.ok() ? CheckPeer(*info, policy_) : info.status();
    *sync_status = s.ok()
                       ? grpc::Status::OK
                       : grpc::Status(grpc::StatusCode::UNAUTHENTICATED, std::string(s.message()));
    return true;
  }
  void Cancel(TlsCustomVerificationCheckRequest*) override {}

 private:
  const PeerPolicy policy_;
  const bool allow_no_certificate_;
};

unsigned int RefreshSeconds(absl::Duration d) {
  return static_cast<unsigned int>(std::max<int64_t>(1, absl::ToInt64Seconds(d)));
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int64_t MtimeSeconds(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_mtim.tv_sec) : 0;
}

absl::Status SetMtime(const std::string& path, int64_t seconds) {
  struct timespec times[2];
  times[0].tv_sec = seconds;
  times[0].tv_nsec = 0;
  times[1] = times[0];
  if (::utimensat(AT_FDCWD, path.c_str(), times, 0) != 0) {
    return absl::InternalError(absl::StrCat("set time of ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

// The generation number of a "gen-N" name, 0 for anything else.
int64_t GenerationOf(absl::string_view name) {
  int64_t n = 0;
  if (!absl::StartsWith(name, kGenerationPrefix) ||
      !absl::SimpleAtoi(name.substr(kGenerationPrefix.size()), &n)) {
    return 0;
  }
  return n;
}

absl::Status CheckFilesExist(const TlsFiles& files) {
  for (const std::string* p : {&files.ca_cert, &files.cert, &files.key}) {
    std::error_code ec;
    if (!fs::is_regular_file(*p, ec)) {
      return absl::FailedPreconditionError(
          absl::StrCat("TLS file ", *p, " missing: the node has no certificate yet"));
    }
  }
  return absl::OkStatus();
}

std::shared_ptr<grpc::experimental::CertificateVerifier> Verifier(const PeerPolicy& policy,
                                                                  bool allow_no_certificate) {
  return ExternalCertificateVerifier::Create<PeerVerifier>(policy, allow_no_certificate);
}

// A provider that re-reads `files`, once they exist and the peer policy names a cluster.
absl::StatusOr<std::shared_ptr<grpc::experimental::FileWatcherCertificateProvider>> FileProvider(
    const TlsFiles& files, const PeerPolicy& peer, absl::string_view field,
    absl::Duration refresh) {
  if (auto s = CheckFilesExist(files); !s.ok()) return s;
  if (peer.cluster_id.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".cluster_id is required"));
  }
  return std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      files.key, files.cert, files.ca_cert, RefreshSeconds(refresh));
}

// A client verifies the server against the CA and then by identity (CheckPeer), not host name.
std::shared_ptr<grpc::ChannelCredentials> ClientCredentials(
    std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider, bool has_identity,
    const PeerPolicy& server) {
  grpc::experimental::TlsChannelCredentialsOptions tls;
  tls.set_certificate_provider(std::move(provider));
  tls.watch_root_certs();
  if (has_identity) tls.watch_identity_key_cert_pairs();
  tls.set_verify_server_certs(true);
  tls.set_check_call_host(false);
  tls.set_certificate_verifier(Verifier(server, false));
  return grpc::experimental::TlsCredentials(tls);
}

}  // namespace

absl::Status CredentialsDirectory::Install(const TlsMaterial& material, absl::Time now) {
  auto match = KeyMatchesCertificate(material.key_pem, material.cert_pem);
  if (!match.ok()) return match.status();
  if (!*match) return absl::InvalidArgumentError("TLS key does not belong to the certificate");
  if (auto v = VerifyCertificate(material.ca_cert_pem, material.cert_pem, now); !v.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("TLS certificate: ", v.status().message()));
  }
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) return absl::FailedPreconditionError(absl::StrCat(dir_, ": ", ec.message()));
  fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::replace, ec);
  if (ec) return absl::FailedPreconditionError(absl::StrCat(dir_, ": chmod: ", ec.message()));

  const fs::path base(dir_);
  const fs::path current = base / kCurrent;
  const int64_t previous = GenerationOf(fs::read_symlink(current, ec).filename().string());
  const std::string gen_name = absl::StrCat(kGenerationPrefix, previous + 1);
  const fs::path gen = base / gen_name;
  fs::remove_all(gen, ec);  // left by an install that crashed before switching
  if (!fs::create_directory(gen, ec) || ec) {
    return absl::FailedPreconditionError(absl::StrCat(gen.string(), ": ", ec.message()));
  }
  fs::permissions(gen, fs::perms::owner_all, fs::perm_options::replace, ec);

  int64_t old_mtime = 0;
  for (const char* f : {"ca.pem", "cert.pem", "key.pem"}) {
    old_mtime = std::max(old_mtime, MtimeSeconds((current / f).string()));
  }
  const int64_t mtime = std::max<int64_t>(::time(nullptr), old_mtime + 1);
  const std::pair<const char*, std::pair<absl::string_view, mode_t>> files[] = {
      // Public, but in a data dir nothing is open to group or others (the directory is 0700
      // anyway).
      {"ca.pem", {material.ca_cert_pem, 0600}},
      {"cert.pem", {material.cert_pem, 0600}},
      {"key.pem", {material.key_pem.reveal(), 0600}},
  };
  for (const auto& [name, content] : files) {
    const std::string path = (gen / name).string();
    if (auto s = WriteFileAtomically(path, content.first, content.second); !s.ok()) return s;
    if (auto s = SetMtime(path, mtime); !s.ok()) return s;
  }

  const fs::path tmp_link = base / absl::StrCat(kCurrent, ".tmp");
  fs::remove(tmp_link, ec);
  fs::create_symlink(gen_name, tmp_link, ec);
  if (ec) return absl::FailedPreconditionError(absl::StrCat(tmp_link.string(), ": ", ec.message()));
  if (::rename(tmp_link.c_str(), current.c_str()) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("switch ", current.string(), ": ", std::strerror(errno)));
  }
  const int dir_fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  // The previous generation stays: a FileWatcher may be between its two reads inside it.
  for (const auto& entry : fs::directory_iterator(base, ec)) {
    const int64_t g = GenerationOf(entry.path().filename().string());
    if (g != 0 && g != previous + 1 && g != previous) fs::remove_all(entry.path(), ec);
  }
  return absl::OkStatus();
}

bool CredentialsDirectory::HasCredentials() const { return CheckFilesExist(files()).ok(); }

TlsFiles CredentialsDirectory::files() const {
  const fs::path current = fs::path(dir_) / kCurrent;
  return {(current / "ca.pem").string(), (current / "cert.pem").string(),
          (current / "key.pem").string()};
}

absl::StatusOr<TlsMaterial> CredentialsDirectory::Read() const {
  const TlsFiles f = files();
  TlsMaterial out;
  auto ca = ReadFile(f.ca_cert);
  if (!ca.ok()) return ca.status();
  auto cert = ReadFile(f.cert);
  if (!cert.ok()) return cert.status();
  auto key = ReadFile(f.key);
  if (!key.ok()) return key.status();
  out.ca_cert_pem = std::move(*ca);
  out.cert_pem = std::move(*cert);
  out.key_pem = SecretBytes(std::move(*key));
  return out;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsFiles& files, const ServerTlsOptions& options) {
  auto provider =
      FileProvider(files, options.clients, "server TLS options: clients", options.refresh_interval);
  if (!provider.ok()) return provider.status();
  grpc::experimental::TlsServerCredentialsOptions tls(*provider);
  tls.watch_root_certs();
  tls.watch_identity_key_cert_pairs();
  const bool optional = options.client_certificates == ClientCertificates::kVerifyIfPresent;
  tls.set_cert_request_type(optional ? GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY
                                     : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  tls.set_certificate_verifier(Verifier(options.clients, optional));
  return grpc::experimental::TlsServerCredentials(tls);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsFiles& files, const ChannelTlsOptions& options) {
  auto provider =
      FileProvider(files, options.server, "channel TLS options: server", options.refresh_interval);
  if (!provider.ok()) return provider.status();
  return ClientCredentials(*provider, true, options.server);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeStaticChannelCredentials(
    absl::string_view ca_cert_pem, const std::optional<KeyAndCertificate>& identity,
    const PeerPolicy& server) {
  if (auto ca = ParseCertificate(ca_cert_pem, "CA certificate"); !ca.ok()) return ca.status();
  if (server.cluster_id.empty()) {
    return absl::InvalidArgumentError("channel TLS options: server.cluster_id is required");
  }
  std::shared_ptr<grpc::experimental::StaticDataCertificateProvider> provider;
  if (identity.has_value()) {
    auto match = KeyMatchesCertificate(identity->key_pem, identity->cert_pem);
    if (!match.ok()) return match.status();
    if (!*match) return absl::InvalidArgumentError("TLS key does not belong to the certificate");
    provider = std::make_shared<grpc::experimental::StaticDataCertificateProvider>(
        std::string(ca_cert_pem),
        std::vector<grpc::experimental::IdentityKeyCertPair>{
            {std::string(identity->key_pem.reveal()), identity->cert_pem}});
  } else {
    provider = std::make_shared<grpc::experimental::StaticDataCertificateProvider>(
        std::string(ca_cert_pem));
  }
  return ClientCredentials(provider, identity.has_value(), server);
}

std::shared_ptr<grpc::ChannelCredentials> MakeBootstrapChannelCredentials() {
  grpc::experimental::TlsChannelCredentialsOptions tls;
  tls.set_verify_server_certs(false);
  tls.set_check_call_host(false);
  tls.set_certificate_verifier(std::make_shared<grpc::experimental::NoOpCertificateVerifier>());
  return grpc::experimental::TlsCredentials(tls);
}

}  // namespace warren::security
