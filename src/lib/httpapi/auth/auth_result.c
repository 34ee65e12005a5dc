/* auth_result.c: the per-request result — verdicts, failure records, delegated ccaches. */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <krb5.h>
#include <openssl/rand.h>

#include <gatehouse/error.h>

#include "httpapi/auth/auth_engine.h"
#include "sec/runas.h"
#include "util/alloc.h"

static int fcc_remove(void *arg);

/* One line for the application's log (gh_auth_config_t.log_cb; stderr
 * without one), for what goes wrong outside any request's answer (a
 * ccache_dir clients cannot use, cleanup at request end). */
static void engine_log(gh_auth_log_cb *fn, void *arg, int priority, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void engine_log(gh_auth_log_cb *fn, void *arg, int priority, const char *fmt, ...)
{
  char msg[512];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  gh__auth_log(fn, arg, priority, msg);
}

void gh__auth_set_failure(gh__auth_result_t *r, gh_auth_failure_t cause, gh_auth_type_t type,
                          const char *package, gh_auth_sec_kind_t kind, uint32_t major,
                          uint32_t minor, const char *text)
{
  r->verdict = GH__AUTH_DELIVER;
  r->info.status = GH_AUTH_STATUS_FAILURE;
  r->info.failure = cause;
  r->info.type = type;
  r->info.package_name = package;
  r->info.sec_status.kind = kind;
  r->info.sec_status.major = major;
  r->info.sec_status.minor = minor;
  snprintf(r->info.sec_status_text, sizeof(r->info.sec_status_text), "%s", text ? text : "");
}

void gh__auth_set_local_failure(gh__auth_result_t *r, int err, gh_auth_type_t type,
                                const char *package, const char *client)
{
  if (err == -ENOMEM) {
    gh__auth_set_verdict(r, GH__AUTH_UNAVAILABLE, err);
  } else {
    gh__auth_set_failure(r, gh__auth_failure_of_local(err), type, package, GH_AUTH_SEC_ERRNO,
                         (uint32_t)-err, 0, gh_strerror(err));
    gh__auth_set_failure_facts(r, client, NULL, NULL);
  }
}

/* The facts of a FAILURE record (each may be NULL or ""): copied into the
 * result; on ENOMEM a fact is left out. */
void gh__auth_set_failure_facts(gh__auth_result_t *r, const char *client, const char *service,
                                const char *detail)
{
  if (client && client[0] && !r->fail_client_buf && (r->fail_client_buf = gh__strdup(client)))
    r->info.failure_client = r->fail_client_buf;
  if (service && service[0] && !r->fail_service_buf && (r->fail_service_buf = gh__strdup(service)))
    r->info.failure_service = r->fail_service_buf;
  if (detail && detail[0] && !r->fail_detail_buf && (r->fail_detail_buf = gh__strdup(detail)))
    r->info.failure_detail = r->fail_detail_buf;
}

/* Delegated credentials: a per-request MEMORY ccache (named uniquely:
 * pid, sequence, random), then into the token (DELEGATE level). */
void gh__auth_store_delegation(gh__auth_engine_t *e, gh__auth_result_t *r, gss_cred_id_t *deleg,
                               OM_uint32 ret_flags)
{
  OM_uint32 maj, min2;

  if (*deleg != GSS_C_NO_CREDENTIAL && (ret_flags & GSS_C_DELEG_FLAG)) {
    char ccname[96];
    unsigned char rnd[8] = {0};
    uint64_t rv;
    gss_key_value_element_desc el = {"ccache", ccname};
    gss_key_value_set_desc st = {1, &el};

    RAND_bytes(rnd, sizeof(rnd));
    memcpy(&rv, rnd, sizeof(rv));
    snprintf(ccname, sizeof(ccname), "MEMORY:gh-deleg-%ld-%llu-%016llx", (long)getpid(),
             (unsigned long long)atomic_fetch_add(&e->seq, 1), (unsigned long long)rv);
    maj = gss_store_cred_into(&min2, *deleg, GSS_C_INITIATE, &gh__auth_krb5_oid, 1, 0, &st, NULL,
                              NULL);
    if (!GSS_ERROR(maj))
      r->mem_ccache = gh__strdup(ccname);
    if (GSS_ERROR(maj) || !r->mem_ccache) {
      /* without a ccache the delegation is useless; authenticate without it */
      gss_release_cred(&min2, deleg);
    }
  } else if (*deleg != GSS_C_NO_CREDENTIAL) {
    gss_release_cred(&min2, deleg);
  }
}

/* ccache_dir holds the clients' private directories of delegated FILE
 * ccaches, which each client creates itself (gh__auth_result_file_ccache
 * runs as the client). It must be a real directory owned by the base
 * identity or root, writable and searchable by everyone but sticky (so no
 * client can remove or rename another's directory) and best not listable:
 * mode 1733. Created (1733) when missing; a directory of ours that clients
 * cannot write into (e.g. 0700, 0711) is set to 1733; refused (GH_ECONFIG,
 * message naming the path) when it is not a directory (symlinks included),
 * owned by another user, or group- or world-writable without the sticky
 * bit. Root's directory (with a service user) that clients cannot write
 * into is safe but unusable for delegation: a warning on stderr. Runs at
 * base identity. Without repair (gh_auth_check_ccache_dir, authinfo.h) it
 * changes nothing (e may be NULL): errbuf tells what start-up would do and
 * that warning is returned as 1 with its text. */
int gh__auth_ccache_dir_prepare(gh__auth_engine_t *e, const char *path, bool repair, char *errbuf,
                                size_t errlen)
{
  const mode_t want = S_ISVTX | S_IRWXU | S_IWGRP | S_IXGRP | S_IWOTH | S_IXOTH; /* 1733 */
  const uid_t me = geteuid();
  struct stat st;
  mode_t mode;
  int ret = 0;

  if (lstat(path, &st) != 0) {
    if (!repair && errno == ENOENT) { /* gh_auth_check_ccache_dir */
      if (errbuf && errlen)
        snprintf(errbuf, errlen, "ccache_dir %s: missing; created with mode 1733 at start", path);
      goto out;
    }
    if (!repair || errno != ENOENT || mkdir(path, S_IRWXU) != 0 || chmod(path, want) != 0 ||
        lstat(path, &st) != 0) {
      ret = GH_ECONFIG;
      if (errbuf && errlen)
        snprintf(errbuf, errlen, "ccache_dir %s: %s", path, strerror(errno));
      goto out;
    }
  }
  mode = st.st_mode & 07777;
  if (!S_ISDIR(st.st_mode)) {
    ret = GH_ECONFIG;
    if (errbuf && errlen)
      snprintf(errbuf, errlen, "ccache_dir %s: not a directory (symlinks are refused)", path);
    goto out;
  }
  if (st.st_uid != me && st.st_uid != 0) {
    ret = GH_ECONFIG;
    if (errbuf && errlen)
      snprintf(errbuf, errlen,
               "ccache_dir %s: owned by uid %u, not by the service (uid %u) or root: "
               "refused (it holds the delegated credentials)",
               path, (unsigned)st.st_uid, (unsigned)me);
    goto out;
  }
  if ((mode & (S_IWGRP | S_IWOTH)) && !(mode & S_ISVTX)) {
    ret = GH_ECONFIG;
    if (errbuf && errlen)
      snprintf(errbuf, errlen,
               "ccache_dir %s: mode %04o is group- or world-writable without the sticky bit "
               "(users could remove or replace each other's ccache directories): refused; "
               "use mode 1733",
               path, (unsigned)mode);
    goto out;
  }
  if ((mode & (S_IWOTH | S_IXOTH)) == (S_IWOTH | S_IXOTH))
    goto out; /* sticky, clients can create their directories (1733, 1777, ...) */
  if (st.st_uid != me) {
    /* safe but unusable for delegation, and not ours to change: sites
     * without CGI delegation work; a delegated FILE ccache fails (EACCES) */
    char warn[512];
    snprintf(warn, sizeof(warn),
             "ccache_dir %s: mode %04o, owned by root: clients cannot create their private "
             "ccache directories in it, delegated credentials cannot be handed to CGI "
             "scripts; make it mode 1733",
             path, (unsigned)mode);
    if (!repair) {
      if (errbuf && errlen)
        snprintf(errbuf, errlen, "%s", warn);
      ret = 1;
      goto out;
    }
    engine_log(e->log_cb, e->log_arg, LOG_WARNING, "%s", warn);
    goto out;
  }
  if (!repair) {
    if (errbuf && errlen)
      snprintf(errbuf, errlen, "ccache_dir %s: mode %04o: set to 1733 at start", path,
               (unsigned)mode);
    goto out;
  }
  if (chmod(path, want) != 0) {
    ret = GH_ECONFIG;
    if (errbuf && errlen)
      snprintf(errbuf, errlen, "ccache_dir %s: chmod 1733: %s", path, strerror(errno));
    goto out;
  }
out:
  return ret;
}

int gh_auth_check_ccache_dir(const char *path, char *msg, size_t msglen)
{
  if (msg && msglen)
    msg[0] = '\0';
  return gh__auth_ccache_dir_prepare(NULL, path ? path : "/run/gatehouse", false, msg, msglen);
}

/* What the client's side of gh__auth_result_file_ccache needs. */
typedef struct fcc_job {
  krb5_context k;
  krb5_ccache mem;
  krb5_principal princ;
  char *dir;  /* in: "<ccache_dir>/gh-deleg-XXXXXX"; out: the directory made */
  char *name; /* in: buffer for "FILE:<dir>/ccache" */
  size_t name_len;
  bool made; /* the directory exists */
  gh_auth_log_cb *log_cb;
  void *log_arg;
} fcc_job_t;

/* Copies s (n bytes and its NUL) to *p and advances it. */
static const char *put_name(char **p, const char *s, size_t n)
{
  char *d = *p;
  memcpy(d, s, n + 1);
  *p += n + 1;
  return d;
}

int gh__auth_result_set_users(gh__auth_result_t *r, const char *remote, const char *local)
{
  size_t rl = remote ? strlen(remote) : 0, ll = local ? strlen(local) : 0;
  char *p = r->users;
  r->remote_user_buf = r->local_user_buf = NULL;
  if (rl + ll + 2 <= sizeof(r->users)) {
    /* a request's names, nearly always: no allocation to make and free */
    r->info.remote_user = remote ? put_name(&p, remote, rl) : NULL;
    r->info.local_user = local ? put_name(&p, local, ll) : NULL;
    return 0;
  }
  r->remote_user_buf = remote ? gh__strdup(remote) : NULL;
  r->local_user_buf = local ? gh__strdup(local) : NULL;
  if ((remote && !r->remote_user_buf) || (local && !r->local_user_buf)) {
    free(r->remote_user_buf);
    free(r->local_user_buf);
    r->remote_user_buf = r->local_user_buf = NULL;
    r->info.remote_user = r->info.local_user = NULL;
    return -ENOMEM;
  }
  r->info.remote_user = r->remote_user_buf;
  r->info.local_user = r->local_user_buf;
  return 0;
}

void gh__auth_result_done(gh__auth_result_t *r)
{
  if (!r)
    return;
  for (size_t i = 0; i < r->n_challenges; i++)
    free(r->challenges[i]);
  r->n_challenges = 0;
  if (r->file_ccache_dir) {
    /* made by the client, in its own 0700 directory: removed as the client */
    int rc = gh__token_run_as(r->file_ccache_token, fcc_remove, r);
    if (rc != 0)
      engine_log(r->log_cb, r->log_arg, LOG_ERR, "delegated ccache %s: not removed: %s",
                 r->file_ccache_dir, gh_strerror(rc));
  }
  if (r->file_ccache_token)
    (void)gh_token_close(r->file_ccache_token);
  r->file_ccache_token = 0;
  if (r->mem_ccache) {
    krb5_context k = NULL;
    krb5_ccache cc = NULL;
    if (krb5_init_context(&k) == 0) {
      if (krb5_cc_resolve(k, r->mem_ccache, &cc) == 0)
        krb5_cc_destroy(k, cc);
      krb5_free_context(k);
    }
  }
  free(r->file_ccache);
  free(r->file_ccache_dir);
  free(r->mem_ccache);
  if (r->packed_buf) {
    explicit_bzero(r->packed_buf, r->info.packed_context_len);
    free(r->packed_buf);
  }
  free(r->mutual_buf);
  free(r->remote_user_buf);
  free(r->local_user_buf);
  if (r->fail_client_buf || r->fail_service_buf || r->fail_detail_buf) { /* failures only */
    free(r->fail_client_buf);
    free(r->fail_service_buf);
    free(r->fail_detail_buf);
  }
  memset(r, 0, sizeof(*r));
}

const char *gh__auth_result_mem_ccache(const gh__auth_result_t *r)
{
  return r->mem_ccache;
}

/* Runs as the client (gh__token_run_as): the private directory (mkdtemp:
 * 0700, the client's) and the ccache file in it (0600, the client's). On
 * failure removes what it made. */
static int fcc_make(void *arg)
{
  fcc_job_t *j = arg;
  krb5_ccache file = NULL;
  const char *path;
  int ret = 0;

  if (!mkdtemp(j->dir)) {
    ret = -errno;
    goto out;
  }
  j->made = true;
  snprintf(j->name, j->name_len, "FILE:%s/ccache", j->dir);
  path = j->name + strlen("FILE:");
  if (krb5_cc_resolve(j->k, j->name, &file) != 0 || krb5_cc_initialize(j->k, file, j->princ) != 0 ||
      krb5_cc_copy_creds(j->k, j->mem, file) != 0) {
    ret = GH_EAUTH_INTERNAL;
    goto out;
  }
  if (chmod(path, 0600) != 0) {
    ret = -errno;
    goto out;
  }
out:
  if (file)
    krb5_cc_close(j->k, file);
  if (ret != 0 && j->made) {
    if ((unlink(j->name + strlen("FILE:")) != 0 && errno != ENOENT) || rmdir(j->dir) != 0)
      engine_log(j->log_cb, j->log_arg, LOG_ERR,
                 "delegated ccache %s: not removed after a failure: %s", j->dir, strerror(errno));
    j->made = false;
  }
  return ret;
}

/* Runs as the client at the end of the request: the file, then its
 * directory. A file the client's program already removed (kdestroy) is fine. */
static int fcc_remove(void *arg)
{
  gh__auth_result_t *r = arg;

  if (r->file_ccache && unlink(r->file_ccache + strlen("FILE:")) != 0 && errno != ENOENT)
    return -errno;
  if (rmdir(r->file_ccache_dir) != 0)
    return -errno;
  return 0;
}

int gh__auth_result_file_ccache(gh__auth_engine_t *e, gh__auth_result_t *r, uid_t owner_uid,
                                gid_t owner_gid, const char **ret_ccname)
{
  fcc_job_t j = {0};
  gh_token_t tok = 0;
  uid_t uid;
  gid_t gid;
  int ret = 0;

  if (r->file_ccache) {
    *ret_ccname = r->file_ccache;
    goto out;
  }
  if (!r->mem_ccache) {
    ret = GH_ENOT_FOUND;
    goto out;
  }
  /* The ccache is made by the client itself: it must be the request's own */
  if ((ret = gh_token_get_uid(r->info.token, &uid)) != 0 ||
      (ret = gh_token_get_gid(r->info.token, &gid)) != 0)
    goto out;
  if (uid != owner_uid || gid != owner_gid) {
    ret = -EPERM;
    goto out;
  }
  /* our own handle: the receiver may close its token before the request ends */
  if ((ret = gh_token_open_handle(r->info.token, &tok)) != 0)
    goto out;
  if (asprintf(&j.dir, "%s/gh-deleg-XXXXXX", e->ccache_dir) < 0) {
    j.dir = NULL;
    ret = -ENOMEM;
    goto out;
  }
  j.name_len = strlen(j.dir) + sizeof("FILE:/ccache");
  j.name = gh__malloc(j.name_len);
  if (!j.name) {
    ret = -ENOMEM;
    goto out;
  }
  /* krb5 work that needs no identity at base: the profile is read here */
  if (krb5_init_context(&j.k) != 0) {
    j.k = NULL;
    ret = GH_EAUTH_INTERNAL;
    goto out;
  }
  if (krb5_cc_resolve(j.k, r->mem_ccache, &j.mem) != 0) {
    j.mem = NULL;
    ret = GH_EAUTH_INTERNAL;
    goto out;
  }
  if (krb5_cc_get_principal(j.k, j.mem, &j.princ) != 0) {
    j.princ = NULL;
    ret = GH_EAUTH_INTERNAL;
    goto out;
  }
  j.log_cb = e->log_cb;
  j.log_arg = e->log_arg;
  ret = gh__token_run_as(tok, fcc_make, &j);
  if (ret != 0)
    goto out;
  r->file_ccache_dir = j.dir;
  r->file_ccache = j.name;
  r->file_ccache_token = tok;
  j.dir = j.name = NULL;
  tok = 0;
  *ret_ccname = r->file_ccache;
out:
  if (j.k) {
    if (j.princ)
      krb5_free_principal(j.k, j.princ);
    if (j.mem)
      krb5_cc_close(j.k, j.mem);
    krb5_free_context(j.k);
  }
  if (tok)
    (void)gh_token_close(tok);
  free(j.name);
  free(j.dir);
  return ret;
}
