/*
 * UDP load generator and sink for the emulator benchmark: a Node dgram generator would cap
 * below the rate the native emulator relays, so the yardstick must be faster than what it
 * measures. JSON result on stdout.
 *   lh-udpload send <bind_ip> <dst_ip> <port> <size> <pps> <seconds>
 *   lh-udpload recv <bind_ip> <port> <seconds> <idle_ms>
 *   lh-udpload echo <bind_ip> <port> <seconds>
 *   lh-udpload ping <bind_ip> <dst_ip> <port> <count> <interval_ms>
 * Receive times are the kernel's (SO_TIMESTAMPNS), so a test process that waits for the CPU
 * on a busy machine does not add its wait to what it measures: the sink bins arrivals into
 * 100 ms windows by kernel time, the echo reports how long it held each probe and the ping
 * subtracts that hold from the round trip.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 32

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

#define WINDOW_S 0.1
#define MAX_WINDOWS 4096

static double real_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Kernel receive time (realtime, seconds) of a received message, or now if absent. */
static double rx_time(struct msghdr *h) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c != NULL; c = CMSG_NXTHDR(h, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMPNS) {
      struct timespec ts;
      memcpy(&ts, CMSG_DATA(c), sizeof ts);
      return ts.tv_sec + ts.tv_nsec / 1e9;
    }
  }
  return real_s();
}

static int udp_socket(const char *ip, int port) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
  int sz = 16 * 1024 * 1024;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
  inet_pton(AF_INET, ip, &a.sin_addr);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind"); exit(1); }
  return fd;
}

static int do_send(char **av) {
  int fd = udp_socket(av[0], atoi(av[2]));
  struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(atoi(av[2])) };
  inet_pton(AF_INET, av[1], &dst.sin_addr);
  int size = atoi(av[3]);
  double pps = atof(av[4]), seconds = atof(av[5]);
  static char buf[BATCH][65536];
  struct mmsghdr m[BATCH];
  struct iovec iov[BATCH];
  memset(m, 0, sizeof m);
  for (int i = 0; i < BATCH; i++) {
    memset(buf[i], 0x5a, size);
    iov[i].iov_base = buf[i]; iov[i].iov_len = size;
    m[i].msg_hdr.msg_iov = &iov[i]; m[i].msg_hdr.msg_iovlen = 1;
    m[i].msg_hdr.msg_name = &dst; m[i].msg_hdr.msg_namelen = sizeof dst;
  }
  unsigned long sent = 0, failed = 0, seq = 0;
  double t0 = now_s(), end = t0 + seconds;
  for (;;) {
    double t = now_s();
    if (t >= end) break;
    /* Pace by schedule: send what is due by now (at most one batch), then sleep a little. */
    double due = (t - t0) * pps - (double)seq;
    if (due < 1) { struct timespec ts = { 0, 50000 }; nanosleep(&ts, NULL); continue; }
    int n = due > BATCH ? BATCH : (int)due;
    for (int i = 0; i < n; i++) memcpy(buf[i], &seq, sizeof seq), seq++;
    int r = sendmmsg(fd, m, n, 0);
    if (r < 0) { failed += n; continue; }
    sent += r; failed += n - r;
  }
  printf("{\"sent\":%lu,\"failed\":%lu,\"seconds\":%.6f}\n", sent, failed, now_s() - t0);
  return 0;
}

static int do_recv(char **av) {
  int fd = udp_socket(av[0], atoi(av[1]));
  double seconds = atof(av[2]);
  int idle_ms = atoi(av[3]);
  static char buf[BATCH][2048];
  static char ctrl[BATCH][CMSG_SPACE(sizeof(struct timespec))];
  static unsigned long windows[MAX_WINDOWS];
  struct mmsghdr m[BATCH];
  struct iovec iov[BATCH];
  unsigned long got = 0, bytes = 0;
  double t0 = now_s(), first = 0, last = 0, last_local = 0;
  printf("{\"listening\":true}\n");
  fflush(stdout);
  for (;;) {
    double t = now_s();
    if (t - t0 > seconds) break;
    if (got > 0 && (t - last_local) * 1000 > idle_ms) break;
    struct pollfd p = { .fd = fd, .events = POLLIN };
    if (poll(&p, 1, 20) <= 0) continue;
    memset(m, 0, sizeof m);
    for (int i = 0; i < BATCH; i++) {
      iov[i].iov_base = buf[i]; iov[i].iov_len = sizeof buf[i];
      m[i].msg_hdr.msg_iov = &iov[i]; m[i].msg_hdr.msg_iovlen = 1;
      m[i].msg_hdr.msg_control = ctrl[i]; m[i].msg_hdr.msg_controllen = sizeof ctrl[i];
    }
    int r = recvmmsg(fd, m, BATCH, MSG_DONTWAIT, NULL);
    if (r <= 0) continue;
    last_local = now_s();
    for (int i = 0; i < r; i++) {
      double at = rx_time(&m[i].msg_hdr);
      if (got == 0) first = at;
      if (at > last) last = at;
      long w = (long)((at - first) / WINDOW_S);
      if (w >= 0 && w < MAX_WINDOWS) windows[w]++;
      got++;
      bytes += m[i].msg_len;
    }
  }
  long nw = got > 0 ? (long)((last - first) / WINDOW_S) : 0;
  if (nw > MAX_WINDOWS) nw = MAX_WINDOWS;
  /* Whole windows only: the last, partial one would read low. */
  printf("{\"received\":%lu,\"bytes\":%lu,\"activeSeconds\":%.6f,\"windowSeconds\":%g,\"windowCounts\":[", got, bytes, got > 0 ? last - first : 0.0, WINDOW_S);
  for (long w = 0; w < nw; w++) printf(w ? ",%lu" : "%lu", windows[w]);
  printf("]}\n");
  return 0;
}

