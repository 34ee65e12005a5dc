/* auth_basic.c: Basic — the step, the connection memo, the salted-hash success cache, PAM. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <security/pam_appl.h>

#include <gatehouse/error.h>

#include "httpapi/auth/auth.h"
#include "httpapi/auth/auth_engine.h"
#include "httpapi/auth/auth_internal.h"
#include "httpapi/auth/auth_pac.h"
#include "httpapi/auth/auth_sidcache.h"
#include "util/alloc.h"
#include "util/clock.h"

typedef struct cache_entry {
  unsigned char key[32];
  time_t expiry;             /* 0 = empty */
  gh_token_t token;          /* owned by the cache; 0 = none */
  char sid[GH__SID_STR_MAX]; /* an AD user's SID (winbind), "" otherwise */
} cache_entry_t;

/* Hashing contexts kept for reuse: EVP_MD_CTX_new + EVP_DigestInit with
 * EVP_sha256() (an implicit provider fetch) + free cost more per request
 * than the hash itself. The digest is fetched once; idle contexts wait in a
 * small pool (more concurrent lookups just make a context and free it). */
#define MD_POOL 8

struct gh__auth_basic_cache {
  pthread_mutex_t lock;
  unsigned n;
  unsigned ttl_s;
  unsigned char salt[32];
  cache_entry_t *entries;
  gh__auth_token_ops_t ops; /* open_handle + close, or both NULL */
  EVP_MD *md;
  pthread_mutex_t md_lock;
  EVP_MD_CTX *md_pool[MD_POOL];
  unsigned n_md;
};

gh__auth_basic_cache_t *gh__auth_basic_cache_new(unsigned entries, unsigned ttl_s,
                                                 const gh__auth_token_ops_t *ops)
{
  gh__auth_basic_cache_t *c = NULL, *ret = NULL;

  c = gh__calloc(1, sizeof(*c));
  if (!c)
    goto out;
  c->n = entries ? entries : 1024;
  if (c->n > 1u << 20)
    c->n = 1u << 20;
  c->ttl_s = ttl_s;
  if (ops && ops->open_handle && ops->close) {
    c->ops.open_handle = ops->open_handle;
    c->ops.close = ops->close;
  }
  c->entries = gh__calloc(c->n, sizeof(cache_entry_t));
  if (!c->entries)
    goto out;
  if (RAND_bytes(c->salt, sizeof(c->salt)) != 1)
    goto out;
  c->md = EVP_MD_fetch(NULL, "SHA256", NULL);
  if (!c->md)
    goto out;
  pthread_mutex_init(&c->lock, NULL);
  pthread_mutex_init(&c->md_lock, NULL);
  ret = c;
  c = NULL;
out:
  if (c) {
    EVP_MD_free(c->md);
    free(c->entries);
    free(c);
  }
  return ret;
}

void gh__auth_basic_cache_free(gh__auth_basic_cache_t *c)
{
  if (!c)
    return;
  for (unsigned i = 0; i < c->n; i++) {
    if (c->entries[i].token && c->ops.close)
      c->ops.close(c->entries[i].token);
  }
  for (unsigned i = 0; i < c->n_md; i++)
    EVP_MD_CTX_free(c->md_pool[i]);
  EVP_MD_free(c->md);
  pthread_mutex_destroy(&c->md_lock);
  pthread_mutex_destroy(&c->lock);
  explicit_bzero(c->entries, c->n * sizeof(cache_entry_t));
  explicit_bzero(c->salt, sizeof(c->salt));
  free(c->entries);
  free(c);
}

static EVP_MD_CTX *md_get(gh__auth_basic_cache_t *c)
{
  EVP_MD_CTX *md = NULL;

  pthread_mutex_lock(&c->md_lock);
  if (c->n_md > 0)
    md = c->md_pool[--c->n_md];
  pthread_mutex_unlock(&c->md_lock);
  return md ? md : EVP_MD_CTX_new();
}

