/* token.c: immutable refcounted tokens, the slot+generation handle table, constructors and queries.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sec/sec_internal.h"
#include "util/alloc.h"

/* ---- handle table --------------------------------------------------------
 * A handle is (generation << 32) | (borrowed << 31) | slot. Slots live in
 * fixed chunks that never move; one mutex guards the table (critical
 * sections are a few loads and stores). Closing a slot bumps its generation,
 * which invalidates the owned handle and every borrowed copy at once. Freed
 * slots are reused first-in first-out so that a generation comes back as
 * late as possible.
 */
#define CHUNK_SLOTS 1024u
#define MAX_CHUNKS 1024u
#define BORROWED_BIT (1ull << 31)
#define SLOT_MASK (BORROWED_BIT - 1)

typedef struct slot {
  uint32_t gen;
  uint32_t next_free; /* index + 1 of the next free slot, 0 = none */
  gh__token_t *tok;   /* NULL when free */
} slot_t;

/* adaptive: held for a few instructions by every worker several times a
 * request; a sleeping waiter (futex) cost more than the wait */
static pthread_mutex_t table_lock = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP;
static slot_t *chunks[MAX_CHUNKS];
static uint32_t nslots;
static uint32_t free_head, free_tail; /* index + 1, 0 = empty */
static size_t nopen;
static atomic_uint_fast64_t next_token_id = 1;

static slot_t *slot_at(uint32_t idx)
{
  return &chunks[idx / CHUNK_SLOTS][idx % CHUNK_SLOTS];
}

/* Table lock held: the live slot a handle names, or NULL. */
static slot_t *slot_lookup(gh_token_t h)
{
  uint32_t idx = (uint32_t)(h & SLOT_MASK);
  uint32_t gen = (uint32_t)(h >> 32);
  slot_t *s = NULL;

  if (gen != 0 && idx < nslots) {
    s = slot_at(idx);
    if (s->gen != gen || s->tok == NULL)
      s = NULL;
  }
  return s;
}

/* Table lock held: a new owned handle to t (one more reference). */
static int new_handle_locked(gh__token_t *t, gh_token_t *ret_h)
{
  uint32_t idx = 0;
  slot_t *s;
  int rc = 0;

  if (free_head != 0) {
    idx = free_head - 1;
    s = slot_at(idx);
    free_head = s->next_free;
    if (free_head == 0)
      free_tail = 0;
  } else if (nslots < CHUNK_SLOTS * MAX_CHUNKS) {
    idx = nslots;
    if (chunks[idx / CHUNK_SLOTS] == NULL) {
      chunks[idx / CHUNK_SLOTS] = gh__calloc(CHUNK_SLOTS, sizeof(slot_t));
      if (chunks[idx / CHUNK_SLOTS] == NULL) {
        rc = -ENOMEM;
        goto out;
      }
    }
    nslots++;
    s = slot_at(idx);
    s->gen = 1;
  } else {
    rc = GH_ELIMIT;
    goto out;
  }
  s->next_free = 0;
  gh__token_ref(t);
  s->tok = t;
  nopen++;
  *ret_h = ((uint64_t)s->gen << 32) | idx;
out:
  return rc;
}

int gh__token_new_handle(gh__token_t *t, gh_token_t *ret_h)
{
  int rc;

  pthread_mutex_lock(&table_lock);
  rc = new_handle_locked(t, ret_h);
  pthread_mutex_unlock(&table_lock);
  return rc;
}

int gh__token_get(gh_token_t h, gh__token_t **ret_tok)
{
  slot_t *s;
  int rc = 0;

  pthread_mutex_lock(&table_lock);
  s = slot_lookup(h);
  if (s == NULL) {
    rc = GH_EINVALID_HANDLE;
  } else {
    gh__token_ref(s->tok);
    *ret_tok = s->tok;
  }
  pthread_mutex_unlock(&table_lock);
  return rc;
}

