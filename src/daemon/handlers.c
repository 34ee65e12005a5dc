/* handlers.c: gatehoused built-in handlers — fixed response and plain static file read. */
#include "handlers.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <gatehouse/authinfo.h>

#include "accesslog.h"
#include "authprobe.h"

const char *gh_daemon_content_type(const char *name)
{
  static const struct { const char *ext, *type; } types[] = {
    {"html", "text/html; charset=utf-8"}, {"htm", "text/html; charset=utf-8"},
    {"txt", "text/plain; charset=utf-8"}, {"md", "text/markdown; charset=utf-8"},
    {"css", "text/css"}, {"js", "text/javascript"}, {"json", "application/json"},
    {"png", "image/png"}, {"jpg", "image/jpeg"}, {"jpeg", "image/jpeg"},
    {"gif", "image/gif"}, {"svg", "image/svg+xml"}, {"ico", "image/x-icon"},
    {"pdf", "application/pdf"}, {"xml", "application/xml"}, {"wasm", "application/wasm"},
  };
  const char *slash = strrchr(name, '/');
  const char *dot = strrchr(slash ? slash : name, '.');
  if (dot != NULL)
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
      if (strcasecmp(dot + 1, types[i].ext) == 0)
        return types[i].type;
  return "application/octet-stream";
}

static void reply(gh_request_t *req, int status, const char *text, const char *hname,
                  const char *hvalue)
{
  char body[512];
  int n = snprintf(body, sizeof(body), "%d %s\n", status, text);
  gh_response_set_status(req, status, NULL);
  gh_response_set_header(req, "Content-Type", "text/plain; charset=utf-8");
  if (hname != NULL)
    gh_response_set_header(req, hname, hvalue);
  gh_response_send(req, body, (size_t)n, 0);
  gh_accesslog_write(req, status, (unsigned long long)n);
  gh_request_complete(req);
}