static void md_put(gh__auth_basic_cache_t *c, EVP_MD_CTX *md)
{
  if (!md)
    return;
  pthread_mutex_lock(&c->md_lock);
  if (c->n_md < MD_POOL) {
    c->md_pool[c->n_md++] = md;
    md = NULL;
  }
  pthread_mutex_unlock(&c->md_lock);
  EVP_MD_CTX_free(md);
}

/* key = SHA-256(salt || user || NUL || password) */
static bool cache_key(gh__auth_basic_cache_t *c, const char *user, const char *password,
                      unsigned char key[32])
{
  EVP_MD_CTX *md = md_get(c);
  unsigned int len = 0;
  bool ok = false;

  if (!md)
    goto out;
  /* EVP_DigestInit_ex2 with the fetched digest on a used context only
   * re-initialises its state: no fetch, no allocation */
  if (EVP_DigestInit_ex2(md, c->md, NULL) != 1 ||
      EVP_DigestUpdate(md, c->salt, sizeof(c->salt)) != 1 ||
      EVP_DigestUpdate(md, user, strlen(user) + 1) != 1 ||
      EVP_DigestUpdate(md, password, strlen(password)) != 1 ||
      EVP_DigestFinal_ex(md, key, &len) != 1 || len != 32)
    goto out;
  ok = true;
out:
  if (md && !ok) {
    EVP_MD_CTX_free(md); /* never reuse a context in an unknown state */
    md = NULL;
  }
  md_put(c, md);
  return ok;
}

static unsigned slot_of(const gh__auth_basic_cache_t *c, const unsigned char key[32])
{
  uint64_t v;

  memcpy(&v, key, sizeof(v));
  return (unsigned)(v % c->n);
}

bool gh__auth_basic_cache_key(gh__auth_basic_cache_t *c, const char *user, const char *password,
                              unsigned char ret_key[GH__AUTH_BASIC_KEY_SIZE])
{
  return c && c->ttl_s != 0 && cache_key(c, user, password, ret_key);
}

bool gh__auth_basic_cache_lookup(gh__auth_basic_cache_t *c, const char *user, const char *password,
                                 time_t now, gh_token_t *ret_token)
{
  unsigned char key[32];
  bool hit = false;

  if (ret_token)
    *ret_token = 0;
  if (!gh__auth_basic_cache_key(c, user, password, key))
    goto out;
  hit = gh__auth_basic_cache_lookup_key(c, key, now, ret_token, NULL);
out:
  explicit_bzero(key, sizeof(key));
  return hit;
}

bool gh__auth_basic_cache_lookup_key(gh__auth_basic_cache_t *c,
                                     const unsigned char key[GH__AUTH_BASIC_KEY_SIZE], time_t now,
                                     gh_token_t *ret_token, char ret_sid[GH__SID_STR_MAX])
{
  gh_token_t stale = 0;
  bool hit = false;

  if (ret_token)
    *ret_token = 0;
  if (ret_sid)
    ret_sid[0] = '\0';
  if (!c || c->ttl_s == 0)
    goto out;
  pthread_mutex_lock(&c->lock);
  cache_entry_t *e = &c->entries[slot_of(c, key)];
  if (e->expiry != 0 && CRYPTO_memcmp(e->key, key, GH__AUTH_BASIC_KEY_SIZE) == 0) {
    if (now < e->expiry) {
      hit = true;
      if (ret_sid)
        memcpy(ret_sid, e->sid, GH__SID_STR_MAX);
      /* under the lock: an insert cannot close the cached handle meanwhile */
      if (ret_token && e->token && c->ops.open_handle(e->token, ret_token) != 0)
        *ret_token = 0; /* the caller builds a token as on a miss */
    } else {
      /* expired: forget it now (and drop its token) */
      stale = e->token;
      memset(e, 0, sizeof(*e));
    }
  }
  pthread_mutex_unlock(&c->lock);
  if (stale)
    c->ops.close(stale);
out:
  return hit;
}

void gh__auth_basic_cache_insert(gh__auth_basic_cache_t *c, const char *user, const char *password,
                                 time_t now, gh_token_t token)
{
  unsigned char key[32];

  if (gh__auth_basic_cache_key(c, user, password, key))
    gh__auth_basic_cache_insert_key(c, key, now, token, NULL);
  explicit_bzero(key, sizeof(key));
}

