/* auth_basic.c: Basic authentication against PAM, with a salted-hash success cache. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <security/pam_appl.h>

#include <gatehouse/error.h>

#include "httpapi/auth/auth.h"
#include "httpapi/auth/auth_internal.h"
#include "util/alloc.h"

typedef struct cache_entry {
  unsigned char key[32];
  time_t expiry; /* 0 = empty */
} cache_entry_t;

struct gh__auth_basic_cache {
  pthread_mutex_t lock;
  unsigned n;
  unsigned ttl_s;
  unsigned char salt[32];
  cache_entry_t *entries;
};

gh__auth_basic_cache_t *gh__auth_basic_cache_new(unsigned entries, unsigned ttl_s)
{
  gh__auth_basic_cache_t *c = NULL, *ret = NULL;

  c = gh__calloc(1, sizeof(*c));
  if (!c)
    goto out;
  c->n = entries ? entries : 1024;
  if (c->n > 1u << 20)
    c->n = 1u << 20;
  c->ttl_s = ttl_s;
  c->entries = gh__calloc(c->n, sizeof(cache_entry_t));
  if (!c->entries)
    goto out;
  if (RAND_bytes(c->salt, sizeof(c->salt)) != 1)
    goto out;
  pthread_mutex_init(&c->lock, NULL);
  ret = c;
  c = NULL;
out:
  if (c) {
    free(c->entries);
    free(c);
  }
  return ret;
}

void gh__auth_basic_cache_free(gh__auth_basic_cache_t *c)
{
  if (!c)
    return;
  pthread_mutex_destroy(&c->lock);
  explicit_bzero(c->entries, c->n * sizeof(cache_entry_t));
  explicit_bzero(c->salt, sizeof(c->salt));
  free(c->entries);
  free(c);
}

/* key = SHA-256(salt || user || NUL || password) */
static bool cache_key(const gh__auth_basic_cache_t *c, const char *user, const char *password,
                      unsigned char key[32])
{
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  unsigned int len = 0;
  bool ok = false;

  if (!md)
    goto out;
  if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
      EVP_DigestUpdate(md, c->salt, sizeof(c->salt)) != 1 ||
      EVP_DigestUpdate(md, user, strlen(user) + 1) != 1 ||
      EVP_DigestUpdate(md, password, strlen(password)) != 1 ||
      EVP_DigestFinal_ex(md, key, &len) != 1 || len != 32)
    goto out;
  ok = true;
out:
  EVP_MD_CTX_free(md);
  return ok;
}

static unsigned slot_of(const gh__auth_basic_cache_t *c, const unsigned char key[32])
{
  uint64_t v;

  memcpy(&v, key, sizeof(v));
  return (unsigned)(v % c->n);
}

bool gh__auth_basic_cache_lookup(gh__auth_basic_cache_t *c, const char *user,
                                 const char *password, time_t now)
{
  unsigned char key[32];
  bool hit = false;

  if (!c || c->ttl_s == 0 || !cache_key(c, user, password, key))
    goto out;
  pthread_mutex_lock(&c->lock);
  cache_entry_t *e = &c->entries[slot_of(c, key)];
  if (e->expiry != 0 && now < e->expiry && CRYPTO_memcmp(e->key, key, sizeof(key)) == 0)
    hit = true;
  pthread_mutex_unlock(&c->lock);
out:
  explicit_bzero(key, sizeof(key));
  return hit;
}

void gh__auth_basic_cache_insert(gh__auth_basic_cache_t *c, const char *user,
                                 const char *password, time_t now)
{
  unsigned char key[32];

  if (!c || c->ttl_s == 0 || !cache_key(c, user, password, key))
    goto out;
  pthread_mutex_lock(&c->lock);
  cache_entry_t *e = &c->entries[slot_of(c, key)];
  memcpy(e->key, key, sizeof(key));
  e->expiry = now + (time_t)c->ttl_s;
  pthread_mutex_unlock(&c->lock);
out:
  explicit_bzero(key, sizeof(key));
}

/* ---- PAM ---- */

typedef struct conv_data {
  const char *user;
  const char *password;
} conv_data_t;

static int conv_cb(int num_msg, const struct pam_message **msg, struct pam_response **resp,
                   void *appdata)
{
  const conv_data_t *d = appdata;
  struct pam_response *r = NULL;
  int ret = PAM_SUCCESS;

  if (num_msg <= 0 || num_msg > PAM_MAX_NUM_MSG) {
    ret = PAM_CONV_ERR;
    goto out;
  }
  r = gh__calloc((size_t)num_msg, sizeof(*r));
  if (!r) {
    ret = PAM_BUF_ERR;
    goto out;
  }
  for (int i = 0; i < num_msg; i++) {
    const char *answer = NULL;
    switch (msg[i]->msg_style) {
    case PAM_PROMPT_ECHO_OFF:
      answer = d->password;
      break;
    case PAM_PROMPT_ECHO_ON:
      answer = d->user;
      break;
    case PAM_ERROR_MSG:
    case PAM_TEXT_INFO:
      break;
    default:
      ret = PAM_CONV_ERR;
      goto out;
    }
    if (answer) {
      r[i].resp = gh__strdup(answer);
      if (!r[i].resp) {
        ret = PAM_BUF_ERR;
        goto out;
      }
    }
  }
  *resp = r;
  r = NULL;
out:
  if (r) {
    for (int i = 0; i < num_msg; i++) {
      if (r[i].resp) {
        explicit_bzero(r[i].resp, strlen(r[i].resp));
        free(r[i].resp);
      }
    }
    free(r);
  }
  return ret;
}

int gh__auth_pam_check(const char *service, const char *user, const char *password,
                       int *ret_pam_code, char *msg, size_t msglen)
{
  conv_data_t d = { .user = user, .password = password };
  struct pam_conv conv = { .conv = conv_cb, .appdata_ptr = &d };
  pam_handle_t *pamh = NULL;
  int rc, ret = 0;

  rc = pam_start(service, user, &conv, &pamh);
  if (rc != PAM_SUCCESS) {
    ret = GH_EPAM;
    goto out;
  }
  rc = pam_authenticate(pamh, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
  if (rc == PAM_SUCCESS)
    rc = pam_acct_mgmt(pamh, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
  if (rc != PAM_SUCCESS)
    ret = GH_EAUTH_FAILED;
out:
  if (msg && msglen)
    snprintf(msg, msglen, "PAM %d: %s", rc, pamh ? pam_strerror(pamh, rc) : "pam_start failed");
  if (pamh)
    pam_end(pamh, rc);
  *ret_pam_code = rc;
  return ret;
}
