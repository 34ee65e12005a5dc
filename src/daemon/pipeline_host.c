/* pipeline_host.c: gatehoused's module pipeline — module loading, the pipeline's configuration, dispatch of pipeline sites, SIGHUP reload. */
#include "pipeline_host.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gatehouse/error.h>

#include "daemonlog.h"
#include "gh_config.h"

/* Built-in modules loaded when the configuration uses them, in this order
 * (order matters only between modules of the same priority): by a site key
 * (also as "KEY /sub/path") or a [server] key. Only the trigger is here:
 * each module declares and checks its keys itself (its key table). An
 * `always` module is also loaded without its trigger when it is installed
 * (authz: rules a reload adds are then enforced, never ignored; with no
 * rules it lets every request through). */
static const struct {
  const char *module;
  const char *site_key;
  const char *server_key;
  bool always;
} autoload[] = {
    {"authz", "require", NULL, true},
    {"log", NULL, "access_log", false},
};

static const gh_site_t *site_of(const gh_daemon_config_t *cfg, const char *section)
{
  if (strncmp(section, "site ", 5) != 0)
    return NULL;
  for (size_t i = 0; i < cfg->n_sites; i++)
    if (strcmp(cfg->sites[i].prefix, section + 5) == 0)
      return &cfg->sites[i];
  return NULL;
}

static const gh_daemon_item_t *server_item(const gh_daemon_config_t *cfg, const char *key)
{
  const gh_daemon_item_t *last = NULL;
  for (size_t i = 0; i < cfg->n_items; i++)
    if (strcmp(cfg->items[i].section, "server") == 0 && strcmp(cfg->items[i].key, key) == 0)
      last = &cfg->items[i];
  return last;
}

static bool is_loaded(gh_pipeline_t *pl, const char *name, size_t len)
{
  size_t n = gh_pipeline_get_module_count(pl);
  for (size_t i = 0; i < n; i++) {
    const char *m = gh_pipeline_get_module_name(pl, i);
    if (m != NULL && strlen(m) == len && strncmp(m, name, len) == 0)
      return true;
  }
  return false;
}

static bool is_dir(const char *p)
{
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *gh_daemon_module_dir(const gh_daemon_config_t *cfg)
{
  static char build_dir[PATH_MAX], installed[PATH_MAX];
  const gh_daemon_item_t *it = server_item(cfg, "module_dir");
  char exe[PATH_MAX], probe[PATH_MAX + 32];
  ssize_t n;
  if (it != NULL)
    return it->value;
  /* gatehoused run from a meson build directory: use the modules built
   * next to it, so tests and `make demo` need no installation */
  n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n > 0) {
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash != NULL) {
      *slash = '\0';
      snprintf(probe, sizeof(probe), "%s/build.ninja", exe);
      if (access(probe, F_OK) == 0) {
        snprintf(probe, sizeof(probe), "%s/modules", exe);
        if (is_dir(probe) && strlen(probe) < sizeof(build_dir)) {
          memcpy(build_dir, probe, strlen(probe) + 1);
          return build_dir;
        }
      }
      /* an installed tree, wherever it is (staged with DESTDIR, moved):
       * the modules installed with this binary, found from it */
      char rel[PATH_MAX + sizeof(GH_MODULE_DIR_FROM_SBIN) + 1];
      if (GH_MODULE_DIR_FROM_SBIN[0] != '\0') {
        snprintf(rel, sizeof(rel), "%s/%s", exe, GH_MODULE_DIR_FROM_SBIN);
        if (realpath(rel, installed) != NULL && is_dir(installed))
          return installed;
      }
    }
  }
  return GH_MODULE_DIR;
}

/* dir/NAME.so (installed layout) or dir/NAME/NAME.so (build tree). */
static bool builtin_path(const char *dir, const char *name, char *out, size_t len)
{
  snprintf(out, len, "%s/%s.so", dir, name);
  if (access(out, F_OK) == 0)
    return true;
  snprintf(out, len, "%s/%s/%s.so", dir, name, name);
  return access(out, F_OK) == 0;
}

static int load_path(gh_pipeline_t *pl, const gh_daemon_config_t *cfg, const char *path,
                     const gh_daemon_item_t *why, char *err, size_t err_len)
{
  char lerr[768];
  int ret = gh_pipeline_load_module(pl, path, lerr, sizeof(lerr));
  if (ret < 0) {
    if (why != NULL)
      snprintf(err, err_len, "%s:%u: [%s] %s: %s", cfg->path, why->line, why->section, why->key,
               lerr[0] ? lerr : gh_strerror(ret));
    else
      snprintf(err, err_len, "%s: %s", cfg->path, lerr[0] ? lerr : gh_strerror(ret));
  }
  return ret;
}