void gh__auth_basic_cache_insert_key(gh__auth_basic_cache_t *c,
                                     const unsigned char key[GH__AUTH_BASIC_KEY_SIZE], time_t now,
                                     gh_token_t token, const char *sid)
{
  gh_token_t mine = 0, old = 0;

  if (!c || c->ttl_s == 0)
    goto out;
  if (token && c->ops.open_handle && c->ops.open_handle(token, &mine) != 0)
    mine = 0; /* keep the success, without a token */
  pthread_mutex_lock(&c->lock);
  cache_entry_t *e = &c->entries[slot_of(c, key)];
  old = e->token;
  memcpy(e->key, key, GH__AUTH_BASIC_KEY_SIZE);
  e->expiry = now + (time_t)c->ttl_s;
  e->token = mine;
  memset(e->sid, 0, sizeof(e->sid));
  if (sid && strlen(sid) < sizeof(e->sid))
    memcpy(e->sid, sid, strlen(sid));
  pthread_mutex_unlock(&c->lock);
  if (old)
    c->ops.close(old);
out:
  return;
}

/* ---- PAM ---- */

typedef struct conv_data {
  const char *user;
  const char *password;
  bool oom; /* our side of the conversation ran out of memory */
} conv_data_t;

static int conv_cb(int num_msg, const struct pam_message **msg, struct pam_response **resp,
                   void *appdata)
{
  conv_data_t *d = appdata;
  struct pam_response *r = NULL;
  int ret = PAM_SUCCESS;

  if (num_msg <= 0 || num_msg > PAM_MAX_NUM_MSG) {
    ret = PAM_CONV_ERR;
    goto out;
  }
  r = gh__calloc((size_t)num_msg, sizeof(*r));
  if (!r) {
    d->oom = true;
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
        d->oom = true;
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
                       int *ret_pam_code, char *msg, size_t msglen, char *ret_user,
                       size_t ret_user_len)
{
  conv_data_t d = {.user = user, .password = password};
  struct pam_conv conv = {.conv = conv_cb, .appdata_ptr = &d};
  pam_handle_t *pamh = NULL;
  int rc, ret = 0;

  rc = pam_start(service, user, &conv, &pamh);
  if (rc != PAM_SUCCESS) {
    /* no PAM stack to ask (missing service file, no memory): the server's
     * problem, never a wrong password */
    ret = -EAGAIN;
    goto out;
  }
  rc = pam_authenticate(pamh, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
  if (rc == PAM_SUCCESS)
    rc = pam_acct_mgmt(pamh, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
  if (rc == PAM_SUCCESS) {
    /* the name the stack accepted (a module may have canonicalised it) */
    const void *item = NULL;
    if (ret_user && ret_user_len) {
      ret_user[0] = '\0';
      if (pam_get_item(pamh, PAM_USER, &item) == PAM_SUCCESS && item && strlen(item) < ret_user_len)
        memcpy(ret_user, item, strlen(item) + 1);
    }
    goto out;
  }
  if (d.oom) {
    /* whatever the module made of our failed answer, the password was never
     * checked: 503, not a 401 that makes the browser re-prompt */
    ret = -ENOMEM;
  } else if (rc == PAM_BUF_ERR || rc == PAM_AUTHINFO_UNAVAIL || rc == PAM_ABORT ||
             rc == PAM_CONV_ERR) {
    /* the stack could not decide (its backend is unreachable, it ran out
     * of memory, it needs a conversation we cannot hold): unavailable, not
     * a verdict on the password. PAM_SYSTEM_ERR stays a failure: pam_exec
     * password checkers answer a wrong password with it. */
    ret = -EAGAIN;
  } else {
    ret = GH_EAUTH_FAILED;
  }
out:
  if (msg && msglen)
    snprintf(msg, msglen, "PAM %d: %s", rc, pamh ? pam_strerror(pamh, rc) : "pam_start failed");
  if (pamh)
    pam_end(pamh, rc);
  *ret_pam_code = rc;
  return ret;
}

/* ---- PAM with a deadline ----
 *
 * A PAM stack can block for ever (a hung LDAP/RADIUS server, pam_exec of a
 * stuck program), and pam_authenticate cannot be interrupted. So the
 * conversation runs in a detached helper thread while the worker waits at
 * most timeout_ms; on timeout the worker answers (GH_ETIMEOUT → 503) and the
 * helper finishes whenever PAM returns, then frees the job. Helpers count
 * against max_concurrent until they really end, so hung conversations can
 * never take more than that many threads; beyond it the worker answers
 * GH_ELIMIT (503) at once without calling PAM. The helper is created by the
 * worker at base identity, so it starts at base (threads inherit ids). */

typedef struct pam_job {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int refs; /* worker + helper, under lock */
  bool done;
  int ret, pam_code;
  char msg[256];
  char pam_user[256]; /* PAM_USER after the success, "" unknown */
  char *service, *user, *password;
} pam_job_t;

static atomic_uint pam_running;

static void pam_job_unref(pam_job_t *j)
{
  pthread_mutex_lock(&j->lock);
  int left = --j->refs;
  pthread_mutex_unlock(&j->lock);
  if (left > 0)
    return;
  pthread_cond_destroy(&j->cond);
  pthread_mutex_destroy(&j->lock);
  if (j->password) {
    explicit_bzero(j->password, strlen(j->password));
    free(j->password);
  }
  free(j->user);
  free(j->service);
  free(j);
}

static void *pam_helper(void *arg)
{
  pam_job_t *j = arg;
  int pam_code = 0;
  char msg[256], pam_user[256] = "";
  int ret = gh__auth_pam_check(j->service, j->user, j->password, &pam_code, msg, sizeof(msg),
                               pam_user, sizeof(pam_user));

  pthread_mutex_lock(&j->lock);
  j->ret = ret;
  j->pam_code = pam_code;
  memcpy(j->msg, msg, sizeof(msg));
  memcpy(j->pam_user, pam_user, sizeof(pam_user));
  j->done = true;
  pthread_cond_signal(&j->cond);
  pthread_mutex_unlock(&j->lock);
  atomic_fetch_sub(&pam_running, 1);
  pam_job_unref(j);
  return NULL;
}

int gh__auth_pam_check_timed(const char *service, const char *user, const char *password,
                             unsigned timeout_ms, unsigned max_concurrent, int *ret_pam_code,
                             char *msg, size_t msglen, char *ret_user, size_t ret_user_len)
{
  pam_job_t *j = NULL;
  pthread_condattr_t ca;
  pthread_attr_t ta;
  pthread_t th;
  struct timespec dl;
  int ret = 0, rc = 0;
  bool counted = false;

  *ret_pam_code = 0;
  if (ret_user && ret_user_len)
    ret_user[0] = '\0';
  if (timeout_ms == 0)
    timeout_ms = GH__AUTH_PAM_TIMEOUT_MS_DEFAULT;
  if (max_concurrent == 0)
    max_concurrent = GH__AUTH_PAM_MAX_CONCURRENT_DEFAULT;
  if (atomic_fetch_add(&pam_running, 1) >= max_concurrent) {
    atomic_fetch_sub(&pam_running, 1);
    if (msg && msglen)
      snprintf(msg, msglen, "PAM: %u conversations already running (pam_max_concurrent)",
               max_concurrent);
    ret = GH_ELIMIT;
    goto out;
  }
  counted = true;
  j = gh__calloc(1, sizeof(*j));
  if (j == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  j->service = gh__strdup(service);
  j->user = gh__strdup(user);
  j->password = gh__strdup(password);
  if (!j->service || !j->user || !j->password) {
    ret = -ENOMEM;
    goto out;
  }
  pthread_mutex_init(&j->lock, NULL);
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&j->cond, &ca);
  pthread_condattr_destroy(&ca);
  j->refs = 2;
  pthread_attr_init(&ta);
  pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
  rc = pthread_create(&th, &ta, pam_helper, j);
  pthread_attr_destroy(&ta);
  if (rc != 0) {
    j->refs = 1;
    ret = -rc;
    goto out;
  }
  counted = false; /* the helper gives the slot back when PAM returns */
  gh__deadline_after_ms(&dl, timeout_ms);
  pthread_mutex_lock(&j->lock);
  while (!j->done && rc != ETIMEDOUT)
    rc = pthread_cond_timedwait(&j->cond, &j->lock, &dl);
  if (j->done) {
    ret = j->ret;
    *ret_pam_code = j->pam_code;
    if (msg && msglen)
      snprintf(msg, msglen, "%s", j->msg);
    if (ret_user && ret_user_len)
      snprintf(ret_user, ret_user_len, "%s", j->pam_user);
  } else {
    ret = GH_ETIMEOUT;
    if (msg && msglen)
      snprintf(msg, msglen, "PAM conversation timed out after %u ms (pam_timeout)", timeout_ms);
  }
  pthread_mutex_unlock(&j->lock);
out:
  if (counted)
    atomic_fetch_sub(&pam_running, 1);
  if (j != NULL) {
    if (j->refs == 0) { /* never initialised */
      if (j->password) {
        explicit_bzero(j->password, strlen(j->password));
        free(j->password);
      }
      free(j->user);
      free(j->service);
      free(j);
    } else {
      pam_job_unref(j);
    }
  }
  if (ret == -ENOMEM && msg && msglen)
    snprintf(msg, msglen, "PAM: out of memory");
  return ret;
}

/* ---- the Basic step ---- */

/* Basic memo entries above this many base64 bytes are not kept. */
#define BASIC_MEMO_MAX 512

void gh__auth_basic_memo_clear(gh__auth_conn_t *c)
{
  if (c->memo_cred) {
    explicit_bzero(c->memo_cred, c->memo_cred_len);
    free(c->memo_cred);
  }
  free(c->memo_user);
  c->memo_cred = c->memo_user = NULL;
  c->memo_cred_len = c->memo_dec_len = 0;
  explicit_bzero(c->memo_key, sizeof(c->memo_key));
}

/* Remembers a verified Basic header (no memo on allocation failure). */
static void memo_set(gh__auth_conn_t *c, const char *cred, size_t cred_len, size_t dec_len,
                     const unsigned char key[GH__AUTH_BASIC_KEY_SIZE], const char *user)
{
  gh__auth_basic_memo_clear(c);
  if (cred_len > BASIC_MEMO_MAX)
    return;
  c->memo_cred = gh__malloc(cred_len);
  c->memo_user = gh__strdup(user);
  if (!c->memo_cred || !c->memo_user) {
    gh__auth_basic_memo_clear(c);
    return;
  }
  memcpy(c->memo_cred, cred, cred_len);
  c->memo_cred_len = cred_len;
  c->memo_dec_len = dec_len;
  memcpy(c->memo_key, key, sizeof(c->memo_key));
}

uint64_t gh__auth_engine_basic_memo_hits(gh__auth_engine_t *e)
{
  return atomic_load_explicit(&e->basic_memo_hits, memory_order_relaxed);
}

/* An AD user (issue 14 item 3): the name PAM accepted resolved through
 * winbind to its SID and groups' SIDs, named by the SID in the site's
 * name_format, its local account the SID's. Returns 0 with *ret_sids NULL
 * for a name winbind does not know as a user (a local account: today's
 * behaviour, the typed name). winbindd not running: a name with a domain
 * (DOMAIN\\user, user@realm) cannot be decided (-EAGAIN, 503); a bare name
 * is a local account (hosts without winbind). winbindd hung: -EAGAIN. */
static int basic_ad_identity(gh__auth_engine_t *e, const gh_auth_settings_t *site,
                             const char *name, gh__sids_t **ret_sids, char **ret_canon,
                             char **ret_local)
{
  int ret = gh__winbind_user_sids(name, ret_sids);

  if (ret == -ENOSYS)
    return 0;
  if (ret == -ENOENT)
    return strchr(name, '\\') || strchr(name, '@') ? -EAGAIN : 0;
  if (ret != 0 || *ret_sids == NULL)
    return ret;
  ret = gh__sidcache_identity(e->sidcache, (*ret_sids)->v[0], (int)site->name_format, ret_canon,
                              ret_local);
  if (ret == -EAGAIN || ret == -ENOMEM || ret == -ENOSYS) {
    free(*ret_sids);
    *ret_sids = NULL;
    return ret == -ENOSYS ? -EAGAIN : ret;
  }
  if (ret != 0) {
    *ret_canon = NULL;
    *ret_local = NULL; /* a SID winbind maps to no account: unmapped */
    ret = 0;
  }
  return ret;
}

/* After the password check (a cache hit or PAM): the token, the cache
 * entry, SUCCESS. key: the entry key, or NULL with the cache off. name:
 * the name PAM accepted; sid: the AD user's SID a cache hit gave ("" none). */
static void basic_success(gh__auth_engine_t *e, gh__auth_conn_t *c, const gh_auth_settings_t *site,
                          const char *user, const char *sid, bool cached, const unsigned char *key,
                          time_t now, gh__auth_result_t *r)
{
  bool unmapped = false;
  gh__sids_t *sids = NULL;
  char *canon = NULL, *local = NULL;
  const char *remote = user, *account = user;
  int ret;

  if (r->info.token && sid[0] != '\0') {
    /* a hit with the AD user's token: only the name, in this site's format */
    ret = gh__sidcache_identity(e->sidcache, sid, (int)site->name_format, &canon, &local);
    if (ret == -EAGAIN || ret == -ENOMEM || ret == -ENOSYS) {
      e->ops.close(r->info.token);
      r->info.token = 0;
      gh__auth_set_verdict(r, GH__AUTH_UNAVAILABLE, ret == -ENOSYS ? -EAGAIN : ret);
      goto out;
    }
    if (ret == 0) {
      remote = canon;
      account = local;
    } else {
      /* the SID maps to no account any more: never the cached token under
       * the typed name — resolved again below, as on a miss */
      e->ops.close(r->info.token);
      r->info.token = 0;
    }
  }
  if (!r->info.token) {
    /* a miss, or a hit without a token (unmapped, no handle): resolve */
    ret = basic_ad_identity(e, site, user, &sids, &canon, &local);
    if (ret) {
      gh__auth_set_verdict(r, GH__AUTH_UNAVAILABLE, ret);
      goto out;
    }
    if (sids) {
      remote = canon ? canon : user;
      account = local;
      sid = sids->v[0];
    }
  }
  if (!r->info.token) {
    ret =
        gh__auth_make_token(e, r, site, account, remote, GH_SOURCE_BASIC, 0, NULL, sids, &unmapped);
    if (ret) {
      gh__auth_set_local_failure(r, ret, GH_AUTH_TYPE_BASIC, "Basic", remote);
      goto out;
    }
  }
  /* Only the user's own token is kept: an unmapped user's IDENTIFY token
   * depends on the site (allow_unmapped), so it is rebuilt per request. A
   * hit never refreshes the entry (its TTL runs from the PAM success). */
  if (!cached && key)
    gh__auth_basic_cache_insert_key(e->basic_cache, key, now, unmapped ? 0 : r->info.token,
                                    sids ? sid : NULL);
  /* Basic is per request by nature: never persisted on the connection */
  {
    gh_auth_settings_t s = *site;
    s.persist = GH_AUTH_PERSIST_NONE;
    gh__auth_deliver_success(c, r, &s, GH_AUTH_TYPE_BASIC, "Basic", 0, 0, remote,
                             unmapped ? e->unmapped_user : account);
  }
out:
  free(canon);
  free(local);
  free(sids);
}

static bool basic_succeeded(const gh__auth_result_t *r)
{
  return r->verdict == GH__AUTH_DELIVER && r->info.status == GH_AUTH_STATUS_SUCCESS;
}

/* The connection's memo: the same credentials as its last verified Basic
 * header and their cache entry still valid (within the TTL, not replaced):
 * handled as the cache hit the full path would find. Otherwise false (the
 * memo is gone) and the caller takes the full path. */
bool gh__auth_step_basic_memo(gh__auth_engine_t *e, gh__auth_conn_t *c,
                              const gh_auth_settings_t *site, const char *cred, size_t cred_len,
                              size_t max_tok, gh__auth_result_t *r)
{
  char sid[GH__SID_STR_MAX];
  time_t now;

  if (!c->memo_cred || c->memo_cred_len != cred_len ||
      CRYPTO_memcmp(c->memo_cred, cred, cred_len) != 0)
    return false;
  if (c->memo_dec_len > max_tok) /* this site's limit: the full path answers */
    return false;
  now = time(NULL);
  if (!gh__auth_basic_cache_lookup_key(e->basic_cache, c->memo_key, now, &r->info.token, sid)) {
    gh__auth_basic_memo_clear(c);
    return false;
  }
  atomic_fetch_add_explicit(&e->basic_memo_hits, 1, memory_order_relaxed);
  basic_success(e, c, site, c->memo_user, sid, true, NULL, now, r);
  if (!basic_succeeded(r))
    gh__auth_basic_memo_clear(c);
  return true;
}

void gh__auth_step_basic(gh__auth_engine_t *e, gh__auth_conn_t *c, const gh_auth_settings_t *site,
                         const char *cred, size_t cred_len, const unsigned char *dec,
                         size_t dec_len, gh__auth_result_t *r)
{
  char *buf = NULL;
  const char *user = NULL, *password = NULL;
  char msg[GH_AUTH_SEC_TEXT_MAX], pam_user[256] = "", sid[GH__SID_STR_MAX] = "";
  unsigned char key[GH__AUTH_BASIC_KEY_SIZE];
  bool cached = false, have_key;
  int pam_code = 0, ret;
  time_t now = time(NULL);

  gh__auth_basic_memo_clear(c);
  buf = gh__malloc(dec_len + 1);
  if (!buf) {
    gh__auth_set_verdict(r, GH__AUTH_UNAVAILABLE, -ENOMEM);
    goto out;
  }
  memcpy(buf, dec, dec_len);
  ret = gh__auth_basic_split(buf, dec_len, &user, &password);
  if (ret) {
    gh__auth_set_verdict(r, GH__AUTH_BAD_REQUEST, ret);
    goto out;
  }
  /* a hit hands out a new handle to the token built at the PAM success
   * (same user, same password hash, within the TTL): no PAM, no NSS */
  have_key = gh__auth_basic_cache_key(e->basic_cache, user, password, key);
  if (have_key)
    cached = gh__auth_basic_cache_lookup_key(e->basic_cache, key, now, &r->info.token, sid);
  if (!cached) {
    ret = gh__auth_pam_check_timed(e->pam_service, user, password, e->pam_timeout_ms,
                                   e->pam_max_concurrent, &pam_code, msg, sizeof(msg), pam_user,
                                   sizeof(pam_user));
    if (ret == GH_ETIMEOUT || ret == GH_ELIMIT || ret == -ENOMEM || ret == -EAGAIN) {
      /* PAM hung or too many conversations: not the client's fault, no re-prompt */
      gh__auth_set_verdict(r, GH__AUTH_UNAVAILABLE, ret);
      goto out;
    }
    if (ret) {
      gh__auth_set_failure(r, gh__auth_failure_of_pam(pam_code), GH_AUTH_TYPE_BASIC, "Basic",
                           GH_AUTH_SEC_PAM, (uint32_t)pam_code, 0, msg);
      gh__auth_set_failure_facts(r, user, NULL, NULL);
      goto out;
    }
  }
  /* the name the PAM stack accepted (PAM_USER, which a module may have
   * canonicalised); a hit's entry was made for that name */
  basic_success(e, c, site, pam_user[0] ? pam_user : user, sid, cached, have_key ? key : NULL, now,
                r);
  /* the next request with this header on this connection: see gh__auth_step_basic_memo */
  if (have_key && basic_succeeded(r))
    memo_set(c, cred, cred_len, dec_len, key, user);
out:
  explicit_bzero(key, sizeof(key));
  if (buf) {
    explicit_bzero(buf, dec_len + 1);
    free(buf);
  }
}
