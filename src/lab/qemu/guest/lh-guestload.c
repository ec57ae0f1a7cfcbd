// lh-guestload: the busy application inside the lab's QEMU guest (static, runs as a child of
// the initramfs's /init).
//
// 1. Fills a share of the guest's RAM with 4 KiB pages of a set mix (zero / text-like /
//    structured / incompressible, the same classes and runs of 8 as the lab's `vm` payload), keeping a
//    64-bit checksum of every page it wrote.
// 2. Keeps dirtying pages at a set rate (uniformly chosen, each rewrite a new version of the
//    page's content, so a stale copy on the destination fails its checksum).
// 3. Talks to the host over a serial line (line-based, raw tty): a heartbeat every 250 ms with
//    a boot id and a sequence number (a rebooted guest gets a new boot id, a frozen one stops
//    counting), and on "verify" re-checks every page and answers with the count of bad pages.
//
// Usage: lh-guestload TTY SHARE MIX DIRTY SEED
//   SHARE  fraction of MemTotal to fill (0..0.95; capped so the kernel keeps 24 MiB)
//   MIX    zero,text,structured,random weights (e.g. 35,20,20,25)
//   DIRTY  pages dirtied per second
//   SEED   content seed

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define WORDS_PER_PAGE (PAGE / 8)
#define ARENA (1u << 20)
#define HEARTBEAT_NS 250000000ull
#define TICK_NS 10000000ull
// The kernel, the initramfs (in RAM) and the page tables need room besides the filled share.
#define KEEP_FREE (12ull << 20)

enum { ZERO, TEXT, STRUCTURED, RANDOM };

static int tty = -1;
static uint8_t *mem;
static uint64_t *sums;
static uint32_t *versions;
static uint8_t *classes;
static uint64_t pages;
static uint64_t seed;
static uint8_t *text_arena, *struct_arena;