/* strict: the name was asked for explicitly (`modules =`), so one already
 * loaded is a duplicate; otherwise a loaded module of that name serves. */
static int load_builtin(gh_pipeline_t *pl, const gh_daemon_config_t *cfg, const char *dir,
                        const char *name, const gh_daemon_item_t *why, bool strict, char *err,
                        size_t err_len)
{
  char path[PATH_MAX];
  int ret = 0;
  if (is_loaded(pl, name, strlen(name))) {
    if (strict) {
      ret = GH_EMODULE_DUPLICATE;
      snprintf(err, err_len, "%s:%u: [%s] %s: module '%s' is already loaded (by a `module =` "
               "line or listed twice)", cfg->path, why->line, why->section, why->key, name);
    }
    goto out;
  }
  if (!builtin_path(dir, name, path, sizeof(path))) {
    ret = GH_ENOT_FOUND;
    if (why != NULL)
      snprintf(err, err_len,
               "%s:%u: [%s] %s: no module '%s': neither %s/%s.so nor %s/%s/%s.so exists "
               "(module_dir) and no `module = PATH` line loads it",
               cfg->path, why->line, why->section, why->key, name, dir, name, dir, name, name);
    else
      snprintf(err, err_len, "%s: module '%s' not found in %s", cfg->path, name, dir);
    goto out;
  }
  ret = load_path(pl, cfg, path, why, err, err_len);
out:
  return ret;
}

static const char *builtin_name(gh_site_handler_t h)
{
  switch (h) {
  case GH_SITE_FIXED:
    return "fixed";
  case GH_SITE_ECHO:
    return "echo";
  case GH_SITE_AUTHINFO:
    return "authinfo";
  default:
    return "?";
  }
}

/* The daemon's part of checking, before the pipeline's (values, repeats,
 * unknown keys of pipeline sites: gh_pipeline_config_check): a [module
 * NAME] section needs its module; a pipeline site's handler must be
 * loaded; a site of a built-in handler (fixed, echo, authinfo: no module
 * pipeline) takes only the daemon's keys: any other there would be
 * silently ignored (a require would serve everyone), so it is refused. */
static int check_items(gh_pipeline_t *pl, const gh_daemon_config_t *cfg, char *err,
                       size_t err_len)
{
  int ret = 0;
  for (size_t i = 0; i < cfg->n_sections; i++) {
    const gh_daemon_section_t *sec = &cfg->sections[i];
    if (strncmp(sec->name, "module ", 7) == 0 &&
        !is_loaded(pl, sec->name + 7, strlen(sec->name + 7))) {
      ret = GH_ECONFIG;
      snprintf(err, err_len, "%s:%u: [%s]: no module '%s' is loaded", cfg->path, sec->line,
               sec->name, sec->name + 7);
      break;
    }
  }
  for (size_t i = 0; i < cfg->n_items && ret == 0; i++) {
    const gh_daemon_item_t *it = &cfg->items[i];
    const gh_site_t *site = site_of(cfg, it->section);
    const char *why = NULL;
    char what[400];
    if (site == NULL)
      continue;
    if (strcmp(it->key, "handler") == 0 && gh_site_is_pipeline(site) &&
        !is_loaded(pl, it->value, strlen(it->value))) {
      snprintf(what, sizeof(what), "no module '%s' is loaded (loading one needs a restart)",
               it->value);
      why = what;
    } else if (!it->own && !gh_site_is_pipeline(site)) {
      /* whoever's key it is (a module's, maybe one not loaded), it would
       * be ignored here */
      snprintf(what, sizeof(what),
               "has no effect with handler = %s (built-in handlers take only the daemon's "
               "own keys and skip the module pipeline and its authorization); use a module "
               "handler such as whoami",
               builtin_name(site->handler));
      why = what;
    }
    if (why != NULL) {
      ret = GH_ECONFIG;
      snprintf(err, err_len, "%s:%u: [%s] %s: %s", cfg->path, it->line, it->section, it->key,
               why);
    }
  }
  return ret;
}

/* The pipeline's view: every item except the handler of built-in sites
 * (fixed, echo, authinfo are not modules), each with its line and whether
 * it is the daemon's own (the pipeline then checks it only if a module
 * declares it too); then the pipeline's check of everything else. */
