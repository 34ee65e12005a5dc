/* auth_cred.c: acceptor credentials — names, credential sets, the keytab and rcache they use. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <krb5.h>
#include <profile.h>

#include <gatehouse/error.h>

#include "httpapi/auth/auth_engine.h"
#include "util/alloc.h"

int gh__auth_check_file(const char *what, const char *path, char *errbuf, size_t errlen)
{
  int fd, ret = 0;

  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    ret = GH_ECONFIG;
    if (errbuf && errlen)
      snprintf(errbuf, errlen, "%s %s: %s", what, path, strerror(errno));
    goto out;
  }
  close(fd);
out:
  return ret;
}

static int acquire(const char *label, gss_name_t name, gss_OID mech,
                   const gss_key_value_set_desc *store, gss_cred_id_t *ret_cred, char *errbuf,
                   size_t errlen)
{
  gss_OID_set_desc mechs = {1, mech};
  OM_uint32 maj, min = 0;
  int ret = 0;

  maj = gss_acquire_cred_from(&min, name, GSS_C_INDEFINITE, &mechs, GSS_C_ACCEPT, store, ret_cred,
                              NULL, NULL);
  if (GSS_ERROR(maj)) {
    char text[256];
    gh__auth_gss_text(text, sizeof(text), maj, min, mech);
    if (errbuf && errlen)
      snprintf(errbuf, errlen, "acquiring %s acceptor credentials: %s", label, text);
    ret = GH_EGSS;
  }
  return ret;
}

/* How long an authenticator can be replayed past MIT's clock-skew check:
 * accepted at t with |ctime - t| <= skew, a replay at t' passes only while
 * t' <= ctime + skew <= t + 2 skew. Plus a minute of margin. From the
 * current krb5.conf (libdefaults clockskew, default 300 s). */
static unsigned rcache_window(krb5_context k)
{
  profile_t prof = NULL;
  int skew = 300;

  if (krb5_get_profile(k, &prof) == 0 && prof) {
    if (profile_get_integer(prof, "libdefaults", "clockskew", NULL, 300, &skew) != 0)
      skew = 300;
    profile_release(prof);
  }
  if (skew < 300)
    skew = 300; /* never shorter than MIT's default: a generous window costs memory only */
  if (skew > 86400)
    skew = 86400;
  return 2u * (unsigned)skew + 60u;
}

/* At most every KT_CHECK_S seconds, from any step (never waiting for a
 * read in progress): merge new keys of a changed keytab file, follow a
 * larger clockskew in krb5.conf. */
#define KT_CHECK_S 5
static void engine_poll(gh__auth_engine_t *e)
{
  long long now = (long long)time(NULL);
  long long last = atomic_load_explicit(&e->polled, memory_order_relaxed);

  if (!e->kt || now - last < KT_CHECK_S || !atomic_compare_exchange_strong(&e->polled, &last, now))
    return;
  if (e->rcache) {
    krb5_context k;
    if (krb5_init_context(&k) == 0) { /* a fresh one reads the current krb5.conf */
      gh__auth_rcache_widen(e->rcache, rcache_window(k));
      krb5_free_context(k);
    }
  }
  gh__auth_keytab_poll(e->kt);
}

static void release_set(gh__auth_credset_t *set)
{
  OM_uint32 min;

  gss_release_cred(&min, &set->spnego);
  gss_release_cred(&min, &set->krb5);
  gss_release_cred(&min, &set->ntlm);
}

