/* gh-soak.c: identity-leak soak client for gatehoused — users × keep-alive clients × Negotiate/NTLM/Basic/peer × static/CGI/whoami/authinfo sites, every response checked against its user's uid/gid/groups. Loopback only. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "httpapi/auth/auth.h" /* gh__b64_encode */

/*
 * gh-soak --port P --unix PATH --user NAME:UID:GID:G1,G2..:PASSWORD:TOKENFILE (repeat)
 *         [--conns 64] [--requests N] [--duration S] [--ntlm-target HTTP@host]
 *         [--ntlm-domain GH] [--mix static,cross,probe,who,cgi] [--reconnect N] [--progress S]
 *         [--schemes neg,negr,ntlm,basic,peer] [--ntlm-reconnect N] [--tls CAFILE]
 *
 * --tls CAFILE: every TCP connection is TLS (the port is a `tls` listener; the server's
 * certificate must verify against CAFILE for "localhost"); peer stays on the unix socket.
 * One child process per user drops to that user (setgroups, setresgid, setresuid) and runs
 * --conns threads, each a keep-alive client with one scheme:
 *   neg    /neg/...   Negotiate once per connection (a fresh token), persist = all
 *   negr   /negr/...  a fresh Negotiate token on every request, persist = none
 * Negotiate tokens: TOKENFILE "ccache=PATH" makes each token when it is sent
 * (gss_init_sec_context as the user from a private copy of that credential cache, read
 * as root before the drop; the HTTP@localhost ticket is fetched into the copy once):
 * its authenticator is seconds old whatever the run's length. A plain file holds
 * pre-generated "Negotiate <b64>" lines, used once each; their authenticators age, and
 * past Kerberos' clock skew (5 min) the server rightly refuses them (401).
 *   ntlm   /ntlm/...  NTLM handshake per connection (gss-ntlmssp initiator), then persisted
 *   basic  /basic/... Basic on every request (PAM, then the server's cache)
 *   peer   /peer/...  the unix socket: the kernel's SO_PEERCRED of this process
 * and per request a site, by --mix weights:
 *   static  GET /S/static/<user>.txt, 0600 file of the user: body "owner=U uid=N gid=G"
 *   cross   GET /S/static/<other>.txt: must be 403/404 (200 = served as the wrong user)
 *   probe   GET /S/probe: the daemon's authinfo handler: token and kernel-seen uid/gid
 *   who     GET /S/who/: whoami module on a non-impersonated site: logonUser, uid, groups
 *   cgi     GET /S/cgi/ids: gh-soak-cgi prints Uid/Gid/Groups/CapEff of /proc/self/status
 * A mismatch is a response that names anybody but the expected user (or a cross read served);
 * an error is any other unexpected status, close or timeout. Counters live in shared memory;
 * the parent prints one "key=value ..." line at the end. Exit 0 only with 0 mismatches and
 * 0 errors.
 */

enum scheme { SC_NEG, SC_NEGR, SC_NTLM, SC_BASIC, SC_PEER, SC_N };
enum site { ST_STATIC, ST_CROSS, ST_PROBE, ST_WHO, ST_CGI, ST_N };
static const char *const scheme_name[SC_N] = { "neg", "negr", "ntlm", "basic", "peer" };
static const char *const site_name[ST_N] = { "static", "cross", "probe", "who", "cgi" };
/* thread i of a user runs plan[i % 32]: neg 7, negr 2, ntlm 7, basic 8, peer 8 */
static const enum scheme plan[32] = {
  SC_NEG, SC_NTLM, SC_BASIC, SC_PEER, SC_NEG, SC_NTLM, SC_BASIC, SC_PEER,
  SC_NEG, SC_NTLM, SC_BASIC, SC_PEER, SC_NEG, SC_NTLM, SC_BASIC, SC_PEER,
  SC_NEG, SC_NTLM, SC_BASIC, SC_PEER, SC_NEG, SC_NTLM, SC_BASIC, SC_PEER,
  SC_NEG, SC_NTLM, SC_BASIC, SC_PEER, SC_NEGR, SC_NEGR, SC_BASIC, SC_PEER,
};

#define MAX_USERS 8
#define MAX_GROUPS 16
#define BUF_CAP (256 * 1024)

typedef struct user {
  char name[64], password[128], basic[512], tokfile[1024];
  const char *ccache; /* "ccache=PATH" tokfile: tokens made on demand from (a copy of) PATH */
  char *cc_data;      /* PATH's bytes, read as root before the drop */
  size_t cc_len;
  char cc_copy[64];   /* the user's private copy, written after the drop */
  uid_t uid;
  gid_t gid;
  gid_t groups[MAX_GROUPS];
  int ngroups;
  char **tokens;
  long ntokens;
  atomic_long next_token;
  gss_cred_id_t ntlm_cred;
} user_t;

typedef struct stats {
  atomic_ulong requests, mismatches, errors, reconnects, neg_tokens, ntlm_handshakes;
  atomic_ulong tokens_exhausted, cross_denied, reported;
  atomic_ulong by_scheme[SC_N], by_site[ST_N];
  atomic_int stop;
} stats_t;

static struct {
  int port;
  const char *unix_path, *ntlm_target, *ntlm_domain;
  unsigned conns, duration_s, reconnect, ntlm_reconnect, progress_s;
  unsigned long max_requests;
  unsigned mix[ST_N];
  unsigned mix_total;
  unsigned scheme_mask; /* --schemes: which of plan[] run (default all) */
  user_t users[MAX_USERS];
  int nusers;
  const char *tls_ca; /* --tls: CA file; TCP connections are TLS */
} opt = { .port = 0, .ntlm_target = "HTTP@localhost", .ntlm_domain = "GH", .conns = 64,
          .duration_s = 600, .reconnect = 300, .progress_s = 10, .max_requests = 1000000,
          .mix = { 36, 4, 25, 27, 8 } };

