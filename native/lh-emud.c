/*
 * Longhaul link emulator, native datapath. Same model as src/lab/emulator-link.ts (outage ->
 * drop-tail queue -> serialization -> random loss -> delay + jitter), same PRNG and seeds, but
 * with recvmmsg/sendmmsg batches, a preallocated packet pool and one epoll_pwait2 timeout
 * (nanosecond precision) instead of Node's dgram, which tops out below 1 Gbit/s of 1500-byte
 * datagrams. Driven by src/lab/emulator-native.ts: configuration in argv (key=value), commands
 * on stdin ("s" = print stats, "q" = quit), JSON lines on stdout. Exits on stdin EOF so it never
 * outlives its driver.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SLOT_SIZE 2048          /* datagrams up to 2048 bytes (the lab's MTU is 1500) */
#define NSLOTS 65536            /* pool: 1 Gbit/s x 100 ms is ~8.5k packets per direction */
#define BATCH 64
#define MAXPORTS 16
#define WIRE_OVERHEAD 28        /* IPv4 + UDP headers, as in emulator-link.ts */
#define MIN_JITTER_EPOCH_NS 10000000.0
#define JITTER_EPOCH_PER_JITTER 4.0
#define SOCKET_BUFFER (32 * 1024 * 1024)

typedef struct { uint32_t a, b, c, d; } sfc32;

static uint32_t sfc_next(sfc32 *r) {
  uint32_t t = r->a + r->b + r->d;
  r->d++;
  r->a = r->b ^ (r->b >> 9);
  r->b = r->c + (r->c << 3);
  r->c = (r->c << 21) | (r->c >> 11);
  r->c += t;
  return t;
}
static double sfc_unit(sfc32 *r) { return sfc_next(r) / 4294967296.0; }
static void sfc_init(sfc32 *r, uint32_t seed) {
  r->a = 0x9e3779b9u; r->b = 0x243f6a88u; r->c = 0xb7e15162u; r->d = seed;
  for (int i = 0; i < 15; i++) sfc_next(r);
}

typedef struct {
  uint64_t packets_in, bytes_in, lost, outage_drops, queue_drops, delivered, bytes_delivered, max_queue_bytes;
} stats_t;

typedef struct {
  double bytes_per_ns;          /* 0: unlimited */
  double owd_ns, jitter_ns, loss, queue_bytes;
  int reorder, has_outage;
  double outage_start_ns, outage_end_ns, start_ns;
  double link_free_at, last_deliver;
  double jitter_epoch, jitter_epoch_start, jitter_from, jitter_to;
  sfc32 rng;
  uint32_t *slot; double *due; uint16_t *tag;
  uint32_t head, size, mask;
  stats_t st;
} dir_t;

static uint8_t *pool;
static uint16_t pool_len[NSLOTS];
static uint32_t free_stack[NSLOTS];
static uint32_t nfree;
static uint64_t send_errors, oversize_drops;
static volatile sig_atomic_t stop_flag;

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void dir_init(dir_t *d, uint32_t seed, double start) {
  memset(d, 0, sizeof *d);
  sfc_init(&d->rng, seed);
  d->start_ns = start;
  d->jitter_epoch_start = -1e300;
  d->slot = calloc(NSLOTS, sizeof *d->slot);
  d->due = calloc(NSLOTS, sizeof *d->due);
  d->tag = calloc(NSLOTS, sizeof *d->tag);
  d->mask = NSLOTS - 1;
}

static double smooth_jitter(dir_t *d, double t) {
  double elapsed = t - d->jitter_epoch_start;
  if (elapsed >= d->jitter_epoch) {
    if (elapsed >= 2 * d->jitter_epoch) {
      d->jitter_to = (sfc_unit(&d->rng) * 2 - 1) * d->jitter_ns;
      d->jitter_epoch_start = t;
    } else {
      d->jitter_epoch_start += d->jitter_epoch;
    }
    d->jitter_from = d->jitter_to;
    d->jitter_to = (sfc_unit(&d->rng) * 2 - 1) * d->jitter_ns;
    elapsed = t - d->jitter_epoch_start;
  }
  return d->jitter_from + (d->jitter_to - d->jitter_from) * (elapsed / d->jitter_epoch);
}

