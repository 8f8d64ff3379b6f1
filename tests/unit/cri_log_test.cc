#include "worker/cri_log.h"

#include <gtest/gtest.h>

namespace warren {
namespace {

TEST(CriLogDecoderTest, FullRecordsGiveTheirText) {
  CriLogDecoder d;
  EXPECT_EQ(d.Feed("2026-11-27T10:00:00.123456789Z stdout F listening on 10.88.0.2:8080"),
            "listening on 10.88.0.2:8080");
  EXPECT_EQ(d.Feed("2026-11-27T10:00:01Z stderr F warning: slow"), "warning: slow");
  EXPECT_EQ(d.Feed("2026-11-27T10:00:01Z stdout F "), "");
  EXPECT_EQ(d.Feed("2026-11-27T10:00:01Z stdout F"), "");
  EXPECT_EQ(d.Flush(), std::nullopt);
}

TEST(CriLogDecoderTest, PartialRecordsJoinUntilTheFinalOne) {
  CriLogDecoder d;
  EXPECT_EQ(d.Feed("2026-11-27T10:00:00Z stdout P abc"), std::nullopt);
  EXPECT_EQ(d.Feed("2026-11-27T10:00:00Z stdout P def"), std::nullopt);
  EXPECT_EQ(d.Feed("2026-11-27T10:00:00Z stdout F:x ghi"), "abcdefghi");
  EXPECT_EQ(d.Feed("2026-11-27T10:00:00Z stdout P tail"), std::nullopt);
  EXPECT_EQ(d.Flush(), "tail");
  EXPECT_EQ(d.Flush(), std::nullopt);
}

TEST(CriLogDecoderTest, OtherLinesPassThrough) {
  CriLogDecoder d;
  EXPECT_EQ(d.Feed("plain text line"), "plain text line");
  EXPECT_EQ(d.Feed(""), "");
  EXPECT_EQ(d.Feed("2026 stdin F x"), "2026 stdin F x");
  EXPECT_EQ(d.Feed("2026 stdout X x"), "2026 stdout X x");
  EXPECT_EQ(d.Feed("2026 stdout Fx x"), "2026 stdout Fx x");
}

}  // namespace
}  // namespace warren
