/* tls.c: TLS for the HTTP core (OpenSSL 3) — certificate stores with SNI and reload, ALPN, a MSG_NOSIGNAL socket BIO, handshake/read/write steps, tls-server-end-point. */
#include "httpapi/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <gatehouse/error.h>

#include "util/alloc.h"

#define CERT_FILE_MAX (1u << 20)
#define DEFAULT_CIPHERS                                                                     \
  "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:" \
  "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define CBT_PREFIX "tls-server-end-point:"

typedef struct tls_entry {
  SSL_CTX *ctx;
  char **names; /* lower-case DNS names of the certificate */
  size_t n_names;
} tls_entry_t;

struct gh__tls_store {
  atomic_int refs;
  tls_entry_t *entries;
  size_t n_entries;
};

struct gh__tls_listener {
  char **certs;
  char **keys; /* entries may be NULL */
  size_t n;
  char *ciphers;
  char *suites;
  unsigned handshake_timeout_ms;
  pthread_mutex_t lock;
  gh__tls_store_t *store;
};

/* ---- the socket BIO ------------------------------------------------------ */

static BIO_METHOD *sock_method;
static pthread_once_t sock_once = PTHREAD_ONCE_INIT;

static int sock_write(BIO *b, const char *data, size_t len, size_t *ret_written)
{
  int fd = (int)(intptr_t)BIO_get_data(b);
  ssize_t w;
  BIO_clear_retry_flags(b);
  do
    w = send(fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (w < 0 && errno == EINTR);
  if (w < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      BIO_set_retry_write(b);
    return 0;
  }
  *ret_written = (size_t)w;
  return 1;
}

static int sock_read(BIO *b, char *data, size_t len, size_t *ret_read)
{
  int fd = (int)(intptr_t)BIO_get_data(b);
  ssize_t r;
  BIO_clear_retry_flags(b);
  do
    r = recv(fd, data, len, MSG_DONTWAIT);
  while (r < 0 && errno == EINTR);
  if (r < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      BIO_set_retry_read(b);
    return 0;
  }
  if (r == 0)
    return 0; /* EOF: no retry flag */
  *ret_read = (size_t)r;
  return 1;
}

static long sock_ctrl(BIO *b, int cmd, long num, void *ptr)
{
  (void)b;
  (void)num;
  (void)ptr;
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int sock_create(BIO *b)
{
  BIO_set_init(b, 1);
  return 1;
}

static void sock_method_init(void)
{
  BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "gh-socket");
  if (m == NULL)
    return;
  if (!BIO_meth_set_write_ex(m, sock_write) || !BIO_meth_set_read_ex(m, sock_read) ||
      !BIO_meth_set_ctrl(m, sock_ctrl) || !BIO_meth_set_create(m, sock_create)) {
    BIO_meth_free(m);
    return;
  }
  sock_method = m;
}

/* ---- names and SNI ------------------------------------------------------- */

bool gh__tls_name_match(const char *pattern, const char *host)
{
  if (strcasecmp(pattern, host) == 0)
    return true;
  if (pattern[0] == '*' && pattern[1] == '.') {
    const char *dot = strchr(host, '.');
    return dot != NULL && dot != host && strcasecmp(pattern + 1, dot) == 0;
  }
  return false;
}

static int add_name(tls_entry_t *e, const char *name, size_t len)
{
  char **nn;
  if (len == 0 || memchr(name, '\0', len) != NULL)
    return 0;
  nn = gh__realloc(e->names, (e->n_names + 1) * sizeof(*nn));
  if (nn == NULL)
    return -ENOMEM;
  e->names = nn;
  nn[e->n_names] = gh__strndup(name, len);
  if (nn[e->n_names] == NULL)
    return -ENOMEM;
  e->n_names++;
  return 0;
}

static int collect_names(tls_entry_t *e, X509 *x)
{
  int ret = 0;
  GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
  if (gens != NULL) {
    for (int i = 0; i < sk_GENERAL_NAME_num(gens) && ret == 0; i++) {
      const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
      if (g->type == GEN_DNS)
        ret = add_name(e, (const char *)ASN1_STRING_get0_data(g->d.dNSName),
                       (size_t)ASN1_STRING_length(g->d.dNSName));
    }
    GENERAL_NAMES_free(gens);
  }
  if (ret == 0 && e->n_names == 0) {
    char cn[256];
    int n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
    if (n > 0)
      ret = add_name(e, cn, (size_t)n);
  }
  return ret;
}

static int servername_cb(SSL *ssl, int *alert, void *arg)
{
  gh__tls_store_t *st = arg;
  const char *host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  (void)alert;
  if (host == NULL || st == NULL)
    return SSL_TLSEXT_ERR_NOACK;
  for (size_t i = 0; i < st->n_entries; i++) {
    for (size_t j = 0; j < st->entries[i].n_names; j++) {
      if (gh__tls_name_match(st->entries[i].names[j], host)) {
        if (i != 0)
          SSL_set_SSL_CTX(ssl, st->entries[i].ctx);
        return SSL_TLSEXT_ERR_OK;
      }
    }
  }
  return SSL_TLSEXT_ERR_OK; /* unknown name: the default certificate */
}

static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
  static const unsigned char ours[] = "\x08http/1.1";
  unsigned char *sel = NULL;
  (void)ssl;
  (void)arg;
  if (SSL_select_next_proto(&sel, outlen, ours, sizeof(ours) - 1, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK; /* no http/1.1 offered: go on without ALPN */
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

/* ---- loading ------------------------------------------------------------- */

static void ssl_err(char *errbuf, size_t errlen, const char *what, const char *file)
{
  unsigned long e = ERR_peek_last_error();
  char reason[200];
  if (e != 0)
    ERR_error_string_n(e, reason, sizeof(reason));
  else
    snprintf(reason, sizeof(reason), "no PEM data found");
  if (errbuf != NULL && errlen > 0)
    snprintf(errbuf, errlen, "%s %s: %s", what, file, reason);
  ERR_clear_error();
}

/* Reads a whole file (O_CLOEXEC), at most 1 MiB. */
static int read_file(const char *path, char **ret_buf, size_t *ret_len)
{
  int ret = 0, fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  struct stat st;
  char *buf = NULL;
  size_t got = 0;
  if (fd < 0) {
    ret = -errno;
    goto out;
  }
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)CERT_FILE_MAX) {
    ret = S_ISREG(st.st_mode) ? -EFBIG : -EINVAL;
    goto out;
  }
  buf = gh__malloc((size_t)st.st_size + 1);
  if (buf == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  while (got < (size_t)st.st_size) {
    ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  buf[got] = '\0';
  *ret_buf = buf;
  *ret_len = got;
  buf = NULL;
out:
  if (fd >= 0)
    close(fd);
  free(buf);
  return ret;
}

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
  (void)buf;
  (void)size;
  (void)rwflag;
  (void)u;
  return -1; /* encrypted keys are not supported: never prompt */
}

static int load_pair(SSL_CTX *ctx, tls_entry_t *e, const char *cert, const char *key,
                     char *errbuf, size_t errlen)
{
  int ret = GH_ECONFIG, e2;
  char *cbuf = NULL, *kbuf = NULL;
  size_t clen = 0, klen = 0;
  BIO *bio = NULL;
  X509 *x = NULL;
  EVP_PKEY *pk = NULL;

  ERR_clear_error();
  e2 = read_file(cert, &cbuf, &clen);
  if (e2 != 0) {
    snprintf(errbuf, errlen, "certificate %s: %s", cert, gh_strerror(e2));
    ret = e2 == -ENOMEM ? -ENOMEM : GH_ECONFIG;
    goto out;
  }
  bio = BIO_new_mem_buf(cbuf, (int)clen);
  if (bio == NULL || (x = PEM_read_bio_X509_AUX(bio, NULL, no_passphrase, NULL)) == NULL ||
      SSL_CTX_use_certificate(ctx, x) != 1) {
    ssl_err(errbuf, errlen, "certificate", cert);
    goto out;
  }
  for (;;) {
    X509 *ca = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
    if (ca == NULL)
      break;
    if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
      X509_free(ca);
      ssl_err(errbuf, errlen, "certificate chain", cert);
      goto out;
    }
  }
  ERR_clear_error(); /* the end of the chain is a "no start line" error */
  BIO_free(bio);
  bio = NULL;
  if (key != NULL) {
    e2 = read_file(key, &kbuf, &klen);
    if (e2 != 0) {
      snprintf(errbuf, errlen, "key %s: %s", key, gh_strerror(e2));
      ret = e2 == -ENOMEM ? -ENOMEM : GH_ECONFIG;
      goto out;
    }
    bio = BIO_new_mem_buf(kbuf, (int)klen);
  } else {
    bio = BIO_new_mem_buf(cbuf, (int)clen);
  }
  if (bio == NULL || (pk = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL)) == NULL ||
      SSL_CTX_use_PrivateKey(ctx, pk) != 1) {
    ssl_err(errbuf, errlen, "key", key ? key : cert);
    goto out;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    ssl_err(errbuf, errlen, "key does not match certificate", key ? key : cert);
    goto out;
  }
  if (collect_names(e, x) != 0) {
    ret = -ENOMEM;
    goto out;
  }
  ret = 0;
out:
  BIO_free(bio);
  X509_free(x);
  EVP_PKEY_free(pk);
  if (kbuf != NULL) {
    explicit_bzero(kbuf, klen);
    free(kbuf);
  }
  if (cbuf != NULL) {
    explicit_bzero(cbuf, clen); /* may hold the key too */
    free(cbuf);
  }
  return ret;
}

