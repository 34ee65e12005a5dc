/* auth_session.c: session cookies — the key file, AES-256-GCM sealing and opening of a cookie
 * value, the Cookie header parser. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <gatehouse/error.h>

#include "httpapi/auth/auth.h"
#include "httpapi/auth/auth_session.h"
#include "util/alloc.h"

/* ---- causes ---- */

const char *gh__session_cause_text(gh__session_cause_t cause)
{
  switch (cause) {
  case GH__SESSION_OK:
    return "accepted";
  case GH__SESSION_OVERSIZE:
    return "oversize: longer than 1024 characters";
  case GH__SESSION_BAD_BASE64:
    return "malformed: not base64url";
  case GH__SESSION_TRUNCATED:
    return "truncated: shorter than a sealed session";
  case GH__SESSION_BAD_VERSION:
    return "unknown format version";
  case GH__SESSION_UNKNOWN_KEY:
    return "sealed with a key not in session_key_file (rotated out, or another farm's)";
  case GH__SESSION_TAMPERED:
    return "tampered: the authentication tag does not verify (altered, or another site's cookie)";
  case GH__SESSION_MALFORMED:
    return "malformed content";
  case GH__SESSION_EXPIRED:
    return "expired (session_max_age or the Kerberos ticket's end)";
  case GH__SESSION_IDLE:
    return "idle: unused for longer than session_idle";
  case GH__SESSION_FUTURE:
    return "issued in the future: the nodes' clocks differ by more than 300 s";
  case GH__SESSION_ACCOUNT:
    return "the account no longer exists or is refused (uid 0, the service, below min_uid)";
  case GH__SESSION_ERROR:
    return "the account could not be looked up now (NSS or memory): answered 503";
  case GH__SESSION_CAUSE_COUNT:
    break;
  }
  return "unknown";
}

/* ---- keys ---- */

struct gh__session_keys {
  pthread_mutex_t mu;
  char *path; /* NULL: made from bytes */
  unsigned n; /* 1 or 2 */
  uint8_t key[2][GH__SESSION_KEY_LEN];
  uint8_t kid[2][GH__SESSION_KID_LEN];
};

static int key_id(const uint8_t *key, uint8_t kid[GH__SESSION_KID_LEN])
{
  static const char label[] = "gh-session-kid";
  uint8_t in[sizeof(label) - 1 + GH__SESSION_KEY_LEN], md[32];
  unsigned mdlen = 0;
  int ok;

  memcpy(in, label, sizeof(label) - 1);
  memcpy(in + sizeof(label) - 1, key, GH__SESSION_KEY_LEN);
  ok = EVP_Digest(in, sizeof(in), md, &mdlen, EVP_sha256(), NULL);
  explicit_bzero(in, sizeof(in));
  if (!ok)
    return GH_EAUTH_INTERNAL;
  memcpy(kid, md, GH__SESSION_KID_LEN);
  return 0;
}

/* "64 hex\n[64 hex\n]" into keys[0..1]; *ret_n keys. 0 or a message. */
static int parse_key_text(const char *buf, size_t len, const char *path,
                          uint8_t keys[2][GH__SESSION_KEY_LEN], unsigned *ret_n, char *msg,
                          size_t msglen)
{
  const char *hint = "a 32-byte key as 64 hex digits per line, current first, previous "
                     "second (openssl rand -hex 32)";
  char hex[2 * GH__SESSION_KEY_LEN + 1];
  unsigned n = 0;
  size_t i = 0, got = 0;

  while (i < len) {
    size_t start = i, ll;
    while (i < len && buf[i] != '\n')
      i++;
    ll = i - start;
    if (ll > 0 && buf[start + ll - 1] == '\r')
      ll--;
    if (i < len)
      i++; /* the newline */
    if (n == 2) {
      snprintf(msg, msglen, "session_key_file %s: more than two lines (%s)", path, hint);
      return GH_ECONFIG;
    }
    if (ll == 2 * GH__SESSION_KEY_LEN) {
      memcpy(hex, buf + start, ll);
      hex[ll] = '\0';
    }
    if (ll != 2 * GH__SESSION_KEY_LEN ||
        OPENSSL_hexstr2buf_ex(keys[n], GH__SESSION_KEY_LEN, &got, hex, '\0') != 1 ||
        got != GH__SESSION_KEY_LEN) {
      explicit_bzero(hex, sizeof(hex));
      ERR_clear_error(); /* no stale error for this thread's next OpenSSL call */
      snprintf(msg, msglen, "session_key_file %s: line %u is not 64 hex digits (%s)", path, n + 1,
               hint);
      return GH_ECONFIG;
    }
    explicit_bzero(hex, sizeof(hex));
    n++;
  }
  if (n == 0) {
    snprintf(msg, msglen, "session_key_file %s: empty (%s)", path, hint);
    return GH_ECONFIG;
  }
  *ret_n = n;
  return 0;
}