int gh__token_get_live(gh_token_t h, gh__token_t **ret_tok)
{
  gh__token_t *t = NULL;
  int rc;

  if (!gh__sec.initialised) {
    rc = GH_ESTATE;
    goto out;
  }
  rc = gh__token_get(h, &t);
  if (rc != 0)
    goto out;
  if (t->expiry != 0 && gh__sec_now() >= t->expiry) {
    rc = GH_ETOKEN_EXPIRED;
    goto out;
  }
  *ret_tok = t;
  t = NULL;
out:
  gh__token_unref(t);
  return rc;
}

size_t gh__token_handles_open(void)
{
  size_t n;
  pthread_mutex_lock(&table_lock);
  n = nopen;
  pthread_mutex_unlock(&table_lock);
  return n;
}

int gh_token_close(gh_token_t h)
{
  gh__token_t *t = NULL;
  slot_t *s;
  int rc = 0;

  pthread_mutex_lock(&table_lock);
  s = slot_lookup(h);
  if (s == NULL) {
    rc = GH_EINVALID_HANDLE;
  } else if (h & BORROWED_BIT) {
    rc = GH_EBORROWED;
  } else {
    uint32_t idx = (uint32_t)(h & SLOT_MASK);
    t = s->tok;
    s->tok = NULL;
    s->gen = s->gen + 1 == 0 ? 1 : s->gen + 1;
    s->next_free = 0;
    if (free_tail != 0)
      slot_at(free_tail - 1)->next_free = idx + 1;
    else
      free_head = idx + 1;
    free_tail = idx + 1;
    nopen--;
  }
  pthread_mutex_unlock(&table_lock);
  gh__token_unref(t);
  return rc;
}

int gh_token_open_handle(gh_token_t h, gh_token_t *ret_token)
{
  slot_t *s;
  int rc;

  if (ret_token == NULL) {
    rc = -EINVAL;
    goto out;
  }
  /* one pass under the lock (a persisted connection opens one per request) */
  pthread_mutex_lock(&table_lock);
  s = slot_lookup(h);
  rc = s != NULL ? new_handle_locked(s->tok, ret_token) : GH_EINVALID_HANDLE;
  pthread_mutex_unlock(&table_lock);
out:
  return rc;
}

int gh_token_borrow(gh_token_t h, gh_token_t *ret_token)
{
  int rc = 0;

  if (ret_token == NULL) {
    rc = -EINVAL;
    goto out;
  }
  pthread_mutex_lock(&table_lock);
  if (slot_lookup(h) == NULL)
    rc = GH_EINVALID_HANDLE;
  pthread_mutex_unlock(&table_lock);
  if (rc == 0)
    *ret_token = h | BORROWED_BIT;
out:
  return rc;
}

bool gh_token_is_borrowed(gh_token_t h)
{
  return (h & BORROWED_BIT) != 0;
}

/* ---- token objects ---------------------------------------------------- */

static void cred_unref(gh__cred_t *c)
{
  OM_uint32 minor;
  if (c != NULL && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1) {
    if (c->cred != GSS_C_NO_CREDENTIAL)
      gss_release_cred(&minor, &c->cred);
    free(c);
  }
}

void gh__token_ref(gh__token_t *t)
{
  atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
}

void gh__token_unref(gh__token_t *t)
{
  if (t != NULL && atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1) {
    cred_unref(t->cred);
    free(atomic_load_explicit(&t->ext, memory_order_acquire));
    free(atomic_load_explicit(&t->group_names, memory_order_acquire));
    free(t);
  }
}

/* Fill ids from a group list, leaving out the primary gid (the egid already
 * grants it, so setgroups gets a shorter list, often an empty one). */
static uint32_t ids_without_primary(gid_t *dst, const gid_t *groups, uint32_t n, gid_t gid)
{
  uint32_t out = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (groups[i] != gid)
      dst[out++] = groups[i];
  }
  return out;
}

