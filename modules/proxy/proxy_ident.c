/* proxy_ident.c: identity hooks: pool key, upstream connect, identity fields upstream. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gatehouse/error.h>

#include "proxy.h"
#include "proxy_conf.h"
#include "proxy_idmodes.h"

const char *proxy_identity_key(proxy_req_t *q)
{
  /* NULL (service identity, shared) unless opened as the client */
  return proxy_idm_pool_key(q);
}

/* Waits for a non-blocking connect; 0, -ETIMEDOUT or the socket error. */
static int connect_wait(int fd, uint64_t timeout_ms)
{
  struct pollfd pf = {.fd = fd, .events = POLLOUT};
  int64_t deadline = proxy_now_ms() + (int64_t)timeout_ms;
  int err = 0, r;
  socklen_t len = sizeof(err);
  do {
    int64_t left = deadline - proxy_now_ms();
    r = left > 0 ? poll(&pf, 1, (int)left) : 0;
  } while (r < 0 && errno == EINTR);
  if (r == 0)
    return -ETIMEDOUT;
  if (r < 0)
    return -errno;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
    return -errno;
  return -err;
}

static int connect_addr(const struct sockaddr *sa, socklen_t len, int family, uint64_t timeout_ms,
                        int *ret_fd)
{
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), ret = 0, one = 1;
  if (fd < 0)
    return -errno;
  if (connect(fd, sa, len) != 0)
    ret = errno == EINPROGRESS || errno == EAGAIN ? connect_wait(fd, timeout_ms) : -errno;
  if (ret == 0) {
    if (family != AF_UNIX)
      (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    *ret_fd = fd;
  } else {
    close(fd);
  }
  return ret;
}

int proxy_open_upstream(proxy_req_t *q, int *ret_fd)
{
  const proxy_upstream_t *up = q->up;
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai = NULL;
  int ret;
  ret = proxy_idm_connect(q, ret_fd);
  if (ret != 1)
    return ret; /* upstream_connect_as = client */
  if (up->is_unix) {
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", up->path);
    return connect_addr((struct sockaddr *)&sun, sizeof(sun), AF_UNIX, q->connect_ms, ret_fd);
  }
  ret = getaddrinfo(up->host, up->port, &hints, &ai);
  if (ret != 0)
    return ret == EAI_SYSTEM ? -errno : -EHOSTUNREACH;
  ret = -EHOSTUNREACH;
  for (struct addrinfo *a = ai; a != NULL && ret != 0 && ret != -ETIMEDOUT; a = a->ai_next)
    ret = connect_addr(a->ai_addr, a->ai_addrlen, a->ai_family, q->connect_ms, ret_fd);
  freeaddrinfo(ai);
  return ret;
}

void proxy_identity_load(proxy_req_t *q)
{
  (void)proxy_idm_load(q); /* NULL q->idm on ENOMEM: the modes fail closed */
}

/* The value of one identity kind for the request's user, or NULL. */
static const char *identity_value(gh_http_user_t *user, int kind)
{
  switch (kind) {
  case 0:
    return gh_http_user_get_local_name(user);
  case 1:
    return gh_http_user_get_variable(user, "groups");
  case 2:
    return gh_http_user_get_name(user);
  case 3:
    return gh_http_user_get_auth_type(user);
  default:
    return NULL;
  }
}

int proxy_group_names(proxy_req_t *q, const char **ret_names)
{
  int r = gh_http_user_get_group_names(gh_http_context_get_user(q->ctx), ret_names);
  if (r == GH_ENOT_FOUND) {
    *ret_names = NULL; /* no token: no groups */
    r = 0;
  } else if (r != 0) {
    gh_module_server_log(q->server, GH_LOG_ERROR,
                         "proxy: %s: group names of %s: %s (503: the group database could not "
                         "answer; never sent with fewer groups)",
                         q->site, gh_http_user_get_name(gh_http_context_get_user(q->ctx)),
                         gh_strerror(r));
    r = PROXY_ENAMES;
  }
  return r;
}

int proxy_identity_values(proxy_req_t *q, const char *vals[PROXY_N_KINDS])
{
  gh_http_user_t *user = gh_http_context_get_user(q->ctx);
  const char *name = gh_http_user_get_name(user);
  for (int k = 0; k < PROXY_N_KINDS; k++)
    vals[k] = NULL;
  if (name == NULL || name[0] == '\0')
    return 0; /* anonymous: no identity field at all */
  for (size_t i = 0; i < q->conf->n_ident; i++) {
    int k = q->conf->ident_kind[i];
    if (k == 4) {
      if (vals[4] == NULL && proxy_group_names(q, &vals[4]) != 0)
        return PROXY_ENAMES;
    } else if (k >= 0 && k < PROXY_N_KINDS) {
      vals[k] = identity_value(user, k);
    }
  }
  return 1;
}

/* A byte below 0x0e in w (exact: "hasless" of the bit hacks): CR and LF
 * are, and few others a value holds (HT). */
static bool word_has_low(uint64_t w)
{
  const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
  return ((w - ones * 0x0e) & ~w & highs) != 0;
}

static bool bytes_no_crlf(const char *v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (v[i] == '\r' || v[i] == '\n')
      return false;
  return true;
}

/* No CR and no LF in the n bytes of v, eight at a time (the last word
 * overlaps; a word with a low byte is looked at per byte): a value with
 * one never goes upstream. */
static bool no_crlf(const char *v, size_t n)
{
  uint64_t w;
  if (n < 8)
    return bytes_no_crlf(v, n);
  for (size_t i = 0; i + 8 < n; i += 8) {
    memcpy(&w, v + i, 8);
    if (word_has_low(w) && !bytes_no_crlf(v + i, 8))
      return false;
  }
  memcpy(&w, v + n - 8, 8);
  return !word_has_low(w) || bytes_no_crlf(v + n - 8, 8);
}

void proxy_put_identity(const proxy_site_t *s, const char *const vals[PROXY_N_KINDS],
                        proxy_buf_t *head)
{
  proxy_piece_t pc[3 * PROXY_MAX_IDENT];
  size_t n_pc = 0;
  for (size_t i = 0; i < s->n_ident; i++) {
    int k = s->ident_kind[i];
    const char *v = k >= 0 && k < PROXY_N_KINDS ? vals[k] : NULL;
    size_t n, pl = s->ident_pre_len[i];
    if (v == NULL || pl == 0 || !no_crlf(v, n = strlen(v)))
      continue;
    pc[n_pc++] = (proxy_piece_t){s->ident_pre[i], pl};
    pc[n_pc++] = (proxy_piece_t){v, n};
    pc[n_pc++] = PROXY_PIECE("\r\n");
  }
  proxy_buf_pieces(head, pc, n_pc);
}
