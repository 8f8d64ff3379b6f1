#ifndef WARREN_WORKER_REGISTRY_AUTH_H_
#define WARREN_WORKER_REGISTRY_AUTH_H_

#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace warren {

struct RegistryCredentials {
  std::string username;
  std::string password;
  // A token instead of a password (the registry's OAuth identity token), when given.
  std::string identity_token;
};

// Credentials per registry host, from a Docker client config file (`config.json`, as written
// by `docker login`, `podman login` or by hand):
//   {"auths": {"registry.example.com:5000": {"auth": "<base64 of user:password>"},
//              "127.0.0.1:5001": {"username": "edge", "password": "s3cret"}}}
class RegistryAuth {
 public:
  // Errors name the flag and the entry: "--registry-auth /etc/warren/auth.json:
  // auths["r.example.com"].auth: not base64 of user:password".
  static absl::StatusOr<RegistryAuth> Load(const std::string& path);
  static absl::StatusOr<RegistryAuth> Parse(const std::string& json, const std::string& source);

  // The credentials for the registry an image reference names, if any.
  std::optional<RegistryCredentials> For(const std::string& image) const;

  // The registry host of an image reference: "127.0.0.1:5000/shop/web:2" -> "127.0.0.1:5000";
  // a name without a registry part ("nginx", "library/nginx") -> "docker.io".
  static std::string RegistryOf(const std::string& image);

  size_t size() const { return by_host_.size(); }

 private:
  std::map<std::string, RegistryCredentials> by_host_;
};

}  // namespace warren

#endif  // WARREN_WORKER_REGISTRY_AUTH_H_
