/* pl_fake.c: a fake request source and fake sec layer for pipeline unit tests. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gatehouse/error.h>

#include "pl_fake.h"

__thread gh_token_t fake_sec_current;
int fake_sec_closed;
int fake_sec_impersonations;
int fake_sec_reverts;

static int f_describe(void *src, gh__pl_reqinfo_t *in)
{
  fake_req_t *r = src;
  *in = r->info;
  if (r->auth.status == GH_AUTH_STATUS_SUCCESS || r->auth.type != GH_AUTH_TYPE_NONE)
    in->auth = &r->auth;
  return 0;
}

static size_t f_count(void *src)
{
  return ((fake_req_t *)src)->n_hdrs;
}

static int f_at(void *src, size_t i, const char **n, const char **v)
{
  fake_req_t *r = src;
  if (i >= r->n_hdrs)
    return -ENOENT;
  *n = r->hdr_names[i];
  *v = r->hdr_values[i];
  return 0;
}

static ssize_t f_read(void *src, void *buf, size_t len)
{
  fake_req_t *r = src;
  size_t left = r->body ? strlen(r->body) - r->body_off : 0;
  if (len > left)
    len = left;
  memcpy(buf, r->body + r->body_off, len);
  r->body_off += len;
  return (ssize_t)len;
}

static int f_status(void *src, int status, const char *reason)
{
  ((fake_req_t *)src)->status = status;
  (void)reason;
  return 0;
}

static int f_header(void *src, const char *n, const char *v)
{
  fake_req_t *r = src;
  size_t l = strlen(r->headers);
  snprintf(r->headers + l, sizeof(r->headers) - l, "%s: %s\n", n, v);
  return 0;
}

static int f_send(void *src, const void *d, size_t len, unsigned flags)
{
  fake_req_t *r = src;
  if (r->ended_ok)
    return GH_ESTATE;
  if (len > sizeof(r->out) - r->out_len)
    len = sizeof(r->out) - r->out_len;
  if (len)
    memcpy(r->out + r->out_len, d, len);
  r->out_len += len;
  r->sends++;
  if (!(flags & GH__PL_SEND_MORE))
    r->ended_ok = true;
  return 0;
}

static int f_send_fd(void *src, int fd, off_t off, size_t len, unsigned flags)
{
  fake_req_t *r = src;
  char buf[4096];
  ssize_t n;
  if (len > sizeof(buf))
    len = sizeof(buf);
  n = pread(fd, buf, len, off);
  r->fd_sends++;
  return f_send(src, buf, n > 0 ? (size_t)n : 0, flags);
}

static int f_complete(void *src)
{
  ((fake_req_t *)src)->completed++;
  return 0;
}

#define FAKE_SOURCE_OPS                                                                            \
  .describe = f_describe, .header_count = f_count, .header_at = f_at, .read_body = f_read,         \
  .set_status = f_status, .add_header = f_header, .send = f_send, .send_fd = f_send_fd,            \
  .complete = f_complete

const gh__pl_source_ops_t fake_source_ops = {FAKE_SOURCE_OPS};

static int f_can_wait(void *src)
{
  return !((fake_req_t *)src)->cannot_wait;
}

static int f_wait_fd(void *src, int fd, uint64_t key, unsigned events, int timeout_ms,
                     void (*cb)(int result, void *arg), void *arg)
{
  fake_req_t *r = src;
  /* arg is the engine's context (on_wait's argument): the wait must be
   * armed only once the request is suspended */
  bool suspended = atomic_load(&((gh_http_context_t *)arg)->state) == GH__PL_SUSPENDED;
  r->wait_suspended = (r->wait_calls == 0 || r->wait_suspended) && suspended;
  r->wait_calls++;
  r->wait_fd = fd;
  r->wait_key = key;
  r->wait_events = events;
  r->wait_timeout_ms = timeout_ms;
  if (r->wait_fail != 0)
    return r->wait_fail;
  if (r->wait_inline) { /* the event came at once, on "another worker" */
    cb(GH_HTTP_WAIT_READY, arg);
    return 0;
  }
  r->wait_cb = cb;
  r->wait_arg = arg;
  return 0;
}

const gh__pl_source_ops_t fake_wait_source_ops = {
    FAKE_SOURCE_OPS,
    .can_wait = f_can_wait,
    .wait_fd = f_wait_fd,
};

typedef struct fire {
  fake_req_t *r;
  int result;
  gh_token_t as;
} fire_t;

static void *fire_main(void *arg)
{
  fire_t *f = arg;
  void (*cb)(int, void *) = f->r->wait_cb;
  f->r->wait_cb = NULL;
  fake_sec_current = f->as;
  cb(f->result, f->r->wait_arg);
  f->as = fake_sec_current; /* what the callback left */
  return NULL;
}

void fake_wait_fire(fake_req_t *r, int result, gh_token_t as)
{
  pthread_t t;
  fire_t f = {r, result, as};
  if (r->wait_cb == NULL || pthread_create(&t, NULL, fire_main, &f) != 0)
    abort();
  pthread_join(t, NULL);
  if (f.as != 0)
    abort(); /* a wait's callback must leave its thread at base */
}

