/* proxy_jwt.c: the proxy's signed identity assertion: key file checks at load, short-lived JWTs
 * (reused per thread for identical claims). */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "proxy_errf.h"
#include "proxy_jwt.h"

struct proxy_jwt {
  jwt_alg_t alg;
  unsigned char *key; /* the secret, or the PEM text; wiped on free */
  size_t key_len;
  char *issuer;
  uint64_t ttl_s;
};

void proxy_jwt_free(proxy_jwt_t *j)
{
  if (j == NULL)
    return;
  if (j->key != NULL)
    explicit_bzero(j->key, j->key_len);
  free(j->key);
  free(j->issuer);
  free(j);
}

/* The whole key file, checked for type, mode and size; NUL-terminated. */
static int read_key(const char *path, unsigned char **ret_buf, size_t *ret_len, char *err,
                    size_t errlen)
{
  unsigned char *buf = NULL;
  struct stat st;
  size_t got = 0;
  ssize_t n;
  int fd = -1, ret;

  fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0 || fstat(fd, &st) != 0) {
    ret = -errno;
    proxy_errf(err, errlen, "identity_jwt_key %s: %s", path, strerror(errno));
    goto out;
  }
  ret = -EINVAL;
  if (!S_ISREG(st.st_mode)) {
    proxy_errf(err, errlen, "identity_jwt_key %s: not a regular file", path);
    goto out;
  }
  if (st.st_mode & (S_IRWXO | S_IWGRP)) {
    proxy_errf(
        err, errlen,
        "identity_jwt_key %s: mode %04o lets others read or change the key (chmod 0600 or 0640)",
        path, (unsigned)(st.st_mode & 07777));
    goto out;
  }
  if (st.st_size <= 0 || st.st_size > PROXY_JWT_MAX_KEY) {
    proxy_errf(err, errlen, "identity_jwt_key %s: size %lld (1 to %d bytes)", path,
               (long long)st.st_size, PROXY_JWT_MAX_KEY);
    goto out;
  }
  buf = malloc((size_t)st.st_size + 1);
  if (buf == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  while (got < (size_t)st.st_size) {
    n = read(fd, buf + got, (size_t)st.st_size - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      ret = n < 0 ? -errno : -EIO;
      proxy_errf(err, errlen, "identity_jwt_key %s: read failed", path);
      goto out;
    }
    got += (size_t)n;
  }
  buf[got] = '\0';
  *ret_buf = buf;
  *ret_len = got;
  buf = NULL;
  ret = 0;
out:
  if (buf != NULL) {
    explicit_bzero(buf, (size_t)st.st_size + 1);
    free(buf);
  }
  if (fd >= 0)
    close(fd);
  return ret;
}

/* Whether pem is an EC private key on P-256 (what ES256 signs with). */
static bool is_p256_key(const unsigned char *pem, size_t len)
{
  BIO *bio = BIO_new_mem_buf(pem, (int)len);
  EVP_PKEY *pk = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
  char curve[64];
  size_t clen = 0;
  bool ok = pk != NULL && EVP_PKEY_is_a(pk, "EC") &&
            EVP_PKEY_get_utf8_string_param(pk, "group", curve, sizeof(curve), &clen) == 1 &&
            strcmp(curve, "prime256v1") == 0;
  EVP_PKEY_free(pk);
  BIO_free(bio);
  return ok;
}

/* The key's algorithm from its content; the secret's final newline dropped. */
static int classify_key(proxy_jwt_t *j, const char *path, char *err, size_t errlen)
{
  if (j->key_len >= 10 && memcmp(j->key, "-----BEGIN", 10) == 0) {
    if (!is_p256_key(j->key, j->key_len)) {
      proxy_errf(err, errlen,
                 "identity_jwt_key %s: a PEM file but not an unencrypted EC P-256 private key "
                 "(ES256; make one with: openssl ecparam -name prime256v1 -genkey -noout)",
                 path);
      return -EINVAL;
    }
    j->alg = JWT_ALG_ES256;
    return 0;
  }
  if (j->key_len > 0 && j->key[j->key_len - 1] == '\n')
    j->key[--j->key_len] = '\0';
  if (j->key_len > 0 && j->key[j->key_len - 1] == '\r')
    j->key[--j->key_len] = '\0';
  if (j->key_len < PROXY_JWT_MIN_SECRET) {
    proxy_errf(err, errlen, "identity_jwt_key %s: an HS256 secret of %zu bytes (at least %d)", path,
               j->key_len, PROXY_JWT_MIN_SECRET);
    return -EINVAL;
  }
  j->alg = JWT_ALG_HS256;
  return 0;
}

