/* auth_namemap.c: an authenticated GSS name -> a local account, and the principal cache. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <krb5.h>
#include <openssl/rand.h>

#include <gatehouse/error.h>

#include "httpapi/auth/auth_engine.h"
#include "util/alloc.h"

/* Exported by libkrb5 (krb5_3_MIT) but declared only in MIT's private
 * k5-int.h: the profile files krb5_init_context reads (KRB5_CONFIG or the
 * built-in default). */
krb5_error_code KRB5_CALLCONV krb5_get_default_config_files(char ***pfilenames);
void KRB5_CALLCONV krb5_free_config_files(char **filenames);

/* krb5_aname_to_localname compiles the auth_to_local RULE regex (and
 * builds its DFA) on every call: a quarter of the CPU of a Negotiate
 * request. Successful mappings are kept for nmap_ttl_s seconds (default 5)
 * in GH__AUTH_NMAP_SLOTS direct-mapped slots (keyed hash of the exact principal,
 * full string compare: a different principal never gets another's name),
 * and all are dropped at once when one of the krb5 profile files
 * (krb5_get_default_config_files: KRB5_CONFIG or /etc/krb5.conf) changes
 * (inode, size or mtime; checked at most once a second). Failures (no
 * local account) are not cached: an unmapped principal is always asked
 * again, so a new mapping or account applies at once. Only the Kerberos
 * path uses it (NTLM names are mapped by string rules). */

static void nmap_flush(gh__auth_engine_t *e)
{
  for (unsigned i = 0; i < GH__AUTH_NMAP_SLOTS; i++) {
    free(e->nmap[i].principal);
    free(e->nmap[i].local);
    e->nmap[i].principal = e->nmap[i].local = NULL;
    e->nmap[i].expiry = 0;
  }
}

static void conf_stat(const char *path, struct stat *st)
{
  if (stat(path, st) != 0)
    memset(st, 0, sizeof(*st));
}

