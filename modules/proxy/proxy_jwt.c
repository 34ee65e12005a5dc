/* proxy_jwt.c: the proxy's signed identity assertion: key file checks at load, one short-lived JWT
 * per upstream request. */
#include <errno.h>
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

/* {"groups":[...]} in a malloc'd buffer (names are escaped here). */
static char *groups_json(const proxy_jwt_claims_t *c)
{
  size_t cap = 16, pos;
  char *out;
  for (size_t i = 0; i < c->n_groups; i++)
    cap += 6 * strlen(c->groups[i]) + 4;
  out = malloc(cap);
  if (out == NULL)
    return NULL;
  pos = (size_t)snprintf(out, cap, "{\"groups\":[");
  for (size_t i = 0; i < c->n_groups; i++) {
    if (i > 0 && pos + 1 < cap)
      out[pos++] = ',';
    if (!json_str(out, cap, &pos, c->groups[i])) {
      free(out);
      return NULL;
    }
  }
  if (pos + 3 > cap) {
    free(out);
    return NULL;
  }
  memcpy(out + pos, "]}", 3);
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

int proxy_jwt_sign(const proxy_jwt_t *j, const proxy_jwt_claims_t *c, char **ret_token)
{
  jwt_t *t = NULL;
  char *s = NULL;
  int ret;

  if (j == NULL || c == NULL || ret_token == NULL || c->sub == NULL || c->sub[0] == '\0' ||
      c->aud == NULL || (c->n_groups > 0 && c->groups == NULL)) {
    ret = -EINVAL;
    goto out;
  }
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
