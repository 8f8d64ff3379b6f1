#include "security/secrets.h"

#include "absl/strings/str_cat.h"
#include "security/aead.h"
#include "security/certificates.h"

namespace warren::security {
namespace {

std::string DataKeyAad(absl::string_view id, absl::string_view name) {
  return AssociatedData({"warren.v1.SecretEnvelope.wrapped_data_key", id, name});
}
std::string ValueAad(absl::string_view id, absl::string_view name) {
  return AssociatedData({"warren.v1.SecretEnvelope.value", id, name});
}

}  // namespace

absl::StatusOr<v1::SecretEnvelope> EncryptSecret(const SecretBytes& cluster_key,
                                                 absl::string_view secret_id,
                                                 absl::string_view name, const SecretBytes& value) {
  if (auto s = ValidateId(secret_id, "secret id"); !s.ok()) return s;
  if (name.empty()) return absl::InvalidArgumentError("secret name: empty");
  if (value.size() > kMaxSecretSize) {
    return absl::InvalidArgumentError(absl::StrCat("secret ", name, ": value of ", value.size(),
                                                   " bytes, at most ", kMaxSecretSize, " allowed"));
  }
  auto data_key = NewAeadKey();
  if (!data_key.ok()) return data_key.status();
  auto sealed_value = Seal(*data_key, value.reveal(), ValueAad(secret_id, name));
  if (!sealed_value.ok()) return sealed_value.status();
  auto wrapped = Seal(cluster_key, data_key->reveal(), DataKeyAad(secret_id, name));
  if (!wrapped.ok()) return wrapped.status();
  v1::SecretEnvelope out;
  *out.mutable_wrapped_data_key() = std::move(*wrapped);
  *out.mutable_value() = std::move(*sealed_value);
  return out;
}

absl::StatusOr<SecretBytes> DecryptSecret(const SecretBytes& cluster_key,
                                          absl::string_view secret_id, absl::string_view name,
                                          const v1::SecretEnvelope& envelope) {
  auto data_key = Open(cluster_key, envelope.wrapped_data_key(), DataKeyAad(secret_id, name));
  if (!data_key.ok()) {
    return absl::Status(data_key.status().code(),
                        absl::StrCat("secret ", name, " (", secret_id,
                                     "): data key: ", data_key.status().message()));
  }
  auto value = Open(*data_key, envelope.value(), ValueAad(secret_id, name));
  if (!value.ok()) {
    return absl::Status(
        value.status().code(),
        absl::StrCat("secret ", name, " (", secret_id, "): value: ", value.status().message()));
  }
  return value;
}

}  // namespace warren::security
