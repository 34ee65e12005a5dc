/* authconf.c: gatehoused authentication configuration — parsing of the auth keys and the engine configuration. */
#include "authconf.h"
#include "confval.h"
#include "daemonlog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gatehouse/error.h>

void gh_daemon_auth_init(gh_daemon_auth_t *a)
{
  memset(a, 0, sizeof(*a));
  a->min_uid = 1000;
  a->basic_cache_ttl_s = 60;
  a->name_map_cache_ttl_s = 5;
  a->group_cache_ttl_s = 60;
}

void gh_daemon_auth_done(gh_daemon_auth_t *a)
{
  free(a->keytab);
  free(a->service_principal);
  free(a->ntlm_service_name);
  free(a->ntlm_user_file);
  free(a->pam_service);
  free(a->ccache_dir);
  free(a->unmapped_user);
  free(a->s4u_principal);
  free(a->replay_cache_url);
  free(a->replay_cache_password_file);
  if (a->replay_cache_password) {
    explicit_bzero(a->replay_cache_password, strlen(a->replay_cache_password));
    free(a->replay_cache_password);
  }
  memset(a, 0, sizeof(*a));
}

void gh_daemon_site_auth_init(gh_daemon_site_auth_t *sa)
{
  memset(sa, 0, sizeof(*sa));
  gh_auth_settings_init(&sa->s);
  gh_auth_session_settings_init(&sa->sess);
}

void gh_daemon_site_auth_done(gh_daemon_site_auth_t *sa)
{
  free(sa->realm);
  free(sa->probe_dir);
  free(sa->allowed_spns);
  free(sa->s4u_targets);
  free(sa->session_key_file);
  free(sa->session_cookie);
  free(sa->session_logout);
  memset(sa, 0, sizeof(*sa));
}

static int parse_num(const char *v, unsigned long long max, unsigned long long *ret, char *msg,
                     size_t msglen)
{
  if (!gh_daemon_parse_uint(v, max, GH_CONF_SUFFIX_K, ret)) {
    snprintf(msg, msglen, "'%s' is not a number up to %llu", v, max);
    return 0;
  }
  return 1;
}

/* replay_cache_password_file: one line (a final newline is dropped), read
 * now so that a missing or unreadable file is an error naming the line. */
static int read_password_file(gh_daemon_auth_t *a, const char *path, char *msg, size_t msglen)
{
  char buf[1025];
  ssize_t n = 0, got;
  struct stat st;
  int fd = -1, ok = 0;

  if (path[0] != '/') {
    snprintf(msg, msglen, "'%s' is not an absolute path", path);
    goto out;
  }
  /* O_NONBLOCK: a FIFO must not hang the parser (nor the config fuzzer) */
  fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    snprintf(msg, msglen, "cannot read '%s': %s", path, strerror(errno));
    goto out;
  }
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    snprintf(msg, msglen, "'%s' is not a regular file", path);
    goto out;
  }
  while (n < (ssize_t)sizeof(buf) && (got = read(fd, buf + n, sizeof(buf) - (size_t)n)) != 0) {
    if (got < 0) {
      if (errno == EINTR)
        continue;
      snprintf(msg, msglen, "cannot read '%s': %s", path, strerror(errno));
      goto out;
    }
    n += got;
  }
  if (n == (ssize_t)sizeof(buf)) {
    snprintf(msg, msglen, "'%s': longer than %zu bytes", path, sizeof(buf) - 1);
    goto out;
  }
  if (n > 0 && buf[n - 1] == '\n')
    n--;
  if (n > 0 && buf[n - 1] == '\r')
    n--;
  buf[n] = '\0';
  if (n == 0 || memchr(buf, '\n', (size_t)n) || strlen(buf) != (size_t)n) {
    snprintf(msg, msglen, "'%s' must hold the password on one line", path);
    goto out;
  }
  if (!gh_daemon_set_str(&a->replay_cache_password_file, path, msg, msglen))
    goto out;
  if (a->replay_cache_password) {
    explicit_bzero(a->replay_cache_password, strlen(a->replay_cache_password));
    free(a->replay_cache_password);
  }
  a->replay_cache_password = strdup(buf);
  if (!a->replay_cache_password) {
    snprintf(msg, msglen, "out of memory");
    goto out;
  }
  ok = 1;
out:
  explicit_bzero(buf, sizeof(buf));
  if (fd >= 0)
    close(fd);
  return ok;
}

