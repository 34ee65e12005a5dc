/* auth_kpool.c: the engine's pool of krb5 contexts (name mapping, replay window, failure
 * diagnosis). */
#include <pthread.h>

#include <krb5.h>

#include "httpapi/auth/auth_engine.h"

void gh__auth_kpool_init(gh__auth_engine_t *e)
{
  pthread_mutex_init(&e->kpool_lock, NULL);
}

void gh__auth_kpool_done(gh__auth_engine_t *e)
{
  for (unsigned i = 0; i < e->n_kpool; i++)
    krb5_free_context(e->kpool[i]);
  pthread_mutex_destroy(&e->kpool_lock);
}

/* A pooled context still sees krb5.conf edits (auth_to_local rules): libkrb5
 * re-checks the profile itself, stat'ing it at most once a second. */
krb5_context gh__auth_kctx_get(gh__auth_engine_t *e)
{
  krb5_context k = NULL;

  pthread_mutex_lock(&e->kpool_lock);
  if (e->n_kpool > 0)
    k = e->kpool[--e->n_kpool];
  pthread_mutex_unlock(&e->kpool_lock);
  if (!k && krb5_init_context(&k) != 0)
    k = NULL;
  return k;
}

void gh__auth_kctx_put(gh__auth_engine_t *e, krb5_context k)
{
  if (!k)
    return;
  pthread_mutex_lock(&e->kpool_lock);
  if (e->n_kpool < GH__AUTH_KPOOL_MAX) {
    e->kpool[e->n_kpool++] = k;
    k = NULL;
  }
  pthread_mutex_unlock(&e->kpool_lock);
  if (k)
    krb5_free_context(k);
}
