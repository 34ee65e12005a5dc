/* config.c: gatehoused configuration parser (libinih): [server] and [site /path] sections. */
#include "config.h"
#include "confval.h"

#include <ctype.h>
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
  char msg[512];     /* first error in file order, without file and line */
  unsigned err_line; /* its line (0: none yet) */
  FILE *f;
  unsigned line;      /* line being read (and of the item being handled) */
  bool at_bol;        /* the next chunk read starts a line */
  bool after_key;     /* a key line was seen since the last [section] line */
  bool continued;     /* this line continues the key before it (indented) */
  unsigned key_line;  /* line of that key */
  unsigned long_line; /* first line longer than inih's buffer */
  int long_max;       /* the longest line inih takes */
} parse_ctx_t;

/* [server] keys that belong to later stages (module loading, privileges):
 * accepted here. The auth keys are parsed by authconf.c. */
static const char *const later_server_keys[] = {
    "modules", "module_dir", "realm", "module", "user", "log", NULL,
};

/* What site_key() returns for a key that is not the daemon's: the
 * pipeline's or a module's, checked by the pipeline once modules are
 * loaded (pipeline_host.c: unknown keys, types, repeats, file and line). */
#define NOT_MINE 2

static bool in_list(const char *const *list, const char *k)
{
  for (; *list != NULL; list++)
    if (strcmp(*list, k) == 0)
      return true;
  return false;
}

/* Keys that may be given more than once, one table per section kind: each
 * line adds a value. Every other key of the daemon is set once, so a second
 * line would silently replace the first: an error. A name ending in a space
 * is a prefix. The daemon's own site keys are all one-value; modules declare
 * their keys, repeatable or not, in their key tables (module.h). */
static const char *const server_repeat[] = {"listen",   "module",  "modules",
                                            "tls_cert", "tls_key", NULL};
static const char *const site_repeat[] = {NULL};

static bool in_repeat(const char *const *list, const char *k)
{
  for (; *list != NULL; list++) {
    size_t n = strlen(*list);
    if ((*list)[n - 1] == ' ' ? strncmp(*list, k, n) == 0 : strcmp(*list, k) == 0)
      return true;
  }
  return false;
}

gh_daemon_key_kind_t gh_daemon_key_kind(const char *section, const char *key)
{
  if (strcmp(section, "server") == 0)
    return in_repeat(server_repeat, key) ? GH_DAEMON_KEY_REPEAT : GH_DAEMON_KEY_ONCE;
  if (strncmp(section, "site ", 5) == 0)
    return in_repeat(site_repeat, key) ? GH_DAEMON_KEY_REPEAT : GH_DAEMON_KEY_ONCE;
  return GH_DAEMON_KEY_MODULE;
}

/* Records the first error in file order: "[section] key: what" at line. */
__attribute__((format(printf, 3, 4))) static void set_err_at(parse_ctx_t *c, unsigned line,
                                                             const char *fmt, ...)
{
  if (c->err_line != 0 && c->err_line <= line)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->msg, sizeof(c->msg), fmt, ap);
  va_end(ap);
  c->err_line = line;
}

