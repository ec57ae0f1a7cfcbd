/*
 * lh_udp: batched UDP for the gateway's WAN socket (Node-API addon, loaded by
 * src/gateway/udp-batch.ts). node:dgram makes one syscall and one JS callback per datagram;
 * here sendmmsg() sends a whole flush of packets in one call and recvmmsg() takes up to
 * `maxBatch` datagrams per readiness event, with one JS call per batch.
 *
 * The addon owns the socket (non-blocking, CLOEXEC). Receive readiness comes from a uv_poll
 * handle on Node's own event loop, so everything runs on the JS thread: no locks, no thread hops.
 * Buffers are JS typed arrays kept alive by references while the poll runs; the JS side
 * copies every datagram out before the next batch overwrites its slot.
 *
 * Errors: a failed setup call throws an Error shaped like Node's (code "EADDRINUSE", errno,
 * syscall, message "bind EADDRINUSE 127.0.0.1:4500"); the datapath returns -errno instead.
 */
#define _GNU_SOURCE
#include <node_api.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/timerfd.h>
#include <malloc.h>
#include <time.h>
#include <unistd.h>

/*
 * The few libuv calls we need. node-api-headers ships no uv.h, and libuv's 1.x ABI is stable:
 * the handle is sized at run time with uv_handle_size() and only its first public field
 * (`void *data`) is touched. The node binary exports these symbols.
 */
typedef struct uv_loop_s uv_loop_t;
typedef struct uv_poll_s uv_poll_t;
typedef struct uv_handle_s uv_handle_t;
typedef void (*uv_poll_cb)(uv_poll_t *handle, int status, int events);
typedef void (*uv_close_cb)(uv_handle_t *handle);
extern size_t uv_handle_size(int type);
extern int uv_poll_init_socket(uv_loop_t *loop, uv_poll_t *handle, int fd);
extern int uv_poll_init(uv_loop_t *loop, uv_poll_t *handle, int fd);
extern int uv_poll_start(uv_poll_t *handle, int events, uv_poll_cb cb);
extern int uv_poll_stop(uv_poll_t *handle);
extern void uv_close(uv_handle_t *handle, uv_close_cb cb);
#define LH_UV_POLL 8 /* uv_handle_type UV_POLL */
#define LH_UV_READABLE 1
#define LH_UV_WRITABLE 2

#define MAX_BATCH 1024   /* UIO_MAXIOV: the kernel's limit per sendmmsg/recvmmsg call */
#define META_STRIDE 9    /* per received message: len, port, family, addr[4], segment size, age (us) */
/* UDP GSO: one message carries a run of equal-size datagrams (the last may be shorter) as one
 * buffer; the kernel builds one big packet and cuts it up at the device, or hands it whole to a
 * local receiver with UDP_GRO on. Limits: the kernel's UDP_MAX_SEGMENTS (64 on older kernels)
 * and one UDP payload's maximum size. */
#define GSO_MAX_SEGS 64
#define GSO_MAX_BYTES 65000
#define RECV_ROUNDS 4    /* batches read per readiness event before yielding to the loop */
/* A kernel timestamp that reads as older than this (clock stepped) is not trusted: age 0. */
#define MAX_AGE_US 10000000

enum { EV_DATAGRAMS = 1, EV_WRITABLE = 2, EV_ERRORS = 3 };

typedef struct {
  int fd;
  int family;
  int closed;
  int external_gone;  /* the JS handle was collected: free once the poll handle is closed too */
  int closing;        /* uv handles (socket poll, timer poll) closed whose callbacks have not run */
  int poll_events;
  int gso;            /* send runs of equal-size datagrams as one UDP_SEGMENT message */
  int want_writable;  /* report writability (event 2) */
  /* Receive coalescing (setRecvCoalescing): after a batch, reads pause for coalesce_us and the
   * next read takes what arrived meanwhile, instead of waking once per datagram or two. */
  int coalesce_us;
  int coalescing;     /* between batches: the socket is not polled, the timer is armed */
  /* Datagrams read at once within the current pause-length window (see COALESCE_MIN_DATAGRAMS). */
  int burst_count;
  uint64_t burst_start_ns;
  int tfd;            /* timerfd for the pause, -1 until coalescing is asked for */
  uv_poll_t *tpoll;
  napi_env env;
  uv_poll_t *poll;
  napi_ref cb_ref, recv_ref, meta_ref;
  napi_async_context actx;
  uint8_t *recv_base;
  int32_t *meta;
  size_t slot;
  int max_batch;
  struct mmsghdr msgs[MAX_BATCH];
  struct iovec iov[MAX_BATCH];
  int32_t segs[MAX_BATCH]; /* datagrams per sent message */
  /* UDP_SEGMENT (send) or UDP_GRO and the receive timestamp (receive) per message */
  union { char buf[CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(struct timespec))]; struct cmsghdr align; } ctrl[MAX_BATCH];
  struct sockaddr_storage *addrs; /* receive sources, max_batch entries */
  double read_mono_ms; /* when the last batch was read, CLOCK_MONOTONIC (performance.now()'s clock) */
} lh_sock;

/* ---- errors ------------------------------------------------------------------------------ */