static void store_free(gh__tls_store_t *st)
{
  if (st == NULL)
    return;
  for (size_t i = 0; i < st->n_entries; i++) {
    SSL_CTX_free(st->entries[i].ctx);
    for (size_t j = 0; j < st->entries[i].n_names; j++)
      free(st->entries[i].names[j]);
    free(st->entries[i].names);
  }
  free(st->entries);
  free(st);
}

void gh__tls_store_unref(gh__tls_store_t *st)
{
  if (st != NULL && atomic_fetch_sub_explicit(&st->refs, 1, memory_order_acq_rel) == 1)
    store_free(st);
}

static SSL_CTX *ctx_new(const gh__tls_listener_t *tl, gh__tls_store_t *st, char *errbuf,
                        size_t errlen)
{
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == NULL) {
    ssl_err(errbuf, errlen, "SSL_CTX_new", "");
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                               SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_set_cipher_list(ctx, tl->ciphers ? tl->ciphers : DEFAULT_CIPHERS) != 1) {
    ssl_err(errbuf, errlen, "ciphers", tl->ciphers ? tl->ciphers : DEFAULT_CIPHERS);
    goto fail;
  }
  if (tl->suites != NULL && SSL_CTX_set_ciphersuites(ctx, tl->suites) != 1) {
    ssl_err(errbuf, errlen, "ciphersuites", tl->suites);
    goto fail;
  }
  SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"gatehouse", 9);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
  SSL_CTX_set_num_tickets(ctx, 1);
  SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
  SSL_CTX_set_tlsext_servername_callback(ctx, servername_cb);
  SSL_CTX_set_tlsext_servername_arg(ctx, st);
  return ctx;
