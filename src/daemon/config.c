/* config.c: gatehoused configuration parser (libinih): [server] and [site /path] sections. */
#include "config.h"
#include "confval.h"

#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct parse_ctx {
  gh_daemon_config_t *cfg;
  char msg[512];  /* first error, without the line */
  int n_items;    /* handler calls so far, to recover the line of the first error */
  int err_item;
  FILE *f;
  unsigned line;  /* line of the item being handled */
  bool at_bol;    /* the next chunk read starts a line */
} parse_ctx_t;

/* Keys that belong to later layers (pipeline): accepted and ignored here.
 * The auth keys are parsed by authconf.c. */
static const char *const later_server_keys[] = {
  "modules", "module_dir", "realm", "module", "user", "log", NULL,
};
/* Pipeline keys of the built-in modules (docs/internals/pipeline.md); any
 * module's own keys are written NAME.key and checked by pipeline_host.c. */
static const char *const later_site_keys[] = {
  "require", "impersonate", "listing", "allow_symlinks", "cgi_timeout", NULL,
};

static bool in_list(const char *const *list, const char *k)
{
  for (; *list != NULL; list++)
    if (strcmp(*list, k) == 0)
      return true;
  return false;
}

__attribute__((format(printf, 4, 5))) static int set_err(parse_ctx_t *c, const char *section,
                                                         const char *key, const char *fmt, ...)
{
  if (c->msg[0] == '\0') {
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    snprintf(c->msg, sizeof(c->msg), "[%s] %s: %s", section, key, what);
  }
  return 0;
}

static int server_key(parse_ctx_t *c, const char *section, const char *k, const char *v)
{
  gh_daemon_config_t *cfg = c->cfg;
  gh_server_config_t *s = &cfg->server;
  unsigned long long n;
  struct { const char *name; unsigned *u; size_t *z; unsigned long long max; } nums[] = {
    {"workers", &cfg->workers, NULL, 1024},
    {"io_threads", &s->io_threads, NULL, 64},
    {"max_connections", &s->max_connections, NULL, 1000000},
    {"max_uri", NULL, &s->max_uri, 1 << 20},
    {"max_header_bytes", NULL, &s->max_header_bytes, 1 << 20},
    {"max_header_count", &s->max_header_count, NULL, 10000},
    {"max_body", NULL, &s->max_body, 1ull << 32},
    {"header_timeout_ms", &s->header_timeout_ms, NULL, 3600000},
    {"body_timeout_ms", &s->body_timeout_ms, NULL, 3600000},
    {"keepalive_timeout_ms", &s->keepalive_timeout_ms, NULL, 3600000},
    {"send_timeout_ms", &s->send_timeout_ms, NULL, 3600000},
    {"max_queue", &s->max_queue, NULL, 1000000},
    {"shutdown_timeout_ms", &cfg->shutdown_timeout_ms, NULL, 3600000},
    {"malloc_trim_interval", &cfg->malloc_trim_interval_s, NULL, 86400},
  };
  if (strcmp(k, "listen") == 0) {
    char tmsg[256];
    if (gh_daemon_tls_check_listen(v, tmsg, sizeof(tmsg)) != 0)
      return set_err(c, section, k, "%s", tmsg);
    char **nl = realloc(cfg->listen, (cfg->n_listen + 1) * sizeof(*nl));
    if (nl == NULL)
      return set_err(c, section, k, "%s", "out of memory");
    cfg->listen = nl;
    if ((cfg->listen[cfg->n_listen] = strdup(v)) == NULL)
      return set_err(c, section, k, "%s", "out of memory");
    cfg->n_listen++;
    return 1;
  }
  if (strcmp(k, "processes") == 0) {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (strcmp(v, "auto") == 0) {
      cfg->processes = ncpu > 0 ? (unsigned)ncpu : 1;
    } else if (gh_daemon_parse_uint(v, 256, 0, &n) && n > 0) {
      cfg->processes = (unsigned)n;
    } else {
      return set_err(c, section, k, "'%s' is not auto or a number from 1 to 256", v);
    }
    return 1;
  }
  if (strcmp(k, "access_log") == 0) {
    free(cfg->access_log);
    cfg->access_log = v[0] ? strdup(v) : NULL;
    return 1;
  }
  if (strcmp(k, "server_header") == 0) {
    free((char *)s->server_header);
    s->server_header = strdup(v);
    return 1;
  }
  for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
    if (strcmp(k, nums[i].name) != 0)
      continue;
    if (!gh_daemon_parse_uint(v, nums[i].max, GH_CONF_SUFFIX_K | GH_CONF_SUFFIX_M, &n) || n == 0)
      return set_err(c, section, k, "'%s' is not a positive number in range", v);
    if (nums[i].u != NULL)
      *nums[i].u = (unsigned)n;
    else
      *nums[i].z = (size_t)n;
    return 1;
  }
  char amsg[256] = "";
  int a = gh_daemon_auth_server_key(&cfg->auth, k, v, amsg, sizeof(amsg));
  if (a >= 0)
    return a ? 1 : set_err(c, section, k, "%s", amsg);
  a = gh_daemon_tls_server_key(&cfg->tls, k, v, amsg, sizeof(amsg));
  if (a >= 0) {
    s->hsts = cfg->tls.hsts;
    return a ? 1 : set_err(c, section, k, "%s", amsg);
  }
  if (in_list(later_server_keys, k))
    return 1;
  return set_err(c, section, k, "%s", "unknown key");
}

