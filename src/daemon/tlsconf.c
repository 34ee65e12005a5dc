/* tlsconf.c: gatehoused TLS configuration — [server] tls_* and hsts keys, "listen = ADDR tls" lines, the library's log callback into gh_dlog. */
#include "tlsconf.h"
#include "confval.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/error.h>

#include "daemonlog.h"

#define MAX_WORDS 34

void gh_daemon_tls_done(gh_daemon_tls_t *t)
{
  for (size_t i = 0; i < t->n; i++) {
    free(t->certs[i]);
    free(t->keys[i]);
  }
  free(t->certs);
  free(t->keys);
  free(t->ciphers);
  free(t->ciphersuites);
  free(t->hsts);
  memset(t, 0, sizeof(*t));
}

int gh_daemon_tls_server_key(gh_daemon_tls_t *t, const char *k, const char *v, char *msg,
                             size_t msglen)
{
  if (strcmp(k, "tls_cert") == 0) {
    char **nc = realloc(t->certs, (t->n + 1) * sizeof(*nc));
    if (nc != NULL)
      t->certs = nc;
    char **nk = realloc(t->keys, (t->n + 1) * sizeof(*nk));
    if (nk != NULL)
      t->keys = nk;
    if (nc == NULL || nk == NULL || (t->certs[t->n] = strdup(v)) == NULL) {
      snprintf(msg, msglen, "out of memory");
      return 0;
    }
    t->keys[t->n] = NULL;
    t->n++;
    return 1;
  }
  if (strcmp(k, "tls_key") == 0) {
    if (t->n == 0 || t->keys[t->n - 1] != NULL) {
      snprintf(msg, msglen, "belongs to the tls_cert line before it (tls_cert = FILE, then "
                            "tls_key = FILE)");
      return 0;
    }
    return gh_daemon_set_str(&t->keys[t->n - 1], v, msg, msglen);
  }
  if (strcmp(k, "tls_ciphers") == 0)
    return gh_daemon_set_str(&t->ciphers, v, msg, msglen);
  if (strcmp(k, "tls_ciphersuites") == 0)
    return gh_daemon_set_str(&t->ciphersuites, v, msg, msglen);
  if (strcmp(k, "hsts") == 0) {
    if (strncmp(v, "max-age=", 8) != 0 || v[8] < '0' || v[8] > '9' || strpbrk(v, "\r\n")) {
      snprintf(msg, msglen, "'%s' is not a Strict-Transport-Security value (max-age=SECONDS "
                            "[; includeSubDomains])", v);
      return 0;
    }
    return gh_daemon_set_str(&t->hsts, v, msg, msglen);
  }
  if (strcmp(k, "tls_handshake_timeout_ms") == 0) {
    unsigned long long n = 0;
    if (!gh_daemon_parse_uint(v, 3600000, 0, &n) || n == 0) {
      snprintf(msg, msglen, "'%s' is not a positive number in range", v);
      return 0;
    }
    t->handshake_timeout_ms = (unsigned)n;
    return 1;
  }
  return -1;
}

/* Splits a listen line in place into words (space separated). */
static size_t split(char *s, char **words, size_t max)
{
  size_t n = 0;
  char *save = NULL;
  for (char *w = strtok_r(s, " \t", &save); w != NULL && n < max; w = strtok_r(NULL, " \t", &save))
    words[n++] = w;
  return n;
}

/* Parses the options of a listen line. Fills certs/keys (borrowing from
 * copy); returns 0 or GH_ECONFIG with msg. */
