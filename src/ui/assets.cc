#include "ui/assets.h"

#include "absl/strings/match.h"

namespace warren::ui {

const EmbeddedFile* FindAsset(std::string_view name) {
  for (const EmbeddedFile& f : EmbeddedFiles()) {
    if (name == f.name) return &f;
  }
  return nullptr;
}

std::string_view ContentTypeFor(std::string_view name) {
  absl::string_view n(name.data(), name.size());
  if (absl::EndsWith(n, ".html")) return "text/html; charset=utf-8";
  if (absl::EndsWith(n, ".js")) return "text/javascript; charset=utf-8";
  if (absl::EndsWith(n, ".css")) return "text/css; charset=utf-8";
  if (absl::EndsWith(n, ".svg")) return "image/svg+xml";
  if (absl::EndsWith(n, ".png")) return "image/png";
  return "application/octet-stream";
}

}  // namespace warren::ui
