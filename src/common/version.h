#ifndef WARREN_COMMON_VERSION_H_
#define WARREN_COMMON_VERSION_H_

#include <string_view>

namespace warren {

// This build's version: the project version in CMakeLists.txt, the one place it is set
// (version.cc.in is configured from it).
std::string_view WarrenVersion();

}  // namespace warren

#endif  // WARREN_COMMON_VERSION_H_
