// Leader election's pure parts: durations and their validation, the Lease's MicroTime format, the record <-> JSON
// mapping, the standby's expiry arithmetic, the defaults, and mesh-controller's --leader-elect* flags. The election
// itself runs against a real kube-apiserver in tests/k8s/test_k8s_leader.py.
#include "controller/k8s/leader_election.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

#include "controller/flags.h"

namespace zm::k8s {
namespace {
using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;
using std::chrono::system_clock;

TEST(LeaderDuration, Parses) {
  EXPECT_EQ(ParseLeaderDuration("15s"), milliseconds(15000));
  EXPECT_EQ(ParseLeaderDuration("500ms"), milliseconds(500));
  EXPECT_EQ(ParseLeaderDuration("1m30s"), milliseconds(90000));
  EXPECT_EQ(ParseLeaderDuration("1.5s"), milliseconds(1500));
  EXPECT_EQ(ParseLeaderDuration("1h"), milliseconds(3600000));
  for (const char* bad : {"", "15", "s", "abc", "-1s", "0s", "1.2.3s", "10x", "1s ", "25h"}) {
    EXPECT_FALSE(ParseLeaderDuration(bad)) << bad;
  }
}

LeaderElectionConfig Config(int lease_ms, int renew_ms, int retry_ms) {
  LeaderElectionConfig c;
  c.lease_namespace = "zeromesh-system";
  c.identity = "me";
  c.lease_duration = milliseconds(lease_ms);
  c.renew_deadline = milliseconds(renew_ms);
  c.retry_period = milliseconds(retry_ms);
  return c;
}

TEST(LeaderValidation, AcceptsTheDefaultsAndTheTestTimings) {
  std::string error;
  EXPECT_TRUE(ValidateLeaderElection(Config(15000, 10000, 2000), &error)) << error;
  EXPECT_TRUE(ValidateLeaderElection(Config(4000, 3000, 1000), &error)) << error;
  EXPECT_TRUE(ValidateLeaderElection(Config(2000, 1500, 500), &error)) << error;
}

TEST(LeaderValidation, RefusesBadOrders) {
  std::string error;
  EXPECT_FALSE(ValidateLeaderElection(Config(15000, 2000, 2000), &error));
  EXPECT_NE(error.find("--leader-elect-retry-period (2s) must be shorter than --leader-elect-renew-deadline (2s)"),
            std::string::npos)
      << error;
  EXPECT_FALSE(ValidateLeaderElection(Config(15000, 15000, 2000), &error));
  EXPECT_NE(error.find("--leader-elect-renew-deadline (15s) must be shorter than --leader-elect-lease-duration"),
            std::string::npos)
      << error;
  EXPECT_FALSE(ValidateLeaderElection(Config(15000, 14000, 2000), &error));  // 14 + 2 > 15
  EXPECT_NE(error.find("must not exceed --leader-elect-lease-duration (15s)"), std::string::npos) << error;
  EXPECT_FALSE(ValidateLeaderElection(Config(4500, 3000, 1000), &error));
  EXPECT_NE(error.find("whole seconds"), std::string::npos) << error;
  EXPECT_FALSE(ValidateLeaderElection(Config(15000, 10000, 0), &error));
  auto c = Config(15000, 10000, 2000);
  c.identity = "";
  EXPECT_FALSE(ValidateLeaderElection(c, &error));
}

TEST(MicroTime, FormatsAndParses) {
  auto t = system_clock::time_point(std::chrono::microseconds(1767323045123456LL));  // 2026-01-02T03:04:05.123456Z
  EXPECT_EQ(FormatMicroTime(t), "2026-01-02T03:04:05.123456Z");
  EXPECT_EQ(ParseMicroTime("2026-01-02T03:04:05.123456Z"), t);
  EXPECT_EQ(ParseMicroTime(FormatMicroTime(t)), t);
  auto whole = system_clock::time_point(seconds(1767323045));
  EXPECT_EQ(ParseMicroTime("2026-01-02T03:04:05Z"), whole);
  EXPECT_EQ(ParseMicroTime("2026-01-02T05:04:05+02:00"), whole);
  EXPECT_EQ(ParseMicroTime("2026-01-01T22:04:05.5-05:00"), whole + milliseconds(500));
  EXPECT_EQ(FormatMicroTime(whole), "2026-01-02T03:04:05.000000Z");
  for (const char* bad : {"", "2026-01-02", "2026-01-02T03:04:05", "2026-13-02T03:04:05Z", "2026-01-02T03:04:05.Z",
                          "2026-01-02T03:04:05Zx", "2026-01-02 03:04:05Z"}) {
    EXPECT_FALSE(ParseMicroTime(bad)) << bad;
  }
}

TEST(LeaseRecord, JsonRoundTrip) {
  LeaseRecord r;
  r.holder = "pod-a_1234";
  r.lease_duration_seconds = 15;
  r.acquire_time = system_clock::time_point(std::chrono::microseconds(1767323045000001LL));
  r.renew_time = system_clock::time_point(std::chrono::microseconds(1767323050999999LL));
  r.lease_transitions = 3;
  nlohmann::json spec = LeaseSpecJson(r);
  EXPECT_EQ(spec["holderIdentity"], "pod-a_1234");
  EXPECT_EQ(spec["renewTime"], "2026-01-02T03:04:10.999999Z");
  EXPECT_EQ(LeaseRecordFromJson({{"spec", spec}}), r);
  EXPECT_EQ(LeaseRecordFromJson(nlohmann::json::object()), LeaseRecord{});
  EXPECT_EQ(LeaseRecordFromJson({{"spec", {{"holderIdentity", 7}}}}).holder, "");  // wrong types are ignored
}

TEST(LeaseExpiry, SubtractsThePollingLagBoundedByTheRetryPeriod) {
  auto observed = steady_clock::now();
  auto wall = system_clock::now();
  LeaseRecord r;
  const milliseconds lease(4000), retry(1000);
  // Observed 300 ms after the renewal: expires 4 s after the renewal, i.e. 3.7 s after the observation.
  r.renew_time = wall - milliseconds(300);
  EXPECT_EQ(LeaseExpiry(observed, wall, r, lease, retry), observed + milliseconds(3700));
  // The leader's clock is ahead (renewal "in the future"): no lag, the full duration from the observation.
  r.renew_time = wall + seconds(5);
  EXPECT_EQ(LeaseExpiry(observed, wall, r, lease, retry), observed + lease);
  // A long-stale or skewed renewTime subtracts at most one retry period.
  r.renew_time = wall - seconds(60);
  EXPECT_EQ(LeaseExpiry(observed, wall, r, lease, retry), observed + milliseconds(3000));
  // No renewTime: the client-go rule.
  r.renew_time.reset();
  EXPECT_EQ(LeaseExpiry(observed, wall, r, lease, retry), observed + lease);
}

struct ScopedEnv {
  std::string name;
  ScopedEnv(const char* n, const char* v) : name(n) {
    if (v) {
      setenv(n, v, 1);
    } else {
      unsetenv(n);
    }
  }
  ~ScopedEnv() { unsetenv(name.c_str()); }
};

TEST(LeaderDefaults, NamespaceAndIdentity) {
  auto file = std::filesystem::temp_directory_path() / ("zm-lease-ns-" + std::to_string(::getpid()));
  {
    ScopedEnv ns("POD_NAMESPACE", nullptr);
    EXPECT_EQ(DefaultLeaseNamespace(file.string()), "zeromesh-system");  // no env, no file
    std::ofstream(file) << "mesh-ns\n";
    EXPECT_EQ(DefaultLeaseNamespace(file.string()), "mesh-ns");
  }
  {
    ScopedEnv ns("POD_NAMESPACE", "from-env");
    EXPECT_EQ(DefaultLeaseNamespace(file.string()), "from-env");
  }
  std::filesystem::remove(file);
  ScopedEnv pod("POD_NAME", "zeromesh-controller-abc");
  std::string a = DefaultLeaderIdentity(), b = DefaultLeaderIdentity();
  EXPECT_EQ(a.rfind("zeromesh-controller-abc_", 0), 0u) << a;
  EXPECT_EQ(a.size(), std::string("zeromesh-controller-abc_").size() + 8);
  EXPECT_NE(a, b);  // a random suffix (a restarted pod never reuses an identity)
}

// ---- mesh-controller flags -------------------------------------------------------------------------------------

bool Parse(std::vector<std::string> args, ctrl::ParsedFlags* out, std::string* error) {
  args.insert(args.begin(), "mesh-controller");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return ctrl::ParseFlags(static_cast<int>(argv.size()), argv.data(), out, error);
}

TEST(LeaderFlags, DefaultOnInKubernetesMode) {
  ctrl::ParsedFlags f;
  std::string error;
  ASSERT_TRUE(Parse({"--kubernetes"}, &f, &error)) << error;
  EXPECT_TRUE(f.options.leader_elect);
  EXPECT_EQ(f.options.leader_election.lease_duration, milliseconds(15000));
  EXPECT_EQ(f.options.leader_election.renew_deadline, milliseconds(10000));
  EXPECT_EQ(f.options.leader_election.retry_period, milliseconds(2000));
  EXPECT_EQ(f.options.leader_election.lease_name, "zeromesh-controller");
  EXPECT_EQ(f.options.leader_election.lease_namespace, "");  // resolved at start
}

TEST(LeaderFlags, Values) {
  ctrl::ParsedFlags f;
  std::string error;
  ASSERT_TRUE(Parse({"--kubeconfig", "/k", "--leader-elect-lease-duration=4s", "--leader-elect-renew-deadline", "3s",
                     "--leader-elect-retry-period=500ms", "--leader-elect-namespace=ns", "--leader-elect-identity=me",
                     "--leader-elect-lease-name=lease"},
                    &f, &error))
      << error;
  const auto& l = f.options.leader_election;
  EXPECT_EQ(l.lease_duration, milliseconds(4000));
  EXPECT_EQ(l.renew_deadline, milliseconds(3000));
  EXPECT_EQ(l.retry_period, milliseconds(500));
  EXPECT_EQ(l.lease_namespace, "ns");
  EXPECT_EQ(l.identity, "me");
  EXPECT_EQ(l.lease_name, "lease");

  ctrl::ParsedFlags off;
  ASSERT_TRUE(Parse({"--kubernetes", "--leader-elect=false"}, &off, &error)) << error;
  EXPECT_FALSE(off.options.leader_elect);
  // Disabled: the timings are not checked.
  ASSERT_TRUE(Parse({"--kubernetes", "--leader-elect=false", "--leader-elect-retry-period=20s"}, &off, &error));
}

TEST(LeaderFlags, Refused) {
  std::string error;
  struct Case {
    std::vector<std::string> args;
    const char* message;
  };
  std::vector<Case> cases = {
      {{"--kubernetes", "--leader-elect-renew-deadline=20s"}, "must be shorter than --leader-elect-lease-duration"},
      {{"--kubernetes", "--leader-elect-retry-period=10s"}, "must be shorter than --leader-elect-renew-deadline"},
      {{"--kubernetes", "--leader-elect-lease-duration=soon"}, "is not a duration"},
      {{"--kubernetes", "--leader-elect=maybe"}, "--leader-elect takes =true or =false"},
      {{"--manifests", "/m", "--leader-elect"}, "need Kubernetes mode"},
      {{"--manifests", "/m", "--leader-elect-lease-duration=4s"}, "need Kubernetes mode"},
  };
  for (const auto& c : cases) {
    ctrl::ParsedFlags f;
    EXPECT_FALSE(Parse(c.args, &f, &error)) << c.args.back();
    EXPECT_NE(error.find(c.message), std::string::npos) << error;
  }
  // Universal mode: off, and an explicit =false is harmless.
  ctrl::ParsedFlags f;
  ASSERT_TRUE(Parse({"--manifests", "/m"}, &f, &error)) << error;
  EXPECT_FALSE(f.options.leader_elect);
  ASSERT_TRUE(Parse({"--manifests", "/m", "--leader-elect=false"}, &f, &error)) << error;
}

}  // namespace
}  // namespace zm::k8s