static napi_value throw_errno(napi_env env, int err, const char *syscall, const char *detail) {
  const char *name = strerrorname_np(err);
  if (name == NULL) name = "EUNKNOWN";
  char msg[256];
  if (detail && *detail) snprintf(msg, sizeof msg, "%s %s %s", syscall, name, detail);
  else snprintf(msg, sizeof msg, "%s %s (%s)", syscall, name, strerror(err));
  napi_value code, message, error, errnum, sys;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_create_int32(env, -err, &errnum);
  napi_set_named_property(env, error, "errno", errnum);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sys);
  napi_set_named_property(env, error, "syscall", sys);
  napi_throw(env, error);
  return NULL;
}

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

/* ---- argument helpers ---------------------------------------------------------------------- */

#define GET_ARGS(n)                                                                  \
  size_t argc = (n);                                                                 \
  napi_value argv[(n) > 0 ? (n) : 1];                                                \
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;

static lh_sock *sock_arg(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || p == NULL) {
    throw_type(env, "expected an lh_udp socket handle");
    return NULL;
  }
  lh_sock *s = p;
  if (s->closed) {
    napi_throw_error(env, "ERR_SOCKET_CLOSED", "socket is closed");
    return NULL;
  }
  return s;
}

static int int_arg(napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok;
}

/* A typed array of the given element type: its data and element count. */
static int typed_arg(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *len) {
  bool is_ta = false;
  napi_is_typedarray(env, v, &is_ta);
  if (!is_ta) return 0;
  napi_typedarray_type type;
  napi_value ab;
  size_t off;
  return napi_get_typedarray_info(env, v, &type, len, data, &ab, &off) == napi_ok && type == want;
}

static int bytes_arg(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  return typed_arg(env, v, napi_uint8_array, (void **)data, len);
}

static int int32s_arg(napi_env env, napi_value v, int32_t **data, size_t *len) {
  return typed_arg(env, v, napi_int32_array, (void **)data, len);
}

/* A numeric address (IPv6 scope ids allowed, no name lookup) and port into a sockaddr. */
static int parse_addr(napi_env env, napi_value host_v, int32_t port, int family,
                      struct sockaddr_storage *out, socklen_t *out_len, char *host, size_t host_cap) {
  size_t n;
  if (napi_get_value_string_utf8(env, host_v, host, host_cap, &n) != napi_ok) return EINVAL;
  if (port < 0 || port > 65535) return EINVAL;
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = family;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_NUMERICHOST;
  /* A udp6 socket also reaches IPv4 peers, written as v4-mapped addresses. */
  if (family == AF_INET6) hints.ai_flags |= AI_V4MAPPED;
  if (getaddrinfo(host, NULL, &hints, &res) != 0 || res == NULL) return EINVAL;
  memcpy(out, res->ai_addr, res->ai_addrlen);
  *out_len = res->ai_addrlen;
  freeaddrinfo(res);
  if (family == AF_INET) ((struct sockaddr_in *)out)->sin_port = htons((uint16_t)port);
  else ((struct sockaddr_in6 *)out)->sin6_port = htons((uint16_t)port);
  return 0;
}

/* ---- lifetime ------------------------------------------------------------------------------ */

static void on_poll_closed(uv_handle_t *h) {
  lh_sock *s = *(lh_sock **)h;
  free(h);
  if (--s->closing == 0 && s->external_gone) {
    free(s->addrs);
    free(s);
  }
}

static void cleanup_hook(void *arg);

enum { CLOSE_BY_JS, CLOSE_BY_FINALIZER, CLOSE_BY_CLEANUP_HOOK };

/* Stops polling, closes the fd, drops the JS references. Idempotent. */
static void close_sock(lh_sock *s, int by) {
  if (s->closed) return;
  s->closed = 1;
  if (s->poll) {
    s->closing++;
    uv_close((uv_handle_t *)s->poll, on_poll_closed);
    s->poll = NULL;
  }
  if (s->tpoll) {
    s->closing++;
    uv_close((uv_handle_t *)s->tpoll, on_poll_closed);
    s->tpoll = NULL;
  }
  close(s->fd);
  s->fd = -1;
  if (s->tfd >= 0) close(s->tfd);
  s->tfd = -1;
  napi_env env = s->env;
  if (s->cb_ref) napi_delete_reference(env, s->cb_ref);
  if (s->recv_ref) napi_delete_reference(env, s->recv_ref);
  if (s->meta_ref) napi_delete_reference(env, s->meta_ref);
  s->cb_ref = s->recv_ref = s->meta_ref = NULL;
  if (s->actx && by == CLOSE_BY_JS) napi_async_destroy(env, s->actx);
  s->actx = NULL;
  if (by != CLOSE_BY_CLEANUP_HOOK) napi_remove_env_cleanup_hook(env, cleanup_hook, s);
}

/* Environment teardown (process or worker exit) with the socket still open. */
static void cleanup_hook(void *arg) {
  close_sock(arg, CLOSE_BY_CLEANUP_HOOK);
}

static void finalize_sock(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  lh_sock *s = data;
  close_sock(s, CLOSE_BY_FINALIZER);
  s->external_gone = 1;
  if (s->closing == 0) {
    free(s->addrs);
    free(s);
  }
}

/* ---- setup --------------------------------------------------------------------------------- */

static void set_buffer(int fd, int force_opt, int opt, int32_t bytes) {
  if (bytes <= 0) return;
  /* FORCE ignores net.core.[rw]mem_max but needs CAP_NET_ADMIN; otherwise the capped size. */
  if (setsockopt(fd, SOL_SOCKET, force_opt, &bytes, sizeof bytes) < 0)
    setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof bytes);
}