/* Returns 1 if the packet is now owned by the delay line, 0 if it was dropped. */
static int dir_offer(dir_t *d, uint32_t slot, uint32_t len, uint16_t tag, double now) {
  stats_t *s = &d->st;
  s->packets_in++;
  s->bytes_in += len;
  if (d->has_outage) {
    double t = now - d->start_ns;
    if (t >= d->outage_start_ns && t < d->outage_end_ns) { s->outage_drops++; return 0; }
  }
  double sent = now;
  if (d->bytes_per_ns > 0) {
    double wire = len + WIRE_OVERHEAD;
    double backlog_ns = d->link_free_at - now;
    if (backlog_ns > 0) {
      double backlog = backlog_ns * d->bytes_per_ns;
      if (backlog + wire > d->queue_bytes) { s->queue_drops++; return 0; }
      if (backlog + wire > s->max_queue_bytes) s->max_queue_bytes = (uint64_t)(backlog + wire + 0.5);
      sent = d->link_free_at + wire / d->bytes_per_ns;
    } else {
      sent = now + wire / d->bytes_per_ns;
    }
    d->link_free_at = sent;
  }
  if (d->loss > 0 && sfc_unit(&d->rng) < d->loss) { s->lost++; return 0; }
  if (d->size == NSLOTS) { s->queue_drops++; return 0; }
  double at = sent + d->owd_ns;
  uint32_t pos = d->size, mask = d->mask;
  if (d->reorder) {
    if (d->jitter_ns > 0) at += (sfc_unit(&d->rng) * 2 - 1) * d->jitter_ns;
    if (at < sent) at = sent;
    while (pos > 0) {
      uint32_t prev = (d->head + pos - 1) & mask;
      if (d->due[prev] <= at) break;
      uint32_t cur = (d->head + pos) & mask;
      d->slot[cur] = d->slot[prev]; d->due[cur] = d->due[prev]; d->tag[cur] = d->tag[prev];
      pos--;
    }
  } else {
    if (d->jitter_ns > 0) at += smooth_jitter(d, sent);
    if (at < sent) at = sent;
    if (at < d->last_deliver) at = d->last_deliver;
    d->last_deliver = at;
  }
  uint32_t i = (d->head + pos) & mask;
  d->slot[i] = slot; d->due[i] = at; d->tag[i] = tag;
  d->size++;
  return 1;
}

typedef struct {
  int nports;
  int ports[MAXPORTS];
  int fd[2][MAXPORTS];                 /* [0] = A side, [1] = B side */
  struct sockaddr_in peer[2][MAXPORTS];
} relay_t;

static relay_t R;
static dir_t dirs[2];                  /* [0] = A->B (arrives on A side), [1] = B->A */

static struct mmsghdr out_msgs[BATCH];
static struct iovec out_iov[BATCH];
static uint32_t out_slots[BATCH];

static void flush_out(int fd, int n) {
  int done = 0;
  while (done < n) {
    int r = sendmmsg(fd, out_msgs + done, n - done, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      send_errors += n - done;      /* buffer full or no route: the datagrams are gone */
      break;
    }
    done += r;
  }
  for (int k = 0; k < n; k++) free_stack[nfree++] = out_slots[k];
}

/* Sends every due packet of direction di out of side `side`. */
static void deliver_due(int di, int side, double now) {
  dir_t *d = &dirs[di];
  int n = 0, cur = -1;
  while (d->size > 0 && d->due[d->head] <= now) {
    uint32_t i = d->head;
    int tag = d->tag[i];
    if (n > 0 && (n == BATCH || tag != cur)) { flush_out(R.fd[side][cur], n); n = 0; }
    cur = tag;
    uint32_t slot = d->slot[i];
    out_iov[n].iov_base = pool + (size_t)slot * SLOT_SIZE;
    out_iov[n].iov_len = pool_len[slot];
    memset(&out_msgs[n].msg_hdr, 0, sizeof out_msgs[n].msg_hdr);
    out_msgs[n].msg_hdr.msg_iov = &out_iov[n];
    out_msgs[n].msg_hdr.msg_iovlen = 1;
    out_msgs[n].msg_hdr.msg_name = &R.peer[side][tag];
    out_msgs[n].msg_hdr.msg_namelen = sizeof(struct sockaddr_in);
    out_slots[n] = slot;
    n++;
    d->head = (i + 1) & d->mask;
    d->size--;
    d->st.delivered++;
    d->st.bytes_delivered += pool_len[slot];
  }
  if (n > 0) flush_out(R.fd[side][cur], n);
}

static struct mmsghdr in_msgs[BATCH];
static struct iovec in_iov[BATCH];
static struct sockaddr_in in_addr[BATCH];
static uint32_t in_slots[BATCH];
static uint8_t scratch[SLOT_SIZE];
static char in_ctrl[BATCH][CMSG_SPACE(sizeof(struct timespec))];

