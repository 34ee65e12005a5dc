/* proxy.h: what the proxy module's files share (upstreams, pool, parser, one request). */
#ifndef GH_PROXY_H
#define GH_PROXY_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include <gatehouse/module.h>

#include "proxy_names.h"

#define PROXY_MAX_HEAD (64 * 1024) /* an upstream response head, all fields */
#define PROXY_MAX_HEADERS 128      /* fields in an upstream response head */
#define PROXY_MAX_REQ_HEAD (96 * 1024)
#define PROXY_POOL_SLOTS 256 /* idle connections kept per upstream, all identities */
#define PROXY_IO_BUF (64 * 1024)
#define PROXY_MAX_UPSTREAMS 64 /* `upstream =` lines of one site */

/* ---- upstreams (proxy_upstream.c) ---- */

/** One `upstream =` line, parsed once and kept for the life of the module
 *  (interned by its text: a reload that keeps the line keeps its pool). */
typedef struct proxy_upstream {
  char *spec;                    /* the line as written */
  bool is_unix;                  /* unix:/path.sock[:/prefix] */
  char *host;                    /* TCP: host name or address (brackets removed) */
  char *port;                    /* TCP: port text */
  char *path;                    /* unix: socket path */
  char *prefix;                  /* "" or "/prefix" (no trailing '/') */
  bool has_prefix;               /* a path was given (even "/"): it replaces the site path */
  char *authority;               /* Host value for upstream_host-less unix/HTTP/1.0 requests */
  _Atomic int64_t down_until_ms; /* passive health: not chosen before this */
  _Atomic uint64_t rr;           /* round-robin counter (used on a site's first upstream) */
  struct proxy_pool_slot *idle;  /* PROXY_POOL_SLOTS, under lock */
  size_t n_idle;
  void *lock; /* pthread_mutex_t * */
  struct proxy_upstream *next;
} proxy_upstream_t;

/** Parses an `upstream =` value. 0, or -EINVAL with a reason in why. */
int proxy_upstream_check(const char *value, char *why, size_t whylen);
/** The interned upstream for a value (created on first use); NULL on error. */
proxy_upstream_t *proxy_upstream_get(const char *value);
/** Frees every upstream and closes every pooled connection (module unload). */
void proxy_upstream_free_all(void);
int64_t proxy_now_ms(void);
/** Marks a connect failure: the upstream is skipped for fail_ms. */
void proxy_upstream_mark_down(proxy_upstream_t *up, uint64_t fail_ms);
bool proxy_upstream_is_up(proxy_upstream_t *up);

/** An idle keep-alive connection of the pool, keyed by (upstream, identity).
 *  identity NULL: a connection opened at the service identity, shareable by
 *  every request; otherwise only requests with the same identity key may
 *  take it (connections opened as the client, DESIGN §2 item 30). */
typedef struct proxy_pool_slot {
  int fd;
  uint64_t key;   /* the connection's name for the server's kept waits (proxy_conn_key) */
  char *identity; /* malloc'd, or NULL */
  int64_t since_ms;
} proxy_pool_slot_t;

/** An idle connection for (up, identity) and its key, or -1. The caller
 *  owns the fd. */
int proxy_pool_take(proxy_upstream_t *up, const char *identity, uint64_t *ret_key);
/** Gives a connection whose last response was complete and framed back to
 *  the pool (or closes it: pool full, max_idle 0, readable data). */
void proxy_pool_put(proxy_upstream_t *up, const char *identity, int fd, uint64_t key,
                    size_t max_idle);
/** A new upstream connection's key: unique in the process, never 0 (the
 *  server keeps the connection registered across waits by it:
 *  gh_http_context_wait_kept). */
uint64_t proxy_conn_key(void);

/** Closes every idle pooled connection (server stop). */
void proxy_pool_close_idle(void);

/* ---- the upstream response parser (proxy_resp.c) ---- */

/** What a response field is to the relay, found once while parsing (a
 *  length switch and one case-insensitive compare per name). */
