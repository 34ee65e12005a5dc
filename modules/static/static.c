/* static.c: static files under the site root, opened as the client (token-scoped), sent with sendfile. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <gatehouse/error.h>
#include <gatehouse/module.h>

#include "static_util.h"

GH_MODULE_DEFINE("static");

static gh_module_server_t *g_server;

/* Every open of a client-visible path goes through gh_http_context_openat2:
 * on an impersonating site it opens as the client (the module registers
 * token-scoped impersonation, so the thread itself stays at base and the
 * kernel checks the client's ids for this one open), elsewhere as the
 * service. Result: fd or a negative error. */
static int ctx_open(gh_http_context_t *ctx, int dirfd, const char *path, struct open_how *how)
{
  /* sec-layer failures (GH_E*: expired token ...) fall to status_for's 500 */
  return gh_http_context_openat2(ctx, dirfd, path, how, sizeof(*how));
}

/* openat2 beneath dirfd: the kernel refuses ".." and symlinks leaving the
 * root (RESOLVE_BENEATH) unless allow_symlinks = yes. */
static int open_beneath(gh_http_context_t *ctx, int dirfd, const char *rel, int flags,
                        bool allow_out)
{
  struct open_how how = {.flags = (uint64_t)(flags | O_CLOEXEC | O_NOCTTY),
                         .resolve = RESOLVE_NO_MAGICLINKS};
  if (!allow_out)
    how.resolve |= RESOLVE_BENEATH;
  return ctx_open(ctx, dirfd, rel, &how);
}

/* Roots this thread found to hold a symlink in their own path, or not:
 * which of the two opens below to try first. A hint only (both give the
 * same answer); pointers are config strings, which outlive requests. */
static __thread const char *hint_root;
static __thread bool hint_root_symlinked;

static bool root_symlinked(const char *root)
{
  struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                         .resolve = RESOLVE_NO_SYMLINKS};
  long fd = syscall(SYS_openat2, AT_FDCWD, root, &how, sizeof(how));
  if (fd >= 0)
    close((int)fd);
  return fd < 0 && errno == ELOOP;
}

/* Opens root/rel as the client on an impersonating site (else as the service).
 *
 * Fast path, one syscall: openat2 of "root/rel" with RESOLVE_NO_SYMLINKS.
 * rel has no ".." (static_check_path), so a walk without symlinks from root
 * stays beneath it; the kernel checks every component as the caller, root's
 * own path included, as open(root) does. ENOENT, EACCES, ENOTDIR ... are
 * the answers the two-step open would give.
 *
 * Otherwise (a symlink anywhere: ELOOP; a joined path too long): open root,
 * then openat2 beneath it — symlinks that stay inside are followed, others
 * refused unless allow_out. */
static int open_under_root(gh_http_context_t *ctx, const char *root, const char *rel, int flags,
                           bool allow_out)
{
  char path[4096];
  size_t rlen = strlen(root), plen = strlen(rel);
  int fd = -ENAMETOOLONG, rootfd;
  bool symlinked = hint_root == root && hint_root_symlinked;

  if (!symlinked && rlen + plen + 2 <= sizeof(path)) {
    struct open_how how = {.flags = (uint64_t)(flags | O_CLOEXEC | O_NOCTTY),
                           .resolve = RESOLVE_NO_SYMLINKS};
    memcpy(path, root, rlen);
    path[rlen] = '/';
    memcpy(path + rlen + 1, rel, plen + 1);
    fd = ctx_open(ctx, AT_FDCWD, path, &how);
    if (fd != -ELOOP && fd != -ENAMETOOLONG)
      goto out;
    if (fd == -ELOOP && hint_root != root) {
      hint_root = root;
      hint_root_symlinked = root_symlinked(root);
    }
  }
  {
    struct open_how rhow = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC};
    rootfd = ctx_open(ctx, AT_FDCWD, root, &rhow);
  }
  if (rootfd < 0) {
    fd = rootfd;
    goto out;
  }
  fd = open_beneath(ctx, rootfd, rel, flags, allow_out);
  close(rootfd);
out:
  return fd;
}

static int status_for(int err)
{
  switch (err) {
  case -ENOENT:
  case -ENOTDIR:
  case -ENAMETOOLONG:
    return 404;
  case -EACCES:
  case -EPERM:
  case -EXDEV: /* escapes the root */
  case -ELOOP:
    return 403;
  case -EINVAL:
    return 400;
  default:
    return 500;
  }
}