/* open(family 4|6, host, port, reusePort, recvBufferBytes, sendBufferBytes) -> handle */
static napi_value js_open(napi_env env, napi_callback_info info) {
  GET_ARGS(6);
  int32_t fam, port, rcv, snd;
  bool reuse = false;
  if (argc < 6 || !int_arg(env, argv[0], &fam) || !int_arg(env, argv[2], &port) ||
      napi_get_value_bool(env, argv[3], &reuse) != napi_ok || !int_arg(env, argv[4], &rcv) || !int_arg(env, argv[5], &snd))
    return throw_type(env, "open(family, host, port, reusePort, recvBufferBytes, sendBufferBytes)");
  int family = fam == 6 ? AF_INET6 : AF_INET;
  struct sockaddr_storage addr;
  socklen_t alen;
  char host[INET6_ADDRSTRLEN + 64];
  if (parse_addr(env, argv[1], port, family, &addr, &alen, host, sizeof host) != 0)
    return throw_errno(env, EINVAL, "bind", "(not a numeric address and port)");
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "socket", NULL);
  int one = 1;
  if (reuse && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, e, "setsockopt", "SO_REUSEPORT");
  }
  set_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF, rcv);
  set_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF, snd);
  if (bind(fd, (struct sockaddr *)&addr, alen) < 0) {
    int e = errno;
    close(fd);
    char detail[INET6_ADDRSTRLEN + 80];
    snprintf(detail, sizeof detail, family == AF_INET6 ? "[%s]:%d" : "%s:%d", host, port);
    return throw_errno(env, e, "bind", detail);
  }
  lh_sock *s = calloc(1, sizeof *s);
  if (s == NULL) {
    close(fd);
    return throw_errno(env, ENOMEM, "open", NULL);
  }
  s->fd = fd;
  s->family = family;
  s->env = env;
  s->gso = 1;
  s->tfd = -1;
  /* Coalesced receives: a GSO sender's run arrives as one message with its segment size. */
  setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one);
  /* Each datagram's arrival time from the kernel: a batch read late (a busy loop, receive
   * coalescing) still tells the transport when every datagram really arrived. */
  setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
  napi_value ext;
  if (napi_create_external(env, s, finalize_sock, NULL, &ext) != napi_ok) {
    close(fd);
    free(s);
    return NULL;
  }
  napi_add_env_cleanup_hook(env, cleanup_hook, s);
  return ext;
}

/* connect(handle, host, port): later sends go to that peer, and only its datagrams arrive here. */
static napi_value js_connect(napi_env env, napi_callback_info info) {
  GET_ARGS(3);
  lh_sock *s = argc >= 3 ? sock_arg(env, argv[0]) : NULL;
  if (s == NULL) return NULL;
  int32_t port;
  if (!int_arg(env, argv[2], &port)) return throw_type(env, "connect(handle, host, port)");
  struct sockaddr_storage addr;
  socklen_t alen;
  char host[INET6_ADDRSTRLEN + 64];
  if (parse_addr(env, argv[1], port, s->family, &addr, &alen, host, sizeof host) != 0)
    return throw_errno(env, EINVAL, "connect", "(not a numeric address and port)");
  if (connect(s->fd, (struct sockaddr *)&addr, alen) < 0) {
    char detail[INET6_ADDRSTRLEN + 80];
    snprintf(detail, sizeof detail, s->family == AF_INET6 ? "[%s]:%d" : "%s:%d", host, port);
    return throw_errno(env, errno, "connect", detail);
  }
  return NULL;
}

/* localAddress(handle) -> [host, port] */
static napi_value js_local_address(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  lh_sock *s = sock_arg(env, argv[0]);
  if (s == NULL) return NULL;
  struct sockaddr_storage addr;
  socklen_t alen = sizeof addr;
  if (getsockname(s->fd, (struct sockaddr *)&addr, &alen) < 0) return throw_errno(env, errno, "getsockname", NULL);
  char host[NI_MAXHOST], serv[NI_MAXSERV];
  int r = getnameinfo((struct sockaddr *)&addr, alen, host, sizeof host, serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV);
  if (r != 0) return throw_errno(env, EINVAL, "getnameinfo", gai_strerror(r));
  napi_value out, h, p;
  napi_create_array_with_length(env, 2, &out);
  napi_create_string_utf8(env, host, NAPI_AUTO_LENGTH, &h);
  napi_create_int32(env, atoi(serv), &p);
  napi_set_element(env, out, 0, h);
  napi_set_element(env, out, 1, p);
  return out;
}

/* bufferSizes(handle) -> [recvBufferBytes, sendBufferBytes] as the kernel reports them */
static napi_value js_buffer_sizes(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  lh_sock *s = sock_arg(env, argv[0]);
  if (s == NULL) return NULL;
  int rcv = 0, snd = 0;
  socklen_t l = sizeof rcv;
  getsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &rcv, &l);
  l = sizeof snd;
  getsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &snd, &l);
  napi_value out, a, b;
  napi_create_array_with_length(env, 2, &out);
  napi_create_int32(env, rcv, &a);
  napi_create_int32(env, snd, &b);
  napi_set_element(env, out, 0, a);
  napi_set_element(env, out, 1, b);
  return out;
}

