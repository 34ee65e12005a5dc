/* tls.h: TLS for the HTTP core — certificate stores (SNI, ALPN, reload), non-blocking handshakes and record I/O, tls-server-end-point channel bindings (internal). */
#ifndef GH_HTTPAPI_TLS_H
#define GH_HTTPAPI_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include <gatehouse/httpapi.h>

/*
 * Objects:
 *   gh__tls_listener_t  one per TLS listener: a copy of its gh_tls_config_t
 *                       (file names for reload) and the current store,
 *                       swapped under a mutex by gh__tls_listener_reload.
 *   gh__tls_store_t     one loaded set of certificates: an SSL_CTX per
 *                       certificate (entry 0 = default) and their DNS names
 *                       for SNI. Refcounted: every connection holds one
 *                       reference (its SNI callback uses the store), so a
 *                       reload never frees a store under a handshake.
 *
 * An SSL object is used by one thread at a time: the connection's owner
 * (internal.h: the event thread or the worker holding its request). No locks.
 * Sockets are driven through a BIO that uses send(MSG_NOSIGNAL) and recv, so
 * a broken connection never raises SIGPIPE in an application thread.
 */

typedef struct gh__tls_store gh__tls_store_t;
typedef struct gh__tls_listener gh__tls_listener_t;

/* Results of the non-blocking calls below (negative: errors). */
#define GH__TLS_WANT_READ (-1000)
#define GH__TLS_WANT_WRITE (-1001)

/** Bytes of the largest channel-binding value: prefix + SHA-512. */
#define GH__TLS_CBT_MAX (21 + 64)

/** Copies cfg and loads its certificates. Returns 0, GH_ECONFIG (errbuf
 *  names the file and the OpenSSL reason), -EINVAL or -ENOMEM. */
int gh__tls_listener_new(const gh_tls_config_t *cfg, char *errbuf, size_t errlen,
                         gh__tls_listener_t **ret_listener);
void gh__tls_listener_free(gh__tls_listener_t *tl);
/** Loads the files again into a new store (not installed yet). */
int gh__tls_listener_load(gh__tls_listener_t *tl, char *errbuf, size_t errlen,
                          gh__tls_store_t **ret_store);
/** Installs a store from gh__tls_listener_load (takes its reference). */
void gh__tls_listener_install(gh__tls_listener_t *tl, gh__tls_store_t *store);
/** The current store with a new reference. Any thread. */
gh__tls_store_t *gh__tls_listener_get_store(gh__tls_listener_t *tl);
unsigned gh__tls_listener_handshake_timeout(const gh__tls_listener_t *tl);
void gh__tls_store_unref(gh__tls_store_t *store);

/** A server-side SSL on fd (accept state), or NULL. */
SSL *gh__tls_ssl_new(gh__tls_store_t *store, int fd);

/** One handshake step: 1 done, GH__TLS_WANT_READ/WRITE, or -1 failed with a
 *  reason in why ("http request": plain HTTP sent to the TLS port). */
int gh__tls_handshake(SSL *ssl, char *why, size_t whylen);
/** Reads: > 0 bytes, 0 at EOF (close_notify or TCP FIN), WANT_READ/WRITE, or -EIO. */
ssize_t gh__tls_read(SSL *ssl, void *buf, size_t len);
/** Writes: > 0 bytes written (maybe fewer than len), WANT_WRITE/READ, or
 *  -EPIPE. After WANT_*, the next write must pass the same first bytes and
 *  at least the same length (the buffer may move). */
ssize_t gh__tls_write(SSL *ssl, const void *buf, size_t len);
/** Sends close_notify if the handshake finished (best effort, non-blocking). */
void gh__tls_shutdown(SSL *ssl);

/** The RFC 5929 tls-server-end-point channel-binding application data of
 *  the connection: "tls-server-end-point:" followed by the hash of the
 *  server certificate in use (the certificate's signature hash, SHA-256
 *  when that is MD5 or SHA-1 or undefined). buf holds GH__TLS_CBT_MAX.
 *  Returns 0 and *ret_len, or GH_ENOT_FOUND. */
int gh__tls_channel_binding(SSL *ssl, unsigned char *buf, size_t *ret_len);

/** The same value for a PEM certificate in memory (tests). */
int gh__tls_cert_channel_binding(X509 *cert, unsigned char *buf, size_t *ret_len);

/** Whether host matches a certificate name (exact, case-insensitive, or
 *  "*.rest" for exactly one leading label). Pure; exposed for unit tests. */
bool gh__tls_name_match(const char *pattern, const char *host);

#endif
