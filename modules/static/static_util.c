/* static_util.c: range parsing, URL path checks and the MIME table of the static module. */
#include <ctype.h>
#include <errno.h>
#include <stdatomic.h>
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

/* An immutable table: open addressing on the lower-cased extension. A reload
 * publishes a new table; the old one stays until static_mime_free (the
 * module's terminate), because other threads may be reading it. */
typedef struct mime_ent {
  char *ext; /* lower case */
  char *type;
} mime_ent_t;

typedef struct mime_table {
  mime_ent_t *ents;
  size_t n, cap;
  uint32_t *slots; /* nslots, each 0 (empty) or entry index + 1 */
  size_t nslots;   /* power of two, >= 2 n */
  struct mime_table *older;
} mime_table_t;

#define MIME_EXT_MAX 64

static _Atomic(mime_table_t *) g_table;

static const char *const builtin[][2] = {
    {"html", "text/html"}, {"htm", "text/html"}, {"txt", "text/plain"},
    {"css", "text/css"},   {"js", "text/javascript"}, {"json", "application/json"},
    {"xml", "application/xml"}, {"png", "image/png"}, {"jpg", "image/jpeg"},
    {"gif", "image/gif"}, {"svg", "image/svg+xml"}, {"pdf", "application/pdf"},
};