/* Acquires one credential set from the engine's names and cred store. */
static int acquire_set(gh__auth_engine_t *e, gh__auth_credset_t *set, char *errbuf, size_t errlen)
{
  gss_key_value_element_desc elems[3];
  gss_key_value_set_desc store = {0, elems}, ntlm_store;
  OM_uint32 maj, min;
  int ret = 0;

  set->spnego = set->krb5 = set->ntlm = GSS_C_NO_CREDENTIAL;
  if (e->keytab) {
    elems[store.count].key = "keytab";
    elems[store.count].value = gh__auth_keytab_mem_name(e->kt);
    store.count++;
  }
  if (e->ntlm && e->ntlm_user_file) {
    elems[store.count].key = "ntlmssp_keyfile";
    elems[store.count].value = e->ntlm_user_file;
    store.count++;
  }
  ntlm_store = store;
  if (e->rcache) {
    /* replays are caught by the engine before the accept
     * (gh__krb5_replay_check): MIT's file rcache (open + OFD lock + reads +
     * write per accept, one lock for all workers) is switched off for the
     * krb5 parts only */
    elems[store.count].key = "rcache";
    elems[store.count].value = "none:";
    store.count++;
  }
  if (e->keytab) {
    ret = acquire("Kerberos", e->krb_name, &gh__auth_krb5_oid, &store, &set->krb5, errbuf, errlen);
    if (ret) {
      if (errbuf && errlen) {
        size_t l = strlen(errbuf);
        snprintf(errbuf + l, errlen - l, " (keytab %s)", e->keytab);
      }
      goto out;
    }
  }
  if (e->ntlm) {
    ret = acquire("NTLM", e->ntlm_name, &gh__auth_ntlmssp_oid, &ntlm_store, &set->ntlm, errbuf,
                  errlen);
    if (ret)
      goto out;
  }
  if (e->keytab || e->ntlm) {
    gss_OID_desc neg[2];
    gss_OID_set_desc negset = {0, neg};

    /* SPNEGO acquires for its sub-mechanisms with the same name and store;
     * with a host-less name the krb5 part accepts any host in the keytab,
     * the NTLM part is named after the local host (or ntlm_service_name). */
    ret = acquire("SPNEGO", e->spnego_ntlm_name ? e->ntlm_name : e->krb_name, &gh__auth_spnego_oid,
                  &store, &set->spnego, errbuf, errlen);
    if (ret)
      goto out;
    if (e->keytab)
      neg[negset.count++] = gh__auth_krb5_oid;
    if (e->ntlm)
      neg[negset.count++] = gh__auth_ntlmssp_oid;
    maj = gss_set_neg_mechs(&min, set->spnego, &negset);
    if (GSS_ERROR(maj)) {
      char text[256];
      gh__auth_gss_text(text, sizeof(text), maj, min, GSS_C_NO_OID);
      if (errbuf && errlen)
        snprintf(errbuf, errlen, "restricting SPNEGO mechanisms: %s", text);
      ret = GH_EGSS;
      goto out;
    }
  }
out:
  if (ret)
    release_set(set);
  return ret;
}

void gh__auth_cred_init(gh__auth_engine_t *e)
{
  e->krb_name = e->ntlm_name = GSS_C_NO_NAME;
  pthread_mutex_init(&e->cred_lock, NULL);
}

int gh__auth_cred_keytab(gh__auth_engine_t *e, const gh__auth_engine_config_t *cfg, char *errbuf,
                         size_t errlen)
{
  int ret = 0;

  if (!(e->keytab = gh__strdup(cfg->keytab))) {
    ret = -ENOMEM;
    goto out;
  }
  ret = gh__auth_keytab_new(cfg->keytab, e->log_cb, e->log_arg, errbuf, errlen, &e->kt);
  if (ret)
    goto out;
  atomic_store(&e->polled, (long long)time(NULL));
  if (!cfg->replay_cache_file) {
    krb5_context k = gh__auth_kctx_get(e);
    unsigned window = k ? rcache_window(k) : 660u;
    gh__auth_kctx_put(e, k);
    ret = cfg->replay_cache_shared ? gh__auth_rcache_new_shared(window, &e->rcache)
                                   : gh__auth_rcache_new(window, &e->rcache);
    if (ret)
      goto out;
    if (cfg->replay_cache_url) { /* the farm's store (auth_rcache_redis.c) */
      gh__rcache_redis_config_t rcfg = {
        cfg->replay_cache_url, cfg->replay_cache_password, cfg->replay_cache_fallback_local,
        cfg->replay_cache_timeout_ms, e->log_cb, e->log_arg,
      };
      ret = gh__auth_rcache_attach_redis(e->rcache, &rcfg, errbuf, errlen);
      if (ret)
        goto out;
    }
  }
out:
  return ret;
}

/* The acceptor names: service_principal "HTTP" is the host-less
 * host-based name (MIT accepts a ticket for any HTTP/<host> key in the
 * keytab), "HTTP@host" that host only; gss-ntlmssp takes its host from
 * ntlm_service_name or gethostname(). */