/*
 * Arrival time of a datagram on the monotonic clock, from its kernel receive timestamp
 * (SO_TIMESTAMPNS, realtime). Using when the kernel got it, not when we read it, means a
 * moment without CPU (a busy machine) neither steals link capacity nor moves an outage:
 * packets that waited in the socket are modelled at their true arrival times.
 */
static double arrival_ns(struct msghdr *h, double now_mono, double real_minus_mono) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c != NULL; c = CMSG_NXTHDR(h, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMPNS) {
      struct timespec ts;
      memcpy(&ts, CMSG_DATA(c), sizeof ts);
      double t = (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec - real_minus_mono;
      return t < now_mono ? t : now_mono;
    }
  }
  return now_mono;
}

static double real_minus_mono_ns(void) {
  struct timespec r, m;
  clock_gettime(CLOCK_REALTIME, &r);
  clock_gettime(CLOCK_MONOTONIC, &m);
  return ((double)r.tv_sec - (double)m.tv_sec) * 1e9 + ((double)r.tv_nsec - (double)m.tv_nsec);
}

/* Drains up to a few batches from one socket into direction `side` (A side feeds A->B). */
static void receive(int side, int tag) {
  int fd = R.fd[side][tag];
  dir_t *d = &dirs[side];
  for (int round = 0; round < 8; round++) {
    int n = 0;
    for (; n < BATCH; n++) {
      uint32_t slot;
      if (nfree > 0) { slot = free_stack[--nfree]; in_iov[n].iov_base = pool + (size_t)slot * SLOT_SIZE; }
      else { slot = UINT32_MAX; in_iov[n].iov_base = scratch; }
      in_slots[n] = slot;
      in_iov[n].iov_len = SLOT_SIZE;
      memset(&in_msgs[n].msg_hdr, 0, sizeof in_msgs[n].msg_hdr);
      in_msgs[n].msg_hdr.msg_iov = &in_iov[n];
      in_msgs[n].msg_hdr.msg_iovlen = 1;
      in_msgs[n].msg_hdr.msg_name = &in_addr[n];
      in_msgs[n].msg_hdr.msg_namelen = sizeof in_addr[n];
      in_msgs[n].msg_hdr.msg_control = in_ctrl[n];
      in_msgs[n].msg_hdr.msg_controllen = sizeof in_ctrl[n];
    }
    int r = recvmmsg(fd, in_msgs, BATCH, MSG_DONTWAIT, NULL);
    int got = r < 0 ? 0 : r;
    double now = now_ns();
    double offset = got > 0 ? real_minus_mono_ns() : 0;
    for (int k = 0; k < got; k++) {
      uint32_t slot = in_slots[k];
      uint32_t len = in_msgs[k].msg_len;
      struct sockaddr_in *from = &in_addr[k];
      struct sockaddr_in *p = &R.peer[side][tag];
      if (from->sin_port != p->sin_port || from->sin_addr.s_addr != p->sin_addr.s_addr) *p = *from;
      if (slot == UINT32_MAX) { d->st.packets_in++; d->st.bytes_in += len; d->st.queue_drops++; continue; }
      if (in_msgs[k].msg_hdr.msg_flags & MSG_TRUNC) { oversize_drops++; free_stack[nfree++] = slot; continue; }
      pool_len[slot] = (uint16_t)len;
      if (!dir_offer(d, slot, len, (uint16_t)tag, arrival_ns(&in_msgs[k].msg_hdr, now, offset))) free_stack[nfree++] = slot;
    }
    for (int k = got; k < BATCH; k++) if (in_slots[k] != UINT32_MAX) free_stack[nfree++] = in_slots[k];
    if (got < BATCH) break;
  }
}

static void print_stats_dir(FILE *f, const char *name, const stats_t *s) {
  fprintf(f, "\"%s\":{\"packetsIn\":%lu,\"bytesIn\":%lu,\"lost\":%lu,\"outageDrops\":%lu,\"queueDrops\":%lu,"
             "\"delivered\":%lu,\"bytesDelivered\":%lu,\"maxQueueBytes\":%lu}",
          name, s->packets_in, s->bytes_in, s->lost, s->outage_drops, s->queue_drops, s->delivered,
          s->bytes_delivered, s->max_queue_bytes);
}

