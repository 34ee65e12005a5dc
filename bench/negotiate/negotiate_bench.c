/* negotiate_bench.c: pre-generates unique SPNEGO tokens, measures in-process gss_accept_sec_context/s and keep-alive HTTP Negotiate load. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>

#include "httpapi/auth/auth.h" /* gh__b64_encode */

/*
 * gh-negotiate-bench gen N SPN FILE        N unique "Negotiate <b64>" lines from KRB5CCNAME
 * gh-negotiate-bench inproc FILE KEYTAB    accept every token once on one core (raw GSSAPI,
 *                                          SPNEGO acceptor from the keytab cred store)
 * gh-negotiate-bench http HOST PORT PATH FILE CONNS
 *                                          each token sent once, CONNS keep-alive connections
 * gh-negotiate-bench ntlm HOST PORT PATH DOM\\USER PASSWORD TARGET N CONNS
 *                                          N raw-NTLM handshakes (NEGOTIATE -> 401 CHALLENGE ->
 *                                          AUTHENTICATE -> 2xx), each on a fresh connection,
 *                                          gss-ntlmssp initiator aimed at TARGET (HTTP@host)
 * gh-negotiate-bench rcache unix:/PATH N THREADS
 *                                          replay-cache inserts/s: the in-memory table, the
 *                                          Redis backend, and alternatives (rcache_bench.c)
 * Every mode prints one "key=value ..." line (rcache: one per strategy).
 */

int gh_bench_rcache(const char *url, long n, int threads);

static gss_OID_desc spnego_oid = { 6, (void *)"\x2b\x06\x01\x05\x05\x02" };
static gss_OID_desc ntlmssp_oid = { 10, (void *)"\x2b\x06\x01\x04\x01\x82\x37\x02\x02\x0a" };

static double now_s(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}


static int unb64(const char *in, unsigned char *out, size_t *ret_len)
{
  size_t n = 0;
  unsigned acc = 0;
  int bits = 0;
  for (const char *p = in; *p && *p != '='; p++) {
    const char *tab = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *q = strchr(tab, *p);
    if (!q)
      return -1;
    acc = (acc << 6) | (unsigned)(q - tab);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (unsigned char)(acc >> bits);
    }
  }
  *ret_len = n;
  return 0;
}

static void gss_fail(const char *what, OM_uint32 maj, OM_uint32 min)
{
  OM_uint32 c = 0, m;
  gss_buffer_desc a = GSS_C_EMPTY_BUFFER, b = GSS_C_EMPTY_BUFFER;
  gss_display_status(&m, maj, GSS_C_GSS_CODE, GSS_C_NO_OID, &c, &a);
  c = 0;
  gss_display_status(&m, min, GSS_C_MECH_CODE, GSS_C_NO_OID, &c, &b);
  fprintf(stderr, "%s: %.*s / %.*s\n", what, (int)a.length, (char *)a.value, (int)b.length,
          (char *)b.value);
  exit(1);
}

static int gen(long n, const char *spn, const char *file)
{
  gss_buffer_desc nb = { strlen(spn), (void *)spn };
  gss_name_t t;
  OM_uint32 maj, min;
  FILE *f = fopen(file, "w");
  char *line = malloc(65536);
  double t0 = now_s();

  if (!f)
    return perror(file), 1;
  maj = gss_import_name(&min, &nb, GSS_C_NT_HOSTBASED_SERVICE, &t);
  if (GSS_ERROR(maj))
    gss_fail("import", maj, min);
  for (long i = 0; i < n; i++) {
    gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
    gss_buffer_desc out = GSS_C_EMPTY_BUFFER;
    maj = gss_init_sec_context(&min, GSS_C_NO_CREDENTIAL, &ctx, t, &spnego_oid,
                               GSS_C_MUTUAL_FLAG | GSS_C_INTEG_FLAG, 0, GSS_C_NO_CHANNEL_BINDINGS,
                               GSS_C_NO_BUFFER, NULL, &out, NULL, NULL);
    if (GSS_ERROR(maj))
      gss_fail("init", maj, min);
    gh__b64_encode(out.value, out.length, line);
    fprintf(f, "Negotiate %s\n", line);
    gss_release_buffer(&min, &out);
    gss_delete_sec_context(&min, &ctx, GSS_C_NO_BUFFER);
  }
  fclose(f);
  printf("mode=gen tokens=%ld seconds=%.2f\n", n, now_s() - t0);
  free(line);
  gss_release_name(&min, &t); /* (tests run it under LSan too) */
  return 0;
}