/* ---- send ---------------------------------------------------------------------------------- */

/* Builds one message per datagram, or per run of equal-size datagrams when GSO is on. */
static int build_messages(lh_sock *s, uint8_t *data, const int32_t *lens, int count) {
  int n = 0;
  size_t pos = 0;
  for (int i = 0; i < count;) {
    int32_t len = lens[i];
    size_t total = (size_t)len;
    int k = 1;
    if (s->gso && len > 0) {
      while (i + k < count && k < GSO_MAX_SEGS) {
        int32_t next = lens[i + k];
        if (next <= 0 || next > len || total + (size_t)next > GSO_MAX_BYTES) break;
        total += (size_t)next;
        k++;
        if (next < len) break; /* only the last segment may be shorter */
      }
    }
    struct msghdr *h = &s->msgs[n].msg_hdr;
    memset(h, 0, sizeof *h);
    s->iov[n].iov_base = data + pos;
    s->iov[n].iov_len = total;
    h->msg_iov = &s->iov[n];
    h->msg_iovlen = 1;
    if (k > 1) {
      h->msg_control = s->ctrl[n].buf;
      h->msg_controllen = CMSG_SPACE(sizeof(uint16_t));
      struct cmsghdr *c = CMSG_FIRSTHDR(h);
      c->cmsg_level = SOL_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      uint16_t seg = (uint16_t)len;
      memcpy(CMSG_DATA(c), &seg, sizeof seg);
    }
    s->segs[n] = k;
    n++;
    pos += total;
    i += k;
  }
  return n;
}

/* Returns how many datagrams (from the first) the kernel took, or -errno for the first one. */
static int send_datagrams(lh_sock *s, uint8_t *data, const int32_t *lens, int count) {
  int refused = 0;
  for (;;) {
    int n = build_messages(s, data, lens, count);
    int r = sendmmsg(s->fd, s->msgs, (unsigned)n, MSG_DONTWAIT);
    if (r > 0) {
      int sent = 0;
      for (int i = 0; i < r; i++) sent += s->segs[i];
      return sent;
    }
    if (r == 0) return 0;
    if (errno == EINTR) continue;
    /* A connected socket reports an earlier ICMP unreachable once; this datagram was not the cause. */
    if (errno == ECONNREFUSED && !refused++) continue;
    /* No GSO here (device, route MTU below a run's segment size, old kernel): plain messages from now on. */
    if (s->segs[0] > 1 && (errno == EIO || errno == EINVAL || errno == EMSGSIZE || errno == EOPNOTSUPP || errno == ENOPROTOOPT)) {
      s->gso = 0;
      continue;
    }
    return -errno;
  }
}

/*
 * sendBatch(handle, buf, lens, first, count, byteOffset) -> sent | -errno
 * Datagrams lens[first .. first+count) lie back to back in buf from byteOffset. Returns how many
 * of them (from the first) the kernel took; the caller keeps the rest. -EAGAIN: the send buffer
 * is full (ask for writability); another -errno: the first datagram failed (e.g. EMSGSIZE).
 */
static napi_value js_send_batch(napi_env env, napi_callback_info info) {
  GET_ARGS(6);
  lh_sock *s = argc >= 6 ? sock_arg(env, argv[0]) : NULL;
  if (s == NULL) return NULL;
  uint8_t *buf;
  size_t buf_len, lens_len;
  int32_t *lens, first, count, offset;
  if (!bytes_arg(env, argv[1], &buf, &buf_len) || !int32s_arg(env, argv[2], &lens, &lens_len) ||
      !int_arg(env, argv[3], &first) || !int_arg(env, argv[4], &count) || !int_arg(env, argv[5], &offset))
    return throw_type(env, "sendBatch(handle, Uint8Array, Int32Array, first, count, byteOffset)");
  if (first < 0 || count < 0 || (size_t)first + (size_t)count > lens_len || offset < 0)
    return throw_type(env, "sendBatch: first/count outside the lengths array");
  if (count > MAX_BATCH) count = MAX_BATCH;
  size_t pos = (size_t)offset;
  for (int32_t i = 0; i < count; i++) {
    int32_t len = lens[first + i];
    if (len < 0 || pos + (size_t)len > buf_len) return throw_type(env, "sendBatch: datagram outside the buffer");
    pos += (size_t)len;
  }
  int r = 0;
  if (count > 0) r = send_datagrams(s, buf + offset, lens + first, count);
  napi_value out;
  napi_create_int32(env, r, &out);
  return out;
}

/* sendOne(handle, data, host, port) -> 0 | -errno: one datagram to an address (unconnected socket). */
static napi_value js_send_one(napi_env env, napi_callback_info info) {
  GET_ARGS(4);
  lh_sock *s = argc >= 4 ? sock_arg(env, argv[0]) : NULL;
  if (s == NULL) return NULL;
  uint8_t *data;
  size_t len;
  int32_t port;
  if (!bytes_arg(env, argv[1], &data, &len) || !int_arg(env, argv[3], &port))
    return throw_type(env, "sendOne(handle, Uint8Array, host, port)");
  struct sockaddr_storage addr;
  socklen_t alen;
  char host[INET6_ADDRSTRLEN + 64];
  int r = 0;
  if (parse_addr(env, argv[2], port, s->family, &addr, &alen, host, sizeof host) != 0) {
    r = -EINVAL;
  } else {
    while (sendto(s->fd, data, len, MSG_DONTWAIT, (struct sockaddr *)&addr, alen) < 0) {
      if (errno == EINTR) continue;
      r = -errno;
      break;
    }
  }
  napi_value out;
  napi_create_int32(env, r, &out);
  return out;
}