fail:
  SSL_CTX_free(ctx);
  return NULL;
}

int gh__tls_listener_load(gh__tls_listener_t *tl, char *errbuf, size_t errlen,
                          gh__tls_store_t **ret_store)
{
  int ret = 0;
  char dummy[8];
  gh__tls_store_t *st = gh__calloc(1, sizeof(*st));
  if (errbuf == NULL || errlen == 0) {
    errbuf = dummy;
    errlen = sizeof(dummy);
  }
  errbuf[0] = '\0';
  if (st == NULL || (st->entries = gh__calloc(tl->n, sizeof(*st->entries))) == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  atomic_init(&st->refs, 1);
  for (size_t i = 0; i < tl->n; i++) {
    tls_entry_t *e = &st->entries[i];
    e->ctx = ctx_new(tl, st, errbuf, errlen);
    if (e->ctx == NULL) {
      ret = GH_ECONFIG;
      goto out;
    }
    st->n_entries++;
    ret = load_pair(e->ctx, e, tl->certs[i], tl->keys[i], errbuf, errlen);
    if (ret != 0)
      goto out;
  }
out:
  if (ret == 0) {
    *ret_store = st;
  } else {
    if (ret == -ENOMEM && errbuf[0] == '\0')
      snprintf(errbuf, errlen, "out of memory");
    store_free(st);
  }
  return ret;
}

void gh__tls_listener_install(gh__tls_listener_t *tl, gh__tls_store_t *st)
{
  gh__tls_store_t *old;
  pthread_mutex_lock(&tl->lock);
  old = tl->store;
  tl->store = st;
  pthread_mutex_unlock(&tl->lock);
  gh__tls_store_unref(old);
}

gh__tls_store_t *gh__tls_listener_get_store(gh__tls_listener_t *tl)
{
  gh__tls_store_t *st;
  pthread_mutex_lock(&tl->lock);
  st = tl->store;
  atomic_fetch_add_explicit(&st->refs, 1, memory_order_relaxed);
  pthread_mutex_unlock(&tl->lock);
  return st;
}

unsigned gh__tls_listener_handshake_timeout(const gh__tls_listener_t *tl)
{
  return tl->handshake_timeout_ms;
}

void gh__tls_listener_free(gh__tls_listener_t *tl)
{
  if (tl == NULL)
    return;
  for (size_t i = 0; i < tl->n; i++) {
    if (tl->certs != NULL)
      free(tl->certs[i]);
    if (tl->keys != NULL)
      free(tl->keys[i]);
  }
  free(tl->certs);
  free(tl->keys);
  free(tl->ciphers);
  free(tl->suites);
  gh__tls_store_unref(tl->store);
  pthread_mutex_destroy(&tl->lock);
  free(tl);
}

static int dup_opt(char **dst, const char *src)
{
  *dst = NULL;
  if (src == NULL)
    return 0;
  *dst = gh__strdup(src);
  return *dst ? 0 : -ENOMEM;
}

int gh__tls_listener_new(const gh_tls_config_t *cfg, char *errbuf, size_t errlen,
                         gh__tls_listener_t **ret_listener)
{
  int ret = 0;
  gh__tls_listener_t *tl = NULL;
  gh__tls_store_t *st = NULL;

  pthread_once(&sock_once, sock_method_init);
  if (sock_method == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  if (cfg == NULL || cfg->n_certs == 0 || cfg->cert_files == NULL || cfg->n_certs > 256) {
    if (errbuf != NULL && errlen > 0)
      snprintf(errbuf, errlen, "no certificate given");
    ret = -EINVAL;
    goto out;
  }
  tl = gh__calloc(1, sizeof(*tl));
  if (tl == NULL)
    goto nomem;
  pthread_mutex_init(&tl->lock, NULL);
  tl->certs = gh__calloc(cfg->n_certs, sizeof(char *));
  tl->keys = gh__calloc(cfg->n_certs, sizeof(char *));
  if (tl->certs == NULL || tl->keys == NULL)
    goto nomem;
  tl->n = cfg->n_certs;
  for (size_t i = 0; i < cfg->n_certs; i++) {
    if (cfg->cert_files[i] == NULL) {
      ret = -EINVAL;
      goto out;
    }
    if (dup_opt(&tl->certs[i], cfg->cert_files[i]) != 0 ||
        dup_opt(&tl->keys[i], cfg->key_files ? cfg->key_files[i] : NULL) != 0)
      goto nomem;
  }
  if (dup_opt(&tl->ciphers, cfg->ciphers) != 0 || dup_opt(&tl->suites, cfg->ciphersuites) != 0)
    goto nomem;
  tl->handshake_timeout_ms = cfg->handshake_timeout_ms;
  ret = gh__tls_listener_load(tl, errbuf, errlen, &st);
  if (ret != 0)
    goto out;
  tl->store = st;
  goto out;
nomem:
  ret = -ENOMEM;
out:
  if (ret == 0) {
    *ret_listener = tl;
  } else {
    gh__tls_listener_free(tl);
  }
  return ret;
}

/* ---- connections --------------------------------------------------------- */

SSL *gh__tls_ssl_new(gh__tls_store_t *st, int fd)
{
  SSL *ssl = SSL_new(st->entries[0].ctx);
  BIO *bio = NULL;
  if (ssl == NULL)
    goto fail;
  bio = BIO_new(sock_method);
  if (bio == NULL)
    goto fail;
  BIO_set_data(bio, (void *)(intptr_t)fd);
  SSL_set_bio(ssl, bio, bio); /* one reference, owned by ssl */
  SSL_set_accept_state(ssl);
  return ssl;
fail:
  ERR_clear_error();
  SSL_free(ssl);
  return NULL;
}

static int want_of(SSL *ssl, int r)
{
  int e = SSL_get_error(ssl, r);
  if (e == SSL_ERROR_WANT_READ)
    return GH__TLS_WANT_READ;
  if (e == SSL_ERROR_WANT_WRITE)
    return GH__TLS_WANT_WRITE;
  return e == SSL_ERROR_ZERO_RETURN ? 0 : -1;
}

int gh__tls_handshake(SSL *ssl, char *why, size_t whylen)
{
  int r, w;
  ERR_clear_error();
  r = SSL_do_handshake(ssl);
  if (r == 1)
    return 1;
  w = want_of(ssl, r);
  if (w == GH__TLS_WANT_READ || w == GH__TLS_WANT_WRITE)
    return w;
  unsigned long e = ERR_peek_last_error();
  if (e != 0) {
    const char *reason = ERR_reason_error_string(e);
    snprintf(why, whylen, "%s", reason ? reason : "error");
  } else {
    snprintf(why, whylen, "connection closed by the client");
  }
  ERR_clear_error();
  return -1;
}

ssize_t gh__tls_read(SSL *ssl, void *buf, size_t len)
{
  size_t n = 0;
  int r, w;
  ERR_clear_error();
  r = SSL_read_ex(ssl, buf, len, &n);
  if (r == 1)
    return (ssize_t)n;
  w = want_of(ssl, r);
  ERR_clear_error();
  if (w == GH__TLS_WANT_READ || w == GH__TLS_WANT_WRITE)
    return w;
  if (w == 0)
    return 0;
  /* a TCP FIN without close_notify is SSL_ERROR_SSL in OpenSSL 3: the
   * client is gone either way */
  return -EIO;
}

ssize_t gh__tls_write(SSL *ssl, const void *buf, size_t len)
{
  size_t n = 0;
  int r, w;
  ERR_clear_error();
  r = SSL_write_ex(ssl, buf, len, &n);
  if (r == 1)
    return (ssize_t)n;
  w = want_of(ssl, r);
  ERR_clear_error();
  if (w == GH__TLS_WANT_READ || w == GH__TLS_WANT_WRITE)
    return w;
  return -EPIPE;
}

void gh__tls_shutdown(SSL *ssl)
{
  if (ssl != NULL && SSL_is_init_finished(ssl)) {
    ERR_clear_error();
    (void)SSL_shutdown(ssl);
    ERR_clear_error();
  }
}

int gh__tls_cert_channel_binding(X509 *x, unsigned char *buf, size_t *ret_len)
{
  int md_nid = NID_undef;
  const EVP_MD *md = NULL;
  unsigned int hlen = 0;
  const size_t plen = sizeof(CBT_PREFIX) - 1;
  if (x == NULL)
    return GH_ENOT_FOUND;
  if (!X509_get_signature_info(x, &md_nid, NULL, NULL, NULL))
    md_nid = NID_undef;
  if (md_nid != NID_undef && md_nid != NID_md5 && md_nid != NID_sha1 &&
      md_nid != NID_md5_sha1)
    md = EVP_get_digestbynid(md_nid);
  if (md == NULL || EVP_MD_get_size(md) > 64)
    md = EVP_sha256();
  memcpy(buf, CBT_PREFIX, plen);
  if (X509_digest(x, md, buf + plen, &hlen) != 1) {
    ERR_clear_error();
    return GH_ENOT_FOUND;
  }
  *ret_len = plen + hlen;
  return 0;
}

int gh__tls_channel_binding(SSL *ssl, unsigned char *buf, size_t *ret_len)
{
  if (ssl == NULL || !SSL_is_init_finished(ssl))
    return GH_ENOT_FOUND;
  return gh__tls_cert_channel_binding(SSL_get_certificate(ssl), buf, ret_len);
}
