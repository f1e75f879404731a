#include "filters/common/policy/token_bucket.h"

#include <gtest/gtest.h>

namespace evmesh::policy {
namespace {

constexpr uint64_t kSec = 1000000000ull;

TEST(TokenBucket, UnlimitedNeverWaits) {
  TokenBucket b;
  EXPECT_TRUE(b.unlimited());
  EXPECT_EQ(b.take(1000000, 0), 0u);
}

TEST(TokenBucket, BurstThenRate) {
  TokenBucket b(10, 5, 0);  // 10/s, burst 5
  for (int i = 0; i < 5; ++i) EXPECT_EQ(b.take(1, 0), 0u) << i;
  const uint64_t w = b.take(1, 0);  // 1 token in debt: 0.1 s
  EXPECT_NEAR(static_cast<double>(w), 0.1 * kSec, 1000.0);
  EXPECT_GT(b.wait_ns(kSec / 20), 0u);
  EXPECT_EQ(b.wait_ns(kSec / 10 + 1), 0u);
  // Refill is capped at the burst.
  EXPECT_EQ(b.take(5, 100 * kSec), 0u);
  EXPECT_GT(b.take(1, 100 * kSec), 0u);
}

TEST(TokenBucket, LargeItemGoesIntoDebt) {
  TokenBucket b(1000, 0, 0);  // 1000 bytes/s, burst = rate
  EXPECT_EQ(b.take(1000, 0), 0u);
  const uint64_t w = b.take(3000, 0);  // 3 s of debt
  EXPECT_NEAR(static_cast<double>(w), 3.0 * kSec, 1000.0);
  EXPECT_EQ(b.wait_ns(3 * kSec + 1), 0u);
}

TEST(TokenBucket, TimeGoingBackwardsIsIgnored) {
  TokenBucket b(1, 1, 10 * kSec);
  EXPECT_EQ(b.take(1, 10 * kSec), 0u);
  EXPECT_GT(b.take(1, 5 * kSec), 0u);
}

}  // namespace
}  // namespace evmesh::policy