/* The file's mode and owner: the keys seal every session of the site. */
static int check_key_stat(const struct stat *st, const char *path, char *msg, size_t msglen)
{
  if (!S_ISREG(st->st_mode)) {
    snprintf(msg, msglen, "session_key_file %s: not a regular file", path);
    return GH_ECONFIG;
  }
  if (st->st_uid != geteuid() && st->st_uid != 0) {
    snprintf(msg, msglen,
             "session_key_file %s: owned by uid %u; it must belong to root or to the "
             "service (uid %u)",
             path, (unsigned)st->st_uid, (unsigned)geteuid());
    return GH_ECONFIG;
  }
  if (st->st_mode & 0027) {
    snprintf(msg, msglen,
             "session_key_file %s: mode %04o gives others access or the group write access; "
             "chmod 0600 (or 0640 root:<service group>)",
             path, (unsigned)(st->st_mode & 07777));
    return GH_ECONFIG;
  }
  if (st->st_size > 512) {
    snprintf(msg, msglen, "session_key_file %s: %lld bytes; two keys take 130", path,
             (long long)st->st_size);
    return GH_ECONFIG;
  }
  return 0;
}

/* Reads and checks the file into keys[]; everything wiped on the way. */
static int read_key_file(const char *path, uint8_t keys[2][GH__SESSION_KEY_LEN], unsigned *ret_n,
                         char *msg, size_t msglen)
{
  char buf[513];
  struct stat st;
  ssize_t got = 0, r;
  int fd = -1, ret;

  if (!path || path[0] != '/') {
    snprintf(msg, msglen, "session_key_file '%s': not an absolute path", path ? path : "");
    ret = GH_ECONFIG;
    goto out;
  }
  fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW);
  if (fd < 0) {
    snprintf(msg, msglen, "session_key_file %s: %s", path, strerror(errno));
    ret = GH_ECONFIG;
    goto out;
  }
  ret = fstat(fd, &st) != 0 ? GH_ECONFIG : check_key_stat(&st, path, msg, msglen);
  if (ret)
    goto out;
  while (got < (ssize_t)sizeof(buf) && (r = read(fd, buf + got, sizeof(buf) - (size_t)got)) != 0) {
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      snprintf(msg, msglen, "session_key_file %s: %s", path, strerror(errno));
      ret = GH_ECONFIG;
      goto out;
    }
    got += r;
  }
  if (got == (ssize_t)sizeof(buf)) {
    snprintf(msg, msglen, "session_key_file %s: longer than 512 bytes", path);
    ret = GH_ECONFIG;
    goto out;
  }
  ret = parse_key_text(buf, (size_t)got, path, keys, ret_n, msg, msglen);
out:
  explicit_bzero(buf, sizeof(buf));
  if (fd >= 0)
    close(fd);
  return ret;
}

