#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <set>

#include "core/ids.h"
#include "core/record.h"
#include "host/sampler.h"

namespace otelagent {
namespace {

TEST(Ids, NonZeroAndDistinct) {
  IdGenerator g;
  g.seed();
  std::set<std::string> seen;
  for (int i = 0; i < 100000; ++i) {
    uint8_t t[16], s[8];
    g.trace_id(t, 0);
    g.span_id(s);
    EXPECT_FALSE(all_zero(t, 16));
    EXPECT_FALSE(all_zero(s, 8));
    seen.insert(std::string(reinterpret_cast<char *>(t), 16));
  }
  EXPECT_EQ(seen.size(), 100000u);
}

TEST(Ids, XRayTraceIdsStartWithEpochSeconds) {
  IdGenerator g;
  g.seed();
  uint8_t t[16];
  g.trace_id(t, 0x5759e988u);
  EXPECT_EQ(t[0], 0x57);
  EXPECT_EQ(t[1], 0x59);
  EXPECT_EQ(t[2], 0xe9);
  EXPECT_EQ(t[3], 0x88);
}

TEST(Ids, ReseededGeneratorsDiverge) {
  // What the fork handler does: a re-seed gives a stream unrelated to the one
  // the parent continues with. Checked across a real fork.
  IdGenerator g;
  g.seed();
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    IdGenerator child = g;
    child.seed();
    uint64_t v = child.next();
    ssize_t w = write(fds[1], &v, sizeof v);
    _exit(w == sizeof v ? 0 : 1);
  }
  uint64_t parent_next = g.next(), child_next = 0;
  ASSERT_EQ(read(fds[0], &child_next, sizeof child_next), static_cast<ssize_t>(sizeof child_next));
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_NE(parent_next, child_next);
}

Runtime runtime_with(SamplerKind k, double ratio) {
  Runtime rt;
  rt.cfg.sampler = k;
  rt.cfg.sampler_ratio = ratio;
  sampler_prepare(&rt);
  return rt;
}

TEST(Sampling, RatioSamplesTheExpectedFraction) {
  Runtime rt = runtime_with(SamplerKind::kRatio, 0.25);
  IdGenerator g;
  g.seed();
  int sampled = 0;
  constexpr int kN = 200000;
  for (int i = 0; i < kN; ++i) {
    uint8_t t[16];
    g.trace_id(t, 0);
    sampled += should_sample(rt, nullptr, t);
  }
  EXPECT_NEAR(static_cast<double>(sampled) / kN, 0.25, 0.01);
}

TEST(Sampling, RatioDecisionUsesTheLow64BitsLikeTheSdks) {
  Runtime rt = runtime_with(SamplerKind::kRatio, 0.5);
  uint8_t low[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                     0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  uint8_t high[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_TRUE(should_sample(rt, nullptr, low));
  EXPECT_FALSE(should_sample(rt, nullptr, high));
  Runtime none = runtime_with(SamplerKind::kRatio, 0.0);
  EXPECT_FALSE(should_sample(none, nullptr, low));
}

TEST(Sampling, ParentBasedFollowsTheParent) {
  uint8_t t[16] = {1};
  otelagent_span_context sampled{}, unsampled{};
  sampled.trace_flags = 1;
  for (SamplerKind k :
       {SamplerKind::kParentAlwaysOn, SamplerKind::kParentAlwaysOff, SamplerKind::kParentRatio}) {
    Runtime rt = runtime_with(k, 0.0);
    EXPECT_TRUE(should_sample(rt, &sampled, t));
    EXPECT_FALSE(should_sample(rt, &unsampled, t));
  }
  EXPECT_TRUE(should_sample(runtime_with(SamplerKind::kParentAlwaysOn, 1), nullptr, t));
  EXPECT_FALSE(should_sample(runtime_with(SamplerKind::kParentAlwaysOff, 1), nullptr, t));
  EXPECT_FALSE(should_sample(runtime_with(SamplerKind::kAlwaysOff, 1), &sampled, t));
  EXPECT_TRUE(should_sample(runtime_with(SamplerKind::kAlwaysOn, 1), &unsampled, t));
}

}  // namespace
}  // namespace otelagent
