// meshctl output conventions: tables fit 100 columns, wrapping, durations, flag parsing and its exit codes.
#include <gtest/gtest.h>

#include <map>
#include <sstream>

#include "tools/meshctl/check.h"
#include "tools/meshctl/cli.h"
#include "tools/meshctl/output.h"

namespace zm::meshctl {
namespace {

size_t MaxLine(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  size_t m = 0;
  while (std::getline(in, line)) m = std::max(m, line.size());
  return m;
}

TEST(Table, AlignsColumns) {
  Table t({"NAME", "IP"});
  t.Add({"a", "10.0.0.1"});
  t.Add({"longer-name", "10.0.0.22"});
  EXPECT_EQ(t.Render(), "NAME         IP\na            10.0.0.1\nlonger-name  10.0.0.22\n");
}

TEST(Table, ShrinksTheWidestColumnToFit) {
  Table t({"NODE", "IDENTITY", "STATUS"});
  t.Add({"node1", "spiffe://cluster.local/ns/" + std::string(150, 'x') + "/sa/y", "ok"});
  std::string out = t.Render(100);
  EXPECT_LE(MaxLine(out), 100u) << out;
  EXPECT_NE(out.find("..."), std::string::npos);
  EXPECT_NE(out.find("ok"), std::string::npos);  // the short columns survive whole
}

TEST(Wrap, EveryLineFitsAfterThePrefix) {
  std::string text;
  for (int i = 0; i < 60; i++) text += "word" + std::to_string(i) + " ";
  text += std::string(180, 'z');  // one unbreakable word longer than a line
  std::string wrapped = "  fix: " + Wrap(text, 100, 7);
  EXPECT_LE(MaxLine(wrapped), 100u) << wrapped;
  EXPECT_EQ(Wrap("short", 100, 7), "short");
}

TEST(Durations, HumanAndParse) {
  EXPECT_EQ(HumanDuration(45), "45s");
  EXPECT_EQ(HumanDuration(150), "2m30s");
  EXPECT_EQ(HumanDuration(3600), "1h");
  EXPECT_EQ(HumanDuration(90000), "1d1h");
  EXPECT_EQ(HumanDuration(-61), "-1m1s");
  int64_t s = 0;
  EXPECT_TRUE(ParseDuration("1h30m", &s));
  EXPECT_EQ(s, 5400);
  EXPECT_TRUE(ParseDuration("5m", &s));
  EXPECT_EQ(s, 300);
  for (const char* bad : {"", "5", "m", "5x", "1h5", "-1s"}) EXPECT_FALSE(ParseDuration(bad, &s)) << bad;
}

TEST(Yaml, RendersNestedJson) {
  nlohmann::json j = {{"healthy", false}, {"problems", {{{"message", "m: x"}, {"hint", "h"}}}}};
  std::string y = Render(j, Format::kYaml);
  EXPECT_NE(y.find("healthy: false"), std::string::npos) << y;
  EXPECT_NE(y.find("message: \"m: x\""), std::string::npos) << y;  // quoted: a colon in a value
}

struct Parsed {
  bool ok;
  Invocation inv;
  std::string error;
};

Parsed Parse(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
  Parsed p;
  p.ok = ParseArgs(
      args,
      [&env](const char* n) {
        auto it = env.find(n);
        return it == env.end() ? nullptr : it->second.c_str();
      },
      &p.inv, &p.error);
  return p;
}

TEST(Cli, GlobalFlagsAnywhereAndEnvironment) {
  auto p = Parse({"status", "-o", "json", "--controller=1.2.3.4:15012", "--cert-warn", "5m"},
                 {{"ZEROMESH_TOKEN", "tok"}, {"ZEROMESH_CA_CERT", "/ca.pem"}});
  ASSERT_TRUE(p.ok) << p.error;
  EXPECT_EQ(p.inv.command->name, "status");
  EXPECT_EQ(p.inv.format, Format::kJson);
  EXPECT_EQ(p.inv.controller, "1.2.3.4:15012");
  EXPECT_EQ(p.inv.token, "tok");
  EXPECT_EQ(p.inv.flags["cert-warn"], "5m");
  std::string error;
  EXPECT_TRUE(CheckConnection(p.inv, &error)) << error;
  EXPECT_EQ(Parse({"-ojson", "workloads"}).inv.format, Format::kJson);
  EXPECT_EQ(Parse({"workloads", "-o", "yaml"}).inv.format, Format::kYaml);
}

TEST(Cli, UsageErrorsSayWhatIsWrong) {
  struct Case {
    std::vector<std::string> args;
    std::string want;
  };
  for (const auto& c : std::vector<Case>{{{}, "no command"},
                                         {{"frob"}, "unknown command 'frob'"},
                                         {{"status", "--frob", "1"}, "unknown flag '--frob' for 'status'"},
                                         {{"workloads", "--cert-warn", "1h"}, "unknown flag '--cert-warn'"},
                                         {{"status", "-o", "xml"}, "'xml' is not one of"},
                                         {{"status", "--cert-warn", "soon"}, "--cert-warn: 'soon'"},
                                         {{"status", "--timeout"}, "needs a value"},
                                         {{"config-dump"}, "needs --node"},
                                         {{"status", "extra"}, "unexpected argument"},
                                         {{"status", "-x"}, "unknown flag '-x'"}}) {
    auto p = Parse(c.args);
    EXPECT_FALSE(p.ok);
    EXPECT_NE(p.error.find(c.want), std::string::npos) << p.error;
  }
}

TEST(Cli, HelpForEveryCommandAndMissingConnection) {
  EXPECT_TRUE(Parse({"--help"}).inv.help);
  for (const auto& c : Commands()) {
    auto p = Parse({c.name, "--help"});
    ASSERT_TRUE(p.ok) << c.name;
    EXPECT_TRUE(p.inv.help);
    std::string usage = CommandUsage(c);
    EXPECT_NE(usage.find("meshctl " + c.name), std::string::npos);
    EXPECT_LE(MaxLine(usage), 100u) << usage;
  }
  EXPECT_LE(MaxLine(GlobalUsage()), 100u);
  // No controller address: Kubernetes mode (the kubeconfig is looked for when the command runs).
  auto p = Parse({"status", "-n", "mesh", "--context", "prod", "--kubeconfig", "/kc"});
  ASSERT_TRUE(p.ok) << p.error;
  EXPECT_EQ(p.inv.kube_namespace, "mesh");
  EXPECT_EQ(p.inv.context, "prod");
  EXPECT_EQ(p.inv.kubeconfig, "/kc");
  std::string error;
  EXPECT_TRUE(CheckConnection(p.inv, &error)) << error;
  EXPECT_EQ(Parse({"status"}).inv.kube_namespace, "zeromesh-system");
  // Universal mode still needs all three.
  p = Parse({"status", "--controller", "1.2.3.4:15012"});
  ASSERT_TRUE(p.ok);
  EXPECT_FALSE(CheckConnection(p.inv, &error));
  EXPECT_NE(error.find("ZEROMESH_TOKEN"), std::string::npos);
}

TEST(Check, ParsesKernelCapsAndMounts) {
  EXPECT_EQ(ParseKernelRelease("6.1.0-13-amd64"), (std::pair{6, 1}));
  EXPECT_EQ(ParseKernelRelease("6.18.44-fc"), (std::pair{6, 18}));
  EXPECT_FALSE(ParseKernelRelease("garbage"));
  EXPECT_EQ(EffectiveCaps("Name:\tx\nCapEff:\t000001ffffffffff\n"), 0x1ffffffffffULL);
  EXPECT_FALSE(EffectiveCaps("Name:\tx\n"));
  EXPECT_EQ(Cgroup2Mount("cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n"), "/sys/fs/cgroup/unified");
  EXPECT_EQ(Cgroup2Mount("a /x cgroup2 rw 0 0\ncgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n"), "/sys/fs/cgroup");
  EXPECT_EQ(Cgroup2Mount("tmpfs /sys/fs/cgroup tmpfs rw 0 0\n"), "");
}

TEST(Check, FailedChecksBecomeProblems) {
  auto j = ChecksJson({{"kernel", true, "Linux 6.18", ""}, {"bpffs", false, "/sys/fs/bpf is not bpffs", "mount it"}});
  EXPECT_FALSE(j["healthy"].get<bool>());
  ASSERT_EQ(j["problems"].size(), 1u);
  EXPECT_EQ(j["problems"][0]["hint"], "mount it");
  std::string human = RenderChecks(j);
  EXPECT_NE(human.find("FAIL"), std::string::npos);
  EXPECT_LE(MaxLine(human), 100u);
  EXPECT_TRUE(ChecksJson({{"kernel", true, "ok", ""}})["healthy"].get<bool>());
}

}  // namespace
}  // namespace zm::meshctl