static char **load(const char *file, long *ret_n)
{
  FILE *f = fopen(file, "r");
  char *line = malloc(65536);
  char **v = NULL;
  long n = 0, cap = 0;

  if (!f)
    perror(file), exit(1);
  while (fgets(line, 65536, f)) {
    line[strcspn(line, "\r\n")] = '\0';
    if (n == cap) {
      cap = cap ? cap * 2 : 1024;
      v = realloc(v, (size_t)cap * sizeof(char *));
    }
    v[n++] = strdup(line);
  }
  fclose(f);
  free(line);
  *ret_n = n;
  return v;
}

static int inproc(const char *file, const char *keytab)
{
  long n;
  char **tok = load(file, &n);
  gss_key_value_element_desc el = { "keytab", keytab };
  gss_key_value_set_desc st = { 1, &el };
  gss_OID_set_desc mechs = { 1, &spnego_oid };
  gss_buffer_desc nb = { 4, (void *)"HTTP" };
  gss_name_t name;
  gss_cred_id_t cred;
  OM_uint32 maj, min;
  unsigned char *buf = malloc(65536);
  long ok = 0;
  cpu_set_t cs;

  CPU_ZERO(&cs);
  CPU_SET(0, &cs);
  sched_setaffinity(0, sizeof(cs), &cs); /* one core */
  maj = gss_import_name(&min, &nb, GSS_C_NT_HOSTBASED_SERVICE, &name);
  if (GSS_ERROR(maj))
    gss_fail("import", maj, min);
  maj = gss_acquire_cred_from(&min, name, GSS_C_INDEFINITE, &mechs, GSS_C_ACCEPT, &st, &cred,
                              NULL, NULL);
  if (GSS_ERROR(maj))
    gss_fail("acquire", maj, min);
  double t0 = now_s();
  for (long i = 0; i < n; i++) {
    gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
    gss_buffer_desc in, out = GSS_C_EMPTY_BUFFER;
    size_t len;
    if (unb64(tok[i] + strlen("Negotiate "), buf, &len) != 0)
      continue;
    in.value = buf;
    in.length = len;
    maj = gss_accept_sec_context(&min, &ctx, cred, &in, GSS_C_NO_CHANNEL_BINDINGS, NULL, NULL,
                                 &out, NULL, NULL, NULL);
    ok += maj == GSS_S_COMPLETE;
    gss_release_buffer(&min, &out);
    gss_delete_sec_context(&min, &ctx, GSS_C_NO_BUFFER);
  }
  double s = now_s() - t0;
  printf("mode=inproc tokens=%ld ok=%ld seconds=%.3f accepts_per_sec_one_core=%.1f\n", n, ok, s,
         (double)n / s);
  return ok == n ? 0 : 1;
}

typedef struct worker {
  const char *host, *path;
  int port;
  char **tok;
  long from, to;
  long ok, fail;
  long st401, st4xx, st5xx, closed, reconnects;
} worker_t;

static int connect_to(const char *host, int port)
{
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
  inet_pton(AF_INET, host, &sa.sin_addr);
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
    close(s);
    return -1;
  }
  return s;
}

/* Reads one response; returns the status, or -1. Handles Content-Length bodies only. */
static int read_response(int s, char *buf, size_t cap)
{
  size_t have = 0;
  for (;;) {
    ssize_t r = read(s, buf + have, cap - have - 1);
    if (r <= 0)
      return -1;
    have += (size_t)r;
    buf[have] = '\0';
    char *end = strstr(buf, "\r\n\r\n");
    if (!end)
      continue;
    long clen = 0;
    char *cl = strcasestr(buf, "\r\nContent-Length:");
    if (cl && cl < end)
      clen = strtol(cl + 17, NULL, 10);
    size_t need = (size_t)(end - buf) + 4 + (size_t)clen;
    while (have < need) {
      r = read(s, buf + have, cap - have - 1 < need - have ? cap - have - 1 : need - have);
      if (r <= 0)
        return -1;
      have += (size_t)r;
    }
    return atoi(buf + 9);
  }
}

