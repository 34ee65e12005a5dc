/* doctor.c: gatehoused --doctor — checks keytab, SPNs, KDC, clock, an end-to-end ticket, DNS,
 * winbind, PAM, ccache_dir and min_uid, one line each with the fix. */
#include "doctor.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>
#include <krb5.h>
#include <profile.h>

#if GH_HAVE_WBCLIENT
#include <wbclient.h>
#endif

#include <gatehouse/authinfo.h>
#include <gatehouse/error.h>
#include <gatehouse/httpapi.h>
#include <gatehouse/impersonate.h>
#include <gatehouse/module.h>

#include "authconf.h"
#include "pipeline_host.h"

/*
 * Each check prints one line: "LEVEL check[ subject]: finding[ -- fix: ...]".
 * FAIL: single sign-on (or the daemon's start) is broken by this; WARN: it
 * breaks for some clients or is unsafe; INFO: not applicable or not
 * measured; OK: checked and fine. The checks run in the order a request
 * depends on them, each using what the earlier ones found (hosts, keytab
 * keys, the ticket from the KDC, the auth engine).
 */

typedef enum level { LV_OK, LV_INFO, LV_WARN, LV_FAIL } level_t;
static const char *const level_name[] = {"OK", "INFO", "WARN", "FAIL"};

#define MAX_HOSTS 32
#define MAX_KEYS 512
#define MIN_UID_SAMPLE 200
#define GH_DOCTOR_WINBIND_MS 5000u
#define LOCAL_UID_MAX 60000 /* login.defs UID_MAX: local accounts above are not "people" */

typedef struct kt_key {
  char *princ; /* unparsed, with realm */
  krb5_kvno kvno;
  krb5_enctype enctype;
} kt_key_t;

typedef struct doctor {
  const gh_daemon_config_t *cfg;
  FILE *out;
  unsigned count[4];
  /* what the sites offer */
  uint32_t schemes;
  bool ntlm; /* NTLM offered (a site or ntlm_user_file, as the daemon decides) */
  const gh_auth_settings_t *krb_site; /* first site offering Negotiate or Kerberos */
  bool krb;                           /* such a site and a keytab */
  /* names */
  char service[64]; /* "HTTP" */
  char *pinned;     /* host of service_principal = SERVICE@host, or NULL */
  char *hosts[MAX_HOSTS];
  size_t n_hosts;
  char user_name[256]; /* the identity the checks run as */
  uid_t uid;
  /* Kerberos */
  krb5_context k;
  kt_key_t keys[MAX_KEYS];
  size_t n_keys;
  bool keytab_ok;
  krb5_ccache invoker_cc; /* MEMORY copy of the invoker's ticket cache, or NULL */
  krb5_ccache tgt_cc;     /* MEMORY cache with the service's own TGT, or NULL */
  bool kdc_answered;
  bool bad_key; /* the KDC refused the keytab's key for every name it knew */
  bool kdc_unreachable;
  bool have_kdc_time;
  long long clock_offset; /* KDC time - local time, seconds */
  char kdc_addr[128];
  gh_server_t *srv; /* the auth engine, or NULL when it did not start */
} doctor_t;

/* ---- output ---- */

static void clean(char *s)
{
  for (; *s; s++)
    if (*s == '\n' || *s == '\r' || *s == '\t')
      *s = ' ';
}

/* One check line. fix may be NULL. */
__attribute__((format(printf, 5, 6))) static void report(doctor_t *d, level_t lv, const char *check,
                                                         const char *fix, const char *fmt, ...)
{
  char msg[3072];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  clean(msg);
  d->count[lv]++;
  fprintf(d->out, "%-4s %s: %s%s%s\n", level_name[lv], check, msg, fix ? " -- fix: " : "",
          fix ? fix : "");
}

__attribute__((format(printf, 3, 4))) static const char *fmt_fix(char *buf, size_t len,
                                                                 const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, len, fmt, ap);
  va_end(ap);
  clean(buf);
  return buf;
}

/* ---- small helpers ---- */

static const char *server_value(const gh_daemon_config_t *cfg, const char *key)
{
  for (size_t i = 0; i < cfg->n_items; i++)
    if (strcmp(cfg->items[i].section, "server") == 0 && strcmp(cfg->items[i].key, key) == 0)
      return cfg->items[i].value;
  return NULL;
}

static void add_host(doctor_t *d, const char *h, size_t len)
{
  if (len == 0 || len > 253 || d->n_hosts >= MAX_HOSTS)
    return;
  for (size_t i = 0; i < d->n_hosts; i++)
    if (strlen(d->hosts[i]) == len && strncasecmp(d->hosts[i], h, len) == 0)
      return;
  char *c = strndup(h, len);
  if (c == NULL)
    return;
  for (char *p = c; *p; p++) /* clients lower-case host names before asking for HTTP/host */
    if (*p >= 'A' && *p <= 'Z')
      *p = (char)(*p - 'A' + 'a');
  d->hosts[d->n_hosts++] = c;
}

static bool is_loopback(const struct sockaddr *sa)
{
  if (sa->sa_family == AF_INET)
    return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
  if (sa->sa_family == AF_INET6) {
    const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
  }
  return false;
}

/* This host's fully qualified name (what clients use for a wildcard listener). */
static void add_own_fqdn(doctor_t *d)
{
  char hn[256];
  struct addrinfo hints = {.ai_flags = AI_CANONNAME}, *ai = NULL;

  if (gethostname(hn, sizeof(hn)) != 0)
    return;
  hn[sizeof(hn) - 1] = '\0';
  if (getaddrinfo(hn, NULL, &hints, &ai) == 0 && ai && ai->ai_canonname)
    add_host(d, ai->ai_canonname, strlen(ai->ai_canonname));
  else
    add_host(d, hn, strlen(hn));
  if (ai)
    freeaddrinfo(ai);
}

/* The host names clients use: service_principal's host, the sites'
 * allowed_spns, each TCP listener's name (an address: its reverse name; a
 * wildcard: this host's FQDN). */
static void collect_hosts(doctor_t *d)
{
  const gh_daemon_config_t *cfg = d->cfg;
  const char *sp = cfg->auth.service_principal ? cfg->auth.service_principal : "HTTP";
  const char *at = strchr(sp, '@');
  bool wildcard = false;

  snprintf(d->service, sizeof(d->service), "%.*s", at ? (int)(at - sp) : (int)strlen(sp), sp);
  if (at && at[1]) {
    d->pinned = strdup(at + 1);
    add_host(d, at + 1, strlen(at + 1));
  }
  for (size_t i = 0; i < cfg->n_sites; i++) {
    const char *l = cfg->sites[i].auth.allowed_spns;
    while (l && *l) {
      size_t n = strcspn(l, " \t,");
      const char *slash = memchr(l, '/', n);
      if (slash) {
        const char *h = slash + 1;
        size_t hl = n - (size_t)(h - l);
        const char *r = memchr(h, '@', hl);
        add_host(d, h, r ? (size_t)(r - h) : hl);
      }
      l += n;
      l += strspn(l, " \t,");
    }
  }
  for (size_t i = 0; i < cfg->n_listen; i++) {
    char addr[300];
    const char *l = cfg->listen[i];
    size_t n = strcspn(l, " \t");
    if (strncmp(l, "unix:", 5) == 0 || n >= sizeof(addr))
      continue;
    memcpy(addr, l, n);
    addr[n] = '\0';
    char *host = addr, *colon = strrchr(addr, ':');
    if (addr[0] == '[') {
      char *e = strchr(addr, ']');
      if (!e)
        continue;
      *e = '\0';
      host = addr + 1;
    } else if (colon) {
      *colon = '\0';
    }
    if (host[0] == '\0' || strcmp(host, "*") == 0 || strcmp(host, "0.0.0.0") == 0 ||
        strcmp(host, "::") == 0) {
      wildcard = true;
      continue;
    }
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST}, *ai = NULL;
    if (getaddrinfo(host, NULL, &hints, &ai) == 0) {
      char name[NI_MAXHOST];
      if (is_loopback(ai->ai_addr)) /* local clients say localhost (::1 may be ip6-localhost) */
        add_host(d, "localhost", strlen("localhost"));
      else if (getnameinfo(ai->ai_addr, ai->ai_addrlen, name, sizeof(name), NULL, 0, NI_NAMEREQD) ==
               0)
        add_host(d, name, strlen(name));
      freeaddrinfo(ai);
    } else {
      add_host(d, host, strlen(host));
    }
  }
  if (wildcard || d->n_hosts == 0)
    add_own_fqdn(d);
}

static void enctype_name(krb5_enctype e, char *buf, size_t len)
{
  if (krb5_enctype_to_name(e, FALSE, buf, len) != 0)
    snprintf(buf, len, "enctype-%d", (int)e);
}

