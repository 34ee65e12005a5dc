/* groupcache.c: NSS group-list lookups (getgrouplist) behind a small direct-mapped cache with a TTL. */
#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sec/sec_internal.h"
#include "util/alloc.h"

#define CACHE_BUCKETS 256
#define NAME_MAX_LEN 256

typedef struct cache_entry {
  char *name;
  gid_t gid;
  gid_t *groups;
  size_t n;
  time_t fetched;
} cache_entry_t;

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
/* getgrouplist is serialised: NSS modules that enumerate the group database
 * with shared setgrent/getgrent state (nss_wrapper, some directory modules)
 * return short lists when two threads ask at once — the identity soak saw
 * alice's token without ghusers when the cache expired under 8 workers.
 * A missing group can raise access (a 0604 file denies its group class), so
 * a short list is an identity error, not a cosmetic one. Misses are rare
 * (once per user per TTL), so one lock costs nothing measurable. */
static pthread_mutex_t nss_lock = PTHREAD_MUTEX_INITIALIZER;
static cache_entry_t cache[CACHE_BUCKETS];
static uint64_t cache_hits, cache_misses;

static unsigned bucket_of(const char *name, gid_t gid)
{
  uint32_t h = 2166136261u;
  for (const unsigned char *p = (const unsigned char *)name; *p; p++)
    h = (h ^ *p) * 16777619u;
  h ^= gid;
  return h % CACHE_BUCKETS;
}

static void entry_clear(cache_entry_t *e)
{
  free(e->name);
  free(e->groups);
  memset(e, 0, sizeof(*e));
}

static gid_t *dup_groups(const gid_t *g, size_t n)
{
  gid_t *copy = gh__malloc((n ? n : 1) * sizeof(gid_t));
  if (copy != NULL && n > 0)
    memcpy(copy, g, n * sizeof(gid_t));
  return copy;
}

/* Ask NSS; result sorted and deduplicated. */
static int fetch_groups(const char *user, gid_t gid, gid_t **ret_groups, size_t *ret_n)
{
  int cap = 64, n;
  gid_t *g = NULL;
  int rc = 0;

  for (;;) {
    free(g);
    g = gh__malloc((size_t)cap * sizeof(gid_t));
    if (g == NULL) {
      rc = -ENOMEM;
      goto out;
    }
    n = cap;
    pthread_mutex_lock(&nss_lock);
    int got = getgrouplist(user, gid, g, &n);
    pthread_mutex_unlock(&nss_lock);
    if (got >= 0)
      break;
    if (n <= cap) /* no growth requested: give up rather than loop */
      n = cap * 2;
    if (n > GH__SEC_MAX_GROUPS_LIMIT * 2) {
      rc = GH_ELIMIT;
      goto out;
    }
    cap = n;
  }
  *ret_n = gh__sec_sort_groups(g, (size_t)n);
  *ret_groups = g;
  g = NULL;
out:
  free(g);
  return rc;
}

int gh__groupcache_get(const char *user, gid_t gid, gid_t **ret_groups, size_t *ret_n)
{
  unsigned ttl = gh__sec.ttl_s;
  time_t now = gh__sec_now();
  cache_entry_t *e;
  gid_t *g = NULL, *copy = NULL;
  char *name = NULL;
  size_t n = 0;
  int rc = 0;

  if (strlen(user) >= NAME_MAX_LEN) {
    rc = -EINVAL;
    goto out;
  }
  if (ttl > 0) {
    pthread_mutex_lock(&cache_lock);
    e = &cache[bucket_of(user, gid)];
    if (e->name != NULL && e->gid == gid && strcmp(e->name, user) == 0 &&
        now >= e->fetched && now - e->fetched < (time_t)ttl) {
      g = dup_groups(e->groups, e->n);
      n = e->n;
      cache_hits++;
    }
    pthread_mutex_unlock(&cache_lock);
    if (n > 0 || g != NULL) {
      if (g == NULL)
        rc = -ENOMEM;
      goto out;
    }
  }
  rc = fetch_groups(user, gid, &g, &n);
  if (rc != 0)
    goto out;
  if (ttl > 0) {
    copy = dup_groups(g, n);
    name = gh__strdup(user);
    pthread_mutex_lock(&cache_lock);
    cache_misses++;
    if (copy != NULL && name != NULL) {
      e = &cache[bucket_of(user, gid)];
      entry_clear(e);
      e->name = name;
      e->gid = gid;
      e->groups = copy;
      e->n = n;
      e->fetched = now;
      name = NULL;
      copy = NULL;
    }
    pthread_mutex_unlock(&cache_lock);
  } else {
    pthread_mutex_lock(&cache_lock);
    cache_misses++;
    pthread_mutex_unlock(&cache_lock);
  }
out:
  free(copy);
  free(name);
  if (rc == 0) {
    *ret_groups = g;
    *ret_n = n;
  } else {
    free(g);
  }
  return rc;
}

void gh__groupcache_flush(void)
{
  pthread_mutex_lock(&cache_lock);
  for (unsigned i = 0; i < CACHE_BUCKETS; i++)
    entry_clear(&cache[i]);
  pthread_mutex_unlock(&cache_lock);
}

void gh__groupcache_stats(uint64_t *ret_hits, uint64_t *ret_misses)
{
  pthread_mutex_lock(&cache_lock);
  *ret_hits = cache_hits;
  *ret_misses = cache_misses;
  pthread_mutex_unlock(&cache_lock);
}