/* Installs n keys (ids computed) under the lock. */
static int keys_install(gh__session_keys_t *k, uint8_t keys[2][GH__SESSION_KEY_LEN], unsigned n)
{
  uint8_t kid[2][GH__SESSION_KID_LEN];
  int ret = 0;

  for (unsigned i = 0; i < n && ret == 0; i++)
    ret = key_id(keys[i], kid[i]);
  if (ret)
    return ret;
  pthread_mutex_lock(&k->mu);
  explicit_bzero(k->key, sizeof(k->key));
  memcpy(k->key, keys, n * GH__SESSION_KEY_LEN);
  memcpy(k->kid, kid, n * GH__SESSION_KID_LEN);
  k->n = n;
  pthread_mutex_unlock(&k->mu);
  return 0;
}

static gh__session_keys_t *keys_new(void)
{
  gh__session_keys_t *k = gh__calloc(1, sizeof(*k));

  if (k)
    pthread_mutex_init(&k->mu, NULL);
  return k;
}

int gh__session_keys_load(const char *path, gh__session_keys_t **ret_keys, char *msg, size_t msglen)
{
  uint8_t keys[2][GH__SESSION_KEY_LEN];
  gh__session_keys_t *k = NULL;
  unsigned n = 0;
  int ret;

  ret = read_key_file(path, keys, &n, msg, msglen);
  if (ret)
    goto out;
  k = keys_new();
  if (!k || !(k->path = gh__strdup(path))) {
    ret = -ENOMEM;
    goto out;
  }
  ret = keys_install(k, keys, n);
  if (ret)
    goto out;
  *ret_keys = k;
  k = NULL;
out:
  explicit_bzero(keys, sizeof(keys));
  gh__session_keys_free(k);
  return ret;
}

int gh__session_keys_from(const uint8_t cur[GH__SESSION_KEY_LEN], const uint8_t *prev,
                          gh__session_keys_t **ret_keys)
{
  uint8_t keys[2][GH__SESSION_KEY_LEN];
  gh__session_keys_t *k = keys_new();
  int ret;

  if (!k)
    return -ENOMEM;
  memcpy(keys[0], cur, GH__SESSION_KEY_LEN);
  if (prev)
    memcpy(keys[1], prev, GH__SESSION_KEY_LEN);
  ret = keys_install(k, keys, prev ? 2 : 1);
  explicit_bzero(keys, sizeof(keys));
  if (ret)
    gh__session_keys_free(k);
  else
    *ret_keys = k;
  return ret;
}

int gh__session_keys_reload(gh__session_keys_t *k, char *msg, size_t msglen)
{
  uint8_t keys[2][GH__SESSION_KEY_LEN];
  unsigned n = 0;
  int ret;

  if (!k->path)
    return 0;
  ret = read_key_file(k->path, keys, &n, msg, msglen);
  if (ret == 0)
    ret = keys_install(k, keys, n);
  explicit_bzero(keys, sizeof(keys));
  return ret;
}

const char *gh__session_keys_path(const gh__session_keys_t *k)
{
  return k->path;
}

void gh__session_keys_free(gh__session_keys_t *k)
{
  if (!k)
    return;
  explicit_bzero(k->key, sizeof(k->key));
  pthread_mutex_destroy(&k->mu);
  free(k->path);
  free(k);
}

/* A copy of the key with this id (or the current one when kid is NULL). */
static bool key_get(gh__session_keys_t *k, const uint8_t *kid, uint8_t key[GH__SESSION_KEY_LEN],
                    uint8_t ret_kid[GH__SESSION_KID_LEN])
{
  bool found = false;

  pthread_mutex_lock(&k->mu);
  for (unsigned i = 0; i < k->n && !found; i++) {
    if (kid && memcmp(kid, k->kid[i], GH__SESSION_KID_LEN) != 0)
      continue;
    memcpy(key, k->key[i], GH__SESSION_KEY_LEN);
    if (ret_kid)
      memcpy(ret_kid, k->kid[i], GH__SESSION_KID_LEN);
    found = true;
  }
  pthread_mutex_unlock(&k->mu);
  return found;
}