static void print_stats(double start, int final) {
  printf("{\"type\":\"stats\",\"final\":%s,\"uptimeMs\":%.0f,", final ? "true" : "false", (now_ns() - start) / 1e6);
  print_stats_dir(stdout, "aToB", &dirs[0].st);
  putchar(',');
  print_stats_dir(stdout, "bToA", &dirs[1].st);
  printf(",\"sendErrors\":%lu,\"oversizeDrops\":%lu}\n", send_errors, oversize_drops);
  fflush(stdout);
}

static int open_socket(const char *addr, int port) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int sz = SOCKET_BUFFER;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz) < 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz) < 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
  if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) { errno = EINVAL; close(fd); return -1; }
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) { int e = errno; close(fd); errno = e; return -1; }
  return fd;
}

static void on_signal(int sig) { (void)sig; stop_flag = 1; }

/* Replay: deliver the head of the delay line, printing "idx deliver_ms". */
static void replay_deliver(dir_t *d, const uint32_t *idx_of_slot) {
  uint32_t slot = d->slot[d->head];
  printf("%u %.9f\n", idx_of_slot[slot], d->due[d->head] / 1e6);
  d->head = (d->head + 1) & d->mask;
  d->size--;
  d->st.delivered++;
  d->st.bytes_delivered += pool_len[slot];
  free_stack[nfree++] = slot;
}

/*
 * Model replay (no sockets): arrivals "t_ms len" on stdin go through direction A->B with the
 * clock set to each arrival; prints "idx deliver_ms" per delivered packet and the counters.
 * Lets a test check that this model and emulator-link.ts agree packet for packet.
 */
static int replay(void) {
  static uint32_t idx_of_slot[NSLOTS];
  dir_t *d = &dirs[0];
  double t_ms;
  unsigned len;
  uint32_t idx = 0;
  while (scanf("%lf %u", &t_ms, &len) == 2) {
    double t = t_ms * 1e6;
    while (d->size > 0 && d->due[d->head] <= t) replay_deliver(d, idx_of_slot);
    if (nfree == 0) { fprintf(stderr, "lh-emud: replay pool exhausted\n"); return 1; }
    uint32_t slot = free_stack[--nfree];
    pool_len[slot] = (uint16_t)len;
    idx_of_slot[slot] = idx++;
    if (!dir_offer(d, slot, len, 0, t)) free_stack[nfree++] = slot;
  }
  while (d->size > 0) replay_deliver(d, idx_of_slot);
  printf("{");
  print_stats_dir(stdout, "stats", &d->st);
  printf("}\n");
  return 0;
}