static int parse_listen(char *copy, char **ret_addr, int *ret_tls, const char **certs,
                        const char **keys, size_t *ret_n, char *msg, size_t msglen)
{
  char *w[MAX_WORDS];
  size_t nw = split(copy, w, MAX_WORDS), n = 0;
  int tls = 0;
  if (nw == 0) {
    snprintf(msg, msglen, "empty listen line");
    return GH_ECONFIG;
  }
  for (size_t i = 1; i < nw; i++) {
    if (strcmp(w[i], "tls") == 0) {
      tls = 1;
    } else if (strncmp(w[i], "cert=", 5) == 0 && w[i][5] != '\0') {
      if (n >= MAX_WORDS / 2) {
        snprintf(msg, msglen, "too many certificates");
        return GH_ECONFIG;
      }
      certs[n] = w[i] + 5;
      keys[n] = NULL;
      n++;
    } else if (strncmp(w[i], "key=", 4) == 0 && w[i][4] != '\0') {
      if (n == 0 || keys[n - 1] != NULL) {
        snprintf(msg, msglen, "key=%s: give it after its cert=FILE", w[i] + 4);
        return GH_ECONFIG;
      }
      keys[n - 1] = w[i] + 4;
    } else {
      snprintf(msg, msglen, "unknown listen option '%s' (tls | cert=FILE | key=FILE)", w[i]);
      return GH_ECONFIG;
    }
  }
  if (n > 0 && !tls) {
    snprintf(msg, msglen, "cert= needs the tls option");
    return GH_ECONFIG;
  }
  *ret_addr = w[0];
  *ret_tls = tls;
  *ret_n = n;
  return 0;
}

int gh_daemon_tls_check_listen(const char *line, char *msg, size_t msglen)
{
  const char *certs[MAX_WORDS], *keys[MAX_WORDS];
  char *addr = NULL, *copy = strdup(line);
  size_t n = 0;
  int tls = 0, ret;
  if (copy == NULL) {
    snprintf(msg, msglen, "out of memory");
    return -ENOMEM;
  }
  ret = parse_listen(copy, &addr, &tls, certs, keys, &n, msg, msglen);
  if (ret == 0 && tls && strncmp(addr, "unix:", 5) == 0) {
    snprintf(msg, msglen, "tls is for TCP listeners, not %s", addr);
    ret = GH_ECONFIG;
  }
  free(copy);
  return ret;
}

int gh_daemon_tls_add_listener(gh_server_t *srv, const gh_daemon_tls_t *t, const char *line)
{
  const char *certs[MAX_WORDS], *keys[MAX_WORDS];
  char *addr = NULL, *copy = strdup(line), msg[512] = "";
  size_t n = 0;
  int tls = 0, ret;
  if (copy == NULL) {
    ret = -ENOMEM;
    gh_dlog(LOG_ERR, "listen %s: out of memory", line);
    goto out;
  }
  ret = parse_listen(copy, &addr, &tls, certs, keys, &n, msg, sizeof(msg));
  if (ret != 0) {
    gh_dlog(LOG_ERR, "listen %s: %s", line, msg);
    goto out;
  }
  if (!tls) {
    ret = gh_server_add_listener(srv, addr);
    if (ret != 0)
      gh_dlog(LOG_ERR, "listen %s: %s", line, gh_strerror(ret));
    goto out;
  }
  gh_tls_config_t tc = {
    .cert_files = n ? certs : (const char *const *)t->certs,
    .key_files = n ? keys : (const char *const *)t->keys,
    .n_certs = n ? n : t->n,
    .ciphers = t->ciphers,
    .ciphersuites = t->ciphersuites,
    .handshake_timeout_ms = t->handshake_timeout_ms,
  };
  if (tc.n_certs == 0) {
    ret = GH_ECONFIG;
    gh_dlog(LOG_ERR, "listen %s: tls needs a certificate: [server] tls_cert = FILE (and "
                     "tls_key = FILE) or cert=FILE key=FILE on the listen line", line);
    goto out;
  }
  ret = gh_server_add_tls_listener(srv, addr, &tc, msg, sizeof(msg));
  if (ret != 0)
    gh_dlog(LOG_ERR, "listen %s: %s", line, msg[0] ? msg : gh_strerror(ret));
out:
  free(copy);
  return ret;
}

static void log_cb(int priority, const char *message, void *arg)
{
  (void)arg;
  gh_dlog(priority, "%s", message);
}

void gh_daemon_tls_attach_log(gh_server_t *srv)
{
  gh_server_set_log(srv, log_cb, NULL);
}