enum {
  PROXY_F_HOP = PROXY_HOP,      /* hop-by-hop by name (proxy_hop_kind) */
  PROXY_F_CONN_NAMED = 1u << 1, /* named by the head's Connection field(s) */
  PROXY_F_OWN = 1u << 2,        /* Date, Server, Content-Length: the server sets its own */
  PROXY_F_CONNECTION = PROXY_HOP_CONNECTION,
  PROXY_F_UPGRADE = PROXY_HOP_UPGRADE,
  PROXY_F_TE = PROXY_HOP_TE,  /* Transfer-Encoding */
  PROXY_F_CL = 1u << 6,       /* Content-Length */
  PROXY_F_LOCATION = 1u << 7, /* Location, Content-Location */
  PROXY_F_COOKIE = 1u << 8,   /* Set-Cookie */
  PROXY_F_VIA = 1u << 9,
  PROXY_F_WWW_AUTH = 1u << 10, /* WWW-Authenticate */
};

typedef struct proxy_field {
  const char *name, *value; /* into head[], NUL-terminated */
  uint32_t name_len;
  uint32_t kind; /* PROXY_F_* */
} proxy_field_t;

typedef struct proxy_resp proxy_resp_t;
/** Called for each complete response head (1xx interim ones too); nonzero
 *  stops parsing with an error. */
typedef int (*proxy_head_cb)(void *arg, proxy_resp_t *r);
/** Body bytes of the final response (chunked framing removed). */
typedef int (*proxy_body_cb)(void *arg, const char *data, size_t len);

/** A bounded incremental parser of one upstream response (any number of
 *  1xx heads, then the final one and its body); our own, strict (RFC 9112):
 *  CRLF line ends only, no obs-fold, one Content-Length, Transfer-Encoding
 *  exactly "chunked" and never with Content-Length (docs/proxy.md). */
struct proxy_resp {
  bool head_request; /* the request was HEAD: no body whatever the fields say */
  proxy_head_cb on_head;
  proxy_body_cb on_body;
  void *arg;
  /* the head being parsed */
  int status;
  int version_minor; /* HTTP/1.x */
  char reason[128];
  size_t reason_len;
  size_t n;
  bool chunked;           /* final response was chunked */
  int64_t content_length; /* final response's, -1 if none */
  bool final_head;        /* the final head was delivered */
  bool done;              /* the final response is complete */
  bool keep_alive;        /* the upstream connection may be reused after it */
  bool upgrade;           /* 101 */
  const char *error;      /* set on failure */
  /* parser state (proxy_resp.c) */
  int state;
  bool got_status;    /* the current head's status line was read */
  bool reusable;      /* the final head allows keep-alive (set on done) */
  size_t line_off;    /* head[]: where the line being read starts */
  uint64_t left;      /* body: bytes left of the length or of the chunk */
  size_t line_len;    /* chunk framing: bytes of the current line */
  size_t trailer_len; /* chunk trailers: bytes so far */
  unsigned interim;   /* 1xx heads so far (PROXY_MAX_INTERIM) */
  uint32_t kinds;     /* the current head's fields' kinds, OR'ed */
  proxy_field_t f[PROXY_MAX_HEADERS];
  size_t head_len;
  /* last: a move copies only what is used; 8 NULs follow the bytes read
   * (the fast line reader's end mark and room for its word loads) */
  char head[PROXY_MAX_HEAD + 8];
};

void proxy_resp_init(proxy_resp_t *r, bool head_request, proxy_head_cb on_head,
                     proxy_body_cb on_body, void *arg);
/** Feeds bytes read from the upstream. Returns the bytes used (parsing stops
 *  at the end of the final response: fewer than len means the upstream sent
 *  more than its answer), or -1 with r->error set (and -1 again on every
 *  later call). len 0 signals EOF. */
ssize_t proxy_resp_feed(proxy_resp_t *r, const char *data, size_t len);
/** Moves a parser's state to dst (another address): the pointers into its
 *  own buffers follow. */
void proxy_resp_move(proxy_resp_t *dst, const proxy_resp_t *src);
/** The value of the first field of that name in the current head, or NULL. */
const char *proxy_resp_field(const proxy_resp_t *r, const char *name);

