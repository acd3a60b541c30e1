#include "controller/manifest/yaml_sandbox.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstring>

namespace zm::manifest {

bool YamlParsesInTime(const std::string& text, unsigned seconds, std::string* why) {
  pid_t pid = fork();
  if (pid < 0) {
    *why = std::string("cannot check the YAML parser on it: fork: ") + std::strerror(errno);
    return false;
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
      *why = std::string("cannot check the YAML parser on it: waitpid: ") + std::strerror(errno);
      return false;
    }
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return true;
  *why = WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM
             ? "the YAML parser did not finish within " + std::to_string(seconds) + " s (a yaml-cpp defect; the text " +
                   "is not valid YAML)"
             : "the YAML parser failed on it";
  return false;
}

}  // namespace zm::manifest
