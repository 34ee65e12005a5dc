/* str.h: small string helpers shared by the layers (internal). */
#ifndef GH_UTIL_STR_H
#define GH_UTIL_STR_H

#include <stdbool.h>
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

#endif