/* ---- base64url without padding (RFC 4648 §5), through the strict base64 of auth_parse.c ---- */

/* out holds gh__b64_encoded_len(len) + 1 bytes. */
static size_t b64u_encode(const uint8_t *in, size_t len, char *out)
{
  size_t n;

  gh__b64_encode(in, len, out);
  n = strlen(out);
  while (n > 0 && out[n - 1] == '=')
    out[--n] = '\0';
  for (size_t i = 0; i < n; i++)
    out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
  return n;
}

/* Strict: the url alphabet only ('+', '/', '=' refused), canonical (the
 * decoder's own checks). len <= GH__SESSION_VALUE_MAX; out holds
 * gh__b64_decoded_max(len) bytes. Returns the decoded length or -1. */
static ssize_t b64u_decode(const char *in, size_t len, uint8_t *out)
{
  char std[GH__SESSION_VALUE_MAX];
  size_t n = 0;

  for (size_t i = 0; i < len; i++) {
    if (in[i] == '+' || in[i] == '/' || in[i] == '=')
      return -1;
    std[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
  }
  return gh__b64_decode(std, len, out, &n) == 0 ? (ssize_t)n : -1;
}

/* ---- sealing ---- */

static void put64(uint8_t *p, int64_t v)
{
  for (int i = 7; i >= 0; i--) {
    p[i] = (uint8_t)(v & 0xff);
    v = (int64_t)((uint64_t)v >> 8);
  }
}

static int64_t get64(const uint8_t *p)
{
  uint64_t v = 0;

  for (int i = 0; i < 8; i++)
    v = v << 8 | p[i];
  return (int64_t)v;
}

#define GH__SESSION_FIXED_PT 26u /* type, package, three times */
#define GH__SESSION_PT_MAX (GH__SESSION_FIXED_PT + 2u + 2u * GH__SESSION_NAME_MAX)
#define GH__SESSION_RAW_MAX (GH__SESSION_HEAD_LEN + GH__SESSION_PT_MAX + GH__SESSION_TAG_LEN)
#define GH__SESSION_AAD_MAX (GH__SESSION_HEAD_LEN + 16u + 2u * 256u)

static uint8_t package_id(const char *package)
{
  if (package && strcmp(package, "Kerberos") == 0)
    return 1;
  if (package && strcmp(package, "NTLM") == 0)
    return 2;
  if (package && strcmp(package, "Basic") == 0)
    return 3;
  return 0;
}

static const char *package_name(uint8_t id)
{
  static const char *const names[] = {NULL, "Kerberos", "NTLM", "Basic"};
  return id < 4 ? names[id] : NULL;
}

/* header | "gh-session-v1" NUL name NUL site; 0 or -1 (too long). */
static ssize_t make_aad(const uint8_t *head, const char *name, const char *site, uint8_t *aad)
{
  static const char label[] = "gh-session-v1";
  size_t nl = strlen(name), sl = strlen(site), o = 0;

  if (nl > 255 || sl > 255)
    return -1;
  memcpy(aad, head, GH__SESSION_HEAD_LEN);
  o = GH__SESSION_HEAD_LEN;
  memcpy(aad + o, label, sizeof(label)); /* with its NUL */
  o += sizeof(label);
  memcpy(aad + o, name, nl + 1);
  o += nl + 1;
  memcpy(aad + o, site, sl);
  return (ssize_t)(o + sl);
}

/* AES-256-GCM fetched once (an implicit fetch per init was half the cost
 * of opening a cookie), and one context per thread that keeps the last
 * key's schedule: a cookie costs a new nonce, not a key expansion. Both
 * live as long as the process, the context as long as its thread. */
static EVP_CIPHER *gcm_cipher;
static pthread_key_t gcm_tls_key;
static bool gcm_tls_ok;
static pthread_once_t gcm_once = PTHREAD_ONCE_INIT;

typedef struct gcm_tls {
  EVP_CIPHER_CTX *ctx;
  int enc; /* -1: no key set */
  uint8_t key[GH__SESSION_KEY_LEN];
} gcm_tls_t;

static void gcm_tls_free(void *p)
{
  gcm_tls_t *t = p;

  EVP_CIPHER_CTX_free(t->ctx);
  explicit_bzero(t, sizeof(*t));
  free(t);
}

static void gcm_fetch(void)
{
  gcm_cipher = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
  gcm_tls_ok = pthread_key_create(&gcm_tls_key, gcm_tls_free) == 0;
}

/* This thread's context, ready for key/nonce/direction; NULL on failure. */
static EVP_CIPHER_CTX *gcm_ctx(bool enc, const uint8_t *key, const uint8_t *nonce)
{
  gcm_tls_t *t;

  pthread_once(&gcm_once, gcm_fetch);
  if (!gcm_cipher || !gcm_tls_ok)
    return NULL;
  t = pthread_getspecific(gcm_tls_key);
  if (!t) {
    t = gh__calloc(1, sizeof(*t));
    if (!t || !(t->ctx = EVP_CIPHER_CTX_new()) || pthread_setspecific(gcm_tls_key, t) != 0) {
      if (t)
        EVP_CIPHER_CTX_free(t->ctx);
      free(t);
      return NULL;
    }
    t->enc = -1;
  }
  if (t->enc == (int)enc && memcmp(t->key, key, GH__SESSION_KEY_LEN) == 0) {
    if (EVP_CipherInit_ex2(t->ctx, NULL, NULL, nonce, enc, NULL) == 1)
      return t->ctx;
  } else if (EVP_CipherInit_ex2(t->ctx, gcm_cipher, key, nonce, enc, NULL) == 1) {
    t->enc = enc;
    memcpy(t->key, key, GH__SESSION_KEY_LEN);
    return t->ctx;
  }
  t->enc = -1;
  return NULL;
}

/* AES-256-GCM one shot (the 96-bit nonce is GCM's default IV length); enc:
 * encrypt (tag written) or decrypt (tag checked). Returns 0, 1 (decrypt:
 * the tag does not verify) or GH_EAUTH_INTERNAL. */
static int gcm(bool enc, const uint8_t *key, const uint8_t *nonce, const uint8_t *aad,
               size_t aadlen, const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag)
{
  EVP_CIPHER_CTX *c = gcm_ctx(enc, key, nonce);
  int n = 0, ret = GH_EAUTH_INTERNAL;

  if (!c || EVP_CipherUpdate(c, NULL, &n, aad, (int)aadlen) != 1 ||
      EVP_CipherUpdate(c, out, &n, in, (int)len) != 1)
    goto out;
  if (!enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, GH__SESSION_TAG_LEN, tag) != 1)
    goto out;
  if (EVP_CipherFinal_ex(c, out + n, &n) != 1) {
    ret = enc ? GH_EAUTH_INTERNAL : 1;
    goto out;
  }
  if (enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, GH__SESSION_TAG_LEN, tag) != 1)
    goto out;
  ret = 0;
