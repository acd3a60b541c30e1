#include "tests/integration/bpf/netns_env.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "agent/bpf/bpf_manager.h"

namespace zm::agent::bpf::testing {
namespace {

std::mutex g_mu;
std::set<std::string>* g_live = nullptr;  // namespaces not yet deleted, for the exit handler

void DeleteNetns(const std::string& name) {
  Sh("ip netns del " + name + " 2>/dev/null");
}

// Owner registry: <kOwnerDir>/<prefix> holds the pid of the test process using that prefix, so a later run can
// remove what a crashed or killed run (ASan abort, ctest timeout) left behind, and nothing else.
constexpr char kOwnerDir[] = "/run/zeromesh-bpf-tests";
std::set<std::string>* g_prefixes = nullptr;

void ReapPrefix(const std::string& prefix) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/var/run/netns", ec)) {
    std::string n = e.path().filename();
    if (n.rfind(prefix + "-", 0) == 0) DeleteNetns(n);
  }
  (void)BpfManager::Purge(prefix);
  fs::remove(std::string(kOwnerDir) + "/" + prefix, ec);
}

void ReapDeadOwners() {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(kOwnerDir, ec)) {
    std::ifstream in(e.path());
    long pid = 0;
    in >> pid;
    if (pid > 0 && (kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH)) continue;
    fprintf(stderr, "removing leftovers of a dead test run: %s\n", e.path().filename().c_str());
    ReapPrefix(e.path().filename());
  }
}

void AtExitCleanup() {
  std::lock_guard lock(g_mu);
  if (g_live) {
    for (const auto& n : *g_live) DeleteNetns(n);
    g_live->clear();
  }
  if (g_prefixes) {
    for (const auto& p : *g_prefixes) ReapPrefix(p);
    g_prefixes->clear();
  }
}

void EnsureInitLocked() {
  if (g_live) return;
  g_live = new std::set<std::string>();
  g_prefixes = new std::set<std::string>();
  std::atexit(AtExitCleanup);
  ReapDeadOwners();
}

void Track(const std::string& name, bool add) {
  std::lock_guard lock(g_mu);
  EnsureInitLocked();
  if (add)
    g_live->insert(name);
  else
    g_live->erase(name);
}

}  // namespace

std::string RandomPrefix() {
  std::random_device rd;
  char buf[16];
  snprintf(buf, sizeof(buf), "zmt%06x", rd() & 0xffffff);
  std::lock_guard lock(g_mu);
  EnsureInitLocked();
  std::error_code ec;
  std::filesystem::create_directories(kOwnerDir, ec);
  std::ofstream(std::string(kOwnerDir) + "/" + buf) << getpid() << "\n";
  g_prefixes->insert(buf);
  return buf;
}

int Sh(const std::string& cmd) {
  int rc = std::system(cmd.c_str());
  int status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  if (status != 0) fprintf(stderr, "command failed (%d): %s\n", status, cmd.c_str());
  return status;
}

std::string ShOutput(const std::string& cmd) {
  std::string out;
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  pclose(f);
  return out;
}

std::unique_ptr<Netns> Netns::Create(const std::string& name) {
  Track(name, true);
  if (Sh("ip netns add " + name) != 0) {
    Track(name, false);
    return nullptr;
  }
  int fd = open(("/var/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    DeleteNetns(name);
    Track(name, false);
    return nullptr;
  }
  return std::unique_ptr<Netns>(new Netns(name, fd));
}

Netns::~Netns() {
  close(fd_);
  DeleteNetns(name_);
  Track(name_, false);
}

ScopedNetns::ScopedNetns(const Netns& ns) {
  orig_fd_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  ok_ = orig_fd_ >= 0 && setns(ns.fd(), CLONE_NEWNET) == 0;
}

ScopedNetns::~ScopedNetns() {
  if (orig_fd_ < 0) return;
  if (setns(orig_fd_, CLONE_NEWNET) != 0) {
    perror("setns back to the original netns");
    std::abort();  // continuing in the wrong netns could touch the host's network
  }
  close(orig_fd_);
}

bool RunInNetns(const Netns& ns, const std::function<void()>& fn) {
  bool ok = false;
  std::thread t([&] {
    if (setns(ns.fd(), CLONE_NEWNET) != 0) return;
    ok = true;
    fn();
  });
  t.join();
  return ok;
}

}  // namespace zm::agent::bpf::testing