typedef struct token_spec {
  const char *user;
  const char *auth_name;
  uid_t uid;
  gid_t gid;
  const gid_t *groups; /* sorted, deduplicated */
  size_t ngroups;
  gh_token_type_t type;
  gh_token_level_t level;
  gh_token_source_t source;
  time_t created;
  time_t expiry;
  gh__cred_t *cred; /* a reference the token takes on success */
  const char *const *sids;
  size_t nsids;
} token_spec_t;

/* One allocation: struct, groups, setgroups list, own list, SID pointers,
 * user, auth name, SID strings. */
static int token_build(const token_spec_t *sp, gh__token_t **ret_tok)
{
  size_t n = sp->ngroups, ulen, alen, size, slen = 0;
  bool has_primary = false;
  const char *auth = sp->auth_name ? sp->auth_name : sp->user;
  gh__token_t *t = NULL;
  gid_t *g, *imp, *own;
  char *p;
  int rc = 0;

  if (!gh__sec_uid_allowed(sp->uid)) {
    rc = GH_EUID_REFUSED;
    goto out;
  }
  for (size_t i = 0; i < n; i++)
    has_primary |= sp->groups[i] == sp->gid;
  if (n + (has_primary ? 0 : 1) > gh__sec.max_groups) {
    rc = GH_ELIMIT;
    goto out;
  }
  ulen = strlen(sp->user) + 1;
  alen = strlen(auth) + 1;
  for (size_t i = 0; i < sp->nsids; i++)
    slen += strlen(sp->sids[i]) + 1;
  size = sizeof(*t) + sp->nsids * sizeof(char *) + 3 * (n + 1) * sizeof(gid_t) + ulen + alen + slen;
  t = gh__calloc(1, size);
  if (t == NULL) {
    rc = -ENOMEM;
    goto out;
  }
  {
    const char **sv = (const char **)(t + 1);
    g = (gid_t *)(sv + sp->nsids);
    imp = g + n + 1;
    own = imp + n + 1;
    p = (char *)(own + n + 1);
    char *sp_str = p + ulen + alen;
    for (size_t i = 0; i < sp->nsids; i++) {
      size_t l = strlen(sp->sids[i]) + 1;
      memcpy(sp_str, sp->sids[i], l);
      sv[i] = sp_str;
      sp_str += l;
    }
    t->sids = sp->nsids ? sv : NULL;
    t->nsids = (uint32_t)sp->nsids;
  }
  /* merge the primary gid into the sorted list */
  {
    size_t j = 0;
    bool placed = has_primary;
    for (size_t i = 0; i < n; i++) {
      if (!placed && sp->gid < sp->groups[i]) {
        g[j++] = sp->gid;
        placed = true;
      }
      g[j++] = sp->groups[i];
    }
    if (!placed)
      g[j++] = sp->gid;
    t->ngroups = (uint32_t)j;
  }
  atomic_init(&t->refs, 1);
  t->id = atomic_fetch_add_explicit(&next_token_id, 1, memory_order_relaxed);
  t->type = sp->type;
  t->level = sp->level;
  t->source = sp->source;
  t->created = sp->created;
  t->expiry = sp->expiry;
  t->uid = sp->uid;
  t->gid = sp->gid;
  t->groups = g;
  memcpy(p, sp->user, ulen);
  t->user = p;
  memcpy(p + ulen, auth, alen);
  t->auth_name = p + ulen;
  t->cred = sp->cred;
  /* what the thread runs as: the client from IMPERSONATE up, else anonymous */
  t->own.uid = sp->uid;
  t->own.gid = sp->gid;
  t->own.groups = own;
  t->own.ngroups = ids_without_primary(own, g, t->ngroups, sp->gid);
  if (sp->level >= GH_LEVEL_IMPERSONATE) {
    t->imp.uid = sp->uid;
    t->imp.gid = sp->gid;
    t->imp.groups = imp;
    t->imp.ngroups = ids_without_primary(imp, g, t->ngroups, sp->gid);
  } else {
    t->imp.uid = gh__sec.anon_uid;
    t->imp.gid = gh__sec.anon_gid;
    t->imp.groups = imp;
    t->imp.ngroups = 0;
  }
  *ret_tok = t;
  t = NULL;
out:
  free(t);
  return rc;
}

