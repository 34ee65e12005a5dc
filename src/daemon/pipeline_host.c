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

/* Built-in modules loaded on demand, in this order (order matters only
 * between modules of the same priority). */
static const char *const auto_order[] = {"authz", "log", NULL};

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

static bool bool_word(const char *v)
{
  static const char *const w[] = {"yes", "no", "true", "false", "on", "off", "1", "0", NULL};
  for (size_t i = 0; w[i] != NULL; i++)
    if (strcasecmp(v, w[i]) == 0)
      return true;
  return false;
}

/* Keys of the pipeline and the built-in modules, each with its line; a
 * [module NAME] section (with or without keys) needs its module. */
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
    const char *why = NULL, *dot;
    char what[300];
    if (site != NULL) {
      if (strcmp(it->key, "handler") == 0 && gh_site_is_pipeline(site) &&
          !is_loaded(pl, it->value, strlen(it->value))) {
        snprintf(what, sizeof(what), "no module '%s' is loaded (loading one needs a restart)",
                 it->value);
        why = what;
      } else if ((strcmp(it->key, "impersonate") == 0 || strcmp(it->key, "listing") == 0 ||
                  strcmp(it->key, "allow_symlinks") == 0) &&
                 !bool_word(it->value)) {
        snprintf(what, sizeof(what), "'%s' is not yes or no", it->value);
        why = what;
      } else if (strcmp(it->key, "cgi_timeout") == 0 &&
                 (strspn(it->value, "0123456789") != strlen(it->value) || atoi(it->value) <= 0)) {
        snprintf(what, sizeof(what), "'%s' is not a positive number of seconds", it->value);
        why = what;
      } else if ((dot = strchr(it->key, '.')) != NULL &&
                 !is_loaded(pl, it->key, (size_t)(dot - it->key))) {
        snprintf(what, sizeof(what), "unknown key (no module '%.*s' is loaded)",
                 (int)(dot - it->key), it->key);
        why = what;
      }
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
 * (fixed, echo, authinfo are not modules). */
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
    ret = gh_pipeline_config_add(pc, sec, NULL, NULL);
  }
  for (size_t i = 0; i < cfg->n_items && ret == 0; i++) {
    const gh_daemon_item_t *it = &cfg->items[i];
    const gh_site_t *site = site_of(cfg, it->section);
    if (site != NULL && !gh_site_is_pipeline(site) && strcmp(it->key, "handler") == 0)
      continue;
    ret = gh_pipeline_config_add(pc, it->section, it->key, it->value);
  }
  if (ret != 0) {
    snprintf(err, err_len, "%s: %s", cfg->path, gh_strerror(ret));
    goto out;
  }
  perr[0] = '\0';
  ret = gh_pipeline_config_check(pl, pc, perr, sizeof(perr));
  if (ret != 0) {
    snprintf(err, err_len, "%s: %s", cfg->path, perr[0] ? perr : gh_strerror(ret));
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

static bool uses_require(const gh_daemon_config_t *cfg)
{
  for (size_t i = 0; i < cfg->n_items; i++)
    if (site_of(cfg, cfg->items[i].section) != NULL &&
        (strcmp(cfg->items[i].key, "require") == 0 ||
         strncmp(cfg->items[i].key, "require ", 8) == 0))
      return true;
  return false;
}

static const gh_daemon_item_t *first_require(const gh_daemon_config_t *cfg)
{
  for (size_t i = 0; i < cfg->n_items; i++)
    if (site_of(cfg, cfg->items[i].section) != NULL &&
        strncmp(cfg->items[i].key, "require", 7) == 0)
      return &cfg->items[i];
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
  for (size_t a = 0; auto_order[a] != NULL && ret == 0; a++) {
    if (strcmp(auto_order[a], "authz") == 0 && uses_require(cfg))
      ret = load_builtin(pl, cfg, dir, "authz", first_require(cfg), false, err,
                         err_len);
    else if (strcmp(auto_order[a], "log") == 0 && cfg->access_log != NULL)
      ret = load_builtin(pl, cfg, dir, "log", server_item(cfg, "access_log"), false, err,
                         err_len);
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

/* Keys applied by a reload; everything else needs a restart. */
static bool live_key(const gh_daemon_config_t *cfg, const gh_daemon_item_t *it)
{
  static const char *const site_live[] = {"root", "index", "listing", "allow_symlinks",
                                          "cgi_timeout", "impersonate", "require", NULL};
  const gh_site_t *site = site_of(cfg, it->section);
  if (strncmp(it->section, "module ", 7) == 0)
    return true;
  if (strcmp(it->section, "server") == 0)
    return strcmp(it->key, "access_log") == 0;
  if (site == NULL || !gh_site_is_pipeline(site))
    return false;
  if (strcmp(it->key, "handler") == 0 || strchr(it->key, '.') != NULL ||
      strncmp(it->key, "require ", 8) == 0)
    return true;
  for (size_t i = 0; site_live[i] != NULL; i++)
    if (strcmp(it->key, site_live[i]) == 0)
      return true;
  return false;
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