int main(int argc, char **argv) {
  double rate_bps = 0, rtt_ms = 0, loss = 0, jitter_ms = 0, queue_bytes = 0, outage_start = 0, outage_end = 0;
  int reorder = 0, has_outage = 0, replay_mode = 0;
  uint32_t seed = 1;
  const char *addr[2] = { "198.18.1.1", "198.18.2.1" }, *peer[2] = { "198.18.1.2", "198.18.2.2" };
  R.nports = 0;
  for (int i = 1; i < argc; i++) {
    char *eq = strchr(argv[i], '=');
    if (eq == NULL) { fprintf(stderr, "lh-emud: bad argument %s\n", argv[i]); return 2; }
    *eq = 0;
    const char *k = argv[i], *v = eq + 1;
    if (!strcmp(k, "rate_bps")) rate_bps = atof(v);
    else if (!strcmp(k, "rtt_ms")) rtt_ms = atof(v);
    else if (!strcmp(k, "loss")) loss = atof(v);
    else if (!strcmp(k, "jitter_ms")) jitter_ms = atof(v);
    else if (!strcmp(k, "queue_bytes")) queue_bytes = atof(v);
    else if (!strcmp(k, "reorder")) reorder = atoi(v);
    else if (!strcmp(k, "outage_ms")) { has_outage = sscanf(v, "%lf-%lf", &outage_start, &outage_end) == 2; }
    else if (!strcmp(k, "seed")) seed = (uint32_t)strtoul(v, NULL, 10);
    else if (!strcmp(k, "replay")) replay_mode = atoi(v);
    else if (!strcmp(k, "a_listen")) addr[0] = v;
    else if (!strcmp(k, "b_listen")) addr[1] = v;
    else if (!strcmp(k, "a_peer")) peer[0] = v;
    else if (!strcmp(k, "b_peer")) peer[1] = v;
    else if (!strcmp(k, "port")) { if (R.nports == MAXPORTS) { fprintf(stderr, "lh-emud: too many ports\n"); return 2; } R.ports[R.nports++] = atoi(v); }
    else { fprintf(stderr, "lh-emud: unknown option %s\n", k); return 2; }
  }
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa = { .sa_handler = on_signal };
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  pool = malloc((size_t)NSLOTS * SLOT_SIZE);
  if (pool == NULL) { fprintf(stderr, "lh-emud: out of memory\n"); return 1; }
  for (uint32_t i = 0; i < NSLOTS; i++) free_stack[i] = NSLOTS - 1 - i;
  nfree = NSLOTS;

  double start = replay_mode ? 0 : now_ns();
  for (int di = 0; di < 2; di++) {
    dir_t *d = &dirs[di];
    dir_init(d, di == 0 ? seed : (seed ^ 0x5bd1e995u), start);
    d->bytes_per_ns = rate_bps > 0 ? rate_bps / 8e9 : 0;
    d->owd_ns = rtt_ms * 1e6 / 2;
    d->loss = loss;
    d->jitter_ns = jitter_ms * 1e6;
    d->queue_bytes = queue_bytes;
    d->reorder = reorder;
    d->has_outage = has_outage;
    d->outage_start_ns = outage_start * 1e6;
    d->outage_end_ns = outage_end * 1e6;
    d->jitter_epoch = jitter_ms * 1e6 * JITTER_EPOCH_PER_JITTER;
    if (d->jitter_epoch < MIN_JITTER_EPOCH_NS) d->jitter_epoch = MIN_JITTER_EPOCH_NS;
  }

  if (replay_mode) return replay();

  int ep = epoll_create1(EPOLL_CLOEXEC);
  for (int side = 0; side < 2; side++) {
    for (int i = 0; i < R.nports; i++) {
      int fd = open_socket(addr[side], R.ports[i]);
      if (fd < 0) { fprintf(stderr, "lh-emud: bind %s:%d: %s\n", addr[side], R.ports[i], strerror(errno)); return 1; }
      R.fd[side][i] = fd;
      struct sockaddr_in *p = &R.peer[side][i];
      p->sin_family = AF_INET;
      p->sin_port = htons((uint16_t)R.ports[i]);
      inet_pton(AF_INET, peer[side], &p->sin_addr);
      struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)(side << 16 | i) };
      epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
  }
  struct epoll_event sev = { .events = EPOLLIN, .data.u32 = 0xffffffffu };
  epoll_ctl(ep, EPOLL_CTL_ADD, STDIN_FILENO, &sev);
  printf("{\"type\":\"ready\",\"pid\":%d}\n", getpid());
  fflush(stdout);

  struct epoll_event evs[2 * MAXPORTS + 1];
  while (!stop_flag) {
    double now = now_ns();
    deliver_due(0, 1, now);   /* A->B leaves on the B side */
    deliver_due(1, 0, now);
    double next = 1e300;
    for (int di = 0; di < 2; di++) if (dirs[di].size > 0 && dirs[di].due[dirs[di].head] < next) next = dirs[di].due[dirs[di].head];
    struct timespec ts, *tsp = NULL;
    if (next < 1e300) {
      double wait = next - now_ns();
      if (wait < 0) wait = 0;
      ts.tv_sec = (time_t)(wait / 1e9);
      ts.tv_nsec = (long)(wait - (double)ts.tv_sec * 1e9);
      tsp = &ts;
    }
    int n = epoll_pwait2(ep, evs, 2 * MAXPORTS + 1, tsp, NULL);
    if (n < 0) { if (errno == EINTR) continue; perror("lh-emud: epoll"); break; }
    for (int e = 0; e < n; e++) {
      uint32_t id = evs[e].data.u32;
      if (id == 0xffffffffu) {
        char cmd[256];
        ssize_t r = read(STDIN_FILENO, cmd, sizeof cmd);
        if (r <= 0) { stop_flag = 1; break; }  /* driver gone */
        for (ssize_t k = 0; k < r; k++) {
          if (cmd[k] == 's') {
            /* A backlog read in this same wakeup (after a stall) is already due: deliver it so
               the snapshot does not show packets as in flight that the model has sent. */
            double t = now_ns();
            deliver_due(0, 1, t);
            deliver_due(1, 0, t);
            print_stats(start, 0);
          }
          else if (cmd[k] == 'q') stop_flag = 1;
        }
      } else {
        receive((int)(id >> 16), (int)(id & 0xffff));
      }
    }
  }
  double t = now_ns();
  deliver_due(0, 1, t);
  deliver_due(1, 0, t);
  print_stats(start, 1);
  return 0;
}