static stats_t *st;
static SSL_CTX *tls_ctx;
static user_t *me;
static gss_name_t ntlm_target_name, http_target_name;
static gss_OID_desc spnego_oid = { 6, (void *)"\x2b\x06\x01\x05\x05\x02" };
static gss_OID_desc ntlmssp_oid = { 10, (void *)"\x2b\x06\x01\x04\x01\x82\x37\x02\x02\x0a" };

static double now_s(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}


static int unb64(const char *in, size_t inlen, unsigned char *out, size_t *ret_len)
{
  size_t o = 0;
  unsigned v = 0, bits = 0;
  for (size_t i = 0; i < inlen && in[i] != '='; i++) {
    const char c = in[i];
    unsigned d = c >= 'A' && c <= 'Z'   ? (unsigned)(c - 'A')
                 : c >= 'a' && c <= 'z' ? (unsigned)(c - 'a' + 26)
                 : c >= '0' && c <= '9' ? (unsigned)(c - '0' + 52)
                 : c == '+'             ? 62u
                 : c == '/'             ? 63u
                                        : 99u;
    if (d == 99u)
      return -1;
    v = v << 6 | d;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (unsigned char)(v >> bits);
    }
  }
  *ret_len = o;
  return 0;
}

/* ---- anomalies ---- */

__attribute__((format(printf, 4, 5))) static void report(atomic_ulong *ctr, enum scheme sc,
                                                         enum site si, const char *fmt, ...)
{
  atomic_fetch_add(ctr, 1);
  if (atomic_fetch_add(&st->reported, 1) >= 40)
    return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  fprintf(stderr, "%s user=%s scheme=%s site=%s: %s\n",
          ctr == &st->mismatches ? "MISMATCH" : "ERROR", me->name, scheme_name[sc],
          site_name[si], msg);
}

/* ---- HTTP ---- */

typedef struct conn {
  int fd;
  SSL *ssl; /* --tls on TCP */
  char *buf;  /* response bytes; also request scratch in req */
  size_t len; /* bytes in buf */
  char *req;
} conn_t;

typedef struct resp {
  int status;
  bool close;
  const char *body;
  size_t body_len;
  char www_auth[65536 / 2];
  char *owned; /* decoded chunked body */
} resp_t;

static int conn_open(conn_t *c, bool unix_sock)
{
  struct timeval tv = { 15, 0 };
  int fd;
  if (unix_sock) {
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", opt.unix_path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
      close(fd);
      fd = -1;
    }
  } else {
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port) };
    int one = 1;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0)
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
      close(fd);
      fd = -1;
    }
  }
  if (fd < 0)
    return -errno;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  c->fd = fd;
  c->len = 0;
  c->ssl = NULL;
  if (!unix_sock && tls_ctx != NULL) {
    c->ssl = SSL_new(tls_ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1 ||
        SSL_set_tlsext_host_name(c->ssl, "localhost") != 1 || SSL_set1_host(c->ssl, "localhost") != 1 ||
        SSL_connect(c->ssl) != 1) {
      unsigned long e = ERR_get_error();
      char eb[256];
      ERR_error_string_n(e, eb, sizeof(eb));
      fprintf(stderr, "gh-soak: TLS handshake failed: %s\n", e ? eb : "(no OpenSSL error)");
      ERR_clear_error();
      SSL_free(c->ssl);
      c->ssl = NULL;
      close(fd);
      c->fd = -1;
      return -EPROTO;
    }
  }
  return 0;
}

