#ifndef WARREN_COMMON_IDS_H_
#define WARREN_COMMON_IDS_H_

#include <string>

namespace warren {

// A random 12-character lower-case hex id (48 bits).
std::string NewId();

}  // namespace warren

#endif  // WARREN_COMMON_IDS_H_
