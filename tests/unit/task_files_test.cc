// A task's files on a worker: output logs capped and rotated (log_files.h), read back in order
// across rotations (task_logs.h), the directories of gone tasks removed (task_dirs.h), the
// container log rotation of the cri runtime, and the worker flags that set them.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_join.h"
#include "cli/cli.h"
#include "common/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_util.h"
#include "worker/cri_driver.h"
#include "worker/log_files.h"
#include "worker/task_dirs.h"
#include "worker/task_logs.h"

namespace warren {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing_util::TempDir;

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Lines(int from, int to) {
  std::string out;
  for (int i = from; i < to; ++i) out += "line " + std::to_string(i) + "\n";
  return out;
}

TEST(RotatingLogWriterTest, NoFileGrowsPastTheCapAndOnlyTheNewestAreKept) {
  TempDir dir;
  const std::string base = dir.str() + "/output.log";
  RotatingLogWriter writer(base, {/*max_size=*/100, /*max_files=*/3});
  ASSERT_EQ(writer.Open(), 0);
  const std::string all = Lines(0, 100);  // 890 bytes
  for (size_t i = 0; i < all.size(); i += 37) {
    writer.Write(all.data() + i, std::min<size_t>(37, all.size() - i));
  }
  std::vector<std::string> files = LogFileSet(base);
  ASSERT_THAT(files, ElementsAre(base + ".2", base + ".1", base));
  std::string kept;
  for (const auto& f : files) {
    EXPECT_LE(fs::file_size(f), 100u) << f;
    kept += Slurp(f);
  }
  // What is kept is the newest output, in order.
  EXPECT_EQ(kept, all.substr(all.size() - kept.size()));
  EXPECT_GT(kept.size(), 200u);
  EXPECT_EQ(fs::status(base).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(writer.dropped_bytes(), 0);
}

TEST(RotatingLogWriterTest, OneFileIsTruncatedInPlace) {
  TempDir dir;
  const std::string base = dir.str() + "/output.log";
  RotatingLogWriter writer(base, {/*max_size=*/10, /*max_files=*/1});
  ASSERT_EQ(writer.Open(), 0);
  writer.Write("0123456789abcdef", 16);
  EXPECT_THAT(LogFileSet(base), ElementsAre(base));
  EXPECT_EQ(Slurp(base), "abcdef");
}

TEST(RotateLogFilesTest, ASmallerSetDropsTheOlderFiles) {
  TempDir dir;
  const std::string base = dir.str() + "/output.log";
  for (const char* name : {"output.log", "output.log.1", "output.log.2", "output.log.3",
                           "output.log.x", "output.log.01"}) {
    std::ofstream(dir.str() + "/" + name) << name;
  }
  ASSERT_EQ(RotateLogFiles(base, 2), 0);
  EXPECT_THAT(LogFileSet(base), ElementsAre(base + ".1"));
  EXPECT_EQ(Slurp(base + ".1"), "output.log");
  EXPECT_TRUE(fs::exists(dir.str() + "/output.log.x"));  // not ours
}

TEST(TaskLogReaderTest, ReadsAcrossRotatedFilesAndFollowsARotation) {
  TempDir dir;
  const std::string base = dir.str() + "/output.log";
  TaskLogReader missing(base, false);
  absl::Status none = missing.ReadLines(0).status();
  EXPECT_TRUE(absl::IsNotFound(none));
  EXPECT_THAT(none.message(), HasSubstr("output.log: No such file or directory"));

  std::ofstream(base + ".2") << Lines(0, 3);
  std::ofstream(base + ".1") << Lines(3, 5) << "split ";
  std::ofstream(base) << "line\n" << Lines(5, 7) << "partial";
  TaskLogReader reader(base, false);
  absl::StatusOr<std::vector<std::string>> lines = reader.ReadLines(0);
  ASSERT_TRUE(lines.ok()) << lines.status();
  EXPECT_THAT(*lines, ElementsAre("line 0", "line 1", "line 2", "line 3", "line 4", "split line",
                                  "line 5", "line 6"));
  TaskLogReader tail(base, false);
  EXPECT_THAT(*tail.ReadLines(2), ElementsAre("line 5", "line 6"));
  EXPECT_EQ(tail.TakePartial(), "partial");

  // Follow: more output, then a rotation with output on both sides of it.
  std::ofstream(base, std::ios::app) << " done\n";
  EXPECT_THAT(reader.Poll(), ElementsAre("partial done"));
  std::ofstream(base, std::ios::app) << "before\n";
  ASSERT_EQ(RotateLogFiles(base, 3), 0);
  std::ofstream(base + ".1", std::ios::app) << "late\n";  // written before the reopen
  std::ofstream(base) << "after\n";
  EXPECT_THAT(reader.Poll(), ElementsAre("before", "late", "after"));
  EXPECT_THAT(reader.Poll(), IsEmpty());
}

TEST(TaskLogReaderTest, ReadsTheRotatedFilesWhileTheCurrentOneIsMissing) {
  TempDir dir;
  const std::string base = dir.str() + "/output.log";
  std::ofstream(base + ".1") << Lines(0, 2);  // renamed; the writer has not reopened yet
  TaskLogReader reader(base, false);
  EXPECT_THAT(*reader.ReadLines(0), ElementsAre("line 0", "line 1"));
  std::ofstream(base) << "new\n";
  EXPECT_THAT(reader.Poll(), ElementsAre("new"));
}

// The flake of WorkerE2eTest.ChattyTaskStaysUnderItsLogCapAndItsDirectoryGoes: `service logs
// --tail 3` of a task rotating several times a second printed nothing. The set was listed between
// a rotation's removal of the oldest file and its rename (no numbered file on disk), and the
// current file was opened after the rename: the new, empty one.
TEST(TaskLogReaderTest, AListingInsideARotationStillReadsTheRotatedLines) {
  TempDir dir;
  const std::string base = dir.str() + "/output.log";
  std::ofstream(base) << Lines(0, 3);  // `.1` already removed, the rename not done yet
  TaskLogReader reader(base, false);
  bool rotated = false;
  reader.SetBeforeOpenForTest([&](const std::string&) {
    if (rotated) return;
    rotated = true;
    fs::rename(base, base + ".1");
    std::ofstream(base) << "";  // the writer's reopen
  });
  absl::StatusOr<std::vector<std::string>> lines = reader.ReadLines(2);
  ASSERT_TRUE(lines.ok()) << lines.status();
  EXPECT_THAT(*lines, ElementsAre("line 1", "line 2"));
  std::ofstream(base, std::ios::app) << "next\n";
  EXPECT_THAT(reader.Poll(), ElementsAre("next"));
}

// The other half of that window: `.1` opened before the rename, the current file after it and
// before the writer's reopen. Neither open finds a file, yet the task has a log.
TEST(TaskLogReaderTest, BothOpensInsideARotationAreNotNotFound) {
  TempDir dir;
  const std::string base = dir.str() + "/output.log";
  std::ofstream(base) << Lines(0, 3);
  TaskLogReader reader(base, false);
  bool rotated = false;
  reader.SetBeforeOpenForTest([&](const std::string& file) {
    if (rotated || file != base) return;
    rotated = true;
    fs::rename(base, base + ".1");
  });
  absl::StatusOr<std::vector<std::string>> lines = reader.ReadLines(0);
  ASSERT_TRUE(lines.ok()) << lines.status();
  EXPECT_THAT(*lines, ElementsAre("line 0", "line 1", "line 2"));
}

// A writer that rotates without pause can straddle the two opens of read after read (CI saw a
// live task with "no log"): every one of 20 reads opens `.1` before a rotation's rename and the
// current file after it. The reader keeps trying, with a pause that breaks the rhythm.
TEST(TaskLogReaderTest, ManyReadsInARowInsideARotationAreNotNotFound) {
  TempDir dir;
  const std::string base = dir.str() + "/output.log";
  std::ofstream(base) << Lines(0, 2);
  TaskLogReader reader(base, false);
  int straddled = 0;
  int next = 2;
  reader.SetBeforeOpenForTest([&](const std::string& file) {
    if (straddled >= 20) return;
    if (file == base + ".1") {
      // The writer reopened and wrote since the last rename; its next rotation removes `.1`.
      if (!fs::exists(base)) {
        std::ofstream(base) << Lines(next, next + 2);
        next += 2;
      }
      fs::remove(base + ".1");
    } else if (file == base) {
      ++straddled;
      fs::rename(base, base + ".1");
    }
  });
  absl::StatusOr<std::vector<std::string>> lines = reader.ReadLines(0);
  ASSERT_TRUE(lines.ok()) << lines.status();
  EXPECT_EQ(straddled, 20);
  EXPECT_FALSE(lines->empty());
}

// A task whose directory is gone has no log: said at once, without retries.
TEST(TaskLogReaderTest, AMissingDirectoryIsNotFound) {
  TempDir dir;
  TaskLogReader reader(dir.str() + "/gone/output.log", false);
  absl::StatusOr<std::vector<std::string>> lines = reader.ReadLines(0);
  EXPECT_TRUE(absl::IsNotFound(lines.status())) << lines.status();
  EXPECT_NE(lines.status().message().find("No such file"), std::string::npos) << lines.status();
}

// A writer that rotates before every file the reader opens: the reader may miss files, but what
// it returns is in order, never twice, and never nothing.
TEST(TaskLogReaderTest, ARotationBeforeEveryOpenKeepsTheLinesInOrder) {
  TempDir dir;
  const std::string base = dir.str() + "/output.log";
  int next = 0;
  auto write_file = [&](const std::string& path) {
    std::ofstream(path) << Lines(next, next + 2);
    next += 2;
  };
  write_file(base + ".2");
  write_file(base + ".1");
  write_file(base);
  TaskLogReader reader(base, false);
  int rotations = 0;
  reader.SetBeforeOpenForTest([&](const std::string&) {
    ++rotations;
    ASSERT_EQ(RotateLogFiles(base, 3), 0);
    write_file(base);
  });
  absl::StatusOr<std::vector<std::string>> lines = reader.ReadLines(0);
  ASSERT_TRUE(lines.ok()) << lines.status();
  EXPECT_GT(rotations, 0);
  ASSERT_FALSE(lines->empty());
  int last = -1;
  for (const std::string& line : *lines) {
    int n = std::stoi(line.substr(5));
    EXPECT_GT(n, last) << "out of order or twice: " << absl::StrJoin(*lines, ", ");
    last = n;
  }
}

TEST(TaskLogReaderTest, DecodesCriRecordsAcrossFiles) {
  TempDir dir;
  const std::string base = dir.str() + "/container.log";
  std::ofstream(base + ".1") << "2024-01-01T00:00:00Z stdout P hel\n";
  std::ofstream(base) << "2024-01-01T00:00:00Z stdout F lo\n2024-01-01T00:00:01Z stderr F x\n";
  TaskLogReader reader(base, true);
  EXPECT_THAT(*reader.ReadLines(0), ElementsAre("hello", "x"));
}

// Issue 11 item 7: 124 task directories were left after every service was removed.
TEST(TaskDirJanitorTest, RemovesDirectoriesOfGoneTasksAfterTheRetention) {
  TempDir dir;
  FakeClock clock;
  for (const char* id : {"live", "a", "b"}) fs::create_directories(dir.path() / id);
  TaskDirJanitor janitor(dir.str(), {absl::Hours(1), 10}, clock);
  auto live = [] { return std::set<std::string>{"live"}; };
  EXPECT_THAT(janitor.Sweep(live), IsEmpty()) << "just gone: kept for an hour";
  clock.Advance(absl::Minutes(30));
  fs::create_directories(dir.path() / "c");
  EXPECT_THAT(janitor.Sweep(live), IsEmpty());
  clock.Advance(absl::Minutes(30));
  EXPECT_THAT(janitor.Sweep(live), ElementsAre("a", "b"));
  EXPECT_TRUE(fs::exists(dir.path() / "live"));
  EXPECT_TRUE(fs::exists(dir.path() / "c"));
  clock.Advance(absl::Minutes(30));
  EXPECT_THAT(janitor.Sweep(live), ElementsAre("c"));
  clock.Advance(absl::Hours(5));
  EXPECT_THAT(janitor.Sweep(live), IsEmpty());
  EXPECT_TRUE(fs::exists(dir.path() / "live")) << "a live task's directory is never removed";
}

TEST(TaskDirJanitorTest, KeepsAtMostTheNewestGoneDirectories) {
  TempDir dir;
  FakeClock clock;
  TaskDirJanitor janitor(dir.str(), {absl::Hours(1), 2}, clock);
  std::set<std::string> live;
  for (const char* id : {"t1", "t2", "t3", "t4"}) {
    fs::create_directories(dir.path() / id);
    live.insert(id);
  }
  EXPECT_THAT(janitor.Sweep([&] { return live; }), IsEmpty());
  for (const char* id : {"t1", "t2", "t3", "t4"}) {
    live.erase(id);
    clock.Advance(absl::Seconds(1));
    janitor.Sweep([&] { return live; });
  }
  std::set<std::string> left;
  for (const auto& e : fs::directory_iterator(dir.path())) left.insert(e.path().filename());
  EXPECT_EQ(left, (std::set<std::string>{"t3", "t4"}));
}

TEST(RotateContainerLogTest, RotatesPastTheCapAndReopens) {
  TempDir dir;
  const std::string log = dir.str() + "/container.log";
  int reopened = 0;
  auto reopen = [&] {
    reopened++;
    std::ofstream(log, std::ios::app).flush();  // the runtime opens a new file
    return absl::OkStatus();
  };
  std::ofstream(log) << std::string(50, 'x');
  EXPECT_FALSE(RotateContainerLog(log, {100, 2}, reopen));
  std::ofstream(log, std::ios::app) << std::string(50, 'y');
  EXPECT_TRUE(RotateContainerLog(log, {100, 2}, reopen));
  EXPECT_EQ(reopened, 1);
  EXPECT_EQ(fs::file_size(log + ".1"), 100u);
  EXPECT_EQ(fs::file_size(log), 0u);
  // A reopen that failed leaves no current file: it is asked again.
  fs::remove(log);
  EXPECT_FALSE(RotateContainerLog(log, {100, 2}, [&] {
    reopened++;
    return absl::UnavailableError("busy");
  }));
  EXPECT_EQ(reopened, 2);
}

TEST(WorkerFlagsTest, TaskFileLimitsAreValidated) {
  struct Case {
    std::vector<std::string> args;
    std::string want;
  };
  for (const Case& c : std::vector<Case>{
           {{"warren", "worker", "--log-max-size", "lots"}, "--log-max-size: invalid size"},
           {{"warren", "worker", "--log-max-size", "1K"}, "--log-max-size: must be at least 4K"},
           {{"warren", "cluster", "init", "--log-max-files", "0"}, "--log-max-files: must be"},
           {{"warren", "worker", "--task-dir-retention", "soon"}, "--task-dir-retention: invalid"},
           {{"warren", "worker", "--task-dirs-kept", "-1"}, "--task-dirs-kept: must be 0 or more"},
       }) {
    std::ostringstream out, err;
    EXPECT_EQ(RunCli(c.args, out, err), 2) << c.want;
    EXPECT_THAT(err.str(), HasSubstr(c.want));
  }
  std::ostringstream out, err;
  EXPECT_EQ(RunCli({"warren", "worker", "--help"}, out, err), 0);
  EXPECT_THAT(out.str(), HasSubstr("--log-max-size"));
  EXPECT_THAT(out.str(), HasSubstr("--task-dir-retention"));
}

}  // namespace
}  // namespace warren