/* ---- receive ------------------------------------------------------------------------------- */

/* One recvmmsg into the slots; fills meta. Returns the count, 0 when nothing is queued, -errno. */
static int recv_batch(lh_sock *s) {
  int n = s->max_batch;
  for (int i = 0; i < n; i++) {
    s->iov[i].iov_base = s->recv_base + (size_t)i * s->slot;
    s->iov[i].iov_len = s->slot;
    struct msghdr *h = &s->msgs[i].msg_hdr;
    memset(h, 0, sizeof *h);
    h->msg_name = &s->addrs[i];
    h->msg_namelen = sizeof s->addrs[i];
    h->msg_iov = &s->iov[i];
    h->msg_iovlen = 1;
    h->msg_control = s->ctrl[i].buf;
    h->msg_controllen = sizeof s->ctrl[i].buf;
  }
  int r;
  do r = recvmmsg(s->fd, s->msgs, (unsigned)n, MSG_DONTWAIT, NULL);
  while (r < 0 && errno == EINTR);
  if (r < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
  /* The kernel stamps arrivals with CLOCK_REALTIME: ages are taken against it, and the read
   * itself is timed on CLOCK_MONOTONIC for JS to place them on its clock. The realtime reading
   * sits between two monotonic ones and their midpoint is used: a thread preempted between the
   * readings (a virtual CPU descheduled by its host) shifted a batch's arrivals by as much as
   * the preemption (0.36 ms seen under load); a pair too far apart is read again. */
  struct timespec now, m0, m1;
  double mono_ms = 0;
  for (int tries = 0; tries < 3; tries++) {
    clock_gettime(CLOCK_MONOTONIC, &m0);
    clock_gettime(CLOCK_REALTIME, &now);
    clock_gettime(CLOCK_MONOTONIC, &m1);
    double a = (double)m0.tv_sec * 1e3 + (double)m0.tv_nsec / 1e6;
    double b = (double)m1.tv_sec * 1e3 + (double)m1.tv_nsec / 1e6;
    mono_ms = (a + b) / 2;
    if (b - a < 0.02) break;
  }
  s->read_mono_ms = mono_ms;
  for (int i = 0; i < r; i++) {
    int32_t *m = s->meta + (size_t)i * META_STRIDE;
    m[0] = (s->msgs[i].msg_hdr.msg_flags & MSG_TRUNC) ? -1 : (int32_t)s->msgs[i].msg_len;
    const struct sockaddr_storage *a = &s->addrs[i];
    if (a->ss_family == AF_INET6) {
      const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)a;
      m[1] = ntohs(a6->sin6_port);
      m[2] = 6;
      memcpy(&m[3], &a6->sin6_addr, 16);
    } else {
      const struct sockaddr_in *a4 = (const struct sockaddr_in *)a;
      m[1] = ntohs(a4->sin_port);
      m[2] = 4;
      memcpy(&m[3], &a4->sin_addr, 4);
      m[4] = m[5] = m[6] = 0;
    }
    m[7] = 0;
    m[8] = 0;
    struct msghdr *h = &s->msgs[i].msg_hdr;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c != NULL; c = CMSG_NXTHDR(h, c)) {
      if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
        uint16_t seg;
        memcpy(&seg, CMSG_DATA(c), sizeof seg);
        m[7] = seg;
      } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
        struct timespec ts;
        memcpy(&ts, CMSG_DATA(c), sizeof ts);
        int64_t age = ((int64_t)(now.tv_sec - ts.tv_sec) * 1000000000 + (now.tv_nsec - ts.tv_nsec)) / 1000;
        m[8] = age > 0 && age < MAX_AGE_US ? (int32_t)age : 0;
      }
    }
  }
  return r;
}

/* Calls the JS callback as an event-loop callback: microtasks (the batched send flush) run after it. */
static void call_js(lh_sock *s, int event, int count) {
  napi_env env = s->env;
  napi_value cb, recv, argv[3], result;
  if (s->cb_ref == NULL || napi_get_reference_value(env, s->cb_ref, &cb) != napi_ok || cb == NULL) return;
  napi_get_global(env, &recv); /* make_callback wants an object receiver */
  napi_create_int32(env, event, &argv[0]);
  napi_create_int32(env, count, &argv[1]);
  napi_create_double(env, event == EV_DATAGRAMS ? s->read_mono_ms : 0, &argv[2]);
  if (napi_make_callback(env, s->actx, recv, cb, 3, argv, &result) == napi_pending_exception) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
}

static void on_poll(uv_poll_t *handle, int status, int events);
static void on_timer(uv_poll_t *handle, int status, int events);

/* Polls the socket for what is wanted now: readability unless a coalescing pause is on, writability while asked for. */
static int update_poll(lh_sock *s) {
  int events = (s->coalescing ? 0 : LH_UV_READABLE) | (s->want_writable ? LH_UV_WRITABLE : 0);
  if (events == s->poll_events) return 0;
  s->poll_events = events;
  return events == 0 ? uv_poll_stop(s->poll) : uv_poll_start(s->poll, events, on_poll);
}

