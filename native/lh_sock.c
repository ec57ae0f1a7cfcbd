/*
 * The two socket options transparent interception needs and Node's net module cannot reach
 * (docs/intercept.md):
 *
 *   listen(host, port, backlog, transparent) -> fd
 *       A TCP socket bound to host:port and listening, with SO_REUSEADDR and, when transparent,
 *       IP_TRANSPARENT (IPV6_TRANSPARENT): the kernel then hands it connections that iptables'
 *       TPROXY diverted to it, whatever their destination address. Node adopts the descriptor
 *       with net.Server.listen({ fd }). Non-blocking and close-on-exec, as Node's own.
 *   originalDestination(fd) -> { host, port } | null
 *       The destination a connection had before iptables' REDIRECT (or any destination NAT)
 *       rewrote it: getsockopt SO_ORIGINAL_DST (IP6T_SO_ORIGINAL_DST), read from conntrack.
 *       null when conntrack holds no NAT for it (ENOENT): a TPROXY'd or direct connection,
 *       whose local address already is its destination.
 *
 * Errors from the kernel throw, naming the call and errno's text (EPERM: IP_TRANSPARENT needs
 * CAP_NET_ADMIN); Node-API symbols resolve from the node binary at load time.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <node_api.h>

/* linux/netfilter_ipv4.h and linux/netfilter_ipv6/ip6_tables.h; both 80. Their headers clash with netinet/in.h. */
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, err == EPERM ? "EPERM" : NULL, msg);
  return NULL;
}

static napi_value endpoint_object(napi_env env, const struct sockaddr_storage *ss) {
  char text[INET6_ADDRSTRLEN];
  int port;
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
    port = ntohs(a->sin_port);
  } else {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
    port = ntohs(a->sin6_port);
  }
  napi_value obj, host, portv;
  napi_create_object(env, &obj);
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &host);
  napi_create_int32(env, port, &portv);
  napi_set_named_property(env, obj, "host", host);
  napi_set_named_property(env, obj, "port", portv);
  return obj;
}

static napi_value sock_listen(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char host[INET6_ADDRSTRLEN + 1];
  size_t hostLen = 0;
  int32_t port = 0, backlog = 0;
  bool transparent = false;
  if (argc < 4 || napi_get_value_string_utf8(env, argv[0], host, sizeof host, &hostLen) != napi_ok ||
      napi_get_value_int32(env, argv[1], &port) != napi_ok || napi_get_value_int32(env, argv[2], &backlog) != napi_ok ||
      napi_get_value_bool(env, argv[3], &transparent) != napi_ok || port < 0 || port > 65535) {
    napi_throw_type_error(env, NULL, "listen(host: string, port: number, backlog: number, transparent: boolean)");
    return NULL;
  }
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t len;
  int family;
  struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
    family = AF_INET;
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    len = sizeof *a4;
  } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
    family = AF_INET6;
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    len = sizeof *a6;
  } else {
    napi_throw_type_error(env, NULL, "listen: host must be an IPv4 or IPv6 address");
    return NULL;
  }
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "setsockopt SO_REUSEADDR", e);
  }
  if (transparent) {
    int r = family == AF_INET ? setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof one)
                              : setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof one);
    if (r < 0) {
      int e = errno;
      close(fd);
      return throw_errno(env, family == AF_INET ? "setsockopt IP_TRANSPARENT (needs CAP_NET_ADMIN)" : "setsockopt IPV6_TRANSPARENT (needs CAP_NET_ADMIN)", e);
    }
  }
  if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "bind", e);
  }
  if (listen(fd, backlog > 0 ? backlog : 511) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "listen", e);
  }
  napi_value out;
  napi_create_int32(env, fd, &out);
  return out;
}

static napi_value sock_original_destination(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "originalDestination(fd: number)");
    return NULL;
  }
  struct sockaddr_storage local;
  socklen_t len = sizeof local;
  if (getsockname(fd, (struct sockaddr *)&local, &len) < 0) return throw_errno(env, "getsockname", errno);
  struct sockaddr_storage dst;
  memset(&dst, 0, sizeof dst);
  len = sizeof dst;
  int r = local.ss_family == AF_INET6 ? getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &dst, &len)
                                      : getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &len);
  if (r < 0) {
    if (errno == ENOENT) {
      napi_value nul;
      napi_get_null(env, &nul);
      return nul;
    }
    return throw_errno(env, "getsockopt SO_ORIGINAL_DST", errno);
  }
  return endpoint_object(env, &dst);
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
    { "listen", NULL, sock_listen, NULL, NULL, NULL, napi_enumerable, NULL },
    { "originalDestination", NULL, sock_original_destination, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
