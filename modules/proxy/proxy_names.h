/* proxy_names.h: field-name compares a word at a time, shared by the request and response sides. */
#ifndef GH_PROXY_NAMES_H
#define GH_PROXY_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline unsigned char proxy_lc(unsigned char c)
{
  return (unsigned char)(c - 'A') < 26u ? (unsigned char)(c | 0x20) : c;
}

static inline uint64_t proxy_load8(const char *p)
{
  uint64_t w;
  memcpy(&w, p, 8);
  return w;
}

static inline uint32_t proxy_load4(const char *p)
{
  uint32_t w;
  memcpy(&w, p, 4);
  return w;
}

/* s (n bytes of a field name or of a checked field value, any case) equals
 * lit (n bytes: lower-case letters and '-'), a word at a time: '| 0x20'
 * folds the letters and turns no other byte such a name or value may hold
 * (no control byte) into a letter or '-'. */
static inline bool proxy_eq_lit(const char *s, const char *lit, size_t n)
{
  const uint64_t f8 = 0x2020202020202020ull;
  const uint32_t f4 = 0x20202020u;
  if (n >= 8) {
    for (size_t i = 0; i + 8 < n; i += 8)
      if ((proxy_load8(s + i) | f8) != proxy_load8(lit + i))
        return false;
    return (proxy_load8(s + n - 8) | f8) == proxy_load8(lit + n - 8);
  }
  if (n >= 4)
    return (proxy_load4(s) | f4) == proxy_load4(lit) &&
           (proxy_load4(s + n - 4) | f4) == proxy_load4(lit + n - 4);
  for (size_t i = 0; i < n; i++)
    if (((unsigned char)s[i] | 0x20) != (unsigned char)lit[i])
      return false;
  return true;
}

/* strncasecmp(a, b, n) == 0 (ASCII letters fold, every other byte exact). */
static inline bool proxy_eq_ci(const char *a, const char *b, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (proxy_lc((unsigned char)a[i]) != proxy_lc((unsigned char)b[i]))
      return false;
  return true;
}

#endif
