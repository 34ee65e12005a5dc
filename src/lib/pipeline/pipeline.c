/* pipeline.c: gh_pipeline_t — module loading and registration, global notifications, sites. */
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/error.h>
#include <gatehouse/module.h>

#include "pipeline/pipeline_int.h"
#include "util/alloc.h"

#define GH__PL_MAX_MODULES 64

void gh__pl_log(gh_pipeline_t *pl, gh_log_level_t level, const char *fmt, ...)
{
  char buf[1024];
  va_list ap;
  if (pl == NULL || pl->log_cb == NULL)
    return;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  pl->log_cb(pl->log_data, level, buf);
}

int gh_pipeline_new(gh_pipeline_t **ret_pipeline)
{
  int ret = 0;
  static _Atomic uint64_t next_id = 1;
  gh_pipeline_t *pl = gh__calloc(1, sizeof(*pl));
  if (pl != NULL)
    pl->id = atomic_fetch_add(&next_id, 1);
  if (pl == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  pl->server.pl = pl;
  pl->sec = &gh__pl_real_sec_ops;
  pthread_mutex_init(&pl->lock, NULL);
  ret = gh_pipeline_config_new(&pl->cfg);
  if (ret < 0) {
    pthread_mutex_destroy(&pl->lock);
    free(pl);
    goto out;
  }
  *ret_pipeline = pl;
out:
  return ret;
}

void gh__pipeline_set_sec_ops(gh_pipeline_t *pl, const gh__pl_sec_ops_t *ops)
{
  pl->sec = ops ? ops : &gh__pl_real_sec_ops;
}

static void module_free(gh__pl_module_t *m)
{
  if (m == NULL)
    return;
  if (m->has_factory && m->factory.terminate != NULL)
    m->factory.terminate(m->factory.factory_data);
  if (m->has_global && m->global.terminate != NULL)
    m->global.terminate(m->global.global_data);
  gh__pl_keys_free(m->keys, m->n_keys);
  if (m->dl != NULL)
    dlclose(m->dl);
  free(m->name);
  free(m->path);
  free(m);
}

void gh_pipeline_free(gh_pipeline_t *pl)
{
  if (pl == NULL)
    return;
  gh_pipeline_stop(pl);
  /* the modules' site data goes while their code is loaded */
  gh__pl_config_free_site_data(pl->cfg);
  for (size_t i = pl->n_modules; i > 0; i--)
    module_free(pl->modules[i - 1]);
  free(pl->modules);
  for (int n = 0; n < GH_NOTIFY_COUNT_; n++) {
    free(pl->order[n]);
    free(pl->post_order[n]);
  }
  gh_pipeline_config_free(pl->cfg);
  gh__pl_spare_pools_free();
  pthread_mutex_destroy(&pl->lock);
  free(pl);
}

void gh_pipeline_set_log(gh_pipeline_t *pl, gh_pipeline_log_cb cb, void *data)
{
  pl->log_cb = cb;
  pl->log_data = data;
}

void gh_pipeline_set_executor(gh_pipeline_t *pl, gh_pipeline_executor_cb cb, void *data)
{
  pl->exec_cb = cb;
  pl->exec_data = data;
}

/* ---- registration ----------------------------------------------------- */

int gh__pl_struct_in_sized(void *dst, size_t dst_size, const void *src, size_t size,
                           size_t min_size, char *why, size_t whylen)
{
  int ret = 0;
  memset(dst, 0, dst_size);
  if (size < min_size || size % sizeof(void *) != 0) {
    ret = GH_EMODULE_ABI;
    snprintf(why, whylen,
             "struct_size %zu is not a size of this struct (at least %zu, a multiple of %zu)", size,
             min_size, sizeof(void *));
    goto out;
  }
  /* a newer module: what this library does not know must be unset */
  for (size_t i = dst_size; i < size; i++) {
    if (((const unsigned char *)src)[i] != 0) {
      ret = GH_EMODULE_ABI;
      snprintf(why, whylen,
               "struct_size %zu sets fields past the %zu bytes this server knows (built for a "
               "newer gatehouse)",
               size, dst_size);
      goto out;
    }
  }
  memcpy(dst, src, size < dst_size ? size : dst_size);
out:
  return ret;
}

int gh__pl_struct_in(void *dst, size_t dst_size, const void *src, size_t min_size, char *why,
                     size_t whylen)
{
  size_t size;
  int ret;
  memcpy(&size, src, sizeof(size));
  ret = gh__pl_struct_in_sized(dst, dst_size, src, size, min_size, why, whylen);
  if (ret == 0)
    memcpy(dst, &dst_size, sizeof(dst_size)); /* struct_size: as this library knows it */
  return ret;
}

int gh__pl_reg_fail(gh_module_registration_t *reg, int err, const char *fmt, ...)
{
  va_list ap;
  if (reg->mod->reg_error == 0) {
    reg->mod->reg_error = err;
    va_start(ap, fmt);
    vsnprintf(reg->mod->reg_why, sizeof(reg->mod->reg_why), fmt, ap);
    va_end(ap);
  }
  return err;
}

#define GH__PL_ALL_BITS ((1u << GH_NOTIFY_COUNT_) - 1u)

#define PRE(n, field) [GH_NOTIFY_##n] = offsetof(gh_module_factory_t, on_##field)
#define POST(n, field) [GH_NOTIFY_##n] = offsetof(gh_module_factory_t, on_post_##field)
/* where each notification's callbacks are in the factory (0: no such event) */
static const size_t pre_offset[GH_NOTIFY_COUNT_] = {
    PRE(BEGIN_REQUEST, begin_request),
    PRE(AUTHENTICATE_REQUEST, authenticate_request),
    PRE(AUTHORIZE_REQUEST, authorize_request),
    PRE(RESOLVE_REQUEST_CACHE, resolve_request_cache),
    PRE(MAP_REQUEST_HANDLER, map_request_handler),
    PRE(ACQUIRE_REQUEST_STATE, acquire_request_state),
    PRE(PRE_EXECUTE_REQUEST_HANDLER, pre_execute_request_handler),
    PRE(EXECUTE_REQUEST_HANDLER, execute_request_handler),
    PRE(RELEASE_REQUEST_STATE, release_request_state),
    PRE(UPDATE_REQUEST_CACHE, update_request_cache),
    PRE(LOG_REQUEST, log_request),
    PRE(END_REQUEST, end_request),
    PRE(SEND_RESPONSE, send_response),
    PRE(READ_ENTITY, read_entity),
    PRE(MAP_PATH, map_path),
};
static const size_t post_offset[GH_NOTIFY_COUNT_] = {
    POST(BEGIN_REQUEST, begin_request),
    POST(AUTHENTICATE_REQUEST, authenticate_request),
    POST(AUTHORIZE_REQUEST, authorize_request),
    POST(RESOLVE_REQUEST_CACHE, resolve_request_cache),
    POST(MAP_REQUEST_HANDLER, map_request_handler),
    POST(ACQUIRE_REQUEST_STATE, acquire_request_state),
    POST(PRE_EXECUTE_REQUEST_HANDLER, pre_execute_request_handler),
    POST(EXECUTE_REQUEST_HANDLER, execute_request_handler),
    POST(RELEASE_REQUEST_STATE, release_request_state),
    POST(UPDATE_REQUEST_CACHE, update_request_cache),
    POST(LOG_REQUEST, log_request),
    POST(END_REQUEST, end_request),
};
#undef PRE
#undef POST
/* a notification added to the enum needs its field(s) at the factory's tail */
_Static_assert(sizeof(gh_module_factory_t) == GH__PL_FACTORY_SIZE_2_1,
               "gh_module_factory_t grew: add the new minor version's fields to the tables");
_Static_assert(GH_NOTIFY_COUNT_ == 15, "a new notification needs its factory field");

gh_module_request_cb *gh__pl_factory_slot(gh_module_factory_t *f, gh_notification_t n, bool post)
{
  size_t off;
  if ((unsigned)n >= GH_NOTIFY_COUNT_)
    return NULL;
  off = post ? post_offset[n] : pre_offset[n];
  return off != 0 ? (gh_module_request_cb *)(void *)((char *)f + off) : NULL;
}

/* The start of a registration call that takes a struct: once only, and
 * read by the growth rule; a failure is recorded for the loader. */
static int take_struct(gh_module_registration_t *reg, bool twice, const char *type, void *dst,
                       size_t dst_size, const void *src, size_t min_size)
{
  char why[160];
  int ret;
  if (twice)
    return gh__pl_reg_fail(reg, GH_EEXISTS, "%s registered twice", type);
  ret = gh__pl_struct_in(dst, dst_size, src, min_size, why, sizeof(why));
  if (ret < 0)
    (void)gh__pl_reg_fail(reg, ret, "%s: %s", type, why);
  return ret;
}

int gh_module_registration_set_factory(gh_module_registration_t *reg,
                                       const gh_module_factory_t *factory)
{
  int ret = 0;
  gh__pl_module_t *m;
  gh_module_factory_t f;
  bool any = false;
  if (reg == NULL || factory == NULL) {
    ret = -EINVAL;
    goto out;
  }
  m = reg->mod;
  ret = take_struct(reg, m->has_factory, "gh_module_factory_t", &f, sizeof(f), factory,
                    GH__PL_FACTORY_SIZE_2_1);
  if (ret < 0)
    goto out;
  for (int n = 0; n < GH_NOTIFY_COUNT_; n++) {
    gh_module_request_cb *pre = gh__pl_factory_slot(&f, (gh_notification_t)n, false);
    gh_module_request_cb *post = gh__pl_factory_slot(&f, (gh_notification_t)n, true);
    m->on_request[n] = *pre;
    m->on_post[n] = post != NULL ? *post : NULL;
    any = any || m->on_request[n] != NULL || m->on_post[n] != NULL;
  }
  if (!any) {
    ret = gh__pl_reg_fail(reg, -EINVAL, "the request factory sets no notification callback");
    goto out;
  }
  m->factory = f;
  m->has_factory = true;
out:
  return ret;
}

int gh_module_registration_set_priority(gh_module_registration_t *reg, uint32_t mask,
                                        gh_module_priority_t priority)
{
  int ret = 0;
  if (reg == NULL) {
    ret = -EINVAL;
    goto out;
  }
  if ((unsigned)priority > GH_PRIORITY_LAST || (mask & ~GH__PL_ALL_BITS)) {
    ret = gh__pl_reg_fail(reg, -EINVAL,
                          "priority %d for mask 0x%x: no such priority or "
                          "notification",
                          (int)priority, (unsigned)mask);
    goto out;
  }
  for (int n = 0; n < GH_NOTIFY_COUNT_; n++)
    if (mask & GH_NOTIFY_BIT(n))
      reg->mod->priority[n] = priority;
out:
  return ret;
}

int gh_module_registration_set_global(gh_module_registration_t *reg,
                                      const gh_global_module_t *global)
{
  int ret = 0;
  gh__pl_module_t *m;
  gh_global_module_t g;
  if (reg == NULL || global == NULL) {
    ret = -EINVAL;
    goto out;
  }
  m = reg->mod;
  ret = take_struct(reg, m->has_global, "gh_global_module_t", &g, sizeof(g), global,
                    GH__PL_GLOBAL_SIZE_2_1);
  if (ret < 0)
    goto out;
  if (g.on_start == NULL && g.on_stop == NULL && g.on_config_reload == NULL) {
    ret = gh__pl_reg_fail(reg, -EINVAL, "the global module sets no notification callback");
    goto out;
  }
  m->global = g;
  m->on_global[GH_GLOBAL_START] = g.on_start;
  m->on_global[GH_GLOBAL_STOP] = g.on_stop;
  m->on_global[GH_GLOBAL_CONFIG_RELOAD] = g.on_config_reload;
  m->has_global = true;
out:
  return ret;
}

int gh_module_registration_set_handler(gh_module_registration_t *reg)
{
  if (reg == NULL)
    return -EINVAL;
  reg->mod->handler = true;
  return 0;
}

int gh_module_registration_set_execute_handler(gh_module_registration_t *reg,
                                               gh_module_request_cb on_execute)
{
  gh_module_factory_t f = {.struct_size = sizeof(f), .on_execute_request_handler = on_execute};
  int ret = gh_module_registration_set_factory(reg, &f);
  if (ret == 0)
    ret = gh_module_registration_set_handler(reg);
  return ret;
}

int gh_module_registration_set_streamed_body(gh_module_registration_t *reg)
{
  if (reg == NULL)
    return -EINVAL;
  reg->mod->streamed_body = true;
  return 0;
}

int gh_module_registration_set_scoped_impersonation(gh_module_registration_t *reg)
{
  if (reg == NULL)
    return -EINVAL;
  reg->mod->scoped_impersonation = true;
  return 0;
}

const char *gh_module_registration_get_name(const gh_module_registration_t *reg)
{
  return reg ? reg->mod->name : NULL;
}

int gh_module_registration_get_id(const gh_module_registration_t *reg)
{
  return reg ? reg->mod->id : -EINVAL;
}

/* ---- server ----------------------------------------------------------- */

uint32_t gh_module_server_get_version(const gh_module_server_t *server)
{
  (void)server;
  return GH_MODULE_SERVER_VERSION;
}

const char *gh_module_server_get_config(gh_module_server_t *server, const char *section,
                                        const char *key)
{
  const char *v = NULL;
  if (server == NULL)
    goto out;
  pthread_mutex_lock(&server->pl->lock);
  v = gh__pl_config_get(server->pl->cfg, section, key, GH__PL_LAST);
  pthread_mutex_unlock(&server->pl->lock);
out:
  return v;
}

void gh_module_server_log(gh_module_server_t *server, gh_log_level_t level, const char *fmt, ...)
{
  char buf[1024];
  va_list ap;
  if (server == NULL || server->pl->log_cb == NULL)
    return;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  server->pl->log_cb(server->pl->log_data, level, buf);
}

/* ---- loading ---------------------------------------------------------- */

static void seterr(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *errbuf, size_t errlen, const char *fmt, ...)
{
  va_list ap;
  if (errbuf == NULL || errlen == 0)
    return;
  va_start(ap, fmt);
  vsnprintf(errbuf, errlen, fmt, ap);
  va_end(ap);
}

static int check_abi(gh_pipeline_t *pl, const char *what, const gh_module_abi_t *abi,
                     char *errbuf, size_t errlen)
{
  int ret = 0;
  if (abi == NULL) {
    ret = GH_EMODULE_ABI;
    seterr(errbuf, errlen, "%s: no %s symbol (not a gatehouse module, or built without "
           "GH_MODULE_DEFINE)", what, GH_MODULE_ABI_SYMBOL);
    goto out;
  }
  if (abi->abi_version != GH_MODULE_ABI_VERSION) {
    ret = GH_EMODULE_ABI;
    seterr(errbuf, errlen, "%s: module ABI version %u, server expects %u; rebuild the module "
           "against this gatehouse", what, abi->abi_version, GH_MODULE_ABI_VERSION);
    goto out;
  }
  if (abi->signature == NULL || strcmp(abi->signature, GH_MODULE_SIGNATURE) != 0) {
    ret = GH_EMODULE_ABI;
    seterr(errbuf, errlen, "%s: build signature \"%.100s\" does not match the server's \"%s\"",
           what, abi->signature ? abi->signature : "(null)", GH_MODULE_SIGNATURE);
    goto out;
  }
  if (abi->name == NULL || abi->name[0] == '\0' || strlen(abi->name) > 64 ||
      strpbrk(abi->name, " \t\r\n/") != NULL) {
    ret = GH_EMODULE_ABI;
    seterr(errbuf, errlen, "%s: invalid module name", what);
    goto out;
  }
  for (size_t i = 0; i < pl->n_modules; i++) {
    if (strcmp(pl->modules[i]->name, abi->name) == 0) {
      ret = GH_EMODULE_DUPLICATE;
      seterr(errbuf, errlen, "%s: a module named \"%s\" is already loaded%s%s", what, abi->name,
             pl->modules[i]->path ? " from " : "",
             pl->modules[i]->path ? pl->modules[i]->path : "");
      goto out;
    }
  }
out:
  return ret;
}

static int add_module(gh_pipeline_t *pl, const char *path, void *dl, const gh_module_abi_t *abi,
                      gh_register_module_fn fn, char *errbuf, size_t errlen)
{
  int ret = 0;
  const char *what = path ? path : (abi && abi->name ? abi->name : "(built-in)");
  gh__pl_module_t *m = NULL;
  gh__pl_module_t **mods;
  gh_module_registration_t reg;

  if (pl->started) {
    ret = GH_ESTATE;
    seterr(errbuf, errlen, "%s: modules must be loaded before the server starts", what);
    goto out;
  }
  ret = check_abi(pl, what, abi, errbuf, errlen);
  if (ret < 0)
    goto out;
  if (fn == NULL) {
    ret = GH_ENOT_FOUND;
    seterr(errbuf, errlen, "%s: no %s function", what, GH_MODULE_REGISTER_SYMBOL);
    goto out;
  }
  if (pl->n_modules >= GH__PL_MAX_MODULES) {
    ret = GH_ELIMIT;
    seterr(errbuf, errlen, "%s: too many modules (max %d)", what, GH__PL_MAX_MODULES);
    goto out;
  }
  m = gh__calloc(1, sizeof(*m));
  mods = gh__realloc(pl->modules, (pl->n_modules + 1) * sizeof(*mods));
  if (m == NULL || mods == NULL) {
    if (mods != NULL)
      pl->modules = mods;
    ret = -ENOMEM;
    seterr(errbuf, errlen, "%s: out of memory", what);
    goto out;
  }
  pl->modules = mods;
  m->name = gh__strdup(abi->name);
  m->path = path ? gh__strdup(path) : NULL;
  if (m->name == NULL || (path && m->path == NULL)) {
    ret = -ENOMEM;
    seterr(errbuf, errlen, "%s: out of memory", what);
    goto out;
  }
  m->id = (int)pl->n_modules;
  for (int n = 0; n < GH_NOTIFY_COUNT_; n++)
    m->priority[n] = GH_PRIORITY_MEDIUM;
  reg.pl = pl;
  reg.mod = m;
  ret = fn(GH_MODULE_SERVER_VERSION, &reg, &pl->server);
  if (ret < 0 || m->reg_error < 0) {
    /* a failed registration call fails the module even if
     * gh_register_module went on as if it had worked */
    if (m->reg_error < 0)
      seterr(errbuf, errlen, "%s: gh_register_module failed: %s: %s", what,
             gh_strerror(m->reg_error), m->reg_why);
    else
      seterr(errbuf, errlen, "%s: gh_register_module failed: %s", what, gh_strerror(ret));
    ret = ret < 0 ? ret : m->reg_error;
    /* what it registered is discarded without terminate: registration failed */
    m->has_factory = m->has_global = false;
    m->has_keys = false;
    goto out;
  }
  if (!m->has_factory && !m->has_global) {
    ret = -EINVAL;
    seterr(errbuf, errlen, "%s: module registered no notification", what);
    goto out;
  }
  m->dl = dl;
  pl->modules[pl->n_modules++] = m;
  m = NULL;
  ret = 0;
  /* a configuration installed before this module declared its keys */
  gh__pl_config_bind(pl, pl->cfg);
out:
  if (m != NULL) {
    m->dl = NULL;
    module_free(m);
  }
  return ret;
}

int gh_pipeline_add_module(gh_pipeline_t *pl, const gh_module_abi_t *abi,
                           gh_register_module_fn fn, char *errbuf, size_t errlen)
{
  if (pl == NULL)
    return -EINVAL;
  return add_module(pl, NULL, NULL, abi, fn, errbuf, errlen);
}

int gh_pipeline_load_module(gh_pipeline_t *pl, const char *path, char *errbuf, size_t errlen)
{
  int ret = 0;
  void *dl = NULL;
  const gh_module_abi_t *abi;
  gh_register_module_fn fn;
  if (pl == NULL || path == NULL) {
    ret = -EINVAL;
    goto out;
  }
  if (pl->started) {
    ret = GH_ESTATE;
    seterr(errbuf, errlen, "%s: modules must be loaded before the server starts", path);
    goto out;
  }
  dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (dl == NULL) {
    const char *e = dlerror();
    ret = GH_ENOT_FOUND;
    seterr(errbuf, errlen, "%s: cannot load: %s", path, e ? e : "unknown dlopen error");
    goto out;
  }
  abi = dlsym(dl, GH_MODULE_ABI_SYMBOL);
  *(void **)&fn = dlsym(dl, GH_MODULE_REGISTER_SYMBOL);
  ret = add_module(pl, path, dl, abi, fn, errbuf, errlen);
  if (ret == 0)
    dl = NULL;
out:
  if (dl != NULL)
    dlclose(dl);
  return ret;
}

size_t gh_pipeline_get_module_count(gh_pipeline_t *pl)
{
  return pl ? pl->n_modules : 0;
}

const char *gh_pipeline_get_module_name(gh_pipeline_t *pl, size_t i)
{
  return (pl && i < pl->n_modules) ? pl->modules[i]->name : NULL;
}

/* ---- ordering --------------------------------------------------------- */

static int build_order(gh_pipeline_t *pl)
{
  int ret = 0;
  for (int n = 0; n < GH_NOTIFY_COUNT_; n++) {
    for (int post = 0; post < 2; post++) {
      size_t *list = gh__calloc(pl->n_modules + 1, sizeof(*list));
      size_t k = 0;
      if (list == NULL) {
        ret = -ENOMEM;
        goto out;
      }
      for (int prio = GH_PRIORITY_FIRST; prio <= GH_PRIORITY_LAST; prio++) {
        for (size_t i = 0; i < pl->n_modules; i++) {
          const gh__pl_module_t *m = pl->modules[i];
          gh_module_request_cb cb = post ? m->on_post[n] : m->on_request[n];
          if (cb != NULL && (int)m->priority[n] == prio)
            list[k++] = i;
        }
      }
      if (n == GH_NOTIFY_SEND_RESPONSE) {
        for (size_t a = 0, b = k; a + 1 < b; a++, b--) {
          size_t t = list[a];
          list[a] = list[b - 1];
          list[b - 1] = t;
        }
      }
      if (post) {
        free(pl->post_order[n]);
        pl->post_order[n] = list;
        pl->n_post_order[n] = k;
      } else {
        free(pl->order[n]);
        pl->order[n] = list;
        pl->n_order[n] = k;
      }
    }
  }
out:
  return ret;
}

static void raise_global(gh_pipeline_t *pl, gh_global_notification_t n)
{
  for (size_t i = 0; i < pl->n_modules; i++) {
    gh__pl_module_t *m = pl->modules[i];
    if (m->on_global[n] == NULL)
      continue;
    if (m->on_global[n](m->global.global_data, &pl->server) == GH_GLOBAL_FINISH)
      break;
  }
}

int gh_pipeline_start(gh_pipeline_t *pl)
{
  int ret = 0;
  if (pl == NULL) {
    ret = -EINVAL;
    goto out;
  }
  if (pl->started) {
    ret = GH_ESTATE;
    goto out;
  }
  ret = build_order(pl);
  if (ret < 0)
    goto out;
  gh__pl_build_skip(pl);
  pl->started = true;
  raise_global(pl, GH_GLOBAL_START);
out:
  return ret;
}

void gh_pipeline_stop(gh_pipeline_t *pl)
{
  if (pl == NULL || !pl->started || pl->stopped)
    return;
  pl->stopped = true;
  raise_global(pl, GH_GLOBAL_STOP);
}

/* ---- configuration ---------------------------------------------------- */

int gh_pipeline_config_check(gh_pipeline_t *pl, const gh_pipeline_config_t *cfg, char *errbuf,
                             size_t errlen)
{
  if (pl == NULL || cfg == NULL)
    return -EINVAL;
  return gh__pl_config_validate(pl, cfg, errbuf, errlen);
}

int gh_pipeline_set_config_take(gh_pipeline_t *pl, gh_pipeline_config_t *cfg)
{
  int ret = 0;
  if (pl == NULL || cfg == NULL) {
    ret = -EINVAL;
    goto out;
  }
  /* typed values of declared keys, parsed once here; then the site index
   * (without it, on ENOMEM, lookups scan the entries) */
  gh__pl_config_bind(pl, cfg);
  (void)gh__pl_config_index(cfg);
  pthread_mutex_lock(&pl->lock);
  /* Older configs stay allocated: running requests and modules may still
   * hold strings from them (freed with the pipeline). */
  cfg->older = pl->cfg;
  /* released: a request starting reads it without the lock (ctx_new) */
  __atomic_store_n(&pl->cfg, cfg, __ATOMIC_RELEASE);
  pthread_mutex_unlock(&pl->lock);
  if (pl->started && !pl->stopped)
    raise_global(pl, GH_GLOBAL_CONFIG_RELOAD);
out:
  return ret;
}

static const char *find_site_locked(const gh_pipeline_config_t *cfg, const char *path)
{
  const char *best = NULL;
  size_t best_len = 0;
  if (path == NULL)
    return NULL;
  for (size_t i = 0; i < cfg->n; i++) {
    const char *sec = cfg->entries[i].section;
    const char *p;
    size_t len;
    if (strncmp(sec, "site ", 5) != 0)
      continue;
    p = sec + 5;
    len = strlen(p);
    while (len > 1 && p[len - 1] == '/')
      len--;
    if (len == 1 && p[0] == '/') {
      if (best == NULL) {
        best = sec;
        best_len = 1;
      }
      continue;
    }
    if (strncmp(path, p, len) == 0 && (path[len] == '\0' || path[len] == '/') &&
        len > best_len) {
      best = sec;
      best_len = len;
    }
  }
  return best;
}

const char *gh_pipeline_find_site(gh_pipeline_t *pl, const char *path)
{
  const char *s;
  if (pl == NULL)
    return NULL;
  pthread_mutex_lock(&pl->lock);
  s = find_site_locked(pl->cfg, path);
  pthread_mutex_unlock(&pl->lock);
  return s;
}

int gh_pipeline_site_streams_body(gh_pipeline_t *pl, const char *site)
{
  int ret = 0;
  if (pl == NULL || site == NULL)
    return 0;
  pthread_mutex_lock(&pl->lock);
  const gh__pl_site_t *st = gh__pl_config_site(pl->cfg, site);
  const char *h = st != NULL ? st->handler : NULL;
  for (size_t i = 0; h != NULL && i < pl->n_modules; i++) {
    const gh__pl_module_t *m = pl->modules[i];
    if (m->handler && m->streamed_body && strcmp(m->name, h) == 0)
      ret = 1;
  }
  pthread_mutex_unlock(&pl->lock);
  return ret;
}