static void *run_worker(void *arg)
{
  worker_t *w = arg;
  char *req = malloc(70000), *resp = malloc(1 << 20);
  int s = connect_to(w->host, w->port);

  for (long i = w->from; i < w->to; i++) {
    if (s < 0 && (s = connect_to(w->host, w->port)) < 0) {
      w->fail++;
      continue;
    }
    int n = snprintf(req, 70000, "GET %s HTTP/1.1\r\nHost: localhost\r\nAuthorization: %s\r\n\r\n",
                     w->path, w->tok[i]);
    int st = write(s, req, (size_t)n) == n ? read_response(s, resp, 1 << 20) : -1;
    if (st >= 200 && st < 300)
      w->ok++;
    else
      w->fail++;
    if (st == 401)
      w->st401++;
    else if (st >= 400 && st < 500)
      w->st4xx++;
    else if (st >= 500)
      w->st5xx++;
    if (st < 0) {
      w->closed++;
      close(s);
      s = -1;
    } else if (strcasestr(resp, "\r\nConnection: close")) {
      w->reconnects++;
      close(s);
      s = -1;
    }
  }
  if (s >= 0)
    close(s);
  free(req);
  free(resp);
  return NULL;
}

static int http(const char *host, int port, const char *path, const char *file, int conns)
{
  long n;
  char **tok = load(file, &n);
  pthread_t *th = calloc((size_t)conns, sizeof(pthread_t));
  worker_t *w = calloc((size_t)conns, sizeof(worker_t));
  long ok = 0, fail = 0, s401 = 0, s4xx = 0, s5xx = 0, closed = 0, recon = 0;

  double t0 = now_s();
  for (int i = 0; i < conns; i++) {
    w[i] = (worker_t){ host, path, port, tok, n * i / conns, n * (i + 1) / conns, 0, 0, 0, 0, 0, 0, 0 };
    pthread_create(&th[i], NULL, run_worker, &w[i]);
  }
  for (int i = 0; i < conns; i++) {
    pthread_join(th[i], NULL);
    ok += w[i].ok;
    fail += w[i].fail;
    s401 += w[i].st401;
    s4xx += w[i].st4xx;
    s5xx += w[i].st5xx;
    closed += w[i].closed;
    recon += w[i].reconnects;
  }
  double s = now_s() - t0;
  printf("mode=http tokens=%ld ok=%ld fail=%ld status401=%ld status4xx=%ld status5xx=%ld "
         "conn_lost=%ld server_closed=%ld conns=%d seconds=%.3f requests_per_sec=%.1f\n",
         n, ok, fail, s401, s4xx, s5xx, closed, recon, conns, s, (double)ok / s);
  return fail ? 1 : 0;
}

/* ---- NTLM handshakes ---- */

typedef struct ntlm_worker {
  const char *host, *path;
  int port;
  gss_cred_id_t cred;
  gss_name_t target;
  long n;
  long ok, fail, leg_fail;
} ntlm_worker_t;

/* The token of the first "WWW-Authenticate: NTLM <b64>" in a response head. */
static int challenge_token(const char *resp, unsigned char *out, size_t *ret_len)
{
  const char *end = strstr(resp, "\r\n\r\n"), *p = resp;
  while ((p = strcasestr(p, "\r\nWWW-Authenticate: NTLM ")) != NULL && p < end) {
    char b[65536];
    p += strlen("\r\nWWW-Authenticate: NTLM ");
    size_t l = strcspn(p, "\r\n");
    if (l >= sizeof(b))
      return -1;
    memcpy(b, p, l);
    b[l] = '\0';
    return unb64(b, out, ret_len);
  }
  return -1;
}

static void *run_ntlm(void *arg)
{
  ntlm_worker_t *w = arg;
  char *req = malloc(70000), *resp = malloc(1 << 20), *line = malloc(65536);
  unsigned char *chal = malloc(65536);

  for (long i = 0; i < w->n; i++) {
    gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
    gss_buffer_desc out = GSS_C_EMPTY_BUFFER, in;
    OM_uint32 maj, min;
    size_t clen;
    int st = -1, s = connect_to(w->host, w->port);

    if (s < 0)
      goto fail;
    maj = gss_init_sec_context(&min, w->cred, &ctx, w->target, &ntlmssp_oid, 0, 0,
                               GSS_C_NO_CHANNEL_BINDINGS, GSS_C_NO_BUFFER, NULL, &out, NULL,
                               NULL);
    if (GSS_ERROR(maj))
      goto fail;
    gh__b64_encode(out.value, out.length, line);
    gss_release_buffer(&min, &out);
    int n = snprintf(req, 70000, "GET %s HTTP/1.1\r\nHost: localhost\r\nAuthorization: NTLM %s\r\n\r\n",
                     w->path, line);
    st = write(s, req, (size_t)n) == n ? read_response(s, resp, 1 << 20) : -1;
    if (st != 401 || challenge_token(resp, chal, &clen) != 0) {
      w->leg_fail++;
      goto fail;
    }
    in.value = chal;
    in.length = clen;
    maj = gss_init_sec_context(&min, w->cred, &ctx, w->target, &ntlmssp_oid, 0, 0,
                               GSS_C_NO_CHANNEL_BINDINGS, &in, NULL, &out, NULL, NULL);
    if (GSS_ERROR(maj)) {
      w->leg_fail++;
      goto fail;
    }
    gh__b64_encode(out.value, out.length, line);
    gss_release_buffer(&min, &out);
    n = snprintf(req, 70000, "GET %s HTTP/1.1\r\nHost: localhost\r\nAuthorization: NTLM %s\r\n\r\n",
                 w->path, line);
    st = write(s, req, (size_t)n) == n ? read_response(s, resp, 1 << 20) : -1;
    if (st >= 200 && st < 300) {
      w->ok++;
      gss_delete_sec_context(&min, &ctx, GSS_C_NO_BUFFER);
      close(s);
      continue;
    }
  fail:
    w->fail++;
    gss_delete_sec_context(&min, &ctx, GSS_C_NO_BUFFER);
    if (s >= 0)
      close(s);
  }
  free(req);
  free(resp);
  free(line);
  free(chal);
  return NULL;
}

