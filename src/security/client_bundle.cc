#include "security/client_bundle.h"

#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "security/tls_credentials.h"
#include "warren/v1/security.grpc.pb.h"

namespace warren::security {
namespace {

namespace fs = std::filesystem;

constexpr char kCurrentCluster[] = "current";

}  // namespace

std::string DefaultTlsRoot() {
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == '\0') {
    // systemd sets no HOME for a system service without User=: the user's home from passwd,
    // where the CLI of the same user looks too.
    const passwd* pw = getpwuid(geteuid());
    if (pw == nullptr || pw->pw_dir == nullptr || *pw->pw_dir == '\0') return "";
    home = pw->pw_dir;
  }
  return (fs::path(home) / ".warren").string();
}

absl::StatusOr<std::string> WriteAdminBundle(const std::string& root,
                                             const ClusterAuthority& authority,
                                             absl::Duration validity, absl::Time now) {
  if (root.empty()) {
    return absl::InvalidArgumentError(
        "tls-root: no directory for the admin client bundle (no home directory; pass --tls-root)");
  }
  auto kc = authority.ca().IssueKeyAndCertificate({"admin", Role::kAdmin, authority.cluster_id()},
                                                  {validity, {}}, now);
  if (!kc.ok()) return kc.status();
  const fs::path dir = fs::path(root) / authority.cluster_id();
  CredentialsDirectory bundle(dir.string());
  if (auto s = bundle.Install({authority.ca().cert_pem(), kc->cert_pem, kc->key_pem}, now);
      !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("admin bundle ", dir.string(), ": ", s.message()));
  }
  std::error_code ec;
  fs::permissions(root, fs::perms::owner_all, fs::perm_options::replace, ec);
  // Switched in one rename, so a CLI never follows a half-made link.
  const fs::path link = fs::path(root) / kCurrentCluster;
  const fs::path tmp = fs::path(root) / absl::StrCat(kCurrentCluster, ".tmp");
  fs::remove(tmp, ec);
  fs::create_symlink(authority.cluster_id(), tmp, ec);
  if (ec || std::rename(tmp.c_str(), link.c_str()) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("admin bundle: pointing ", link.string(), " at ", dir.string(), ": ",
                     ec ? ec.message() : std::string(std::strerror(errno))));
  }
  return dir.string();
}

std::string ChooseBundleDir(const std::string& explicit_dir) {
  if (!explicit_dir.empty()) return explicit_dir;
  const std::string root = DefaultTlsRoot();
  if (root.empty()) return "";
  std::error_code ec;
  const fs::path current = fs::path(root) / kCurrentCluster;
  return fs::exists(current, ec) ? current.string() : "";
}

std::string DescribeBundleSearch() {
  const std::string root = DefaultTlsRoot();
  return absl::StrCat(
      "--tls-dir and WARREN_TLS_DIR are not set, and ",
      root.empty() ? std::string("no home directory (no ~/.warren/current)")
                   : absl::StrCat("there is no ", (fs::path(root) / kCurrentCluster).string()));
}

bool ServesTls(const std::string& addr, absl::Duration timeout) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto stub =
      v1::Ca::NewStub(grpc::CreateCustomChannel(addr, MakeBootstrapChannelCredentials(), args));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  v1::GetCaCertificateResponse ca;
  return stub->GetCaCertificate(&ctx, {}, &ca).ok();
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> BundleChannelCredentials(
    const std::string& dir) {
  auto material = CredentialsDirectory(dir).Read();
  if (!material.ok()) {
    return absl::Status(material.status().code(),
                        absl::StrCat("tls-dir ", dir, ": ", material.status().message()));
  }
  auto info = ParseNodeCertificate(material->cert_pem);
  if (!info.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tls-dir ", dir, ": cert.pem: ", info.status().message()));
  }
  PeerPolicy manager{info->identity.cluster_id, {Role::kManager}, "", nullptr};
  return MakeStaticChannelCredentials(
      material->ca_cert_pem, KeyAndCertificate{material->key_pem, material->cert_pem}, manager);
}

}  // namespace warren::security