/* Build a token and return an owned handle to it. On failure the spec's
 * cred reference is left to the caller. */
static int token_publish(const token_spec_t *sp, gh_token_t *ret_token)
{
  gh__token_t *t = NULL;
  int rc;

  rc = token_build(sp, &t);
  if (rc != 0)
    goto out;
  rc = gh__token_new_handle(t, ret_token);
  if (rc != 0)
    t->cred = NULL; /* not taken */
out:
  gh__token_unref(t);
  return rc;
}

static bool level_valid(gh_token_level_t l)
{
  return l >= GH_LEVEL_ANONYMOUS && l <= GH_LEVEL_DELEGATE;
}

static bool source_valid(gh_token_source_t s)
{
  return s >= GH_SOURCE_ANONYMOUS && s <= GH_SOURCE_LOCAL;
}

/* S-1-<authority>-<sub>… with 1 to 15 sub-authorities: digits and dashes */
static bool sid_valid(const char *s)
{
  size_t n = s ? strnlen(s, GH_TOKEN_SID_MAX) : GH_TOKEN_SID_MAX;
  unsigned dashes = 0;
  if (n < 6 || n >= GH_TOKEN_SID_MAX || strncmp(s, "S-1-", 4) != 0)
    return false;
  for (size_t i = 4; i < n; i++) {
    if (s[i] == '-') {
      if (s[i - 1] == '-' || i + 1 == n)
        return false;
      dashes++;
    } else if (s[i] < '0' || s[i] > '9') {
      return false;
    }
  }
  return dashes >= 1 && dashes <= 15;
}

static bool sids_valid(const char *const *sids, size_t n)
{
  if (n > GH_TOKEN_MAX_SIDS || (n > 0 && sids == NULL))
    return false;
  for (size_t i = 0; i < n; i++)
    if (!sid_valid(sids[i]))
      return false;
  return true;
}

static void anonymous_spec(token_spec_t *sp, gid_t *one_group)
{
  one_group[0] = gh__sec.anon_gid;
  sp->user = gh__sec.anon_user;
  sp->auth_name = NULL;
  sp->uid = gh__sec.anon_uid;
  sp->gid = gh__sec.anon_gid;
  sp->groups = one_group;
  sp->ngroups = 1;
  sp->cred = NULL;
  sp->sids = NULL;
  sp->nsids = 0;
}

int gh_token_anonymous(gh_token_t *ret_token)
{
  token_spec_t sp = {0};
  gid_t one;
  int rc;

  if (!gh__sec.initialised) {
    rc = GH_ESTATE;
    goto out;
  }
  if (ret_token == NULL) {
    rc = -EINVAL;
    goto out;
  }
  anonymous_spec(&sp, &one);
  sp.type = GH_TOKEN_IMPERSONATION;
  sp.level = GH_LEVEL_ANONYMOUS;
  sp.source = GH_SOURCE_ANONYMOUS;
  sp.created = gh__sec_now();
  rc = token_publish(&sp, ret_token);
out:
  return rc;
}

