/* cgi.c: CGI/1.1 scripts run as the client through gh_token_spawn_as, body streamed in, timeout kills. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gatehouse/error.h>
#include <gatehouse/impersonate.h>
#include <gatehouse/module.h>
#include <gatehouse/token.h>

#include "cgi_headers.h"

GH_MODULE_DEFINE("cgi");

#define CGI_MAX_ENV 128

typedef struct envb {
  char *v[CGI_MAX_ENV + 1];
  size_t n;
  gh_http_context_t *ctx;
} envb_t;

static void env_add(envb_t *e, const char *name, const char *value)
{
  size_t l;
  char *s;
  if (value == NULL || e->n >= CGI_MAX_ENV)
    return;
  l = strlen(name) + strlen(value) + 2;
  s = gh_http_context_alloc(e->ctx, l);
  if (s == NULL)
    return;
  snprintf(s, l, "%s=%s", name, value);
  e->v[e->n++] = s;
}

static void env_var(envb_t *e, const char *name)
{
  const char *v = NULL;
  if (gh_http_context_get_server_variable(e->ctx, name, &v) == 0)
    env_add(e, name, v);
}

static long now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static gh_request_status_t fail(gh_http_context_t *ctx, int status)
{
  gh_http_response_send_error(gh_http_context_get_response(ctx), status, NULL);
  return GH_REQUEST_FINISH;
}

/* SIGKILL for the script, which runs with the client's real and saved uid:
 * at base (a site that does not impersonate) the service may lack CAP_KILL
 * (service-user mode, and root mode keeps no CAP_KILL), so the signal is
 * sent as the client, who may signal its own processes. */
static void kill_child(pid_t pid, gh_token_t tok)
{
  if (kill(pid, SIGKILL) == 0 || errno != EPERM || gh_is_impersonating())
    return;
  if (gh_impersonate(tok) == 0) {
    (void)kill(pid, SIGKILL);
    gh_revert();
  }
}

/* Finds the script: the longest prefix of rel (within root) that is a
 * regular file; the rest is PATH_INFO. */
static int find_script(gh_http_context_t *ctx, const char *root, const char *rel,
                       char **ret_script, const char **ret_path_info, size_t *ret_split)
{
  size_t rl = strlen(root), n = strlen(rel);
  char *buf = gh_http_context_alloc(ctx, rl + n + 2);
  int ret = -ENOENT;
  if (buf == NULL)
    return -ENOMEM;
  if (strstr(rel, "/../") != NULL || (n >= 3 && strcmp(rel + n - 3, "/..") == 0))
    return -EACCES;
  for (size_t i = 1; i <= n; i++) {
    if (i < n && rel[i] != '/')
      continue;
    struct stat st;
    snprintf(buf, rl + i + 2, "%s%.*s", root, (int)i, rel);
    if (stat(buf, &st) != 0) {
      ret = -errno;
      break;
    }
    if (S_ISREG(st.st_mode)) {
      *ret_script = buf;
      *ret_path_info = rel + i;
      *ret_split = i;
      ret = 0;
      break;
    }
    if (!S_ISDIR(st.st_mode)) {
      ret = -EACCES;
      break;
    }
  }
  return ret;
}

/* The directory that holds the script (its path up to the last '/'), from
 * the request's pool; NULL when out of memory. */
static const char *script_dir(gh_http_context_t *ctx, const char *script)
{
  const char *slash = strrchr(script, '/');
  size_t n = slash != NULL && slash != script ? (size_t)(slash - script) : 1;
  char *dir = gh_http_context_alloc(ctx, n + 1);
  if (dir != NULL) {
    memcpy(dir, slash != NULL && slash != script ? script : "/", n);
    dir[n] = '\0';
  }
  return dir;
}

/* One run of a script: what the phases of on_execute share. */
typedef struct cgi_run {
  gh_http_context_t *ctx;
  gh_http_response_t *resp;
  gh_token_t tok; /* the client's primary token (borrowed) */
  long timeout_ms;
  char *script;            /* absolute path (request memory) */
  const char *path_info;   /* the rest of the URL path after the script */
  const char *script_name; /* the URL path of the script (request memory), or NULL */
  char *body;              /* the request body (malloc), body_len bytes */
  size_t body_len, body_off;
  pid_t pid;       /* the script, or -1 */
  int to_script;   /* our end of its stdin, -1 once closed */
  int from_script; /* our end of its stdout */
  char *hbuf;      /* its response header section so far (malloc) */
  size_t hlen;
  bool headers_done;
} cgi_run_t;

