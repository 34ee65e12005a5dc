/* auth_sidcache.c: a short-lived cache of winbind's answers for AD SIDs (identity, gids). */
#include "httpapi/auth/auth_sidcache.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "util/alloc.h"

/* gh__sid_identity (wbcSidToUid, getpwuid_r, wbcLookupSid: ~390 µs) and
 * gh__sids_to_gids (wbcSidsToUnixIds: 70-220 µs) ran on every AD request.
 * Successful answers are kept for ttl_s seconds (name_map_cache_ttl, default
 * 5) in GH__SIDCACHE_SLOTS direct-mapped slots: a keyed hash of the exact
 * key picks the slot, the full key is compared, so a key never gets
 * another's answer; a newer answer replaces the slot's. Keys: "i<fmt>:<SID>"
 * (value "canonical\0local\0") and "g:<SID>,<SID>,..." (value the gid array).
 * Failures are not kept: an unmapped SID or winbind being down is asked
 * again on the next request. Within the TTL a cached answer is served even
 * when winbind has since gone down (docs/security.md). */

typedef struct slot {
  char *key; /* NULL = empty */
  void *val;
  size_t len;
  time_t expiry; /* CLOCK_MONOTONIC seconds */
} slot_t;

struct gh__sidcache {
  pthread_mutex_t lock;
  unsigned ttl_s;
  uint64_t seed;
  time_t fixed_now;
  uint64_t hits, misses;
  gh__sidcache_identity_fn *id_fn;
  gh__sidcache_gids_fn *gids_fn;
  slot_t slot[GH__SIDCACHE_SLOTS];
};

gh__sidcache_t *gh__sidcache_new(unsigned ttl_s)
{
  gh__sidcache_t *c = gh__calloc(1, sizeof(*c));

  if (!c)
    return NULL;
  pthread_mutex_init(&c->lock, NULL);
  c->ttl_s = ttl_s > 3600 ? 3600 : ttl_s;
  c->id_fn = gh__sid_identity;
  c->gids_fn = gh__sids_to_gids;
  if (RAND_bytes((unsigned char *)&c->seed, sizeof(c->seed)) != 1)
    c->ttl_s = 0; /* no unpredictable seed: no cache */
  return c;
}

void gh__sidcache_free(gh__sidcache_t *c)
{
  if (!c)
    return;
  for (unsigned i = 0; i < GH__SIDCACHE_SLOTS; i++) {
    free(c->slot[i].key);
    free(c->slot[i].val);
  }
  pthread_mutex_destroy(&c->lock);
  free(c);
}

void gh__sidcache_set_fns(gh__sidcache_t *c, gh__sidcache_identity_fn *id,
                          gh__sidcache_gids_fn *gids)
{
  c->id_fn = id;
  c->gids_fn = gids;
}

void gh__sidcache_set_now(gh__sidcache_t *c, time_t now)
{
  pthread_mutex_lock(&c->lock);
  c->fixed_now = now;
  pthread_mutex_unlock(&c->lock);
}

void gh__sidcache_stats(gh__sidcache_t *c, uint64_t *ret_hits, uint64_t *ret_misses)
{
  pthread_mutex_lock(&c->lock);
  *ret_hits = c->hits;
  *ret_misses = c->misses;
  pthread_mutex_unlock(&c->lock);
}

/* under lock */
static time_t now_s(const gh__sidcache_t *c)
{
  struct timespec ts;

  if (c->fixed_now)
    return c->fixed_now;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec;
}

static unsigned slot_of(const gh__sidcache_t *c, const char *key)
{
  uint64_t h = 1469598103934665603ull ^ c->seed; /* FNV-1a, seeded */

  for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
    h ^= *p;
    h *= 1099511628211ull;
  }
  h ^= h >> 29;
  return (unsigned)(h % GH__SIDCACHE_SLOTS);
}

/* A malloc'd copy of key's live value (*ret_len bytes), or NULL (miss). */
static void *get(gh__sidcache_t *c, const char *key, size_t *ret_len)
{
  void *v = NULL;

  pthread_mutex_lock(&c->lock);
  slot_t *s = &c->slot[slot_of(c, key)];
  if (s->key && now_s(c) < s->expiry && strcmp(s->key, key) == 0) {
    v = gh__malloc(s->len ? s->len : 1); /* NULL on ENOMEM: asked again, as on a miss */
    if (v) {
      memcpy(v, s->val, s->len);
      *ret_len = s->len;
    }
  }
  if (v)
    c->hits++;
  else
    c->misses++;
  pthread_mutex_unlock(&c->lock);
  return v;
}