out:
  if (ret)
    ERR_clear_error(); /* a refused cookie leaves nothing on the thread's error queue */
  return ret;
}

static size_t claims_encode(const gh__session_claims_t *c, uint8_t *pt)
{
  size_t ll = strlen(c->local), rl = strlen(c->remote), o = GH__SESSION_FIXED_PT;

  pt[0] = (uint8_t)c->type;
  pt[1] = package_id(c->package);
  put64(pt + 2, c->issued);
  put64(pt + 10, c->last_use);
  put64(pt + 18, c->expiry);
  pt[o++] = (uint8_t)ll;
  memcpy(pt + o, c->local, ll);
  o += ll;
  pt[o++] = (uint8_t)rl;
  memcpy(pt + o, c->remote, rl);
  return o + rl;
}

int gh__session_seal(gh__session_keys_t *k, const char *name, const char *site,
                     const gh__session_claims_t *c, char *buf, size_t buflen)
{
  uint8_t raw[GH__SESSION_RAW_MAX], aad[GH__SESSION_AAD_MAX], key[GH__SESSION_KEY_LEN];
  uint8_t pt[GH__SESSION_PT_MAX];
  size_t ptlen, rawlen;
  ssize_t aadlen;
  int ret;

  if (!k || !name || !site || !c || !buf) {
    ret = -EINVAL;
    goto out;
  }
  if (strnlen(c->local, sizeof(c->local)) > GH__SESSION_NAME_MAX ||
      strnlen(c->remote, sizeof(c->remote)) > GH__SESSION_NAME_MAX || !c->local[0] ||
      package_id(c->package) == 0) {
    ret = -EINVAL;
    goto out;
  }
  raw[0] = GH__SESSION_VERSION;
  if (!key_get(k, NULL, key, raw + 1) ||
      RAND_bytes(raw + 1 + GH__SESSION_KID_LEN, GH__SESSION_NONCE_LEN) != 1) {
    ret = GH_EAUTH_INTERNAL;
    goto out;
  }
  aadlen = make_aad(raw, name, site, aad);
  if (aadlen < 0) {
    ret = GH_ELIMIT;
    goto out;
  }
  ptlen = claims_encode(c, pt);
  rawlen = GH__SESSION_HEAD_LEN + ptlen + GH__SESSION_TAG_LEN;
  if (buflen < (rawlen + 2) / 3 * 4 + 1) {
    ret = GH_ELIMIT;
    goto out;
  }
  ret = gcm(true, key, raw + 1 + GH__SESSION_KID_LEN, aad, (size_t)aadlen, pt, ptlen,
            raw + GH__SESSION_HEAD_LEN, raw + GH__SESSION_HEAD_LEN + ptlen);
  if (ret)
    goto out;
  ret = (int)b64u_encode(raw, rawlen, buf);
out:
  explicit_bzero(key, sizeof(key));
  return ret;
}

