/* static_util.h: pure helpers of the static module (range parsing, URL path checks, MIME). */
#ifndef GH_STATIC_UTIL_H
#define GH_STATIC_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Result of parsing a Range header against a file of `size` bytes. */
typedef enum static_range_kind {
  STATIC_RANGE_NONE = 0,          /* no usable Range: serve the whole file (200) */
  STATIC_RANGE_OK = 1,            /* one satisfiable range: 206 */
  STATIC_RANGE_UNSATISFIABLE = 2, /* 416 */
} static_range_kind_t;

/* Parses "bytes=a-b" / "bytes=a-" / "bytes=-n" (RFC 9110 §14.1.2). Several
 * ranges, other units or malformed values give NONE (the full file), as the
 * RFC allows. On OK, [*ret_start, *ret_start + *ret_len) lies in the file. */
static_range_kind_t static_parse_range(const char *value, size_t vlen, uint64_t size,
                                       uint64_t *ret_start, uint64_t *ret_len);

/* Checks the raw request-target (before decoding) and the site-relative
 * decoded path, and writes a relative path for openat2 ("." for the root)
 * into out. Refuses: "..", encoded dot segments or separators ("%2e%2e",
 * "%2f", "%5c"), backslashes, NUL, control characters. Returns 0, -EACCES
 * (traversal), -EINVAL (malformed), -ENAMETOOLONG. */
int static_check_path(const char *raw_url, size_t raw_len, const char *rel, size_t rel_len,
                      char *out, size_t outsz);

/* MIME type for a file name from a table loaded from mime.types (or the
 * built-in fallback); "application/octet-stream" when unknown. */
int static_mime_load(const char *path);
const char *static_mime_lookup(const char *name);
void static_mime_free(void);
/* Loading again (config reload) publishes a new table; lookups running on
 * other threads keep reading the one they found, which static_mime_free (at
 * terminate, no requests running) releases with the rest. */

/* IMF-fixdate of t ("Sun, 06 Nov 1994 08:49:37 GMT") into out (30 bytes);
 * returns the length, or 0 (and "") for years outside 0..9999. */
size_t static_http_date(int64_t t, char *out);
#define STATIC_HTTP_DATE_SIZE 30

/* "\"<ino>-<size>-<mtime>\"" in lower-case hex into out (52 bytes). */
size_t static_etag(uint64_t ino, uint64_t size, uint64_t mtime, char *out);
#define STATIC_ETAG_SIZE 56 /* 2 quotes + 3 x 16 hex digits + 2 dashes + NUL = 53 */

#endif