int gh_token_from_user(const char *user, const gh_token_opts_t *opts, gh_token_t *ret_token)
{
  gh_token_opts_t def = {.level = GH_LEVEL_IMPERSONATE,
                         .source = GH_SOURCE_LOCAL,
                         .auth_name = NULL,
                         .expiry = 0,
                         .delegated_cred = GSS_C_NO_CREDENTIAL};
  token_spec_t sp = {0};
  gh__account_t pw;
  gid_t *groups = NULL;
  size_t n = 0;
  gh__cred_t *cred = NULL;
  gid_t one;
  int rc;

  if (!gh__sec.initialised || gh__sec_thread_impersonating()) {
    rc = GH_ESTATE;
    goto out;
  }
  if (opts == NULL)
    opts = &def;
  if (user == NULL || *user == '\0' || ret_token == NULL || !level_valid(opts->level) ||
      !source_valid(opts->source) || !sids_valid(opts->sids, opts->nsids) ||
      (opts->groups == NULL && opts->ngroups != 0)) {
    rc = -EINVAL;
    goto out;
  }
  rc = gh__groupcache_account(user, &pw); /* NSS, cached for group_cache_ttl */
  if (rc != 0)
    goto out;
  if (!gh__sec_uid_allowed(pw.uid)) {
    rc = GH_EUID_REFUSED;
    goto out;
  }
  if (opts->level == GH_LEVEL_ANONYMOUS) {
    anonymous_spec(&sp, &one);
    sp.auth_name = opts->auth_name;
  } else {
    if (opts->groups != NULL) {
      /* given (PAC SIDs mapped by winbind): no NSS group enumeration */
      if (opts->ngroups > gh__sec.max_groups) {
        rc = GH_ELIMIT;
        goto out;
      }
      groups = gh__malloc((opts->ngroups ? opts->ngroups : 1) * sizeof(gid_t));
      if (groups == NULL) {
        rc = -ENOMEM;
        goto out;
      }
      memcpy(groups, opts->groups, opts->ngroups * sizeof(gid_t));
      n = gh__sec_sort_groups(groups, opts->ngroups);
    } else {
      rc = gh__groupcache_get(pw.name, pw.gid, &groups, &n);
      if (rc != 0)
        goto out;
    }
    sp.user = pw.name;
    sp.auth_name = opts->auth_name;
    sp.uid = pw.uid;
    sp.gid = pw.gid;
    sp.groups = groups;
    sp.ngroups = n;
    sp.sids = opts->sids;
    sp.nsids = opts->nsids;
  }
  if (opts->level == GH_LEVEL_DELEGATE && opts->delegated_cred != GSS_C_NO_CREDENTIAL) {
    cred = gh__malloc(sizeof(*cred));
    if (cred == NULL) {
      rc = -ENOMEM;
      goto out;
    }
    atomic_init(&cred->refs, 1);
    cred->cred = opts->delegated_cred;
    sp.cred = cred;
  }
  sp.type = GH_TOKEN_IMPERSONATION;
  sp.level = opts->level;
  sp.source = opts->source;
  sp.created = gh__sec_now();
  sp.expiry = opts->expiry;
  rc = token_publish(&sp, ret_token);
  if (rc != 0)
    goto out;
  cred = NULL; /* taken */
  if (opts->level != GH_LEVEL_DELEGATE && opts->delegated_cred != GSS_C_NO_CREDENTIAL) {
    OM_uint32 minor;
    gss_cred_id_t c = opts->delegated_cred;
    gss_release_cred(&minor, &c);
  }
out:
  free(cred); /* wrapper only: the credential stays the caller's on failure */
  free(groups);
  return rc;
}

/* The peer's supplementary groups as the kernel holds them (SO_PEERGROUPS:
 * the ids of the process at connect()), sorted and deduplicated. */
static int peer_kernel_groups(int fd, gid_t **ret_groups, size_t *ret_n)
{
  socklen_t len = 64 * sizeof(gid_t);
  gid_t *groups = NULL;
  int rc = 0;

  for (;;) {
    socklen_t want = len;
    free(groups);
    groups = gh__malloc(len ? len : sizeof(gid_t));
    if (groups == NULL) {
      rc = -ENOMEM;
      goto out;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0)
      break;
    if (errno != ERANGE || len <= want) {
      rc = -errno;
      goto out;
    }
  }
  *ret_n = gh__sec_sort_groups(groups, len / sizeof(gid_t));
  *ret_groups = groups;
  groups = NULL;
out:
  free(groups);
  return rc;
}