int proxy_jwt_new(const proxy_jwt_config_t *cfg, proxy_jwt_t **ret_jwt, char *err, size_t errlen)
{
  proxy_jwt_t *j = NULL;
  int ret;

  if (cfg == NULL || cfg->key_file == NULL || cfg->key_file[0] == '\0' || ret_jwt == NULL) {
    proxy_errf(err, errlen, "identity_jwt_key: no file");
    ret = -EINVAL;
    goto out;
  }
  j = calloc(1, sizeof(*j));
  if (j == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  j->ttl_s = cfg->ttl_s != 0 ? cfg->ttl_s : PROXY_JWT_DEFAULT_TTL;
  j->issuer = strdup(cfg->issuer != NULL && cfg->issuer[0] != '\0' ? cfg->issuer
                                                                   : PROXY_JWT_DEFAULT_ISSUER);
  if (j->issuer == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  ret = read_key(cfg->key_file, &j->key, &j->key_len, err, errlen);
  if (ret == 0)
    ret = classify_key(j, cfg->key_file, err, errlen);
  if (ret != 0)
    goto out;
  if (cfg->alg != NULL && cfg->alg[0] != '\0' && strcasecmp(cfg->alg, jwt_alg_str(j->alg)) != 0) {
    proxy_errf(err, errlen, "identity_jwt_alg = %s but %s is an %s key", cfg->alg, cfg->key_file,
               jwt_alg_str(j->alg));
    ret = -EINVAL;
    goto out;
  }
  *ret_jwt = j;
  j = NULL;
out:
  proxy_jwt_free(j);
  return ret;
}

const char *proxy_jwt_alg(const proxy_jwt_t *j)
{
  return jwt_alg_str(j->alg);
}

/* s as a JSON string (quotes included) appended to out; false on overflow. */
static bool json_str(char *out, size_t cap, size_t *pos, const char *s)
{
  size_t p = *pos;
  if (p + 1 >= cap)
    return false;
  out[p++] = '"';
  for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++) {
    if (p + 7 >= cap)
      return false;
    if (*c == '"' || *c == '\\') {
      out[p++] = '\\';
      out[p++] = (char)*c;
    } else if (*c < 0x20 || *c == 0x7f) {
      p += (size_t)snprintf(out + p, cap - p, "\\u%04x", *c);
    } else {
      out[p++] = (char)*c;
    }
  }
  if (p + 2 >= cap)
    return false;
  out[p++] = '"';
  out[p] = '\0';
  *pos = p;
  return true;
}

/* `"NAME":[...]` of n strings at out + *pos (escaped); false when cap is short. */
static bool json_array(char *out, size_t cap, size_t *pos, const char *name,
                       const char *const *v, size_t n)
{
  size_t p = *pos, l = strlen(name);
  if (p + l + 5 > cap)
    return false;
  out[p++] = '"';
  memcpy(out + p, name, l);
  p += l;
  memcpy(out + p, "\":[", 3);
  p += 3;
  for (size_t i = 0; i < n; i++) {
    if (i > 0) {
      if (p + 1 >= cap)
        return false;
      out[p++] = ',';
    }
    if (!json_str(out, cap, &p, v[i]))
      return false;
  }
  if (p + 2 > cap)
    return false;
  out[p++] = ']';
  out[p] = '\0';
  *pos = p;
  return true;
}

/* {"groups":[...]} (and "group_names") in a malloc'd buffer (names are
 * escaped here). */
static char *groups_json(const proxy_jwt_claims_t *c)
{
  size_t cap = 48, pos = 1;
  char *out;
  for (size_t i = 0; i < c->n_groups; i++)
    cap += 6 * strlen(c->groups[i]) + 4;
  for (size_t i = 0; c->with_group_names && i < c->n_group_names; i++)
    cap += 6 * strlen(c->group_names[i]) + 4;
  out = malloc(cap);
  if (out == NULL)
    return NULL;
  out[0] = '{';
  if (!json_array(out, cap, &pos, "groups", c->groups, c->n_groups) ||
      (c->with_group_names && (out[pos++] = ',', !json_array(out, cap, &pos, "group_names",
                                                             c->group_names, c->n_group_names))) ||
      pos + 2 > cap) {
    free(out);
    return NULL;
  }
  memcpy(out + pos, "}", 2);
  return out;
}

static int random_id(char *hex, size_t len)
{
  unsigned char raw[16];
  if (len < 2 * sizeof(raw) + 1 || getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
    return -EIO;
  for (size_t i = 0; i < sizeof(raw); i++)
    snprintf(hex + 2 * i, 3, "%02x", raw[i]);
  return 0;
}

static int add_claims(jwt_t *t, const proxy_jwt_t *j, const proxy_jwt_claims_t *c)
{
  time_t now = c->now != 0 ? c->now : time(NULL);
  char jti[40], *groups = NULL;
  int ret = random_id(jti, sizeof(jti));
  if (ret == 0)
    ret = jwt_add_grant(t, "iss", c->issuer != NULL ? c->issuer : j->issuer);
  if (ret == 0)
    ret = jwt_add_grant(t, "aud", c->aud);
  if (ret == 0)
    ret = jwt_add_grant(t, "sub", c->sub);
  if (ret == 0 && c->principal != NULL)
    ret = jwt_add_grant(t, "principal", c->principal);
  if (ret == 0 && c->auth_type != NULL)
    ret = jwt_add_grant(t, "auth_type", c->auth_type);
  if (ret == 0)
    ret = jwt_add_grant_int(t, "iat", (long)now);
  if (ret == 0)
    ret = jwt_add_grant_int(t, "nbf", (long)now);
  if (ret == 0)
    ret = jwt_add_grant_int(t, "exp", (long)now + (long)(c->ttl_s != 0 ? c->ttl_s : j->ttl_s));
  if (ret == 0)
    ret = jwt_add_grant(t, "jti", jti);
  if (ret == 0) {
    groups = groups_json(c);
    ret = groups == NULL ? ENOMEM : jwt_add_grants_json(t, groups);
  }
  free(groups);
  return ret == 0 ? 0 : ret == ENOMEM ? -ENOMEM : -EIO;
}

/* One freshly signed token for claims c at time now. */
static int sign_new(const proxy_jwt_t *j, const proxy_jwt_claims_t *c, char **ret_token)
{
  jwt_t *t = NULL;
  char *s = NULL;
  int ret;

  if (jwt_new(&t) != 0) {
    ret = -ENOMEM;
    goto out;
  }
  ret = add_claims(t, j, c);
  if (ret != 0)
    goto out;
  if (jwt_set_alg(t, j->alg, j->key, (int)j->key_len) != 0) {
    ret = -EIO;
    goto out;
  }
  s = jwt_encode_str(t);
  if (s == NULL) {
    ret = -EIO;
    goto out;
  }
  *ret_token = s;
  ret = 0;
out:
  jwt_free(t); /* scrubs its copy of the key */
  return ret;
}

/*
 * Reuse. libjwt hands the key to OpenSSL as PEM text on every signature,
 * and OpenSSL 3 decodes it each time: an ES256 token costs ~0.4 ms here
 * (HS256 ~10 us). Each thread keeps its last PROXY_JWT_REUSE_SLOTS tokens
 * and hands one out again for identical claims (same key, sub, principal,
 * auth type, groups, aud, iss, ttl) while at least half of its lifetime is
 * left, at most PROXY_JWT_REUSE_MAX_S seconds after it was issued. A bearer
 * assertion is meant to be presented more than once within its lifetime;
 * the upstream still sees a valid exp, and a different user or upstream
 * never gets another's token (the whole claims text is compared).
 */
typedef struct reuse {
  const proxy_jwt_t *j;
  char *key;
  size_t klen;
  char *token;
  time_t until;
} reuse_t;

static pthread_once_t reuse_once = PTHREAD_ONCE_INIT;
static pthread_key_t reuse_key;
static bool reuse_ok;

static void reuse_free(void *arg)
{
  reuse_t *r = arg;
  for (size_t i = 0; r != NULL && i < PROXY_JWT_REUSE_SLOTS; i++) {
    free(r[i].key);
    free(r[i].token);
  }
  free(r);
}

static void reuse_init(void)
{
  reuse_ok = pthread_key_create(&reuse_key, reuse_free) == 0;
}

static reuse_t *reuse_slots(void)
{
  reuse_t *r;
  pthread_once(&reuse_once, reuse_init);
  if (!reuse_ok)
    return NULL;
  r = pthread_getspecific(reuse_key);
  if (r == NULL) {
    r = calloc(PROXY_JWT_REUSE_SLOTS, sizeof(*r));
    if (r != NULL && pthread_setspecific(reuse_key, r) != 0) {
      free(r);
      r = NULL;
    }
  }
  return r;
}

/* Every claim a token depends on but iat/jti, length-prefixed (unambiguous). */
static char *claims_text(const proxy_jwt_claims_t *c, uint64_t ttl, size_t *ret_len)
{
  const char *f[] = {c->sub, c->principal, c->auth_type, c->aud, c->issuer};
  size_t cap = 64, len = 0;
  char *buf;
  for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
    cap += (f[i] != NULL ? strlen(f[i]) : 0) + 24;
  for (size_t i = 0; i < c->n_groups; i++)
    cap += strlen(c->groups[i]) + 24;
  for (size_t i = 0; c->with_group_names && i < c->n_group_names; i++)
    cap += strlen(c->group_names[i]) + 24;
  buf = malloc(cap);
  if (buf == NULL)
    return NULL;
  len += (size_t)snprintf(buf, cap, "%llu;", (unsigned long long)ttl);
  for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
    len += (size_t)snprintf(buf + len, cap - len, f[i] != NULL ? "%zu:%s;" : "-;",
                            f[i] != NULL ? strlen(f[i]) : 0, f[i] != NULL ? f[i] : "");
  for (size_t i = 0; i < c->n_groups; i++)
    len += (size_t)snprintf(buf + len, cap - len, "%zu:%s;", strlen(c->groups[i]), c->groups[i]);
  if (c->with_group_names) {
    len += (size_t)snprintf(buf + len, cap - len, "N%zu;", c->n_group_names);
    for (size_t i = 0; i < c->n_group_names; i++)
      len += (size_t)snprintf(buf + len, cap - len, "%zu:%s;", strlen(c->group_names[i]),
                              c->group_names[i]);
  }
  *ret_len = len;
  return buf;
}

static reuse_t *reuse_find(reuse_t *r, const proxy_jwt_t *j, const char *key, size_t klen,
                           time_t now, reuse_t **ret_victim)
{
  reuse_t *victim = &r[0];
  for (size_t i = 0; i < PROXY_JWT_REUSE_SLOTS; i++) {
    if (r[i].token != NULL && r[i].j == j && r[i].klen == klen && now < r[i].until &&
        memcmp(r[i].key, key, klen) == 0)
      return &r[i];
    if (r[i].until < victim->until)
      victim = &r[i];
  }
  *ret_victim = victim;
  return NULL;
}

int proxy_jwt_sign(const proxy_jwt_t *j, const proxy_jwt_claims_t *c, char **ret_token)
{
  proxy_jwt_claims_t now_c;
  reuse_t *slots, *hit, *victim = NULL;
  uint64_t ttl;
  size_t klen = 0;
  char *key = NULL, *tok = NULL;
  int ret;

  if (j == NULL || c == NULL || ret_token == NULL || c->sub == NULL || c->sub[0] == '\0' ||
      c->aud == NULL || (c->n_groups > 0 && c->groups == NULL) ||
      (c->n_group_names > 0 && c->group_names == NULL))
    return -EINVAL;
  if (c->now != 0 || (slots = reuse_slots()) == NULL)
    return sign_new(j, c, ret_token); /* a given time: always a new token */
  ttl = c->ttl_s != 0 ? c->ttl_s : j->ttl_s;
  now_c = *c;
  now_c.now = time(NULL);
  key = claims_text(c, ttl, &klen);
  hit = key != NULL ? reuse_find(slots, j, key, klen, now_c.now, &victim) : NULL;
  if (hit != NULL) {
    tok = strdup(hit->token);
    ret = tok != NULL ? 0 : -ENOMEM;
  } else {
    ret = sign_new(j, &now_c, &tok);
  }
  if (ret == 0 && hit == NULL && victim != NULL && key != NULL) {
    char *copy = strdup(tok);
    if (copy == NULL)
      goto done; /* not kept: the token is still good */
    free(victim->token);
    free(victim->key);
    victim->token = copy;
    victim->j = j;
    victim->key = key;
    victim->klen = klen;
    victim->until =
        now_c.now + (time_t)(ttl / 2 < PROXY_JWT_REUSE_MAX_S ? ttl / 2 : PROXY_JWT_REUSE_MAX_S);
    key = NULL;
  }
done:
  if (ret == 0)
    *ret_token = tok;
  free(key);
  return ret;
}
