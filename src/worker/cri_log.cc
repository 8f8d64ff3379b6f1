#include "worker/cri_log.h"

namespace warren {

std::optional<std::string> CriLogDecoder::Feed(std::string_view record) {
  // time
  size_t a = record.find(' ');
  if (a == std::string_view::npos || a == 0) return std::string(record);
  // stream
  size_t b = record.find(' ', a + 1);
  if (b == std::string_view::npos) return std::string(record);
  std::string_view stream = record.substr(a + 1, b - a - 1);
  if (stream != "stdout" && stream != "stderr") return std::string(record);
  // tags: the first one says partial (P) or full (F); more may follow after ':'.
  size_t c = record.find(' ', b + 1);
  std::string_view tags = record.substr(b + 1, c == std::string_view::npos ? c : c - b - 1);
  std::string_view text = c == std::string_view::npos ? std::string_view() : record.substr(c + 1);
  const char kind = tags.empty() ? '\0' : tags.front();
  if ((kind != 'P' && kind != 'F') || (tags.size() > 1 && tags[1] != ':')) {
    return std::string(record);
  }
  pending_.append(text);
  has_pending_ = true;
  if (kind == 'P') return std::nullopt;
  std::string line = std::move(pending_);
  pending_.clear();
  has_pending_ = false;
  return line;
}

std::optional<std::string> CriLogDecoder::Flush() {
  if (!has_pending_) return std::nullopt;
  std::string line = std::move(pending_);
  pending_.clear();
  has_pending_ = false;
  return line;
}

}  // namespace warren