static int build_config(gh_pipeline_t *pl, const gh_daemon_config_t *cfg,
                        gh_pipeline_config_t **ret_pc, char *err, size_t err_len)
{
  gh_pipeline_config_t *pc = NULL;
  char perr[512];
  int ret = check_items(pl, cfg, err, err_len);
  if (ret != 0)
    goto out;
  ret = gh_pipeline_config_new(&pc);
  for (size_t i = 0; i < cfg->n_sites && ret == 0; i++) {
    char sec[4200];
    snprintf(sec, sizeof(sec), "site %s", cfg->sites[i].prefix);
    ret = gh_pipeline_config_add_at(pc, sec, NULL, NULL, cfg->path, cfg->sites[i].line,
                                    GH_PIPELINE_CONFIG_HOST);
  }
  for (size_t i = 0; i < cfg->n_items && ret == 0; i++) {
    const gh_daemon_item_t *it = &cfg->items[i];
    const gh_site_t *site = site_of(cfg, it->section);
    if (site != NULL && !gh_site_is_pipeline(site) && strcmp(it->key, "handler") == 0)
      continue;
    ret = gh_pipeline_config_add_at(pc, it->section, it->key, it->value, cfg->path, it->line,
                                    it->own ? GH_PIPELINE_CONFIG_HOST : 0);
  }
  if (ret != 0) {
    snprintf(err, err_len, "%s: %s", cfg->path, gh_strerror(ret));
    goto out;
  }
  /* values, repeats and unknown keys, against the loaded modules' key
   * tables; the message has the file and line */
  perr[0] = '\0';
  ret = gh_pipeline_config_check(pl, pc, perr, sizeof(perr));
  if (ret != 0) {
    snprintf(err, err_len, "%s", perr[0] ? perr : gh_strerror(ret));
    goto out;
  }
  *ret_pc = pc;
  pc = NULL;
out:
  gh_pipeline_config_free(pc);
  return ret;
}

static void on_pipeline_log(void *data, gh_log_level_t level, const char *msg)
{
  (void)data;
  gh_dlog((int)level, "%s", msg);
}

/* The first line that loads an autoload module: a site key (KEY or
 * "KEY /sub") or a [server] key with a value; NULL when none. */
static const gh_daemon_item_t *autoload_trigger(const gh_daemon_config_t *cfg, size_t a)
{
  const char *sk = autoload[a].site_key, *vk = autoload[a].server_key;
  for (size_t i = 0; i < cfg->n_items; i++) {
    const gh_daemon_item_t *it = &cfg->items[i];
    size_t n = sk != NULL ? strlen(sk) : 0;
    if (sk != NULL && site_of(cfg, it->section) != NULL && strncmp(it->key, sk, n) == 0 &&
        (it->key[n] == '\0' || (it->key[n] == ' ' && it->key[n + 1] == '/')))
      return it;
    if (vk != NULL && strcmp(it->section, "server") == 0 && strcmp(it->key, vk) == 0 &&
        it->value[0] != '\0')
      return it;
  }
  return NULL;
}

int gh_daemon_pipeline_new(const gh_daemon_config_t *cfg, gh_pipeline_t **ret_pl, char *err,
                           size_t err_len)
{
  gh_pipeline_t *pl = NULL;
  gh_pipeline_config_t *pc = NULL;
  const char *dir = gh_daemon_module_dir(cfg);
  int ret = gh_pipeline_new(&pl);
  if (ret != 0) {
    snprintf(err, err_len, "%s: pipeline: %s", cfg->path, gh_strerror(ret));
    goto out;
  }
  gh_pipeline_set_log(pl, on_pipeline_log, NULL);
  /* 1. external modules, in file order */
  for (size_t i = 0; i < cfg->n_items && ret == 0; i++) {
    const gh_daemon_item_t *it = &cfg->items[i];
    if (strcmp(it->section, "server") == 0 && strcmp(it->key, "module") == 0)
      ret = load_path(pl, cfg, it->value, it, err, err_len);
  }
  /* 2. built-ins named by `modules = a b c` */
  for (size_t i = 0; i < cfg->n_items && ret == 0; i++) {
    const gh_daemon_item_t *it = &cfg->items[i];
    if (strcmp(it->section, "server") != 0 || strcmp(it->key, "modules") != 0)
      continue;
    char *copy = strdup(it->value), *save = NULL;
    if (copy == NULL) {
      ret = -ENOMEM;
      snprintf(err, err_len, "%s: out of memory", cfg->path);
      break;
    }
    for (char *w = strtok_r(copy, " \t,", &save); w != NULL && ret == 0;
         w = strtok_r(NULL, " \t,", &save))
      ret = load_builtin(pl, cfg, dir, w, it, true, err, err_len);
    free(copy);
  }
  /* 3. what the configuration uses */
  for (size_t a = 0; a < sizeof(autoload) / sizeof(autoload[0]) && ret == 0; a++) {
    const gh_daemon_item_t *why = autoload_trigger(cfg, a);
    char path[PATH_MAX];
    if (why != NULL ||
        (autoload[a].always && builtin_path(dir, autoload[a].module, path, sizeof(path))))
      ret = load_builtin(pl, cfg, dir, autoload[a].module, why, false, err, err_len);
  }
  for (size_t i = 0; i < cfg->n_items && ret == 0; i++) {
    const gh_daemon_item_t *it = &cfg->items[i];
    const gh_site_t *site = site_of(cfg, it->section);
    if (site != NULL && gh_site_is_pipeline(site) && strcmp(it->key, "handler") == 0)
      ret = load_builtin(pl, cfg, dir, it->value, it, false, err, err_len);
  }
  if (ret != 0)
    goto out;
  ret = build_config(pl, cfg, &pc, err, err_len);
  if (ret != 0)
    goto out;
  ret = gh_pipeline_set_config_take(pl, pc);
  pc = NULL;
  if (ret != 0) {
    snprintf(err, err_len, "%s: pipeline: %s", cfg->path, gh_strerror(ret));
    goto out;
  }
  *ret_pl = pl;
  pl = NULL;
out:
  gh_pipeline_config_free(pc);
  gh_pipeline_free(pl);
  return ret;
}

