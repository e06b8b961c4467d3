#include "export/retry_policy.h"

#include <gtest/gtest.h>

namespace otelagent {
namespace {

Outcome status(long s) {
  Outcome o;
  o.http_status = s;
  return o;
}

TEST(RetryPolicy, Classification) {
  EXPECT_EQ(classify(status(200), false), Verdict::kSuccess);
  EXPECT_EQ(classify(status(202), false), Verdict::kSuccess);
  for (long s : {429L, 502L, 503L, 504L})
    EXPECT_EQ(classify(status(s), false), Verdict::kRetry) << s;
  for (long s : {400L, 401L, 403L, 404L, 413L, 415L, 500L, 501L})
    EXPECT_EQ(classify(status(s), false), Verdict::kDrop) << s;
  Outcome down;
  down.transport_error = true;
  EXPECT_EQ(classify(down, false), Verdict::kRetry);
  Outcome rejected = status(400);
  rejected.encoding_rejected = true;
  EXPECT_EQ(classify(rejected, true), Verdict::kFallbackGzip);
  EXPECT_EQ(classify(rejected, false), Verdict::kDrop);  // not ours to fix
}

TEST(RetryPolicy, BackoffGrowsIsCappedAndJittered) {
  // The jitter factor spans [0.5, 1.5).
  EXPECT_EQ(backoff_ms(1, 1000, 30000, 0.0, -1), 500u);
  EXPECT_EQ(backoff_ms(1, 1000, 30000, 0.5, -1), 1000u);
  EXPECT_EQ(backoff_ms(2, 1000, 30000, 0.5, -1), 1500u);
  EXPECT_EQ(backoff_ms(3, 1000, 30000, 0.5, -1), 2250u);
  EXPECT_EQ(backoff_ms(40, 1000, 30000, 0.5, -1), 30000u);
  EXPECT_LT(backoff_ms(40, 1000, 30000, 0.999, -1), 45000u);
  // Retry-After is a lower bound.
  EXPECT_EQ(backoff_ms(1, 1000, 30000, 0.0, 7000), 7000u);
  EXPECT_EQ(backoff_ms(1, 1000, 30000, 0.5, 10), 1000u);
}

TEST(RetryPolicy, RetryAfterParsing) {
  EXPECT_EQ(parse_retry_after("3", 0), 3000);
  EXPECT_EQ(parse_retry_after(" 0 \r\n", 0), 0);
  EXPECT_EQ(parse_retry_after("soon", 0), -1);
  EXPECT_EQ(parse_retry_after("", 0), -1);
  EXPECT_EQ(parse_retry_after("-1", 0), -1);
  // Sun, 06 Nov 1994 08:49:37 GMT is 784111777.
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111770), 7000);
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111999), 0);  // in the past
}

}  // namespace
}  // namespace otelagent