static bool conf_same(const struct stat *a, const struct stat *b)
{
  return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
         a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
         a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static time_t mono_s(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec;
}

static unsigned nmap_slot(const gh__auth_engine_t *e, const char *principal)
{
  uint64_t h = 1469598103934665603ull ^ e->nmap_seed; /* FNV-1a, seeded */

  for (const unsigned char *p = (const unsigned char *)principal; *p; p++) {
    h ^= *p;
    h *= 1099511628211ull;
  }
  h ^= h >> 29;
  return (unsigned)(h % GH__AUTH_NMAP_SLOTS);
}

/* Under nmap_lock: drop everything if a profile file changed. */
static void nmap_check_conf(gh__auth_engine_t *e, time_t now)
{
  bool changed = false;

  if (now == e->nmap_checked)
    return;
  e->nmap_checked = now;
  for (unsigned i = 0; i < e->n_conf; i++) {
    struct stat st;
    conf_stat(e->conf_path[i], &st);
    if (!conf_same(&st, &e->conf_st[i])) {
      e->conf_st[i] = st;
      changed = true;
    }
  }
  if (changed) {
    nmap_flush(e);
    e->nmap_flushes++;
    e->nmap_gen++;
    e->nmap_flushed_at = now;
  }
}

/* A copy of the cached local name for principal, or NULL (miss); *ret_gen
 * for nmap_insert. */
static char *nmap_lookup(gh__auth_engine_t *e, const char *principal, uint64_t *ret_gen)
{
  char *local = NULL;
  time_t now;

  *ret_gen = 0;
  if (e->nmap_ttl_s == 0)
    return NULL;
  now = mono_s();
  pthread_mutex_lock(&e->nmap_lock);
  nmap_check_conf(e, now);
  *ret_gen = e->nmap_gen;
  gh__auth_nmap_entry_t *en = &e->nmap[nmap_slot(e, principal)];
  if (en->principal && now < en->expiry && strcmp(en->principal, principal) == 0)
    local = gh__strdup(en->local); /* NULL on ENOMEM: mapped again, as on a miss */
  if (local)
    e->nmap_hits++;
  else
    e->nmap_misses++;
  pthread_mutex_unlock(&e->nmap_lock);
  return local;
}

/* Remembers a successful mapping made after nmap_lookup returned gen (a
 * newer one replaces the slot's entry). Not stored when the profile changed
 * since (the mapping may have used the old rules), nor in the two seconds
 * after a change: libkrb5 re-reads a profile at most once per second of
 * time(), so a mapping made just after the change can still be the old one. */
static void nmap_insert(gh__auth_engine_t *e, const char *principal, const char *local,
                        uint64_t gen)
{
  char *p = NULL, *l = NULL;
  time_t now;

  if (e->nmap_ttl_s == 0)
    return;
  p = gh__strdup(principal);
  l = gh__strdup(local);
  if (!p || !l)
    goto out;
  now = mono_s();
  pthread_mutex_lock(&e->nmap_lock);
  nmap_check_conf(e, now);
  if (gen == e->nmap_gen && (e->nmap_gen == 0 || now > e->nmap_flushed_at + 2)) {
    gh__auth_nmap_entry_t *en = &e->nmap[nmap_slot(e, principal)];
    free(en->principal);
    free(en->local);
    en->principal = p;
    en->local = l;
    en->expiry = now + (time_t)e->nmap_ttl_s;
    p = l = NULL;
  }
  pthread_mutex_unlock(&e->nmap_lock);
out:
  free(p);
  free(l);
}

int gh__auth_nmap_init(gh__auth_engine_t *e, unsigned ttl_s)
{
  int ret = 0;

  pthread_mutex_init(&e->nmap_lock, NULL);
  e->nmap_ttl_s = ttl_s;
  if (e->nmap_ttl_s > 3600)
    e->nmap_ttl_s = 3600;
  if (RAND_bytes((unsigned char *)&e->nmap_seed, sizeof(e->nmap_seed)) != 1)
    ret = GH_EAUTH_INTERNAL;
  return ret;
}

/* The profile files this process's krb5 contexts read, with their state
 * now. More than GH__AUTH_NMAP_CONF_MAX files, or none known: the cache stays off. */
int gh__auth_nmap_init_conf(gh__auth_engine_t *e)
{
  char **files = NULL;
  unsigned n = 0;

  if (e->nmap_ttl_s == 0)
    return 0;
  if (krb5_get_default_config_files(&files) != 0 || !files) {
    e->nmap_ttl_s = 0;
    return 0;
  }
  while (files[n])
    n++;
  if (n == 0 || n > GH__AUTH_NMAP_CONF_MAX) {
    e->nmap_ttl_s = 0;
  } else {
    for (unsigned i = 0; i < n; i++) {
      e->conf_path[i] = gh__strdup(files[i]);
      if (!e->conf_path[i]) {
        krb5_free_config_files(files);
        return -ENOMEM;
      }
      e->n_conf = i + 1;
      conf_stat(files[i], &e->conf_st[i]);
    }
  }
  krb5_free_config_files(files);
  return 0;
}

void gh__auth_nmap_done(gh__auth_engine_t *e)
{
  nmap_flush(e);
  for (unsigned i = 0; i < e->n_conf; i++)
    free(e->conf_path[i]);
  pthread_mutex_destroy(&e->nmap_lock);
}

void gh__auth_engine_name_map_stats(gh__auth_engine_t *e, uint64_t *ret_hits, uint64_t *ret_misses,
                                    uint64_t *ret_flushes)
{
  pthread_mutex_lock(&e->nmap_lock);
  *ret_hits = e->nmap_hits;
  *ret_misses = e->nmap_misses;
  *ret_flushes = e->nmap_flushes;
  pthread_mutex_unlock(&e->nmap_lock);
}

/* Local account for an authenticated GSS name. NULL = unmapped.
 * Kerberos: krb5_aname_to_localname (krb5.conf auth_to_local rules and the
 * localauth plugins) on the principal parsed from the display name, with a
 * pooled krb5 context. gss_localname would do the same through the mechglue
 * but first walks the name's attributes, creating a fresh krb5 context for
 * each query (~14 per call): it cost more than the accept itself.
 * Successful Kerberos mappings are cached for a few seconds (nmap_lookup). */
char *gh__auth_map_name(gh__auth_engine_t *e, gss_OID mech, const char *display,
                        const gh_auth_settings_t *site)
{
  char *local = NULL;

  if (gss_oid_equal(mech, &gh__auth_krb5_oid)) {
    uint64_t gen;
    local = nmap_lookup(e, display, &gen);
    if (local)
      return local;
    krb5_context k = gh__auth_kctx_get(e);
    krb5_principal princ = NULL;
    char lname[GH__AUTH_NAME_MAX];

    if (k && krb5_parse_name_flags(k, display, KRB5_PRINCIPAL_PARSE_REQUIRE_REALM, &princ) == 0 &&
        krb5_aname_to_localname(k, princ, sizeof(lname), lname) == 0 && lname[0] != '\0')
      local = gh__strdup(lname);
    if (princ)
      krb5_free_principal(k, princ);
    gh__auth_kctx_put(e, k);
    if (local)
      nmap_insert(e, display, local, gen);
  } else {
    const char *bs = strchr(display, '\\');
    local = gh__strdup((bs && !site->ntlm_keep_domain) ? bs + 1 : display);
    if (local && local[0] == '\0') {
      free(local);
      local = NULL;
    }
  }
  return local;
}