int gh_daemon_auth_server_key(gh_daemon_auth_t *a, const char *k, const char *v, char *msg,
                              size_t msglen)
{
  unsigned long long n;
  struct { const char *name; char **dst; } strs[] = {
    { "keytab", &a->keytab },
    { "service_principal", &a->service_principal },
    { "ntlm_service_name", &a->ntlm_service_name },
    { "ntlm_user_file", &a->ntlm_user_file },
    { "pam_service", &a->pam_service },
    { "ccache_dir", &a->ccache_dir },
    { "unmapped_user", &a->unmapped_user },
    { "s4u_principal", &a->s4u_principal },
  };

  for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
    if (strcmp(k, strs[i].name) != 0)
      continue;
    if (v[0] == '\0') {
      snprintf(msg, msglen, "empty value");
      return 0;
    }
    return gh_daemon_set_str(strs[i].dst, v, msg, msglen);
  }
  if (strcmp(k, "min_uid") == 0) {
    if (!parse_num(v, 0x7fffffff, &n, msg, msglen))
      return 0;
    a->min_uid = (unsigned)n;
    return 1;
  }
  if (strcmp(k, "basic_cache_ttl") == 0) {
    if (!parse_num(v, 86400, &n, msg, msglen))
      return 0;
    a->basic_cache_ttl_s = (unsigned)n;
    return 1;
  }
  if (strcmp(k, "name_map_cache_ttl") == 0) {
    if (!parse_num(v, 3600, &n, msg, msglen))
      return 0;
    a->name_map_cache_ttl_s = (unsigned)n;
    return 1;
  }
  if (strcmp(k, "pam_timeout") == 0) {
    if (!parse_num(v, 3600, &n, msg, msglen))
      return 0;
    if (n == 0) {
      snprintf(msg, msglen, "must be at least 1 (seconds)");
      return 0;
    }
    a->pam_timeout_ms = (unsigned)n * 1000u;
    return 1;
  }
  if (strcmp(k, "pam_max_concurrent") == 0) {
    if (!parse_num(v, 1024, &n, msg, msglen))
      return 0;
    if (n == 0) {
      snprintf(msg, msglen, "must be at least 1");
      return 0;
    }
    a->pam_max_concurrent = (unsigned)n;
    return 1;
  }
  if (strcmp(k, "replay_cache") == 0) {
    free(a->replay_cache_url);
    a->replay_cache_url = NULL;
    a->replay_cache_file = false;
    if (strcmp(v, "memory") == 0)
      return 1;
    if (strcmp(v, "file") == 0) {
      a->replay_cache_file = true;
      return 1;
    }
    /* the farm's Redis: the syntax now (file:line), the connection later */
    if (gh_auth_replay_cache_check(v, msg, msglen) != 0)
      return 0;
    return gh_daemon_set_str(&a->replay_cache_url, v, msg, msglen);
  }
  if (strcmp(k, "replay_cache_password_file") == 0)
    return read_password_file(a, v, msg, msglen);
  if (strcmp(k, "replay_cache_unavailable") == 0) {
    if (strcmp(v, "fail") == 0) {
      a->replay_cache_fallback_local = false;
    } else if (strcmp(v, "local") == 0) {
      a->replay_cache_fallback_local = true;
    } else {
      snprintf(msg, msglen, "'%s' is not fail or local", v);
      return 0;
    }
    return 1;
  }
  if (strcmp(k, "replay_cache_timeout_ms") == 0) {
    if (!parse_num(v, 60000, &n, msg, msglen))
      return 0;
    if (n < 10) {
      snprintf(msg, msglen, "must be at least 10 (milliseconds)");
      return 0;
    }
    a->replay_cache_timeout_ms = (unsigned)n;
    return 1;
  }
  if (strcmp(k, "group_cache_ttl") == 0) {
    if (!parse_num(v, 86400, &n, msg, msglen))
      return 0;
    a->group_cache_ttl_s = (unsigned)n;
    return 1;
  }
  if (strcmp(k, "peer_groups") == 0) { /* where a peer token's groups come from */
    if (strcmp(v, "kernel") == 0) {
      a->peer_groups_nss = false;
    } else if (strcmp(v, "nss") == 0) {
      a->peer_groups_nss = true;
    } else {
      snprintf(msg, msglen, "'%s' is not kernel or nss", v);
      return 0;
    }
    return 1;
  }
  return -1;
}