namespace zm::meshctl {
namespace {

TEST(Check, KernelVerdictNamesTheHookAndTheMinimum) {
  auto old = KernelVerdict("5.4.0-150-generic");
  EXPECT_FALSE(old.ok);
  EXPECT_NE(old.detail.find("older than 5.10"), std::string::npos) << old.detail;
  EXPECT_NE(old.hint.find("5.10 or newer"), std::string::npos);
  auto ubuntu = KernelVerdict("5.15.0-91-generic");
  EXPECT_TRUE(ubuntu.ok);
  EXPECT_NE(ubuntu.detail.find("tc (clsact)"), std::string::npos) << ubuntu.detail;
  EXPECT_TRUE(KernelVerdict("6.1.0-13-amd64").ok);
  EXPECT_NE(KernelVerdict("6.6.8").detail.find("tcx"), std::string::npos);
  EXPECT_FALSE(KernelVerdict("garbage").ok);
}

// Real `tc filter show` output: ours (handle 0x7a6d) is not foreign; a u32 filter at priority 1 blocks our priority
// in tc mode, another bpf filter there (protocol all) does not.
TEST(Check, ForeignTcFiltersAndTheirPriorities) {
  const std::string ours =
      "filter protocol all pref 1 bpf chain 0 \n"
      "filter protocol all pref 1 bpf chain 0 handle 0x7a6d zm_capture direct-action not_in_hw id 42 tag "
      "0123456789abcdef jited \n";
  EXPECT_TRUE(ParseTcFilters(ours).empty());
  const std::string u32 =
      "filter protocol ip pref 1 u32 chain 0 \n"
      "filter protocol ip pref 1 u32 chain 0 fh 801: ht divisor 1 \n"
      "filter protocol ip pref 1 u32 chain 0 fh 801::800 order 2048 key ht 801 bkt 0 not_in_hw \n"
      "  match 00000000/00000000 at 0\n"
      "filter protocol all pref 49152 u32 chain 0 \n"
      "filter protocol all pref 49152 u32 chain 0 fh 800: ht divisor 1 \n";
  auto f = ParseTcFilters(u32);
  ASSERT_EQ(f.size(), 2u);
  EXPECT_EQ(f[0].what, "u32 filter (pref 1, protocol ip)");
  EXPECT_EQ(f[0].blocked_pref, 1u);
  EXPECT_EQ(f[1].blocked_pref, 49152u);
  const std::string cni = ours + "filter protocol all pref 1 bpf chain 0 handle 0x1 cil_from_container direct-action\n";
  f = ParseTcFilters(cni);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].blocked_pref, 0u) << "a bpf filter for every protocol shares our priority";

  auto blocked = ParseTcFilters(u32);
  for (auto& b : blocked) b.ifname = "zmv1p1";
  auto no_tcx = ConflictVerdict(/*tcx=*/false, 3, blocked);
  EXPECT_FALSE(no_tcx.ok);
  EXPECT_NE(no_tcx.detail.find("tc priority 1 taken on zmv1p1"), std::string::npos) << no_tcx.detail;
  EXPECT_NE(no_tcx.hint.find("--tc-priority"), std::string::npos);
  auto with_tcx = ConflictVerdict(/*tcx=*/true, 3, blocked);
  EXPECT_TRUE(with_tcx.ok) << "with tcx, tc filters run after ours whatever their priority";
  EXPECT_NE(with_tcx.detail.find("coexisting"), std::string::npos);
  EXPECT_TRUE(ConflictVerdict(false, 3, {}).ok);
}

}  // namespace
}  // namespace zm::meshctl
