#ifndef WARREN_COMMON_LOGGING_H_
#define WARREN_COMMON_LOGGING_H_

// The daemons' log: level filter, text or JSON lines, UTC RFC 3339 timestamps, and optional
// structured fields (service, deployment, ...) that both formats carry.

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "spdlog/formatter.h"
#include "spdlog/spdlog.h"

namespace warren {

enum class LogFormat { kText, kJson };

struct LogOptions {
  // trace, debug, info, warn or error.
  std::string level = "info";
  // text or json.
  std::string format = "text";
};

inline constexpr const char* kLogLevels[] = {"trace", "debug", "info", "warn", "error"};
inline constexpr const char* kLogFormats[] = {"text", "json"};

// Sets the level and the formatter of spdlog's default logger, and sends gRPC's and protobuf's
// own log messages through it. INVALID_ARGUMENT naming the flag for a level or format not
// listed above.
absl::Status ConfigureLogging(const LogOptions& options);

// One line per message:
//   text: 2024-05-01T10:00:00.123Z info  manager listening on ... service=web
//   json: {"time":"2024-05-01T10:00:00.123Z","level":"info","msg":"...","service":"web"}
std::unique_ptr<spdlog::formatter> MakeLogFormatter(LogFormat format);

using LogField = std::pair<std::string_view, std::string_view>;

// Logs `msg` through the default logger with `fields` attached: the JSON format writes them as
// members of the line's object, the text format as " key=value" after the message.
void LogWithFields(spdlog::level::level_enum level, std::string_view msg,
                   const std::vector<LogField>& fields);

}  // namespace warren

#endif  // WARREN_COMMON_LOGGING_H_