static const struct {
  const char *word;
  uint32_t bit;
} scheme_words[] = {
  { "negotiate", GH_AUTH_SCHEME_NEGOTIATE }, { "kerberos", GH_AUTH_SCHEME_KERBEROS },
  { "ntlm", GH_AUTH_SCHEME_NTLM },           { "basic", GH_AUTH_SCHEME_BASIC },
  { "peer", GH_AUTH_SCHEME_PEER },
};

/* A space-separated scheme list; order[] gets the schemes in the order given. */
static int parse_schemes(const char *v, bool allow_anonymous, uint32_t *ret_mask,
                         bool *ret_anonymous, uint32_t order[GH_AUTH_ORDER_MAX], char *msg,
                         size_t msglen)
{
  char buf[256], *save = NULL;
  uint32_t mask = 0;
  bool anon = false;
  size_t n_order = 0;

  if (strlen(v) >= sizeof(buf)) {
    snprintf(msg, msglen, "value too long");
    return 0;
  }
  snprintf(buf, sizeof(buf), "%s", v);
  for (char *w = strtok_r(buf, " \t,", &save); w; w = strtok_r(NULL, " \t,", &save)) {
    uint32_t bit = 0;
    for (size_t i = 0; i < sizeof(scheme_words) / sizeof(scheme_words[0]); i++)
      if (strcasecmp(w, scheme_words[i].word) == 0)
        bit = scheme_words[i].bit;
    if (bit == 0 && allow_anonymous && strcasecmp(w, "anonymous") == 0) {
      anon = true;
      continue;
    }
    if (bit == 0) {
      snprintf(msg, msglen, "unknown scheme '%s' (negotiate | kerberos | ntlm | basic | peer%s)",
               w, allow_anonymous ? " | anonymous" : "");
      return 0;
    }
    if (mask & bit) {
      snprintf(msg, msglen, "scheme '%s' given twice", w);
      return 0;
    }
    mask |= bit;
    if (order && bit != GH_AUTH_SCHEME_PEER && n_order < GH_AUTH_ORDER_MAX - 1)
      order[n_order++] = bit;
  }
  *ret_mask = mask;
  if (ret_anonymous)
    *ret_anonymous = anon;
  return 1;
}

/* A duration: seconds, or a number with s, m, h or d; from 1 s up to max_s. */
static int parse_duration(const char *v, unsigned long long max_s, unsigned *ret, char *msg,
                          size_t msglen)
{
  char num[32];
  size_t len = strlen(v);
  unsigned long long n = 0, mult = 1;

  if (len > 0 && len < sizeof(num) && strchr("smhd", v[len - 1])) {
    mult = v[len - 1] == 'm' ? 60 : v[len - 1] == 'h' ? 3600 : v[len - 1] == 'd' ? 86400 : 1;
    len--;
  }
  if (len == 0 || len >= sizeof(num)) {
    snprintf(msg, msglen, "'%s' is not a duration (seconds, or a number with s, m, h or d)", v);
    return 0;
  }
  memcpy(num, v, len);
  num[len] = '\0';
  if (!gh_daemon_parse_uint(num, max_s, 0, &n) || n == 0 || n * mult > max_s) {
    snprintf(msg, msglen, "'%s' is not a duration from 1 s to %llu s (s, m, h or d suffix)", v,
             max_s);
    return 0;
  }
  *ret = (unsigned)(n * mult);
  return 1;
}

/* One of two words: *ret = (v is yes_word). 1, or 0 with a message. */
static int parse_two(const char *v, const char *no_word, const char *yes_word, bool *ret,
                     char *msg, size_t msglen)
{
  if (strcasecmp(v, yes_word) != 0 && strcasecmp(v, no_word) != 0) {
    snprintf(msg, msglen, "'%s' is not %s | %s", v, yes_word, no_word);
    return 0;
  }
  *ret = strcasecmp(v, yes_word) == 0;
  return 1;
}

/* *own = a copy of v and the settings' *field points at it: 1, or 0 with msg. */
static int set_site_str(char **own, const char **field, const char *v, char *msg, size_t msglen)
{
  if (!gh_daemon_set_str(own, v, msg, msglen))
    return 0;
  *field = *own;
  return 1;
}

