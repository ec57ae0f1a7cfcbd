/*
 * UDP load generator and sink for the emulator benchmark: a Node dgram generator would cap
 * below the rate the native emulator relays, so the yardstick must be faster than what it
 * measures. JSON result on stdout.
 *   lh-udpload send <bind_ip> <dst_ip> <port> <size> <pps> <seconds>
 *   lh-udpload recv <bind_ip> <port> <seconds> <idle_ms>
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
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

static int udp_socket(const char *ip, int port) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
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
  struct mmsghdr m[BATCH];
  struct iovec iov[BATCH];
  memset(m, 0, sizeof m);
  for (int i = 0; i < BATCH; i++) {
    iov[i].iov_base = buf[i]; iov[i].iov_len = sizeof buf[i];
    m[i].msg_hdr.msg_iov = &iov[i]; m[i].msg_hdr.msg_iovlen = 1;
  }
  unsigned long got = 0, bytes = 0;
  double t0 = now_s(), first = 0, last = 0;
  printf("{\"listening\":true}\n");
  fflush(stdout);
  for (;;) {
    double t = now_s();
    if (t - t0 > seconds) break;
    if (got > 0 && (t - last) * 1000 > idle_ms) break;
    struct pollfd p = { .fd = fd, .events = POLLIN };
    if (poll(&p, 1, 20) <= 0) continue;
    int r = recvmmsg(fd, m, BATCH, MSG_DONTWAIT, NULL);
    if (r <= 0) continue;
    double now = now_s();
    if (got == 0) first = now;
    last = now;
    got += r;
    for (int i = 0; i < r; i++) bytes += m[i].msg_len;
  }
  printf("{\"received\":%lu,\"bytes\":%lu,\"activeSeconds\":%.6f}\n", got, bytes, got > 0 ? last - first : 0.0);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 8 && !strcmp(argv[1], "send")) return do_send(argv + 2);
  if (argc == 6 && !strcmp(argv[1], "recv")) return do_recv(argv + 2);
  fprintf(stderr, "usage: lh-udpload send <bind_ip> <dst_ip> <port> <size> <pps> <seconds>\n"
                  "       lh-udpload recv <bind_ip> <port> <seconds> <idle_ms>\n");
  return 2;
}
