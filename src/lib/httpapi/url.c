/* url.c: request-target decoding, dot-segment removal and URL-group prefix matching. */
#include "httpapi/url.h"

#include <errno.h>
#include <string.h>

#include <gatehouse/error.h>

#include "httpapi/internal.h"

static int hexval(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Removes "." and ".." segments from a decoded absolute path in place
 * (RFC 3986 5.2.4, except that ".." above the root is an error). */
static int remove_dots(char *path)
{
  int ret = 0;
  char *out = path; /* output always starts with '/' */
  const char *in = path;
  size_t olen = 0;
  while (*in != '\0') {
    /* in points at '/' */
    const char *seg = in + 1;
    const char *end = strchr(seg, '/');
    size_t slen = end ? (size_t)(end - seg) : strlen(seg);
    if (slen == 1 && seg[0] == '.') {
      if (end == NULL)
        out[olen++] = '/';
    } else if (slen == 2 && seg[0] == '.' && seg[1] == '.') {
      if (olen == 0) {
        ret = GH_EPARSE;
        goto out;
      }
      while (olen > 0 && out[olen - 1] != '/')
        olen--;
      if (olen > 0)
        olen--; /* drop the '/' too */
      if (end == NULL)
        out[olen++] = '/';
    } else {
      memmove(out + olen, in, slen + 1);
      olen += slen + 1;
    }
    in = seg + slen;
  }
  if (olen == 0)
    out[olen++] = '/';
  out[olen] = '\0';
out:
  return ret;
}

int gh__url_split(const char *target, size_t len, gh__pool_t *pool, char **ret_path,
                  char **ret_query)
{
  int ret = 0;
  const char *p = target, *end = target + len;
  char *path = NULL, *query = NULL;

  if (len == 1 && target[0] == '*') {
    path = gh__pool_strdup(pool, "*");
    if (path == NULL)
      ret = -ENOMEM;
    goto out;
  }
  if (len > 0 && target[0] != '/') {
    /* absolute-form: scheme "://" authority path */
    const char *s = memchr(target, ':', len);
    if (s == NULL || end - s < 3 || s[1] != '/' || s[2] != '/') {
      ret = GH_EPARSE;
      goto out;
    }
    p = s + 3;
    while (p < end && *p != '/' && *p != '?' && *p != '#')
      p++;
  }
  const char *qs = p;
  while (qs < end && *qs != '?' && *qs != '#')
    qs++;
  if (qs < end && *qs == '?') {
    const char *qe = memchr(qs, '#', (size_t)(end - qs));
    query = gh__pool_strndup(pool, qs + 1, (size_t)((qe ? qe : end) - qs - 1));
    if (query == NULL) {
      ret = -ENOMEM;
      goto out;
    }
  }
  size_t plen = (size_t)(qs - p);
  path = gh__pool_alloc(pool, plen + 2);
  if (path == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  size_t o = 0;
  if (plen == 0 || p[0] != '/')
    path[o++] = '/';
  for (const char *c = p; c < qs; c++) {
    if (*c == '%') {
      int hi = c + 2 < qs ? hexval(c[1]) : -1;
      int lo = hi >= 0 ? hexval(c[2]) : -1;
      if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
        ret = GH_EPARSE;
        goto out;
      }
      path[o++] = (char)(hi * 16 + lo);
      c += 2;
    } else {
      path[o++] = *c;
    }
  }
  path[o] = '\0';
  ret = remove_dots(path);
out:
  if (ret == 0) {
    *ret_path = path;
    *ret_query = query;
  }
  return ret;
}

int gh__url_prefix_normalize(char *prefix)
{
  int ret = 0;
  if (prefix == NULL || prefix[0] != '/') {
    ret = -EINVAL;
    goto out;
  }
  size_t n = strlen(prefix);
  while (n > 1 && prefix[n - 1] == '/')
    prefix[--n] = '\0';
out:
  return ret;
}

bool gh__url_prefix_match(const char *prefix, size_t prefix_len, const char *path)
{
  if (prefix_len == 1 && prefix[0] == '/')
    return path[0] == '/';
  if (strncmp(prefix, path, prefix_len) != 0)
    return false;
  return path[prefix_len] == '\0' || path[prefix_len] == '/';
}

int gh__url_best_match(const char *const *prefixes, const size_t *lens, size_t n,
                       const char *path)
{
  int best = -1;
  for (size_t i = 0; i < n; i++) {
    if ((best < 0 || lens[i] > lens[best]) && gh__url_prefix_match(prefixes[i], lens[i], path))
      best = (int)i;
  }
  return best;
}

gh_url_group_t *gh__url_group_match(gh_server_t *s, const char *path)
{
  int i = gh__url_best_match(s->gprefixes, s->glens, s->n_groups, path);
  return i < 0 ? NULL : s->groups[i];
}
