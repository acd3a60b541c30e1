/* A stock client and server for the real-cluster tests: nothing in it knows about the mesh.
 *
 *   testapp serve PORT            answers every connection with "hello from <hostname>\n" and closes it
 *   testapp loop HOST PORT MS     opens a new connection every MS milliseconds, reads the answer, and prints one
 *                                 JSON line per attempt: {"t":<unix ms>,"ok":true,"ms":<connect+read ms>,"from":"..."}
 *                                 or {"t":...,"ok":false,"error":"<strerror>"}; HOST is resolved every attempt
 *
 * Static and dependency-free so its image is this one file (tests/k8s/cluster/images.py builds it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int serve(int port) {
  char host[128] = "unknown", msg[256];
  gethostname(host, sizeof(host) - 1);
  int n = snprintf(msg, sizeof(msg), "hello from %s\n", host);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
  if (s < 0 || bind(s, (struct sockaddr*)&a, sizeof(a)) || listen(s, 512)) {
    perror("testapp serve");
    return 1;
  }
  printf("{\"listening\":%d}\n", port);
  fflush(stdout);
  for (;;) {
    int c = accept(s, NULL, NULL);
    if (c < 0) continue;
    (void)!write(c, msg, (size_t)n);
    shutdown(c, SHUT_WR);
    char buf[64];
    struct timeval tv = {.tv_sec = 1};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while (read(c, buf, sizeof(buf)) > 0) {
    }
    close(c);
  }
  return 0;
}

static void attempt(const char* host, const char* port) {
  long long t0 = now_ms();
  struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
  int rc = getaddrinfo(host, port, &hints, &res);
  if (rc) {
    printf("{\"t\":%lld,\"ok\":false,\"error\":\"resolve: %s\"}\n", t0, gai_strerror(rc));
    return;
  }
  int s = socket(AF_INET, SOCK_STREAM, 0);
  /* 10 s to connect and to answer, as common clients allow at least (curl, Go's and Java's defaults are longer): a
   * SYN dropped while no agent runs is retransmitted after 1 and 3 s and must still get through. */
  struct timeval tv = {.tv_sec = 10};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  const char* err = NULL;
  char buf[256] = {0};
  if (connect(s, res->ai_addr, res->ai_addrlen)) {
    err = strerror(errno);
  } else {
    size_t got = 0;
    ssize_t r;
    while (got < sizeof(buf) - 1 && (r = read(s, buf + got, sizeof(buf) - 1 - got)) > 0) got += (size_t)r;
    if (got == 0) err = "empty answer";
    char* nl = strchr(buf, '\n');
    if (nl) *nl = 0;
  }
  close(s);
  freeaddrinfo(res);
  if (err)
    printf("{\"t\":%lld,\"ok\":false,\"ms\":%lld,\"error\":\"%s\"}\n", t0, now_ms() - t0, err);
  else
    printf("{\"t\":%lld,\"ok\":true,\"ms\":%lld,\"from\":\"%s\"}\n", t0, now_ms() - t0, buf);
}

static int loop(const char* host, const char* port, int ms) {
  for (;;) { /* until the pod is deleted */
    long long start = now_ms();
    attempt(host, port);
    fflush(stdout);
    long long left = ms - (now_ms() - start);
    if (left > 0) usleep((useconds_t)left * 1000);
  }
  return 0;
}

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 3 && strcmp(argv[1], "serve") == 0) return serve(atoi(argv[2]));
  if (argc == 5 && strcmp(argv[1], "loop") == 0) return loop(argv[2], argv[3], atoi(argv[4]));
  fprintf(stderr, "usage: testapp serve PORT | testapp loop HOST PORT INTERVAL_MS\n");
  return 2;
}
