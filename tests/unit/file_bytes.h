#ifndef WARREN_TESTS_UNIT_FILE_BYTES_H_
#define WARREN_TESTS_UNIT_FILE_BYTES_H_

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace warren::testing_util {

// Every byte of the files directly under `dir` (a store's database, journal and WAL files): what
// a test greps to prove a value was never written in the clear.
inline std::string BytesUnder(const std::filesystem::path& dir) {
  std::string all;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(e.path(), std::ios::binary);
    all.append(std::istreambuf_iterator<char>(in), {});
  }
  return all;
}

}  // namespace warren::testing_util

#endif  // WARREN_TESTS_UNIT_FILE_BYTES_H_
