#include "worker/registry_auth.h"

#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace warren {
namespace {

// "https://index.docker.io/v1/" -> "docker.io"; "r.example.com:5000/" -> "r.example.com:5000".
std::string NormalizeHost(std::string key) {
  for (const char* scheme : {"https://", "http://"}) {
    if (absl::StartsWith(key, scheme)) key = key.substr(std::string(scheme).size());
  }
  if (auto slash = key.find('/'); slash != std::string::npos) key.resize(slash);
  if (key == "index.docker.io" || key == "registry-1.docker.io") key = "docker.io";
  return key;
}

}  // namespace

std::string RegistryAuth::RegistryOf(const std::string& image) {
  auto slash = image.find('/');
  if (slash == std::string::npos) return "docker.io";
  std::string first = image.substr(0, slash);
  // Only a first component that looks like a host names a registry (as Docker reads it).
  if (first.find('.') == std::string::npos && first.find(':') == std::string::npos &&
      first != "localhost") {
    return "docker.io";
  }
  return NormalizeHost(first);
}

absl::StatusOr<RegistryAuth> RegistryAuth::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("--registry-auth ", path, ": cannot read the file"));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return Parse(ss.str(), path);
}

absl::StatusOr<RegistryAuth> RegistryAuth::Parse(const std::string& text,
                                                 const std::string& source) {
  const std::string where = absl::StrCat("--registry-auth ", source, ": ");
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, "not a JSON object (expected {\"auths\": {HOST: {...}}})"));
  }
  RegistryAuth out;
  if (!j.contains("auths")) return out;
  if (!j["auths"].is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(where, "auths: must be an object"));
  }
  for (const auto& [key, entry] : j["auths"].items()) {
    const std::string field = absl::StrCat("auths[\"", key, "\"]");
    if (!entry.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(where, field, ": must be an object"));
    }
    RegistryCredentials c;
    auto str = [&](const char* name) -> absl::StatusOr<std::string> {
      if (!entry.contains(name)) return std::string();
      if (!entry[name].is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, field, ".", name, ": must be a string"));
      }
      return entry[name].get<std::string>();
    };
    auto auth = str("auth");
    auto user = str("username");
    auto pass = str("password");
    auto token = str("identitytoken");
    for (const auto* s : {&auth, &user, &pass, &token}) {
      if (!s->ok()) return s->status();
    }
    if (!auth->empty()) {
      std::string decoded;
      auto colon = std::string::npos;
      if (absl::Base64Unescape(*auth, &decoded)) colon = decoded.find(':');
      if (colon == std::string::npos || colon == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, field, ".auth: not base64 of user:password"));
      }
      c.username = decoded.substr(0, colon);
      c.password = decoded.substr(colon + 1);
    } else {
      c.username = *user;
      c.password = *pass;
    }
    c.identity_token = *token;
    if (c.username.empty() && c.identity_token.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, field, ": needs \"auth\", \"username\" and \"password\", or \"identitytoken\""));
    }
    out.by_host_[NormalizeHost(key)] = std::move(c);
  }
  return out;
}

std::optional<RegistryCredentials> RegistryAuth::For(const std::string& image) const {
  auto it = by_host_.find(RegistryOf(image));
  if (it == by_host_.end()) return std::nullopt;
  return it->second;
}

}  // namespace warren
