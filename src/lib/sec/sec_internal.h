/* sec_internal.h: shared internals of the sec layer (tokens, base identity, thread switching). */
#ifndef GH_SEC_INTERNAL_H
#define GH_SEC_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <gatehouse/impersonate.h>
#include <gatehouse/token.h>

#define GH__SEC_DEFAULT_MIN_UID 1000
#define GH__SEC_DEFAULT_TTL 60
#define GH__SEC_DEFAULT_MAX_GROUPS 1024
#define GH__SEC_MAX_GROUPS_LIMIT 65536
#define GH__SEC_OVERFLOW_ID 65534

/* A set of ids a thread can be switched to. groups excludes nothing; it is
 * exactly what setgroups() receives. */
typedef struct gh__ids {
  uid_t uid;
  gid_t gid;
  const gid_t *groups;
  uint32_t ngroups;
} gh__ids_t;

/* A delegated GSS credential shared by a token and its DELEGATE duplicates. */
typedef struct gh__cred {
  atomic_uint refs;
  gss_cred_id_t cred;
} gh__cred_t;

/* An immutable token. Allocated in one block with its strings and groups. */
typedef struct gh__token {
  atomic_uint refs;
  uint64_t id;
  gh_token_type_t type;
  gh_token_level_t level;
  gh_token_source_t source;
  time_t created;
  time_t expiry;
  const char *user;
  const char *auth_name;
  uid_t uid;
  gid_t gid;
  const gid_t *groups; /* sorted, deduplicated, primary gid included */
  uint32_t ngroups;
  gh__cred_t *cred;    /* NULL unless level DELEGATE */
  const char *const *sids; /* user SID first; NULL when nsids == 0 */
  uint32_t nsids;
  gh__ids_t imp;       /* what gh_impersonate applies (anonymous ids below IMPERSONATE) */
  gh__ids_t own;       /* the client's own ids, for access checks */
  /* One allocation the layer above attaches (the pipeline's view of the
   * token: its ids as text, made once for every request that carries the
   * token): published once with a compare-and-swap, read-only after,
   * freed with the token. */
  _Atomic(void *) ext;
  /* gh__token_group_names: made by the first caller, published the same
   * way, freed with the token */
  _Atomic(char *) group_names;
} gh__token_t;

/* Process-wide state, written by gh_sec_init before other threads exist. */
typedef struct gh__sec_state {
  bool initialised;
  uid_t min_uid;
  unsigned ttl_s;
  unsigned max_groups;
  gh_peer_groups_t peer_groups;
  uid_t service_uid;
  gh__ids_t base;      /* base identity; base.groups owned here */
  char anon_user[64];
  uid_t anon_uid;
  gid_t anon_gid;
} gh__sec_state_t;

extern gh__sec_state_t gh__sec;

/* sec.c */
time_t gh__sec_now(void);
/* Tests only: replace the clock (NULL = CLOCK_REALTIME). */
void gh__sec_set_clock(time_t (*fn)(void));
/* Tests only: apply cfg again (no token may be impersonated by any thread). */
int gh__sec_reconfigure(const gh_sec_config_t *cfg);
/* Whether uid may appear in a token. */
bool gh__sec_uid_allowed(uid_t uid);
/* Sort ascending and remove duplicates in place; returns the new count. */
size_t gh__sec_sort_groups(gid_t *g, size_t n);
/* Capability helpers (raw capget/capset, no libcap). */
int gh__caps_get(uint64_t *ret_eff, uint64_t *ret_prm, uint64_t *ret_inh);
int gh__caps_set(uint64_t eff, uint64_t prm, uint64_t inh);

/* token.c */
/* Resolve a handle and take a reference (GH_EINVALID_HANDLE if stale). */
int gh__token_get(gh_token_t h, gh__token_t **ret_tok);
/** groupnames.c: the names of t's groups (t->groups order, ','-joined),
 *  made once per token from the group database and kept by it: bytes
 *  below 0x20, from 0x7f on, ',' and '%' percent-encoded; a gid with no
 *  entry, or an empty name or one over 255 bytes, as its number. 0 and
 *  *ret_names (owned by t), or the lookup's error (GH_ELIMIT, -EIO...:
 *  nothing kept, the next call asks again), -ENOMEM. Any thread. */