static int ntlm(const char *host, int port, const char *path, const char *user, const char *pw,
                const char *target, long n, int conns)
{
  gss_buffer_desc ub = { strlen(user), (void *)user }, pb = { strlen(pw), (void *)pw };
  gss_buffer_desc tb = { strlen(target), (void *)target };
  gss_OID_set_desc mechs = { 1, &ntlmssp_oid };
  gss_name_t uname, tname;
  gss_cred_id_t cred;
  OM_uint32 maj, min;
  pthread_t *th = calloc((size_t)conns, sizeof(pthread_t));
  ntlm_worker_t *w = calloc((size_t)conns, sizeof(ntlm_worker_t));
  long ok = 0, fail = 0, leg = 0;

  maj = gss_import_name(&min, &ub, GSS_C_NT_USER_NAME, &uname);
  if (GSS_ERROR(maj))
    gss_fail("import user", maj, min);
  maj = gss_import_name(&min, &tb, GSS_C_NT_HOSTBASED_SERVICE, &tname);
  if (GSS_ERROR(maj))
    gss_fail("import target", maj, min);
  maj = gss_acquire_cred_with_password(&min, uname, &pb, GSS_C_INDEFINITE, &mechs, GSS_C_INITIATE,
                                       &cred, NULL, NULL);
  if (GSS_ERROR(maj))
    gss_fail("acquire ntlm", maj, min);
  double t0 = now_s();
  for (int i = 0; i < conns; i++) {
    w[i] = (ntlm_worker_t){ host, path, port, cred, tname, n * (i + 1) / conns - n * i / conns,
                            0, 0, 0 };
    pthread_create(&th[i], NULL, run_ntlm, &w[i]);
  }
  for (int i = 0; i < conns; i++) {
    pthread_join(th[i], NULL);
    ok += w[i].ok;
    fail += w[i].fail;
    leg += w[i].leg_fail;
  }
  double s = now_s() - t0;
  printf("mode=ntlm handshakes=%ld ok=%ld fail=%ld challenge_fail=%ld conns=%d seconds=%.3f "
         "handshakes_per_sec=%.1f\n", n, ok, fail, leg, conns, s, (double)ok / s);
  return fail ? 1 : 0;
}

int main(int argc, char **argv)
{
  if (argc >= 5 && !strcmp(argv[1], "gen"))
    return gen(atol(argv[2]), argv[3], argv[4]);
  if (argc >= 4 && !strcmp(argv[1], "inproc"))
    return inproc(argv[2], argv[3]);
  if (argc >= 7 && !strcmp(argv[1], "http"))
    return http(argv[2], atoi(argv[3]), argv[4], argv[5], atoi(argv[6]));
  if (argc >= 10 && !strcmp(argv[1], "ntlm"))
    return ntlm(argv[2], atoi(argv[3]), argv[4], argv[5], argv[6], argv[7], atol(argv[8]),
                atoi(argv[9]));
  if (argc >= 5 && !strcmp(argv[1], "rcache"))
    return gh_bench_rcache(argv[2], atol(argv[3]), atoi(argv[4]));
  fprintf(stderr, "usage: gh-negotiate-bench gen N SPN FILE | inproc FILE KEYTAB | "
                  "http HOST PORT PATH FILE CONNS | "
                  "ntlm HOST PORT PATH DOM\\USER PASSWORD TARGET N CONNS | "
                  "rcache unix:/PATH N THREADS\n");
  return 2;
}
