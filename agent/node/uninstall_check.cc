#include "agent/node/uninstall_check.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <regex>

extern char** environ;

namespace zm::agent {

bool ParseUninstallCheck(const std::string& spec, const std::string& credentials_dir, UninstallCheck* out,
                         std::string* error) {
  // DNS-1123 labels / subdomains, as Kubernetes validates namespace and DaemonSet names.
  static const std::regex kSpec(R"(([a-z0-9]([-a-z0-9]*[a-z0-9])?)/([a-z0-9]([-.a-z0-9]*[a-z0-9])?))");
  std::smatch m;
  if (spec.size() > 317 || !std::regex_match(spec, m, kSpec)) {
    *error = "--uninstall-check wants NAMESPACE/DAEMONSET (lower-case DNS names), got '" + spec + "'";
    return false;
  }
  out->namespace_name = m[1].str();
  out->daemonset = m[3].str();
  out->credentials_dir = credentials_dir;
  return true;
}

std::string UninstallCheckProgramBesideSelf(std::string* error) {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) {
    *error = std::string("readlink /proc/self/exe: ") + std::strerror(errno);
    return "";
  }
  std::string self(buf, static_cast<size_t>(n));
  return self.substr(0, self.rfind('/') + 1) + "mesh-agent-uninstall-check";
}

namespace {

// Reads the child's stdout until EOF (kept to 4 KiB) or the deadline; false on timeout.
bool ReadUntilEof(int fd, std::chrono::steady_clock::time_point deadline, std::string* out) {
  char buf[512];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) return false;
    ssize_t n = r < 0 ? -1 : read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return true;
    if (out->size() < 4096) out->append(buf, static_cast<size_t>(n));
  }
}

// Reaps the child by the deadline, else kills it; false when it had to be killed.
bool Reap(pid_t pid, std::chrono::steady_clock::time_point deadline, int* status) {
  for (;;) {
    pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid) return true;
    if (r < 0 && errno != EINTR) return true;  // not ours to wait for any more: nothing left to kill
    if (std::chrono::steady_clock::now() >= deadline) break;
    usleep(10000);
  }
  kill(pid, SIGKILL);
  while (waitpid(pid, status, 0) < 0 && errno == EINTR) {
  }
  return false;
}

}  // namespace

bool IsUninstalling(const UninstallCheck& check, std::string* reason) {
  const std::string keeping = ": keeping the data path";
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    *reason = std::string("pipe: ") + std::strerror(errno) + keeping;
    return false;
  }
  // The agent blocks SIGTERM/SIGINT/SIGHUP for its signalfd: the child gets default signals and an empty mask, and
  // none of the agent's descriptors (BPF maps, sockets) beyond stdin/stderr and the pipe as stdout.
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::string spec = check.namespace_name + "/" + check.daemonset;
  char* argv[] = {const_cast<char*>(check.program.c_str()), spec.data(),
                  const_cast<char*>(check.credentials_dir.c_str()), nullptr};
  pid_t pid = -1;
  int err = posix_spawn(&pid, check.program.c_str(), &fa, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  close(fds[1]);
  if (err != 0) {
    close(fds[0]);
    *reason = "cannot run " + check.program + " (" + std::strerror(err) + ")" + keeping;
    return false;
  }
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(check.timeout_ms);
  bool finished = ReadUntilEof(fds[0], deadline, &out);
  close(fds[0]);
  int status = 0;
  finished = Reap(pid, finished ? deadline : std::chrono::steady_clock::now(), &status) && finished;
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  if (!finished) {
    *reason = check.program + " gave no answer within " + std::to_string(check.timeout_ms) + " ms" + keeping;
    return false;
  }
  if (WIFEXITED(status) &&
      (WEXITSTATUS(status) == kUninstallCheckKeep || WEXITSTATUS(status) == kUninstallCheckUninstall)) {
    *reason = out.empty() ? check.program + " gave no reason" : out;
    return WEXITSTATUS(status) == kUninstallCheckUninstall;
  }
  *reason = check.program +
            (WIFEXITED(status) ? " exited with " + std::to_string(WEXITSTATUS(status))
                               : " was killed by signal " + std::to_string(WTERMSIG(status))) +
            (out.empty() ? "" : " (" + out + ")") + keeping;
  return false;
}

}  // namespace zm::agent