int gh__token_group_names(gh__token_t *t, const char **ret_names);
/* gh__token_get for a use of the token's identity: GH_ESTATE before
 * gh_sec_init, GH_ETOKEN_EXPIRED past its expiry. */
int gh__token_get_live(gh_token_t h, gh__token_t **ret_tok);
void gh__token_ref(gh__token_t *t);
void gh__token_unref(gh__token_t *t);
/* A new owned handle for t; takes a reference of its own. */
int gh__token_new_handle(gh__token_t *t, gh_token_t *ret_h);
/* Number of open handles (tests). */
size_t gh__token_handles_open(void);

#include "sec/nss.h"
/* Tests only: cap group entries at max bytes instead of 32 MiB (0 = back
 * to the default). */
void gh__nss_set_buf_max(size_t max);
/* getgrouplist of user with primary gid, sorted and deduplicated, growing
 * up to limit entries (GH_ELIMIT past it); *ret_groups gh__malloc'ed. */
int gh__nss_grouplist(const char *user, gid_t gid, size_t limit, gid_t **ret_groups, size_t *ret_n);

/* groupcache.c: group list of user (primary gid included), sorted,
 * deduplicated; *ret_groups is gh__malloc'ed, caller frees. */
int gh__groupcache_get(const char *user, gid_t gid, gid_t **ret_groups, size_t *ret_n);
/* The gid of the group called name: 0, GH_ENOT_FOUND (NSS has no such
 * group: cached like an answer), or the error that kept NSS from answering
 * (never cached). Served from a cache for group_cache_ttl_s; a miss asks
 * NSS at base identity (a thread that impersonates switches to base for
 * the call and back). Any thread. */
int gh__groupcache_gid(const char *name, gid_t *ret_gid);
/* An account by name (getpwnam_r): its NSS name, uid and primary gid. Only
 * found accounts are cached, for group_cache_ttl_s (0: never); "no such
 * user" and NSS errors are asked again each time. Base identity (token
 * creation). Any thread. 0, GH_ENOT_FOUND-style errors of gh__nss_lookup. */
typedef struct gh__account {
  char name[256];
  uid_t uid;
  gid_t gid;
} gh__account_t;
int gh__groupcache_account(const char *name, gh__account_t *ret_account);
void gh__groupcache_account_stats(uint64_t *ret_hits, uint64_t *ret_misses);
void gh__groupcache_flush(void);
/* Cache statistics for tests: lookups served from cache / from NSS (group
 * lists, and gids by name). */
void gh__groupcache_stats(uint64_t *ret_hits, uint64_t *ret_misses);
void gh__groupcache_gid_stats(uint64_t *ret_hits, uint64_t *ret_misses);

/* impersonate.c */
/* Switch the calling thread to ids for one access check and back.
 * gh__sec_enter returns 0 or an error with the identity unchanged;
 * gh__sec_leave restores the previous identity or aborts. */
typedef struct gh__sec_saved {
  gh__ids_t prev;
  gh__token_t *hold;
} gh__sec_saved_t;
/* t (kept referenced until leave) may be NULL for ids that need no token
 * kept alive, such as &gh__sec.base. */
int gh__sec_enter(gh__token_t *t, const gh__ids_t *ids, gh__sec_saved_t *saved);
void gh__sec_leave(gh__sec_saved_t *saved);
/* Whether the calling thread is impersonating (no kernel check). */
bool gh__sec_thread_impersonating(void);
/* Map a setres*id/setgroups errno to a gatehouse code. */
int gh__sec_map_errno(int err);

/* scoped.c, for tests: force the switch path of gh_token_openat2 (true) or
 * allow io_uring again (false); whether this thread's ring is in use. */
void gh__sec_scoped_force_switch(bool on);
bool gh__sec_scoped_ring_active(void);

#endif