int gh_token_from_peer(int fd, gh_token_t *ret_token)
{
  token_spec_t sp = {0};
  struct ucred uc;
  socklen_t len = sizeof(uc);
  gid_t *groups = NULL;
  size_t n = 0;
  struct passwd pw;
  char *pwbuf = NULL;
  char uidname[16];
  int rc = 0;

  if (!gh__sec.initialised) {
    rc = GH_ESTATE;
    goto out;
  }
  if (ret_token == NULL) {
    rc = -EINVAL;
    goto out;
  }
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) != 0) {
    rc = -errno;
    goto out;
  }
  if (!gh__sec_uid_allowed(uc.uid)) {
    rc = GH_EUID_REFUSED;
    goto out;
  }
  if (gh__sec.peer_groups == GH_PEER_GROUPS_NSS) {
    /* the account's NSS view, as for Basic and Negotiate: primary gid and
     * groups from NSS; a uid NSS does not know has no NSS groups to give */
    if (gh__sec_thread_impersonating()) {
      rc = GH_ESTATE;
      goto out;
    }
    rc = gh__nss_lookup(GH__NSS_PWUID, NULL, uc.uid, &pw, &pwbuf);
    if (rc == 0)
      rc = gh__groupcache_get(pw.pw_name, pw.pw_gid, &groups, &n);
    if (rc != 0)
      goto out;
    sp.user = pw.pw_name;
    sp.gid = pw.pw_gid;
  } else {
    rc = peer_kernel_groups(fd, &groups, &n);
    if (rc != 0)
      goto out;
    /* the decimal name only for a uid NSS does not know (or while
     * impersonating, when NSS must not run): an ENOMEM or NSS error must not
     * turn "carol" into "20003", which would slip past deny:user:carol */
    if (!gh__sec_thread_impersonating() &&
        (rc = gh__nss_lookup(GH__NSS_PWUID, NULL, uc.uid, &pw, &pwbuf)) == 0) {
      sp.user = pw.pw_name;
    } else if (rc == 0 || rc == GH_ENO_SUCH_USER) {
      rc = 0;
      snprintf(uidname, sizeof(uidname), "%u", (unsigned)uc.uid);
      sp.user = uidname;
    } else {
      goto out;
    }
    sp.gid = uc.gid;
  }
  sp.uid = uc.uid;
  sp.groups = groups;
  sp.ngroups = n;
  sp.type = GH_TOKEN_IMPERSONATION;
  sp.level = GH_LEVEL_IMPERSONATE;
  sp.source = GH_SOURCE_PEER;
  sp.created = gh__sec_now();
  rc = token_publish(&sp, ret_token);
out:
  free(groups);
  free(pwbuf);
  return rc;
}

int gh_token_duplicate(gh_token_t h, gh_token_level_t level, gh_token_type_t type,
                       gh_token_t *ret_token)
{
  gh__token_t *t = NULL;
  token_spec_t sp = {0};
  gid_t one;
  int rc;

  if (ret_token == NULL || !level_valid(level) ||
      (type != GH_TOKEN_PRIMARY && type != GH_TOKEN_IMPERSONATION)) {
    rc = -EINVAL;
    goto out;
  }
  rc = gh__token_get(h, &t);
  if (rc != 0)
    goto out;
  if (level > t->level || (type == GH_TOKEN_PRIMARY && level < GH_LEVEL_IMPERSONATE)) {
    rc = GH_EBAD_IMPERSONATION_LEVEL;
    goto out;
  }
  if (level == GH_LEVEL_ANONYMOUS) {
    anonymous_spec(&sp, &one);
  } else {
    sp.user = t->user;
    sp.auth_name = t->auth_name;
    sp.uid = t->uid;
    sp.gid = t->gid;
    sp.groups = t->groups;
    sp.ngroups = t->ngroups;
    sp.sids = t->sids;
    sp.nsids = t->nsids;
    if (level == GH_LEVEL_DELEGATE && t->cred != NULL) {
      atomic_fetch_add_explicit(&t->cred->refs, 1, memory_order_relaxed);
      sp.cred = t->cred;
    }
  }
  sp.type = type;
  sp.level = level;
  sp.source = t->source;
  sp.created = t->created;
  sp.expiry = t->expiry;
  rc = token_publish(&sp, ret_token);
  if (rc != 0)
    cred_unref(sp.cred);
out:
  gh__token_unref(t);
  return rc;
}