static bool weak_enctype(krb5_enctype e)
{
  return e == ENCTYPE_ARCFOUR_HMAC || e == ENCTYPE_ARCFOUR_HMAC_EXP || e == ENCTYPE_DES_CBC_CRC ||
         e == ENCTYPE_DES_CBC_MD5 || e == ENCTYPE_DES_CBC_MD4 || e == ENCTYPE_DES3_CBC_SHA1;
}

/* The principal name part before '@' equals SERVICE/host (host case-insensitive). */
static bool princ_is_spn(const char *princ, const char *service, const char *host)
{
  size_t sl = strlen(service), hl = strlen(host);
  return strncmp(princ, service, sl) == 0 && princ[sl] == '/' &&
         strncasecmp(princ + sl + 1, host, hl) == 0 && princ[sl + 1 + hl] == '@';
}

/* "P kvno N (e1, e2)" for the keys of one principal name, written into buf. */
static void describe_keys(doctor_t *d, const char *princ, char *buf, size_t len)
{
  size_t used = 0;
  krb5_kvno seen[16];
  size_t n_seen = 0;

  buf[0] = '\0';
  for (size_t i = 0; i < d->n_keys && used < len; i++) {
    if (strcmp(d->keys[i].princ, princ) != 0)
      continue;
    bool dup = false;
    for (size_t j = 0; j < n_seen; j++)
      dup |= seen[j] == d->keys[i].kvno;
    if (dup || n_seen >= 16)
      continue;
    seen[n_seen++] = d->keys[i].kvno;
    used += (size_t)snprintf(buf + used, len - used, "%skvno %u (", n_seen > 1 ? ", " : "",
                             (unsigned)d->keys[i].kvno);
    bool first = true;
    for (size_t j = i; j < d->n_keys && used < len; j++) {
      if (strcmp(d->keys[j].princ, princ) != 0 || d->keys[j].kvno != d->keys[i].kvno)
        continue;
      char en[64];
      enctype_name(d->keys[j].enctype, en, sizeof(en));
      used += (size_t)snprintf(buf + used, len - used, "%s%s", first ? "" : " ", en);
      first = false;
    }
    if (used < len)
      used += (size_t)snprintf(buf + used, len - used, ")");
  }
}

/* The keytab principal for SERVICE/host, or NULL. */
static const char *key_princ_for(doctor_t *d, const char *host)
{
  for (size_t i = 0; i < d->n_keys; i++)
    if (princ_is_spn(d->keys[i].princ, d->service, host))
      return d->keys[i].princ;
  return NULL;
}

/* ---- base64 (the Authorization header and the mutual-auth answer) ---- */

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *b64_encode(const unsigned char *in, size_t len)
{
  char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;
  if (out == NULL)
    return NULL;
  for (size_t i = 0; i < len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0) |
                 (i + 2 < len ? in[i + 2] : 0);
    *o++ = b64chars[v >> 18 & 63];
    *o++ = b64chars[v >> 12 & 63];
    *o++ = i + 1 < len ? b64chars[v >> 6 & 63] : '=';
    *o++ = i + 2 < len ? b64chars[v & 63] : '=';
  }
  *o = '\0';
  return out;
}

static unsigned char *b64_decode(const char *in, size_t *ret_len)
{
  size_t len = strlen(in), n = 0;
  unsigned char *out = malloc(len / 4 * 3 + 3);
  uint32_t v = 0;
  int bits = 0;

  if (out == NULL)
    return NULL;
  for (const char *p = in; *p && *p != '='; p++) {
    const char *c = strchr(b64chars, *p);
    if (c == NULL || *p == '\0') {
      free(out);
      return NULL;
    }
    v = v << 6 | (uint32_t)(c - b64chars);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (unsigned char)(v >> bits);
    }
  }
  *ret_len = n;
  return out;
}

/* ---- the checks ---- */

static void check_config(doctor_t *d)
{
  const gh_daemon_config_t *cfg = d->cfg;
  bool user_file = cfg->auth.ntlm_user_file != NULL;
  char offered[128] = "";

  d->ntlm = user_file;
  for (size_t i = 0; i < cfg->n_sites; i++) {
    uint32_t s = cfg->sites[i].auth.s.schemes;
    d->schemes |= s;
    d->ntlm |= (s & GH_AUTH_SCHEME_NTLM) != 0;
    if (!d->krb_site && (s & (GH_AUTH_SCHEME_NEGOTIATE | GH_AUTH_SCHEME_KERBEROS)))
      d->krb_site = &cfg->sites[i].auth.s;
  }
  d->krb = d->krb_site != NULL && cfg->auth.keytab != NULL;
  static const struct {
    uint32_t bit;
    const char *name;
  } names[] = {
      {GH_AUTH_SCHEME_NEGOTIATE, "negotiate"}, {GH_AUTH_SCHEME_KERBEROS, "kerberos"},
      {GH_AUTH_SCHEME_NTLM, "ntlm"},           {GH_AUTH_SCHEME_BASIC, "basic"},
      {GH_AUTH_SCHEME_PEER, "peer"},
  };
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    if (d->schemes & names[i].bit)
      snprintf(offered + strlen(offered), sizeof(offered) - strlen(offered), "%s%s",
               offered[0] ? " " : "", names[i].name);
  report(d, LV_OK, "config", NULL, "%s: %zu sites, %zu listeners, schemes offered: %s", cfg->path,
         cfg->n_sites, cfg->n_listen, offered[0] ? offered : "none");
}

static void check_modules(doctor_t *d, gh_pipeline_t **ret_pl)
{
  char err[1024];

  if (gh_daemon_pipeline_new(d->cfg, ret_pl, err, sizeof(err)) != 0) {
    report(d, LV_FAIL, "modules", "correct the line named (gatehoused -t -c FILE shows the same)",
           "%s", err);
    return;
  }
  char names[512] = "";
  for (size_t i = 0; i < gh_pipeline_get_module_count(*ret_pl); i++)
    snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s", i ? " " : "",
             gh_pipeline_get_module_name(*ret_pl, i));
  report(d, LV_OK, "modules", NULL, "%zu loaded (%s)", gh_pipeline_get_module_count(*ret_pl),
         names[0] ? names : "none");
}

/* The invoker's ticket cache, copied into memory while the files are still
 * readable (before the privilege drop): the self-test's ticket when the
 * KDC issues none to the keytab's names (Active Directory). */
static void copy_invoker_ccache(doctor_t *d)
{
  krb5_ccache cc = NULL, mem = NULL;
  krb5_principal p = NULL;

  if (!d->krb || krb5_cc_default(d->k, &cc) != 0)
    return;
  if (krb5_cc_get_principal(d->k, cc, &p) == 0 &&
      krb5_cc_new_unique(d->k, "MEMORY", NULL, &mem) == 0) {
    if (krb5_cc_initialize(d->k, mem, p) == 0 && krb5_cc_copy_creds(d->k, cc, mem) == 0) {
      d->invoker_cc = mem;
      mem = NULL;
    }
  }
  if (mem)
    krb5_cc_destroy(d->k, mem);
  if (p)
    krb5_free_principal(d->k, p);
  krb5_cc_close(d->k, cc);
}

/* As main.c's setup_identity: the checks then see files as the daemon will. */
static void check_identity(doctor_t *d)
{
  const gh_daemon_config_t *cfg = d->cfg;
  const char *user = server_value(cfg, "user");
  struct passwd *pw;
  char fix[512];
  bool ok = true;
  int e;

  if (geteuid() == 0) {
    e = gh_privileges_drop(user, 0);
    ok = e == 0;
    if (e != 0)
      report(d, LV_FAIL, "identity",
             fmt_fix(fix, sizeof(fix), "create the account or correct [server] user"),
             "[server] user = %s: privilege drop failed: %s (gatehoused would refuse to start); "
             "the checks below run as root",
             user ? user : "(root)", gh_strerror(e));
  } else if (user != NULL) {
    pw = getpwuid(geteuid());
    ok = pw != NULL && strcmp(pw->pw_name, user) == 0;
    if (!ok)
      report(d, LV_WARN, "identity", "run gatehoused --doctor as root",
             "running as uid %u, not root: the checks run as uid %u, not as the service "
             "user %s, and gatehoused itself must start as root to switch to it",
             (unsigned)geteuid(), (unsigned)geteuid(), user);
  }
  d->uid = geteuid();
  pw = getpwuid(d->uid);
  snprintf(d->user_name, sizeof(d->user_name), "%s", pw ? pw->pw_name : "?");
  gh_sec_config_t sc = {
      .min_uid = (uid_t)cfg->auth.min_uid,
      .group_cache_ttl_s = cfg->auth.group_cache_ttl_s,
      .peer_groups = cfg->auth.peer_groups_nss ? GH_PEER_GROUPS_NSS : GH_PEER_GROUPS_KERNEL,
  };
  e = gh_sec_init(&sc);
  if (e != 0 && ok) /* (one line per check: a failed drop was reported already) */
    report(d, LV_FAIL, "identity", NULL,
           "as %s (uid %u): sec layer: %s (gatehoused would refuse to start)", d->user_name,
           (unsigned)d->uid, gh_strerror(e));
  if (e != 0)
    return;
  if (ok)
    report(d, LV_OK, "identity", NULL, "checks run as %s (uid %u)%s", d->user_name,
           (unsigned)d->uid,
           user          ? ", the service user, as the daemon will"
           : d->uid == 0 ? ": root without [server] user keeps only CAP_SETUID and CAP_SETGID"
                         : "");
}

