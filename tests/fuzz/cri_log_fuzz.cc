// libFuzzer target for the CRI container log decoder (src/worker/cri_log.h), which reads files
// a container runtime wrote from whatever the container printed.
//  1. Any bytes, split into records at '\n': Feed and Flush never crash, and never return
//     more text than was fed (a malformed record comes back as it is, pieces of a line once).
//  2. Round trip: the input's lines, written as CRI records the way a runtime does (pieces of
//     a long line as P records, the last as F), decode to exactly those lines.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "worker/cri_log.h"

namespace {

std::vector<std::string_view> Split(std::string_view data) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (size_t nl; (nl = data.find('\n', start)) != std::string_view::npos; start = nl + 1) {
    out.push_back(data.substr(start, nl - start));
  }
  out.push_back(data.substr(start));
  return out;
}

void AnyRecords(std::string_view data) {
  warren::CriLogDecoder decoder;
  size_t fed = 0, returned = 0;
  for (std::string_view record : Split(data)) {
    fed += record.size();
    if (std::optional<std::string> line = decoder.Feed(record)) returned += line->size();
    if (returned > fed) abort();
  }
  if (std::optional<std::string> rest = decoder.Flush()) returned += rest->size();
  if (returned > fed) abort();
}

void RoundTrip(std::string_view data) {
  if (data.empty()) return;
  // The first byte picks the piece size a runtime splits long lines into.
  const size_t piece = 1 + static_cast<uint8_t>(data[0]) % 16;
  warren::CriLogDecoder decoder;
  std::vector<std::string_view> lines = Split(data.substr(1));
  int i = 0;
  for (std::string_view line : lines) {
    const std::string_view stream = i++ % 2 == 0 ? "stdout" : "stderr";
    size_t at = 0;
    do {
      std::string_view chunk = line.substr(at, piece);
      at += chunk.size();
      const bool last = at >= line.size();
      std::string record = "2024-05-01T10:00:00.123456789Z ";
      record.append(stream).append(last ? " F " : " P ").append(chunk);
      std::optional<std::string> got = decoder.Feed(record);
      if (last != got.has_value()) abort();
      if (got && *got != line) abort();
    } while (at < line.size());
  }
  if (decoder.Flush().has_value()) abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  AnyRecords(in);
  RoundTrip(in);
  return 0;
}
