#include "security/aead.h"

#include <openssl/err.h>
#include <openssl/evp.h>

#include "absl/strings/str_cat.h"
#include "security/openssl_util.h"

namespace warren::security {
namespace {

absl::Status CheckKey(const SecretBytes& key) {
  if (key.size() != kAeadKeySize) {
    return absl::InvalidArgumentError(
        absl::StrCat("encryption key: ", key.size(), " bytes, must be ", kAeadKeySize));
  }
  return absl::OkStatus();
}

unsigned char* Bytes(std::string& s) { return reinterpret_cast<unsigned char*>(s.data()); }
const unsigned char* Bytes(absl::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

}  // namespace

absl::StatusOr<SecretBytes> NewAeadKey() {
  auto bytes = RandomBytes(kAeadKeySize);
  if (!bytes.ok()) return bytes.status();
  return SecretBytes(std::move(*bytes));
}

absl::StatusOr<v1::SealedBox> Seal(const SecretBytes& key, absl::string_view plaintext,
                                   absl::string_view aad) {
  if (auto s = CheckKey(key); !s.ok()) return s;
  auto nonce = RandomBytes(kAeadNonceSize);
  if (!nonce.ok()) return nonce.status();
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  std::string out(plaintext.size() + kAeadTagSize, '\0');
  int len = 0;
  int total = 0;
  if (!ctx ||
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, Bytes(key.reveal()),
                         Bytes(*nonce)) != 1 ||
      (!aad.empty() && EVP_EncryptUpdate(ctx.get(), nullptr, &len, Bytes(aad),
                                         static_cast<int>(aad.size())) != 1) ||
      EVP_EncryptUpdate(ctx.get(), Bytes(out), &len, Bytes(plaintext),
                        static_cast<int>(plaintext.size())) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "AES-256-GCM encrypt");
  }
  total = len;
  if (EVP_EncryptFinal_ex(ctx.get(), Bytes(out) + total, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kAeadTagSize,
                          Bytes(out) + total + len) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "AES-256-GCM encrypt");
  }
  v1::SealedBox box;
  box.set_nonce(std::move(*nonce));
  box.set_ciphertext(std::move(out));
  return box;
}

absl::StatusOr<SecretBytes> Open(const SecretBytes& key, const v1::SealedBox& box,
                                 absl::string_view aad) {
  if (auto s = CheckKey(key); !s.ok()) return s;
  if (box.nonce().size() != kAeadNonceSize) {
    return absl::DataLossError(absl::StrCat("sealed box: nonce of ", box.nonce().size(),
                                            " bytes, must be ", kAeadNonceSize));
  }
  if (box.ciphertext().size() < kAeadTagSize) {
    return absl::DataLossError(absl::StrCat("sealed box: ciphertext of ", box.ciphertext().size(),
                                            " bytes is shorter than the GCM tag"));
  }
  const size_t n = box.ciphertext().size() - kAeadTagSize;
  std::string tag = box.ciphertext().substr(n);
  std::string out(n, '\0');
  SecretBytes guard;  // wipes the partial plaintext on every early return below
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  if (!ctx ||
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, Bytes(key.reveal()),
                         Bytes(box.nonce())) != 1 ||
      (!aad.empty() && EVP_DecryptUpdate(ctx.get(), nullptr, &len, Bytes(aad),
                                         static_cast<int>(aad.size())) != 1) ||
      EVP_DecryptUpdate(ctx.get(), Bytes(out), &len, Bytes(box.ciphertext()),
                        static_cast<int>(n)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kAeadTagSize, tag.data()) != 1) {
    guard = SecretBytes(std::move(out));
    return OpenSslError(absl::StatusCode::kInternal, "AES-256-GCM decrypt");
  }
  const int plain_len = len;
  if (EVP_DecryptFinal_ex(ctx.get(), Bytes(out) + plain_len, &len) != 1) {
    guard = SecretBytes(std::move(out));
    ERR_clear_error();
    return absl::DataLossError(
        "sealed box does not open: wrong key, other associated data, or changed bytes");
  }
  return SecretBytes(std::move(out));
}

std::string AssociatedData(std::initializer_list<absl::string_view> parts) {
  std::string out;
  for (absl::string_view p : parts) {
    absl::StrAppend(&out, p.size(), ":", p, ";");
  }
  return out;
}

}  // namespace warren::security
