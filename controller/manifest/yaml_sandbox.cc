#include "controller/manifest/yaml_sandbox.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <mutex>

namespace zm::manifest {
namespace {

// How a check ended, as the helper reports it.
enum Verdict : int32_t { kFinished = 0, kTimedOut = 1, kFailed = 2, kNoFork = 3, kNoWait = 4 };

// Forks a child that parses |text| under alarm(|seconds|) and waits for it. |err|: errno of kNoFork / kNoWait.
Verdict ParseInChild(const std::string& text, unsigned seconds, int* err) {
  pid_t pid = fork();
  if (pid < 0) {
    *err = errno;
    return kNoFork;
  }
  if (pid == 0) {
    // SIGALRM's default action ends the child: whatever the parent did with it (blocked for a signalfd, a handler).
    signal(SIGALRM, SIG_DFL);
    sigset_t alrm;
    sigemptyset(&alrm);
    sigaddset(&alrm, SIGALRM);
    sigprocmask(SIG_UNBLOCK, &alrm, nullptr);
    alarm(seconds);
    try {
      (void)YAML::LoadAll(text);
    } catch (const YAML::Exception&) {
      _exit(0);  // an ordinary parse error: the real parse reports it
    } catch (...) {
      _exit(3);  // e.g. std::bad_alloc
    }
    _exit(0);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      *err = errno;
      return kNoWait;
    }
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return kFinished;
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM ? kTimedOut : kFailed;
}

bool WriteAll(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// |timeout_ms| < 0: wait as long as it takes.
bool ReadAll(int fd, void* data, size_t n, int timeout_ms) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    if (timeout_ms >= 0) {
      pollfd pfd{fd, POLLIN, 0};
      int r = poll(&pfd, 1, timeout_ms);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
    }
    ssize_t got = read(fd, p, n);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    p += got;
    n -= static_cast<size_t>(got);
  }
  return true;
}

struct Request {
  uint32_t seconds = 0;
  uint64_t size = 0;
};
struct Reply {
  int32_t verdict = kFailed;
  int32_t err = 0;
};

[[noreturn]] void ServeChecks(int fd) {
  for (;;) {
    Request req;
    if (!ReadAll(fd, &req, sizeof req, -1)) _exit(0);  // the controller is gone
    std::string text(req.size, '\0');
    if (!ReadAll(fd, text.data(), text.size(), -1)) _exit(0);
    Reply rep;
    rep.verdict = ParseInChild(text, req.seconds, &rep.err);
    if (!WriteAll(fd, &rep, sizeof rep)) _exit(0);
  }
}

// Forking the controller for every manifest file copied the page tables of its whole mesh (1 GB of memory at
// 100,000 workloads) and turned its next writes into copy-on-write faults: per policy change, work that grew with the
// mesh. So the first check forks a helper while the process is still small, and the helper forks the short-lived
// parsing children. Should the helper die, the next check starts another one.
class Helper {
 public:
  // False when the helper cannot run the check (the caller then forks the child itself).
  bool Check(const std::string& text, unsigned seconds, Reply* rep) {
    std::lock_guard<std::mutex> lock(mu_);
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (fd_ < 0 && !Start()) return false;
      Request req{seconds, text.size()};
      // The child's alarm bounds the answer; a helper silent well past it is stuck.
      int timeout_ms = static_cast<int>(seconds) * 1000 + 5000;
      if (WriteAll(fd_, &req, sizeof req) && WriteAll(fd_, text.data(), text.size()) &&
          ReadAll(fd_, rep, sizeof *rep, timeout_ms)) {
        return true;
      }
      Stop();
    }
    return false;
  }

 private:
  bool Start() {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return false;
    pid_t pid = fork();
    if (pid < 0) {
      close(sv[0]);
      close(sv[1]);
      return false;
    }
    if (pid == 0) {
      // Only its socket stays open: a copy of a connection's or a listener's descriptor would keep it open.
      int fd = sv[1];
      if (fd > 3) close_range(3, static_cast<unsigned>(fd) - 1, 0);
      close_range(static_cast<unsigned>(fd) + 1, ~0U, 0);
      // It ends when the controller does: its socket then reads end-of-file (no PR_SET_PDEATHSIG: that fires when
      // the forking thread ends, which may be any thread that loaded manifests).
      signal(SIGPIPE, SIG_IGN);
      ServeChecks(fd);
    }
    close(sv[1]);
    fd_ = sv[0];
    pid_ = pid;
    return true;
  }

  void Stop() {
    close(fd_);
    fd_ = -1;
    kill(pid_, SIGKILL);
    while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }

  std::mutex mu_;
  int fd_ = -1;
  pid_t pid_ = -1;
};

}  // namespace

bool YamlParsesInTime(const std::string& text, unsigned seconds, std::string* why) {
  static Helper* helper = new Helper();  // never destroyed: checks may run while the process exits
  Reply rep;
  if (!helper->Check(text, seconds, &rep)) rep.verdict = ParseInChild(text, seconds, &rep.err);
  switch (rep.verdict) {
    case kFinished:
      return true;
    case kNoFork:
      *why = std::string("cannot check the YAML parser on it: fork: ") + std::strerror(rep.err);
      return false;
    case kNoWait:
      *why = std::string("cannot check the YAML parser on it: waitpid: ") + std::strerror(rep.err);
      return false;
    case kTimedOut:
      *why = "the YAML parser did not finish within " + std::to_string(seconds) +
             " s (a yaml-cpp defect; the text is not valid YAML)";
      return false;
    default:
      *why = "the YAML parser failed on it";
      return false;
  }
}

}  // namespace zm::manifest
