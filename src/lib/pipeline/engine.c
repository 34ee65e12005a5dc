/* engine.c: the notification engine — runs one request through the modules in IIS order. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gatehouse/error.h>
#include <gatehouse/module.h>

#include "pipeline/pipeline_int.h"
#include "util/alloc.h"

static int run(gh_http_context_t *ctx, bool resumed);
static void go_to(gh_http_context_t *ctx, unsigned slot);

/* ---- context lifetime ------------------------------------------------- */

/* Spare request pools: the next request reuses a pool's first block (and
 * the context carved from it) instead of a malloc and free of 8 KiB. A few
 * per thread, then a shared stack under a lock: a request that waited
 * (gh_http_context_wait_fd) ends on whichever worker got its event, and the
 * threads that start requests are often not those that end them, so with
 * one spare per thread the ending thread freed the pool while the starting
 * one allocated (a quarter of proxied requests). Thread spares are freed
 * when the thread exits, shared ones when a pipeline is freed. Off in ASan
 * builds (a freed context must stay poisoned, so use-after-end is caught)
 * and in fault-injection builds (every request allocates its pool). */
#if defined(__SANITIZE_ADDRESS__) || defined(GH_FAULT_INJECTION)
#define GH__PL_SPARE_POOL 0
#else
#define GH__PL_SPARE_POOL 1
#endif
#define GH__PL_SPARE_POOLS 4         /* per thread */
#define GH__PL_SHARED_SPARE_POOLS 64 /* for all threads */
/* A spare pool and the user block of the request that ended with it (or
 * NULL): the user of the next request takes it (gh__pl_user_new_server). */
typedef struct spare {
  gh__pool_t *pool;
  void *user;
} spare_t;
typedef struct spare_pools {
  spare_t p[GH__PL_SPARE_POOLS];
  size_t n;
  bool registered; /* with spare_key, to be freed at thread exit */
} spare_pools_t;
/* one thread-local object: each access from the library costs a call */
static __thread spare_pools_t spare;
static pthread_once_t spare_once = PTHREAD_ONCE_INIT;
static pthread_key_t spare_key;
static bool spare_key_ok;
static pthread_mutex_t shared_lock = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP; /* short, hot */
static spare_t shared_spare[GH__PL_SHARED_SPARE_POOLS];
static size_t n_shared_spare;

static void spare_free(spare_t *sp)
{
  gh__pool_free(sp->pool);
  free(sp->user);
}

static void spare_exit(void *arg)
{
  spare_pools_t *sp = arg;
  while (sp->n > 0)
    spare_free(&sp->p[--sp->n]);
}

static void spare_init(void)
{
  spare_key_ok = pthread_key_create(&spare_key, spare_exit) == 0;
}

/* This thread's spares. The empty asm hides where the address came from:
 * left to itself the compiler asks __tls_get_addr again at each use after
 * a call instead of keeping the address in a register. */
static inline spare_pools_t *spare_mine(void)
{
  spare_pools_t *p = &spare;
  __asm__("" : "+r"(p));
  return p;
}

/* A pool for a request, and a spare user block in *ret_user (or NULL). */
static gh__pool_t *pool_get(void **ret_user)
{
  spare_t sp = {NULL, NULL};
  spare_pools_t *mine = spare_mine();
  if (mine->n > 0) {
    sp = mine->p[--mine->n];
  } else {
    pthread_mutex_lock(&shared_lock);
    if (n_shared_spare > 0)
      sp = shared_spare[--n_shared_spare];
    pthread_mutex_unlock(&shared_lock);
  }
  *ret_user = sp.user;
  return sp.pool != NULL ? sp.pool : gh__pool_new(8192);
}

/* Runs the pool's cleanups and keeps it as a spare with the user block
 * (NULL: none), or frees both. */
static void pool_put(gh__pool_t *p, void *user)
{
  spare_t sp = {p, user};
  spare_pools_t *mine;
  if (p == NULL || !GH__PL_SPARE_POOL) {
    spare_free(&sp);
    return;
  }
  mine = spare_mine();
  if (!mine->registered) {
    pthread_once(&spare_once, spare_init);
    mine->registered = spare_key_ok && pthread_setspecific(spare_key, mine) == 0;
  }
  gh__pool_reset(p);
  if (mine->registered && mine->n < GH__PL_SPARE_POOLS) {
    mine->p[mine->n++] = sp;
    return;
  }
  pthread_mutex_lock(&shared_lock);
  if (n_shared_spare < GH__PL_SHARED_SPARE_POOLS) {
    shared_spare[n_shared_spare++] = sp;
    sp.pool = NULL;
    sp.user = NULL;
  }
  pthread_mutex_unlock(&shared_lock);
  spare_free(&sp);
}

void gh__pl_spare_pools_free(void)
{
  pthread_mutex_lock(&shared_lock);
  while (n_shared_spare > 0)
    spare_free(&shared_spare[--n_shared_spare]);
  pthread_mutex_unlock(&shared_lock);
}