static void handle_fixed(gh_request_t *req, const gh_site_t *site)
{
  const char *body = site->body ? site->body : "";
  int status = site->status ? site->status : 200;
  size_t len = strlen(body);
  if (site->delay_ms > 0) {
    struct timespec ts = {site->delay_ms / 1000, (long)(site->delay_ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
      ;
  }
  gh_response_set_status(req, status, NULL);
  gh_response_set_header(req, "Content-Type",
                         site->content_type ? site->content_type : "text/plain; charset=utf-8");
  gh_response_send(req, body, len, 0);
  gh_accesslog_write(req, status, len);
  gh_request_complete(req);
}

/* Opens rel below dirfd, never escaping it (symlinks included). */
static int open_beneath(int dirfd, const char *rel)
{
  struct open_how how;
  memset(&how, 0, sizeof(how));
  how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  long fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
  if (fd < 0 && errno == ENOSYS)
    fd = openat(dirfd, rel, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
  return fd < 0 ? -errno : (int)fd;
}

static void handle_static(gh_request_t *req, const gh_site_t *site)
{
  const char *method = gh_request_get_method(req);
  const char *path = gh_request_get_path(req);
  int dirfd = -1, fd = -1;
  char rel[4096];
  struct stat st;

  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
    reply(req, 405, "Method Not Allowed", "Allow", "GET, HEAD");
    goto out;
  }
  /* path below the site prefix; the core removed dot-segments already */
  size_t plen = strlen(site->prefix);
  const char *sub = plen == 1 ? path : path + plen;
  while (*sub == '/')
    sub++;
  snprintf(rel, sizeof(rel), "%s", *sub ? sub : ".");
  dirfd = open(site->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0) {
    reply(req, 500, "Internal Server Error", NULL, NULL);
    goto out;
  }
  fd = open_beneath(dirfd, rel);
  if (fd >= 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    size_t n = strlen(path);
    if (n == 0 || path[n - 1] != '/') {
      char loc[4200];
      snprintf(loc, sizeof(loc), "%s/", path);
      reply(req, 301, "Moved Permanently", "Location", loc);
      goto out;
    }
    int ifd = openat(fd, site->index ? site->index : "index.html",
                     O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    close(fd);
    fd = ifd < 0 ? -EACCES : ifd; /* no directory listings */
    snprintf(rel, sizeof(rel), "%s", site->index ? site->index : "index.html");
    if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
      close(fd);
      fd = -EACCES;
    }
  }
  if (fd < 0) {
    if (fd == -ENOENT || fd == -ENOTDIR)
      reply(req, 404, "Not Found", NULL, NULL);
    else
      reply(req, 403, "Forbidden", NULL, NULL);
    goto out;
  }
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    reply(req, 403, "Forbidden", NULL, NULL);
    goto out;
  }
  gh_response_set_status(req, 200, NULL);
  gh_response_set_header(req, "Content-Type", gh_daemon_content_type(rel));
  gh_response_send_fd(req, fd, 0, (size_t)st.st_size, 0);
  gh_accesslog_write(req, 200, (unsigned long long)st.st_size);
  gh_request_complete(req);
out:
  if (fd >= 0)
    close(fd);
  if (dirfd >= 0)
    close(dirfd);
}

/* Test aid: the request as the application sees it, as text/plain. */
static void handle_echo(gh_request_t *req)
{
  size_t blen = 0;
  const void *body = gh_request_get_body(req, &blen);
  const char *q = gh_request_get_query(req);
  char head[8192];
  int n = snprintf(head, sizeof(head), "method=%s\npath=%s\nquery=%s\nversion=%d\nbody-length=%zu\n",
                   gh_request_get_method(req), gh_request_get_path(req), q ? q : "(none)",
                   gh_request_get_version(req), blen);
  for (size_t i = 0; i < gh_request_get_header_count(req) && n > 0 && (size_t)n < sizeof(head); i++) {
    const char *hn, *hv;
    gh_request_get_header_at(req, i, &hn, &hv);
    n += snprintf(head + n, sizeof(head) - (size_t)n, "header=%s: %s\n", hn, hv);
  }
  if (n < 0 || (size_t)n >= sizeof(head))
    n = (int)strlen(head);
  n += snprintf(head + n, sizeof(head) - (size_t)n, "\n");
  gh_response_set_header(req, "Content-Type", "text/plain; charset=utf-8");
  gh_response_send(req, head, (size_t)n, blen ? GH_SEND_MORE_DATA : 0);
  if (blen)
    gh_response_send(req, body, blen, 0);
  gh_accesslog_write(req, 200, (unsigned long long)n + blen);
  gh_request_complete(req);
}

void gh_daemon_handle(gh_request_t *req, void *arg)
{
  (void)arg;
  gh_url_group_t *g = gh_request_get_url_group(req);
  const gh_site_t *site = g ? gh_url_group_get_user_ctx(g) : NULL;
  const gh_auth_info_t *ai = gh_request_get_auth_info(req);
  if (ai != NULL && ai->status == GH_AUTH_STATUS_FAILURE)
    fprintf(stderr, "gatehoused: %s authentication failed on connection %llu: %s\n",
            gh_auth_type_name(ai->type), (unsigned long long)gh_request_get_conn_info(req)->id,
            gh_auth_info_sec_status_text(ai));
  if (site == NULL)
    reply(req, 404, "Not Found", NULL, NULL);
  else if (ai != NULL && !site->auth.anonymous && ai->status != GH_AUTH_STATUS_SUCCESS)
    reply(req, 401, "Unauthorized", NULL, NULL); /* the server adds the challenge list */
  else if (site->handler == GH_SITE_AUTHINFO)
    gh_daemon_handle_authinfo(req, site->auth.probe_dir);
  else if (site->handler == GH_SITE_FIXED)
    handle_fixed(req, site);
  else if (site->handler == GH_SITE_ECHO)
    handle_echo(req);
  else
    handle_static(req, site);
}
