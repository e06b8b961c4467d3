// The agent's statistics as a test reads them.
#pragma once

#include <gtest/gtest.h>
#include <otelagent/otelagent.h>

namespace otelagent_test {

inline otelagent_stats stats() {
  otelagent_stats s{};
  s.struct_size = sizeof s;
  EXPECT_EQ(otelagent_stats_get(&s), OTELAGENT_OK);
  return s;
}

}  // namespace otelagent_test
