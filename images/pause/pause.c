// The sandbox ("pause") container of a pod: holds the pod's namespaces open, reaps the children it inherits (as PID 1
// of a shared PID namespace) and exits 0 on SIGTERM or SIGINT. Built statically: its image holds nothing else.
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

int main(int argc, char** argv) {
  if (argc > 1 && (strcmp(argv[1], "-v") == 0 || strcmp(argv[1], "--version") == 0)) {
    printf("pause (zeromesh)\n");
    return 0;
  }
  if (argc > 1) {
    fprintf(stderr, "usage: pause [--version] (no other arguments: it waits for SIGTERM or SIGINT)\n");
    return 2;
  }
  // Signals are taken synchronously (sigwaitinfo), so none can slip in between a check and the wait.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGCHLD);
  if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) {
    fprintf(stderr, "pause: sigprocmask: %s\n", strerror(errno));
    return 1;
  }
  for (;;) {
    int sig = sigwaitinfo(&set, NULL);
    if (sig < 0) {
      if (errno == EINTR) continue;
      fprintf(stderr, "pause: sigwaitinfo: %s\n", strerror(errno));
      return 1;
    }
    if (sig == SIGCHLD) {
      while (waitpid(-1, NULL, WNOHANG) > 0) {
      }
      continue;
    }
    fprintf(stderr, "pause: shutting down on signal %d\n", sig);
    return 0;
  }
}