/* Reads up to RECV_ROUNDS batches, one JS call each; returns the messages read. */
static int read_rounds(lh_sock *s, int *errors) {
  int total = 0;
  for (int round = 0; round < RECV_ROUNDS && !s->closed; round++) {
    int n = recv_batch(s);
    if (n < 0) {
      (*errors)++; /* e.g. ECONNREFUSED from an ICMP unreachable: consumed, keep reading */
      continue;
    }
    if (n == 0) break;
    total += n;
    call_js(s, EV_DATAGRAMS, n);
    if (n < s->max_batch) break;
  }
  return total;
}

/* Pauses pay only while datagrams come fast: at fewer than this many per pause length (4 per ms:
 * ~45 Mbit/s of full datagrams) each is read as it arrives. A sender's acknowledgements (a few
 * hundred per second) waited up to a pause in the kernel while its window was full: at 1 Gbit/s
 * on the lab's 0.3 ms path the sender waited for the window half of the time. */
#define COALESCE_MIN_DATAGRAMS 4

static uint64_t monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* `got` datagrams were just read as they arrived: true once enough came within a pause length to start pausing. */
static int burst_wants_pause(lh_sock *s, int got) {
  uint64_t now = monotonic_ns();
  if (now - s->burst_start_ns > (uint64_t)s->coalesce_us * 1000u) {
    s->burst_start_ns = now;
    s->burst_count = 0;
  }
  s->burst_count += got;
  return s->burst_count >= COALESCE_MIN_DATAGRAMS;
}

/* Starts (or continues) a coalescing pause: the socket is left unpolled until the timer fires. */
static void pause_reads(lh_sock *s) {
  if (s->coalesce_us <= 0 || s->tfd < 0) {
    s->coalescing = 0;
    update_poll(s);
    return;
  }
  struct itimerspec it = {0};
  it.it_value.tv_nsec = (long)s->coalesce_us * 1000;
  /* Without the timer there is no pause: poll the socket again (a pause without one would never end). */
  s->coalescing = timerfd_settime(s->tfd, 0, &it, NULL) == 0;
  update_poll(s);
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  lh_sock *s = *(lh_sock **)handle;
  if (s->closed) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(s->env, &scope) != napi_ok) return;
  int errors = 0;
  if (status < 0) {
    /* A pending socket error (a connected socket's ICMP port unreachable: the peer restarting)
     * shows as POLLERR, on which libuv stops the handle. Consume the error and poll on. */
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    errors++;
    s->poll_events = -1;
    update_poll(s);
  }
  if (events & LH_UV_WRITABLE) call_js(s, EV_WRITABLE, 0);
  if (((events & LH_UV_READABLE) || status < 0) && !s->coalescing) {
    int got = read_rounds(s, &errors);
    if (got > 0 && !s->closed && burst_wants_pause(s, got)) pause_reads(s);
  }
  if (errors > 0 && !s->closed) call_js(s, EV_ERRORS, errors);
  napi_close_handle_scope(s->env, scope);
}

/* The coalescing pause is over: read what came meanwhile; pause again while datagrams keep coming fast, else read them as they arrive. */
static void on_timer(uv_poll_t *handle, int status, int events) {
  (void)status;
  (void)events;
  lh_sock *s = *(lh_sock **)handle;
  if (s->closed) return;
  uint64_t expirations;
  if (read(s->tfd, &expirations, sizeof expirations) < 0 && errno == EAGAIN) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(s->env, &scope) != napi_ok) return;
  int errors = 0;
  int got = read_rounds(s, &errors);
  if (!s->closed) {
    if (got >= COALESCE_MIN_DATAGRAMS) pause_reads(s);
    else {
      /* Slower than pauses pay for: read as they arrive (counting towards the next burst). */
      s->coalescing = 0;
      s->burst_start_ns = monotonic_ns();
      s->burst_count = got;
      update_poll(s);
    }
  }
  if (errors > 0 && !s->closed) call_js(s, EV_ERRORS, errors);
  napi_close_handle_scope(s->env, scope);
}

/* A uv_poll handle on `fd` (a socket, or another descriptor such as the timerfd) whose data
 * field points at `s`; 0, or -errno with nothing allocated. */
static int new_poll(napi_env env, lh_sock *s, int fd, int is_socket, uv_poll_t **out) {
  uv_loop_t *loop = NULL;
  napi_get_uv_event_loop(env, &loop);
  size_t hsize = uv_handle_size(LH_UV_POLL);
  uv_poll_t *poll = calloc(1, hsize < sizeof(void *) ? sizeof(void *) : hsize);
  if (poll == NULL || loop == NULL) {
    free(poll);
    return -ENOMEM;
  }
  int r = is_socket ? uv_poll_init_socket(loop, poll, fd) : uv_poll_init(loop, poll, fd);
  if (r < 0) {
    free(poll);
    return r;
  }
  *(lh_sock **)poll = s; /* uv_handle_t.data, the handle's first field */
  *out = poll;
  return 0;
}