/* A name from the plaintext: 1..255 printable bytes, no ';' ',' or space
 * trouble for the record (NUL and controls refused). */
static bool take_name(const uint8_t *pt, size_t ptlen, size_t *off, char *out)
{
  size_t l;

  if (*off >= ptlen)
    return false;
  l = pt[(*off)++];
  if (l == 0 || l > ptlen - *off)
    return false;
  for (size_t i = 0; i < l; i++)
    if (pt[*off + i] < 0x20 || pt[*off + i] == 0x7f)
      return false;
  memcpy(out, pt + *off, l);
  out[l] = '\0';
  *off += l;
  return true;
}

static gh__session_cause_t claims_decode(const uint8_t *pt, size_t ptlen, gh__session_claims_t *c)
{
  size_t off = GH__SESSION_FIXED_PT;

  c->type = (gh_auth_type_t)pt[0];
  c->package = package_name(pt[1]);
  c->issued = get64(pt + 2);
  c->last_use = get64(pt + 10);
  c->expiry = get64(pt + 18);
  if (c->package == NULL ||
      (c->type != GH_AUTH_TYPE_BASIC && c->type != GH_AUTH_TYPE_NTLM &&
       c->type != GH_AUTH_TYPE_NEGOTIATE && c->type != GH_AUTH_TYPE_KERBEROS) ||
      !take_name(pt, ptlen, &off, c->local) || !take_name(pt, ptlen, &off, c->remote) ||
      off != ptlen || c->issued <= 0 || c->last_use < c->issued || c->expiry <= c->issued)
    return GH__SESSION_MALFORMED;
  return GH__SESSION_OK;
}

/* The times of verified claims against now and the site's limits. */
gh__session_cause_t gh__session_check_time(const gh__session_claims_t *c, time_t now,
                                           unsigned max_age_s, unsigned idle_s)
{
  if (c->issued > (int64_t)now + GH__SESSION_CLOCK_SKEW ||
      c->last_use > (int64_t)now + GH__SESSION_CLOCK_SKEW)
    return GH__SESSION_FUTURE;
  if ((int64_t)now >= c->expiry || (int64_t)now - c->issued >= (int64_t)max_age_s)
    return GH__SESSION_EXPIRED;
  if ((int64_t)now - c->last_use >= (int64_t)idle_s)
    return GH__SESSION_IDLE;
  return GH__SESSION_OK;
}