/* ---- hop-by-hop and identity field names (proxy_relay.c) ---- */

/** True for a hop-by-hop field (RFC 9110 §7.6.1), or one the Connection
 *  value conn (may be NULL) names. */
bool proxy_is_hop_by_hop(const char *name, const char *conn);
/** strcasecmp(a, b) == 0 for field names, the first byte compared inline
 *  (most names differ there; '| 0x20' folds letters and only widens the
 *  pre-check for the other token bytes). */
static inline bool proxy_name_is(const char *a, const char *b)
{
  return ((unsigned char)a[0] | 0x20) == ((unsigned char)b[0] | 0x20) && strcasecmp(a, b) == 0;
}
/** Name comparison for identity fields: any case, '_' equals '-'. */
bool proxy_name_eq_loose(const char *a, const char *b);
/** Rewrites a Location value pointing into the upstream's prefix (as a
 *  path, an URL of the upstream, or an URL of sent_host, the Host the
 *  upstream was given) to the site's path; NULL when unchanged. Request
 *  memory. */
char *proxy_rewrite_location(gh_http_context_t *ctx, const proxy_upstream_t *up, const char *site,
                             const char *value, const char *sent_host);
/** Rewrites the Path attribute of a Set-Cookie value; NULL when unchanged. */
char *proxy_rewrite_cookie(gh_http_context_t *ctx, const proxy_upstream_t *up, const char *site,
                           const char *value);

/* ---- a growing byte buffer ---- */
typedef struct proxy_buf {
  char *p;
  size_t len, cap, max;
  bool failed;
  gh_http_context_t *ctx; /* set: the first room is the request's memory */
  bool heap;              /* p is malloc'd (grown past that room, or no ctx) */
} proxy_buf_t;
/** Frees what the buffer holds and empties it (max and ctx stay). */
void proxy_buf_free(proxy_buf_t *b);
void proxy_buf_add(proxy_buf_t *b, const char *s, size_t n);
void proxy_buf_str(proxy_buf_t *b, const char *s);
void proxy_buf_field(proxy_buf_t *b, const char *name, const char *value);
/** Appends "name: value\r\n" with the value's length given. */
void proxy_buf_field_n(proxy_buf_t *b, const char *name, const char *value, size_t value_len);
/** A piece of a head: n bytes at s. */
typedef struct proxy_piece {
  const char *s;
  size_t n;
} proxy_piece_t;
#define PROXY_PIECE(lit) ((proxy_piece_t){(lit), sizeof(lit) - 1})
/** Appends the pieces in order, under one room check (all or, over the
 *  limit, none: b->failed). */
void proxy_buf_pieces(proxy_buf_t *b, const proxy_piece_t *pc, size_t n_pc);

/* ---- formatting without printf (a request's head is built from pieces) ---- */

/** Room proxy_fmt_u64 needs: 20 digits and the NUL. */
#define PROXY_U64_LEN 21
/** Writes v in decimal at out (PROXY_U64_LEN bytes), NUL-terminated; returns
 *  the number of digits. */
size_t proxy_fmt_u64(char *out, uint64_t v);

/** A field value assembled from pieces in a fixed buffer: what does not fit
 *  is cut (as snprintf into a char[PROXY_LINE_MAX] would), len stays below
 *  PROXY_LINE_MAX and s is NUL-terminated. */
#define PROXY_LINE_MAX 768
typedef struct proxy_line {
  char s[PROXY_LINE_MAX];
  size_t len;
} proxy_line_t;
/** Appends up to n bytes of s (cut at the line's end). */
void proxy_line_add(proxy_line_t *l, const char *s, size_t n);
/** Appends the string s (NULL: nothing). */
void proxy_line_str(proxy_line_t *l, const char *s);
/** Appends v in decimal. */
void proxy_line_u64(proxy_line_t *l, uint64_t v);
/** l = "PRIOR, SELF" (prior NULL: "SELF"): a Via or X-Forwarded-For value
 *  with this hop added, cut at PROXY_LINE_MAX - 1 bytes. */