/* Phase 1: the script for this request, or the status that refuses it. */
static int locate(cgi_run_t *run)
{
  gh_http_context_t *ctx = run->ctx;
  gh_http_user_t *user = gh_http_context_get_user(ctx);
  const char *root = gh_http_context_get_site_config(ctx, "root");
  const char *site = gh_http_context_get_site_path(ctx);
  const char *path = gh_http_request_get_path(gh_http_context_get_request(ctx));
  const char *rel = path;
  size_t slen = strlen(site), split = 0;
  char *sn;
  int r;

  if (root == NULL)
    return 500;
  if (run->tok == 0) /* anonymous or IDENTIFY: never runs a script as the service */
    return gh_http_user_get_name(user)[0] ? 403 : 401;
  if (slen > 1 && strncmp(path, site, slen) == 0)
    rel = path + slen;
  r = find_script(ctx, root, rel, &run->script, &run->path_info, &split);
  if (r < 0)
    return r == -ENOENT || r == -ENOTDIR ? 404 : 403;
  sn = gh_http_context_alloc(ctx, slen + split + 1);
  if (sn != NULL) {
    snprintf(sn, slen + split + 1, "%s%.*s", slen > 1 ? site : "", (int)split, rel);
    run->script_name = sn;
  }
  return 0;
}

/* Phase 2: the CGI/1.1 environment (RFC 3875 §4.1), NULL-terminated. */
static void build_env(const cgi_run_t *run, envb_t *env)
{
  static const char *const vars[] = {
      "GATEWAY_INTERFACE", "SERVER_SOFTWARE", "SERVER_NAME",  "SERVER_PORT",    "SERVER_PROTOCOL",
      "REQUEST_METHOD",    "QUERY_STRING",    "REMOTE_ADDR",  "REMOTE_PORT",    "AUTH_TYPE",
      "REMOTE_USER",       "LOGON_USER",      "CONTENT_TYPE", "CONTENT_LENGTH", "HTTPS",
      "AUTH_SESSION"};
  gh_http_request_t *req = gh_http_context_get_request(run->ctx);

  env_add(env, "PATH", "/usr/local/bin:/usr/bin:/bin");
  for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
    env_var(env, vars[i]);
  env_add(env, "SCRIPT_NAME", run->script_name);
  env_add(env, "SCRIPT_FILENAME", run->script);
  env_add(env, "PATH_INFO", run->path_info);
  env_add(env, "KRB5CCNAME", gh_http_request_get_delegated_ccache(req));
  for (size_t i = 0; i < gh_http_request_get_header_count(req); i++) {
    const char *n, *v;
    char name[128];
    size_t k;
    if (gh_http_request_get_header_at(req, i, &n, &v) < 0 || strcasecmp(n, "Authorization") == 0 ||
        strcasecmp(n, "Proxy") == 0 || strcasecmp(n, "Content-Type") == 0 ||
        strcasecmp(n, "Content-Length") == 0 || strlen(n) > 100)
      continue;
    memcpy(name, "HTTP_", 5);
    for (k = 0; n[k]; k++)
      name[5 + k] = n[k] == '-' ? '_' : (char)toupper((unsigned char)n[k]);
    name[5 + k] = '\0';
    env_add(env, name, v);
  }
  env->v[env->n] = NULL;
}

/* Phase 3: the request body, which the server has buffered whole, read
 * through READ_ENTITY. Nothing (an empty stdin) when there is none. */
static void read_body(cgi_run_t *run)
{
  gh_http_request_t *req = gh_http_context_get_request(run->ctx);
  int64_t cl = gh_http_request_get_content_length(req);
  ssize_t got;

  if (cl <= 0 || cl >= (64 << 20))
    return;
  run->body = malloc((size_t)cl);
  if (run->body == NULL)
    return;
  while (run->body_len < (size_t)cl &&
         (got = gh_http_request_read_body(req, run->body + run->body_len,
                                          (size_t)cl - run->body_len)) > 0)
    run->body_len += (size_t)got;
}