static uint64_t mix64(uint64_t x) {
  // splitmix64's finaliser: a good 64-bit hash of page index, version and seed.
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
  char line[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (n > (int)sizeof line - 1) n = sizeof line - 1;
  for (int off = 0; off < n;) {
    ssize_t w = write(tty, line + off, (size_t)(n - off));
    if (w < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return;
    }
    off += (int)w;
  }
}

static uint64_t checksum(const uint8_t *p) {
  const uint64_t *w = (const uint64_t *)p;
  uint64_t h = 0xcbf29ce484222325ull;
  for (int i = 0; i < WORDS_PER_PAGE; i++) h = (h ^ w[i]) * 0x100000001b3ull;
  return h;
}

// Text-like material: log lines and prose from a small vocabulary (compresses ~3x).
static void build_text_arena(void) {
  static const char *words[] = {"the", "of", "and", "to", "in", "is", "that", "for", "request", "response", "server",
    "client", "connection", "timeout", "retry", "error", "cache", "memory", "disk", "volume", "block", "page", "queue",
    "worker", "thread", "process", "service", "cluster", "migration", "snapshot", "backup", "network", "latency",
    "gateway", "database", "table", "index", "query", "commit", "lock", "record", "value", "config", "handler"};
  static const char *levels[] = {"INFO ", "INFO ", "INFO ", "DEBUG", "WARN ", "ERROR"};
  const int nwords = sizeof words / sizeof *words;
  text_arena = malloc(ARENA + PAGE);
  uint64_t r = mix64(seed ^ 0x7e57);
  uint64_t clock = 1700000000000ull;
  size_t at = 0;
  char line[256];
  while (at < ARENA + PAGE) {
    r = mix64(r);
    clock += r % 40;
    int n = snprintf(line, sizeof line, "%llu %s [%s-%llu] %s %s %s /api/v1/items/%llu status=%d took=%llums\n",
      (unsigned long long)clock, levels[r % 6], words[(r >> 8) % 12 + 8], (unsigned long long)((r >> 16) % 4),
      words[((r >> 20) % nwords) * ((r >> 26) % 2)], words[(r >> 32) % nwords], words[(r >> 40) % nwords],
      (unsigned long long)((r >> 44) % 1000), (r >> 54) % 10 ? 200 : 503, (unsigned long long)((r >> 58) % 40));
    for (int i = 0; i < n && at < ARENA + PAGE; i++) text_arena[at++] = (uint8_t)line[i];
  }
}

// Structured material: 64-byte records (pointers, ids, timestamps, small counters; ~4x).
static void build_struct_arena(void) {
  struct_arena = calloc(1, ARENA + PAGE);
  uint64_t r = mix64(seed ^ 0x57c7), ptr = 0x7f3a00000000ull, id = 1000, stamp = 1700000000000000ull;
  for (size_t off = 0; off + 64 <= ARENA + PAGE; off += 64) {
    r = mix64(r);
    ptr += 64 * (1 + r % 4);
    stamp += (r >> 8) % 4096;
    uint64_t *w = (uint64_t *)(struct_arena + off);
    w[0] = ptr;
    w[1] = (id++ & 0xffffffffull) | ((r >> 16) % 8) << 32 | (uint64_t)((r >> 20) % 10 < 7 ? 0x11 : 0x10) << 48;
    w[2] = stamp;
    w[3] = 1 + (r >> 24) % 3;
    w[4] = ptr - 64 * ((r >> 28) % 64);
    if ((r >> 40) & 1) w[5] = (r >> 41) % 256;
  }
}

/** Writes version `v` of page `i` and records its checksum. */
static void write_page(uint64_t i, uint32_t v) {
  uint8_t *p = mem + i * PAGE;
  uint64_t h = mix64(mix64(seed ^ (i << 20)) ^ v);
  switch (classes[i]) {
    case ZERO:
      memset(p, 0, PAGE);
      break;
    case TEXT:
    case STRUCTURED: {
      const uint8_t *arena = classes[i] == TEXT ? text_arena : struct_arena;
      memcpy(p, arena + (h % (ARENA / 64)) * 64, PAGE);
      // A stamp makes every (page, version) distinct without changing the page's character.
      uint64_t *w = (uint64_t *)p;
      w[0] = i;
      w[1] = v;
      break;
    }
    case RANDOM: {
      uint64_t *w = (uint64_t *)p, x = h | 1;
      for (int k = 0; k < WORDS_PER_PAGE; k++) {
        // xorshift64*: incompressible to lz4 and zstd.
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        w[k] = x * 0x2545f4914f6cdd1dull;
      }
      break;
    }
  }
  versions[i] = v;
  sums[i] = checksum(p);
}

static void verify(void) {
  uint64_t t0 = now_ns(), bad = 0, first_bad = UINT64_MAX;
  for (uint64_t i = 0; i < pages; i++) {
    if (checksum(mem + i * PAGE) != sums[i]) {
      if (bad == 0) first_bad = i;
      bad++;
    }
  }
  say("verified pages=%llu bad=%llu first_bad=%lld ms=%llu\n", (unsigned long long)pages, (unsigned long long)bad,
    bad ? (long long)first_bad : -1ll, (unsigned long long)((now_ns() - t0) / 1000000));
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: lh-guestload TTY SHARE MIX DIRTY SEED\n");
    return 2;
  }
  tty = open(argv[1], O_RDWR | O_NOCTTY);
  if (tty < 0) {
    perror(argv[1]);
    return 1;
  }
  struct termios t;
  if (tcgetattr(tty, &t) == 0) {
    cfmakeraw(&t);
    cfsetspeed(&t, B115200);
    tcsetattr(tty, TCSANOW, &t);
  }
  double share = atof(argv[2]);
  unsigned w[4] = {0, 0, 0, 0};
  if (sscanf(argv[3], "%u,%u,%u,%u", &w[0], &w[1], &w[2], &w[3]) != 4 || w[0] + w[1] + w[2] + w[3] == 0) {
    say("error bad mix %s\n", argv[3]);
    return 2;
  }
  double dirty_rate = atof(argv[4]);
  seed = strtoull(argv[5], NULL, 10);

  struct sysinfo si;
  sysinfo(&si);
  uint64_t total = (uint64_t)si.totalram * si.mem_unit;
  uint64_t want = (uint64_t)(share * (double)total);
  uint64_t avail = (uint64_t)si.freeram * si.mem_unit;
  uint64_t bookkeeping = want / PAGE * 13;
  if (want + bookkeeping + KEEP_FREE + 2 * ARENA > avail) want = avail > KEEP_FREE + 2 * ARENA ? (avail - KEEP_FREE - 2 * ARENA) * PAGE / (PAGE + 13) : 0;
  pages = want / PAGE;
  if (pages == 0) {
    say("error no memory to fill (total %llu free %llu)\n", (unsigned long long)total, (unsigned long long)avail);
    return 1;
  }
  mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  sums = malloc(pages * sizeof *sums);
  versions = malloc(pages * sizeof *versions);
  classes = malloc(pages);
  if (mem == MAP_FAILED || !sums || !versions || !classes) {
    say("error allocation of %llu pages failed\n", (unsigned long long)pages);
    return 1;
  }
  build_text_arena();
  build_struct_arena();
  uint64_t boot_id = mix64(now_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL));
  unsigned total_w = w[0] + w[1] + w[2] + w[3];
  uint64_t count[4] = {0, 0, 0, 0};
  uint64_t t0 = now_ns();
  for (uint64_t i = 0; i < pages; i++) {
    // Classes come in runs of 8 pages (32 KiB), as in the lab's `vm` payload: real memory is clustered.
    unsigned k = (unsigned)(mix64(seed * 0x51ed27ull + (i >> 3)) % total_w);
    classes[i] = k < w[0] ? ZERO : k < w[0] + w[1] ? TEXT : k < w[0] + w[1] + w[2] ? STRUCTURED : RANDOM;
    count[classes[i]]++;
    write_page(i, 0);
  }
  say("ready pages=%llu zero=%llu text=%llu structured=%llu random=%llu total_kib=%llu fill_ms=%llu boot=%016llx\n",
    (unsigned long long)pages, (unsigned long long)count[0], (unsigned long long)count[1], (unsigned long long)count[2],
    (unsigned long long)count[3], (unsigned long long)(total >> 10), (unsigned long long)((now_ns() - t0) / 1000000),
    (unsigned long long)boot_id);

  fcntl(tty, F_SETFL, fcntl(tty, F_GETFL) | O_NONBLOCK);
  uint64_t start = now_ns(), next_beat = start, dirtied = 0, seq = 0, r = seed ^ boot_id;
  char cmd[64];
  size_t cmd_len = 0;
  for (;;) {
    uint64_t now = now_ns();
    // Dirty the pages owed at the set rate since start (a late tick catches up, bounded to 1 s).
    uint64_t owed = (uint64_t)((double)(now - start) / 1e9 * dirty_rate);
    if (owed > dirtied + (uint64_t)dirty_rate + 1) dirtied = owed - (uint64_t)dirty_rate - 1;
    while (dirtied < owed) {
      r = mix64(r);
      uint64_t i = r % pages;
      write_page(i, versions[i] + 1);
      dirtied++;
    }
    if (now >= next_beat) {
      say("hb seq=%llu boot=%016llx up_ms=%llu dirtied=%llu\n", (unsigned long long)seq++, (unsigned long long)boot_id,
        (unsigned long long)((now - start) / 1000000), (unsigned long long)dirtied);
      next_beat += HEARTBEAT_NS;
      if (next_beat < now) next_beat = now + HEARTBEAT_NS;
    }
    char c;
    while (read(tty, &c, 1) == 1) {
      if (c == '\n' || c == '\r') {
        cmd[cmd_len] = 0;
        if (strcmp(cmd, "verify") == 0) verify();
        else if (strcmp(cmd, "ping") == 0) say("pong boot=%016llx\n", (unsigned long long)boot_id);
        cmd_len = 0;
      } else if (cmd_len < sizeof cmd - 1) {
        cmd[cmd_len++] = c;
      }
    }
    struct timespec pause = {0, TICK_NS};
    nanosleep(&pause, NULL);
  }
}