__attribute__((format(printf, 4, 5))) static int set_err(parse_ctx_t *c, const char *section,
                                                         const char *key, const char *fmt, ...)
{
  char what[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof(what), fmt, ap);
  va_end(ap);
  set_err_at(c, c->line, "[%s] %s: %s", section, key, what);
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
  if (strcmp(k, "workers") == 0)
    cfg->workers_set = true;
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
  if (strcmp(k, "pid_file") == 0) {
    char pmsg[64];
    if (v[0] != '/')
      return set_err(c, section, k, "'%s' is not an absolute path", v);
    return gh_daemon_set_str(&cfg->pid_file, v, pmsg, sizeof(pmsg))
               ? 1
               : set_err(c, section, k, "%s", pmsg);
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
    else if (strcmp(v, "metrics") == 0)
      site->handler = GH_SITE_METRICS;
    else if (v[0] != '\0' && strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789_-") == strlen(v))
      site->handler = GH_SITE_MODULE; /* a module name: checked when modules are loaded */
    else
      return set_err(
          c, section, k,
          "'%s' is not a handler (static | fixed | echo | authinfo | metrics | module name)", v);
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
  if (strcmp(k, "metrics_allow") == 0) {
    char msg[160];
    if (gh_daemon_metrics_allow_parse(v, &site->metrics_allow, msg, sizeof(msg)) != 0)
      return set_err(c, section, k, "%s", msg);
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
  return NOT_MINE;
}

static gh_site_t *site_for(parse_ctx_t *c, const char *prefix, unsigned line)
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
  s->line = line;
  cfg->n_sites++;
  return s;
}

/* The normalised name of a section ("site  /a/ " -> "site /a"), or NULL with
 * the reason in msg: an unknown kind, a site path that is not absolute, a
 * module section without a name, out of memory. */
static char *section_name(const char *raw, char *msg, size_t msglen)
{
  const char *kind = NULL, *arg = NULL;
  char *ret = NULL;
  size_t n = strlen(raw);
  while (n > 0 && (raw[n - 1] == ' ' || raw[n - 1] == '\t'))
    n--;
  if (n == 6 && strncmp(raw, "server", 6) == 0) {
    ret = strdup("server");
    goto done;
  }
  if (strncmp(raw, "site", 4) == 0 && (raw[4] == ' ' || raw[4] == '\t'))
    kind = "site", arg = raw + 4;
  else if (strncmp(raw, "module", 6) == 0 && (raw[6] == ' ' || raw[6] == '\t'))
    kind = "module", arg = raw + 6;
  if (kind == NULL) {
    snprintf(msg, msglen, "unknown section (server | site /path | module NAME)");
    goto out;
  }
  arg += strspn(arg, " \t");
  n -= (size_t)(arg - raw);
  if (kind[1] == 'i') {
    if (arg[0] != '/') {
      snprintf(msg, msglen, "section needs an absolute path: [site /path], got '%.*s'", (int)n,
               arg);
      goto out;
    }
    while (n > 1 && arg[n - 1] == '/') /* [site /a/] is [site /a], as for the server */
      n--;
  }
  ret = malloc(strlen(kind) + n + 2);
  if (ret != NULL)
    snprintf(ret, strlen(kind) + n + 2, "%s %.*s", kind, (int)n, arg);
done:
  if (ret == NULL)
    snprintf(msg, msglen, "out of memory");
out:
  return ret;
}

/* A [section] line: its kind must be known, its name new. Sections are
 * recorded here, not from their keys, so that one without keys is checked
 * too (libinih never reports it). */
static void section_line(parse_ctx_t *c, const char *raw, size_t len)
{
  gh_daemon_config_t *cfg = c->cfg;
  char buf[64], msg[256];
  char *name = NULL;
  if (len >= 50) { /* libinih keeps 49 characters of a section name */
    set_err_at(c, c->line, "[%.*s...]: section name longer than 49 characters", 40, raw);
    goto out;
  }
  memcpy(buf, raw, len);
  buf[len] = '\0';
  name = section_name(buf, msg, sizeof(msg));
  if (name == NULL) {
    set_err_at(c, c->line, "[%s]: %s", buf, msg);
    goto out;
  }
  for (size_t i = 0; i < cfg->n_sections; i++) {
    if (strcmp(cfg->sections[i].name, name) == 0) {
      set_err_at(c, c->line,
                 "[%s]: section given twice, first at line %u (give its keys in one "
                 "section)",
                 name, cfg->sections[i].line);
      goto out;
    }
  }
  gh_daemon_section_t *ns = realloc(cfg->sections, (cfg->n_sections + 1) * sizeof(*ns));
  if (ns == NULL) {
    set_err_at(c, c->line, "[%s]: out of memory", name);
    goto out;
  }
  cfg->sections = ns;
  ns[cfg->n_sections].name = name;
  ns[cfg->n_sections].line = c->line;
  cfg->n_sections++;
  if (strncmp(name, "site ", 5) == 0 && site_for(c, name + 5, c->line) == NULL)
    set_err_at(c, c->line, "[%s]: out of memory", name);
  name = NULL;
out:
  free(name);
}

/* Reads one line the way libinih's ini_parse_stream() does (BOM, leading
 * blanks, comment, indented continuation of the key before, [section],
 * key = value) for what inih does not report: section lines and
 * continuation lines. */
static void scan_line(parse_ctx_t *c, const char *chunk)
{
  const char *start = chunk, *end;
  bool was_space = false;
  c->continued = false;
  if (c->line == 1 && strncmp(start, "\xEF\xBB\xBF", 3) == 0)
    start += 3;
  while (*start != '\0' && isspace((unsigned char)*start))
    start++;
  if (*start == '\0' || *start == ';' || *start == '#')
    return;
  if (c->after_key && start > chunk) {
    c->continued = true;
    return;
  }
  /* up to the first of chars, or an inline comment (";" after a blank) */
  const char *chars = *start == '[' ? "]" : "=:";
  for (end = start + (*start == '['); *end != '\0' && strchr(chars, *end) == NULL; end++) {
    if (was_space && *end == ';')
      break;
    was_space = isspace((unsigned char)*end);
  }
  if (*start == '[' && *end == ']') {
    c->after_key = false;
    section_line(c, start + 1, (size_t)(end - start - 1));
  } else if (*start != '[' && (*end == '=' || *end == ':')) {
    c->after_key = true;
    c->key_line = c->line;
  }
}

/* fgets for inih that counts lines, so every item knows its line. */
static char *read_line(char *str, int num, void *stream)
{
  parse_ctx_t *c = stream;
  char *r = fgets(str, num, c->f);
  if (r != NULL) {
    size_t n = strlen(r);
    if (c->at_bol) {
      c->line++;
      scan_line(c, r);
      if (n == (size_t)num - 1 && r[n - 1] != '\n' && c->long_line == 0)
        c->long_line = c->line, c->long_max = num - 2; /* refused unless it ends the file */
    }
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
  it->own = false;
  it->key = strdup(name);
  it->value = strdup(value);
  it->section = strdup(section);
  if (it->key == NULL || it->value == NULL || it->section == NULL) {
    free(it->key);
    free(it->value);
    free(it->section);
    return 0;
  }
  cfg->n_items++;
  return 1;
}

/* The first earlier line of the last item's key in its section, when the
 * key is the daemon's and may be given only once. */
static const gh_daemon_item_t *given_before(const gh_daemon_config_t *cfg)
{
  const gh_daemon_item_t *it = &cfg->items[cfg->n_items - 1];
  if (!it->own || gh_daemon_key_kind(it->section, it->key) != GH_DAEMON_KEY_ONCE)
    return NULL;
  for (size_t i = 0; i + 1 < cfg->n_items; i++)
    if (strcmp(cfg->items[i].key, it->key) == 0 && strcmp(cfg->items[i].section, it->section) == 0)
      return &cfg->items[i];
  return NULL;
}

/* A one-value key of the daemon given again (the last item): the error,
 * naming the first line. */
static bool report_twice(parse_ctx_t *c, const char *sec, const char *name)
{
  const gh_daemon_item_t *first = given_before(c->cfg);
  if (first == NULL)
    return false;
  if (c->continued)
    set_err(c, sec, name, "this indented line continues the key of line %u, which takes one value",
            c->key_line);
  else
    set_err(c, sec, name, "given twice, first at line %u (this key takes one value)", first->line);
  return true;
}

static int on_item(void *user, const char *section, const char *name, const char *value)
{
  parse_ctx_t *c = user;
  char msg[256];
  char *sec = NULL;
  int ok = 0;
  if (c->err_line != 0)
    goto out; /* only the first error is reported: no more work (bounded on any input) */
  if (section[0] == '\0') {
    set_err_at(c, c->line, "%s: key before any [section]", name);
    goto out;
  }
  sec = section_name(section, msg, sizeof(msg)); /* an unknown one: its line said so already */
  if (sec == NULL) {
    set_err(c, section, name, "%s", msg);
    goto out;
  }
  if (!add_item(c, sec, name, value)) {
    set_err(c, sec, name, "%s", "out of memory");
    goto out;
  }
  if (strcmp(sec, "server") == 0) {
    c->cfg->items[c->cfg->n_items - 1].own = true;
    if (!report_twice(c, sec, name))
      ok = server_key(c, sec, name, value);
  } else if (strncmp(sec, "site ", 5) == 0) {
    gh_site_t *s = site_for(c, sec + 5, c->line);
    ok = s ? site_key(c, s, sec, name, value) : set_err(c, sec, name, "%s", "out of memory");
    /* the pipeline's and the modules' keys are theirs to check (pipeline_host.c) */
    c->cfg->items[c->cfg->n_items - 1].own = ok != NOT_MINE;
    if (ok == NOT_MINE)
      ok = 1;
    else if (report_twice(c, sec, name))
      ok = 0;
  } else {
    ok = 1; /* [module NAME]: the module's keys, checked once it is loaded */
  }
out:
  free(sec);
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
  bool rerr = ferror(f) != 0;
  fclose(f);
  if (line < 0 || rerr) {
    ret = GH_ECONFIG;
    snprintf(err, err_len, "%s: cannot read", path);
    goto out;
  }
  /* inih's line is the first line it refused: a syntax error (or a line
   * cut short) unless it is the line of an error of ours */
  unsigned ul = line > 0 ? (unsigned)line : 0;
  if (ul > 0 && (c.err_line == 0 || ul < c.err_line || (ul == c.err_line && ul == c.long_line))) {
    ret = GH_ECONFIG;
    if (ul == c.long_line)
      snprintf(err, err_len, "%s:%d: line longer than %d characters", path, line, c.long_max);
    else
      snprintf(err, err_len, "%s:%d: syntax error (expected [section] or key = value)", path,
               line);
    goto out;
  }
  if (c.err_line != 0) {
    ret = GH_ECONFIG;
    snprintf(err, err_len, "%s:%u: %s", path, c.err_line, c.msg);
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
    unsigned eline = s->line;
    char amsg[256];
    if (s->handler == GH_SITE_NONE)
      what = "handler: missing (static | fixed | echo | authinfo | metrics)";
    else if (s->handler == GH_SITE_STATIC && s->root == NULL)
      what = "root: required for handler = static";
    else if (s->handler == GH_SITE_STATIC && access(s->root, X_OK) != 0)
      what = "root: directory is not accessible";
    else if (s->metrics_allow.set && s->handler != GH_SITE_METRICS)
      what = "metrics_allow: only for handler = metrics";
    else if (s->handler == GH_SITE_METRICS && !s->metrics_allow.set &&
             gh_daemon_metrics_allow_parse("loopback", &s->metrics_allow, amsg, sizeof(amsg)) != 0)
      what = amsg;
    else if (s->auth.configured &&
             gh_daemon_auth_check(&cfg->auth, &s->auth, s->prefix, amsg, sizeof(amsg)) != 0)
      what = amsg;
    if (what != NULL) {
      ret = GH_ECONFIG;
      snprintf(err, err_len, "%s:%u: [site %s] %s", path, eline, s->prefix, what);
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
    free(cfg->sites[i].module);
    gh_daemon_site_auth_done(&cfg->sites[i].auth);
  }
  for (size_t i = 0; i < cfg->n_items; i++) {
    free(cfg->items[i].section);
    free(cfg->items[i].key);
    free(cfg->items[i].value);
  }
  free(cfg->items);
  for (size_t i = 0; i < cfg->n_sections; i++)
    free(cfg->sections[i].name);
  free(cfg->sections);
  free(cfg->path);
  free(cfg->pid_file);
  gh_daemon_auth_done(&cfg->auth);
  gh_daemon_tls_done(&cfg->tls);
  free(cfg->sites);
  free(cfg->access_log);
  free((char *)cfg->server.server_header);
  memset(cfg, 0, sizeof(*cfg));
}