/* The context and its per-module arrays, zeroed, in one block of pool. */
static gh_http_context_t *ctx_alloc(gh__pool_t *pool, size_t n_modules)
{
  size_t n = n_modules + 1;
  size_t at_modctx = (sizeof(gh_http_context_t) + 15u) & ~(size_t)15u;
  size_t at_instances = at_modctx + n * sizeof(gh__pl_modctx_t);
  size_t at_created = at_instances + n * sizeof(void *);
  char *b = pool ? gh__pool_calloc(pool, 1, at_created + n * sizeof(bool)) : NULL;
  gh_http_context_t *ctx = (gh_http_context_t *)b;
  if (ctx != NULL) {
    ctx->modctx = (gh__pl_modctx_t *)(b + at_modctx);
    ctx->instances = (void **)(b + at_instances);
    ctx->created = (bool *)(b + at_created);
  }
  return ctx;
}

static int ctx_new(gh_pipeline_t *pl, const char *site, const gh__pl_source_ops_t *ops, void *src,
                   gh_http_context_t **ret_ctx)
{
  int ret = 0;
  void *user_block;
  gh__pool_t *pool = pool_get(&user_block);
  gh_http_context_t *ctx = ctx_alloc(pool, pl->n_modules);
  if (ctx == NULL) {
    pool_put(pool, user_block);
    ret = -ENOMEM;
    goto out;
  }
  ctx->pl = pl;
  ctx->src_ops = ops;
  ctx->src = src;
  atomic_init(&ctx->state, GH__PL_RUNNING);
  atomic_init(&ctx->pending_status, GH_REQUEST_CONTINUE);
  ctx->pool = pool; /* the context lives in its own pool */
  ctx->user_block = user_block;
  ret = ops->describe(src, &ctx->info);
  if (ret < 0)
    goto out;
  /* installed configurations are read-only and live as long as pl */
  ctx->cfg = __atomic_load_n(&pl->cfg, __ATOMIC_ACQUIRE);
  if (site == NULL)
    site = gh_pipeline_find_site(pl, ctx->info.path);
  ctx->site = gh__pl_config_site(ctx->cfg, site);
  if (ctx->site != NULL) {
    /* the config outlives the request: no copy */
    ctx->site_section = ctx->site->section;
  } else if (site != NULL && strncmp(site, "site ", 5) == 0) {
    ctx->site_section = gh__pool_strdup(ctx->pool, site);
  } else if (site != NULL) {
    size_t n = strlen(site) + 6;
    char *s = gh__pool_alloc(ctx->pool, n);
    if (s != NULL)
      snprintf(s, n, "site %s", site);
    ctx->site_section = s;
  } else {
    ctx->site_section = "";
  }
  if (ctx->site_section == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  ctx->site_path = ctx->site_section[0] ? ctx->site_section + 5 : "";
  ctx->impersonate_site =
      ctx->site != NULL ? ctx->site->impersonate
                        : gh__pl_word_true(gh_http_context_get_site_config(ctx, "impersonate"));
  go_to(ctx, 0); /* the first event with work */
  gh__pl_response_init(&ctx->response, ctx);
  ret = gh__pl_request_init(&ctx->request, ctx);
  if (ret < 0)
    goto out;
  if (ctx->info.auth != NULL && ctx->info.auth->status == GH_AUTH_STATUS_SUCCESS)
    ctx->auth_token = ctx->info.auth->token;
  ret = gh__pl_user_new_server(pl, ctx->info.auth, &ctx->user_block, &ctx->user);
  if (ret < 0)
    goto out;
  *ret_ctx = ctx;
  ctx = NULL;
out:
  if (ctx != NULL) {
    gh__pl_response_done(&ctx->response);
    pool_put(ctx->pool, ctx->user_block);
  }
  return ret;
}

/* Ends the request: disposes instances (exactly once), runs module-context
 * cleanups, retires the user's tokens, closes the auth token, completes the
 * source and frees everything. */
static void ctx_end(gh_http_context_t *ctx)
{
  gh_pipeline_t *pl = ctx->pl;
  void *user_block;
  if (!ctx->response.final_sent)
    (void)gh__pl_response_send_out(&ctx->response, true);
  for (size_t i = 0; i < ctx->n_live; i++) {
    if (ctx->created[i]) {
      ctx->created[i] = false;
      if (pl->modules[i]->factory.dispose != NULL)
        pl->modules[i]->factory.dispose(pl->modules[i]->factory.factory_data, ctx->instances[i]);
      ctx->instances[i] = NULL;
    }
  }
  for (size_t i = 0; i < ctx->n_cleanups; i++) {
    if (ctx->modctx[i].cleanup != NULL)
      ctx->modctx[i].cleanup(ctx->modctx[i].data);
    ctx->modctx[i].cleanup = NULL;
  }
  gh__pl_site_data_free(ctx->site_data);
  ctx->site_data = NULL;
  if (pl->sec->is_impersonating())
    pl->sec->revert();
  gh__pl_user_end_request(ctx->user);
  /* the user's block (when no module keeps the user) goes with the pool */
  user_block = gh__pl_user_release(ctx->user);
  ctx->user = NULL;
  if (user_block == NULL)
    user_block = ctx->user_block;
  else
    free(ctx->user_block);
  if (ctx->auth_token != 0) {
    (void)pl->sec->token_close(ctx->auth_token);
    if (ctx->src_ops->auth_token_closed != NULL)
      ctx->src_ops->auth_token_closed(ctx->src, ctx->auth_token);
  }
  ctx->auth_token = 0;
  gh__pl_response_done(&ctx->response);
  (void)ctx->src_ops->complete(ctx->src);
  pool_put(ctx->pool, user_block); /* ctx is gone with it */
}

/* ---- calling modules -------------------------------------------------- */

/* The error paths of a module call, out of line: the calls themselves
 * save fewer registers. */
static __attribute__((noinline, cold)) void create_failed(gh_http_context_t *ctx,
                                                          const gh__pl_module_t *m, int err)
{
  gh__pl_log(ctx->pl, GH_LOG_ERROR, "module %s: create failed: %s", m->name, gh_strerror(err));
}

static __attribute__((noinline, cold)) gh_request_status_t call_failed(gh_http_context_t *ctx,
                                                                       size_t mod_index, int err)
{
  if (err != 0)
    gh__pl_log(ctx->pl, GH_LOG_ERROR, "impersonating %s for module %s failed: %s",
               gh_http_user_get_name(ctx->user), ctx->pl->modules[mod_index]->name,
               gh_strerror(err));
  (void)gh_http_response_send_error(&ctx->response, 500, NULL);
  return GH_REQUEST_FINISH;
}

/* The module's instance for this request, created at its first call. */
static int instance_get(gh_http_context_t *ctx, size_t mod_index, void **ret_instance)
{
  int ret = 0;
  gh__pl_module_t *m = ctx->pl->modules[mod_index];
  if (!ctx->created[mod_index]) {
    void *inst = NULL;
    if (m->factory.create != NULL) {
      ret = m->factory.create(m->factory.factory_data, ctx, &inst);
      if (ret < 0) {
        create_failed(ctx, m, ret);
        goto out;
      }
    }
    ctx->instances[mod_index] = inst;
    ctx->created[mod_index] = true;
    if (mod_index >= ctx->n_live)
      ctx->n_live = mod_index + 1;
  }
  *ret_instance = ctx->instances[mod_index];
out:
  return ret;
}

gh_request_status_t gh__pl_call(gh_http_context_t *ctx, size_t mod_index, gh_module_request_cb cb,
                                gh_event_provider_t *prov, bool impersonate)
{
  gh_request_status_t st = GH_REQUEST_CONTINUE;
  const gh__pl_sec_ops_t *sec = ctx->pl->sec;
  int saved_depth = ctx->imp_depth;
  bool saved_scoped = ctx->scoped_call;
  gh_notification_t saved_cur = ctx->current;
  void *inst = NULL;
  int r = instance_get(ctx, mod_index, &inst);
  if (r < 0) {
    st = call_failed(ctx, mod_index, 0); /* create_failed logged it */
    goto out;
  }
  /* A module that opens through gh_http_context_openat2 gets the client's
   * identity per open instead of a switched thread: same kernel decisions. */
  ctx->scoped_call = impersonate && ctx->pl->modules[mod_index]->scoped_impersonation;
  if (ctx->scoped_call)
    impersonate = false;
  if (impersonate && saved_depth == 0) {
    r = gh_http_context_impersonate(ctx);
    if (r < 0) {
      st = call_failed(ctx, mod_index, r);
      goto out;
    }
  }
  ctx->current = prov->notification;
  st = cb(inst, ctx, prov);
  if ((unsigned)st > GH_REQUEST_PENDING)
    st = GH_REQUEST_FINISH;
  ctx->current = saved_cur;
out:
  ctx->scoped_call = saved_scoped;
  /* Every call ends in the identity it started with: a top-level call at
   * base (DESIGN item 17), a nested one (SEND_RESPONSE from a flush inside
   * an impersonated handler) as its caller. */
  if (saved_depth == 0) {
    if (sec->is_impersonating())
      sec->revert();
    ctx->imp_depth = 0;
  } else if (ctx->imp_depth != saved_depth || !sec->is_impersonating()) {
    if (sec->is_impersonating())
      sec->revert();
    ctx->imp_depth = 0;
    if (ctx->auth_token != 0 && sec->impersonate(ctx->auth_token) == 0)
      ctx->imp_depth = saved_depth;
  }
  return st;
}

int gh__pl_raise_nested(gh_http_context_t *ctx, gh_event_provider_t *prov)
{
  gh_pipeline_t *pl = ctx->pl;
  gh_notification_t n = prov->notification;
  int ret = 0;
  for (size_t k = 0; k < pl->n_order[n]; k++) {
    size_t mi = pl->order[n][k];
    gh_request_status_t st = gh__pl_call(ctx, mi, pl->modules[mi]->on_request[n], prov, false);
    if (st == GH_REQUEST_FINISH) {
      ret = 1;
      break;
    }
  }
  return ret;
}

static bool module_runs_here(gh_http_context_t *ctx, const gh__pl_module_t *m, gh_notification_t n)
{
  const char *h;
  if (n != GH_NOTIFY_EXECUTE_REQUEST_HANDLER || !m->handler)
    return true;
  h = ctx->site != NULL ? ctx->site->handler : gh_http_context_get_site_config(ctx, "handler");
  return h != NULL && strcmp(h, m->name) == 0;
}

/* FINISH: skip to LOG_REQUEST (true), or, from LOG/END, just end this
 * event (false). */
static bool apply_finish(gh_http_context_t *ctx)
{
  bool jumped = false;
  if (ctx->stage < GH_NOTIFY_LOG_REQUEST) {
    ctx->finished = true;
    ctx->stage = GH_NOTIFY_LOG_REQUEST;
    ctx->post = false;
    ctx->index = 0;
    jumped = true;
  } else {
    ctx->index = (size_t)-1; /* ends the current event */
  }
  return jumped;
}

static bool user_can_impersonate(gh_http_context_t *ctx, int *ret_status)
{
  if (ctx->auth_token == 0 || ctx->user == NULL || ctx->user->custom) {
    *ret_status = 401;
    return false;
  }
  if (ctx->user->level < GH__PL_LEVEL_IMPERSONATE) {
    *ret_status = 403;
    return false;
  }
  return true;
}

void gh__pl_build_skip(gh_pipeline_t *pl)
{
  uint8_t next = GH__PL_SLOTS;
  pl->next_slot[GH__PL_SLOTS] = GH__PL_SLOTS;
  for (int s = GH__PL_SLOTS - 1; s >= 0; s--) {
    gh_notification_t n = (gh_notification_t)(s / 2);
    bool post = (s & 1) != 0;
    size_t count = post ? pl->n_post_order[n] : pl->n_order[n];
    if (count > 0 ||
        (!post && (n == GH_NOTIFY_EXECUTE_REQUEST_HANDLER || n == GH_NOTIFY_LOG_REQUEST)))
      next = (uint8_t)s;
    pl->next_slot[s] = next;
  }
}

/* Goes to slot, or on to the first slot after it where there is work. */
static void go_to(gh_http_context_t *ctx, unsigned slot)
{
  slot = ctx->pl->next_slot[slot];
  ctx->index = 0;
  ctx->stage = (gh_notification_t)(slot / 2);
  ctx->post = (slot & 1) != 0;
}

/* The next event (a finished request goes no further back than LOG_REQUEST). */
static void advance(gh_http_context_t *ctx)
{
  unsigned slot = 2u * (unsigned)ctx->stage + (ctx->post ? 1u : 0u) + 1u;
  if (ctx->finished && slot < 2u * GH_NOTIFY_LOG_REQUEST)
    slot = 2u * GH_NOTIFY_LOG_REQUEST;
  go_to(ctx, slot);
}

static void resume_cb(void *arg)
{
  gh_http_context_t *ctx = arg;
  (void)run(ctx, true);
}

static bool suspend(gh_http_context_t *ctx);

/* A wait asked for with gh_http_context_wait_fd ended: on a worker thread
 * of the source, which owns the request from here. The module's callback
 * runs as part of the notification that asked, at base identity. */
static void on_wait(int result, void *arg)
{
  gh_http_context_t *ctx = arg;
  gh_pipeline_t *pl = ctx->pl;
  gh_http_wait_cb cb = ctx->wait.cb;
  void *warg = ctx->wait.arg;
  gh_notification_t saved = ctx->current;
  gh_request_status_t st;
  ctx->wait.cb = NULL;
  atomic_store(&ctx->state, GH__PL_RUNNING);
  if (pl->sec->is_impersonating()) {
    /* a thread of the server left impersonating: DESIGN item 17 */
    gh__pl_log(pl, GH_LOG_ERROR, "request resumed on a thread that is impersonating");
    if (pl->sec->is_impersonating())
      pl->sec->revert();
    result = GH_ESTATE;
  }
  ctx->current = ctx->wait.n;
  st = cb(ctx, result, warg);
  ctx->current = saved;
  if ((unsigned)st > GH_REQUEST_PENDING)
    st = GH_REQUEST_FINISH;
  if (st != GH_REQUEST_PENDING)
    ctx->wait.cb = NULL; /* a wait without PENDING is moot, as in run() */
  if (pl->sec->is_impersonating())
    pl->sec->revert();
  ctx->imp_depth = 0;
  if (st == GH_REQUEST_PENDING) {
    if (suspend(ctx))
      return;
    st = (gh_request_status_t)atomic_load(&ctx->pending_status);
  }
  atomic_store(&ctx->pending_status, st);
  ctx->waited = true;
  (void)run(ctx, true);
}

/* The running thread lets go of a request whose module returned PENDING:
 * true when it did (from here another thread may own ctx: the one running
 * the wait's callback, or the one calling gh_http_context_complete), false
 * when it was completed before it could (the caller goes on with
 * pending_status). A wait the module asked for is armed here, as the last
 * touch, so that its callback never runs while this thread still has ctx. */
static bool suspend(gh_http_context_t *ctx)
{
  int expected = GH__PL_RUNNING;
  bool waits = ctx->wait.cb != NULL;
  int fd = ctx->wait.fd, tmo = ctx->wait.timeout_ms;
  unsigned ev = ctx->wait.events;
  uint64_t key = ctx->wait.key;
  const gh__pl_source_ops_t *ops = ctx->src_ops;
  void *src = ctx->src;
  int r;
  if (!atomic_compare_exchange_strong(&ctx->state, &expected, GH__PL_SUSPENDED)) {
    ctx->wait.cb = NULL; /* completed early: the wait is moot */
    atomic_store(&ctx->state, GH__PL_RUNNING);
    return false;
  }
  if (!waits)
    return true;
  r = ops->wait_fd(src, fd, key, ev, tmo, on_wait, ctx);
  if (r != 0)
    on_wait(r < 0 ? r : -EIO, ctx); /* nothing armed: the module hears it now */
  return true;
}

static int run(gh_http_context_t *ctx, bool resumed)
{
  gh_pipeline_t *pl = ctx->pl;
  int ret = 0;

  bool waited = ctx->waited;
  ctx->waited = false;
  if (resumed) {
    /* after a wait on_wait checked the identity (without system calls: the
     * kernel's word is asked once per request, at its start) */
    if (!waited && pl->sec->assert_base() != 0) {
      gh__pl_log(pl, GH_LOG_ERROR, "request resumed on a thread that is impersonating");
      if (pl->sec->is_impersonating())
        pl->sec->revert();
      (void)gh_http_response_send_error(&ctx->response, 500, NULL);
      if (!apply_finish(ctx))
        advance(ctx);
    } else if (atomic_load(&ctx->pending_status) == GH_REQUEST_FINISH) {
      if (!apply_finish(ctx) && ctx->index == (size_t)-1)
        advance(ctx);
    }
  }
  while (ctx->stage <= GH_NOTIFY_END_REQUEST) {
    gh_notification_t n = ctx->stage;
    bool jumped = false;
    size_t *list = ctx->post ? pl->post_order[n] : pl->order[n];
    size_t count = ctx->post ? pl->n_post_order[n] : pl->n_order[n];

    if (n == GH_NOTIFY_LOG_REQUEST && !ctx->post && ctx->index == 0 && !ctx->response.final_sent) {
      /* The response goes out before logging, so LOG_REQUEST sees the final
       * status and size. A request no handler took is a 404. */
      if (!ctx->handled && !ctx->response.touched && !ctx->finished)
        (void)gh_http_response_send_error(&ctx->response, 404, NULL);
      (void)gh__pl_response_send_out(&ctx->response, true);
    }
    if (n == GH_NOTIFY_EXECUTE_REQUEST_HANDLER && !ctx->post && ctx->index == 0 &&
        ctx->impersonate_site) {
      int status = 0;
      if (!user_can_impersonate(ctx, &status)) {
        /* impersonate = yes never runs a handler at the service identity */
        (void)gh_http_response_send_error(&ctx->response, status, NULL);
        (void)apply_finish(ctx);
        continue;
      }
    }
    while (ctx->index < count) {
      size_t mi = list[ctx->index];
      gh__pl_module_t *m = pl->modules[mi];
      gh_module_request_cb cb = ctx->post ? m->on_post[n] : m->on_request[n];
      gh_event_provider_t prov = {.notification = n, .post = ctx->post, .ctx = ctx};
      gh_request_status_t st;
      ctx->index++;
      if (!module_runs_here(ctx, m, n))
        continue;
      if (n == GH_NOTIFY_EXECUTE_REQUEST_HANDLER)
        ctx->handled = true;
      st = gh__pl_call(ctx, mi, cb, &prov,
                       n == GH_NOTIFY_EXECUTE_REQUEST_HANDLER && ctx->impersonate_site);
      if (st == GH_REQUEST_PENDING) {
        if (suspend(ctx)) {
          /* From here on another thread may own ctx. */
          ret = GH_REQUEST_PENDING;
          goto out;
        }
        /* completed before we could suspend */
        st = (gh_request_status_t)atomic_load(&ctx->pending_status);
      } else {
        ctx->wait.cb = NULL; /* a wait without PENDING is moot */
        /* a stray completion without PENDING is ignored */
        int early = GH__PL_COMPLETED_EARLY;
        atomic_compare_exchange_strong(&ctx->state, &early, GH__PL_RUNNING);
      }
      if (st == GH_REQUEST_FINISH) {
        if (prov.error != 0 && !ctx->response.headers_sent)
          (void)gh_http_response_send_error(&ctx->response, 500, NULL);
        jumped = apply_finish(ctx);
        break;
      }
    }
    if (!jumped && (ctx->index == (size_t)-1 || ctx->index >= count))
      advance(ctx);
  }
  ctx_end(ctx);
out:
  return ret;
}

int gh__pipeline_process_source(gh_pipeline_t *pl, const char *site, const gh__pl_source_ops_t *ops,
                                void *src)
{
  int ret = 0;
  gh_http_context_t *ctx = NULL;
  if (pl == NULL || ops == NULL || !pl->started || pl->stopped) {
    ret = pl && (!pl->started || pl->stopped) ? GH_ESTATE : -EINVAL;
    goto fail;
  }
  if (pl->sec->assert_base() != 0) {
    /* DESIGN item 17: a worker never starts a request impersonating. */
    gh__pl_log(pl, GH_LOG_ERROR,
               "worker thread is not at base identity at request start "
               "(impersonating, or gh_sec_init was never called)");
    ret = GH_ESTATE;
    goto fail;
  }
  ret = ctx_new(pl, site, ops, src, &ctx);
  if (ret < 0) {
    gh__pl_log(pl, GH_LOG_ERROR, "cannot set up request: %s", gh_strerror(ret));
    goto fail;
  }
  ret = run(ctx, false);
  goto out;
fail:
  (void)ops->set_status(src, ret == GH_ESTATE && pl && pl->stopped ? 503 : 500, NULL);
  (void)ops->send(src, NULL, 0, 0);
  (void)ops->complete(src);
out:
  return ret;
}

/* ---- context API ------------------------------------------------------ */

gh_http_request_t *gh_http_context_get_request(gh_http_context_t *ctx)
{
  return ctx ? &ctx->request : NULL;
}

gh_http_response_t *gh_http_context_get_response(gh_http_context_t *ctx)
{
  return ctx ? &ctx->response : NULL;
}

gh_http_user_t *gh_http_context_get_user(gh_http_context_t *ctx)
{
  return ctx ? ctx->user : NULL;
}

gh_module_server_t *gh_http_context_get_server(gh_http_context_t *ctx)
{
  return ctx ? &ctx->pl->server : NULL;
}

gh_notification_t gh_http_context_get_notification(const gh_http_context_t *ctx)
{
  return ctx->current;
}

const char *gh_http_context_get_site_config(gh_http_context_t *ctx, const char *key)
{
  if (ctx == NULL || ctx->site_section == NULL || ctx->site_section[0] == '\0')
    return NULL;
  if (ctx->site != NULL)
    return gh__pl_site_get(ctx->site, key, GH__PL_LAST);
  return gh__pl_config_get(ctx->cfg, ctx->site_section, key, GH__PL_LAST);
}

const char *gh_http_context_get_site_config_n(gh_http_context_t *ctx, const char *key, size_t i)
{
  if (ctx == NULL || ctx->site_section == NULL || ctx->site_section[0] == '\0' || i == GH__PL_LAST)
    return NULL;
  if (ctx->site != NULL)
    return gh__pl_site_get(ctx->site, key, i);
  return gh__pl_config_get(ctx->cfg, ctx->site_section, key, i);
}

const char *gh_http_context_get_site_path(gh_http_context_t *ctx)
{
  return ctx ? ctx->site_path : NULL;
}

int gh_http_context_set_module_context(gh_http_context_t *ctx, int id, void *data,
                                       void (*cleanup)(void *data))
{
  int ret = 0;
  if (ctx == NULL || id < 0 || (size_t)id >= ctx->pl->n_modules) {
    ret = -EINVAL;
    goto out;
  }
  if (ctx->modctx[id].cleanup != NULL && ctx->modctx[id].data != data)
    ctx->modctx[id].cleanup(ctx->modctx[id].data);
  ctx->modctx[id].data = data;
  ctx->modctx[id].cleanup = cleanup;
  if (cleanup != NULL && (size_t)id >= ctx->n_cleanups)
    ctx->n_cleanups = (size_t)id + 1;
out:
  return ret;
}

void *gh_http_context_get_module_context(gh_http_context_t *ctx, int id)
{
  if (ctx == NULL || id < 0 || (size_t)id >= ctx->pl->n_modules)
    return NULL;
  return ctx->modctx[id].data;
}

void *gh_http_context_alloc(gh_http_context_t *ctx, size_t size)
{
  return ctx ? gh__pool_alloc(ctx->pool, size) : NULL;
}

char *gh_http_context_strdup(gh_http_context_t *ctx, const char *s)
{
  return (ctx && s) ? gh__pool_strdup(ctx->pool, s) : NULL;
}

int gh_http_context_impersonate(gh_http_context_t *ctx)
{
  int ret = 0;
  if (ctx == NULL) {
    ret = -EINVAL;
    goto out;
  }
  if (ctx->auth_token == 0 || ctx->user == NULL || ctx->user->custom) {
    ret = GH_ENOT_FOUND;
    goto out;
  }
  if (ctx->user->level < GH__PL_LEVEL_IMPERSONATE) {
    ret = GH_EBAD_IMPERSONATION_LEVEL;
    goto out;
  }
  ret = ctx->pl->sec->impersonate(ctx->auth_token);
  if (ret < 0)
    goto out;
  ctx->imp_depth++;
out:
  return ret;
}

int gh_http_context_openat2(gh_http_context_t *ctx, int dirfd, const char *path,
                            const struct open_how *how, size_t size)
{
  long fd;
  int ret;
  if (ctx == NULL || path == NULL || how == NULL || size != sizeof(*how)) {
    ret = -EINVAL;
    goto out;
  }
  if (ctx->scoped_call && !ctx->pl->sec->is_impersonating()) {
    /* the client's identity for this one open; never the service's */
    ret = ctx->auth_token != 0 ? ctx->pl->sec->token_openat2(ctx->auth_token, dirfd, path, how)
                               : GH_ENOT_FOUND;
    goto out;
  }
  {
    struct open_how h = *how;
    h.flags |= O_CLOEXEC;
    fd = syscall(SYS_openat2, dirfd, path, &h, sizeof(h));
    ret = fd < 0 ? -errno : (int)fd;
  }
out:
  return ret;
}

int gh_http_context_connect_unix(gh_http_context_t *ctx, const char *path, int *ret_fd)
{
  int ret;
  if (ctx == NULL || path == NULL || ret_fd == NULL) {
    ret = -EINVAL;
    goto out;
  }
  if (ctx->pl->sec->token_connect_unix == NULL) {
    ret = -ENOSYS;
    goto out;
  }
  /* always the client: never the service's nor the thread's identity */
  ret = ctx->auth_token != 0 ? ctx->pl->sec->token_connect_unix(ctx->auth_token, path, ret_fd)
                             : GH_ENOT_FOUND;
out:
  return ret;
}

int gh_http_context_get_identity_key(gh_http_context_t *ctx, const char **ret_key)
{
  char small[256], *key = NULL;
  int ret;
  if (ctx == NULL || ret_key == NULL) {
    ret = -EINVAL;
    goto out;
  }
  if (ctx->pl->sec->token_identity_key == NULL) {
    ret = -ENOSYS;
    goto out;
  }
  if (ctx->auth_token == 0) {
    ret = GH_ENOT_FOUND;
    goto out;
  }
  ret = ctx->pl->sec->token_identity_key(ctx->auth_token, small, sizeof(small));
  if (ret < 0)
    goto out;
  if ((size_t)ret < sizeof(small)) {
    key = gh_http_context_strdup(ctx, small);
  } else {
    /* a long group list: ask again with room for it */
    size_t len = (size_t)ret + 1;
    key = gh_http_context_alloc(ctx, len);
    if (key != NULL && ctx->pl->sec->token_identity_key(ctx->auth_token, key, len) != ret)
      key = NULL; /* cannot happen: tokens are immutable */
  }
  if (key == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  *ret_key = key;
  ret = 0;
out:
  return ret;
}

int gh_http_context_revert(gh_http_context_t *ctx)
{
  int ret = 0;
  if (ctx == NULL) {
    ret = -EINVAL;
    goto out;
  }
  if (!ctx->pl->sec->is_impersonating()) {
    ret = GH_ENOT_IMPERSONATING;
    goto out;
  }
  ctx->pl->sec->revert();
  ctx->imp_depth = 0;
out:
  return ret;
}

int gh_http_context_complete(gh_http_context_t *ctx, gh_request_status_t status)
{
  int ret = 0;
  int expected = GH__PL_SUSPENDED;
  if (ctx == NULL || (status != GH_REQUEST_CONTINUE && status != GH_REQUEST_FINISH)) {
    ret = -EINVAL;
    goto out;
  }
  atomic_store(&ctx->pending_status, status);
  if (atomic_compare_exchange_strong(&ctx->state, &expected, GH__PL_RUNNING)) {
    gh_pipeline_t *pl = ctx->pl;
    if (pl->exec_cb != NULL)
      pl->exec_cb(pl->exec_data, resume_cb, ctx);
    else
      resume_cb(ctx);
    goto out;
  }
  expected = GH__PL_RUNNING;
  if (!atomic_compare_exchange_strong(&ctx->state, &expected, GH__PL_COMPLETED_EARLY))
    ret = -EINVAL;
out:
  return ret;
}

int gh_http_context_wait_fd(gh_http_context_t *ctx, int fd, unsigned events, int timeout_ms,
                            gh_http_wait_cb cb, void *arg)
{
  return gh_http_context_wait_kept(ctx, fd, 0, events, timeout_ms, cb, arg);
}

int gh_http_context_wait_kept(gh_http_context_t *ctx, int fd, uint64_t key, unsigned events,
                              int timeout_ms, gh_http_wait_cb cb, void *arg)
{
  if (ctx == NULL || fd < 0 || cb == NULL || events == 0 ||
      (events & ~(GH_HTTP_WAIT_IN | GH_HTTP_WAIT_OUT)) != 0)
    return -EINVAL;
  if (ctx->src_ops->wait_fd == NULL || ctx->src_ops->can_wait == NULL ||
      !ctx->src_ops->can_wait(ctx->src))
    return GH_EUNSUPPORTED;
  if (ctx->wait.cb != NULL)
    return GH_ESTATE;
  ctx->wait.cb = cb;
  ctx->wait.arg = arg;
  ctx->wait.fd = fd;
  ctx->wait.events = events;
  ctx->wait.key = key;
  ctx->wait.timeout_ms = timeout_ms;
  ctx->wait.n = ctx->current;
  return 0;
}

const gh_auth_info_t *gh_http_context_get_auth_info(gh_http_context_t *ctx)
{
  return ctx ? ctx->info.auth : NULL;
}

int gh_http_context_map_path(gh_http_context_t *ctx, const char *url, const char **ret_path)
{
  int ret = 0;
  const char *root;
  const char *rel;
  size_t plen;
  char *buf = NULL;
  ssize_t n;
  gh_event_provider_t prov = {.notification = GH_NOTIFY_MAP_PATH, .ctx = ctx};

  if (ctx == NULL) {
    ret = -EINVAL;
    goto out;
  }
  root = gh_http_context_get_site_config(ctx, "root");
  if (root == NULL) {
    ret = GH_ENOT_FOUND;
    goto out;
  }
  if (url == NULL)
    url = ctx->info.path;
  rel = url;
  plen = strlen(ctx->site_path);
  if (plen > 1 && strncmp(url, ctx->site_path, plen) == 0)
    rel = url + plen;
  buf = gh__pool_alloc(ctx->pool, 4096);
  if (buf == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  n = gh__pl_path_join(root, rel, buf, 4096);
  if (n < 0) {
    ret = (int)n;
    goto out;
  }
  prov.url = url;
  prov.physical_path = buf;
  (void)gh__pl_raise_nested(ctx, &prov);
  *ret_path = prov.physical_path;
out:
  return ret;
}

/* ---- providers -------------------------------------------------------- */

gh_notification_t gh_event_provider_get_notification(const gh_event_provider_t *p)
{
  return p->notification;
}

bool gh_event_provider_is_post(const gh_event_provider_t *p)
{
  return p->post;
}

void gh_event_provider_set_error_status(gh_event_provider_t *p, int err)
{
  if (p != NULL)
    p->error = err;
}

int gh_event_provider_set_user(gh_event_provider_t *p, gh_http_user_t *user)
{
  int ret = 0;
  if (p == NULL || user == NULL || p->notification != GH_NOTIFY_AUTHENTICATE_REQUEST) {
    ret = -EINVAL;
    goto out;
  }
  gh_http_user_ref(user);
  gh_http_user_unref(p->ctx->user);
  p->ctx->user = user;
out:
  return ret;
}

uint32_t gh_event_provider_get_send_flags(const gh_event_provider_t *p)
{
  return (p && p->notification == GH_NOTIFY_SEND_RESPONSE) ? p->send_flags : 0;
}

int gh_event_provider_get_entity(const gh_event_provider_t *p, const void **ret_data,
                                 size_t *ret_len)
{
  if (p == NULL || p->notification != GH_NOTIFY_READ_ENTITY)
    return -EINVAL;
  *ret_data = p->entity;
  *ret_len = p->entity_len;
  return 0;
}

const char *gh_event_provider_get_url(const gh_event_provider_t *p)
{
  return (p && p->notification == GH_NOTIFY_MAP_PATH) ? p->url : NULL;
}

const char *gh_event_provider_get_physical_path(const gh_event_provider_t *p)
{
  return (p && p->notification == GH_NOTIFY_MAP_PATH) ? p->physical_path : NULL;
}

int gh_event_provider_set_physical_path(gh_event_provider_t *p, const char *path)
{
  char *copy;
  if (p == NULL || path == NULL || p->notification != GH_NOTIFY_MAP_PATH)
    return -EINVAL;
  copy = gh__pool_strdup(p->ctx->pool, path);
  if (copy == NULL)
    return -ENOMEM;
  p->physical_path = copy;
  return 0;
}
