/* auth_sidcache.h: a short-lived cache of winbind's answers for AD SIDs (identity, gids). */
#ifndef GH_HTTPAPI_AUTH_SIDCACHE_H
#define GH_HTTPAPI_AUTH_SIDCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "httpapi/auth/auth_pac.h"

/* Slots of the direct-mapped cache; keys longer than the limit (a SID list
 * of more than ~200 groups) are never cached. */
#define GH__SIDCACHE_SLOTS 256
#define GH__SIDCACHE_KEY_MAX 16384

typedef struct gh__sidcache gh__sidcache_t;

/* The winbind look-ups the cache stands in front of (tests replace them). */
typedef int gh__sidcache_identity_fn(const char *sid, int fmt, char **ret_canonical,
                                     char **ret_local);
typedef int gh__sidcache_gids_fn(const gh__sids_t *sids, gid_t **ret_gids, size_t *ret_n);

/* ttl_s 0 = off (every call asks winbind), at most 3600. NULL on ENOMEM. */
gh__sidcache_t *gh__sidcache_new(unsigned ttl_s);
void gh__sidcache_free(gh__sidcache_t *c);
/* For tests: other look-ups and a fixed clock (now 0 = CLOCK_MONOTONIC). */
void gh__sidcache_set_fns(gh__sidcache_t *c, gh__sidcache_identity_fn *id,
                          gh__sidcache_gids_fn *gids);
void gh__sidcache_set_now(gh__sidcache_t *c, time_t now);
void gh__sidcache_stats(gh__sidcache_t *c, uint64_t *ret_hits, uint64_t *ret_misses);

/* gh__sid_identity and gh__sids_to_gids (same contracts) through the cache:
 * only successful answers are kept, for ttl_s seconds from the look-up;
 * errors (winbind down: -EAGAIN) are never cached. c may be NULL (no cache).
 * Any thread. */
int gh__sidcache_identity(gh__sidcache_t *c, const char *sid, int fmt, char **ret_canonical,
                          char **ret_local);
int gh__sidcache_gids(gh__sidcache_t *c, const gh__sids_t *sids, gid_t **ret_gids, size_t *ret_n);

/* Whether winbind does not answer now for sid (an uncached gh__sid_identity
 * gives -EAGAIN). For the failure path: an AD account that NSS does not find
 * after a cached identity is a winbind outage, not an unknown user. */
bool gh__sidcache_winbind_down(const char *sid);

#endif