/* Probe layout: [0..4) sequence, [8..16) echo hold time in ns (filled by the echo). */
static int do_echo(char **av) {
  int fd = udp_socket(av[0], atoi(av[1]));
  double seconds = atof(av[2]);
  char buf[2048], ctrl[CMSG_SPACE(sizeof(struct timespec))];
  struct sockaddr_in from;
  double t0 = now_s();
  printf("{\"listening\":true}\n");
  fflush(stdout);
  unsigned long echoed = 0;
  while (now_s() - t0 < seconds) {
    struct pollfd p = { .fd = fd, .events = POLLIN };
    if (poll(&p, 1, 50) <= 0) continue;
    struct iovec iov = { buf, sizeof buf };
    struct msghdr h = { .msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl, .msg_controllen = sizeof ctrl };
    ssize_t n = recvmsg(fd, &h, MSG_DONTWAIT);
    if (n < 16) continue;
    double rx = rx_time(&h);
    int64_t hold = (int64_t)((real_s() - rx) * 1e9);
    memcpy(buf + 8, &hold, sizeof hold);
    sendto(fd, buf, n, 0, (struct sockaddr *)&from, sizeof from);
    echoed++;
  }
  printf("{\"echoed\":%lu}\n", echoed);
  return 0;
}

static int do_ping(char **av) {
  int fd = udp_socket(av[0], atoi(av[2]));
  struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(atoi(av[2])) };
  inet_pton(AF_INET, av[1], &dst.sin_addr);
  int count = atoi(av[3]);
  double interval = atof(av[4]) / 1000;
  double *sent = calloc(count, sizeof *sent), *rtt = calloc(count, sizeof *rtt);
  int *order = calloc(count, sizeof *order), norder = 0;
  for (int i = 0; i < count; i++) rtt[i] = -1;
  char buf[200] = {0}, in[2048], ctrl[CMSG_SPACE(sizeof(struct timespec))];
  double t0 = now_s(), end = t0 + count * interval + 1.0;
  int next = 0;
  while (now_s() < end) {
    double t = now_s();
    if (next < count && t >= t0 + next * interval) {
      uint32_t seq = next;
      memcpy(buf, &seq, sizeof seq);
      sent[next] = real_s();
      sendto(fd, buf, sizeof buf, 0, (struct sockaddr *)&dst, sizeof dst);
      next++;
      continue;
    }
    double wait = next < count ? t0 + next * interval - t : end - t;
    struct pollfd p = { .fd = fd, .events = POLLIN };
    if (poll(&p, 1, (int)(wait * 1000) + 1) <= 0) continue;
    struct iovec iov = { in, sizeof in };
    struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl, .msg_controllen = sizeof ctrl };
    ssize_t n = recvmsg(fd, &h, MSG_DONTWAIT);
    if (n < 16) continue;
    uint32_t seq;
    int64_t hold;
    memcpy(&seq, in, sizeof seq);
    memcpy(&hold, in + 8, sizeof hold);
    if (seq >= (uint32_t)count || rtt[seq] >= 0) continue;
    rtt[seq] = (rx_time(&h) - sent[seq]) * 1000 - hold / 1e6;
    order[norder++] = seq;
  }
  printf("{\"rtts\":[");
  for (int i = 0; i < count; i++) printf(i ? ",%.4f" : "%.4f", rtt[i]);
  printf("],\"order\":[");
  for (int i = 0; i < norder; i++) printf(i ? ",%d" : "%d", order[i]);
  printf("]}\n");
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 8 && !strcmp(argv[1], "send")) return do_send(argv + 2);
  if (argc == 6 && !strcmp(argv[1], "recv")) return do_recv(argv + 2);
  if (argc == 5 && !strcmp(argv[1], "echo")) return do_echo(argv + 2);
  if (argc == 7 && !strcmp(argv[1], "ping")) return do_ping(argv + 2);
  fprintf(stderr, "usage: lh-udpload send <bind_ip> <dst_ip> <port> <size> <pps> <seconds>\n"
                  "       lh-udpload recv <bind_ip> <port> <seconds> <idle_ms>\n"
                  "       lh-udpload echo <bind_ip> <port> <seconds>\n"
                  "       lh-udpload ping <bind_ip> <dst_ip> <port> <count> <interval_ms>\n");
  return 2;
}