void proxy_fwd_chain(proxy_line_t *l, const char *prior, const char *self);
/** l = the Forwarded value: prior's elements (NULL: none), then
 *  for=ADDR (IPv6 as "[ADDR]", quoted);proto=PROTO[;host="HOST"]. */
void proxy_fwd_forwarded(proxy_line_t *l, const char *prior, const char *addr, const char *proto,
                         const char *host);

/* ---- a site's configuration, read once per configuration (proxy_conf.c) ---- */

/** The identity modes' keys (proxy_idmodes.c reads them). */
typedef struct proxy_idm_conf {
  bool as_client, negotiate;
  const char *jwt_key, *jwt_alg, *jwt_field, *jwt_aud, *jwt_iss, *spn;
  uint64_t jwt_ttl_ms;
  bool jwt_group_names; /* identity_jwt_group_names: a "group_names" claim */
} proxy_idm_conf_t;

#define PROXY_MAX_IDENT 8 /* identity_headers words (user, groups, principal, auth-type, group-names) */
#define PROXY_N_KINDS 5   /* identity_headers kinds (proxy_identity_kind) */
#define PROXY_ENAMES (-EREMOTEIO) /* the group database could not name the groups: 503 */
#define PROXY_IDENT_NAME_MAX 64 /* bytes of an identity_headers field name (checked at load) */

/** A name and its length. */
typedef struct proxy_name {
  const char *s;
  size_t len;
} proxy_name_t;

/** Everything the proxy reads of a site's keys, built by the site's first
 *  request under a configuration (gh_http_context_get_site_data) and shared
 *  read-only by every later one until a reload installs another; strings
 *  are the configuration's. */
typedef struct proxy_site {
  bool ok; /* the timeouts, keep-alive and proxy_via were read */
  uint64_t connect_ms, read_ms, fail_ms, keepalive;
  bool via, x_forwarded, forwarded;
  const char *upstream_host;                  /* or NULL */
  proxy_upstream_t *ups[PROXY_MAX_UPSTREAMS]; /* `upstream =` lines, interned */
  size_t n_ups;
  const char *ident_name[PROXY_MAX_IDENT]; /* identity_headers: field names */
  int ident_kind[PROXY_MAX_IDENT];         /* and their kinds (proxy_identity_kind) */
  size_t n_ident;
  proxy_idm_conf_t idm;
  /* derived from the above once (proxy_site_prepare) */
  proxy_name_t strip[PROXY_MAX_IDENT + 1]; /* client fields never relayed, any case and '_'
                                              for '-': the identity fields, the JWT field */
  size_t n_strip;
  uint64_t strip_lens;                                       /* bit min(len, 64) - 1 of each */
  char ident_pre[PROXY_MAX_IDENT][PROXY_IDENT_NAME_MAX + 3]; /* "Name: " of ident_name[i] */
  size_t ident_pre_len[PROXY_MAX_IDENT];                     /* 0: the field is never sent */
} proxy_site_t;

/** Fills the derived part of s from its keys (site_build; tests). */
void proxy_site_prepare(proxy_site_t *s);

/** The module's id (gh_module_registration_get_id), set at registration. */
extern int proxy_module_id;
/** The request's site configuration, or NULL when it could not be built
 *  (out of memory: the request gets 500). Borrowed for the request. */
const proxy_site_t *proxy_site_get(gh_http_context_t *ctx);

/* ---- one relayed request (proxy.c, proxy_relay.c) ---- */

typedef struct proxy_site_count proxy_site_count_t;

