/* static_util.c: range parsing, URL path checks and the MIME table of the static module. */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "static_util.h"

static bool parse_u64(const char *s, size_t len, uint64_t *ret)
{
  uint64_t v = 0;
  if (len == 0 || len > 19)
    return false;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return false;
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  *ret = v;
  return true;
}

static_range_kind_t static_parse_range(const char *value, size_t vlen, uint64_t size,
                                       uint64_t *ret_start, uint64_t *ret_len)
{
  static_range_kind_t kind = STATIC_RANGE_NONE;
  const char *p = value, *end = value + vlen, *dash;
  uint64_t a = 0, b = 0;
  bool has_a, has_b;
  while (p < end && (*p == ' ' || *p == '\t'))
    p++;
  while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
    end--;
  if ((size_t)(end - p) < 6 || strncasecmp(p, "bytes=", 6) != 0)
    goto out;
  p += 6;
  if (memchr(p, ',', (size_t)(end - p)) != NULL)
    goto out; /* several ranges: send everything */
  dash = memchr(p, '-', (size_t)(end - p));
  if (dash == NULL)
    goto out;
  has_a = dash > p;
  has_b = dash + 1 < end;
  if ((has_a && !parse_u64(p, (size_t)(dash - p), &a)) ||
      (has_b && !parse_u64(dash + 1, (size_t)(end - dash - 1), &b)) || (!has_a && !has_b))
    goto out;
  if (!has_a) {
    /* suffix: the last b bytes */
    if (b == 0 || size == 0) {
      kind = STATIC_RANGE_UNSATISFIABLE;
      goto out;
    }
    if (b > size)
      b = size;
    *ret_start = size - b;
    *ret_len = b;
    kind = STATIC_RANGE_OK;
    goto out;
  }
  if (has_b && b < a)
    goto out; /* invalid: ignore the header */
  if (a >= size) {
    kind = STATIC_RANGE_UNSATISFIABLE;
    goto out;
  }
  if (!has_b || b >= size)
    b = size - 1;
  *ret_start = a;
  *ret_len = b - a + 1;
  kind = STATIC_RANGE_OK;
out:
  return kind;
}

static int hexval(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  c = (char)tolower((unsigned char)c);
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

int static_check_path(const char *raw_url, size_t raw_len, const char *rel, size_t rel_len,
                      char *out, size_t outsz)
{
  int ret = 0;
  size_t o = 0;
  size_t i = 0;
  /* 1. the raw target: no encoded '.', '/', '\\' or NUL, no double escapes */
  for (size_t k = 0; k < raw_len && raw_url[k] != '?'; k++) {
    char c = raw_url[k];
    if (c == '\\') {
      ret = -EACCES;
      goto out;
    }
    if (c == '%') {
      int h, l, v;
      if (k + 2 >= raw_len) {
        ret = -EINVAL;
        goto out;
      }
      h = hexval(raw_url[k + 1]);
      l = hexval(raw_url[k + 2]);
      if (h < 0 || l < 0) {
        ret = -EINVAL;
        goto out;
      }
      v = h * 16 + l;
      if (v == '.' || v == '/' || v == '\\' || v == 0 || v == '%') {
        ret = -EACCES;
        goto out;
      }
      k += 2;
    }
  }
  /* 2. the decoded, site-relative path: segments, no "..", no controls */
  while (i < rel_len) {
    size_t s, n;
    while (i < rel_len && rel[i] == '/')
      i++;
    s = i;
    while (i < rel_len && rel[i] != '/')
      i++;
    n = i - s;
    if (n == 0 || (n == 1 && rel[s] == '.'))
      continue;
    if (n == 2 && rel[s] == '.' && rel[s + 1] == '.') {
      ret = -EACCES;
      goto out;
    }
    for (size_t k = s; k < i; k++) {
      unsigned char c = (unsigned char)rel[k];
      if (c < 0x20 || c == 0x7f || c == '\\') {
        ret = c == '\\' ? -EACCES : -EINVAL;
        goto out;
      }
    }
    if (o + n + 2 > outsz) {
      ret = -ENAMETOOLONG;
      goto out;
    }
    if (o > 0)
      out[o++] = '/';
    memcpy(out + o, rel + s, n);
    o += n;
  }
  if (o == 0) {
    if (outsz < 2) {
      ret = -ENAMETOOLONG;
      goto out;
    }
    out[o++] = '.';
  }
  out[o] = '\0';
out:
  return ret;
}

/* ---- MIME ------------------------------------------------------------- */

typedef struct mime_ent {
  char *ext;
  char *type;
} mime_ent_t;

static mime_ent_t *mimes;
static size_t n_mimes;

static const char *const builtin[][2] = {
    {"html", "text/html"}, {"htm", "text/html"}, {"txt", "text/plain"},
    {"css", "text/css"},   {"js", "text/javascript"}, {"json", "application/json"},
    {"xml", "application/xml"}, {"png", "image/png"}, {"jpg", "image/jpeg"},
    {"gif", "image/gif"}, {"svg", "image/svg+xml"}, {"pdf", "application/pdf"},
};

static int cmp_ent(const void *a, const void *b)
{
  return strcasecmp(((const mime_ent_t *)a)->ext, ((const mime_ent_t *)b)->ext);
}

int static_mime_load(const char *path)
{
  int ret = 0;
  FILE *f = fopen(path, "re");
  char line[1024];
  size_t cap = 0;
  static_mime_free();
  if (f == NULL) {
    ret = -errno;
    goto out;
  }
  while (fgets(line, sizeof(line), f) != NULL) {
    char *save = NULL, *type, *ext;
    if (line[0] == '#')
      continue;
    type = strtok_r(line, " \t\r\n", &save);
    if (type == NULL)
      continue;
    while ((ext = strtok_r(NULL, " \t\r\n", &save)) != NULL) {
      if (n_mimes == cap) {
        size_t nc = cap ? cap * 2 : 512;
        mime_ent_t *n = realloc(mimes, nc * sizeof(*n));
        if (n == NULL) {
          ret = -ENOMEM;
          goto out;
        }
        mimes = n;
        cap = nc;
      }
      mimes[n_mimes].ext = strdup(ext);
      mimes[n_mimes].type = strdup(type);
      if (mimes[n_mimes].ext == NULL || mimes[n_mimes].type == NULL) {
        free(mimes[n_mimes].ext);
        free(mimes[n_mimes].type);
        ret = -ENOMEM;
        goto out;
      }
      n_mimes++;
    }
  }
  qsort(mimes, n_mimes, sizeof(*mimes), cmp_ent);
out:
  if (f != NULL)
    fclose(f);
  return ret;
}

const char *static_mime_lookup(const char *name)
{
  const char *dot = strrchr(name, '.');
  const char *slash = strrchr(name, '/');
  if (dot == NULL || (slash != NULL && dot < slash) || dot[1] == '\0')
    return "application/octet-stream";
  dot++;
  if (n_mimes > 0) {
    mime_ent_t key = {.ext = (char *)dot};
    mime_ent_t *e = bsearch(&key, mimes, n_mimes, sizeof(*mimes), cmp_ent);
    if (e != NULL)
      return e->type;
  }
  for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
    if (strcasecmp(builtin[i][0], dot) == 0)
      return builtin[i][1];
  return "application/octet-stream";
}

void static_mime_free(void)
{
  for (size_t i = 0; i < n_mimes; i++) {
    free(mimes[i].ext);
    free(mimes[i].type);
  }
  free(mimes);
  mimes = NULL;
  n_mimes = 0;
}