/* Phase 4: the script started as the client, in its own directory, with
 * pipes for stdin and stdout; or the status that refuses it. */
static int spawn(cgi_run_t *run, envb_t *env)
{
  int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1}, status = 0, r;
  char *argv[2] = {run->script, NULL};
  gh_spawn_opts_t opts = {.stderr_fd = -1};
  bool refused;

  if (pipe2(in_pipe, O_CLOEXEC) != 0 || pipe2(out_pipe, O_CLOEXEC) != 0) {
    status = 500;
    goto out;
  }
  opts.stdin_fd = in_pipe[0];
  opts.stdout_fd = out_pipe[1];
  /* the script's own directory (RFC 3875 §7.2, as Apache): the child
   * changes to it as the client, after the identity switch */
  opts.cwd = script_dir(run->ctx, run->script);
  if (opts.cwd == NULL) {
    status = 500;
    goto out;
  }
  /* real, effective and saved ids and groups set and verified in the child
   * before exec */
  r = gh_token_spawn_as(run->tok, argv, env->v, &opts, &run->pid);
  if (r < 0) {
    /* EACCES/EPERM: the kernel refused the client the directory or the
     * script (chdir and execve need the same search rights): 403; any
     * other failure, in chdir, exec or before, is the server's: 500 */
    refused = r == -EACCES || r == -EPERM;
    run->pid = -1;
    gh_module_server_log(
        gh_http_context_get_server(run->ctx), refused ? GH_LOG_WARNING : GH_LOG_ERROR,
        "cgi: %s: cannot run it as %s in %s: %s", run->script,
        gh_http_user_get_name(gh_http_context_get_user(run->ctx)), opts.cwd, gh_strerror(r));
    status = refused ? 403 : 500;
    goto out;
  }
  run->to_script = in_pipe[1];
  run->from_script = out_pipe[0];
  in_pipe[1] = out_pipe[0] = -1;
  fcntl(run->to_script, F_SETFL, O_NONBLOCK);
  if (run->body_len == 0) {
    close(run->to_script);
    run->to_script = -1;
  }
out:
  for (int i = 0; i < 2; i++) {
    if (in_pipe[i] >= 0)
      close(in_pipe[i]);
    if (out_pipe[i] >= 0)
      close(out_pipe[i]);
  }
  return status;
}

/* Writes what the script's stdin takes of the body; closes it at the end
 * (or when the script stopped reading). */
static void feed_body(cgi_run_t *run)
{
  ssize_t w = write(run->to_script, run->body + run->body_off, run->body_len - run->body_off);
  if (w > 0)
    run->body_off += (size_t)w;
  if (w < 0 && errno != EAGAIN)
    run->body_off = run->body_len;
  if (run->body_off >= run->body_len) {
    close(run->to_script);
    run->to_script = -1;
  }
}

/* Takes n bytes of the script's output: the header section first (parsed
 * into the response's status and headers once complete), then the body.
 * Returns 0, or 502 for a header section that is malformed or too long. */
static int take_output(cgi_run_t *run, const char *chunk, size_t n)
{
  size_t take = n;
  ssize_t used;
  cgi_headers_t h;

  if (run->headers_done) {
    gh_http_response_write(run->resp, chunk, n);
    return 0;
  }
  if (take > CGI_MAX_HEADER_BYTES - run->hlen)
    take = CGI_MAX_HEADER_BYTES - run->hlen;
  memcpy(run->hbuf + run->hlen, chunk, take);
  run->hlen += take;
  used = cgi_parse_headers(run->hbuf, run->hlen, &h);
  if (used == 0 && run->hlen < CGI_MAX_HEADER_BYTES)
    return 0;
  if (used <= 0) {
    gh_module_server_log(gh_http_context_get_server(run->ctx), GH_LOG_ERROR,
                         "cgi: %s: bad response headers", run->script);
    return 502;
  }
  gh_http_response_clear(run->resp);
  gh_http_response_set_status(run->resp, h.status, h.reason[0] ? h.reason : NULL);
  for (size_t i = 0; i < h.n; i++)
    if (strcasecmp(h.h[i].name, "Content-Length") != 0 &&
        strcasecmp(h.h[i].name, "Transfer-Encoding") != 0 &&
        strcasecmp(h.h[i].name, "Connection") != 0)
      gh_http_response_set_header(run->resp, h.h[i].name, h.h[i].value, GH_HEADER_ADD);
  run->headers_done = true;
  if ((size_t)used < run->hlen)
    gh_http_response_write(run->resp, run->hbuf + used, run->hlen - (size_t)used);
  if (take < n)
    gh_http_response_write(run->resp, chunk + take, n - take);
  return 0;
}