/* The session keys of a site (docs/gatehouse.conf.5 "Sessions"): 1, 0 or -1. */
static int session_site_key(gh_daemon_site_auth_t *sa, const char *k, const char *v, char *msg,
                            size_t msglen)
{
  if (strcmp(k, "session") == 0)
    return parse_two(v, "off", "cookie", &sa->session, msg, msglen);
  if (strcmp(k, "session_key_file") == 0) {
    /* read and checked now: -t and a reload name a bad file by its line */
    if (gh_auth_session_key_file_check(v, msg, msglen) != 0)
      return 0;
    return set_site_str(&sa->session_key_file, &sa->sess.key_file, v, msg, msglen);
  }
  if (strcmp(k, "session_max_age") == 0)
    return parse_duration(v, 30 * 86400ull, &sa->sess.max_age_s, msg, msglen);
  if (strcmp(k, "session_idle") == 0)
    return parse_duration(v, 30 * 86400ull, &sa->sess.idle_s, msg, msglen);
  if (strcmp(k, "session_cookie") == 0) {
    if (v[0] == '\0' || strlen(v) > 64 || strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN"
                                                  "OPQRSTUVWXYZ0123456789_-.") != strlen(v)) {
      snprintf(msg, msglen, "'%s' is not a cookie name (letters, digits, _ - .; up to 64)", v);
      return 0;
    }
    return set_site_str(&sa->session_cookie, &sa->sess.cookie, v, msg, msglen);
  }
  if (strcmp(k, "session_secure") == 0)
    return parse_two(v, "tls", "always", &sa->sess.secure_always, msg, msglen);
  if (strcmp(k, "session_logout") == 0) {
    if (v[0] != '/' || strpbrk(v, " \t;,?#") != NULL || strlen(v) > 255) {
      snprintf(msg, msglen, "'%s' is not a URL path (/..., without a query)", v);
      return 0;
    }
    return set_site_str(&sa->session_logout, &sa->sess.logout, v, msg, msglen);
  }
  return -1;
}