/*
 * startPoll(handle, recvBuf, meta, slotBytes, maxBatch, callback(event, count, readTimeMs))
 * event 1: `count` messages are in recvBuf slot i (at i * slotBytes), meta[i*9 ..] = length
 * (-1 if truncated), source port, family (4|6), address bytes (4 int32), segment size: when
 * nonzero and below the length, the message is several datagrams of that size back to back
 * (the last may be shorter), coalesced by the kernel (UDP GRO); age: microseconds between the
 * kernel's arrival timestamp and the read (0 when unknown); readTimeMs: when the batch was read,
 * in ms on CLOCK_MONOTONIC (the clock behind performance.now(), which differs by a constant).
 * event 2: the socket is writable again (after setWritableWanted(true)).
 * event 3: `count` socket errors were reported and skipped.
 */
static napi_value js_start_poll(napi_env env, napi_callback_info info) {
  GET_ARGS(6);
  lh_sock *s = argc >= 6 ? sock_arg(env, argv[0]) : NULL;
  if (s == NULL) return NULL;
  if (s->poll) return throw_type(env, "startPoll: already polling");
  uint8_t *rbuf;
  size_t rlen, mlen;
  int32_t *meta, slot, maxb;
  napi_valuetype t;
  napi_typeof(env, argv[5], &t);
  if (!bytes_arg(env, argv[1], &rbuf, &rlen) || !int32s_arg(env, argv[2], &meta, &mlen) ||
      !int_arg(env, argv[3], &slot) || !int_arg(env, argv[4], &maxb) || t != napi_function)
    return throw_type(env, "startPoll(handle, Uint8Array, Int32Array, slotBytes, maxBatch, callback)");
  if (slot <= 0 || maxb <= 0 || maxb > MAX_BATCH || (size_t)slot * (size_t)maxb > rlen || (size_t)maxb * META_STRIDE > mlen)
    return throw_type(env, "startPoll: buffers too small for maxBatch slots");
  s->addrs = calloc((size_t)maxb, sizeof *s->addrs);
  if (s->addrs == NULL) return throw_errno(env, ENOMEM, "startPoll", NULL);
  uv_poll_t *poll = NULL;
  int r = new_poll(env, s, s->fd, 1, &poll);
  if (r < 0) return throw_errno(env, -r, r == -ENOMEM ? "startPoll" : "uv_poll_init", NULL);
  s->recv_base = rbuf;
  s->meta = meta;
  s->slot = (size_t)slot;
  s->max_batch = maxb;
  napi_create_reference(env, argv[1], 1, &s->recv_ref);
  napi_create_reference(env, argv[2], 1, &s->meta_ref);
  napi_create_reference(env, argv[5], 1, &s->cb_ref);
  napi_value resource, name;
  napi_create_object(env, &resource);
  napi_create_string_utf8(env, "lh_udp", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, resource, name, &s->actx);
  s->poll = poll;
  s->poll_events = LH_UV_READABLE;
  r = uv_poll_start(poll, s->poll_events, on_poll);
  if (r < 0) return throw_errno(env, -r, "uv_poll_start", NULL);
  return NULL;
}

/* setWritableWanted(handle, on): also report writability (event 2) while a send is pending. */
static napi_value js_set_writable_wanted(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  lh_sock *s = argc >= 2 ? sock_arg(env, argv[0]) : NULL;
  if (s == NULL) return NULL;
  bool on = false;
  napi_get_value_bool(env, argv[1], &on);
  if (s->poll == NULL) return throw_type(env, "setWritableWanted: not polling");
  s->want_writable = on;
  int r = update_poll(s);
  if (r < 0) return throw_errno(env, -r, "uv_poll_start", NULL);
  return NULL;
}

/*
 * setRecvCoalescing(handle, us): after reading a batch, leave the socket unread for `us`
 * microseconds (0: off, the default) and then take everything that arrived meanwhile in one
 * batch; while datagrams keep coming the socket is read once per pause, and when a pause brings
 * fewer than COALESCE_MIN_DATAGRAMS it is polled again, so datagrams that come slowly (a sender's
 * acknowledgements) and the first after a quiet spell are read at once. Trades up
 * to `us` of delay (the arrival times stay exact: meta's age) for fewer, fuller batches.
 */
static napi_value js_set_recv_coalescing(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  lh_sock *s = argc >= 2 ? sock_arg(env, argv[0]) : NULL;
  if (s == NULL) return NULL;
  int32_t us;
  if (!int_arg(env, argv[1], &us) || us < 0 || us > 100000) return throw_type(env, "setRecvCoalescing(handle, microseconds 0..100000)");
  if (s->poll == NULL) return throw_type(env, "setRecvCoalescing: not polling");
  if (us > 0 && s->tfd < 0) {
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (tfd < 0) return throw_errno(env, errno, "timerfd_create", NULL);
    uv_poll_t *tpoll = NULL;
    int r = new_poll(env, s, tfd, 0, &tpoll);
    if (r < 0) {
      close(tfd);
      return throw_errno(env, -r, r == -ENOMEM ? "setRecvCoalescing" : "uv_poll_init", NULL);
    }
    s->tfd = tfd;
    s->tpoll = tpoll;
    r = uv_poll_start(tpoll, LH_UV_READABLE, on_timer);
    if (r < 0) return throw_errno(env, -r, "uv_poll_start", NULL);
  }
  s->coalesce_us = us;
  return NULL;
}

/* setSegmentation(handle, on): GSO sends and GRO receives on (default) or off (comparison runs). */
static napi_value js_set_segmentation(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  lh_sock *s = argc >= 2 ? sock_arg(env, argv[0]) : NULL;
  if (s == NULL) return NULL;
  bool on = false;
  napi_get_value_bool(env, argv[1], &on);
  int v = on ? 1 : 0;
  s->gso = v;
  setsockopt(s->fd, SOL_UDP, UDP_GRO, &v, sizeof v);
  return NULL;
}

