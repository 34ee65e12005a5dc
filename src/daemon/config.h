/* config.h: gatehoused configuration file (INI) model and parser. */
#ifndef GH_DAEMON_CONFIG_H
#define GH_DAEMON_CONFIG_H

#include <stddef.h>

#include <gatehouse/httpapi.h>

#include "authconf.h"

typedef enum gh_site_handler {
  GH_SITE_NONE = 0,
  GH_SITE_STATIC, /* plain files below root */
  GH_SITE_FIXED,  /* body = text */
  GH_SITE_ECHO,   /* test aid: answers with the request line, headers and body */
  GH_SITE_AUTHINFO, /* test aid: the auth record, token and kernel-seen uid as JSON */
} gh_site_handler_t;

typedef struct gh_site {
  char *prefix;
  gh_site_handler_t handler;
  char *root;          /* static */
  char *body;          /* fixed */
  char *content_type;  /* fixed; default text/plain */
  int status;          /* fixed; default 200 */
  unsigned delay_ms;   /* fixed; test aid: sleep before answering */
  char *index;         /* static; default index.html */
  gh_daemon_site_auth_t auth; /* auth keys (authconf.h) */
} gh_site_t;

typedef struct gh_daemon_config {
  char **listen;
  size_t n_listen;
  unsigned workers;
  char *access_log;    /* NULL: none; "-": stdout */
  unsigned shutdown_timeout_ms;
  gh_server_config_t server;
  gh_site_t *sites;
  size_t n_sites;
  gh_daemon_auth_t auth;      /* [server] auth engine and sec layer keys */
} gh_daemon_config_t;

/** Parses path into *cfg. On failure returns GH_ECONFIG (or -errno when the
 *  file cannot be read) and writes "FILE:LINE: message" into err. */
int gh_daemon_config_load(const char *path, gh_daemon_config_t *cfg, char *err, size_t err_len);
void gh_daemon_config_done(gh_daemon_config_t *cfg);

#endif