/* ---- queries ------------------------------------------------------------ */

static int copy_string(const char *s, char *buf, size_t len)
{
  size_t n = strlen(s);
  int rc;

  if (buf == NULL || len <= n) {
    rc = -ERANGE;
  } else {
    memcpy(buf, s, n + 1);
    rc = (int)n;
  }
  return rc;
}

int gh_token_get_user(gh_token_t h, char *buf, size_t len)
{
  gh__token_t *t = NULL;
  int rc = gh__token_get(h, &t);
  if (rc == 0)
    rc = copy_string(t->user, buf, len);
  gh__token_unref(t);
  return rc;
}

int gh_token_get_auth_name(gh_token_t h, char *buf, size_t len)
{
  gh__token_t *t = NULL;
  int rc = gh__token_get(h, &t);
  if (rc == 0)
    rc = copy_string(t->auth_name, buf, len);
  gh__token_unref(t);
  return rc;
}

/* Shared body of the scalar getters. */
#define GH__SCALAR_GETTER(fname, type, field)                                                      \
  int fname(gh_token_t h, type *ret)                                                               \
  {                                                                                                \
    gh__token_t *t = NULL;                                                                         \
    int rc = -EINVAL;                                                                              \
    if (ret != NULL)                                                                               \
      rc = gh__token_get(h, &t);                                                                   \
    if (rc == 0)                                                                                   \
      *ret = t->field;                                                                             \
    gh__token_unref(t);                                                                            \
    return rc;                                                                                     \
  }

GH__SCALAR_GETTER(gh_token_get_uid, uid_t, uid)
GH__SCALAR_GETTER(gh_token_get_gid, gid_t, gid)
GH__SCALAR_GETTER(gh_token_get_level, gh_token_level_t, level)
GH__SCALAR_GETTER(gh_token_get_type, gh_token_type_t, type)
GH__SCALAR_GETTER(gh_token_get_source, gh_token_source_t, source)
GH__SCALAR_GETTER(gh_token_get_expiry, time_t, expiry)
GH__SCALAR_GETTER(gh_token_get_id, uint64_t, id)

int gh_token_get_groups(gh_token_t h, gid_t *buf, size_t len)
{
  gh__token_t *t = NULL;
  int rc = gh__token_get(h, &t);
  if (rc != 0)
    goto out;
  if (buf != NULL && len > 0) {
    if (len < t->ngroups) {
      rc = -ERANGE;
      goto out;
    }
    memcpy(buf, t->groups, t->ngroups * sizeof(gid_t));
  }
  rc = (int)t->ngroups;
out:
  gh__token_unref(t);
  return rc;
}

int gh_token_get_sids(gh_token_t h, char *buf, size_t len)
{
  gh__token_t *t = NULL;
  size_t need = 1, off = 0;
  int rc = gh__token_get(h, &t);
  if (rc != 0)
    goto out;
  if (buf == NULL) {
    rc = -EINVAL;
    goto out;
  }
  for (uint32_t i = 0; i < t->nsids; i++)
    need += strlen(t->sids[i]) + (i ? 1 : 0);
  if (len < need) {
    rc = -ERANGE;
    goto out;
  }
  for (uint32_t i = 0; i < t->nsids; i++) {
    size_t l = strlen(t->sids[i]);
    if (i)
      buf[off++] = ',';
    memcpy(buf + off, t->sids[i], l);
    off += l;
  }
  buf[off] = '\0';
  rc = (int)t->nsids;
out:
  gh__token_unref(t);
  return rc;
}

int gh_token_has_sid(gh_token_t h, const char *sid, bool *ret_member)
{
  gh__token_t *t = NULL;
  bool found = false;
  int rc;

  if (sid == NULL || ret_member == NULL)
    return -EINVAL;
  rc = gh__token_get(h, &t);
  if (rc != 0)
    goto out;
  for (uint32_t i = 0; i < t->nsids && !found; i++)
    found = strcmp(t->sids[i], sid) == 0;
  *ret_member = found;
out:
  gh__token_unref(t);
  return rc;
}