static int site_key(parse_ctx_t *c, gh_site_t *site, const char *section, const char *k,
                    const char *v)
{
  unsigned long long n;
  if (strcmp(k, "handler") == 0) {
    if (strcmp(v, "static") == 0)
      site->handler = GH_SITE_STATIC;
    else if (strcmp(v, "fixed") == 0)
      site->handler = GH_SITE_FIXED;
    else if (strcmp(v, "echo") == 0)
      site->handler = GH_SITE_ECHO;
    else if (strcmp(v, "authinfo") == 0)
      site->handler = GH_SITE_AUTHINFO;
    else if (v[0] != '\0' && strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789_-") == strlen(v))
      site->handler = GH_SITE_MODULE; /* a module name: checked when modules are loaded */
    else
      return set_err(c, section, k,
                     "'%s' is not a handler (static | fixed | echo | authinfo | module name)",
                     v);
    free(site->module);
    site->module = gh_site_is_pipeline(site) ? strdup(v) : NULL;
    return 1;
  }
  char **str = NULL;
  if (strcmp(k, "root") == 0)
    str = &site->root;
  else if (strcmp(k, "body") == 0)
    str = &site->body;
  else if (strcmp(k, "content_type") == 0)
    str = &site->content_type;
  else if (strcmp(k, "index") == 0)
    str = &site->index;
  if (str != NULL) {
    free(*str);
    *str = strdup(v);
    return 1;
  }
  if (strcmp(k, "status") == 0) {
    if (!gh_daemon_parse_uint(v, 999, GH_CONF_SUFFIX_K | GH_CONF_SUFFIX_M, &n) || n < 100)
      return set_err(c, section, k, "'%s' is not a status code", v);
    site->status = (int)n;
    return 1;
  }
  if (strcmp(k, "delay_ms") == 0) {
    if (!gh_daemon_parse_uint(v, 600000, GH_CONF_SUFFIX_K | GH_CONF_SUFFIX_M, &n))
      return set_err(c, section, k, "'%s' is not a number", v);
    site->delay_ms = (unsigned)n;
    return 1;
  }
  char amsg[256] = "";
  int a = gh_daemon_auth_site_key(&site->auth, k, v, amsg, sizeof(amsg));
  if (a >= 0)
    return a ? 1 : set_err(c, section, k, "%s", amsg);
  if (in_list(later_site_keys, k) || strncmp(k, "require /", 9) == 0 || strchr(k, '.') != NULL)
    return 1;
  return set_err(c, section, k, "%s", "unknown key");
}

static gh_site_t *site_for(parse_ctx_t *c, const char *prefix)
{
  gh_daemon_config_t *cfg = c->cfg;
  for (size_t i = 0; i < cfg->n_sites; i++)
    if (strcmp(cfg->sites[i].prefix, prefix) == 0)
      return &cfg->sites[i];
  gh_site_t *ns = realloc(cfg->sites, (cfg->n_sites + 1) * sizeof(*ns));
  if (ns == NULL)
    return NULL;
  cfg->sites = ns;
  gh_site_t *s = &cfg->sites[cfg->n_sites];
  memset(s, 0, sizeof(*s));
  gh_daemon_site_auth_init(&s->auth);
  s->prefix = strdup(prefix);
  if (s->prefix == NULL)
    return NULL;
  s->line = c->line;
  cfg->n_sites++;
  return s;
}

/* fgets for inih that counts lines, so every item knows its line. */
static char *read_line(char *str, int num, void *stream)
{
  parse_ctx_t *c = stream;
  char *r = fgets(str, num, c->f);
  if (r != NULL) {
    if (c->at_bol)
      c->line++;
    size_t n = strlen(r);
    c->at_bol = n > 0 && r[n - 1] == '\n';
  }
  return r;
}

/* Keeps (section, key, value, line) for the module pipeline. */
static int add_item(parse_ctx_t *c, const char *section, const char *name, const char *value)
{
  gh_daemon_config_t *cfg = c->cfg;
  gh_daemon_item_t *ni = realloc(cfg->items, (cfg->n_items + 1) * sizeof(*ni));
  if (ni == NULL)
    return 0;
  cfg->items = ni;
  gh_daemon_item_t *it = &cfg->items[cfg->n_items];
  it->line = c->line;
  it->key = strdup(name);
  it->value = strdup(value);
  if (strncmp(section, "site ", 5) == 0) {
    const char *p = section + 5;
    while (*p == ' ')
      p++;
    it->section = malloc(strlen(p) + 6);
    if (it->section != NULL)
      sprintf(it->section, "site %s", p);
  } else {
    it->section = strdup(section);
  }
  if (it->key == NULL || it->value == NULL || it->section == NULL) {
    free(it->key);
    free(it->value);
    free(it->section);
    return 0;
  }
  cfg->n_items++;
  return 1;
}

static int on_item(void *user, const char *section, const char *name, const char *value)
{
  parse_ctx_t *c = user;
  int ok;
  c->n_items++;
  if (!add_item(c, section, name, value)) {
    ok = set_err(c, section, name, "%s", "out of memory");
  } else if (strcmp(section, "server") == 0) {
    ok = server_key(c, section, name, value);
  } else if (strncmp(section, "site ", 5) == 0) {
    const char *prefix = section + 5;
    while (*prefix == ' ')
      prefix++;
    if (prefix[0] != '/') {
      ok = set_err(c, section, name, "section needs an absolute path: [site /path], got '%s'",
                   prefix);
    } else {
      gh_site_t *s = site_for(c, prefix);
      ok = s ? site_key(c, s, section, name, value) : set_err(c, section, name, "%s", "out of memory");
    }
  } else if (strncmp(section, "module ", 7) == 0 && section[7] != '\0') {
    ok = 1; /* a module's own keys: the section name is checked against the loaded modules */
  } else {
    ok = set_err(c, section, name, "unknown section '%s' (server | site /path | module NAME)",
                 section);
  }
  if (!ok && c->err_item == 0)
    c->err_item = c->n_items;
  return ok;
}

int gh_daemon_config_load(const char *path, gh_daemon_config_t *cfg, char *err, size_t err_len)
{
  int ret = 0;
  parse_ctx_t c;
  memset(cfg, 0, sizeof(*cfg));
  memset(&c, 0, sizeof(c));
  gh_server_config_init(&cfg->server);
  gh_daemon_auth_init(&cfg->auth);
  cfg->shutdown_timeout_ms = 10000;
  cfg->malloc_trim_interval_s = 10;
  cfg->processes = 1;
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  cfg->workers = ncpu > 0 ? (unsigned)ncpu : 2;
  c.cfg = cfg;
  c.at_bol = true;
  cfg->path = strdup(path);

  FILE *f = fopen(path, "re");
  if (f == NULL) {
    ret = -errno;
    snprintf(err, err_len, "%s: cannot open: %s", path, strerror(errno));
    goto out;
  }
  c.f = f;
  int line = cfg->path ? ini_parse_stream(read_line, &c, on_item, &c) : -2;
  fclose(f);
  if (line != 0) {
    ret = GH_ECONFIG;
    if (line < 0)
      snprintf(err, err_len, "%s: cannot read", path);
    else if (c.msg[0] != '\0')
      snprintf(err, err_len, "%s:%d: %s", path, line, c.msg);
    else
      snprintf(err, err_len, "%s:%d: syntax error (expected [section] or key = value)", path,
               line);
    goto out;
  }
  if (cfg->n_listen == 0) {
    ret = GH_ECONFIG;
    snprintf(err, err_len, "%s: [server] listen: at least one listen address is required", path);
    goto out;
  }
  for (size_t i = 0; i < cfg->n_sites; i++) {
    gh_site_t *s = &cfg->sites[i];
    const char *what = NULL;
    char amsg[256];
    if (s->handler == GH_SITE_NONE)
      what = "handler: missing (static | fixed | echo | authinfo)";
    else if (s->handler == GH_SITE_STATIC && s->root == NULL)
      what = "root: required for handler = static";
    else if (s->handler == GH_SITE_STATIC && access(s->root, X_OK) != 0)
      what = "root: directory is not accessible";
    else if (s->auth.configured && gh_daemon_auth_check(&cfg->auth, &s->auth, amsg,
                                                        sizeof(amsg)) != 0)
      what = amsg;
    if (what != NULL) {
      ret = GH_ECONFIG;
      snprintf(err, err_len, "%s:%u: [site %s] %s", path, s->line, s->prefix, what);
      goto out;
    }
  }
out:
  if (ret != 0)
    gh_daemon_config_done(cfg);
  return ret;
}

void gh_daemon_config_done(gh_daemon_config_t *cfg)
{
  for (size_t i = 0; i < cfg->n_listen; i++)
    free(cfg->listen[i]);
  free(cfg->listen);
  for (size_t i = 0; i < cfg->n_sites; i++) {
    free(cfg->sites[i].prefix);
    free(cfg->sites[i].root);
    free(cfg->sites[i].body);
    free(cfg->sites[i].content_type);
    free(cfg->sites[i].index);
    free(cfg->sites[i].module);
    gh_daemon_site_auth_done(&cfg->sites[i].auth);
  }
  for (size_t i = 0; i < cfg->n_items; i++) {
    free(cfg->items[i].section);
    free(cfg->items[i].key);
    free(cfg->items[i].value);
  }
  free(cfg->items);
  free(cfg->path);
  gh_daemon_auth_done(&cfg->auth);
  gh_daemon_tls_done(&cfg->tls);
  free(cfg->sites);
  free(cfg->access_log);
  free((char *)cfg->server.server_header);
  memset(cfg, 0, sizeof(*cfg));
}
