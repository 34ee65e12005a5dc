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

/* What a hop-by-hop field's name is (RFC 9110 §7.6.1), the same in both
 * directions: the request's head builder and the response parser take these
 * bits into their own kinds at the same values. */
enum {
  PROXY_HOP = 1u << 0,            /* hop-by-hop: never relayed as it is */
  PROXY_HOP_CONNECTION = 1u << 3, /* Connection */
  PROXY_HOP_UPGRADE = 1u << 4,    /* Upgrade */
  PROXY_HOP_TE = 1u << 5,         /* Transfer-Encoding */
};

/* The hop-by-hop kind of a field name (n bytes): Connection, Keep-Alive, TE,
 * Trailer, Transfer-Encoding, Upgrade, and every Proxy-* (between the
 * client and this server); 0 for an end-to-end field. */
static inline unsigned proxy_hop_kind(const char *s, size_t n)
{
  unsigned k = 0;
  switch (n) {
  case 2:
    k = proxy_eq_lit(s, "te", 2) ? PROXY_HOP : 0;
    break;
  case 7:
    k = proxy_eq_lit(s, "trailer", 7)   ? PROXY_HOP
        : proxy_eq_lit(s, "upgrade", 7) ? PROXY_HOP | PROXY_HOP_UPGRADE
                                        : 0;
    break;
  case 10:
    k = proxy_eq_lit(s, "connection", 10)   ? PROXY_HOP | PROXY_HOP_CONNECTION
        : proxy_eq_lit(s, "keep-alive", 10) ? PROXY_HOP
                                            : 0;
    break;
  case 17:
    k = proxy_eq_lit(s, "transfer-encoding", 17) ? PROXY_HOP | PROXY_HOP_TE : 0;
    break;
  default:
    break;
  }
  if (k == 0 && n >= 6 && proxy_eq_lit(s, "proxy-", 6))
    k = PROXY_HOP;
  return k;
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