int gh_token_get_delegated_cred(gh_token_t h, gss_cred_id_t *ret_cred)
{
  gh__token_t *t = NULL;
  int rc = -EINVAL;
  if (ret_cred != NULL)
    rc = gh__token_get(h, &t);
  if (rc == 0)
    *ret_cred = t->cred ? t->cred->cred : GSS_C_NO_CREDENTIAL;
  gh__token_unref(t);
  return rc;
}

int gh_token_get_statistics(gh_token_t h, gh_token_statistics_t *ret_stats)
{
  gh__token_t *t = NULL;
  int rc = -EINVAL;
  if (ret_stats != NULL)
    rc = gh__token_get(h, &t);
  if (rc == 0) {
    memset(ret_stats, 0, sizeof(*ret_stats));
    ret_stats->token_id = t->id;
    ret_stats->type = t->type;
    ret_stats->level = t->level;
    ret_stats->source = t->source;
    ret_stats->created = t->created;
    ret_stats->expiry = t->expiry;
    ret_stats->group_count = t->ngroups;
    /* minus the reference this call holds */
    ret_stats->ref_count = atomic_load_explicit(&t->refs, memory_order_relaxed) - 1;
    ret_stats->has_delegated_cred = t->cred != NULL && t->cred->cred != GSS_C_NO_CREDENTIAL;
    ret_stats->sid_count = t->nsids;
  }
  gh__token_unref(t);
  return rc;
}

static bool token_has_gid(const gh__token_t *t, gid_t gid)
{
  size_t lo = 0, hi = t->ngroups;
  bool found = gid == t->gid;
  while (!found && lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (t->groups[mid] == gid)
      found = true;
    else if (t->groups[mid] < gid)
      lo = mid + 1;
    else
      hi = mid;
  }
  return found;
}

int gh_token_is_member(gh_token_t h, gid_t gid, bool *ret_member)
{
  gh__token_t *t = NULL;
  int rc = -EINVAL;
  if (ret_member != NULL)
    rc = gh__token_get(h, &t);
  if (rc == 0)
    *ret_member = token_has_gid(t, gid);
  gh__token_unref(t);
  return rc;
}

int gh_token_is_member_name(gh_token_t h, const char *group, gh_membership_t *ret_membership)
{
  gh_membership_t m = GH_MEMBER_UNKNOWN;
  gh__token_t *t = NULL;
  gid_t gid = 0;
  int rc;

  if (group == NULL || *group == '\0' || ret_membership == NULL) {
    rc = -EINVAL;
    goto out;
  }
  rc = gh__token_get(h, &t);
  if (rc != 0)
    goto out;
  rc = gh__groupcache_gid(group, &gid);
  if (rc == 0) {
    m = token_has_gid(t, gid) ? GH_MEMBER_YES : GH_MEMBER_NO;
  } else if (rc == GH_ENOT_FOUND) {
    m = GH_MEMBER_NO; /* nobody is in a group that does not exist */
    rc = GH_MEMBER_NO_SUCH_GROUP;
  }
out:
  if (ret_membership != NULL)
    *ret_membership = rc < 0 ? GH_MEMBER_UNKNOWN : m;
  gh__token_unref(t);
  return rc;
}

int gh_token_access_check(gh_token_t h, const char *path, int mode)
{
  gh__token_t *t = NULL;
  gh__sec_saved_t saved;
  int rc;

  if (path == NULL) {
    rc = -EINVAL;
    goto out;
  }
  rc = gh__token_get_live(h, &t);
  if (rc != 0)
    goto out;
  rc = gh__sec_enter(t, t->level == GH_LEVEL_ANONYMOUS ? &t->imp : &t->own, &saved);
  if (rc != 0)
    goto out;
  rc = faccessat(AT_FDCWD, path, mode, AT_EACCESS) == 0 ? 0 : -errno;
  gh__sec_leave(&saved);
out:
  gh__token_unref(t);
  return rc;
}
