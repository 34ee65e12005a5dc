/* http_parse.h: HTTP/1.x request parser glue over libhttp-parser — a pure byte-fed state machine (internal). */
#ifndef GH_HTTPAPI_HTTP_PARSE_H
#define GH_HTTPAPI_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>

/*
 * No sockets, no clocks: the owner feeds bytes and gets events.
 *
 *   gh__http_parser_init(&p, &limits);
 *   gh__http_parser_begin(&p, &msg);          -- before the first byte of each message
 *   r = gh__http_parser_feed(&p, buf, n, &used);
 *     GH__HTTP_MORE    all bytes consumed, message incomplete
 *     GH__HTTP_HEADERS headers complete (once per message); msg header fields are
 *                      valid; the owner may call gh__http_parser_set_max_body()
 *                      and must feed the rest (buf+used) again
 *     GH__HTTP_DONE    message complete; buf+used.. belongs to the next message
 *     GH__HTTP_ERROR   p.status holds the HTTP status to answer (400, 413, 414,
 *                      431, 417, 501, 505); the connection must be closed
 *
 * Fast path: when the first feed of a message holds its whole head and the
 * head is plain (a known method but CONNECT, an origin-form target of
 * visible ASCII, HTTP/1.0 or 1.1, token field names, no body, no
 * Transfer-Encoding, Upgrade or unusual Connection, every limit met), it is
 * read in one pass without libhttp-parser; anything else is given to
 * libhttp-parser from the message's first byte. Both give the same events,
 * used counts and results (the unit test and the fuzz target check it).
 *
 * Storage: the message copies the request-target, header names and values
 * and the (de-chunked) body into its own growable buffers, so the fed bytes
 * need not outlive the call. A message can be reused for the next request
 * (gh__http_parser_begin() clears it but keeps capacity).
 */

typedef struct gh__http_limits {
  size_t max_uri;           /* request-target bytes (414) */
  size_t max_header_bytes;  /* sum of name+value+4 per header (431) */
  unsigned max_header_count;/* header lines (431) */
  size_t max_body;          /* default body limit (413); see set_max_body */
  size_t max_authz_bytes;   /* Authorization values (all of them) are counted here,
                               not in max_header_bytes (400 beyond: an oversize token,
                               as the auth engine answers); 0 = counted as any field */
} gh__http_limits_t;

/** Bytes the header section (request line, fields, CRLFs, leading empty
 *  lines) may take in all under these limits; more is 431. It bounds what
 *  the per-field counts do not see (whitespace around values). */
size_t gh__http_section_max(const gh__http_limits_t *lim);

typedef struct gh__http_header {
  const char *name;   /* NUL-terminated, as sent */
  const char *value;  /* NUL-terminated, surrounding whitespace removed */
  uint32_t name_len;
  uint32_t value_len;
} gh__http_header_t;

typedef struct gh__http_hoff {
  uint32_t noff, nlen, voff, vlen;
} gh__http_hoff_t;

typedef struct gh__http_msg {
  /* storage (owned, reused) */
  char *hbuf;
  size_t hlen, hcap;
  gh__http_hoff_t *hoffs;
  gh__http_header_t *headers;
  unsigned hcap_n;
  char *body;
  size_t body_len, body_cap;

  /* results, valid from GH__HTTP_HEADERS on */
  unsigned method;          /* enum http_method */
  const char *method_str;   /* static string */
  const char *url;          /* NUL-terminated request-target */
  size_t url_len;
  unsigned n_headers;
  unsigned short http_major, http_minor;
  uint64_t content_length;  /* valid if has_content_length */
  bool has_content_length;
  bool chunked;
  bool expect_continue;
  bool keep_alive;          /* final value valid at GH__HTTP_DONE */
  bool head;
} gh__http_msg_t;

enum {
  GH__HTTP_ERROR = -1,
  GH__HTTP_MORE = 0,
  GH__HTTP_HEADERS = 1,
  GH__HTTP_DONE = 2,
};

typedef struct gh__http_parser {
  http_parser hp;
  const gh__http_limits_t *lim;
  gh__http_msg_t *msg;
  size_t max_body;
  size_t header_bytes;
  int status;               /* HTTP status after GH__HTTP_ERROR */
  uint8_t phase;            /* internal */
  uint8_t last_cb;
  uint8_t event;
  bool scan_done;
  bool scan_line_start;
  bool scan_prev_cr;        /* header section: the previous byte was CR (bare LF check) */
  bool frame_prev_cr;       /* chunked framing: the same */
  bool in_authz;            /* the current field value is an Authorization value */
  const char *frame_from;   /* chunked framing bytes not yet checked, in the current feed */
  unsigned scan_lines;
  unsigned n_host, n_cl, n_te;
  uint32_t authz_bytes;     /* Authorization value bytes of this message */
  uint32_t section_bytes;   /* header-section bytes of this message so far */
  uint32_t frame_line;      /* chunked framing: bytes of the current line so far */
  uint8_t frame_crlf;       /* chunked framing: CR, LF still due after chunk data (2, 1) */
  bool stream;              /* the owner consumes msg->body as it comes */
  uint64_t body_seen;       /* decoded body bytes of this message */
  bool fast;                /* this message's head was read by the fast path */
  bool fast_off;            /* tests: every message goes through libhttp-parser
                               (kept by begin; set after init) */
} gh__http_parser_t;

/** A chunk-size line (with its extensions) or a trailer line longer than
 *  this is 400: the chunked framing is bounded like the header section. */
#define GH__HTTP_CHUNK_LINE_MAX 4096

/** Prepares a parser; lim is borrowed for the parser's lifetime. */
void gh__http_parser_init(gh__http_parser_t *p, const gh__http_limits_t *lim);
/** Starts a new message stored in msg (cleared, capacity kept). */
void gh__http_parser_begin(gh__http_parser_t *p, gh__http_msg_t *msg);
/** Feeds bytes; see the table above. *ret_used is always written. */
int gh__http_parser_feed(gh__http_parser_t *p, const char *data, size_t len, size_t *ret_used);
/** True once any byte of the current message (not leading CR/LF) was seen. */
bool gh__http_parser_started(const gh__http_parser_t *p);
/** True between GH__HTTP_HEADERS and GH__HTTP_DONE. */
bool gh__http_parser_in_body(const gh__http_parser_t *p);
/** After GH__HTTP_HEADERS: sets the body limit of this message. Returns 0, or
 *  GH__HTTP_ERROR with status 413 when Content-Length already exceeds it. */
int gh__http_parser_set_max_body(gh__http_parser_t *p, size_t max_body);

/** After GH__HTTP_HEADERS: streaming mode. The owner takes the decoded
 *  bytes out of msg->body (and resets body_len) between feeds, so the body
 *  buffer stays the size of one feed; max_body counts every byte seen. */
void gh__http_parser_set_stream(gh__http_parser_t *p);

/** Frees a message's storage. Accepts NULL. */
void gh__http_msg_done(gh__http_msg_t *msg);
/** Frees buffers that grew beyond keep bytes (to recycle the message cheaply). */
void gh__http_msg_shrink(gh__http_msg_t *msg, size_t keep);
/** First value of a header (case-insensitive), or NULL. */
const char *gh__http_msg_header(const gh__http_msg_t *msg, const char *name);

#endif