static int s_imp(gh_token_t t)
{
  if (t != 42 && t != 43)
    return GH_EINVALID_HANDLE;
  fake_sec_current = t;
  fake_sec_impersonations++;
  return 0;
}

static int s_revert(void)
{
  fake_sec_current = 0;
  fake_sec_reverts++;
  return 0;
}

static bool s_is(void)
{
  return fake_sec_current != 0;
}

static int s_base(void)
{
  return fake_sec_current ? GH_ESTATE : 0;
}

static int s_close(gh_token_t t)
{
  (void)t;
  fake_sec_closed++;
  return 0;
}

static int s_borrow(gh_token_t t, gh_token_t *ret)
{
  *ret = t | (1ull << 63);
  return 0;
}

static bool s_valid(gh_token_t t)
{
  return t != 0;
}

/* one view per level (the tests' tokens 42 and 43), as the sec layer's:
 * owned by the "token", pinned per user */
static gh__pl_token_view_t s_views[2] = {
    {.uid = 20001,
     .gid = 30001,
     .level = GH__PL_LEVEL_IMPERSONATE,
     .name = "alice",
     .uid_text = "20001",
     .gid_text = "30001",
     .groups_text = "30001,30010"},
    {.uid = 20001,
     .gid = 30001,
     .level = GH__PL_LEVEL_IDENTIFY,
     .name = "alice",
     .uid_text = "20001",
     .gid_text = "30001",
     .groups_text = "30001,30010"},
};
int fake_sec_views_pinned;

static int s_view(gh_token_t t, const gh__pl_token_view_t **ret)
{
  *ret = &s_views[t == 43 ? 1 : 0];
  fake_sec_views_pinned++;
  return 0;
}

static void s_view_release(const gh__pl_token_view_t *v)
{
  (void)v;
  fake_sec_views_pinned--;
}

static int s_member(gh_token_t t, gid_t gid, bool *ret)
{
  (void)t;
  *ret = gid == 30001 || gid == 30010;
  return 0;
}

/* names: "ghusers" (30010) member, "nosuch" unknown, "nss-down" an NSS
 * error; any other name is a group the token is not in */
static int s_member_name(gh_token_t t, const char *name, gh_membership_t *ret)
{
  int rc = 0;
  (void)t;
  *ret = GH_MEMBER_NO;
  if (strcmp(name, "ghusers") == 0) {
    *ret = GH_MEMBER_YES;
  } else if (strcmp(name, "nosuch") == 0) {
    rc = GH_MEMBER_NO_SUCH_GROUP;
  } else if (strcmp(name, "nss-down") == 0) {
    *ret = GH_MEMBER_UNKNOWN;
    rc = -EACCES;
  }
  return rc;
}

gh_token_t fake_sec_scoped_token;
int fake_sec_scoped_opens;

static int s_openat2(gh_token_t t, int dirfd, const char *path, const struct open_how *how)
{
  (void)dirfd;
  (void)path;
  (void)how;
  fake_sec_scoped_token = t;
  fake_sec_scoped_opens++;
  return -ENOSYS;
}

const gh__pl_sec_ops_t fake_sec_ops = {
    .impersonate = s_imp,
    .revert = s_revert,
    .is_impersonating = s_is,
    .assert_base = s_base,
    .token_close = s_close,
    .token_borrow = s_borrow,
    .token_valid = s_valid,
    .token_view = s_view,
    .token_view_release = s_view_release,
    .token_is_member = s_member,
    .token_is_member_name = s_member_name,
    .token_openat2 = s_openat2,
};

void fake_req_init(fake_req_t *r, const char *method, const char *path)
{
  memset(r, 0, sizeof(*r));
  r->info.method = method;
  r->info.url = path;
  r->info.path = path;
  r->info.version = 11;
  r->info.content_length = -1;
  r->info.remote_addr = "192.0.2.7";
  r->info.remote_port = 40000;
  r->info.local_addr = "127.0.0.1";
  r->info.local_port = 8080;
  r->auth.status = GH_AUTH_STATUS_NOT_AUTHENTICATED;
}

void fake_req_header(fake_req_t *r, const char *name, const char *value)
{
  r->hdr_names[r->n_hdrs] = name;
  r->hdr_values[r->n_hdrs] = value;
  r->n_hdrs++;
}

void fake_req_auth(fake_req_t *r)
{
  r->auth.status = GH_AUTH_STATUS_SUCCESS;
  r->auth.type = GH_AUTH_TYPE_NEGOTIATE;
  r->auth.token = 42;
  r->auth.package_name = "Kerberos";
  r->auth.remote_user = "alice@EXAMPLE.ORG";
  r->auth.local_user = "alice";
}

gh_pipeline_t *fake_pipeline(const char *const *kv)
{
  gh_pipeline_t *pl = NULL;
  gh_pipeline_config_t *cfg = NULL;
  if (gh_pipeline_new(&pl) != 0 || gh_pipeline_config_new(&cfg) != 0)
    abort();
  gh__pipeline_set_sec_ops(pl, &fake_sec_ops);
  gh_pipeline_config_add(cfg, "site /", NULL, NULL);
  for (size_t i = 0; kv && kv[i]; i += 2)
    gh_pipeline_config_add(cfg, "site /", kv[i], kv[i + 1]);
  gh_pipeline_set_config_take(pl, cfg);
  return pl;
}
