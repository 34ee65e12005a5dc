/* framing.h: response framing decisions and status-line/header serialisation (internal). */
#ifndef GH_HTTPAPI_FRAMING_H
#define GH_HTTPAPI_FRAMING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum gh__frame {
  GH__FRAME_NOBODY,  /* 1xx, 204, 304: no body, no Content-Length */
  GH__FRAME_LENGTH,  /* Content-Length (server-computed or set by the application) */
  GH__FRAME_CHUNKED, /* Transfer-Encoding: chunked (HTTP/1.1) */
  GH__FRAME_CLOSE,   /* body ends at connection close (HTTP/1.0 streaming) */
} gh__frame_t;

typedef struct gh__resp_hdr {
  const char *name;  /* NULL: removed */
  const char *value;
  size_t name_len;   /* strlen(name), strlen(value) */
  size_t value_len;
} gh__resp_hdr_t;

typedef struct gh__resp_head {
  int status;
  const char *reason;          /* NULL: standard phrase */
  const gh__resp_hdr_t *hdrs;
  size_t n_hdrs;
  gh__frame_t frame;
  uint64_t content_length;     /* GH__FRAME_LENGTH when !app_length */
  bool app_length;             /* the application set Content-Length in hdrs */
  bool keep_alive;
  int version;                 /* request version, 10 or 11 */
  const char *date;            /* NULL: none */
  const char *server;          /* NULL or "": none */
  bool lens;                   /* the three lengths below are given (else: strlen) */
  size_t reason_len;           /* of reason, or of the standard phrase if NULL */
  size_t date_len, server_len;
} gh__resp_head_t;

/** Chooses the framing of a response. final_send: the first send is also the
 *  last (length known). app_length: the application set Content-Length.
 *  *keep_alive is cleared when the framing needs the connection closed. */
gh__frame_t gh__framing_choose(int status, int version, bool final_send, bool app_length,
                               bool *keep_alive);

/** Standard reason phrase for a status ("Unknown" if none). */
const char *gh__framing_reason(int status);

/** Exact byte length of the serialised head (status line to blank line). */
size_t gh__framing_head_len(const gh__resp_head_t *h);
/** Writes the head into buf (gh__framing_head_len() bytes, no NUL). Returns
 *  the number of bytes written. */
size_t gh__framing_head_write(const gh__resp_head_t *h, char *buf);

/** Writes "<hex len>\r\n" into buf[20]; returns its length. */
size_t gh__framing_chunk_header(size_t len, char buf[20]);

#endif
