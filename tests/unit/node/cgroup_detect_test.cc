// --sockops-cgroup auto (agent/bpf/cgroup_detect.h): the cgroup2 mount from mountinfo, then the kubelet's pod cgroup
// under it, over a fake mountinfo and a temporary directory tree standing in for the cgroup filesystem.
#include "agent/bpf/cgroup_detect.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace zm::agent::bpf {
namespace {

namespace fs = std::filesystem;

class CgroupTree : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "zm-cgdetect-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
  }
  void TearDown() override { fs::remove_all(root_); }

  // A non-root cgroup v2 directory (has cgroup.type), or with cgroup_type false the root (which has none).
  std::string Cgroup(const std::string& rel, bool cgroup_type = true) {
    const fs::path d = root_ / rel;
    fs::create_directories(d);
    std::ofstream(d / "cgroup.procs") << "";
    if (cgroup_type) std::ofstream(d / "cgroup.type") << "domain\n";
    return d.string();
  }
  // mountinfo lines: a hybrid host's (tmpfs, a v1 controller, cgroup2 at <root>/unified) with |unified| as the v2
  // mount point.
  std::string Hybrid(const std::string& unified) const {
    return "24 1 0:22 / " + root_.string() + " rw,nosuid - tmpfs tmpfs rw,mode=755\n" + "25 24 0:23 / " +
           root_.string() + "/memory rw,relatime shared:5 - cgroup cgroup rw,memory\n" + "26 24 0:24 / " + unified +
           " rw,nosuid,nodev,noexec,relatime shared:6 - cgroup2 cgroup2 rw\n";
  }

  fs::path root_;
};

TEST(Cgroup2MountPoints, FindsEveryCgroup2MountOnceAndDecodesEscapes) {
  const char text[] =
      "22 1 0:21 / /proc rw,nosuid - proc proc rw\n"
      "30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
      "31 24 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
      "40 30 0:26 / /mnt/with\\040space rw shared:9 master:4 - cgroup2 cgroup2 rw\n"
      "41 30 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
      "a line that is not mountinfo\n";
  EXPECT_EQ(Cgroup2MountPoints(text), (std::vector<std::string>{"/sys/fs/cgroup", "/mnt/with space"}));
  EXPECT_TRUE(Cgroup2MountPoints("").empty());
  EXPECT_TRUE(Cgroup2MountPoints("25 24 0:23 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n").empty());
}

TEST(KubepodsAncestor, TheKubeletsPodCgroupAmongTheAncestors) {
  // cgroupfs driver under a kubelet cgroupRoot, on a hybrid host (v1 lines first).
  EXPECT_EQ(KubepodsAncestor("4:memory:/n1/kubepods/burstable/pod1/c1\n0::/n1/kubepods/burstable/pod1/c1\n"),
            "/n1/kubepods");
  EXPECT_EQ(KubepodsAncestor("0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/"
                             "cri-containerd-c1.scope\n"),
            "/kubepods.slice");
  EXPECT_EQ(KubepodsAncestor("0::/\n"), "");  // a private cgroup namespace hides the ancestors
  EXPECT_EQ(KubepodsAncestor("0::/system.slice/mesh-agent.service\n"), "");  // not in a pod
  EXPECT_EQ(KubepodsAncestor("0::/kubepods-x/notkubepods\n"), "");           // whole names only
  EXPECT_EQ(KubepodsAncestor("4:memory:/kubepods/pod1\n"), "");              // v1 lines are not the v2 cgroup
}

TEST_F(CgroupTree, HybridHostCgroupfsDriverUnderACgroupRootFromTheAgentsOwnCgroup) {
  const std::string unified = Cgroup("unified", false);
  const std::string want = Cgroup("unified/n1/kubepods");
  Cgroup("unified/n1/kubepods/burstable/pod1/c1");
  std::string got;
  auto st = DetectPodCgroup(Hybrid(unified), "0::/n1/kubepods/burstable/pod1/c1\n", &got);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(got, want);
}

TEST_F(CgroupTree, UnifiedHostSystemdDriverFromTheMountWhenTheNamespaceHidesTheAncestors) {
  const std::string mount = Cgroup("cg", false);
  const std::string want = Cgroup("cg/kubepods.slice");
  Cgroup("cg/kubepods");  // the systemd driver's name is tried first
  const std::string mountinfo = "30 24 0:26 / " + mount + " rw shared:4 - cgroup2 cgroup2 rw\n";
  std::string got;
  auto st = DetectPodCgroup(mountinfo, "0::/\n", &got);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(got, want);
}

TEST_F(CgroupTree, CgroupfsDriverAtTheMountRoot) {
  const std::string unified = Cgroup("unified", false);
  const std::string want = Cgroup("unified/kubepods");
  std::string got;
  auto st = DetectPodCgroup(Hybrid(unified), "0::/user.slice\n", &got);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(got, want);
}

TEST_F(CgroupTree, NoPodCgroupIsAnErrorNamingWhereItLookedNeverTheRoot) {
  const std::string unified = Cgroup("unified", false);
  Cgroup("unified/system.slice");
  std::string got = "untouched";
  auto st = DetectPodCgroup(Hybrid(unified), "0::/\n", &got);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(got, "untouched");
  EXPECT_NE(st.message().find(unified + "/kubepods.slice"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("--sockops-cgroup PATH"), std::string::npos) << st.message();
}

TEST_F(CgroupTree, ADirectoryWithoutCgroupTypeIsNotTaken) {
  // Named kubepods but not a cgroup v2 directory (e.g. a leftover plain directory, or the v1 hierarchy's).
  const std::string unified = Cgroup("unified", false);
  Cgroup("unified/kubepods", false);
  std::string got;
  EXPECT_FALSE(DetectPodCgroup(Hybrid(unified), "0::/kubepods/pod1\n", &got).ok());
}

TEST(DetectPodCgroup, NoCgroup2MountSaysSo) {
  std::string got;
  auto st = DetectPodCgroup("25 24 0:23 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n", "0::/kubepods/x\n", &got);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("no cgroup2 filesystem"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace zm::agent::bpf