typedef struct proxy_req {
  gh_http_context_t *ctx;
  /* the exchange, kept across waits (request memory) */
  proxy_upstream_t *order[PROXY_MAX_UPSTREAMS]; /* upstreams in the order to try */
  size_t n_up, i_up;                            /* how many, the one in use */
  int attempt;                                  /* 1: retry on a fresh connection */
  proxy_buf_t head;                             /* the request head for order[i_up] */
  bool has_body, chunked;
  int64_t read_deadline;     /* the response's next byte is due by then (ms) */
  bool relaying;             /* a response is being relayed (its parser is q->pr) */
  bool head_set;             /* its final status and fields are on the response */
  bool client_error;         /* sending it to the client failed */
  size_t resp_bytes;         /* read of it so far */
  struct proxy_resp *own_pr; /* its parser once it waited mid-way (malloc'd) */
  gh_http_request_t *req;
  gh_http_response_t *resp;
  gh_module_server_t *server;
  const char *site;
  proxy_upstream_t *up;     /* the one in use */
  const char *sent_host;    /* the Host field sent upstream */
  const char *identity_key; /* pool key of connections opened for this request, or NULL */
  int fd;                   /* upstream connection, or -1 */
  uint64_t fd_key;          /* its key (proxy_conn_key) */
  bool reused;              /* fd came from the pool */
  uint64_t connect_ms, read_ms, fail_ms, keepalive;
  bool is_head;
  bool via;            /* proxy_via */
  bool connect_failed; /* the last attempt could not connect */
  bool want_upgrade;   /* the client asked to switch protocols (relayed) */
  bool broken;         /* the upstream did not get the whole request: never reused */
  bool client_failed;  /* a write to the client failed: the client is gone */
  proxy_resp_t *pr;
  char *io;                  /* PROXY_IO_BUF bytes, the worker thread's */
  size_t left_off, left_len; /* in io: what the upstream sent after its 101 head */
  proxy_site_count_t *slot;  /* an upgrade_max slot held for this request, or NULL */
  const proxy_site_t *conf;  /* the site's keys */
  void *idm;                 /* proxy_idmodes.c: the modes' keys and Negotiate context */
} proxy_req_t;

/** The calling thread's parser and I/O buffer (allocated at its first
 *  request, freed when the thread ends); NULL when out of memory. */
typedef struct proxy_scratch {
  proxy_resp_t resp;
  char io[PROXY_IO_BUF];
} proxy_scratch_t;
proxy_scratch_t *proxy_scratch_get(void);
int proxy_scratch_init(void);
void proxy_scratch_done(void);
/** Sets up the identity modes' per-request state (q->conf first). */
void proxy_identity_load(proxy_req_t *q);

/* Hook points for the identity modes (JWT, connect-as-client, Negotiate):
 * each is one function, called once per upstream request. */

/** The pool key for this request's connections: NULL (service identity,
 *  shared) unless the connection is opened as the client. */
const char *proxy_identity_key(proxy_req_t *q);
/** Opens a connection to q->up (at the service identity; connect-as-client
 *  plugs in here), bounded by q->connect_ms. 0 with *ret_fd, or -errno
 *  (-ETIMEDOUT for the timeout). */
int proxy_open_upstream(proxy_req_t *q, int *ret_fd);
/** The values of the site's identity_headers kinds for the request's user
 *  (vals by kind, proxy_identity_kind; the others NULL): 1, or 0 for an
 *  anonymous request (no identity field at all, vals all NULL), or
 *  PROXY_ENAMES (logged) when the group names a kind asks for cannot be
 *  resolved: the request fails (503) rather than go with fewer groups. */
int proxy_identity_values(proxy_req_t *q, const char *vals[PROXY_N_KINDS]);
/** The names of the request's user's groups (gh_http_user_get_group_names):
 *  0 with *ret_names (NULL without a token), or PROXY_ENAMES, logged. */
int proxy_group_names(proxy_req_t *q, const char **ret_names);
/** Appends the headers-mode identity fields: each configured kind with a
 *  value, a value holding CR or LF never (the field is left out). */
void proxy_put_identity(const proxy_site_t *s, const char *const vals[PROXY_N_KINDS],
                        proxy_buf_t *head);

/* ---- moving bytes (proxy_stream.c) ---- */

/** True once the client is known to have gone (its connection closed). */
bool proxy_client_gone(proxy_req_t *q);
/** Waits for events on fd, at most timeout_ms, checking the client each
 *  second: the revents (>0), 0 on timeout, -ECANCELED (client gone), -errno. */
int proxy_wait_fd(proxy_req_t *q, int fd, short events, uint64_t timeout_ms);
/** A new upstream connection: blocking reads that wake each second, or
 *  after read_ms if shorter (SO_RCVTIMEO); sends stay non-blocking per call
 *  (MSG_DONTWAIT). */
