// The socket-free pieces of HTTPRoute retries and mirrors (agent/proxy/retry_policy): which outcomes are retried, the
// jittered exponential backoff, the per-worker retry budget, mirror sampling and the shadow Host.
#include "agent/proxy/retry_policy.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

namespace zm::proxy {
namespace {

using std::chrono::milliseconds;

agent::HttpRetryPolicy Policy(uint32_t attempts, std::vector<uint16_t> codes) {
  agent::HttpRetryPolicy p;
  p.attempts = attempts;
  p.codes = std::move(codes);
  return p;
}

TEST(RetryPolicy, ListedCodesConnectFailuresAndTimeoutsAreRetryable) {
  auto p = Policy(2, {503, 504});
  EXPECT_TRUE(IsRetryable(p, TryOutcome::kStatus, 503));
  EXPECT_TRUE(IsRetryable(p, TryOutcome::kStatus, 504));
  EXPECT_FALSE(IsRetryable(p, TryOutcome::kStatus, 500));  // not listed
  EXPECT_FALSE(IsRetryable(p, TryOutcome::kStatus, 200));
  EXPECT_TRUE(IsRetryable(p, TryOutcome::kConnectFailed, 0));
  EXPECT_TRUE(IsRetryable(p, TryOutcome::kTimeout, 0));
  // A rule with no codes still retries what never produced a response.
  auto no_codes = Policy(1, {});
  EXPECT_FALSE(IsRetryable(no_codes, TryOutcome::kStatus, 503));
  EXPECT_TRUE(IsRetryable(no_codes, TryOutcome::kConnectFailed, 0));
  // attempts 0 (or no retry stanza at all): nothing is retried.
  auto none = Policy(0, {503});
  EXPECT_FALSE(IsRetryable(none, TryOutcome::kStatus, 503));
  EXPECT_FALSE(IsRetryable(none, TryOutcome::kConnectFailed, 0));
  EXPECT_FALSE(IsRetryable(agent::HttpRetryPolicy{}, TryOutcome::kTimeout, 0));
}

TEST(RetryBackoff, CeilingDoublesFromTheBaseAndIsCapped) {
  EXPECT_EQ(RetryBackoff::Ceiling(1, milliseconds(0)), RetryBackoff::kDefaultBackoffBase);  // 0: the default 25 ms
  EXPECT_EQ(RetryBackoff::Ceiling(1, milliseconds(25)), milliseconds(25));
  EXPECT_EQ(RetryBackoff::Ceiling(2, milliseconds(25)), milliseconds(50));
  EXPECT_EQ(RetryBackoff::Ceiling(3, milliseconds(25)), milliseconds(100));
  EXPECT_EQ(RetryBackoff::Ceiling(4, milliseconds(25)), milliseconds(200));
  EXPECT_EQ(RetryBackoff::Ceiling(5, milliseconds(25)), milliseconds(250));   // capped at 10x the base
  EXPECT_EQ(RetryBackoff::Ceiling(60, milliseconds(25)), milliseconds(250));  // no overflow however many
  EXPECT_EQ(RetryBackoff::Ceiling(2, milliseconds(100)), milliseconds(200));
}

TEST(RetryBackoff, DelaysAreJitteredUnderTheCeiling) {
  RetryBackoff b(42);
  for (uint32_t retry = 1; retry <= 6; ++retry) {
    std::set<int64_t> seen;
    int64_t sum = 0;
    const int n = 2000;
    for (int i = 0; i < n; ++i) {
      auto d = b.Next(retry, milliseconds(25));
      ASSERT_GE(d.count(), 0);
      ASSERT_LE(d, RetryBackoff::Ceiling(retry, milliseconds(25)));
      seen.insert(d.count());
      sum += d.count();
    }
    // Full jitter: many distinct values, averaging about half the ceiling (no herd retrying in lockstep).
    const double mean = static_cast<double>(sum) / n;
    const double half = static_cast<double>(RetryBackoff::Ceiling(retry, milliseconds(25)).count()) / 2;
    EXPECT_GT(seen.size(), 20u) << "retry " << retry;
    EXPECT_NEAR(mean, half, half * 0.15) << "retry " << retry;
  }
}

TEST(RetryBudget, AFloorOfConcurrentRetriesOnAQuietWorker) {
  RetryBudget b;  // 20 %, at least 3
  b.RequestStarted();
  EXPECT_TRUE(b.TryAcquire());
  EXPECT_TRUE(b.TryAcquire());
  EXPECT_TRUE(b.TryAcquire());
  EXPECT_FALSE(b.TryAcquire());  // 1 request in flight: 20 % is 0, the floor of 3 holds
  EXPECT_EQ(b.exhausted(), 1u);
  b.Release();
  EXPECT_TRUE(b.TryAcquire());  // a slot came back
}

TEST(RetryBudget, RetriesStayUnderAShareOfTheRequestsInFlight) {
  RetryBudget b(20, 3);
  for (int i = 0; i < 100; ++i) b.RequestStarted();
  int granted = 0;
  for (int i = 0; i < 100; ++i) granted += b.TryAcquire() ? 1 : 0;
  // An outage where every request fails: 20 of 100 may retry at once, not 100 (no amplification).
  EXPECT_EQ(granted, 20);
  EXPECT_EQ(b.active_retries(), 20u);
  EXPECT_EQ(b.exhausted(), 80u);
  // Requests ending shrink the budget: with 50 in flight the 20 retries already held exceed 20 % of them.
  for (int i = 0; i < 50; ++i) b.RequestEnded();
  EXPECT_FALSE(b.TryAcquire());
  for (int i = 0; i < 11; ++i) b.Release();  // 9 retries left, 50 requests: 10 allowed
  EXPECT_TRUE(b.TryAcquire());
  EXPECT_FALSE(b.TryAcquire());
}

TEST(RetryBudget, NeverUnderflows) {
  RetryBudget b;
  b.RequestEnded();
  b.Release();
  EXPECT_EQ(b.active_requests(), 0u);
  EXPECT_EQ(b.active_retries(), 0u);
}

TEST(RequestMirror, SamplesThePercentOfRequests) {
  EXPECT_FALSE(MirrorSampled(0, 0));
  EXPECT_TRUE(MirrorSampled(100, 12345));
  std::minstd_rand rng(7);
  std::map<uint32_t, int> hits;
  for (uint32_t pct : {1u, 25u, 50u, 90u}) {
    for (int i = 0; i < 20000; ++i) hits[pct] += MirrorSampled(pct, static_cast<uint32_t>(rng())) ? 1 : 0;
    EXPECT_NEAR(hits[pct] / 20000.0, pct / 100.0, 0.015) << pct << "%";
  }
}

TEST(RequestMirror, ShadowHostGoesBeforeThePort) {
  EXPECT_EQ(ShadowHost("web"), "web-shadow");
  EXPECT_EQ(ShadowHost("web.shop.svc:8080"), "web.shop.svc-shadow:8080");
  EXPECT_EQ(ShadowHost("10.96.0.30:80"), "10.96.0.30-shadow:80");
  EXPECT_EQ(ShadowHost("[fd00::1]:80"), "[fd00::1]-shadow:80");
  EXPECT_EQ(ShadowHost("[fd00::1]"), "[fd00::1]-shadow");
}

}  // namespace
}  // namespace zm::proxy