int gh_daemon_auth_site_key(gh_daemon_site_auth_t *sa, const char *k, const char *v, char *msg,
                            size_t msglen)
{
  unsigned long long n;
  bool b;
  struct { const char *name; bool *dst; } bools[] = {
    { "receive_mutual_auth", &sa->s.receive_mutual_auth },
    { "basic_over_plain_http", &sa->s.basic_over_plain_http },
    { "allow_unmapped", &sa->s.allow_unmapped },
    { "ntlm_keep_domain", &sa->s.ntlm_keep_domain },
    { "packed_context", &sa->s.packed_context },
  };

  if (strncmp(k, "session", 7) == 0)
    return session_site_key(sa, k, v, msg, msglen);
  if (strcmp(k, "auth") == 0) {
    sa->configured = true;
    return parse_schemes(v, true, &sa->s.schemes, &sa->anonymous, NULL, msg, msglen);
  }
  if (strcmp(k, "auth_order") == 0) {
    uint32_t mask = 0;
    memset(sa->s.order, 0, sizeof(sa->s.order));
    return parse_schemes(v, false, &mask, NULL, sa->s.order, msg, msglen);
  }
  if (strcmp(k, "persist") == 0) {
    if (strcasecmp(v, "ntlm") == 0)
      sa->s.persist = GH_AUTH_PERSIST_NTLM;
    else if (strcasecmp(v, "all") == 0)
      sa->s.persist = GH_AUTH_PERSIST_ALL;
    else if (strcasecmp(v, "none") == 0)
      sa->s.persist = GH_AUTH_PERSIST_NONE;
    else {
      snprintf(msg, msglen, "'%s' is not ntlm | all | none", v);
      return 0;
    }
    return 1;
  }
  if (strcmp(k, "realm") == 0) {
    if (!gh_daemon_set_str(&sa->realm, v, msg, msglen))
      return 0;
    sa->s.realm = sa->realm;
    return 1;
  }
  if (strcmp(k, "probe_dir") == 0)
    return gh_daemon_set_str(&sa->probe_dir, v, msg, msglen);
  if (strcmp(k, "name_format") == 0) { /* Active Directory: the one name of a SID */
    if (strcasecmp(v, "domain\\user") == 0)
      sa->s.name_format = GH_AUTH_NAME_DOMAIN_USER;
    else if (strcasecmp(v, "user@realm") == 0)
      sa->s.name_format = GH_AUTH_NAME_USER_REALM;
    else if (strcasecmp(v, "user") == 0)
      sa->s.name_format = GH_AUTH_NAME_USER;
    else {
      snprintf(msg, msglen, "'%s' is not domain\\user | user@realm | user", v);
      return 0;
    }
    return 1;
  }
  if (strcmp(k, "group_source") == 0) { /* Active Directory: NSS or PAC groups */
    if (strcasecmp(v, "nss") == 0) {
      sa->s.group_source = GH_AUTH_GROUPS_NSS;
    } else if (strcasecmp(v, "pac") == 0) {
      if (!GH_HAVE_WBCLIENT) {
        snprintf(msg, msglen, "group_source = pac needs winbind's libwbclient, and this "
                              "gatehouse was built without it (install libwbclient-dev and "
                              "rebuild with -Dwbclient=enabled), or use group_source = nss");
        return 0;
      }
      sa->s.group_source = GH_AUTH_GROUPS_PAC;
    } else {
      snprintf(msg, msglen, "'%s' is not nss | pac", v);
      return 0;
    }
    return 1;
  }
  if (strcmp(k, "channel_binding") == 0) { /* Extended Protection (TLS) */
    if (strcasecmp(v, "legacy") == 0)
      sa->s.channel_binding = GH_AUTH_CB_LEGACY;
    else if (strcasecmp(v, "medium") == 0)
      sa->s.channel_binding = GH_AUTH_CB_MEDIUM;
    else if (strcasecmp(v, "strict") == 0)
      sa->s.channel_binding = GH_AUTH_CB_STRICT;
    else {
      snprintf(msg, msglen, "'%s' is not legacy | medium | strict", v);
      return 0;
    }
    return 1;
  }
  if (strcmp(k, "allowed_spns") == 0) {
    if (!gh_daemon_set_str(&sa->allowed_spns, v, msg, msglen))
      return 0;
    sa->s.allowed_spns = sa->allowed_spns[0] ? sa->allowed_spns : NULL;
    return 1;
  }
  if (strcmp(k, "s4u") == 0) { /* protocol transition (auth_s4u.c) */
    if (strcasecmp(v, "no") == 0)
      sa->s.s4u = GH_AUTH_S4U_NO;
    else if (strcasecmp(v, "self") == 0)
      sa->s.s4u = GH_AUTH_S4U_SELF;
    else if (strcasecmp(v, "proxy") == 0)
      sa->s.s4u = GH_AUTH_S4U_PROXY;
    else {
      snprintf(msg, msglen, "'%s' is not no | self | proxy", v);
      return 0;
    }
    return 1;
  }
  if (strcmp(k, "s4u_targets") == 0) {
    if (!gh_daemon_set_str(&sa->s4u_targets, v, msg, msglen))
      return 0;
    sa->s.s4u_targets = sa->s4u_targets[0] ? sa->s4u_targets : NULL;
    return 1;
  }
  if (strcmp(k, "max_token_size") == 0) {
    if (!parse_num(v, 1024 * 1024, &n, msg, msglen))
      return 0;
    if (n < 64) {
      snprintf(msg, msglen, "'%s' is below 64 bytes", v);
      return 0;
    }
    sa->s.max_token_size = (size_t)n;
    return 1;
  }
  for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
    if (strcmp(k, bools[i].name) != 0)
      continue;
    if (!gh_daemon_parse_bool(v, &b, msg, msglen))
      return 0;
    *bools[i].dst = b;
    return 1;
  }
  return -1;
}

