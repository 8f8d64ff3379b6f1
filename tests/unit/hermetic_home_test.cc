// Keeps the machine's CLI settings out of the unit tests. A cluster started on this machine with
// the defaults writes its admin bundle to ~/.warren/current, and every in-process CLI call of a
// test would then present that certificate to the test's own (plaintext) manager and fail. So
// each test process gets a HOME of its own, empty, removed at exit, and no WARREN_TLS_DIR.
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "gtest/gtest.h"
#include "security/client_bundle.h"

namespace warren {
namespace {

std::string& HermeticHome() {
  static std::string home;
  return home;
}

const bool kHermeticHome = [] {
  char dir[] = "/tmp/warren-unit-home-XXXXXX";
  if (mkdtemp(dir) == nullptr) return false;
  HermeticHome() = dir;
  setenv("HOME", dir, 1);
  unsetenv("WARREN_TLS_DIR");
  std::atexit([] {
    std::error_code ec;
    std::filesystem::remove_all(HermeticHome(), ec);
  });
  return true;
}();

TEST(HermeticHomeTest, TheCliFindsNoBundleOfTheMachine) {
  ASSERT_TRUE(kHermeticHome);
  EXPECT_EQ(std::getenv("HOME"), HermeticHome());
  EXPECT_EQ(std::getenv("WARREN_TLS_DIR"), nullptr);
  EXPECT_EQ(security::ChooseBundleDir(""), "");
}

}  // namespace
}  // namespace warren