void proxy_set_read_tick(int fd, uint64_t read_ms);
/** Sends what fd takes of *buf without waiting (advances *buf, *len): 0 when
 *  all went, 1 when it would block, -errno. */
int proxy_send_nowait(int fd, const char **buf, size_t *len);
/** Writes all of buf upstream (q->read_ms per wait). 0, -ETIMEDOUT,
 *  -ECANCELED, -errno; with watch_answer, -EALREADY when the upstream
 *  starts answering before taking everything. */
int proxy_send_all(proxy_req_t *q, const char *buf, size_t len, bool watch_answer);
/** Streams the client's body upstream (chunked when chunked). 0; -errno
 *  of the upstream side (-EALREADY: it answers early); -ETIMEDOUT;
 *  -ECANCELED (client gone); or a status for the client's body (400, 408,
 *  413). */
int proxy_send_body(proxy_req_t *q, bool chunked);
/** Relays a 1xx interim response (not 100, not 101) to the client. 0 or -1
 *  when the client is gone. */
int proxy_relay_interim(proxy_req_t *q, proxy_resp_t *r);
/* ---- upgraded connections (proxy_splice.c) ---- */

/** Returned by proxy_upgrade (and on by exchange): the request is PENDING,
 *  a splice thread completes it. */
#define PROXY_UPGRADED 2
/** Takes one of the site's upgrade_max slots for a request that asks to
 *  upgrade (q->slot): 0, or 503 (logged) when all are taken. */
int proxy_upgrade_reserve(proxy_req_t *q);
/** Gives q->slot back (the request did not upgrade). NULL slot: nothing. */
void proxy_upgrade_release(proxy_req_t *q);
/** After the upstream's 101: the client connection switched and handed,
 *  with q->fd and q->slot, to a splice thread of its own that relays both
 *  ways until both end or upgrade_idle_timeout, then completes the
 *  request. PROXY_UPGRADED (the caller returns PENDING and touches the
 *  request no more), or -1 when the switch failed. */
int proxy_upgrade(proxy_req_t *q, const char *left, size_t left_len);
/** Lets upgrades start the spawner of splice threads (GH_GLOBAL_START);
 *  the first upgrade starts it, at base identity (the threads inherit it). */
void proxy_splice_start(void);
/** Stops it, ends and joins every splice (module unload). */
void proxy_splice_stop(void);

/** Builds the upstream request head. 0 or -errno. */
int proxy_build_head(proxy_req_t *q, proxy_buf_t *head, bool *ret_has_body, bool *ret_chunked);

/** A client request as the head builder reads it (proxy_build_head gathers
 *  it; the unit tests give it directly). */
typedef struct proxy_head_in {
  const proxy_site_t *conf;
  const proxy_upstream_t *up;
  const char *site; /* the site's path */
  const char *method, *url;
  int version; /* 10, 11 */
  bool tls;
  const char *addr;                         /* the client's address, or NULL */
  int64_t content_length;                   /* -1: none */
  const char *const *names, *const *values; /* the client's fields */
  size_t n_fields;
  bool has_user;        /* not anonymous */
  const char *ident[PROXY_N_KINDS]; /* identity values by kind (proxy_identity_values) */
  bool keepalive;       /* upstream_keepalive > 0 */
} proxy_head_in_t;

typedef struct proxy_head_out {
  const char *sent_host; /* the Host field sent */
  bool want_upgrade;     /* Upgrade and "Connection: upgrade" went upstream */
  bool te;               /* the client sent Transfer-Encoding */
  bool has_body, chunked;
} proxy_head_out_t;

/** The head from the request line to the identity fields (headers mode).
 *  0, or -EBADMSG (a dot segment in the path: nothing written). */
int proxy_head_fields(const proxy_head_in_t *in, proxy_buf_t *b, proxy_head_out_t *out);
/** The rest: body framing, "Connection: close", the empty line. */
void proxy_head_end(const proxy_head_in_t *in, proxy_buf_t *b, proxy_head_out_t *out);

#endif
