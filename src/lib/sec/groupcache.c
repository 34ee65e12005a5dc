/* groupcache.c: NSS group lists by user, gids by group name and accounts by name, behind small TTL caches. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
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
  rc = gh__nss_grouplist(user, gid, GH__SEC_MAX_GROUPS_LIMIT * 2, &g, &n);
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

/* ---- gids by group name ------------------------------------------------
 * What a group rule needs: the token already carries its gids, so the only
 * NSS question is name -> gid, asked once per name per TTL instead of once
 * per request. "No such group" is an answer and is cached; an NSS error is
 * not an answer and is never cached. */
typedef struct gid_entry {
  char name[NAME_MAX_LEN]; /* "" = empty slot */
  bool found;
  gid_t gid;
  time_t fetched;
} gid_entry_t;

static gid_entry_t gid_cache[CACHE_BUCKETS];
static uint64_t gid_hits, gid_misses;

/* Cache lock held: a fresh entry for name, or NULL. */
static gid_entry_t *gid_fresh_locked(const char *name, time_t now, unsigned ttl)
{
  gid_entry_t *e = &gid_cache[bucket_of(name, 0)];
  if (e->name[0] == '\0' || strcmp(e->name, name) != 0 || now < e->fetched ||
      now - e->fetched >= (time_t)ttl)
    e = NULL;
  return e;
}

int gh__groupcache_gid(const char *name, gid_t *ret_gid)
{
  unsigned ttl = gh__sec.ttl_s;
  bool cacheable = ttl > 0 && strlen(name) < NAME_MAX_LEN;
  time_t now = gh__sec_now();
  gh__sec_saved_t saved;
  gid_entry_t *e;
  struct group gr;
  char *buf = NULL;
  gid_t gid = 0;
  int rc = 0;

  if (cacheable) {
    pthread_mutex_lock(&cache_lock);
    e = gid_fresh_locked(name, now, ttl);
    if (e != NULL) {
      gid_hits++;
      gid = e->gid;
      rc = e->found ? 0 : GH_ENOT_FOUND;
    }
    pthread_mutex_unlock(&cache_lock);
    if (e != NULL)
      goto out;
  }
  /* NSS runs at base identity (DESIGN.md §3): a handler that impersonates
   * gets the same answer as one that does not */
  if (gh__sec_thread_impersonating()) {
    rc = gh__sec_enter(NULL, &gh__sec.base, &saved);
    if (rc != 0)
      goto out;
    rc = gh__nss_lookup(GH__NSS_GRNAM, name, 0, &gr, &buf);
    gh__sec_leave(&saved);
  } else {
    rc = gh__nss_lookup(GH__NSS_GRNAM, name, 0, &gr, &buf);
  }
  if (rc == 0)
    gid = gr.gr_gid;
  pthread_mutex_lock(&cache_lock);
  gid_misses++;
  if (cacheable && (rc == 0 || rc == GH_ENOT_FOUND)) {
    e = &gid_cache[bucket_of(name, 0)];
    strcpy(e->name, name);
    e->found = rc == 0;
    e->gid = gid;
    e->fetched = now;
  }
  pthread_mutex_unlock(&cache_lock);
out:
  free(buf);
  if (rc == 0)
    *ret_gid = gid;
  return rc;
}

/* ---- accounts by name ----------------------------------------------------
 * Token creation asks NSS for the account on every request; for a domain
 * user that is a winbind round trip (~180 µs of winbindd CPU and the wait).
 * A found account is kept for the same TTL as its group list (which is
 * cached already): the token never outlives what NSS said TTL seconds ago. */
typedef struct acct_entry {
  char key[NAME_MAX_LEN]; /* the name asked for; "" = empty slot */
  gh__account_t acct;
  time_t fetched;
} acct_entry_t;

static acct_entry_t acct_cache[CACHE_BUCKETS];
static uint64_t acct_hits, acct_misses;

int gh__groupcache_account(const char *name, gh__account_t *ret_account)
{
  unsigned ttl = gh__sec.ttl_s;
  bool cacheable = ttl > 0 && strlen(name) < NAME_MAX_LEN;
  time_t now = gh__sec_now();
  acct_entry_t *e;
  gh__account_t a;
  struct passwd pw;
  char *buf = NULL;
  int rc;

  if (cacheable) {
    bool hit = false;
    pthread_mutex_lock(&cache_lock);
    e = &acct_cache[bucket_of(name, 1)];
    if (e->key[0] != '\0' && strcmp(e->key, name) == 0 && now >= e->fetched &&
        now - e->fetched < (time_t)ttl) {
      a = e->acct;
      hit = true;
      acct_hits++;
    }
    pthread_mutex_unlock(&cache_lock);
    if (hit) {
      rc = 0;
      goto out;
    }
  }
  rc = gh__nss_lookup(GH__NSS_PWNAM, name, 0, &pw, &buf);
  if (rc != 0)
    goto out;
  if (strlen(pw.pw_name) >= sizeof(a.name)) {
    rc = GH_ELIMIT;
    goto out;
  }
  memset(&a, 0, sizeof(a));
  strcpy(a.name, pw.pw_name);
  a.uid = pw.pw_uid;
  a.gid = pw.pw_gid;
  pthread_mutex_lock(&cache_lock);
  acct_misses++;
  if (cacheable) {
    e = &acct_cache[bucket_of(name, 1)];
    strcpy(e->key, name);
    e->acct = a;
    e->fetched = now;
  }
  pthread_mutex_unlock(&cache_lock);
out:
  free(buf);
  if (rc == 0)
    *ret_account = a;
  return rc;
}

void gh__groupcache_account_stats(uint64_t *ret_hits, uint64_t *ret_misses)
{
  pthread_mutex_lock(&cache_lock);
  *ret_hits = acct_hits;
  *ret_misses = acct_misses;
  pthread_mutex_unlock(&cache_lock);
}

void gh__groupcache_gid_stats(uint64_t *ret_hits, uint64_t *ret_misses)
{
  pthread_mutex_lock(&cache_lock);
  *ret_hits = gid_hits;
  *ret_misses = gid_misses;
  pthread_mutex_unlock(&cache_lock);
}

void gh__groupcache_flush(void)
{
  pthread_mutex_lock(&cache_lock);
  for (unsigned i = 0; i < CACHE_BUCKETS; i++)
    entry_clear(&cache[i]);
  memset(gid_cache, 0, sizeof(gid_cache));
  memset(acct_cache, 0, sizeof(acct_cache));
  pthread_mutex_unlock(&cache_lock);
}

void gh__groupcache_stats(uint64_t *ret_hits, uint64_t *ret_misses)
{
  pthread_mutex_lock(&cache_lock);
  *ret_hits = cache_hits;
  *ret_misses = cache_misses;
  pthread_mutex_unlock(&cache_lock);
}