gh__session_cause_t gh__session_open(gh__session_keys_t *k, const char *name, const char *site,
                                     const char *val, size_t len, time_t now, unsigned max_age_s,
                                     unsigned idle_s, gh__session_claims_t *ret)
{
  uint8_t raw[(GH__SESSION_VALUE_MAX / 4 + 1) * 3], aad[GH__SESSION_AAD_MAX]; /* decoded_max */
  uint8_t key[GH__SESSION_KEY_LEN], pt[sizeof(raw)];
  gh__session_claims_t c;
  gh__session_cause_t cause;
  ssize_t rawlen, aadlen;
  size_t ptlen;
  int g;

  if (len > GH__SESSION_VALUE_MAX) {
    cause = GH__SESSION_OVERSIZE;
    goto out;
  }
  rawlen = b64u_decode(val, len, raw);
  if (rawlen < 0) {
    cause = GH__SESSION_BAD_BASE64;
    goto out;
  }
  if ((size_t)rawlen < GH__SESSION_HEAD_LEN + GH__SESSION_FIXED_PT + 4 + GH__SESSION_TAG_LEN) {
    cause = GH__SESSION_TRUNCATED;
    goto out;
  }
  if (raw[0] != GH__SESSION_VERSION) {
    cause = GH__SESSION_BAD_VERSION;
    goto out;
  }
  if (!key_get(k, raw + 1, key, NULL)) {
    cause = GH__SESSION_UNKNOWN_KEY;
    goto out;
  }
  aadlen = make_aad(raw, name, site, aad);
  ptlen = (size_t)rawlen - GH__SESSION_HEAD_LEN - GH__SESSION_TAG_LEN;
  g = aadlen < 0 ? 1
                 : gcm(false, key, raw + 1 + GH__SESSION_KID_LEN, aad, (size_t)aadlen,
                       raw + GH__SESSION_HEAD_LEN, ptlen, pt, raw + GH__SESSION_HEAD_LEN + ptlen);
  if (g != 0) {
    cause = GH__SESSION_TAMPERED; /* an OpenSSL failure is no cookie either */
    goto out;
  }
  cause = claims_decode(pt, ptlen, &c);
  if (cause == GH__SESSION_OK)
    cause = gh__session_check_time(&c, now, max_age_s, idle_s);
  if (cause == GH__SESSION_OK)
    *ret = c;
out:
  /* the key is wiped; the plaintext holds names and times, no secret */
  explicit_bzero(key, sizeof(key));
  return cause;
}

/* ---- the Cookie header ---- */

static bool ows(char c)
{
  return c == ' ' || c == '\t';
}

size_t gh__session_cookie_find(const char *hdr, size_t len, const char *name, const char **vals,
                               size_t *lens, size_t max)
{
  size_t nl = strlen(name), found = 0, i = 0;

  while (i < len && found < max) {
    size_t ps, pe, eq, vs, ve;
    while (i < len && (ows(hdr[i]) || hdr[i] == ';'))
      i++;
    ps = i;
    while (i < len && hdr[i] != ';')
      i++;
    pe = i;
    for (eq = ps; eq < pe && hdr[eq] != '='; eq++)
      ;
    if (eq == pe || eq - ps != nl || memcmp(hdr + ps, name, nl) != 0)
      continue;
    vs = eq + 1;
    ve = pe;
    while (ve > vs && ows(hdr[ve - 1]))
      ve--;
    if (ve - vs >= 2 && hdr[vs] == '"' && hdr[ve - 1] == '"') {
      vs++;
      ve--;
    }
    vals[found] = hdr + vs;
    lens[found] = ve - vs;
    found++;
  }
  return found;
}