/* Keys applied by a reload; everything else needs a restart. The keys of
 * the pipeline and of modules are read per request or at CONFIG_RELOAD. */
static bool live_key(const gh_daemon_config_t *cfg, const gh_daemon_item_t *it)
{
  const gh_site_t *site = site_of(cfg, it->section);
  if (strncmp(it->section, "module ", 7) == 0)
    return true;
  if (strcmp(it->section, "server") == 0)
    return strcmp(it->key, "access_log") == 0;
  if (site == NULL || !gh_site_is_pipeline(site))
    return false;
  return !it->own || strcmp(it->key, "handler") == 0 || strcmp(it->key, "root") == 0;
}

static const gh_daemon_item_t *next_fixed(const gh_daemon_config_t *cfg, size_t *i)
{
  while (*i < cfg->n_items && live_key(cfg, &cfg->items[*i]))
    (*i)++;
  return *i < cfg->n_items ? &cfg->items[(*i)++] : NULL;
}

/* Logs the first restart-only key that differs between the two files. */
static void warn_restart(const gh_daemon_config_t *o, const gh_daemon_config_t *n)
{
  size_t i = 0, j = 0;
  for (;;) {
    const gh_daemon_item_t *a = next_fixed(o, &i), *b = next_fixed(n, &j);
    if (a == NULL && b == NULL)
      break;
    if (a != NULL && b != NULL && strcmp(a->section, b->section) == 0 &&
        strcmp(a->key, b->key) == 0 && strcmp(a->value, b->value) == 0)
      continue;
    if (b != NULL)
      gh_dlog(LOG_WARNING, "%s:%u: [%s] %s: changed; this key takes effect after a restart",
              n->path, b->line, b->section, b->key);
    else
      gh_dlog(LOG_WARNING, "%s: [%s] %s: removed; this takes effect after a restart", n->path,
              a->section, a->key);
    break;
  }
}

int gh_daemon_pipeline_reload(gh_pipeline_t *pl, const gh_daemon_config_t *oldcfg,
                              const gh_daemon_config_t *newcfg, char *err, size_t err_len)
{
  gh_pipeline_config_t *pc = NULL;
  int ret = build_config(pl, newcfg, &pc, err, err_len);
  if (ret != 0)
    goto out;
  warn_restart(oldcfg, newcfg);
  ret = gh_pipeline_set_config_take(pl, pc);
  pc = NULL;
  if (ret != 0)
    snprintf(err, err_len, "%s: pipeline: %s", newcfg->path, gh_strerror(ret));
out:
  gh_pipeline_config_free(pc);
  return ret;
}

void gh_daemon_pipeline_run(gh_request_t *req, const gh_site_t *site, gh_pipeline_t *pl)
{
  int ret;
  if (pl == NULL) {
    gh_response_set_status(req, 503, NULL);
    gh_response_send(req, "503 Service Unavailable\n", 24, 0);
    gh_request_complete(req);
    return;
  }
  /* the pipeline owns req from here (completes it now or after PENDING) */
  ret = gh_pipeline_process(pl, site->prefix, req);
  if (ret < 0)
    gh_dlog(LOG_ERR, "[site %s] pipeline: %s", site->prefix, gh_strerror(ret));
}
