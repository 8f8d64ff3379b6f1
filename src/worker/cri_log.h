#ifndef WARREN_WORKER_CRI_LOG_H_
#define WARREN_WORKER_CRI_LOG_H_

#include <optional>
#include <string>
#include <string_view>

namespace warren {

// Decodes the container log files a CRI runtime writes: one record per line,
// "<RFC 3339 time> <stdout|stderr> <P|F>[:more tags] <text>", where P marks a piece of a
// longer line continued by the next record and F its final piece.
class CriLogDecoder {
 public:
  // Feeds one record (without its '\n'). Returns the text of a complete log line when this
  // record ends one. A record that is not in the CRI format is returned as it is.
  std::optional<std::string> Feed(std::string_view record);

  // The pieces of a line still waiting for its final record, if any.
  std::optional<std::string> Flush();

 private:
  std::string pending_;
  bool has_pending_ = false;
};

}  // namespace warren

#endif  // WARREN_WORKER_CRI_LOG_H_
