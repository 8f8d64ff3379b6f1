#ifndef WARREN_SECURITY_SECRET_BYTES_H_
#define WARREN_SECURITY_SECRET_BYTES_H_

#include <ostream>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"
#include "fmt/format.h"

namespace warren::security {

// Key material or a secret's value. Every way of printing it (operator<<, fmt/spdlog,
// DebugString, gtest) shows "<redacted>"; the bytes are wiped when the object goes away.
// reveal() is the one way to the bytes, so each use is easy to find and review.
class SecretBytes {
 public:
  SecretBytes() = default;
  explicit SecretBytes(std::string value) : value_(std::move(value)) {}
  SecretBytes(const SecretBytes& other) : value_(other.value_) {}
  SecretBytes& operator=(const SecretBytes& other) {
    if (this != &other) {
      Clear();
      value_ = other.value_;
    }
    return *this;
  }
  // A moved-from std::string can keep its bytes in the small-string buffer: copy, then wipe.
  SecretBytes(SecretBytes&& other) noexcept : value_(other.value_) { other.Clear(); }
  SecretBytes& operator=(SecretBytes&& other) noexcept {
    if (this != &other) {
      Clear();
      value_ = other.value_;
      other.Clear();
    }
    return *this;
  }
  ~SecretBytes() { Clear(); }

  absl::string_view reveal() const { return value_; }
  size_t size() const { return value_.size(); }
  bool empty() const { return value_.empty(); }
  // Constant-time comparison (length is not hidden).
  bool Equals(const SecretBytes& other) const;
  void Clear();

  std::string DebugString() const { return "<redacted>"; }
  friend std::ostream& operator<<(std::ostream& os, const SecretBytes&) {
    return os << "<redacted>";
  }

 private:
  std::string value_;
};

}  // namespace warren::security

template <>
struct fmt::formatter<warren::security::SecretBytes> : fmt::formatter<std::string_view> {
  template <typename FormatContext>
  auto format(const warren::security::SecretBytes&, FormatContext& ctx) const {
    return fmt::formatter<std::string_view>::format("<redacted>", ctx);
  }
};

#endif  // WARREN_SECURITY_SECRET_BYTES_H_
