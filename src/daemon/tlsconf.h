/* tlsconf.h: gatehoused TLS configuration — [server] tls_* and hsts keys, "listen = ADDR tls [cert=F key=F]" lines, the server's log sink. */
#ifndef GH_DAEMON_TLSCONF_H
#define GH_DAEMON_TLSCONF_H

#include <stddef.h>

#include <gatehouse/httpapi.h>

/* [server] TLS keys. certs[i] pairs with keys[i] (NULL: key in the cert file). */
typedef struct gh_daemon_tls {
  char **certs;
  char **keys;
  size_t n;
  char *ciphers;
  char *ciphersuites;
  char *hsts;
  unsigned handshake_timeout_ms;
} gh_daemon_tls_t;

void gh_daemon_tls_done(gh_daemon_tls_t *t);

/** One [server] key: 1 = taken, 0 = error (msg filled), -1 = not a TLS key. */
int gh_daemon_tls_server_key(gh_daemon_tls_t *t, const char *k, const char *v, char *msg,
                             size_t msglen);

/** Checks the words after the address of a listen line ("tls",
 *  "cert=FILE", "key=FILE"). 0, or GH_ECONFIG with msg. */
int gh_daemon_tls_check_listen(const char *line, char *msg, size_t msglen);

/** Adds the listener of one listen line: plain, or TLS with the line's own
 *  cert=/key= pairs or else the [server] ones. Logs failures. Returns 0 or
 *  an error code. */
int gh_daemon_tls_add_listener(gh_server_t *srv, const gh_daemon_tls_t *t, const char *line);

/** Routes the server's log lines (TLS handshake failures ...) to gh_dlog. */
void gh_daemon_tls_attach_log(gh_server_t *srv);

#endif
