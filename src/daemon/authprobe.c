/* authprobe.c: gatehoused test handler "authinfo" — reports the auth-info record, the token, and the uid the kernel sees while impersonating. */
#include "authprobe.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gatehouse/authinfo.h>
#include <gatehouse/error.h>
#include <gatehouse/impersonate.h>
#include <gatehouse/token.h>

#include "accesslog.h"

/*
 * Until the module pipeline replaces the built-in handlers, this is how the
 * integration tests see what the server layer delivered. One JSON object:
 * the record (status, type, package, flags, sec_status, names, context
 * attributes, mutual-auth data, packed context length), the token (user,
 * uid, gid, level, source, groups) and, when the site has probe_dir, the
 * identity the kernel applied: the handler impersonates the token, creates
 * a file in probe_dir, reads the owner back with fstat, deletes it and
 * reverts. Query flags: close (close the token twice and report both return
 * codes, DESIGN.md item 11), deleg (materialise the delegated FILE ccache
 * and report it).
 */

typedef struct jbuf {
  char *p;
  size_t len, cap;
  bool first;
} jbuf_t;

__attribute__((format(printf, 2, 3))) static void jraw(jbuf_t *b, const char *fmt, ...)
{
  va_list ap;
  for (;;) {
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0)
      return;
    if ((size_t)n < b->cap - b->len) {
      b->len += (size_t)n;
      return;
    }
    size_t cap = b->cap * 2 + (size_t)n;
    char *np = realloc(b->p, cap);
    if (np == NULL)
      return;
    b->p = np;
    b->cap = cap;
  }
}

static void jkey(jbuf_t *b, const char *k)
{
  jraw(b, "%s\"%s\":", b->first ? "" : ",", k);
  b->first = false;
}

static void jstr(jbuf_t *b, const char *k, const char *v)
{
  jkey(b, k);
  if (v == NULL) {
    jraw(b, "null");
    return;
  }
  jraw(b, "\"");
  for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
    if (*p == '"' || *p == '\\')
      jraw(b, "\\%c", *p);
    else if (*p < 0x20 || *p >= 0x7f)
      jraw(b, "\\u%04x", *p);
    else
      jraw(b, "%c", *p);
  }
  jraw(b, "\"");
}

static void jint(jbuf_t *b, const char *k, long long v)
{
  jkey(b, k);
  jraw(b, "%lld", v);
}

static bool has_flag(const char *query, const char *flag)
{
  size_t fl = strlen(flag);
  for (const char *p = query; p && *p;) {
    const char *e = strchr(p, '&');
    size_t l = e ? (size_t)(e - p) : strlen(p);
    if ((l == fl || (l > fl && p[fl] == '=')) && strncmp(p, flag, fl) == 0)
      return true;
    p = e ? e + 1 : NULL;
  }
  return false;
}

/* Impersonates tok, creates a file in dir, reads its owner back, removes it. */
static void probe(jbuf_t *b, gh_token_t tok, const char *dir)
{
  static atomic_ulong seq;
  char path[4200];
  struct stat st;
  int rc, fd = -1;
  long euid = -1;

  snprintf(path, sizeof(path), "%s/gh-probe-%ld-%lu", dir, (long)syscall(SYS_gettid),
           (unsigned long)atomic_fetch_add(&seq, 1));
  rc = gh_impersonate(tok);
  if (rc != 0) {
    jstr(b, "probe_error", gh_strerror(rc));
    return;
  }
  euid = syscall(SYS_geteuid);
  fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
  rc = fd < 0 ? -errno : 0;
  if (fd >= 0 && fstat(fd, &st) != 0)
    rc = -errno;
  if (fd >= 0) {
    unlink(path);
    close(fd);
  }
  gh_revert();
  jint(b, "thread_euid", euid);
  if (rc != 0) {
    jstr(b, "probe_error", strerror(-rc));
    return;
  }
  jint(b, "kernel_uid", (long long)st.st_uid);
  jint(b, "kernel_gid", (long long)st.st_gid);
}