/* FNV-1a of a NUL-terminated lower-case string. */
static uint32_t ext_hash(const char *s)
{
  uint32_t h = 2166136261u;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

/* Lower-cases s into buf (MIME_EXT_MAX); false if too long. */
static bool ext_lower(const char *s, char *buf)
{
  size_t i;
  for (i = 0; s[i] != '\0'; i++) {
    if (i + 1 >= MIME_EXT_MAX)
      return false;
    buf[i] = (char)tolower((unsigned char)s[i]);
  }
  buf[i] = '\0';
  return true;
}

static void table_free(mime_table_t *t)
{
  if (t == NULL)
    return;
  for (size_t i = 0; i < t->n; i++) {
    free(t->ents[i].ext);
    free(t->ents[i].type);
  }
  free(t->ents);
  free(t->slots);
  free(t);
}

/* Adds ext -> type unless ext is there already (the first line wins). */
static int table_add(mime_table_t *t, const char *ext, const char *type)
{
  int ret = 0;
  char low[MIME_EXT_MAX];
  if (!ext_lower(ext, low))
    goto out; /* nobody names a file like that */
  if (t->n == t->cap) {
    size_t nc = t->cap ? t->cap * 2 : 512;
    mime_ent_t *n = realloc(t->ents, nc * sizeof(*n));
    if (n == NULL) {
      ret = -ENOMEM;
      goto out;
    }
    t->ents = n;
    t->cap = nc;
  }
  for (size_t i = 0; i < t->n; i++)
    if (strcmp(t->ents[i].ext, low) == 0)
      goto out;
  t->ents[t->n].ext = strdup(low);
  t->ents[t->n].type = strdup(type);
  if (t->ents[t->n].ext == NULL || t->ents[t->n].type == NULL) {
    free(t->ents[t->n].ext);
    free(t->ents[t->n].type);
    ret = -ENOMEM;
    goto out;
  }
  t->n++;
out:
  return ret;
}

static int table_hash(mime_table_t *t)
{
  size_t ns = 16;
  while (ns < t->n * 2)
    ns *= 2;
  t->slots = calloc(ns, sizeof(*t->slots));
  if (t->slots == NULL)
    return -ENOMEM;
  t->nslots = ns;
  for (size_t i = 0; i < t->n; i++) {
    size_t k = ext_hash(t->ents[i].ext) & (ns - 1);
    while (t->slots[k] != 0)
      k = (k + 1) & (ns - 1);
    t->slots[k] = (uint32_t)(i + 1);
  }
  return 0;
}

int static_mime_load(const char *path)
{
  int ret = 0;
  FILE *f = fopen(path, "re");
  char line[1024];
  mime_table_t *t = NULL;
  if (f == NULL) {
    ret = -errno;
    goto out;
  }
  t = calloc(1, sizeof(*t));
  if (t == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  while (fgets(line, sizeof(line), f) != NULL) {
    char *save = NULL, *type, *ext;
    if (line[0] == '#')
      continue;
    type = strtok_r(line, " \t\r\n", &save);
    if (type == NULL)
      continue;
    while ((ext = strtok_r(NULL, " \t\r\n", &save)) != NULL)
      if ((ret = table_add(t, ext, type)) < 0)
        goto out;
  }
  ret = table_hash(t);
  if (ret < 0)
    goto out;
  /* publish; the previous table is retired, not freed (readers) */
  t->older = atomic_load(&g_table);
  atomic_store(&g_table, t);
  t = NULL;
out:
  table_free(t);
  if (f != NULL)
    fclose(f);
  return ret;
}

const char *static_mime_lookup(const char *name)
{
  const char *dot = strrchr(name, '.');
  const char *slash = strrchr(name, '/');
  const mime_table_t *t = atomic_load(&g_table);
  char low[MIME_EXT_MAX];
  if (dot == NULL || (slash != NULL && dot < slash) || dot[1] == '\0')
    return "application/octet-stream";
  dot++;
  if (!ext_lower(dot, low))
    return "application/octet-stream";
  if (t != NULL && t->n > 0) {
    size_t k = ext_hash(low) & (t->nslots - 1);
    for (; t->slots[k] != 0; k = (k + 1) & (t->nslots - 1)) {
      const mime_ent_t *e = &t->ents[t->slots[k] - 1];
      if (strcmp(e->ext, low) == 0)
        return e->type;
    }
  }
  for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
    if (strcmp(builtin[i][0], low) == 0)
      return builtin[i][1];
  return "application/octet-stream";
}

void static_mime_free(void)
{
  mime_table_t *t = atomic_exchange(&g_table, NULL);
  while (t != NULL) {
    mime_table_t *older = t->older;
    table_free(t);
    t = older;
  }
}

/* ---- response fields ---------------------------------------------------- */

static const char wday_names[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char month_names[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static char *put2(char *p, unsigned v)
{
  p[0] = (char)('0' + v / 10);
  p[1] = (char)('0' + v % 10);
  return p + 2;
}

size_t static_http_date(int64_t t, char *out)
{
  int64_t days = t / 86400, secs = t % 86400;
  int64_t era, doe, yoe, doy, mp, y;
  unsigned d, m, wday;
  char *p = out;
  if (secs < 0) {
    secs += 86400;
    days--;
  }
  wday = (unsigned)(((days % 7) + 11) % 7); /* 1970-01-01 was a Thursday */
  /* days since 0000-03-01 in 400-year eras of 146097 days; the year starts
   * in March so that the leap day is the last day of a year */
  days += 719468;
  era = (days >= 0 ? days : days - 146096) / 146097;
  doe = days - era * 146097;
  yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  mp = (5 * doy + 2) / 153;
  d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
  m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
  y = yoe + era * 400 + (m <= 2);
  if (y < 0 || y > 9999) {
    out[0] = '\0';
    return 0;
  }
  memcpy(p, wday_names[wday], 3);
  p += 3;
  *p++ = ',';
  *p++ = ' ';
  p = put2(p, d);
  *p++ = ' ';
  memcpy(p, month_names[m - 1], 3);
  p += 3;
  *p++ = ' ';
  p = put2(p, (unsigned)(y / 100));
  p = put2(p, (unsigned)(y % 100));
  *p++ = ' ';
  p = put2(p, (unsigned)(secs / 3600));
  *p++ = ':';
  p = put2(p, (unsigned)(secs / 60 % 60));
  *p++ = ':';
  p = put2(p, (unsigned)(secs % 60));
  memcpy(p, " GMT", 5);
  return (size_t)(p + 4 - out);
}

static char *put_hex(char *p, uint64_t v)
{
  char tmp[16];
  size_t n = 0;
  do {
    tmp[n++] = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v != 0);
  while (n > 0)
    *p++ = tmp[--n];
  return p;
}

size_t static_etag(uint64_t ino, uint64_t size, uint64_t mtime, char *out)
{
  char *p = out;
  *p++ = '"';
  p = put_hex(p, ino);
  *p++ = '-';
  p = put_hex(p, size);
  *p++ = '-';
  p = put_hex(p, mtime);
  *p++ = '"';
  *p = '\0';
  return (size_t)(p - out);
}
