/* log.c: access log in Combined Log Format with the authenticated user, to a file or stdout. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gatehouse/module.h>

GH_MODULE_DEFINE("log");

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_fd = -1;
static bool g_own_fd;

/* Copies s into out, escaping '"', '\\' and bytes outside printable ASCII
 * as \xHH so a client cannot forge log lines. */
static void clf_esc(const char *s, char *out, size_t len)
{
  size_t o = 0;
  if (s == NULL || *s == '\0') {
    snprintf(out, len, "-");
    return;
  }
  for (; *s && o + 5 < len; s++) {
    unsigned char c = (unsigned char)*s;
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
      o += (size_t)snprintf(out + o, len - o, "\\x%02x", c);
    else
      out[o++] = (char)c;
  }
  out[o] = '\0';
}

/* The user field, readable: a backslash is no hazard in a log line, so
 * GH\alice (NTLM) stays GH\alice. Escaped as \xHH: control bytes, bytes
 * outside printable ASCII, '"', the space (the field separator of the
 * format) and a backslash before an 'x', so that every \xHH in the field
 * is an escape and nothing else is. */
static void user_esc(const char *s, char *out, size_t len)
{
  size_t o = 0;
  if (s == NULL || *s == '\0') {
    snprintf(out, len, "-");
    return;
  }
  for (; *s && o + 5 < len; s++) {
    unsigned char c = (unsigned char)*s;
    if (c <= 0x20 || c >= 0x7f || c == '"' || (c == '\\' && s[1] == 'x'))
      o += (size_t)snprintf(out + o, len - o, "\\x%02x", c);
    else
      out[o++] = (char)c;
  }
  out[o] = '\0';
}

static void open_log(gh_module_server_t *server)
{
  const char *path = gh_module_server_get_config(server, "server", "access_log");
  int fd = -1;
  bool own = false;
  if (path == NULL || strcmp(path, "-") == 0) {
    fd = STDOUT_FILENO;
  } else {
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    own = fd >= 0;
    if (fd < 0)
      gh_module_server_log(server, GH_LOG_ERROR, "log: cannot open %s: %s", path,
                           strerror(errno));
  }
  pthread_mutex_lock(&g_lock);
  if (g_own_fd && g_fd >= 0)
    close(g_fd);
  g_fd = fd;
  g_own_fd = own;
  pthread_mutex_unlock(&g_lock);
}

static gh_global_status_t on_global(void *data, gh_module_server_t *server)
{
  (void)data;
  open_log(server); /* start and reload: reopen (log rotation) */
  return GH_GLOBAL_CONTINUE;
}

static gh_global_status_t on_stop(void *data, gh_module_server_t *server)
{
  (void)data;
  (void)server;
  pthread_mutex_lock(&g_lock);
  if (g_own_fd && g_fd >= 0)
    close(g_fd);
  g_fd = -1;
  g_own_fd = false;
  pthread_mutex_unlock(&g_lock);
  return GH_GLOBAL_CONTINUE;
}

static gh_request_status_t on_log(void *module, gh_http_context_t *ctx, gh_event_provider_t *p)
{
  gh_http_request_t *req = gh_http_context_get_request(ctx);
  gh_http_response_t *resp = gh_http_context_get_response(ctx);
  char user[512], reqline[2200], ref[1100], ua[1100], tbuf[64], line[5000];
  char url[2048], method[64];
  const char *addr = gh_http_request_get_remote_addr(req);
  struct tm tm;
  time_t now = time(NULL);
  uint64_t bytes = gh_http_response_get_body_length(resp);
  char bytes_s[32];
  int n, ver = gh_http_request_get_version(req);
  (void)module;
  (void)p;
  user_esc(gh_http_user_get_name(gh_http_context_get_user(ctx)), user, sizeof(user));
  clf_esc(gh_http_request_get_method(req), method, sizeof(method));
  clf_esc(gh_http_request_get_url(req), url, sizeof(url));
  snprintf(reqline, sizeof(reqline), "%s %s HTTP/%d.%d", method, url, ver / 10, ver % 10);
  clf_esc(gh_http_request_get_header(req, "Referer"), ref, sizeof(ref));
  clf_esc(gh_http_request_get_header(req, "User-Agent"), ua, sizeof(ua));
  localtime_r(&now, &tm);
  strftime(tbuf, sizeof(tbuf), "%d/%b/%Y:%H:%M:%S %z", &tm);
  if (bytes == 0)
    snprintf(bytes_s, sizeof(bytes_s), "-");
  else
    snprintf(bytes_s, sizeof(bytes_s), "%llu", (unsigned long long)bytes);
  n = snprintf(line, sizeof(line), "%s - %s [%s] \"%s\" %d %s \"%s\" \"%s\"\n",
               addr && *addr ? addr : "-", user, tbuf, reqline,
               gh_http_response_get_status(resp), bytes_s, ref, ua);
  if (n > (int)sizeof(line) - 1)
    n = (int)sizeof(line) - 1;
  pthread_mutex_lock(&g_lock);
  if (g_fd >= 0 && write(g_fd, line, (size_t)n) < 0) {
    /* nothing sensible to do: the log is best effort */
  }
  pthread_mutex_unlock(&g_lock);
  return GH_REQUEST_CONTINUE;
}

GH_MODULE_EXPORT int gh_register_module(uint32_t server_version, gh_module_registration_t *reg,
                                        gh_module_server_t *server)
{
  gh_module_factory_t f = {.struct_size = sizeof(f), .on_log_request = on_log};
  gh_global_module_t g = {.struct_size = sizeof(g),
                          .on_start = on_global,
                          .on_stop = on_stop,
                          .on_config_reload = on_global};
  int ret;
  (void)server_version;
  (void)server;
  ret = gh_module_registration_set_factory(reg, &f);
  if (ret == 0)
    ret = gh_module_registration_set_priority(reg, GH_NOTIFY_BIT(GH_NOTIFY_LOG_REQUEST),
                                              GH_PRIORITY_LAST);
  if (ret == 0)
    ret = gh_module_registration_set_global(reg, &g);
  return ret;
}