/* session = cookie and its keys together. */
static int session_check(const gh_daemon_site_auth_t *sa, const char *prefix, char *msg,
                         size_t msglen)
{
  size_t pl = strlen(prefix);
  unsigned max_age = sa->sess.max_age_s ? sa->sess.max_age_s : 8 * 3600;
  unsigned idle = sa->sess.idle_s ? sa->sess.idle_s : 30 * 60;

  if (!sa->session)
    return 0;
  if (sa->sess.key_file == NULL) {
    snprintf(msg, msglen, "session = cookie needs session_key_file (two lines of 64 hex "
                          "digits: openssl rand -hex 32)");
    return GH_ECONFIG;
  }
  if (!(sa->s.schemes & (GH_AUTH_SCHEME_NEGOTIATE | GH_AUTH_SCHEME_KERBEROS |
                         GH_AUTH_SCHEME_NTLM | GH_AUTH_SCHEME_BASIC))) {
    snprintf(msg, msglen, "session = cookie needs a scheme that mints sessions (negotiate, "
                          "kerberos, ntlm or basic; never peer)");
    return GH_ECONFIG;
  }
  if (sa->s.group_source == GH_AUTH_GROUPS_PAC) {
    snprintf(msg, msglen, "session = cookie with group_source = pac: a session's token is "
                          "made again from the account, without the PAC; use group_source = "
                          "nss on this site");
    return GH_ECONFIG;
  }
  if (idle > max_age) {
    snprintf(msg, msglen, "session_idle (%u s) is longer than session_max_age (%u s)", idle,
             max_age);
    return GH_ECONFIG;
  }
  if (sa->sess.logout != NULL &&
      (strncmp(sa->sess.logout, prefix, pl) != 0 ||
       (pl > 1 && sa->sess.logout[pl] != '/' && sa->sess.logout[pl] != '\0'))) {
    snprintf(msg, msglen, "session_logout %s is not under the site %s", sa->sess.logout,
             prefix);
    return GH_ECONFIG;
  }
  return 0;
}

int gh_daemon_auth_check(const gh_daemon_auth_t *a, const gh_daemon_site_auth_t *sa,
                         const char *prefix, char *msg, size_t msglen)
{
  uint32_t s = sa->s.schemes;

  if (session_check(sa, prefix, msg, msglen) != 0)
    return GH_ECONFIG;

  if ((s & GH_AUTH_SCHEME_KERBEROS) && a->keytab == NULL) {
    snprintf(msg, msglen, "auth = kerberos needs [server] keytab");
    return GH_ECONFIG;
  }
  if ((s & GH_AUTH_SCHEME_NEGOTIATE) && a->keytab == NULL && a->ntlm_user_file == NULL) {
    snprintf(msg, msglen, "auth = negotiate needs [server] keytab (Kerberos) or ntlm_user_file");
    return GH_ECONFIG;
  }
  if (sa->s.s4u != GH_AUTH_S4U_NO && (a->keytab == NULL || a->s4u_principal == NULL)) {
    snprintf(msg, msglen, "s4u needs [server] keytab and s4u_principal (the service account's "
                          "own name in the keytab, e.g. svc@REALM)");
    return GH_ECONFIG;
  }
  if (sa->s.s4u == GH_AUTH_S4U_PROXY && sa->s.s4u_targets == NULL) {
    snprintf(msg, msglen, "s4u = proxy needs s4u_targets (the SPNs to get tickets for)");
    return GH_ECONFIG;
  }
  if (sa->s.order[0] != 0) {
    for (size_t i = 0; i < GH_AUTH_ORDER_MAX && sa->s.order[i]; i++)
      if (!(s & sa->s.order[i])) {
        snprintf(msg, msglen, "auth_order names a scheme that auth does not offer");
        return GH_ECONFIG;
      }
  }
  return 0;
}

/* The engine's own lines (keytab re-read, keys kept, ccache cleanup). */
static void auth_log(void *arg, int priority, const char *msg)
{
  (void)arg;
  gh_dlog(priority, "auth: %s", msg);
}

void gh_daemon_auth_engine_config(const gh_daemon_auth_t *a, bool ntlm, gh_auth_config_t *ret)
{
  gh_auth_config_init(ret);
  ret->log_cb = auth_log;
  ret->keytab = a->keytab;
  ret->service_principal = a->service_principal;
  ret->ntlm_service_name = a->ntlm_service_name;
  ret->ntlm_user_file = a->ntlm_user_file;
  ret->s4u_principal = a->s4u_principal;
  ret->ntlm = ntlm;
  ret->pam_service = a->pam_service;
  ret->ccache_dir = a->ccache_dir;
  ret->unmapped_user = a->unmapped_user;
  ret->basic_cache_ttl_s = a->basic_cache_ttl_s;
  ret->name_map_cache_ttl_s = a->name_map_cache_ttl_s;
  ret->pam_timeout_ms = a->pam_timeout_ms;
  ret->pam_max_concurrent = a->pam_max_concurrent;
  ret->replay_cache_file = a->replay_cache_file;
  ret->replay_cache_url = a->replay_cache_url;
  ret->replay_cache_password = a->replay_cache_password;
  ret->replay_cache_fallback_local = a->replay_cache_fallback_local;
  ret->replay_cache_timeout_ms = a->replay_cache_timeout_ms;
}