static void put(gh__sidcache_t *c, const char *key, const void *val, size_t len)
{
  char *k = gh__strdup(key);
  void *v = gh__malloc(len ? len : 1);

  if (k && v) {
    memcpy(v, val, len);
    pthread_mutex_lock(&c->lock);
    slot_t *s = &c->slot[slot_of(c, key)];
    free(s->key);
    free(s->val);
    s->key = k;
    s->val = v;
    s->len = len;
    s->expiry = now_s(c) + (time_t)c->ttl_s;
    pthread_mutex_unlock(&c->lock);
    k = NULL;
    v = NULL;
  }
  free(k);
  free(v);
}

int gh__sidcache_identity(gh__sidcache_t *c, const char *sid, int fmt, char **ret_canonical,
                          char **ret_local)
{
  char key[GH__SID_STR_MAX + 32];
  char *canon = NULL, *local = NULL;
  size_t len = 0;
  int ret;

  if (!c || c->ttl_s == 0)
    return (c ? c->id_fn : gh__sid_identity)(sid, fmt, ret_canonical, ret_local);
  if ((size_t)snprintf(key, sizeof(key), "i%d:%s", fmt, sid) >= sizeof(key))
    return c->id_fn(sid, fmt, ret_canonical, ret_local);
  char *v = get(c, key, &len);
  if (v) {
    /* "canonical\0local\0", as put below */
    size_t cl = strnlen(v, len);
    if (cl < len) {
      canon = gh__strdup(v);
      local = gh__strdup(v + cl + 1);
    }
    free(v);
    if (canon && local) {
      *ret_canonical = canon;
      *ret_local = local;
      return 0;
    }
    free(canon);
    free(local);
    canon = local = NULL;
  }
  ret = c->id_fn(sid, fmt, &canon, &local);
  if (ret != 0)
    return ret;
  size_t cl = strlen(canon), ll = strlen(local);
  char *val = gh__malloc(cl + ll + 2);
  if (val) {
    memcpy(val, canon, cl + 1);
    memcpy(val + cl + 1, local, ll + 1);
    put(c, key, val, cl + ll + 2);
    free(val);
  }
  *ret_canonical = canon;
  *ret_local = local;
  return 0;
}

/* "g:" and the SIDs joined with ','; NULL when too long (not cached) or ENOMEM */
static char *gids_key(const gh__sids_t *sids)
{
  size_t n = 3;

  for (size_t i = 0; i < sids->n; i++) {
    n += strlen(sids->v[i]) + 1;
    if (n > GH__SIDCACHE_KEY_MAX)
      return NULL;
  }
  char *k = gh__malloc(n);
  if (!k)
    return NULL;
  char *p = k;
  *p++ = 'g';
  *p++ = ':';
  for (size_t i = 0; i < sids->n; i++) {
    size_t l = strlen(sids->v[i]);
    if (i)
      *p++ = ',';
    memcpy(p, sids->v[i], l);
    p += l;
  }
  *p = '\0';
  return k;
}

int gh__sidcache_gids(gh__sidcache_t *c, const gh__sids_t *sids, gid_t **ret_gids, size_t *ret_n)
{
  gid_t *gids = NULL;
  size_t n = 0, len = 0;
  char *key;
  int ret;

  if (!c || c->ttl_s == 0)
    return (c ? c->gids_fn : gh__sids_to_gids)(sids, ret_gids, ret_n);
  key = gids_key(sids);
  if (!key)
    return c->gids_fn(sids, ret_gids, ret_n);
  gids = get(c, key, &len);
  if (gids) {
    *ret_gids = gids;
    *ret_n = len / sizeof(gid_t);
    free(key);
    return 0;
  }
  ret = c->gids_fn(sids, &gids, &n);
  if (ret == 0) {
    put(c, key, gids, n * sizeof(gid_t));
    *ret_gids = gids;
    *ret_n = n;
  }
  free(key);
  return ret;
}

bool gh__sidcache_winbind_down(const char *sid)
{
  char *canon = NULL, *local = NULL;
  int ret = gh__sid_identity(sid, 0, &canon, &local);

  free(canon);
  free(local);
  return ret == -EAGAIN;
}
