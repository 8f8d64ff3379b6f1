#include "common/logging.h"

#include <algorithm>
#include <cstring>
#include <iterator>

#include <grpc/support/log.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/stubs/logging.h"
#include "nlohmann/json.hpp"

namespace warren {
namespace {

// The fields of the message being logged on this thread. spdlog's default logger formats
// synchronously in the calling thread, so the formatter sees what LogWithFields set.
thread_local const std::vector<LogField>* current_fields = nullptr;

std::string_view LevelName(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
      return "trace";
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warn";
    case spdlog::level::err:
      return "error";
    case spdlog::level::critical:
      return "critical";
    default:
      return "off";
  }
}

std::string Timestamp(const spdlog::details::log_msg& msg) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromChrono(msg.time), absl::UTCTimeZone());
}

void Append(std::string_view s, spdlog::memory_buf_t& dest) {
  dest.append(s.data(), s.data() + s.size());
}

class TextFormatter : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    std::string_view level = LevelName(msg.level);
    std::string line = Timestamp(msg);
    line += ' ';
    line += level;
    line.append(std::max<size_t>(1, 6 - level.size()), ' ');
    line.append(msg.payload.data(), msg.payload.size());
    if (current_fields != nullptr) {
      for (const auto& [key, value] : *current_fields) {
        // Quoted only when the value would not read back as one token.
        const bool plain = !value.empty() && value.find_first_of(" \t\n\"=") == value.npos;
        line += ' ';
        line += key;
        line += '=';
        line += plain ? std::string(value)
                      : absl::StrCat("\"", absl::CEscape(std::string(value)), "\"");
      }
    }
    line += '\n';
    Append(line, dest);
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<TextFormatter>();
  }
};

class JsonFormatter : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    nlohmann::ordered_json line;
    line["time"] = Timestamp(msg);
    line["level"] = LevelName(msg.level);
    line["msg"] = std::string(msg.payload.data(), msg.payload.size());
    if (current_fields != nullptr) {
      for (const auto& [key, value] : *current_fields) {
        // The three members above are the line's own; a field of the same name is kept apart.
        const std::string name = (key == "time" || key == "level" || key == "msg")
                                     ? "field_" + std::string(key)
                                     : std::string(key);
        line[name] = std::string(value);
      }
    }
    // Invalid UTF-8 (a task's output quoted in a message) must not make the line unreadable.
    Append(line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), dest);
    Append("\n", dest);
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

std::string SourceOf(const char* file, int line) {
  if (file == nullptr) return "";
  std::string_view f(file);
  if (size_t slash = f.rfind('/'); slash != std::string_view::npos) f.remove_prefix(slash + 1);
  return absl::StrCat(std::string(f), ":", line);
}

// gRPC's and protobuf's own messages go through the same logger, so every line of the
// daemon's output has the chosen format.
void GrpcLog(gpr_log_func_args* args) {
  const spdlog::level::level_enum level =
      args->severity == GPR_LOG_SEVERITY_ERROR  ? spdlog::level::err
      : args->severity == GPR_LOG_SEVERITY_INFO ? spdlog::level::info
                                                : spdlog::level::debug;
  const std::string source = SourceOf(args->file, args->line);
  LogWithFields(level, absl::StrCat("grpc: ", args->message != nullptr ? args->message : ""),
                {{"source", source}});
}

void ProtobufLog(google::protobuf::LogLevel level, const char* file, int line,
                 const std::string& message) {
  const spdlog::level::level_enum l =
      level == google::protobuf::LOGLEVEL_INFO      ? spdlog::level::info
      : level == google::protobuf::LOGLEVEL_WARNING ? spdlog::level::warn
      : level == google::protobuf::LOGLEVEL_ERROR   ? spdlog::level::err
                                                    : spdlog::level::critical;
  const std::string source = SourceOf(file, line);
  LogWithFields(l, absl::StrCat("protobuf: ", message), {{"source", source}});
}

}  // namespace

std::unique_ptr<spdlog::formatter> MakeLogFormatter(LogFormat format) {
  if (format == LogFormat::kJson) return std::make_unique<JsonFormatter>();
  return std::make_unique<TextFormatter>();
}

absl::Status ConfigureLogging(const LogOptions& options) {
  static constexpr std::pair<const char*, spdlog::level::level_enum> kLevels[] = {
      {"trace", spdlog::level::trace},
      {"debug", spdlog::level::debug},
      {"info", spdlog::level::info},
      {"warn", spdlog::level::warn},
      {"error", spdlog::level::err}};
  auto level = std::find_if(std::begin(kLevels), std::end(kLevels),
                            [&](const auto& l) { return options.level == l.first; });
  if (level == std::end(kLevels)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--log-level: \"", options.level,
                     "\" is not a level (allowed: trace, debug, info, "
                     "warn, error)"));
  }
  if (options.format != "text" && options.format != "json") {
    return absl::InvalidArgumentError(absl::StrCat("--log-format: \"", options.format,
                                                   "\" is not a format (allowed: text, json)"));
  }
  spdlog::set_formatter(
      MakeLogFormatter(options.format == "json" ? LogFormat::kJson : LogFormat::kText));
  spdlog::set_level(level->second);
  gpr_set_log_function(GrpcLog);
  google::protobuf::SetLogHandler(ProtobufLog);
  return absl::OkStatus();
}

void LogWithFields(spdlog::level::level_enum level, std::string_view msg,
                   const std::vector<LogField>& fields) {
  const std::vector<LogField>* previous = current_fields;
  current_fields = &fields;
  spdlog::log(level, "{}", msg);
  current_fields = previous;
}

}  // namespace warren
