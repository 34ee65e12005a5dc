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

static gh_request_status_t on_execute(void *module, gh_http_context_t *ctx,
                                      gh_event_provider_t *prov)
{
  gh_http_request_t *req = gh_http_context_get_request(ctx);
  gh_http_response_t *resp = gh_http_context_get_response(ctx);
  gh_http_user_t *user = gh_http_context_get_user(ctx);
  const char *root = gh_http_context_get_site_config(ctx, "root");
  const char *site = gh_http_context_get_site_path(ctx);
  const char *tmo_s = gh_http_context_get_site_config(ctx, "cgi_timeout");
  const char *path = gh_http_request_get_path(req);
  const char *rel = path, *path_info = "";
  char *script = NULL, *argv[2];
  size_t slen = strlen(site), split = 0;
  long timeout_ms = (tmo_s ? atol(tmo_s) : 30) * 1000L, deadline;
  int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1}, r, wstatus;
  pid_t pid = -1;
  gh_token_t tok = gh_http_user_get_primary_token(user);
  envb_t env = {.ctx = ctx};
  gh_spawn_opts_t opts;
  char *hbuf = NULL;
  size_t hlen = 0;
  bool headers_done = false, timed_out = false;
  size_t body_len = 0, body_off = 0;
  const char *body = NULL;
  char *body_copy = NULL;
  gh_request_status_t ret = GH_REQUEST_FINISH;
  (void)module;
  (void)prov;

  if (root == NULL)
    return fail(ctx, 500);
  if (tok == 0) /* anonymous or IDENTIFY: never runs a script as the service */
    return fail(ctx, gh_http_user_get_name(user)[0] ? 403 : 401);
  if (slen > 1 && strncmp(path, site, slen) == 0)
    rel = path + slen;
  r = find_script(ctx, root, rel, &script, &path_info, &split);
  if (r < 0)
    return fail(ctx, r == -ENOENT || r == -ENOTDIR ? 404 : 403);
  if (timeout_ms <= 0)
    timeout_ms = 30000;
  /* CGI/1.1 environment (RFC 3875 §4.1) */
  env_add(&env, "PATH", "/usr/local/bin:/usr/bin:/bin");
  env_var(&env, "GATEWAY_INTERFACE");
  env_var(&env, "SERVER_SOFTWARE");
  env_var(&env, "SERVER_NAME");
  env_var(&env, "SERVER_PORT");
  env_var(&env, "SERVER_PROTOCOL");
  env_var(&env, "REQUEST_METHOD");
  env_var(&env, "QUERY_STRING");
  env_var(&env, "REMOTE_ADDR");
  env_var(&env, "REMOTE_PORT");
  env_var(&env, "AUTH_TYPE");
  env_var(&env, "REMOTE_USER");
  env_var(&env, "LOGON_USER");
  env_var(&env, "CONTENT_TYPE");
  env_var(&env, "CONTENT_LENGTH");
  env_var(&env, "HTTPS");
  {
    char *sn = gh_http_context_alloc(ctx, strlen(site) + split + 1);
    if (sn != NULL) {
      snprintf(sn, strlen(site) + split + 1, "%s%.*s", slen > 1 ? site : "", (int)split, rel);
      env_add(&env, "SCRIPT_NAME", sn);
    }
  }
  env_add(&env, "SCRIPT_FILENAME", script);
  env_add(&env, "PATH_INFO", path_info);
  env_add(&env, "KRB5CCNAME", gh_http_request_get_delegated_ccache(req));
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
    env_add(&env, name, v);
  }
  env.v[env.n] = NULL;
  /* the whole body is buffered by the server; read it through READ_ENTITY */
  {
    int64_t cl = gh_http_request_get_content_length(req);
    if (cl > 0 && cl < (64 << 20)) {
      body_copy = malloc((size_t)cl);
      if (body_copy != NULL) {
        ssize_t got;
        while (body_len < (size_t)cl &&
               (got = gh_http_request_read_body(req, body_copy + body_len, (size_t)cl - body_len)) > 0)
          body_len += (size_t)got;
        body = body_copy;
      }
    }
  }
  if (pipe2(in_pipe, O_CLOEXEC) != 0 || pipe2(out_pipe, O_CLOEXEC) != 0) {
    ret = fail(ctx, 500);
    goto out;
  }
  argv[0] = script;
  argv[1] = NULL;
  opts.stdin_fd = in_pipe[0];
  opts.stdout_fd = out_pipe[1];
  opts.stderr_fd = -1;
  /* the script's own directory (RFC 3875 §7.2, as Apache): the child
   * changes to it as the client, after the identity switch */
  opts.cwd = script_dir(ctx, script);
  if (opts.cwd == NULL) {
    ret = fail(ctx, 500);
    goto out;
  }
  /* real, effective and saved ids and groups set and verified in the child
   * before exec (DESIGN item 19) */
  r = gh_token_spawn_as(tok, argv, env.v, &opts, &pid);
  close(in_pipe[0]);
  close(out_pipe[1]);
  in_pipe[0] = out_pipe[1] = -1;
  if (r < 0) {
    /* EACCES/EPERM: the kernel refused the client the directory or the
     * script (chdir and execve need the same search rights): 403; any
     * other failure, in chdir, exec or before, is the server's: 500 */
    bool refused = r == -EACCES || r == -EPERM;
    pid = -1;
    gh_module_server_log(gh_http_context_get_server(ctx), refused ? GH_LOG_WARNING : GH_LOG_ERROR,
                         "cgi: %s: cannot run it as %s in %s: %s", script,
                         gh_http_user_get_name(user), opts.cwd, gh_strerror(r));
    ret = fail(ctx, refused ? 403 : 500);
    goto out;
  }
  fcntl(in_pipe[1], F_SETFL, O_NONBLOCK);
  if (body_len == 0) {
    close(in_pipe[1]);
    in_pipe[1] = -1;
  }
  hbuf = malloc(CGI_MAX_HEADER_BYTES + 1);
  if (hbuf == NULL) {
    ret = fail(ctx, 500);
    goto out;
  }
  deadline = now_ms() + timeout_ms;
  for (;;) {
    struct pollfd pf[2] = {{.fd = out_pipe[0], .events = POLLIN},
                           {.fd = in_pipe[1], .events = POLLOUT}};
    long left = deadline - now_ms();
    int np = in_pipe[1] >= 0 ? 2 : 1;
    if (left <= 0) {
      timed_out = true;
      break;
    }
    if (poll(pf, (nfds_t)np, (int)left) < 0 && errno != EINTR)
      break;
    if (np == 2 && (pf[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w = write(in_pipe[1], body + body_off, body_len - body_off);
      if (w > 0)
        body_off += (size_t)w;
      if (w < 0 && errno != EAGAIN)
        body_off = body_len;
      if (body_off >= body_len) {
        close(in_pipe[1]);
        in_pipe[1] = -1;
      }
    }
    if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      char chunk[16384];
      ssize_t n = read(out_pipe[0], chunk, sizeof(chunk));
      if (n <= 0)
        break;
      if (headers_done) {
        gh_http_response_write(resp, chunk, (size_t)n);
        continue;
      }
      {
        size_t take = (size_t)n;
        ssize_t used;
        cgi_headers_t h;
        if (take > CGI_MAX_HEADER_BYTES - hlen)
          take = CGI_MAX_HEADER_BYTES - hlen;
        memcpy(hbuf + hlen, chunk, take);
        hlen += take;
        used = cgi_parse_headers(hbuf, hlen, &h);
        if (used == 0 && hlen < CGI_MAX_HEADER_BYTES)
          continue;
        if (used <= 0) {
          gh_module_server_log(gh_http_context_get_server(ctx), GH_LOG_ERROR,
                               "cgi: %s: bad response headers", script);
          ret = fail(ctx, 502);
          kill_child(pid, tok);
          goto out;
        }
        gh_http_response_clear(resp);
        gh_http_response_set_status(resp, h.status, h.reason[0] ? h.reason : NULL);
        for (size_t i = 0; i < h.n; i++)
          if (strcasecmp(h.h[i].name, "Content-Length") != 0 &&
              strcasecmp(h.h[i].name, "Transfer-Encoding") != 0 &&
              strcasecmp(h.h[i].name, "Connection") != 0)
            gh_http_response_set_header(resp, h.h[i].name, h.h[i].value, GH_HEADER_ADD);
        headers_done = true;
        if ((size_t)used < hlen)
          gh_http_response_write(resp, hbuf + used, hlen - (size_t)used);
        if (take < (size_t)n)
          gh_http_response_write(resp, chunk + take, (size_t)n - take);
      }
    }
  }
  if (timed_out) {
    kill_child(pid, tok);
    gh_module_server_log(gh_http_context_get_server(ctx), GH_LOG_WARNING,
                         "cgi: %s: killed after %ld ms", script, timeout_ms);
    if (!gh_http_response_headers_sent(resp))
      ret = fail(ctx, 504);
    goto out;
  }
  if (!headers_done)
    ret = fail(ctx, 502);
out:
  if (pid > 0)
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
      ;
  for (int i = 0; i < 2; i++) {
    if (in_pipe[i] >= 0)
      close(in_pipe[i]);
    if (out_pipe[i] >= 0)
      close(out_pipe[i]);
  }
  free(hbuf);
  free(body_copy);
  return ret;
}

GH_MODULE_EXPORT int gh_register_module(uint32_t server_version, gh_module_registration_t *reg,
                                        gh_module_server_t *server)
{
  gh_module_factory_t f = {.struct_size = sizeof(f), .on_execute_request_handler = on_execute};
  int ret;
  (void)server_version;
  (void)server;
  ret = gh_module_registration_set_factory(reg, &f);
  if (ret == 0)
    ret = gh_module_registration_set_handler(reg);
  return ret;
}
