/* authconf.h: gatehoused authentication configuration — [server] engine keys, [site] auth keys, server set-up. */
#ifndef GH_DAEMON_AUTHCONF_H
#define GH_DAEMON_AUTHCONF_H

#include <stdbool.h>
#include <stddef.h>

#include <gatehouse/authinfo.h>
#include <gatehouse/httpapi.h>

/* [server] keys of the auth engine and the sec layer. */
typedef struct gh_daemon_auth {
  char *keytab;
  char *service_principal;
  char *ntlm_service_name;
  char *ntlm_user_file;
  char *pam_service;
  char *ccache_dir;
  char *unmapped_user;
  char *s4u_principal;
  unsigned min_uid;           /* default 1000 */
  unsigned basic_cache_ttl_s; /* default 60 */
  unsigned name_map_cache_ttl_s; /* default 5 */
  unsigned pam_timeout_ms;    /* pam_timeout (seconds in the file); 0 = library default */
  unsigned pam_max_concurrent;
  bool replay_cache_file; /* [server] replay_cache = file: MIT's shared file cache */
  char *replay_cache_url;      /* replay_cache = redis://... | unix:...: the farm's Redis */
  char *replay_cache_password; /* read from replay_cache_password_file at parse time; wiped */
  char *replay_cache_password_file;
  bool replay_cache_fallback_local; /* replay_cache_unavailable = local (default fail) */
  unsigned replay_cache_timeout_ms; /* 0 = library default (500) */
  unsigned group_cache_ttl_s; /* default 60 */
  bool peer_groups_nss;       /* peer_groups = nss (default kernel) */
} gh_daemon_auth_t;

/* [site] keys. */
typedef struct gh_daemon_site_auth {
  bool configured;           /* an auth key was given */
  bool anonymous;            /* "anonymous" in auth: unauthenticated requests are served */
  gh_auth_settings_t s;      /* s.realm points at realm */
  char *realm;
  char *probe_dir;           /* handler = authinfo: where the kernel-uid probe file is made */
  char *allowed_spns;        /* s.allowed_spns points at it (tlsconf.c / authconf.c) */
  char *s4u_targets;         /* s.s4u_targets points at it */
  bool session;              /* session = cookie: gh_url_group_set_auth_session(sess) */
  gh_auth_session_settings_t sess; /* its strings point at the three below */
  char *session_key_file;    /* sess.key_file (checked when parsed) */
  char *session_cookie;      /* sess.cookie */
  char *session_logout;      /* sess.logout */
} gh_daemon_site_auth_t;

void gh_daemon_auth_init(gh_daemon_auth_t *a);
void gh_daemon_auth_done(gh_daemon_auth_t *a);
void gh_daemon_site_auth_init(gh_daemon_site_auth_t *sa);
void gh_daemon_site_auth_done(gh_daemon_site_auth_t *sa);

/** One [server] key: 1 = taken, 0 = error (msg filled), -1 = not an auth key. */
int gh_daemon_auth_server_key(gh_daemon_auth_t *a, const char *k, const char *v, char *msg,
                              size_t msglen);
/** One [site] key: same returns. */
int gh_daemon_auth_site_key(gh_daemon_site_auth_t *sa, const char *k, const char *v, char *msg,
                            size_t msglen);

/** Cross-key checks after parsing (e.g. negotiate without keytab or NTLM
 *  user file, session = cookie without a key file, a logout URL outside
 *  the site prefix). 0 or GH_ECONFIG with msg. */
int gh_daemon_auth_check(const gh_daemon_auth_t *a, const gh_daemon_site_auth_t *sa,
                         const char *prefix, char *msg, size_t msglen);

/** The engine's configuration from the [server] keys; ntlm as given. */
void gh_daemon_auth_engine_config(const gh_daemon_auth_t *a, bool ntlm, gh_auth_config_t *ret);

#endif
