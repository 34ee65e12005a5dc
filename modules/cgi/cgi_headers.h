/* cgi_headers.h: parser of a CGI script's response header section (RFC 3875 §6), with limits. */
#ifndef GH_CGI_HEADERS_H
#define GH_CGI_HEADERS_H

#include <stddef.h>
#include <sys/types.h>

#define CGI_MAX_HEADER_BYTES 8192
#define CGI_MAX_HEADERS 64

typedef struct cgi_header {
  const char *name;
  const char *value;
} cgi_header_t;

typedef struct cgi_headers {
  int status;        /* from Status:, or 302 with a Location and no Status, else 200 */
  char reason[128];
  size_t n;
  cgi_header_t h[CGI_MAX_HEADERS]; /* point into buf (modified in place) */
  const char *location;
} cgi_headers_t;

/* Parses the header section at the start of buf[0..len) (lines ending in
 * LF or CRLF, ended by an empty line). buf is modified (NULs written).
 * Returns the number of bytes the section took (the body starts there), 0
 * when the section is not complete yet (and len < CGI_MAX_HEADER_BYTES), or
 * -EPROTO (malformed, no Content-Type/Location/Status), -E2BIG (too long or
 * too many headers). */
ssize_t cgi_parse_headers(char *buf, size_t len, cgi_headers_t *out);

#endif