/* formatAddress(meta, index) -> the source address of received datagram `index` as text. */
static napi_value js_format_address(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  int32_t *meta, index;
  size_t mlen;
  if (argc < 2 || !int32s_arg(env, argv[0], &meta, &mlen) || !int_arg(env, argv[1], &index) || index < 0 ||
      (size_t)(index + 1) * META_STRIDE > mlen)
    return throw_type(env, "formatAddress(Int32Array, index)");
  const int32_t *m = meta + (size_t)index * META_STRIDE;
  char text[INET6_ADDRSTRLEN];
  if (inet_ntop(m[2] == 6 ? AF_INET6 : AF_INET, &m[3], text, sizeof text) == NULL) text[0] = 0;
  napi_value out;
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &out);
  return out;
}

/* close(handle): stops polling and closes the fd; later calls are no-ops. */
static napi_value js_close(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  void *p = NULL;
  if (napi_get_value_external(env, argv[0], &p) != napi_ok || p == NULL) return throw_type(env, "close(handle)");
  close_sock(p, CLOSE_BY_JS);
  return NULL;
}

/* fd(handle) -> the descriptor number (tests check it is released on close). */
static napi_value js_fd(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  lh_sock *s = sock_arg(env, argv[0]);
  if (s == NULL) return NULL;
  napi_value out;
  napi_create_int32(env, s->fd, &out);
  return out;
}

/* ---- systemd notification (sd_notify) --------------------------------------------------------- */

/*
 * sdNotify(socketPath, message): one datagram to $NOTIFY_SOCKET, as sd_notify(3) sends it. A
 * path starting with '@' names an abstract socket (the '@' becomes a leading NUL). Lives here
 * because node:dgram has no Unix datagram sockets and this addon already owns raw sockets;
 * src/gateway/sd-notify.ts is the caller. Throws like the socket calls above.
 */
/*
 * trimMemory(): gives the C heap's free pages back to the kernel (glibc malloc_trim), returns
 * true if any went. ArrayBuffers (stream rings, compression buffers) live in the C heap; after a
 * burst of connections their freed memory stayed in the process (fragmented, below live chunks),
 * and RSS showed the burst long after it ended.
 */
static napi_value js_trim_memory(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value r;
  napi_get_boolean(env, malloc_trim(0) != 0, &r);
  return r;
}

/* heapStats(): [bytes in use, bytes free, bytes in mmapped chunks] of the C heap (glibc mallinfo2). */
static napi_value js_heap_stats(napi_env env, napi_callback_info info) {
  (void)info;
  struct mallinfo2 mi = mallinfo2();
  double v[3] = {(double)mi.uordblks, (double)mi.fordblks, (double)mi.hblkhd};
  napi_value arr;
  napi_create_array_with_length(env, 3, &arr);
  for (uint32_t i = 0; i < 3; i++) {
    napi_value n;
    napi_create_double(env, v[i], &n);
    napi_set_element(env, arr, i, n);
  }
  return arr;
}

static napi_value js_sd_notify(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
  char msg[4096];
  size_t plen = 0, mlen = 0;
  if (argc < 2 || napi_get_value_string_utf8(env, argv[0], path, sizeof path, &plen) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], msg, sizeof msg, &mlen) != napi_ok)
    return throw_type(env, "sdNotify(socketPath, message)");
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  if (plen < 2 || plen > sizeof sa.sun_path || (path[0] != '/' && path[0] != '@'))
    return throw_type(env, "sdNotify: NOTIFY_SOCKET must be an absolute path or an @abstract name");
  memcpy(sa.sun_path, path, plen);
  if (path[0] == '@') sa.sun_path[0] = 0;
  socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "socket", path);
  ssize_t n = sendto(fd, msg, mlen, MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
  int err = errno;
  close(fd);
  if (n < 0) return throw_errno(env, err, "sendto", path);
  return NULL;
}

NAPI_MODULE_INIT() {
  const struct { const char *name; napi_callback fn; } fns[] = {
    {"open", js_open},
    {"connect", js_connect},
    {"localAddress", js_local_address},
    {"bufferSizes", js_buffer_sizes},
    {"sendBatch", js_send_batch},
    {"sendOne", js_send_one},
    {"startPoll", js_start_poll},
    {"setWritableWanted", js_set_writable_wanted},
    {"formatAddress", js_format_address},
    {"setSegmentation", js_set_segmentation},
    {"setRecvCoalescing", js_set_recv_coalescing},
    {"close", js_close},
    {"fd", js_fd},
    {"sdNotify", js_sd_notify},
    {"trimMemory", js_trim_memory},
    {"heapStats", js_heap_stats},
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value f;
    napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f);
    napi_set_named_property(env, exports, fns[i].name, f);
  }
  napi_value v;
  napi_create_int32(env, MAX_BATCH, &v);
  napi_set_named_property(env, exports, "maxBatch", v);
  napi_create_int32(env, META_STRIDE, &v);
  napi_set_named_property(env, exports, "metaStride", v);
  napi_create_int32(env, EAGAIN, &v);
  napi_set_named_property(env, exports, "EAGAIN", v);
  return exports;
}
