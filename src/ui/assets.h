#ifndef WARREN_UI_ASSETS_H_
#define WARREN_UI_ASSETS_H_

#include <cstddef>
#include <span>
#include <string_view>

namespace warren::ui {

// A dashboard file compiled into the binary (src/ui/assets/, see cmake/embed_assets.cmake).
struct EmbeddedFile {
  const char* name;  // relative to src/ui/assets/, e.g. "app.js"
  const unsigned char* data;
  size_t size;
};

// Every embedded file (generated at build time).
std::span<const EmbeddedFile> EmbeddedFiles();

// The file with this name, or nullptr.
const EmbeddedFile* FindAsset(std::string_view name);

// The Content-Type for a file name, from its extension.
std::string_view ContentTypeFor(std::string_view name);

}  // namespace warren::ui

#endif  // WARREN_UI_ASSETS_H_
