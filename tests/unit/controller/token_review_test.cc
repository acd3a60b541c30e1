// TokenReviewer's defences against a flood of bogus bearer tokens, with a fake API server (SendReview): the audience
// check, separate LRUs for accepted and rejected verdicts, the per-peer rate limit on cache misses, the bound on
// concurrent reviews and the sharing of one review among identical tokens.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "controller/auth/token_review.h"

namespace zm::ctrl {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
constexpr const char* kAgent = "system:serviceaccount:zeromesh-system:zeromesh-agent";

json Authenticated(json audiences, const std::string& pod = "agent-x") {
  json extra = {{"authentication.kubernetes.io/pod-name", {pod}}, {"authentication.kubernetes.io/pod-uid", {"u1"}}};
  json status = {{"authenticated", true}, {"user", {{"username", kAgent}, {"extra", extra}}}};
  if (!audiences.is_null()) status["audiences"] = std::move(audiences);
  return {{"kind", "TokenReview"}, {"status", status}};
}

TEST(TokenReviewAudience, TheReviewedAudiencesMustIncludeOurs) {
  TokenReviewOptions opts;  // audience "zeromesh"
  ReviewedToken t;
  auto st = ParseTokenReview(Authenticated(json::array({"zeromesh"})), opts, &t);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(t.pod_name, "agent-x");
  EXPECT_TRUE(ParseTokenReview(Authenticated(json::array({"other", "zeromesh"})), opts, &t).ok());

  st = ParseTokenReview(Authenticated(json::array({"https://kubernetes.default.svc.cluster.local"})), opts, &t);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(st.error_message().find("not meant for audience 'zeromesh'"), std::string::npos) << st.error_message();
  EXPECT_NE(st.error_message().find("kubernetes.default.svc"), std::string::npos) << st.error_message();

  // No audiences in the answer: the server did not check ours, so the token is not accepted.
  for (const json& none : {json(), json::array(), json("zeromesh"), json::array({42})}) {
    st = ParseTokenReview(Authenticated(none), opts, &t);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << none.dump();
  }
  st = ParseTokenReview(Authenticated(json()), opts, &t);
  EXPECT_NE(st.error_message().find("lists no audiences"), std::string::npos) << st.error_message();
}

TEST(PeerAddress, TheAddressWithoutThePort) {
  EXPECT_EQ(PeerAddress("ipv4:10.0.0.1:5555"), "10.0.0.1");
  EXPECT_EQ(PeerAddress("ipv6:[::1]:5555"), "::1");
  EXPECT_EQ(PeerAddress("ipv6:%5Bfd00::1%5D:40000"), "fd00::1");
  EXPECT_EQ(PeerAddress("ipv6:%5Bfe80::1%25eth0%5D:1"), "fe80::1%eth0");
  EXPECT_EQ(PeerAddress("unix:/run/zm.sock"), "unix:/run/zm.sock");
  EXPECT_EQ(PeerAddress(""), "");
}

TEST(PeerRateLimiter, BurstThenRatePerPeerWithBoundedPeers) {
  using Clock = PeerRateLimiter::Clock;
  PeerRateLimiter limiter(5, 10, 2);
  const auto t0 = Clock::now();
  for (int i = 0; i < 10; i++) EXPECT_TRUE(limiter.Allow("a", t0)) << i;
  EXPECT_FALSE(limiter.Allow("a", t0));
  EXPECT_TRUE(limiter.Allow("b", t0));  // another peer has its own bucket
  // One second refills 5 tokens, no more.
  for (int i = 0; i < 5; i++) EXPECT_TRUE(limiter.Allow("a", t0 + 1s)) << i;
  EXPECT_FALSE(limiter.Allow("a", t0 + 1s));
  // A long pause refills only up to the burst.
  for (int i = 0; i < 10; i++) EXPECT_TRUE(limiter.Allow("a", t0 + 100s)) << i;
  EXPECT_FALSE(limiter.Allow("a", t0 + 100s));
  // At most two peers are remembered: a third evicts the least recently used ("b"), never growing the map.
  EXPECT_TRUE(limiter.Allow("c", t0 + 100s));
  EXPECT_EQ(limiter.peers(), 2u);
  EXPECT_FALSE(limiter.Allow("a", t0 + 100s));  // "a" was kept, still empty
}

// A scripted API server: "good-*" tokens are agent tokens with our audience, "fail-*" get HTTP 500, anything else is
// rejected. Optionally holds every review until released.
class FakeApi {
 public:
  k8s::HttpResponse Send(const std::string& body) {
    std::string token = json::parse(body)["spec"]["token"];
    std::unique_lock<std::mutex> lock(mu_);
    sent_++;
    in_flight_++;
    max_in_flight_ = std::max(max_in_flight_, in_flight_);
    cv_.notify_all();
    cv_.wait(lock, [&] { return !hold_; });
    in_flight_--;
    if (token.starts_with("fail-")) return {500, "{}", ""};
    json status = token.starts_with("good-") ? Authenticated(json::array({"zeromesh"}), token)
                                             : json{{"status", {{"authenticated", false}, {"error", "invalid"}}}};
    return {201, status.dump(), ""};
  }
  TokenReviewer::SendReview Sender() {
    return [this](const std::string& body, int) { return Send(body); };
  }
  void Hold() {
    std::lock_guard<std::mutex> lock(mu_);
    hold_ = true;
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    hold_ = false;
    cv_.notify_all();
  }
  void WaitInFlight(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    ASSERT_TRUE(cv_.wait_for(lock, 10s, [&] { return in_flight_ == n; })) << in_flight_;
  }
  int sent() {
    std::lock_guard<std::mutex> lock(mu_);
    return sent_;
  }
  int max_in_flight() {
    std::lock_guard<std::mutex> lock(mu_);
    return max_in_flight_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool hold_ = false;
  int sent_ = 0, in_flight_ = 0, max_in_flight_ = 0;
};

// Every pod exists, on node "n-<pod name>".
std::optional<json> AnyPod(const std::string&, const std::string& name) {
  return json{{"metadata", {{"uid", "u1"}}}, {"spec", {{"nodeName", "n-" + name}}}};
}

struct Counts {
  std::atomic<int> accepted{0}, rejected{0}, errors{0}, rate_limited{0}, busy{0};
  TokenReviewer::Observer Observer() {
    return {[this](TokenReviewer::Result r) {
              (r == TokenReviewer::Result::kAccepted   ? accepted
               : r == TokenReviewer::Result::kRejected ? rejected
                                                       : errors)++;
            },
            [this](TokenReviewer::Throttle t) { (t == TokenReviewer::Throttle::kBusy ? busy : rate_limited)++; }};
  }
};

TEST(TokenReviewer, AFloodOfRejectedTokensNeverEvictsAcceptedOnes) {
  FakeApi api;
  Counts counts;
  TokenReviewOptions opts;
  opts.max_accepted_entries = 4;
  opts.max_rejected_entries = 4;
  opts.peer_rate = 1e6;  // not what this test is about
  opts.peer_burst = 1e6;
  TokenReviewer reviewer(api.Sender(), opts, AnyPod, counts.Observer());
  std::string node;
  for (const char* t : {"good-1", "good-2", "good-3"}) {
    ASSERT_TRUE(reviewer.NodeFor(t, "10.0.0.1", &node).ok()) << t;
    EXPECT_EQ(node, std::string("n-") + t);
  }
  for (int i = 0; i < 100; i++) {
    auto st = reviewer.NodeFor("bogus-" + std::to_string(i), "10.0.0.9", &node);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  EXPECT_EQ(api.sent(), 103);
  // The accepted tokens are all still cached: no API call.
  for (const char* t : {"good-1", "good-2", "good-3"}) EXPECT_TRUE(reviewer.NodeFor(t, "10.0.0.1", &node).ok()) << t;
  EXPECT_EQ(api.sent(), 103);
  // The rejected LRU is bounded: the newest bogus tokens are cached, the oldest were evicted and cost a new review.
  EXPECT_FALSE(reviewer.NodeFor("bogus-99", "10.0.0.9", &node).ok());
  EXPECT_EQ(api.sent(), 103);
  EXPECT_FALSE(reviewer.NodeFor("bogus-0", "10.0.0.9", &node).ok());
  EXPECT_EQ(api.sent(), 104);
  EXPECT_EQ(counts.accepted, 3);
  EXPECT_EQ(counts.rejected, 101);
}

TEST(TokenReviewer, NewTokensAreRateLimitedPerPeerCacheHitsNever) {
  FakeApi api;
  Counts counts;
  TokenReviewOptions opts;
  opts.peer_rate = 0.001;  // effectively no refill during the test
  opts.peer_burst = 3;
  TokenReviewer reviewer(api.Sender(), opts, AnyPod, counts.Observer());
  std::string node;
  ASSERT_TRUE(reviewer.NodeFor("good-1", "10.0.0.1", &node).ok());  // 1 of 3
  EXPECT_FALSE(reviewer.NodeFor("bogus-1", "10.0.0.1", &node).ok());
  EXPECT_FALSE(reviewer.NodeFor("bogus-2", "10.0.0.1", &node).ok());
  auto st = reviewer.NodeFor("bogus-3", "10.0.0.1", &node);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(st.error_message().find("too many new tokens from 10.0.0.1"), std::string::npos) << st.error_message();
  EXPECT_EQ(api.sent(), 3);
  EXPECT_EQ(counts.rate_limited, 1);
  // Cached verdicts are still answered for the throttled peer, accepted and rejected alike.
  EXPECT_TRUE(reviewer.NodeFor("good-1", "10.0.0.1", &node).ok());
  EXPECT_EQ(reviewer.NodeFor("bogus-1", "10.0.0.1", &node).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  // Another address is not affected.
  EXPECT_TRUE(reviewer.NodeFor("good-2", "10.0.0.2", &node).ok());
  EXPECT_EQ(api.sent(), 4);
}

TEST(TokenReviewer, AnExpiredAcceptedTokenIsReReviewedEvenWhenItsPeerIsThrottled) {
  FakeApi api;
  TokenReviewOptions opts;
  opts.cache_ttl = 0s;  // every accepted verdict is stale at once
  opts.peer_rate = 0.001;
  opts.peer_burst = 1;
  TokenReviewer reviewer(api.Sender(), opts, AnyPod);
  std::string node;
  ASSERT_TRUE(reviewer.NodeFor("good-1", "10.0.0.1", &node).ok());
  EXPECT_EQ(reviewer.NodeFor("bogus-1", "10.0.0.1", &node).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  // A real agent sharing the address with the flood re-authenticates (a new review, not rate limited).
  ASSERT_TRUE(reviewer.NodeFor("good-1", "10.0.0.1", &node).ok());
  EXPECT_EQ(api.sent(), 2);
}

TEST(TokenReviewer, BoundedConcurrencyAndOneReviewPerToken) {
  FakeApi api;
  Counts counts;
  TokenReviewOptions opts;
  opts.max_in_flight = 2;
  opts.slot_wait = 300ms;
  opts.peer_burst = 100;
  TokenReviewer reviewer(api.Sender(), opts, AnyPod, counts.Observer());
  api.Hold();
  // "fail-*" answers are errors, never cached: a caller that did not share the in-flight review would send another.
  std::vector<std::thread> threads;
  std::vector<grpc::Status> results(8);
  for (int i = 0; i < 2; i++) {
    threads.emplace_back([&, i] {
      std::string node;
      results[i] = reviewer.NodeFor("fail-" + std::to_string(i), "10.0.0.1", &node);
    });
  }
  api.WaitInFlight(2);
  // Both slots are taken: a third token waits slot_wait, then is told to retry.
  std::string node;
  auto start = std::chrono::steady_clock::now();
  auto busy = reviewer.NodeFor("good-3", "10.0.0.1", &node);
  EXPECT_EQ(busy.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(busy.error_message().find("too many token reviews in flight"), std::string::npos) << busy.error_message();
  EXPECT_GE(std::chrono::steady_clock::now() - start, 300ms);
  EXPECT_EQ(counts.busy, 1);
  // Six more callers with the token already in flight join that review.
  for (int i = 2; i < 8; i++) {
    threads.emplace_back([&, i] {
      std::string n;
      results[i] = reviewer.NodeFor("fail-0", "10.0.0." + std::to_string(i), &n);
    });
  }
  for (int i = 0; i < 1000 && reviewer.waiters() < 6; i++) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(reviewer.waiters(), 6u);
  api.Release();
  for (auto& t : threads) t.join();
  EXPECT_EQ(api.sent(), 2);
  EXPECT_EQ(api.max_in_flight(), 2);
  EXPECT_EQ(counts.errors, 2);
  for (int i = 0; i < 8; i++) {
    EXPECT_EQ(results[i].error_code(), grpc::StatusCode::UNAVAILABLE) << i;
    EXPECT_NE(results[i].error_message().find("HTTP 500"), std::string::npos) << i << results[i].error_message();
  }
  // Once a slot is free the token that was turned away goes through.
  EXPECT_TRUE(reviewer.NodeFor("good-3", "10.0.0.1", &node).ok());
}

}  // namespace
}  // namespace zm::ctrl