static void http_date(time_t t, char *buf, size_t len)
{
  struct tm tm;
  if (len >= STATIC_HTTP_DATE_SIZE && static_http_date((int64_t)t, buf) > 0)
    return;
  gmtime_r(&t, &tm);
  strftime(buf, len, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static time_t parse_http_date(const char *s)
{
  struct tm tm;
  memset(&tm, 0, sizeof(tm));
  if (s == NULL || strptime(s, "%a, %d %b %Y %H:%M:%S GMT", &tm) == NULL)
    return (time_t)-1;
  return timegm(&tm);
}

static void html_esc(gh_http_response_t *resp, const char *s)
{
  for (; *s; s++) {
    switch (*s) {
    case '<': gh_http_response_write(resp, "&lt;", 4); break;
    case '>': gh_http_response_write(resp, "&gt;", 4); break;
    case '&': gh_http_response_write(resp, "&amp;", 5); break;
    case '"': gh_http_response_write(resp, "&quot;", 6); break;
    default: gh_http_response_write(resp, s, 1);
    }
  }
}

static int cmp_names(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Listing of a directory fd opened as the client (getdents needs no further check). */
static int send_listing(gh_http_context_t *ctx, int dfd, const char *url_path)
{
  gh_http_response_t *resp = gh_http_context_get_response(ctx);
  DIR *d = fdopendir(dfd);
  struct dirent *de;
  char **names = NULL;
  size_t n = 0, cap = 0;
  int ret = 0;
  if (d == NULL) {
    ret = -errno;
    close(dfd);
    goto out;
  }
  while ((de = readdir(d)) != NULL && n < 10000) {
    if (de->d_name[0] == '.')
      continue;
    if (n == cap) {
      size_t nc = cap ? cap * 2 : 64;
      char **nn = realloc(names, nc * sizeof(*nn));
      if (nn == NULL)
        break;
      names = nn;
      cap = nc;
    }
    names[n] = gh_http_context_alloc(ctx, strlen(de->d_name) + 2);
    if (names[n] == NULL)
      break;
    strcpy(names[n], de->d_name);
    if (de->d_type == DT_DIR)
      strcat(names[n], "/");
    n++;
  }
  closedir(d);
  if (n > 1) /* names is NULL for an empty directory: qsort needs a real array */
    qsort(names, n, sizeof(*names), cmp_names);
  gh_http_response_set_header(resp, "Content-Type", "text/html; charset=utf-8",
                              GH_HEADER_REPLACE);
  gh_http_response_write(resp, "<!DOCTYPE html>\n<html><head><title>Index of ", 44);
  html_esc(resp, url_path);
  gh_http_response_write(resp, "</title></head><body><h1>Index of ", 34);
  html_esc(resp, url_path);
  gh_http_response_write(resp, "</h1><ul>\n", 10);
  for (size_t i = 0; i < n; i++) {
    gh_http_response_write(resp, "<li><a href=\"", 13);
    html_esc(resp, names[i]);
    gh_http_response_write(resp, "\">", 2);
    html_esc(resp, names[i]);
    gh_http_response_write(resp, "</a></li>\n", 10);
  }
  gh_http_response_write(resp, "</ul></body></html>\n", 20);
out:
  free(names);
  return ret;
}

static gh_request_status_t fail(gh_http_context_t *ctx, int status)
{
  gh_http_response_send_error(gh_http_context_get_response(ctx), status, NULL);
  return GH_REQUEST_FINISH;
}

static gh_request_status_t serve_fd(gh_http_context_t *ctx, int fd, const struct stat *st,
                                    const char *name)
{
  gh_http_request_t *req = gh_http_context_get_request(ctx);
  gh_http_response_t *resp = gh_http_context_get_response(ctx);
  char etag[STATIC_ETAG_SIZE], lm[64];
  const char *inm = gh_http_request_get_header(req, "If-None-Match");
  const char *ims = gh_http_request_get_header(req, "If-Modified-Since");
  const char *range = gh_http_request_get_header(req, "Range");
  const char *ifr = gh_http_request_get_header(req, "If-Range");
  uint64_t start = 0, len = (uint64_t)st->st_size;
  static_range_kind_t rk = STATIC_RANGE_NONE;

  static_etag((uint64_t)st->st_ino, (uint64_t)st->st_size, (uint64_t)st->st_mtime, etag);
  http_date(st->st_mtime, lm, sizeof(lm));
  gh_http_response_set_header(resp, "ETag", etag, GH_HEADER_REPLACE);
  gh_http_response_set_header(resp, "Last-Modified", lm, GH_HEADER_REPLACE);
  gh_http_response_set_header(resp, "Accept-Ranges", "bytes", GH_HEADER_REPLACE);
  gh_http_response_set_header(resp, "Content-Type", static_mime_lookup(name), GH_HEADER_REPLACE);
  if ((inm != NULL && (strcmp(inm, etag) == 0 || strcmp(inm, "*") == 0 ||
                       strstr(inm, etag) != NULL)) ||
      (inm == NULL && ims != NULL && parse_http_date(ims) != (time_t)-1 &&
       st->st_mtime <= parse_http_date(ims))) {
    close(fd);
    gh_http_response_set_status(resp, 304, NULL);
    gh_http_response_delete_header(resp, "Content-Type");
    return GH_REQUEST_FINISH;
  }
  if (range != NULL && (ifr == NULL || strcmp(ifr, etag) == 0 || strcmp(ifr, lm) == 0))
    rk = static_parse_range(range, strlen(range), (uint64_t)st->st_size, &start, &len);
  if (rk == STATIC_RANGE_UNSATISFIABLE) {
    char cr[64];
    close(fd);
    gh_http_response_send_error(resp, 416, NULL);
    snprintf(cr, sizeof(cr), "bytes */%llu", (unsigned long long)st->st_size);
    gh_http_response_set_header(resp, "Content-Range", cr, GH_HEADER_REPLACE);
    return GH_REQUEST_FINISH;
  }
  if (rk == STATIC_RANGE_OK) {
    char cr[96];
    snprintf(cr, sizeof(cr), "bytes %llu-%llu/%llu", (unsigned long long)start,
             (unsigned long long)(start + len - 1), (unsigned long long)st->st_size);
    gh_http_response_set_status(resp, 206, NULL);
    gh_http_response_set_header(resp, "Content-Range", cr, GH_HEADER_REPLACE);
  }
  /* The fd carries the client's rights; the bytes go out at base (a no-op
   * revert unless the handler impersonated explicitly). */
  (void)gh_http_context_revert(ctx);
  if (len == 0) {
    close(fd);
    return GH_REQUEST_FINISH;
  }
  gh_http_response_write_fd_take(resp, fd, (off_t)start, (size_t)len);
  return GH_REQUEST_FINISH;
}

/* The site's values of the module's keys (the table below), checked when
 * the configuration was loaded; false if one is unusable. */
static bool site_keys(gh_http_context_t *ctx, bool *ret_allow_out, bool *ret_listing,
                      const char **ret_index)
{
  return gh_http_context_get_config_bool(ctx, "allow_symlinks", ret_allow_out) == 0 &&
         gh_http_context_get_config_bool(ctx, "listing", ret_listing) == 0 &&
         gh_http_context_get_config_string(ctx, "index", 0, ret_index) == 0;
}

static gh_request_status_t on_execute(void *module, gh_http_context_t *ctx,
                                      gh_event_provider_t *prov)
{
  gh_http_request_t *req = gh_http_context_get_request(ctx);
  gh_http_response_t *resp = gh_http_context_get_response(ctx);
  const char *method = gh_http_request_get_method(req);
  const char *root = gh_http_context_get_site_config(ctx, "root");
  const char *site = gh_http_context_get_site_path(ctx);
  const char *path = gh_http_request_get_path(req);
  const char *url = gh_http_request_get_url(req);
  bool allow_out = false, listing = false;
  const char *index = NULL;
  const char *rel = path;
  size_t slen = strlen(site);
  char relbuf[4096];
  int fd = -1, r;
  struct stat st;
  gh_request_status_t ret = GH_REQUEST_FINISH;
  (void)module;
  (void)prov;

  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
    gh_http_response_send_error(resp, 405, NULL);
    gh_http_response_set_header(resp, "Allow", "GET, HEAD", GH_HEADER_REPLACE);
    goto out;
  }
  if (root == NULL) {
    ret = fail(ctx, 500);
    gh_module_server_log(g_server, GH_LOG_ERROR, "static: site %s has no root", site);
    goto out;
  }
  if (!site_keys(ctx, &allow_out, &listing, &index)) {
    ret = fail(ctx, 500);
    goto out;
  }
  if (slen > 1 && strncmp(path, site, slen) == 0)
    rel = path + slen;
  r = static_check_path(url, strlen(url), rel, strlen(rel), relbuf, sizeof(relbuf));
  if (r < 0) {
    ret = fail(ctx, status_for(r));
    goto out;
  }
  /* Every open below is the client's when the site impersonates: the
   * kernel decides. */
  fd = open_under_root(ctx, root, relbuf, O_RDONLY | O_NONBLOCK, allow_out);
  if (fd < 0) {
    ret = fail(ctx, status_for(fd));
    goto out;
  }
  if (fstat(fd, &st) != 0) {
    ret = fail(ctx, 500);
    goto out;
  }
  if (S_ISDIR(st.st_mode)) {
    int ifd;
    if (path[strlen(path) - 1] != '/') {
      char *loc = gh_http_context_alloc(ctx, strlen(path) + 2);
      if (loc != NULL) {
        sprintf(loc, "%s/", path);
        gh_http_response_set_status(resp, 301, NULL);
        gh_http_response_set_header(resp, "Location", loc, GH_HEADER_REPLACE);
      }
      goto out;
    }
    ifd = open_beneath(ctx, fd, index, O_RDONLY | O_NONBLOCK, allow_out);
    if (ifd >= 0) {
      struct stat ist;
      if (fstat(ifd, &ist) == 0 && S_ISREG(ist.st_mode)) {
        close(fd);
        fd = -1;
        ret = serve_fd(ctx, ifd, &ist, index);
        goto out;
      }
      close(ifd);
    } else if (ifd != -ENOENT) {
      ret = fail(ctx, status_for(ifd));
      goto out;
    }
    if (!listing) {
      ret = fail(ctx, 403);
      goto out;
    }
    r = send_listing(ctx, fd, path);
    fd = -1;
    if (r < 0)
      ret = fail(ctx, status_for(r));
    goto out;
  }
  if (!S_ISREG(st.st_mode)) {
    ret = fail(ctx, 403);
    goto out;
  }
  ret = serve_fd(ctx, fd, &st, relbuf);
  fd = -1;
out:
  if (fd >= 0)
    close(fd);
  return ret;
}

static gh_global_status_t on_start(void *data, gh_module_server_t *server)
{
  const char *p = "/etc/mime.types";
  (void)data;
  (void)gh_module_server_get_config_string(server, "static", "mime_types", 0, &p);
  if (static_mime_load(p) < 0)
    gh_module_server_log(server, GH_LOG_WARNING, "static: cannot read %s, using built-in types", p);
  return GH_GLOBAL_CONTINUE;
}

static void on_terminate(void *data)
{
  (void)data;
  static_mime_free();
}

/* The module's keys: in [site] sections, and mime_types in [module static] */
static const gh_module_key_t keys[] = {
    {.name = "index",
     .type = GH_CONFIG_STRING,
     .flags = GH_CONFIG_SITE,
     .default_value = "index.html"},
    {.name = "listing", .type = GH_CONFIG_BOOL, .flags = GH_CONFIG_SITE, .default_value = "no"},
    {.name = "allow_symlinks",
     .type = GH_CONFIG_BOOL,
     .flags = GH_CONFIG_SITE,
     .default_value = "no"},
    {.name = "mime_types",
     .type = GH_CONFIG_PATH,
     .flags = GH_CONFIG_MODULE,
     .default_value = "/etc/mime.types"},
};

GH_MODULE_EXPORT int gh_register_module(uint32_t server_version, gh_module_registration_t *reg,
                                        gh_module_server_t *server)
{
  gh_global_module_t g = {.struct_size = sizeof(g),
                          .terminate = on_terminate,
                          .on_start = on_start,
                          .on_config_reload = on_start};
  int ret;
  (void)server_version;
  g_server = server;
  ret = gh_module_registration_set_execute_handler(reg, on_execute);
  if (ret == 0)
    ret = gh_module_registration_set_global(reg, &g);
  if (ret == 0)
    ret = gh_module_registration_set_scoped_impersonation(reg);
  if (ret == 0)
    ret = GH_MODULE_CONFIG_KEYS(reg, keys);
  return ret;
}
