#ifndef WARREN_COMMON_TIME_UTIL_H_
#define WARREN_COMMON_TIME_UTIL_H_

#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"

namespace warren {

inline google::protobuf::Timestamp ToProtoTime(absl::Time t) {
  google::protobuf::Timestamp ts;
  int64_t ns = absl::ToUnixNanos(t);
  ts.set_seconds(ns / 1'000'000'000);
  ts.set_nanos(static_cast<int32_t>(ns % 1'000'000'000));
  if (ts.nanos() < 0) {
    ts.set_seconds(ts.seconds() - 1);
    ts.set_nanos(ts.nanos() + 1'000'000'000);
  }
  return ts;
}

// An unset timestamp is the infinite past.
inline absl::Time FromProtoTime(const google::protobuf::Timestamp& ts) {
  if (ts.seconds() == 0 && ts.nanos() == 0) return absl::InfinitePast();
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

inline bool IsSet(const google::protobuf::Timestamp& ts) {
  return ts.seconds() != 0 || ts.nanos() != 0;
}

inline google::protobuf::Duration ToProtoDuration(absl::Duration d) {
  google::protobuf::Duration out;
  int64_t ns = absl::ToInt64Nanoseconds(d);
  out.set_seconds(ns / 1'000'000'000);
  out.set_nanos(static_cast<int32_t>(ns % 1'000'000'000));
  return out;
}

inline absl::Duration FromProtoDuration(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

// FromProtoDuration, or `fallback` when the field is unset (zero).
inline absl::Duration DurationOr(const google::protobuf::Duration& d, absl::Duration fallback) {
  if (d.seconds() == 0 && d.nanos() == 0) return fallback;
  return FromProtoDuration(d);
}

}  // namespace warren

#endif  // WARREN_COMMON_TIME_UTIL_H_