static int import_names(gh__auth_engine_t *e, const gh__auth_engine_config_t *cfg, char *errbuf,
                        size_t errlen)
{
  const char *sp = cfg->service_principal ? cfg->service_principal : "HTTP";
  const char *np = cfg->ntlm_service_name ? cfg->ntlm_service_name : sp;
  const char *at = strchr(sp, '@');
  gss_buffer_desc b = {strlen(sp), (void *)sp};
  gss_buffer_desc nb = {strlen(np), (void *)np};
  OM_uint32 maj, min;
  int ret = 0;

  if (at && at[1] && asprintf(&e->acceptor, "%.*s/%s", (int)(at - sp), sp, at + 1) < 0) {
    e->acceptor = NULL;
    ret = -ENOMEM;
    goto out;
  }
  maj = gss_import_name(&min, &b, GSS_C_NT_HOSTBASED_SERVICE, &e->krb_name);
  if (!GSS_ERROR(maj))
    maj = gss_import_name(&min, &nb, GSS_C_NT_HOSTBASED_SERVICE, &e->ntlm_name);
  if (GSS_ERROR(maj)) {
    if (errbuf && errlen)
      snprintf(errbuf, errlen, "service principal %s: invalid name", sp);
    ret = GH_ECONFIG;
    goto out;
  }
out:
  return ret;
}

int gh__auth_cred_acquire(gh__auth_engine_t *e, const gh__auth_engine_config_t *cfg, char *errbuf,
                          size_t errlen)
{
  int ret = 0;

  e->ntlm = cfg->ntlm;
  if (cfg->ntlm && cfg->ntlm_user_file) {
    ret = gh__auth_check_file("ntlm_user_file", cfg->ntlm_user_file, errbuf, errlen);
    if (ret)
      goto out;
    if (!(e->ntlm_user_file = gh__strdup(cfg->ntlm_user_file))) {
      ret = -ENOMEM;
      goto out;
    }
  }
  e->spnego_ntlm_name = cfg->ntlm_service_name && !cfg->keytab;

  ret = import_names(e, cfg, errbuf, errlen);
  if (ret)
    goto out;
  /* the first set now: it validates keytab, names and user file */
  ret = acquire_set(e, &e->sets[0], errbuf, errlen);
  if (ret)
    goto out;
  e->n_sets = 1;
  e->free_sets[e->n_free++] = 0;
out:
  return ret;
}

void gh__auth_cred_done(gh__auth_engine_t *e)
{
  OM_uint32 min;

  for (unsigned i = 0; i < e->n_sets; i++)
    release_set(&e->sets[i]);
  gss_release_name(&min, &e->krb_name);
  gss_release_name(&min, &e->ntlm_name);
  gh__auth_keytab_free(e->kt);
  gh__auth_rcache_free(e->rcache);
  free(e->keytab);
  free(e->acceptor);
  free(e->ntlm_user_file);
  free(e->s4u_principal);
  pthread_mutex_destroy(&e->cred_lock);
}

/* An idle set, a new one while fewer than GH__AUTH_CREDSET_MAX exist, else
 * one shared round-robin (still correct: the mechanisms lock their
 * credentials). */
unsigned gh__auth_credset_get(gh__auth_engine_t *e, bool *ret_exclusive)
{
  unsigned idx;

  engine_poll(e);
  pthread_mutex_lock(&e->cred_lock);
  if (e->n_free > 0) {
    idx = e->free_sets[--e->n_free];
    *ret_exclusive = true;
  } else if (e->n_sets < GH__AUTH_CREDSET_MAX &&
             acquire_set(e, &e->sets[e->n_sets], NULL, 0) == 0) {
    /* at most GH__AUTH_CREDSET_MAX times in the process's life, under the
     * lock so that no step sees a half-made set */
    idx = e->n_sets++;
    *ret_exclusive = true;
  } else {
    idx = atomic_fetch_add(&e->next_shared, 1) % e->n_sets;
    *ret_exclusive = false;
  }
  pthread_mutex_unlock(&e->cred_lock);
  return idx;
}

void gh__auth_credset_put(gh__auth_engine_t *e, unsigned idx, bool exclusive)
{
  if (!exclusive)
    return;
  pthread_mutex_lock(&e->cred_lock);
  e->free_sets[e->n_free++] = idx;
  pthread_mutex_unlock(&e->cred_lock);
}

int gh__auth_engine_reload_keytab(gh__auth_engine_t *e, char *msg, size_t msglen)
{
  char tmp[8];

  if (!msg || msglen == 0) {
    msg = tmp;
    msglen = sizeof(tmp);
  }
  msg[0] = '\0';
  if (!e || !e->kt) {
    snprintf(msg, msglen, "no keytab configured");
    return GH_ENOT_FOUND;
  }
  return gh__auth_keytab_reload(e->kt, msg, msglen);
}