static void check_keytab(doctor_t *d)
{
  const char *path = d->cfg->auth.keytab;
  char fix[1024] = "", ktname[PATH_MAX + 8], warn[1024] = "";
  krb5_keytab kt = NULL;
  krb5_kt_cursor cur;
  krb5_keytab_entry ent;
  krb5_error_code kr;
  struct stat st;
  int fd;

  if (path == NULL) {
    report(d, LV_INFO, "keytab", NULL,
           "[server] keytab is not set: no Kerberos (Negotiate offers NTLM only); the "
           "Kerberos checks are skipped");
    return;
  }
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int en = errno;
    if (en == EACCES)
      fmt_fix(fix, sizeof(fix),
              "let %s read it without giving it to everyone: chgrp <a group of %s> %s; "
              "chmod 0640 %s",
              d->user_name, d->user_name, path, path);
    else
      fmt_fix(fix, sizeof(fix),
              "export the service's keys to %s (MIT: kadmin -q 'ktadd -k %s %s/<host>'; "
              "Active Directory: adcli update / net ads keytab add %s / samba-tool domain "
              "exportkeytab %s --principal=%s/<host>) or correct [server] keytab",
              path, path, d->service, d->service, path, d->service);
    report(d, LV_FAIL, "keytab", fix, "%s: %s (as %s): gatehoused would not start", path,
           strerror(en), d->user_name);
    return;
  }
  if (fstat(fd, &st) == 0 && (st.st_mode & S_IROTH)) {
    snprintf(warn, sizeof(warn),
             "; mode %04o: every local user can read the service's keys and impersonate the "
             "service",
             (unsigned)(st.st_mode & 07777));
    fmt_fix(fix, sizeof(fix), "chmod o-r %s (0640, group of %s, or 0600)", path, d->user_name);
  }
  close(fd);
  snprintf(ktname, sizeof(ktname), "FILE:%s", path);
  kr = krb5_kt_resolve(d->k, ktname, &kt);
  if (kr == 0)
    kr = krb5_kt_start_seq_get(d->k, kt, &cur);
  if (kr == 0) {
    while ((kr = krb5_kt_next_entry(d->k, kt, &ent, &cur)) == 0) {
      char *name = NULL;
      if (d->n_keys < MAX_KEYS && krb5_unparse_name(d->k, ent.principal, &name) == 0) {
        d->keys[d->n_keys].princ = strdup(name);
        d->keys[d->n_keys].kvno = ent.vno;
        d->keys[d->n_keys].enctype = ent.key.enctype;
        if (d->keys[d->n_keys].princ)
          d->n_keys++;
      }
      krb5_free_unparsed_name(d->k, name);
      krb5_free_keytab_entry_contents(d->k, &ent);
    }
    krb5_kt_end_seq_get(d->k, kt, &cur);
  }
  if (kr != KRB5_KT_END || d->n_keys == 0) {
    const char *msg = kr == KRB5_KT_END ? "holds no keys" : krb5_get_error_message(d->k, kr);
    report(d, LV_FAIL, "keytab",
           fmt_fix(fix, sizeof(fix), "export the service's keys to %s again", path),
           "%s: %s: gatehoused would not start", path, msg);
    if (kr != KRB5_KT_END)
      krb5_free_error_message(d->k, msg);
    goto out;
  }
  d->keytab_ok = true;
  char list[2048] = "";
  size_t n_princ = 0;
  for (size_t i = 0; i < d->n_keys; i++) {
    bool first = true, all_weak = true;
    for (size_t j = 0; j < i; j++)
      first &= strcmp(d->keys[j].princ, d->keys[i].princ) != 0;
    if (!first)
      continue;
    n_princ++;
    char desc[512];
    describe_keys(d, d->keys[i].princ, desc, sizeof(desc));
    snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s %s", n_princ > 1 ? "; " : "",
             d->keys[i].princ, desc);
    for (size_t j = i; j < d->n_keys; j++)
      if (strcmp(d->keys[j].princ, d->keys[i].princ) == 0)
        all_weak &= weak_enctype(d->keys[j].enctype);
    if (all_weak && strlen(warn) < sizeof(warn) - 200) {
      snprintf(warn + strlen(warn), sizeof(warn) - strlen(warn),
               "; %s has only RC4/DES keys: current Windows and MIT clients refuse or warn "
               "about them",
               d->keys[i].princ);
      if (!fix[0])
        fmt_fix(fix, sizeof(fix),
                "give the account AES keys (Active Directory: msDS-SupportedEncryptionTypes = "
                "24), then export the keytab again");
    }
  }
  report(d, warn[0] ? LV_WARN : LV_OK, "keytab", warn[0] ? fix : NULL,
         "%s: readable by %s, %zu keys of %zu principals: %s%s", path, d->user_name, d->n_keys,
         n_princ, list, warn);
out:
  if (kt)
    krb5_kt_close(d->k, kt);
}

static void check_spns(doctor_t *d)
{
  char fix[1024], desc[512], check[300];

  for (size_t i = 0; i < d->n_hosts; i++) {
    const char *h = d->hosts[i];
    const char *p = key_princ_for(d, h);
    snprintf(check, sizeof(check), "spn %s/%s", d->service, h);
    if (d->pinned && strcasecmp(h, d->pinned) != 0) {
      report(d, LV_WARN, check,
             fmt_fix(fix, sizeof(fix),
                     "service_principal = %s (any %s/<host> key of the keytab is accepted)",
                     d->service, d->service),
             "service_principal = %s@%s accepts tickets for %s/%s only: clients that open "
             "http://%s/ fail",
             d->service, d->pinned, d->service, d->pinned, h);
      continue;
    }
    if (p) {
      describe_keys(d, p, desc, sizeof(desc));
      report(d, LV_OK, check, NULL, "key %s %s", p, desc);
      continue;
    }
    report(d, LV_FAIL, check,
           fmt_fix(fix, sizeof(fix),
                   "register the name and export its key: MIT: kadmin -q 'addprinc -randkey "
                   "%s/%s' and kadmin -q 'ktadd -k %s %s/%s'; Active Directory: setspn -S %s/%s "
                   "<account> (samba-tool spn add %s/%s <account>), then export the keytab again",
                   d->service, h, d->cfg->auth.keytab, d->service, h, d->service, h, d->service, h),
           "no key for %s/%s in %s: browsers opening http://%s/ get no Kerberos (they fall back "
           "to NTLM or ask for a password)",
           d->service, h, d->cfg->auth.keytab, h);
  }
}

static void check_dns(doctor_t *d)
{
  char check[300], fix[1024];

  for (size_t i = 0; i < d->n_hosts; i++) {
    const char *h = d->hosts[i];
    struct addrinfo hints = {.ai_flags = AI_CANONNAME, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int e;

    snprintf(check, sizeof(check), "dns %s", h);
    e = getaddrinfo(h, NULL, &hints, &ai);
    if (e != 0) {
      report(d, LV_WARN, check,
             fmt_fix(fix, sizeof(fix),
                     "give %s an A/AAAA record pointing at this server (clients must resolve it)",
                     h),
             "%s does not resolve here: %s", h, gai_strerror(e));
      continue;
    }
    char addrs[512] = "", problems[1024] = "", alias[300] = "";
    bool loop = true;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
      char num[INET6_ADDRSTRLEN + 8], rname[NI_MAXHOST];
      if (getnameinfo(a->ai_addr, a->ai_addrlen, num, sizeof(num), NULL, 0, NI_NUMERICHOST) != 0)
        continue;
      if (strstr(addrs, num))
        continue;
      snprintf(addrs + strlen(addrs), sizeof(addrs) - strlen(addrs), "%s%s", addrs[0] ? " " : "",
               num);
      if (is_loopback(a->ai_addr))
        continue;
      loop = false;
      if (getnameinfo(a->ai_addr, a->ai_addrlen, rname, sizeof(rname), NULL, 0, NI_NAMEREQD) != 0)
        continue; /* no PTR: clients keep the name they were given */
      if (strcasecmp(rname, h) != 0 && !key_princ_for(d, rname))
        snprintf(problems + strlen(problems), sizeof(problems) - strlen(problems),
                 "%s%s reverse-resolves to %.200s", problems[0] ? "; " : "", num, rname);
    }
    if (ai->ai_canonname && strcasecmp(ai->ai_canonname, h) != 0 && !loop &&
        !key_princ_for(d, ai->ai_canonname))
      snprintf(alias, sizeof(alias), "%s", ai->ai_canonname);
    freeaddrinfo(ai);
    if (loop) {
      report(d, LV_OK, check, NULL, "%s -> %s (loopback: only local clients)", h, addrs);
    } else if (problems[0]) {
      report(d, LV_WARN, check,
             fmt_fix(fix, sizeof(fix),
                     "make the PTR record name %s, or add a key for the reverse name to the "
                     "keytab",
                     h),
             "%s -> %s; %s: MIT clients with rdns = true (the default) and some browsers ask "
             "for %s/<that name>, which has no key",
             h, addrs, problems, d->service);
    } else if (alias[0]) {
      report(d, LV_WARN, check,
             fmt_fix(fix, sizeof(fix), "make %s an A/AAAA record, or add %s/%s to the keytab", h,
                     d->service, alias),
             "%s is an alias (CNAME) of %s: clients that canonicalize names (MIT "
             "dns_canonicalize_hostname, Chrome without --auth-disable-cname-lookup) ask for "
             "%s/%s, which has no key",
             h, alias, d->service, alias);
    } else {
      report(d, LV_OK, check, NULL, "%s -> %s, reverse names match or have keys", h, addrs);
    }
  }
}

