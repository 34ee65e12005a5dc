/* config.h: gatehoused configuration file (INI) model and parser. */
#ifndef GH_DAEMON_CONFIG_H
#define GH_DAEMON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include <gatehouse/httpapi.h>

#include "authconf.h"
#include "metricsite.h"
#include "tlsconf.h"

typedef enum gh_site_handler {
  GH_SITE_NONE = 0,
  GH_SITE_STATIC,   /* plain files below root */
  GH_SITE_FIXED,    /* body = text */
  GH_SITE_ECHO,     /* test aid: answers with the request line, headers and body */
  GH_SITE_AUTHINFO, /* test aid: the auth record, token and kernel-seen uid as JSON */
  GH_SITE_METRICS,  /* the library's counters as Prometheus text (metricsite.c) */
  GH_SITE_MODULE,   /* any other name: a pipeline module (pipeline_host.c) */
} gh_site_handler_t;

/* One key = value of the file, in file order, for the module pipeline. */
typedef struct gh_daemon_item {
  char *section;  /* "server", "site /path" (normalised), "module NAME" */
  char *key;
  char *value;
  unsigned line;
  bool own; /* a key of the daemon's (parsed by config.c); the others belong to
               the pipeline or a module, which check them (pipeline_host.c) */
} gh_daemon_item_t;

/* One [section] line of the file, in file order (sections without keys too). */
typedef struct gh_daemon_section {
  char *name; /* normalised: "server", "site /path", "module NAME" */
  unsigned line;
} gh_daemon_section_t;

/* How often a key may be given in its section. */
typedef enum gh_daemon_key_kind {
  GH_DAEMON_KEY_ONCE = 0, /* a second line is an error naming both lines */
  GH_DAEMON_KEY_REPEAT,   /* every line adds a value (listen, module ...) */
  GH_DAEMON_KEY_MODULE,   /* [module NAME] sections: the module's key table decides */
} gh_daemon_key_kind_t;

typedef struct gh_site {
  char *prefix;
  gh_site_handler_t handler;
  char *module;        /* handler name when it runs in the pipeline (static, whoami, ...) */
  unsigned line;       /* the [site] line, for error messages */
  char *root;          /* static */
  char *body;          /* fixed */
  char *content_type;  /* fixed; default text/plain */
  int status;          /* fixed; default 200 */
  unsigned delay_ms;   /* fixed; test aid: sleep before answering */
  gh_metrics_allow_t metrics_allow; /* metrics: who may scrape */
  gh_daemon_site_auth_t auth; /* auth keys (authconf.h) */
} gh_site_t;

typedef struct gh_daemon_config {
  char **listen;
  size_t n_listen;
  unsigned workers;    /* threads per process */
  bool workers_set;    /* [server] workers was given (not the default) */
  unsigned processes;  /* [server] processes: 1 = no worker processes (default) */
  char *access_log;    /* NULL: none; "-": stdout */
  unsigned shutdown_timeout_ms;
  unsigned malloc_trim_interval_s; /* [server] malloc_trim_interval: 0 = never */
  gh_server_config_t server;
  gh_site_t *sites;
  size_t n_sites;
  gh_daemon_auth_t auth;      /* [server] auth engine and sec layer keys */
  gh_daemon_tls_t tls;        /* [server] tls_* and hsts keys (tlsconf.h) */
  gh_daemon_item_t *items;    /* every key in file order (the pipeline's configuration) */
  size_t n_items;
  gh_daemon_section_t *sections; /* every [section] line in file order, each name once */
  size_t n_sections;
  char *pid_file;             /* [server] pid_file, or NULL */
  char *path;                 /* the file, for error messages */
} gh_daemon_config_t;

/** Default workers when a site's handler relays (a module that streams
 *  bodies, gh_module_registration_set_streamed_body: the proxy waits for
 *  its upstream in the server, but holds a worker while it streams a body
 *  from or to a slow client), and the fewest that draw a warning at start. */
#define GH_RELAY_DEFAULT_WORKERS 16u
#define GH_RELAY_WARN_WORKERS 4u

/** True when the site's requests run through the module pipeline. */
static inline int gh_site_is_pipeline(const gh_site_t *s)
{
  return s->handler == GH_SITE_STATIC || s->handler == GH_SITE_MODULE;
}

/** How often a key of the daemon may appear in section (a normalised
 *  section name, as in gh_daemon_item_t): one table per section kind
 *  (config.c); [module NAME] sections are GH_DAEMON_KEY_MODULE. Site keys
 *  that are not the daemon's (own = false) are counted by the pipeline
 *  against the key tables of the loaded modules. Any thread. */
gh_daemon_key_kind_t gh_daemon_key_kind(const char *section, const char *key);

/** Parses path into *cfg. On failure returns GH_ECONFIG (or -errno when the
 *  file cannot be read) and writes "FILE:LINE: message" into err: the first
 *  error in file order. Refused: an unknown section name (with or without
 *  keys), a section given twice, a key of the daemon given twice unless it
 *  repeats (gh_daemon_key_kind), both lines named. Site keys the daemon does
 *  not know are kept (own = false) for gh_daemon_pipeline_new to check
 *  once the modules that declare them are loaded. */
int gh_daemon_config_load(const char *path, gh_daemon_config_t *cfg, char *err, size_t err_len);
void gh_daemon_config_done(gh_daemon_config_t *cfg);

#endif