void gh_daemon_handle_authinfo(gh_request_t *req, const char *probe_dir)
{
  const gh_auth_info_t *ai = gh_request_get_auth_info(req);
  const gh_conn_info_t *ci = gh_request_get_conn_info(req);
  const char *q = gh_request_get_query(req);
  jbuf_t b = { malloc(1024), 0, 1024, true };

  if (b.p == NULL) {
    gh_response_set_status(req, 500, NULL);
    gh_request_complete(req);
    return;
  }
  jraw(&b, "{");
  jint(&b, "conn_id", (long long)ci->id);
  jint(&b, "auth_enabled", ai != NULL);
  if (ai) {
    jstr(&b, "status", gh_auth_status_name(ai->status));
    jstr(&b, "type", gh_auth_type_name(ai->type));
    jstr(&b, "package", ai->package_name);
    jint(&b, "flags", ai->flags);
    jint(&b, "sec_kind", ai->sec_status.kind);
    jint(&b, "sec_major", ai->sec_status.major);
    jint(&b, "sec_minor", ai->sec_status.minor);
    jstr(&b, "sec_text", gh_auth_info_sec_status_text(ai));
    jstr(&b, "remote_user", ai->remote_user);
    jstr(&b, "local_user", ai->local_user);
    jint(&b, "ctx_attr", ai->context_attributes);
    jstr(&b, "mutual", ai->mutual_auth_data);
    jint(&b, "packed_len", (long long)ai->packed_context_len);
    jint(&b, "expiry", (long long)ai->expiry);
    jint(&b, "token", ai->token != 0);
  }
  if (ai && ai->token) {
    char user[256] = "", aname[1024] = "";
    uid_t uid = 0;
    gid_t gid = 0, groups[64];
    gh_token_level_t level = 0;
    gh_token_source_t source = 0;
    int ng;

    gh_token_get_user(ai->token, user, sizeof(user));
    gh_token_get_auth_name(ai->token, aname, sizeof(aname));
    gh_token_get_uid(ai->token, &uid);
    gh_token_get_gid(ai->token, &gid);
    gh_token_get_level(ai->token, &level);
    gh_token_get_source(ai->token, &source);
    jstr(&b, "token_user", user);
    jstr(&b, "token_auth_name", aname);
    jint(&b, "token_uid", (long long)uid);
    jint(&b, "token_gid", (long long)gid);
    jint(&b, "token_level", level);
    jint(&b, "token_source", source);
    ng = gh_token_get_groups(ai->token, groups, 64);
    jkey(&b, "token_groups");
    jraw(&b, "[");
    for (int i = 0; i < ng && i < 64; i++)
      jraw(&b, "%s%u", i ? "," : "", (unsigned)groups[i]);
    jraw(&b, "]");
    if (probe_dir)
      probe(&b, ai->token, probe_dir);
    if (q && has_flag(q, "deleg")) {
      const char *cc = NULL;
      int rc = gh_request_get_delegated_ccache(req, uid, gid, &cc);
      struct stat st;
      jstr(&b, "deleg_rc", gh_err_name(rc));
      jstr(&b, "deleg_mem", gh_request_get_delegated_mem_ccache(req));
      /* the ccache is the client's, in its 0700 directory: looked at as the
       * client (root mode holds no CAP_DAC_OVERRIDE) */
      struct open_how how = { .flags = O_RDONLY | O_NOFOLLOW };
      int fd = rc == 0 ? gh_token_openat2(ai->token, AT_FDCWD, cc + strlen("FILE:"), &how,
                                          sizeof(how))
                       : -1;
      if (fd >= 0 && fstat(fd, &st) == 0) {
        jstr(&b, "deleg_file", cc + strlen("FILE:"));
        jint(&b, "deleg_file_mode", st.st_mode & 07777);
        jint(&b, "deleg_file_uid", (long long)st.st_uid);
      }
      if (fd >= 0)
        close(fd);
    }
    if (q && has_flag(q, "close")) {
      int rc1 = gh_token_close(ai->token);
      int rc2 = gh_token_close(ai->token);
      jstr(&b, "close1", gh_err_name(rc1));
      jstr(&b, "close2", gh_err_name(rc2));
    }
  }
  jraw(&b, "}\n");
  gh_response_set_status(req, 200, NULL);
  gh_response_set_header(req, "Content-Type", "application/json");
  gh_response_send(req, b.p, b.len, 0);
  gh_accesslog_write(req, 200, (unsigned long long)b.len);
  gh_request_complete(req);
  free(b.p);
}
