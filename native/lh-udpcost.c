/*
 * What moving datagrams costs the kernel, without any JavaScript: the yardstick behind
 * bench/results/datapath-2026-12-05.md section 1. Run inside the lab's namespaces (site A sends to
 * the emulator, site B receives what it relays); prints CPU seconds (user + system) per datagram.
 *   lh-udpcost send <bind_ip> <port> <dst_ip> <count> <size> <per_call> <mbit_per_s>
 *       per_call 1: one datagram per send(); above 1: UDP GSO runs of that many datagrams
 *   lh-udpcost recv <bind_ip> <port> <count> <pause_us>
 *       recvmmsg of up to 64; after a batch of fewer, sleep pause_us (0: read as they arrive)
 * The receiver's clock starts at its first datagram and stops at `count` or 3 s of silence.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#define BATCH 64

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static double cpu_s(void) {
  struct rusage r;
  getrusage(RUSAGE_SELF, &r);
  return r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6;
}

static void sleep_us(long us) {
  struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
  nanosleep(&ts, NULL);
}

static int bound_socket(const char *ip, int port) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  int big = 64 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  inet_pton(AF_INET, ip, &a.sin_addr);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    perror("bind");
    exit(1);
  }
  return fd;
}

static int do_send(char **argv) {
  int fd = bound_socket(argv[2], atoi(argv[3]));
  struct sockaddr_in d = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[3]))};
  inet_pton(AF_INET, argv[4], &d.sin_addr);
  if (connect(fd, (struct sockaddr *)&d, sizeof d) < 0) {
    perror("connect");
    return 1;
  }
  long count = atol(argv[5]);
  int size = atoi(argv[6]), per_call = atoi(argv[7]);
  double bytes_per_s = atof(argv[8]) * 1e6 / 8;
  if (per_call < 1) per_call = 1;
  if (per_call > 1) setsockopt(fd, SOL_UDP, UDP_SEGMENT, &size, sizeof size);
  char *buf = calloc((size_t)per_call, (size_t)size);
  double t0 = now_s(), c0 = cpu_s();
  long sent = 0;
  while (sent < count) {
    int k = count - sent < per_call ? (int)(count - sent) : per_call;
    /* Paced: each call leaves when the rate allows it (a sleep when that is far enough away). */
    double wait = t0 + (double)sent * size / bytes_per_s - now_s();
    if (wait > 200e-6) sleep_us((long)(wait * 1e6));
    while (now_s() < t0 + (double)sent * size / bytes_per_s) {}
    if (send(fd, buf, (size_t)k * size, 0) < 0) {
      sleep_us(100);
      continue;
    }
    sent += k;
  }
  double cpu = cpu_s() - c0;
  printf("sent %ld datagrams in %.2f s: %.3f CPU s = %.2f us per datagram\n", sent, now_s() - t0, cpu, cpu / sent * 1e6);
  return 0;
}

static int do_recv(char **argv) {
  int fd = bound_socket(argv[2], atoi(argv[3]));
  long count = atol(argv[4]);
  long pause_us = atol(argv[5]);
  static char bufs[BATCH][65536];
  struct mmsghdr m[BATCH];
  struct iovec iv[BATCH];
  for (int i = 0; i < BATCH; i++) {
    iv[i].iov_base = bufs[i];
    iv[i].iov_len = sizeof bufs[i];
    memset(&m[i], 0, sizeof m[i]);
    m[i].msg_hdr.msg_iov = &iv[i];
    m[i].msg_hdr.msg_iovlen = 1;
  }
  struct pollfd p = {fd, POLLIN, 0};
  double t0 = 0, c0 = 0;
  long got = 0, calls = 0;
  while (got < count && poll(&p, 1, 3000) > 0) {
    int r = recvmmsg(fd, m, BATCH, MSG_DONTWAIT, NULL);
    if (r <= 0) continue;
    if (calls++ == 0) {
      t0 = now_s();
      c0 = cpu_s();
    }
    got += r;
    if (pause_us > 0 && r < BATCH) sleep_us(pause_us);
  }
  double cpu = cpu_s() - c0;
  printf("received %ld datagrams in %.2f s, %ld recvmmsg calls: %.3f CPU s = %.2f us per datagram\n", got, now_s() - t0, calls, cpu,
         got > 0 ? cpu / got * 1e6 : 0);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 9 && strcmp(argv[1], "send") == 0) return do_send(argv);
  if (argc >= 6 && strcmp(argv[1], "recv") == 0) return do_recv(argv);
  fprintf(stderr, "usage: lh-udpcost send <bind_ip> <port> <dst_ip> <count> <size> <per_call> <mbit_per_s>\n"
                  "       lh-udpcost recv <bind_ip> <port> <count> <pause_us>\n");
  return 2;
}