static void check_ccache_dir(doctor_t *d)
{
  const char *dir = d->cfg->auth.ccache_dir ? d->cfg->auth.ccache_dir : "/run/gatehouse";
  char msg[1024], fix[512];
  struct stat st;
  int e;

  if (d->cfg->auth.keytab == NULL) {
    report(d, LV_INFO, "ccache_dir", NULL, "not used: no keytab, so no delegated credentials");
    return;
  }
  e = gh_auth_check_ccache_dir(dir, msg, sizeof(msg));
  if (e == 0 && msg[0] == '\0' && lstat(dir, &st) == 0)
    snprintf(msg, sizeof(msg), "%s: mode %04o, owner uid %u: safe", dir,
             (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
  if (strncmp(msg, "ccache_dir ", 11) == 0)
    memmove(msg, msg + 11, strlen(msg + 11) + 1);
  if (e == 0)
    report(d, LV_OK, "ccache_dir", NULL, "%s", msg);
  else if (e == 1)
    report(d, LV_WARN, "ccache_dir", fmt_fix(fix, sizeof(fix), "chmod 1733 %s", dir), "%s", msg);
  else
    report(d, LV_FAIL, "ccache_dir",
           fmt_fix(fix, sizeof(fix),
                   "use a directory owned by root or %s with mode 1733 (install -d -m 1733 %s)",
                   d->user_name, dir),
           "%s: gatehoused would not start", msg[0] ? msg : gh_strerror(e));
}

/* The auth engine, created exactly as the daemon creates it. */
static void check_engine(doctor_t *d)
{
  const gh_daemon_config_t *cfg = d->cfg;
  gh_auth_config_t ac;
  char err[1024];
  int e;

  if (d->schemes == 0) {
    report(d, LV_INFO, "engine", NULL, "no site offers authentication: the engine is not started");
    return;
  }
  gh_daemon_auth_engine_config(&cfg->auth, d->ntlm, &ac);
  e = gh_server_new(&cfg->server, &d->srv);
  if (e == 0) {
    err[0] = '\0';
    e = gh_server_enable_auth(d->srv, &ac, err, sizeof(err));
  }
  if (e != 0) {
    report(d, LV_FAIL, "engine", "see the keytab, ccache_dir and ntlm_user_file lines",
           "the auth engine did not start: %s: gatehoused would not start",
           err[0] ? err : gh_strerror(e));
    gh_server_free(d->srv);
    d->srv = NULL;
    return;
  }
  report(d, LV_OK, "engine", NULL,
         "started as the daemon starts it: acceptor credentials for%s%s%s",
         cfg->auth.keytab ? " Kerberos" : "", d->ntlm ? " NTLM" : "",
         cfg->auth.keytab || d->ntlm ? " and SPNEGO" : " Basic and peers only");
}

/* ---- the KDC, with the keytab ---- */

static void kdc_trace(krb5_context k, const krb5_trace_info *info, void *arg)
{
  doctor_t *d = arg;
  const char *m = info ? info->message : NULL, *p;

  (void)k;
  if (m == NULL)
    return;
  if ((p = strstr(m, "Received answer")) != NULL && (p = strstr(p, " from ")) != NULL) {
    p += 6;
    if (strncmp(p, "stream ", 7) == 0)
      p += 7;
    else if (strncmp(p, "dgram ", 6) == 0)
      p += 6;
    snprintf(d->kdc_addr, sizeof(d->kdc_addr), "%.*s", (int)strcspn(p, " \n"), p);
  }
}

static bool kdc_unreachable_code(krb5_error_code kr)
{
  return kr == KRB5_KDC_UNREACH || kr == KRB5_REALM_CANT_RESOLVE || kr == KRB5_REALM_UNKNOWN ||
         kr == KRB5_CONFIG_BADFORMAT || kr == KRB5_CONFIG_CANTOPEN;
}

static bool bad_key_code(krb5_error_code kr)
{
  return kr == KRB5KDC_ERR_PREAUTH_FAILED || kr == KRB5KRB_AP_ERR_BAD_INTEGRITY ||
         kr == KRB5_PREAUTH_FAILED || kr == KRB5KRB_AP_ERR_MODIFIED;
}

/* AS exchange as one keytab principal. 0: TGT in d->tgt_cc. */
static krb5_error_code as_exchange(doctor_t *d, krb5_keytab kt, const char *princ)
{
  krb5_principal p = NULL;
  krb5_init_creds_context ic = NULL;
  krb5_get_init_creds_opt *opt = NULL;
  krb5_creds creds;
  krb5_error *kerr = NULL;
  krb5_ccache cc = NULL;
  krb5_error_code kr;

  memset(&creds, 0, sizeof(creds));
  kr = krb5_parse_name(d->k, princ, &p);
  if (kr == 0)
    kr = krb5_get_init_creds_opt_alloc(d->k, &opt);
  if (kr == 0) {
    krb5_get_init_creds_opt_set_forwardable(opt, 0);
    krb5_get_init_creds_opt_set_proxiable(opt, 0);
    kr = krb5_init_creds_init(d->k, p, NULL, NULL, 0, opt, &ic);
  }
  if (kr == 0)
    kr = krb5_init_creds_set_keytab(d->k, ic, kt);
  if (kr == 0) {
    kr = krb5_init_creds_get(d->k, ic);
    time_t now = time(NULL);
    if (kr == 0 && krb5_init_creds_get_creds(d->k, ic, &creds) == 0) {
      d->kdc_answered = d->have_kdc_time = true;
      d->clock_offset = (long long)creds.times.authtime - (long long)now;
      if (d->tgt_cc == NULL && krb5_cc_new_unique(d->k, "MEMORY", NULL, &cc) == 0 &&
          krb5_cc_initialize(d->k, cc, p) == 0 && krb5_cc_store_cred(d->k, cc, &creds) == 0) {
        d->tgt_cc = cc;
        cc = NULL;
      }
    } else if (kr != 0 && krb5_init_creds_get_error(d->k, ic, &kerr) == 0 && kerr) {
      d->kdc_answered = d->have_kdc_time = true;
      d->clock_offset = (long long)kerr->stime - (long long)now;
    }
  }
  if (cc)
    krb5_cc_destroy(d->k, cc);
  if (kerr)
    krb5_free_error(d->k, kerr);
  krb5_free_cred_contents(d->k, &creds);
  if (ic)
    krb5_init_creds_free(d->k, ic);
  if (opt)
    krb5_get_init_creds_opt_free(d->k, opt);
  if (p)
    krb5_free_principal(d->k, p);
  return kr;
}

static void check_kdc(doctor_t *d)
{
  char ktname[PATH_MAX + 8], fix[1024], realm[256] = "";
  const char *order[MAX_KEYS];
  size_t n = 0;
  krb5_keytab kt = NULL;
  krb5_error_code kr = 0;
  const char *unknown = NULL, *got = NULL;
  char bad[1536] = "";
  size_t n_host;

  if (!d->krb || !d->keytab_ok) {
    report(d, LV_INFO, "kdc", NULL, "not checked: %s",
           !d->krb ? "no site offers negotiate or kerberos with a keytab" : "no usable keytab");
    return;
  }
  /* the hosts' SPNs first, then the keytab's other names */
  for (size_t i = 0; i < d->n_hosts; i++) {
    const char *p = key_princ_for(d, d->hosts[i]);
    bool dup = false;
    for (size_t j = 0; p && j < n; j++)
      dup |= strcmp(order[j], p) == 0;
    if (p && !dup)
      order[n++] = p;
  }
  n_host = n;
  for (size_t i = 0; i < d->n_keys; i++) {
    bool dup = false;
    for (size_t j = 0; j < n; j++)
      dup |= strcmp(order[j], d->keys[i].princ) == 0;
    if (!dup && n < MAX_KEYS)
      order[n++] = d->keys[i].princ;
  }
  const char *at = strrchr(order[0], '@');
  snprintf(realm, sizeof(realm), "%s", at ? at + 1 : "?");
  snprintf(ktname, sizeof(ktname), "FILE:%s", d->cfg->auth.keytab);
  if (krb5_kt_resolve(d->k, ktname, &kt) != 0)
    return;
  /* every host name's key (each is checked against the KDC's), then the
   * other names until one gets a ticket */
  krb5_set_trace_callback(d->k, kdc_trace, d);
  for (size_t i = 0; i < n; i++) {
    krb5_error_code r;
    if (got && i >= n_host)
      break;
    r = as_exchange(d, kt, order[i]);
    if (r == 0) {
      if (!got)
        got = order[i];
    } else if (r == KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN || r == KRB5KDC_ERR_CLIENT_REVOKED ||
               r == KRB5KDC_ERR_POLICY) {
      if (!unknown)
        unknown = order[i];
    } else if (bad_key_code(r)) {
      const char *msg = krb5_get_error_message(d->k, r);
      char desc[512];
      describe_keys(d, order[i], desc, sizeof(desc));
      snprintf(bad + strlen(bad), sizeof(bad) - strlen(bad), "%s%s (%s): %s", bad[0] ? "; " : "",
               order[i], desc, msg);
      krb5_free_error_message(d->k, msg);
    } else {
      kr = r; /* unreachable, or something else: the same for every name */
      break;
    }
  }
  krb5_set_trace_callback(d->k, NULL, NULL);
  krb5_kt_close(d->k, kt);
  if (bad[0]) {
    d->bad_key = !got;
    report(d, LV_FAIL, "kdc",
           fmt_fix(fix, sizeof(fix),
                   "the account's keys changed after %s was written (password change, rejoin): "
                   "export the keytab again",
                   d->cfg->auth.keytab),
           "%s: the KDC%s%s refused the keytab's key for %s", realm, d->kdc_addr[0] ? " at " : "",
           d->kdc_addr, bad);
  } else if (got) {
    report(d, LV_OK, "kdc", NULL, "%s: the KDC%s%s issued a ticket to %s for the keytab's key",
           realm, d->kdc_addr[0] ? " at " : "", d->kdc_addr, got);
  } else if (unknown && kr == 0) {
    report(d, LV_OK, "kdc", NULL,
           "%s: the KDC%s%s answers; it issues no ticket to the keytab's names as clients "
           "(normal for Active Directory, where an SPN is not a logon name), so the keys are "
           "checked by the selftest lines",
           realm, d->kdc_addr[0] ? " at " : "", d->kdc_addr);
  } else if (kdc_unreachable_code(kr)) {
    const char *msg = krb5_get_error_message(d->k, kr);
    const char *conf = getenv("KRB5_CONFIG");
    d->kdc_unreachable = true;
    report(d, LV_FAIL, "kdc",
           fmt_fix(fix, sizeof(fix),
                   "check [realms] %s kdc = ... in %s (or the DNS SRV records "
                   "_kerberos._udp/_tcp.%s with dns_lookup_kdc), that the KDC runs, and that "
                   "port 88 (TCP and UDP) is open from this host",
                   realm, conf ? conf : "/etc/krb5.conf", realm),
           "%s: %s: no ticket can be checked or renewed; clients that reach the KDC still "
           "authenticate",
           realm, msg);
    krb5_free_error_message(d->k, msg);
  } else {
    const char *msg = krb5_get_error_message(d->k, kr);
    report(d, LV_FAIL, "kdc", NULL, "%s: getting a ticket as %s with the keytab: %s", realm,
           order[0], msg);
    krb5_free_error_message(d->k, msg);
  }
}

static void check_clock(doctor_t *d)
{
  profile_t prof = NULL;
  int skew = 300;
  char fix[256];

  if (!d->have_kdc_time) {
    report(d, LV_INFO, "clock", NULL, "not measured: no answer from a KDC");
    return;
  }
  if (krb5_get_profile(d->k, &prof) == 0 && prof) {
    if (profile_get_integer(prof, "libdefaults", "clockskew", NULL, 300, &skew) != 0)
      skew = 300;
    profile_release(prof);
  }
  long long off = d->clock_offset, mag = off < 0 ? -off : off;
  const char *dir = off > 0 ? "behind" : "ahead of";
  fmt_fix(fix, sizeof(fix),
          "synchronise this host's clock with the domain's time source (chrony, "
          "systemd-timesyncd, ntpd; in a domain: the DCs)");
  if (mag > skew)
    report(d, LV_FAIL, "clock", fix,
           "this host's clock is %lld s %s the KDC's, more than clockskew (%d s): every ticket is "
           "refused (Clock skew too great / Ticket not yet valid)",
           mag, dir, skew);
  else if (mag > 60)
    report(d, LV_WARN, "clock", fix,
           "this host's clock is %lld s %s the KDC's (limit clockskew = %d s)", mag, dir, skew);
  else
    report(d, LV_OK, "clock", NULL, "within %lld s of the KDC's (limit clockskew = %d s)", mag,
           skew);
}

/* A GSS initiator token for princ from the tickets in cc; 0 or a GSS error text. */
static int make_token(doctor_t *d, krb5_ccache cc, const char *princ, bool spnego,
                      gss_cred_id_t *ret_cred, gss_name_t *ret_target, gss_ctx_id_t *ctx,
                      gss_buffer_t ret_tok, char *err, size_t errlen)
{
  static gss_OID_desc krb5_oid = {9, (void *)"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02"};
  static gss_OID_desc spnego_oid = {6, (void *)"\x2b\x06\x01\x05\x05\x02"};
  char ccname[256];
  const char *type = NULL, *res = NULL;
  gss_key_value_element_desc el = {"ccache", ccname};
  gss_key_value_set_desc store = {1, &el};
  gss_OID_set_desc mechs = {1, spnego ? &spnego_oid : &krb5_oid}, krb5_only = {1, &krb5_oid};
  gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
  gss_name_t target = GSS_C_NO_NAME;
  gss_buffer_desc nb = {strlen(princ), (void *)princ};
  OM_uint32 maj, min = 0, min2;
  int ret = 0;

  type = krb5_cc_get_type(d->k, cc);
  res = krb5_cc_get_name(d->k, cc);
  snprintf(ccname, sizeof(ccname), "%s:%s", type, res);
  maj = gss_acquire_cred_from(&min, GSS_C_NO_NAME, GSS_C_INDEFINITE, &mechs, GSS_C_INITIATE, &store,
                              &cred, NULL, NULL);
  if (!GSS_ERROR(maj) && spnego) /* Kerberos only: never an NTLM fallback */
    maj = gss_set_neg_mechs(&min, cred, &krb5_only);
  if (!GSS_ERROR(maj))
    maj = gss_import_name(&min, &nb, (gss_OID)GSS_KRB5_NT_PRINCIPAL_NAME, &target);
  if (!GSS_ERROR(maj))
    maj =
        gss_init_sec_context(&min, cred, ctx, target, spnego ? &spnego_oid : &krb5_oid,
                             GSS_C_MUTUAL_FLAG | GSS_C_SEQUENCE_FLAG, 0, GSS_C_NO_CHANNEL_BINDINGS,
                             GSS_C_NO_BUFFER, NULL, ret_tok, NULL, NULL);
  if (GSS_ERROR(maj)) {
    gss_buffer_desc t = GSS_C_EMPTY_BUFFER;
    OM_uint32 mctx = 0;
    gss_display_status(&min2, min ? min : maj, min ? GSS_C_MECH_CODE : GSS_C_GSS_CODE, &krb5_oid,
                       &mctx, &t);
    snprintf(err, errlen, "%.*s", (int)t.length, (char *)t.value);
    gss_release_buffer(&min2, &t);
    ret = -1;
  }
  *ret_cred = cred; /* the caller's, also on failure (for the next leg) */
  *ret_target = target;
  return ret;
}

/* Hints for an engine FAILURE, from the GSS text (the mechglue maps the
 * krb5 minor codes to numbers of its own, so the text is what is stable). */
static const char *accept_fix(const char *text, char *buf, size_t len, doctor_t *d)
{
  if (strcasestr(text, "skew") || strcasestr(text, "not yet valid") || strcasestr(text, "expired"))
    return "synchronise this host's clock with the KDC (see the clock line)";
  if (strcasestr(text, "key table") || strcasestr(text, "key version") ||
      strcasestr(text, "integrity") || strcasestr(text, "wrong principal") ||
      strcasestr(text, "find key"))
    return fmt_fix(buf, len,
                   "the keytab does not hold the key the KDC uses for this name: export %s "
                   "again",
                   d->cfg->auth.keytab);
  return NULL;
}

/* The useful part of a GSS status text (MIT puts the mechanism's after a
 * generic "Unspecified GSS failure.  Minor code may provide ...; "). */
static const char *gss_tail(const char *text)
{
  const char *p = strstr(text, "more information; ");
  return p ? p + strlen("more information; ") : text;
}

static void selftest_host(doctor_t *d, krb5_ccache cc, const char *client, bool own,
                          const char *host)
{
  char check[300], fix[1024], err[512], ename[64], kdesc[512];
  const char *princ = key_princ_for(d, host);
  krb5_principal server = NULL, cprinc = NULL;
  krb5_creds in, *out = NULL;
  krb5_ticket *tkt = NULL;
  krb5_error_code kr;
  gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
  gss_cred_id_t icred = GSS_C_NO_CREDENTIAL;
  gss_name_t target = GSS_C_NO_NAME;
  gss_buffer_desc tok = GSS_C_EMPTY_BUFFER;
  OM_uint32 min;
  char *b64 = NULL, *authz = NULL;
  bool spnego = (d->krb_site->schemes & GH_AUTH_SCHEME_NEGOTIATE) != 0;
  gh_auth_selftest_t *res = calloc(1, sizeof(*res));
  int e;

  memset(&in, 0, sizeof(in));
  snprintf(check, sizeof(check), "selftest %s/%s", d->service, host);
  if (res == NULL)
    goto out;
  kr = krb5_parse_name(d->k, princ, &server);
  if (kr == 0)
    kr = krb5_cc_get_principal(d->k, cc, &cprinc);
  if (kr == 0) {
    in.client = cprinc;
    in.server = server;
    kr = krb5_get_credentials(d->k, 0, cc, &in, &out);
  }
  if (kr != 0) {
    const char *msg = krb5_get_error_message(d->k, kr);
    report(d, LV_FAIL, check,
           kr == KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN
               ? fmt_fix(fix, sizeof(fix),
                         "register %s on the service's account (MIT: addprinc; AD: setspn -S "
                         "%s/%s <account>) and export the keytab again",
                         princ, d->service, host)
               : NULL,
           "%s asked the KDC for a ticket to %s: %s%s", client, princ, msg,
           kr == KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN ? ": clients get the same answer" : "");
    krb5_free_error_message(d->k, msg);
    goto out;
  }
  /* the key the KDC used, against the keytab's */
  bool have = false;
  if (krb5_decode_ticket(&out->ticket, &tkt) == 0) {
    for (size_t i = 0; i < d->n_keys; i++)
      have |= strcmp(d->keys[i].princ, princ) == 0 && d->keys[i].kvno == tkt->enc_part.kvno &&
              d->keys[i].enctype == tkt->enc_part.enctype;
    enctype_name(tkt->enc_part.enctype, ename, sizeof(ename));
    if (!have) {
      describe_keys(d, princ, kdesc, sizeof(kdesc));
      report(d, LV_FAIL, check,
             fmt_fix(fix, sizeof(fix),
                     "the keytab is older than the account's keys (password change, rejoin): "
                     "export it again"),
             "the KDC encrypts tickets for %s with kvno %u (%s); %s holds %s: every ticket is "
             "refused",
             princ, (unsigned)tkt->enc_part.kvno, ename, d->cfg->auth.keytab, kdesc);
      goto out; /* the engine can only refuse it */
    }
  } else {
    snprintf(ename, sizeof(ename), "?");
  }
  if (make_token(d, cc, princ, spnego, &icred, &target, &ctx, &tok, err, sizeof(err)) != 0) {
    report(d, LV_FAIL, check, NULL, "making a %s token for %s: %s", spnego ? "SPNEGO" : "Kerberos",
           princ, err);
    goto out;
  }
  b64 = b64_encode(tok.value, tok.length);
  if (b64 == NULL || asprintf(&authz, "%s %s", spnego ? "Negotiate" : "Kerberos", b64) < 0) {
    authz = NULL;
    goto out;
  }
  gh_auth_settings_t s = *d->krb_site;
  /* the service's own name maps to no account: an IDENTIFY token proves the
   * accept all the same (the invoker's ticket keeps the site's rule) */
  if (own)
    s.allow_unmapped = true;
  e = gh_server_auth_selftest(d->srv, &s, authz, res);
  if (e != 0) {
    report(d, LV_FAIL, check, NULL, "the auth engine answered a ticket for %s with: %s", princ,
           gh_strerror(e));
    goto out;
  }
  if (res->status != GH_AUTH_STATUS_SUCCESS && res->sec_status.kind == GH_AUTH_SEC_GSS) {
    report(d, LV_FAIL, check, accept_fix(res->sec_status_text, fix, sizeof(fix), d),
           "the auth engine refused a ticket for %s (kvno %u, %s) from %s: %s", princ,
           tkt ? (unsigned)tkt->enc_part.kvno : 0u, ename, client, gss_tail(res->sec_status_text));
    goto out;
  }
  if (res->status != GH_AUTH_STATUS_SUCCESS) {
    report(d, own ? LV_OK : LV_WARN, check,
           own ? NULL : "see the min_uid line, auth_to_local in krb5.conf and the account in NSS",
           "the auth engine accepted a ticket for %s (kvno %u, %s) from %s; then: %s", princ,
           tkt ? (unsigned)tkt->enc_part.kvno : 0u, ename, client, res->sec_status_text);
    goto out;
  }
  /* mutual authentication: the answer the client would get must complete its context */
  const char *sp = strchr(res->mutual_auth_data, ' ');
  size_t rlen = 0;
  unsigned char *rep = sp ? b64_decode(sp + 1, &rlen) : NULL;
  bool mutual = false;
  if (rep) {
    static gss_OID_desc spnego_oid = {6, (void *)"\x2b\x06\x01\x05\x05\x02"};
    static gss_OID_desc krb5_oid = {9, (void *)"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02"};
    gss_buffer_desc rin = {rlen, rep}, o2 = GSS_C_EMPTY_BUFFER;
    OM_uint32 maj =
        gss_init_sec_context(&min, icred, &ctx, target, spnego ? &spnego_oid : &krb5_oid,
                             GSS_C_MUTUAL_FLAG | GSS_C_SEQUENCE_FLAG, 0, GSS_C_NO_CHANNEL_BINDINGS,
                             &rin, NULL, &o2, NULL, NULL);
    mutual = maj == GSS_S_COMPLETE;
    if (!mutual) {
      gss_buffer_desc t = GSS_C_EMPTY_BUFFER;
      OM_uint32 mctx = 0, min2;
      gss_display_status(&min2, GSS_ERROR(maj) ? maj : GSS_S_FAILURE, GSS_C_GSS_CODE, GSS_C_NO_OID,
                         &mctx, &t);
      snprintf(err, sizeof(err), "%.*s", (int)t.length, (char *)t.value);
      gss_release_buffer(&min2, &t);
    }
    gss_release_buffer(&min, &o2);
    free(rep);
  }
  if (!mutual) {
    report(d, LV_FAIL, check, NULL,
           "the auth engine accepted a ticket for %s from %s, but its mutual-authentication "
           "answer does not verify (%s): browsers drop the response",
           princ, client, res->mutual_auth_data[0] ? err : "no answer");
    goto out;
  }
  report(d, LV_OK, check, NULL,
         "a ticket for %s (kvno %u, %s) from %s was accepted by the auth engine (%s, %s) as %s, "
         "and its mutual-authentication answer verifies",
         princ, tkt ? (unsigned)tkt->enc_part.kvno : 0u, ename, client,
         spnego ? "Negotiate" : "Kerberos", res->package_name,
         res->local_user[0] ? res->local_user : "?");
out:
  free(res);
  free(authz);
  free(b64);
  gss_release_buffer(&min, &tok);
  gss_delete_sec_context(&min, &ctx, GSS_C_NO_BUFFER);
  gss_release_name(&min, &target);
  gss_release_cred(&min, &icred);
  if (tkt)
    krb5_free_ticket(d->k, tkt);
  if (out)
    krb5_free_creds(d->k, out);
  if (server)
    krb5_free_principal(d->k, server);
  if (cprinc)
    krb5_free_principal(d->k, cprinc);
}

static void check_selftest(doctor_t *d)
{
  krb5_ccache cc = d->tgt_cc ? d->tgt_cc : d->invoker_cc;
  krb5_principal p = NULL;
  char *client = NULL, fix[512];
  bool any = false;

  if (!d->krb || !d->keytab_ok) {
    report(d, LV_INFO, "selftest", NULL, "not run: no Kerberos");
    return;
  }
  if (d->srv == NULL || d->kdc_unreachable) {
    report(d, LV_INFO, "selftest", NULL, "not run: %s",
           d->srv == NULL ? "the auth engine did not start" : "no KDC");
    return;
  }
  if (cc == NULL) {
    report(d, LV_WARN, "selftest",
           fmt_fix(fix, sizeof(fix),
                   "kinit as any user of the realm and run gatehoused --doctor again with that "
                   "KRB5CCNAME, or add a key of the service account's own name to the keytab"),
           "not run: %s, and KRB5CCNAME holds no ticket to test with",
           d->bad_key ? "the KDC refused the keytab's keys (see the kdc line)"
                      : "the KDC issues no ticket to the keytab's names");
    return;
  }
  if (krb5_cc_get_principal(d->k, cc, &p) != 0 || krb5_unparse_name(d->k, p, &client) != 0) {
    report(d, LV_WARN, "selftest", NULL, "not run: the ticket cache names no client");
    goto out;
  }
  for (size_t i = 0; i < d->n_hosts; i++) {
    if (!key_princ_for(d, d->hosts[i]) || (d->pinned && strcasecmp(d->hosts[i], d->pinned) != 0))
      continue;
    any = true;
    selftest_host(d, cc, client, cc == d->tgt_cc, d->hosts[i]);
  }
  if (!any)
    report(d, LV_INFO, "selftest", NULL, "not run: no host name has a key (see the spn lines)");
out:
  krb5_free_unparsed_name(d->k, client);
  if (p)
    krb5_free_principal(d->k, p);
}

/* ---- winbind ---- */

#if GH_HAVE_WBCLIENT
static bool g_winbind_up;

static void check_winbind(doctor_t *d)
{
  struct wbcInterfaceDetails *det = NULL;
  char fix[1024];
  wbcErr we;

  /* bounded: libwbclient itself waits for a hung winbindd forever */
  int pe = gh_auth_winbind_ping(GH_DOCTOR_WINBIND_MS);
  if (pe != 0) {
    report(d, LV_FAIL, "winbind",
           pe == GH_ETIMEOUT ? "restart winbind (systemctl restart winbind; on a Samba DC: "
                               "samba); then check wbinfo -p and wbinfo -P"
                             : "start winbind (systemctl start winbind; on a Samba DC: samba); "
                               "then check wbinfo -p and wbinfo -P",
           "winbindd %s: NTLM logons without ntlm_user_file are answered 503 until it is back",
           pe == GH_ETIMEOUT ? "is running but does not answer within 5 s (hung)"
                             : "does not answer (not running)");
    report(d, LV_INFO, "winbind-pipe", NULL, "not checked: winbindd does not answer");
    return;
  }
  g_winbind_up = true;
  we = wbcInterfaceDetails(&det);
  if (WBC_ERROR_IS_OK(we) && det)
    report(d, LV_OK, "winbind", NULL, "winbindd %s answers: domain %s (%s), separator '%c'",
           det->winbind_version ? det->winbind_version : "?",
           det->netbios_domain ? det->netbios_domain : "?", det->dns_domain ? det->dns_domain : "-",
           det->winbind_separator ? det->winbind_separator : '\\');
  else
    report(d, LV_WARN, "winbind", NULL, "winbindd answers a ping but not its details: %s",
           wbcErrorString(we));
  /* the privileged pipe, as gss-ntlmssp uses it: a logon check with an NTLM
   * response (WBC_AUTH_USER_LEVEL_RESPONSE) for an account that does not
   * exist; only the answer's transport matters */
  struct wbcAuthUserParams ap;
  struct wbcAuthUserInfo *info = NULL;
  struct wbcAuthErrorInfo *aerr = NULL;
  uint8_t nt[24] = {0};
  memset(&ap, 0, sizeof(ap));
  ap.account_name = "gatehouse-doctor-no-such-user";
  ap.domain_name = det && det->netbios_domain ? det->netbios_domain : "";
  ap.workstation_name = "";
  ap.level = WBC_AUTH_USER_LEVEL_RESPONSE;
  ap.password.response.nt_length = sizeof(nt);
  ap.password.response.nt_data = nt;
  we = wbcAuthenticateUserEx(&ap, &info, &aerr);
  if (we == WBC_ERR_WINBIND_NOT_AVAILABLE) {
    struct stat st;
    const char *dir = "/var/lib/samba/winbindd_privileged";
    struct group *g = stat(dir, &st) == 0 ? getgrgid(st.st_gid) : NULL;
    report(d, LV_FAIL, "winbind-pipe",
           fmt_fix(fix, sizeof(fix),
                   "add %s to the group of winbind's privileged pipe directory (Debian: "
                   "usermod -aG %s %s; the directory is <state directory>/winbindd_privileged, "
                   "mode 0750) and restart gatehoused",
                   d->user_name, g ? g->gr_name : "winbindd_priv", d->user_name),
           "winbind's privileged pipe refuses %s (uid %u): every NTLM logon fails "
           "(gss-ntlmssp: Permission denied); Kerberos is unaffected",
           d->user_name, (unsigned)d->uid);
  } else {
    report(d, LV_OK, "winbind-pipe", NULL,
           "the privileged pipe is usable by %s (a test logon of a non-existent account reached "
           "winbindd: %s)",
           d->user_name, aerr && aerr->nt_string ? aerr->nt_string : wbcErrorString(we));
  }
  wbcFreeMemory(info);
  wbcFreeMemory(aerr);
  wbcFreeMemory(det);
}
#endif

/* ---- the farm's replay store ---- */

static void check_replay_cache(doctor_t *d)
{
  const gh_daemon_auth_t *a = &d->cfg->auth;
  char msg[512];
  int e;

  if (!a->replay_cache_url)
    return;
  e = gh_auth_replay_cache_probe(a->replay_cache_url, a->replay_cache_password,
                                 a->replay_cache_timeout_ms, msg, sizeof(msg));
  if (e == 0)
    report(d, LV_OK, "replay-cache", NULL, "%s", msg);
  else if (e == 1)
    report(d, LV_WARN, "replay-cache", "redis-cli CONFIG SET maxmemory-policy noeviction (and in "
                                       "redis.conf)", "%s", msg);
  else
    report(d, LV_FAIL, "replay-cache",
           a->replay_cache_fallback_local
               ? "start Redis or fix replay_cache / replay_cache_password_file (until then each "
                 "node checks replays only locally: a token replayed to another node passes)"
               : "start Redis or fix replay_cache / replay_cache_password_file (until then "
                 "every Kerberos request is answered 503)",
           "%s", msg);
}

static void check_winbind_needed(doctor_t *d)
{
  if (!d->ntlm || d->cfg->auth.ntlm_user_file) {
    const char *why = d->cfg->auth.ntlm_user_file ? "NTLM is checked against ntlm_user_file"
                                                  : "no site offers NTLM";
    report(d, LV_INFO, "winbind", NULL, "not checked: %s", why);
    return;
  }
#if GH_HAVE_WBCLIENT
  check_winbind(d);
#else
  report(d, LV_WARN, "winbind", "build gatehouse with libwbclient-dev installed",
         "not built with libwbclient: winbind and its privileged pipe are not checked (NTLM "
         "without ntlm_user_file depends on both)");
#endif
}

/* ---- PAM ---- */

static bool pam_module_exists(const char *mod)
{
  static const char *const dirs[] = {
      "/usr/lib/x86_64-linux-gnu/security",
      "/lib/x86_64-linux-gnu/security",
      "/usr/lib/aarch64-linux-gnu/security",
      "/lib/aarch64-linux-gnu/security",
      "/usr/lib64/security",
      "/lib64/security",
      "/usr/lib/security",
      "/lib/security",
  };
  char path[PATH_MAX];

  if (mod[0] == '/')
    return access(mod, F_OK) == 0;
  for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
    snprintf(path, sizeof(path), "%s/%s", dirs[i], mod);
    if (access(path, F_OK) == 0)
      return true;
  }
  return false;
}

static void check_pam(doctor_t *d)
{
  const char *svc = d->cfg->auth.pam_service ? d->cfg->auth.pam_service : "gatehouse";
  const char *wrap = getenv("PAM_WRAPPER"), *wdir = getenv("PAM_WRAPPER_SERVICE_DIR");
  char path[PATH_MAX] = "", fix[512], line[1024], missing[512] = "";
  const char *via = "";
  FILE *f = NULL;

  if (!(d->schemes & GH_AUTH_SCHEME_BASIC)) {
    report(d, LV_INFO, "pam", NULL, "not checked: no site offers basic");
    return;
  }
  if (wrap && strcmp(wrap, "1") == 0 && wdir) {
    snprintf(path, sizeof(path), "%s/%s", wdir, svc);
    via = " (pam_wrapper)";
  } else {
    snprintf(path, sizeof(path), "/etc/pam.d/%s", svc);
    if (access(path, F_OK) != 0) {
      char vendor[PATH_MAX];
      snprintf(vendor, sizeof(vendor), "/usr/lib/pam.d/%s", svc);
      if (access(vendor, F_OK) == 0)
        snprintf(path, sizeof(path), "%s", vendor);
    }
  }
  f = fopen(path, "re");
  if (f == NULL) {
    int en = errno;
    report(d, LV_FAIL, "pam",
           fmt_fix(fix, sizeof(fix),
                   "install the PAM service file %s (the package ships one; the source tree has "
                   "dist/gatehouse.pam) or correct [server] pam_service",
                   path),
           "PAM service '%s'%s: %s: %s: PAM falls back to the service 'other' (usually "
           "pam_deny), so every Basic logon fails",
           svc, via, path, strerror(en));
    return;
  }
  unsigned lineno = 0;
  while (fgets(line, sizeof(line), f)) {
    char *save = NULL, *w[3] = {NULL};
    int n = 0;
    lineno++;
    char *hash = strchr(line, '#');
    if (hash)
      *hash = '\0';
    for (char *t = strtok_r(line, " \t\n", &save); t && n < 3; t = strtok_r(NULL, " \t\n", &save)) {
      if (n == 1 && t[0] == '[') { /* [value=action ...] */
        while (t && !strchr(t, ']'))
          t = strtok_r(NULL, " \t\n", &save);
        if (!t)
          break;
      }
      w[n++] = t;
    }
    if (n < 3 || w[0][0] == '@' || w[0][0] == '-' || strcmp(w[1], "include") == 0 ||
        strcmp(w[1], "substack") == 0)
      continue;
    if (!pam_module_exists(w[2]))
      snprintf(missing + strlen(missing), sizeof(missing) - strlen(missing), "%sline %u: %s",
               missing[0] ? ", " : "", lineno, w[2]);
  }
  fclose(f);
  if (missing[0])
    report(d, LV_FAIL, "pam", "install the missing modules or correct the lines",
           "PAM service '%s'%s: %s names modules that do not exist (%s): PAM fails every Basic "
           "logon",
           svc, via, path, missing);
  else
    report(d, LV_OK, "pam", NULL, "PAM service '%s'%s: %s", svc, via, path);
}

/* ---- min_uid ---- */

static void check_min_uid(doctor_t *d)
{
  unsigned min = d->cfg->auth.min_uid;
  char fix[512], refused[512] = "", domain_part[1024] = "";
  unsigned n_local = 0, n_refused = 0, lowest_ok = UINT32_MAX;
  bool domain_refused = false;

  char sys_part[200] = "";
  if (min < 1000)
    snprintf(sys_part, sizeof(sys_part),
             "; system accounts (uids %u-999: daemons, databases) can sign in and be "
             "impersonated",
             min ? min : 1);
  bool wb_hung = false;
#if GH_HAVE_WBCLIENT
  int wp = g_winbind_up ? 0 : gh_auth_winbind_ping(GH_DOCTOR_WINBIND_MS);
  wb_hung = wp == GH_ETIMEOUT;
  if (wp == 0) {
    struct wbcInterfaceDetails *det = NULL;
    const char **users = NULL;
    uint32_t n = 0;
    if (WBC_ERROR_IS_OK(wbcInterfaceDetails(&det)) && det && det->netbios_domain &&
        WBC_ERROR_IS_OK(wbcListUsers(det->netbios_domain, &n, &users))) {
      unsigned looked = 0, lo = UINT32_MAX, hi = 0, below = 0;
      char zero[300] = "", first_below[300] = "";
      for (uint32_t i = 0; i < n && looked < MIN_UID_SAMPLE; i++) {
        struct passwd *pw = NULL;
        char name[300];
        if (strchr(users[i], det->winbind_separator ? det->winbind_separator : '\\'))
          snprintf(name, sizeof(name), "%s", users[i]);
        else
          snprintf(name, sizeof(name), "%s%c%s", det->netbios_domain,
                   det->winbind_separator ? det->winbind_separator : '\\', users[i]);
        if (!WBC_ERROR_IS_OK(wbcGetpwnam(name, &pw)) || pw == NULL)
          continue;
        looked++;
        if (pw->pw_uid == 0) {
          snprintf(zero, sizeof(zero), "%.256s", name);
        } else {
          lo = pw->pw_uid < lo ? pw->pw_uid : lo;
          hi = pw->pw_uid > hi ? pw->pw_uid : hi;
          if (pw->pw_uid < min) {
            if (!below++)
              snprintf(first_below, sizeof(first_below), "%.256s uid %u", name, pw->pw_uid);
          }
        }
        wbcFreeMemory(pw);
      }
      if (looked == 0) {
        snprintf(domain_part, sizeof(domain_part), "; domain %s: no user could be looked up",
                 det->netbios_domain);
      } else {
        domain_refused = below > 0;
        snprintf(domain_part, sizeof(domain_part),
                 "; domain %s: %u of %u users looked up, uids %u-%u, %u below min_uid%s%s%s%s%s",
                 det->netbios_domain, looked, (unsigned)n, lo == UINT32_MAX ? 0 : lo, hi, below,
                 below ? " (first: " : "", first_below, below ? ")" : "",
                 zero[0] ? "; uid 0 (always refused): " : "", zero);
      }
    }
    wbcFreeMemory(users);
    wbcFreeMemory(det);
  }
#endif
  /* local accounts of people (uid 1000 .. LOCAL_UID_MAX); NSS's winbind
   * module would wait for a hung winbindd in setpwent() forever */
  struct passwd *pw;
  unsigned scanned = 0;
  if (!wb_hung)
    setpwent();
  while (!wb_hung && (pw = getpwent()) != NULL && scanned++ < 10000) {
    if (pw->pw_uid < 1000 || pw->pw_uid > LOCAL_UID_MAX || strchr(pw->pw_name, '\\'))
      continue;
    n_local++;
    if (pw->pw_uid < min) {
      if (n_refused++ < 3)
        snprintf(refused + strlen(refused), sizeof(refused) - strlen(refused), "%s%s %u",
                 n_refused > 1 ? ", " : "", pw->pw_name, (unsigned)pw->pw_uid);
    } else if (pw->pw_uid < lowest_ok) {
      lowest_ok = pw->pw_uid;
    }
  }
  if (!wb_hung)
    endpwent();
  char local_part[768];
  if (wb_hung)
    snprintf(local_part, sizeof(local_part),
             "accounts not listed: winbindd hangs, and listing them through NSS would wait "
             "for it");
  else if (n_local == 0)
    snprintf(local_part, sizeof(local_part), "no local account with uid 1000-%u", LOCAL_UID_MAX);
  else
    snprintf(local_part, sizeof(local_part), "%u local accounts with uid 1000-%u, %u refused%s%s%s",
             n_local, LOCAL_UID_MAX, n_refused, n_refused ? " (" : "", refused,
             n_refused > 3 ? ", ...)"
             : n_refused   ? ")"
                           : "");
  if (n_refused || domain_refused || sys_part[0])
    report(d, LV_WARN, "min_uid",
           fmt_fix(fix, sizeof(fix), "%s",
                   sys_part[0] && !n_refused && !domain_refused
                       ? "min_uid = 1000 (or the first uid of your people's accounts)"
                       : "lower min_uid if these accounts should sign in (Active Directory: at "
                         "most the bottom of winbind's idmap range)"),
           "min_uid = %u: %s%s%s%s", min, local_part, domain_part,
           n_refused || domain_refused ? ": refused accounts get 401 whatever their password" : "",
           sys_part);
  else
    report(d, wb_hung ? LV_INFO : LV_OK, "min_uid", NULL, "min_uid = %u: %s%s", min, local_part,
           domain_part);
}

/* ---- driver ---- */

int gh_daemon_doctor(const gh_daemon_config_t *cfg, FILE *out)
{
  doctor_t *d = calloc(1, sizeof(*d));
  gh_pipeline_t *pl = NULL;
  int ret = 1;

  if (d == NULL) {
    fprintf(out, "FAIL doctor: out of memory\n");
    return 1;
  }
  d->cfg = cfg;
  d->out = out;
  check_config(d);
  check_modules(d, &pl);
  collect_hosts(d);
  if (krb5_init_context(&d->k) != 0) {
    report(d, LV_FAIL, "krb5", NULL, "krb5_init_context failed: krb5.conf unreadable or invalid");
    d->k = NULL;
    d->krb = false;
  }
  if (d->k)
    copy_invoker_ccache(d); /* still as the invoker */
  check_identity(d);        /* from here on as the daemon */
  if (d->k)
    check_keytab(d);
  if (d->cfg->auth.keytab && d->keytab_ok)
    check_spns(d);
  check_dns(d);
  check_ccache_dir(d);
  check_engine(d);
  if (d->k) {
    check_kdc(d);
    check_clock(d);
    check_selftest(d);
  }
  check_replay_cache(d);
  check_winbind_needed(d);
  check_pam(d);
  check_min_uid(d);
  fprintf(out, "doctor: %u OK, %u WARN, %u FAIL, %u INFO\n", d->count[LV_OK], d->count[LV_WARN],
          d->count[LV_FAIL], d->count[LV_INFO]);
  ret = d->count[LV_FAIL] ? 1 : 0;
  gh_server_free(d->srv);
  gh_pipeline_free(pl);
  if (d->k) {
    if (d->tgt_cc)
      krb5_cc_destroy(d->k, d->tgt_cc);
    if (d->invoker_cc)
      krb5_cc_destroy(d->k, d->invoker_cc);
    krb5_free_context(d->k);
  }
  for (size_t i = 0; i < d->n_keys; i++)
    free(d->keys[i].princ);
  for (size_t i = 0; i < d->n_hosts; i++)
    free(d->hosts[i]);
  free(d->pinned);
  free(d);
  fflush(out);
  return ret;
}