/* Phase 5: body in, output out, until the script closes its stdout or the
 * timeout. Returns 0 when the response is complete, or the error status
 * (502 bad or missing headers, 504 killed before any header went out). */
static int pump(cgi_run_t *run)
{
  long deadline = now_ms() + run->timeout_ms;
  int status = 0;

  run->hbuf = malloc(CGI_MAX_HEADER_BYTES + 1);
  if (run->hbuf == NULL)
    return 500;
  for (;;) {
    struct pollfd pf[2] = {{.fd = run->from_script, .events = POLLIN},
                           {.fd = run->to_script, .events = POLLOUT}};
    long left = deadline - now_ms();
    int np = run->to_script >= 0 ? 2 : 1;
    char chunk[16384];
    ssize_t n;
    if (left <= 0) {
      kill_child(run->pid, run->tok);
      gh_module_server_log(gh_http_context_get_server(run->ctx), GH_LOG_WARNING,
                           "cgi: %s: killed after %ld ms", run->script, run->timeout_ms);
      return gh_http_response_headers_sent(run->resp) ? 0 : 504;
    }
    if (poll(pf, (nfds_t)np, (int)left) < 0 && errno != EINTR)
      break;
    if (np == 2 && (pf[1].revents & (POLLOUT | POLLERR | POLLHUP)))
      feed_body(run);
    if (!(pf[0].revents & (POLLIN | POLLHUP | POLLERR)))
      continue;
    n = read(run->from_script, chunk, sizeof(chunk));
    if (n <= 0)
      break;
    status = take_output(run, chunk, (size_t)n);
    if (status != 0) {
      kill_child(run->pid, run->tok);
      return status;
    }
  }
  return run->headers_done ? 0 : 502;
}

static gh_request_status_t on_execute(void *module, gh_http_context_t *ctx,
                                      gh_event_provider_t *prov)
{
  uint64_t timeout_ms = 0;
  cgi_run_t run = {.ctx = ctx,
                   .resp = gh_http_context_get_response(ctx),
                   .tok = gh_http_user_get_primary_token(gh_http_context_get_user(ctx)),
                   .path_info = "",
                   .pid = -1,
                   .to_script = -1,
                   .from_script = -1};
  envb_t env = {.ctx = ctx};
  int status, wstatus;
  (void)module;
  (void)prov;

  /* checked when the configuration was loaded (keys below) */
  status = gh_http_context_get_config_uint(ctx, "cgi_timeout", &timeout_ms) == 0 ? 0 : 500;
  run.timeout_ms = (long)timeout_ms;
  if (status == 0)
    status = locate(&run);
  if (status != 0)
    goto out;
  build_env(&run, &env);
  read_body(&run);
  status = spawn(&run, &env);
  if (status == 0)
    status = pump(&run);
out:
  if (status != 0)
    (void)fail(ctx, status);
  if (run.pid > 0)
    while (waitpid(run.pid, &wstatus, 0) < 0 && errno == EINTR)
      ;
  if (run.to_script >= 0)
    close(run.to_script);
  if (run.from_script >= 0)
    close(run.from_script);
  free(run.hbuf);
  free(run.body);
  return GH_REQUEST_FINISH;
}

/* [site] cgi_timeout: how long a script may run (default 30 s, at most a day) */
static const gh_module_key_t keys[] = {
    {.name = "cgi_timeout",
     .type = GH_CONFIG_DURATION,
     .flags = GH_CONFIG_SITE,
     .default_value = "30s",
     .min = 1,
     .max = 24 * 3600 * 1000},
};

GH_MODULE_EXPORT int gh_register_module(uint32_t server_version, gh_module_registration_t *reg,
                                        gh_module_server_t *server)
{
  int ret;
  (void)server_version;
  (void)server;
  ret = gh_module_registration_set_execute_handler(reg, on_execute);
  if (ret == 0)
    ret = GH_MODULE_CONFIG_KEYS(reg, keys);
  return ret;
}