/* send/recv or their TLS counterparts: > 0 bytes, 0 EOF, < 0 -errno */
static ssize_t conn_send(conn_t *c, const void *p, size_t n)
{
  if (c->ssl == NULL) {
    ssize_t r = send(c->fd, p, n, MSG_NOSIGNAL);
    return r < 0 ? -errno : r;
  }
  int r = SSL_write(c->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
  if (r > 0)
    return r;
  ERR_clear_error();
  return errno == EAGAIN ? -ETIMEDOUT : -EPIPE;
}

static ssize_t conn_recv(conn_t *c, void *p, size_t n)
{
  if (c->ssl == NULL) {
    ssize_t r = recv(c->fd, p, n, 0);
    return r < 0 ? (errno == EAGAIN ? -ETIMEDOUT : -errno) : r;
  }
  int r = SSL_read(c->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
  if (r > 0)
    return r;
  int e = SSL_get_error(c->ssl, r);
  ERR_clear_error();
  if (e == SSL_ERROR_ZERO_RETURN)
    return 0;
  if (e == SSL_ERROR_SYSCALL && errno == 0)
    return 0; /* EOF without close_notify */
  return errno == EAGAIN ? -ETIMEDOUT : -EPIPE;
}

static void conn_close(conn_t *c)
{
  if (c->ssl != NULL)
    SSL_free(c->ssl); /* no close_notify: the server sees a plain close, as with TCP */
  c->ssl = NULL;
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
  c->len = 0;
}

static int fill(conn_t *c)
{
  if (c->len >= BUF_CAP - 1)
    return -EMSGSIZE;
  ssize_t n = conn_recv(c, c->buf + c->len, BUF_CAP - 1 - c->len);
  if (n == 0)
    return -EPIPE;
  if (n < 0)
    return (int)n;
  c->len += (size_t)n;
  c->buf[c->len] = '\0';
  return 0;
}

static const char *hdr(const char *head, const char *end, const char *name, size_t *ret_len)
{
  size_t nl = strlen(name);
  for (const char *p = strstr(head, "\r\n"); p && p < end; p = strstr(p + 2, "\r\n")) {
    if (strncasecmp(p + 2, name, nl) == 0 && p[2 + nl] == ':') {
      const char *v = p + 3 + nl;
      while (*v == ' ')
        v++;
      *ret_len = strcspn(v, "\r\n");
      return v;
    }
  }
  return NULL;
}

/* Sends req (whole), reads one response. The buffer keeps no pipelined leftovers. */
static int roundtrip(conn_t *c, const char *req, size_t req_len, resp_t *r)
{
  size_t off = 0, hl, vlen;
  char *end;
  const char *v;
  int rc;

  free(r->owned);
  r->owned = NULL;
  r->www_auth[0] = '\0';
  while (off < req_len) {
    ssize_t n = conn_send(c, req + off, req_len - off);
    if (n <= 0)
      return n < 0 ? (int)n : -EPIPE;
    off += (size_t)n;
  }
  c->len = 0;
  c->buf[0] = '\0';
  while ((end = strstr(c->buf, "\r\n\r\n")) == NULL)
    if ((rc = fill(c)) != 0)
      return rc;
  hl = (size_t)(end - c->buf) + 4;
  if (sscanf(c->buf, "HTTP/1.%*d %d", &r->status) != 1)
    return -EPROTO;
  v = hdr(c->buf, end, "Connection", &vlen);
  r->close = v && vlen == 5 && strncasecmp(v, "close", 5) == 0;
  v = hdr(c->buf, end, "WWW-Authenticate", &vlen);
  if (v && vlen < sizeof(r->www_auth)) {
    memcpy(r->www_auth, v, vlen);
    r->www_auth[vlen] = '\0';
  }
  v = hdr(c->buf, end, "Content-Length", &vlen);
  if (v) {
    size_t cl = strtoul(v, NULL, 10);
    if (cl > BUF_CAP / 2)
      return -EMSGSIZE;
    while (c->len < hl + cl)
      if ((rc = fill(c)) != 0)
        return rc;
    r->body = c->buf + hl;
    r->body_len = cl;
    return 0;
  }
  v = hdr(c->buf, end, "Transfer-Encoding", &vlen);
  if (v) {
    size_t pos = hl, out = 0;
    char *ob = malloc(BUF_CAP);
    if (ob == NULL)
      return -ENOMEM;
    for (;;) {
      char *le;
      while ((le = strstr(c->buf + pos, "\r\n")) == NULL)
        if ((rc = fill(c)) != 0)
          return free(ob), rc;
      size_t sz = strtoul(c->buf + pos, NULL, 16);
      pos = (size_t)(le - c->buf) + 2;
      if (sz == 0) {
        while (strstr(c->buf + pos, "\r\n") == NULL)
          if ((rc = fill(c)) != 0)
            return free(ob), rc;
        break;
      }
      if (out + sz >= BUF_CAP)
        return free(ob), -EMSGSIZE;
      while (c->len < pos + sz + 2)
        if ((rc = fill(c)) != 0)
          return free(ob), rc;
      memcpy(ob + out, c->buf + pos, sz);
      out += sz;
      pos += sz + 2;
    }
    ob[out] = '\0';
    r->owned = ob;
    r->body = ob;
    r->body_len = out;
    return 0;
  }
  if (r->status == 204 || r->status == 304 || r->status < 200) {
    r->body = "";
    r->body_len = 0;
    return 0;
  }
  /* close-delimited */
  while ((rc = fill(c)) == 0)
    ;
  r->body = c->buf + hl;
  r->body_len = c->len - hl;
  r->close = true;
  return 0;
}

/* ---- checks ---- */

static bool json_num(const char *body, const char *key, long *ret)
{
  char k[64];
  snprintf(k, sizeof(k), "\"%s\":", key);
  const char *p = strstr(body, k);
  if (p == NULL)
    return false;
  char *e;
  *ret = strtol(p + strlen(k), &e, 10);
  return e != p + strlen(k);
}

static bool json_str_is(const char *body, const char *key, const char *want)
{
  char k[128];
  snprintf(k, sizeof(k), "\"%s\":\"%s\"", key, want);
  return strstr(body, k) != NULL;
}

static int cmp_gid(const void *a, const void *b)
{
  gid_t x = *(const gid_t *)a, y = *(const gid_t *)b;
  return x < y ? -1 : x > y;
}

/* Parses numbers separated by spaces/commas until stop; compares with the user's set. */
static bool groups_match(const char *p, const char *stop_chars)
{
  gid_t got[MAX_GROUPS * 2];
  int n = 0;
  size_t end = strcspn(p, stop_chars);
  const char *e = p + end;
  while (p < e) {
    char *q;
    unsigned long g;
    if (*p == ' ' || *p == ',' || *p == '\t') {
      p++;
      continue;
    }
    g = strtoul(p, &q, 10);
    if (q == p || n >= MAX_GROUPS * 2)
      return false;
    got[n++] = (gid_t)g;
    p = q;
  }
  qsort(got, (size_t)n, sizeof(gid_t), cmp_gid);
  int m = 0;
  for (int i = 0; i < n; i++)
    if (m == 0 || got[m - 1] != got[i])
      got[m++] = got[i];
  if (m != me->ngroups)
    return false;
  for (int i = 0; i < m; i++)
    if (got[i] != me->groups[i])
      return false;
  return true;
}

static bool status_line_is(const char *body, const char *key, unsigned long want)
{
  const char *p = strstr(body, key);
  if (p == NULL)
    return false;
  p += strlen(key);
  for (int i = 0; i < 4; i++) {
    char *e;
    unsigned long v = strtoul(p, &e, 10);
    if (e == p || v != want)
      return false;
    p = e;
  }
  return true;
}

/* 0 ok, 1 mismatch (a wrong identity), 2 error (unexpected status or shape). */
static int check(enum site si, const resp_t *r, char *why, size_t wl)
{
  const char *b = r->body;
  long v;

  if (si == ST_CROSS) {
    if (r->status == 403 || r->status == 404)
      return 0;
    snprintf(why, wl, "cross-user read answered %d: %.120s", r->status, b);
    return r->status >= 200 && r->status < 300 ? 1 : 2;
  }
  if (r->status != 200) {
    snprintf(why, wl, "status %d: %.200s", r->status, b);
    return r->status == 403 ? 1 : 2; /* 403 on the user's own file: not the user */
  }
  switch (si) {
  case ST_STATIC: {
    char want[256];
    int n = snprintf(want, sizeof(want), "owner=%s uid=%u gid=%u\n", me->name, (unsigned)me->uid,
                     (unsigned)me->gid);
    if (r->body_len == (size_t)n && memcmp(b, want, (size_t)n) == 0)
      return 0;
    snprintf(why, wl, "static body %.200s", b);
    return strncmp(b, "owner=", 6) == 0 ? 1 : 2;
  }
  case ST_PROBE:
    if (!json_str_is(b, "status", "SUCCESS") || !json_str_is(b, "token_user", me->name) ||
        !json_num(b, "token_uid", &v) || v != (long)me->uid ||
        !json_num(b, "token_gid", &v) || v != (long)me->gid ||
        !json_num(b, "kernel_uid", &v) || v != (long)me->uid ||
        !json_num(b, "thread_euid", &v) || v != (long)me->uid ||
        !json_num(b, "kernel_gid", &v) || v != (long)me->gid ||
        strstr(b, "\"token_groups\":[") == NULL ||
        !groups_match(strstr(b, "\"token_groups\":[") + 16, "]")) {
      snprintf(why, wl, "probe %.400s", b);
      return strstr(b, "\"kernel_uid\":") ? 1 : 2;
    }
    return 0;
  case ST_WHO:
    if (!json_str_is(b, "logonUser", me->name) || !json_num(b, "uid", &v) ||
        v != (long)me->uid || strstr(b, "\"groups\":[") == NULL ||
        !groups_match(strstr(b, "\"groups\":[") + 10, "]")) {
      snprintf(why, wl, "whoami %.300s", b);
      return strstr(b, "\"uid\":") ? 1 : 2;
    }
    return 0;
  case ST_CGI: {
    const char *g = strstr(b, "Groups:");
    const char *ce = strstr(b, "CapEff:");
    if (!status_line_is(b, "Uid:", me->uid) || !status_line_is(b, "Gid:", me->gid) ||
        g == NULL || !groups_match(g + 7, "\n") || ce == NULL ||
        strtoull(ce + 7, NULL, 16) != 0) {
      snprintf(why, wl, "cgi %.300s", b);
      return strstr(b, "Uid:") ? 1 : 2;
    }
    return 0;
  }
  default:
    return 2;
  }
}

/* ---- clients ---- */

typedef struct client {
  enum scheme sc;
  unsigned idx;
  unsigned seed;
  conn_t c;
  resp_t r;
  bool authed;
  unsigned on_conn, conn_limit;
  char *line; /* a token made on demand (ccache mode) */
} client_t;

#define TOKEN_CAP (64 * 1024)

/* The next Negotiate header value: made now from the user's ccache, or the next
 * pre-generated line; NULL when the file is used up or GSS fails (reported). */
static const char *next_token(client_t *cl)
{
  if (me->ccache != NULL) {
    gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
    gss_buffer_desc out = GSS_C_EMPTY_BUFFER;
    OM_uint32 maj, min;
    const char *ret = NULL;
    maj = gss_init_sec_context(&min, GSS_C_NO_CREDENTIAL, &ctx, http_target_name, &spnego_oid,
                               GSS_C_MUTUAL_FLAG | GSS_C_INTEG_FLAG, 0,
                               GSS_C_NO_CHANNEL_BINDINGS, GSS_C_NO_BUFFER, NULL, &out, NULL,
                               NULL);
    if (!GSS_ERROR(maj) && out.length <= (TOKEN_CAP - 16) / 4 * 3) {
      strcpy(cl->line, "Negotiate ");
      gh__b64_encode(out.value, out.length, cl->line + 10);
      atomic_fetch_add(&st->neg_tokens, 1);
      ret = cl->line;
    } else {
      report(&st->errors, cl->sc, ST_STATIC, "gss_init_sec_context (Kerberos): major %u minor %u",
             maj, min);
    }
    gss_release_buffer(&min, &out);
    gss_delete_sec_context(&min, &ctx, GSS_C_NO_BUFFER);
    return ret;
  }
  long i = atomic_fetch_add(&me->next_token, 1);
  if (i >= me->ntokens) {
    /* out of pre-generated tokens: this client carries on with Basic */
    atomic_fetch_add(&st->tokens_exhausted, 1);
    return NULL;
  }
  atomic_fetch_add(&st->neg_tokens, 1);
  return me->tokens[i];
}

static size_t build_req(client_t *cl, const char *path, const char *authz)
{
  return (size_t)snprintf(cl->c.req, BUF_CAP,
                          "GET %s HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
                          "%s%s%s\r\n",
                          path, authz ? "Authorization: " : "", authz ? authz : "",
                          authz ? "\r\n" : "");
}

/* NTLM: NEGOTIATE with the request → 401 CHALLENGE → AUTHENTICATE with the same request. */
static int ntlm_handshake(client_t *cl, const char *path)
{
  gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
  gss_buffer_desc out = GSS_C_EMPTY_BUFFER, in;
  OM_uint32 maj, min;
  unsigned char *chal = NULL;
  size_t clen;
  char authz[8192];
  int rc = -EPROTO;

  maj = gss_init_sec_context(&min, me->ntlm_cred, &ctx, ntlm_target_name, &ntlmssp_oid, 0, 0,
                             GSS_C_NO_CHANNEL_BINDINGS, GSS_C_NO_BUFFER, NULL, &out, NULL, NULL);
  if (GSS_ERROR(maj) || out.length > 4096)
    goto out;
  strcpy(authz, "NTLM ");
  gh__b64_encode(out.value, out.length, authz + 5);
  gss_release_buffer(&min, &out);
  rc = roundtrip(&cl->c, cl->c.req, build_req(cl, path, authz), &cl->r);
  if (rc != 0)
    goto out;
  rc = -EPROTO;
  if (cl->r.status != 401 || strncmp(cl->r.www_auth, "NTLM ", 5) != 0)
    goto out;
  chal = malloc(strlen(cl->r.www_auth));
  if (chal == NULL || unb64(cl->r.www_auth + 5, strlen(cl->r.www_auth + 5), chal, &clen) != 0)
    goto out;
  in.value = chal;
  in.length = clen;
  maj = gss_init_sec_context(&min, me->ntlm_cred, &ctx, ntlm_target_name, &ntlmssp_oid, 0, 0,
                             GSS_C_NO_CHANNEL_BINDINGS, &in, NULL, &out, NULL, NULL);
  if (GSS_ERROR(maj) || out.length > 4096)
    goto out;
  strcpy(authz, "NTLM ");
  gh__b64_encode(out.value, out.length, authz + 5);
  gss_release_buffer(&min, &out);
  atomic_fetch_add(&st->ntlm_handshakes, 1);
  rc = roundtrip(&cl->c, cl->c.req, build_req(cl, path, authz), &cl->r);
out:
  free(chal);
  gss_release_buffer(&min, &out);
  gss_delete_sec_context(&min, &ctx, GSS_C_NO_BUFFER);
  return rc;
}

static enum site pick_site(client_t *cl)
{
  unsigned x = (unsigned)rand_r(&cl->seed) % opt.mix_total;
  for (int i = 0; i < ST_N; i++) {
    if (x < opt.mix[i])
      return (enum site)i;
    x -= opt.mix[i];
  }
  return ST_STATIC;
}

static void *client_main(void *arg)
{
  client_t *cl = arg;
  char path[256], why[1024];

  cl->c.fd = -1;
  cl->c.ssl = NULL;
  cl->c.buf = malloc(BUF_CAP);
  cl->c.req = malloc(BUF_CAP);
  cl->line = malloc(TOKEN_CAP);
  if (cl->c.buf == NULL || cl->c.req == NULL || cl->line == NULL) {
    report(&st->errors, cl->sc, ST_STATIC, "out of memory");
    return NULL;
  }
  while (!atomic_load(&st->stop)) {
    enum site si = pick_site(cl);
    const char *authz = NULL;
    int rc;

    if (cl->c.fd < 0) {
      rc = conn_open(&cl->c, cl->sc == SC_PEER);
      if (rc != 0) {
        report(&st->errors, cl->sc, si, "connect: %s", strerror(-rc));
        usleep(100000);
        continue;
      }
      cl->authed = false;
      cl->on_conn = 0;
      {
        /* --ntlm-reconnect: gss-ntlmssp 1.2 leaks ~6 KB per accepted handshake
         * (EVP_MD_fetch without a free), which would hide the daemon's own RSS */
        unsigned every = cl->sc == SC_NTLM && opt.ntlm_reconnect ? opt.ntlm_reconnect
                                                                  : opt.reconnect;
        cl->conn_limit = every / 2 + (unsigned)rand_r(&cl->seed) % (every + 1);
      }
      atomic_fetch_add(&st->reconnects, 1);
    }
    if (si == ST_CROSS) {
      const user_t *other = &opt.users[((me - opt.users) + 1 + rand_r(&cl->seed) %
                                        (opt.nusers > 1 ? opt.nusers - 1 : 1)) % opt.nusers];
      snprintf(path, sizeof(path), "/%s/static/%s.txt", scheme_name[cl->sc], other->name);
    } else if (si == ST_STATIC) {
      snprintf(path, sizeof(path), "/%s/static/%s.txt", scheme_name[cl->sc], me->name);
    } else if (si == ST_CGI) {
      snprintf(path, sizeof(path), "/%s/cgi/ids", scheme_name[cl->sc]);
    } else if (si == ST_WHO) {
      snprintf(path, sizeof(path), "/%s/who/", scheme_name[cl->sc]);
    } else {
      snprintf(path, sizeof(path), "/%s/probe", scheme_name[cl->sc]);
    }
    if (cl->sc == SC_NEGR || (cl->sc == SC_NEG && !cl->authed)) {
      authz = next_token(cl);
      if (authz == NULL) {
        if (me->ccache != NULL) { /* GSS failed (reported): try again on a new connection */
          conn_close(&cl->c);
          usleep(100000);
          continue;
        }
        cl->sc = SC_BASIC; /* out of pre-generated tokens: carry on with Basic */
        conn_close(&cl->c);
        continue;
      }
    } else if (cl->sc == SC_BASIC) {
      authz = me->basic;
    }
    if (cl->sc == SC_NTLM && !cl->authed)
      rc = ntlm_handshake(cl, path);
    else
      rc = roundtrip(&cl->c, cl->c.req, build_req(cl, path, authz), &cl->r);
    if (atomic_load(&st->stop) && rc != 0)
      break;
    if (rc != 0) {
      report(&st->errors, cl->sc, si, "request %s: %s (conn request %u)", path, strerror(-rc),
             cl->on_conn);
      conn_close(&cl->c);
      continue;
    }
    atomic_fetch_add(&st->requests, 1);
    atomic_fetch_add(&st->by_scheme[cl->sc], 1);
    atomic_fetch_add(&st->by_site[si], 1);
    if (cl->r.status == 200)
      cl->authed = true;
    rc = check(si, &cl->r, why, sizeof(why));
    if (rc == 1)
      report(&st->mismatches, cl->sc, si, "%s", why);
    else if (rc == 2)
      report(&st->errors, cl->sc, si, "%s", why);
    else if (si == ST_CROSS)
      atomic_fetch_add(&st->cross_denied, 1);
    if (atomic_load(&st->requests) >= opt.max_requests)
      atomic_store(&st->stop, 1);
    if (cl->r.close || ++cl->on_conn >= cl->conn_limit || rc != 0)
      conn_close(&cl->c);
  }
  conn_close(&cl->c);
  free(cl->r.owned);
  free(cl->c.buf);
  free(cl->c.req);
  free(cl->line);
  return NULL;
}

static int load_tokens(user_t *u)
{
  struct stat sb;
  char *data;
  long n = 0;
  int fd;

  if (u->tokfile[0] == '\0' || strcmp(u->tokfile, "-") == 0)
    return 0;
  if (strncmp(u->tokfile, "ccache=", 7) == 0) {
    /* read now, as root: the clients may run as a uid that cannot read it (the checker
     * test gives alice bob's uid) */
    u->ccache = u->tokfile + 7;
    fd = open(u->ccache, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &sb) != 0 || (u->cc_data = malloc((size_t)sb.st_size)) == NULL)
      return fd < 0 ? -errno : -ENOMEM;
    while (u->cc_len < (size_t)sb.st_size) {
      ssize_t r = read(fd, u->cc_data + u->cc_len, (size_t)sb.st_size - u->cc_len);
      if (r <= 0)
        break;
      u->cc_len += (size_t)r;
    }
    close(fd);
    return 0;
  }
  fd = open(u->tokfile, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || fstat(fd, &sb) != 0)
    return -errno;
  data = malloc((size_t)sb.st_size + 1);
  if (data == NULL)
    return -ENOMEM;
  size_t off = 0;
  while (off < (size_t)sb.st_size) {
    ssize_t r = read(fd, data + off, (size_t)sb.st_size - off);
    if (r <= 0)
      break;
    off += (size_t)r;
  }
  close(fd);
  data[off] = '\0';
  for (size_t i = 0; i < off; i++)
    n += data[i] == '\n';
  u->tokens = calloc((size_t)n + 1, sizeof(char *));
  if (u->tokens == NULL)
    return -ENOMEM;
  n = 0;
  for (char *p = data, *e; *p; p = e + 1) {
    e = strchr(p, '\n');
    if (e == NULL)
      break;
    *e = '\0';
    u->tokens[n++] = p;
  }
  u->ntokens = n;
  return 0;
}

/* The child for one user: read its tokens as root, drop to the user, run the clients. */
static int user_main(user_t *u)
{
  gss_buffer_desc nb, pb, tb = { strlen(opt.ntlm_target), (void *)opt.ntlm_target };
  gss_OID_set_desc mechs = { 1, &ntlmssp_oid };
  gss_name_t uname;
  OM_uint32 maj, min;
  char full[256];
  int rc;

  me = u;
  rc = load_tokens(u);
  if (rc != 0) {
    fprintf(stderr, "gh-soak: %s: %s\n", u->tokfile, strerror(-rc));
    return 2;
  }
  if (setgroups((size_t)u->ngroups, u->groups) != 0 || setresgid(u->gid, u->gid, u->gid) != 0 ||
      setresuid(u->uid, u->uid, u->uid) != 0) {
    fprintf(stderr, "gh-soak: cannot become %s: %s\n", u->name, strerror(errno));
    return 2;
  }
  snprintf(full, sizeof(full), "%s\\%s", opt.ntlm_domain, u->name);
  nb = (gss_buffer_desc){ strlen(full), full };
  pb = (gss_buffer_desc){ strlen(u->password), u->password };
  maj = gss_import_name(&min, &nb, GSS_C_NT_USER_NAME, &uname);
  if (!GSS_ERROR(maj))
    maj = gss_import_name(&min, &tb, GSS_C_NT_HOSTBASED_SERVICE, &ntlm_target_name);
  if (!GSS_ERROR(maj))
    maj = gss_acquire_cred_with_password(&min, uname, &pb, GSS_C_INDEFINITE, &mechs,
                                         GSS_C_INITIATE, &u->ntlm_cred, NULL, NULL);
  if (GSS_ERROR(maj)) {
    fprintf(stderr, "gh-soak: NTLM credential for %s: major %u minor %u\n", full, maj, min);
    return 2;
  }
  if (u->ccache != NULL) {
    /* Kerberos tokens made on demand from the user's own ccache (a service ticket for
     * HTTP@localhost is fetched once and cached there) */
    gss_buffer_desc hb = { strlen("HTTP@localhost"), (void *)"HTTP@localhost" };
    gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
    gss_buffer_desc out = GSS_C_EMPTY_BUFFER;
    char env[80];
    int fd;
    snprintf(u->cc_copy, sizeof(u->cc_copy), "/tmp/gh-soak-cc-XXXXXX");
    fd = mkstemp(u->cc_copy);
    if (fd < 0 || write(fd, u->cc_data, u->cc_len) != (ssize_t)u->cc_len) {
      fprintf(stderr, "gh-soak: copy of %s for %s: %s\n", u->ccache, u->name, strerror(errno));
      return 2;
    }
    close(fd);
    snprintf(env, sizeof(env), "FILE:%s", u->cc_copy);
    setenv("KRB5CCNAME", env, 1);
    maj = gss_import_name(&min, &hb, GSS_C_NT_HOSTBASED_SERVICE, &http_target_name);
    if (!GSS_ERROR(maj))
      maj = gss_init_sec_context(&min, GSS_C_NO_CREDENTIAL, &ctx, http_target_name, &spnego_oid,
                                 GSS_C_MUTUAL_FLAG | GSS_C_INTEG_FLAG, 0,
                                 GSS_C_NO_CHANNEL_BINDINGS, GSS_C_NO_BUFFER, NULL, &out, NULL,
                                 NULL);
    gss_release_buffer(&min, &out);
    gss_delete_sec_context(&min, &ctx, GSS_C_NO_BUFFER);
    if (GSS_ERROR(maj)) {
      fprintf(stderr, "gh-soak: Kerberos token for %s from %s: major %u minor %u\n", u->name,
              u->ccache, maj, min);
      unlink(u->cc_copy);
      return 2;
    }
  }
  client_t *cls = calloc(opt.conns, sizeof(client_t));
  pthread_t *th = calloc(opt.conns, sizeof(pthread_t));
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  unsigned k = 0;
  for (unsigned i = 0; i < opt.conns; i++) {
    while (!(opt.scheme_mask & (1u << plan[k % 32])))
      k++;
    cls[i].sc = plan[k++ % 32];
    cls[i].idx = i;
    cls[i].seed = (unsigned)(u->uid * 7919u + i * 104729u + (unsigned)getpid());
    if (pthread_create(&th[i], &attr, client_main, &cls[i]) != 0) {
      fprintf(stderr, "gh-soak: pthread_create failed\n");
      atomic_store(&st->stop, 1);
      opt.conns = i;
      break;
    }
  }
  for (unsigned i = 0; i < opt.conns; i++)
    pthread_join(th[i], NULL);
  if (u->cc_copy[0] != '\0')
    unlink(u->cc_copy);
  return 0;
}

static int parse_user(const char *spec, user_t *u)
{
  char tmp[2048], *f[6], *save = NULL;
  int n = 0;
  snprintf(tmp, sizeof(tmp), "%s", spec);
  for (char *p = strtok_r(tmp, ":", &save); p && n < 6; p = strtok_r(NULL, ":", &save))
    f[n++] = p;
  if (n < 5)
    return -1;
  snprintf(u->name, sizeof(u->name), "%s", f[0]);
  u->uid = (uid_t)strtoul(f[1], NULL, 10);
  u->gid = (gid_t)strtoul(f[2], NULL, 10);
  for (char *p = strtok_r(f[3], ",", &save); p && u->ngroups < MAX_GROUPS;
       p = strtok_r(NULL, ",", &save))
    u->groups[u->ngroups++] = (gid_t)strtoul(p, NULL, 10);
  qsort(u->groups, (size_t)u->ngroups, sizeof(gid_t), cmp_gid);
  snprintf(u->password, sizeof(u->password), "%s", f[4]);
  snprintf(u->tokfile, sizeof(u->tokfile), "%s", n > 5 ? f[5] : "-");
  char up[256];
  int l = snprintf(up, sizeof(up), "%s:%s", u->name, u->password);
  strcpy(u->basic, "Basic ");
  gh__b64_encode((unsigned char *)up, (size_t)l, u->basic + 6);
  return 0;
}

static int usage(void)
{
  fprintf(stderr, "usage: gh-soak --port P --unix PATH --user NAME:UID:GID:GROUPS:PW:TOKFILE ... "
                  "[--conns N] [--requests N] [--duration S] [--ntlm-target T] "
                  "[--ntlm-domain D] [--mix a,b,c,d,e] [--reconnect N] [--progress S] "
                  "[--schemes neg,negr,ntlm,basic,peer] [--ntlm-reconnect N] [--tls CAFILE]\n");
  return 2;
}

int main(int argc, char **argv)
{
  pid_t pids[MAX_USERS];
  double t0;
  unsigned long last = 0;

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (v == NULL)
      return usage();
    i++;
    if (strcmp(a, "--port") == 0)
      opt.port = atoi(v);
    else if (strcmp(a, "--unix") == 0)
      opt.unix_path = v;
    else if (strcmp(a, "--conns") == 0)
      opt.conns = (unsigned)atoi(v);
    else if (strcmp(a, "--requests") == 0)
      opt.max_requests = strtoul(v, NULL, 10);
    else if (strcmp(a, "--duration") == 0)
      opt.duration_s = (unsigned)atoi(v);
    else if (strcmp(a, "--reconnect") == 0)
      opt.reconnect = (unsigned)atoi(v);
    else if (strcmp(a, "--ntlm-reconnect") == 0)
      opt.ntlm_reconnect = (unsigned)atoi(v);
    else if (strcmp(a, "--progress") == 0)
      opt.progress_s = (unsigned)atoi(v);
    else if (strcmp(a, "--tls") == 0)
      opt.tls_ca = v;
    else if (strcmp(a, "--ntlm-target") == 0)
      opt.ntlm_target = v;
    else if (strcmp(a, "--schemes") == 0) {
      for (int sc = 0; sc < SC_N; sc++) {
        const char *p = strstr(v, scheme_name[sc]);
        size_t l = strlen(scheme_name[sc]);
        while (p && ((p != v && p[-1] != ',') || (p[l] != ',' && p[l] != '\0')))
          p = strstr(p + 1, scheme_name[sc]);
        if (p)
          opt.scheme_mask |= 1u << sc;
      }
      if (opt.scheme_mask == 0)
        return usage();
    } else if (strcmp(a, "--ntlm-domain") == 0)
      opt.ntlm_domain = v;
    else if (strcmp(a, "--mix") == 0) {
      if (sscanf(v, "%u,%u,%u,%u,%u", &opt.mix[0], &opt.mix[1], &opt.mix[2], &opt.mix[3],
                 &opt.mix[4]) != 5)
        return usage();
    } else if (strcmp(a, "--user") == 0) {
      if (opt.nusers >= MAX_USERS || parse_user(v, &opt.users[opt.nusers]) != 0)
        return usage();
      opt.nusers++;
    } else
      return usage();
  }
  for (int i = 0; i < ST_N; i++)
    opt.mix_total += opt.mix[i];
  if (opt.scheme_mask == 0)
    opt.scheme_mask = (1u << SC_N) - 1;
  if (opt.port <= 0 || opt.unix_path == NULL || opt.nusers == 0 || opt.conns == 0 ||
      opt.mix_total == 0 || opt.reconnect == 0 || opt.duration_s == 0)
    return usage();
  if (geteuid() != 0) {
    fprintf(stderr, "gh-soak: needs root (each user's clients run as that user)\n");
    return 2;
  }
  if (opt.tls_ca != NULL) {
    /* loaded as root, before the per-user children drop their ids */
    tls_ctx = SSL_CTX_new(TLS_client_method());
    if (tls_ctx == NULL || SSL_CTX_load_verify_locations(tls_ctx, opt.tls_ca, NULL) != 1) {
      fprintf(stderr, "gh-soak: cannot load CA %s\n", opt.tls_ca);
      return 2;
    }
    SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_PEER, NULL);
  }
  st = mmap(NULL, sizeof(*st), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (st == MAP_FAILED)
    return perror("mmap"), 2;
  memset(st, 0, sizeof(*st));
  signal(SIGPIPE, SIG_IGN);
  t0 = now_s();
  for (int i = 0; i < opt.nusers; i++) {
    pids[i] = fork();
    if (pids[i] == 0)
      _exit(user_main(&opt.users[i]));
    if (pids[i] < 0) {
      perror("fork");
      atomic_store(&st->stop, 1);
      opt.nusers = i;
      break;
    }
  }
  double next_progress = t0 + opt.progress_s;
  while (!atomic_load(&st->stop)) {
    usleep(100000);
    double t = now_s();
    if (t - t0 >= opt.duration_s)
      atomic_store(&st->stop, 1);
    for (int i = 0; i < opt.nusers; i++)
      if (pids[i] > 0 && !atomic_load(&st->stop) && waitpid(pids[i], NULL, WNOHANG) == pids[i]) {
        fprintf(stderr, "gh-soak: client process for %s exited early\n", opt.users[i].name);
        atomic_fetch_add(&st->errors, 1);
        atomic_store(&st->stop, 1);
        pids[i] = -1;
      }
    if (opt.progress_s && t >= next_progress) {
      unsigned long n = atomic_load(&st->requests);
      fprintf(stderr,
              "progress t=%.1f requests=%lu rate=%.0f mismatches=%lu errors=%lu neg_tokens=%lu "
              "ntlm_handshakes=%lu\n",
              t - t0, n, (double)(n - last) / opt.progress_s, atomic_load(&st->mismatches),
              atomic_load(&st->errors), atomic_load(&st->neg_tokens),
              atomic_load(&st->ntlm_handshakes));
      last = n;
      next_progress += opt.progress_s;
    }
  }
  for (int i = 0; i < opt.nusers; i++) {
    int ws = 0;
    if (pids[i] > 0 && waitpid(pids[i], &ws, 0) == pids[i] &&
        !(WIFEXITED(ws) && WEXITSTATUS(ws) == 0)) {
      fprintf(stderr, "gh-soak: client process for %s failed (status %#x)\n", opt.users[i].name,
              ws);
      atomic_fetch_add(&st->errors, 1);
    }
  }
  double secs = now_s() - t0;
  unsigned long req = atomic_load(&st->requests);
  printf("requests=%lu mismatches=%lu errors=%lu seconds=%.1f rate=%.0f users=%d conns=%u "
         "reconnects=%lu neg_tokens=%lu ntlm_handshakes=%lu cross_denied=%lu "
         "tokens_exhausted=%lu",
         req, atomic_load(&st->mismatches), atomic_load(&st->errors), secs, (double)req / secs,
         opt.nusers, opt.conns * (unsigned)opt.nusers, atomic_load(&st->reconnects),
         atomic_load(&st->neg_tokens), atomic_load(&st->ntlm_handshakes),
         atomic_load(&st->cross_denied), atomic_load(&st->tokens_exhausted));
  for (int i = 0; i < SC_N; i++)
    printf(" scheme_%s=%lu", scheme_name[i], atomic_load(&st->by_scheme[i]));
  for (int i = 0; i < ST_N; i++)
    printf(" site_%s=%lu", site_name[i], atomic_load(&st->by_site[i]));
  printf("\n");
  return atomic_load(&st->mismatches) == 0 && atomic_load(&st->errors) == 0 ? 0 : 1;
}
