/* str.h: small string helpers shared by the layers (internal). */
#ifndef GH_UTIL_STR_H
#define GH_UTIL_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

/** ASCII case-insensitive equality of two NUL-terminated field names, as
 *  strcasecmp(a, b) == 0. Most header names differ in their first byte, so
 *  that is compared inline first (HTTP field names are ASCII tokens; for
 *  letters `| 0x20` folds case, for the other token bytes it only widens the
 *  pre-check, and strcasecmp decides). */
static inline bool gh__name_eq(const char *a, const char *b)
{
  return ((unsigned char)a[0] | 0x20) == ((unsigned char)b[0] | 0x20) && strcasecmp(a, b) == 0;
}

/** Room gh__u64_text needs: 20 digits and the NUL. */
#define GH__U64_TEXT 21

/** Writes v in decimal at out (GH__U64_TEXT bytes), NUL-terminated; returns
 *  the number of digits (sprintf "%llu" without the format machinery). */
static inline size_t gh__u64_text(char *out, uint64_t v)
{
  char d[GH__U64_TEXT];
  size_t i = sizeof(d), n;
  do {
    d[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  n = sizeof(d) - i;
  memcpy(out, d + i, n);
  out[n] = '\0';
  return n;
}

/** RFC 9110 tchar (the bytes of a token, e.g. a field name): 1, else 0. */
extern const unsigned char gh__tchar[256];

static inline bool gh__is_tchar(unsigned char c)
{
  return gh__tchar[c] != 0;
}

/* Word-at-a-time helpers over bytes the caller owns (len given: no read
 * past the end). gh__bytes_zero(w) is nonzero iff some byte of w is 0x00
 * (exact as a yes/no; which bits are set past the first hit is not). */
#define GH__BYTES_ONES UINT64_C(0x0101010101010101)
#define GH__BYTES_HIGH UINT64_C(0x8080808080808080)

static inline uint64_t gh__bytes_zero(uint64_t w)
{
  return (w - GH__BYTES_ONES) & ~w & GH__BYTES_HIGH;
}

/** Nonzero iff some byte of w is below n (n <= 128; exact as a yes/no). */
static inline uint64_t gh__bytes_below(uint64_t w, unsigned n)
{
  return (w - GH__BYTES_ONES * n) & ~w & GH__BYTES_HIGH;
}

static inline uint64_t gh__load64(const char *p)
{
  uint64_t w;
  memcpy(&w, p, sizeof(w));
  return w;
}

/** True if s[0..len) holds CR, LF or NUL (a header value that would end or
 *  cut the line). Eight bytes per step. */
static inline bool gh__has_crlf_nul(const char *s, size_t len)
{
  for (; len >= 8; s += 8, len -= 8) {
    uint64_t w = gh__load64(s);
    if (gh__bytes_zero(w) | gh__bytes_zero(w ^ (GH__BYTES_ONES * '\r')) |
        gh__bytes_zero(w ^ (GH__BYTES_ONES * '\n')))
      return true;
  }
  for (; len > 0; s++, len--)
    if (*s == '\r' || *s == '\n' || *s == '\0')
      return true;
  return false;
}

/** True if the comma-separated list v (a Connection or Upgrade value; NULL
 *  is empty) holds token, in any case. */
static inline bool gh__list_has_token(const char *v, const char *token)
{
  size_t tl = strlen(token);
  while (v != NULL && *v != '\0') {
    while (*v == ' ' || *v == '\t' || *v == ',')
      v++;
    size_t k = strcspn(v, ", \t");
    if (k == tl && strncasecmp(v, token, tl) == 0)
      return true;
    v += k;
  }
  return false;
}

#endif
