/* glue.h: internal HTTP core calls for the pipeline glue (checked fields, cached address texts). */
#ifndef GH_HTTPAPI_GLUE_H
#define GH_HTTPAPI_GLUE_H

#include <stdbool.h>
#include <stddef.h>

#include <gatehouse/httpapi.h>
#include <gatehouse/token.h>

/*
 * The pipeline (src/lib/pipeline/glue_httpapi.c) runs over a gh_request_t
 * and checks what modules set before it stores it; these calls spare the
 * HTTP core a second scan and a second copy of the same bytes. Outside
 * callers use the public gh_response_* calls, which check everything.
 * Same thread rules as the request.
 */

/** gh_response_add_header() for a field the caller checked: name is
 *  name_len (>= 1) tchar bytes, value value_len bytes without CR, LF or NUL,
 *  each NUL-terminated at its length, both borrowed (not copied) until the
 *  request completes. The state, the names only the server writes (Date,
 *  Connection, Transfer-Encoding) and a Content-Length value's digits are
 *  still checked here. Returns as gh_response_add_header(). */
int gh__response_add_header_checked(gh_request_t *req, const char *name, size_t name_len,
                                    const char *value, size_t value_len);

/** gh_response_set_status() with reason (NULL: the standard phrase)
 *  borrowed until the request completes instead of copied. */
int gh__response_set_status_borrowed(gh_request_t *req, int status, const char *reason);

/** The connection's addresses as text (dotted quad, IPv6 without brackets,
 *  "unix"; "" for another family) and ports (0 if none): formatted once per
 *  connection, valid until the request completes. */
typedef struct gh__request_addrs {
  const char *remote;
  const char *local;
  int remote_port;
  int local_port;
} gh__request_addrs_t;
void gh__request_get_addrs(gh_request_t *req, gh__request_addrs_t *ret_addrs);

/** The request's auth token (its auth info's token) was closed by its
 *  receiver: the end of the request does not close it again (a second
 *  close only failed, under the handle table's lock). Another value: no
 *  effect. */
void gh__request_auth_token_closed(gh_request_t *req, gh_token_t token);

/** True if the request carried a Content-Length field
 *  (gh_request_get_header(req, "Content-Length") != NULL, without the walk). */
bool gh__request_has_content_length(const gh_request_t *req);

#endif
