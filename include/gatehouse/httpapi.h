/* httpapi.h: the HTTP Server API — server, listeners, URL groups, request queue, responses. */
#ifndef GATEHOUSE_HTTPAPI_H
#define GATEHOUSE_HTTPAPI_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <gatehouse/common.h>
#include <gatehouse/error.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Model (compare HTTP.sys / HTTP Server API v2):
 *
 *   gh_server_config_init(&cfg); cfg.max_body = ...;
 *   gh_server_new(&cfg, &srv);                        -- the server and its request queue
 *   gh_server_add_listener(srv, "127.0.0.1:8080");   -- "[::1]:8080", "unix:/run/gh.sock"
 *   gh_server_add_url_group(srv, "/files", &props, ctx, &grp);
 *   gh_server_start(srv);                             -- I/O threads start accepting
 *   loop in any number of threads:
 *     gh_server_receive(srv, timeout_ms, &req);       -- like HttpReceiveHttpRequest
 *     ... gh_request_* accessors ...
 *     gh_response_set_status / set_header / send ...  -- like HttpSendHttpResponse
 *     gh_request_complete(req);                       -- req is gone afterwards
 *   gh_server_shutdown(srv, grace_ms); gh_server_free(srv);
 *
 * Threads: two ways to serve, chosen by the application.
 *  - Inline workers (gh_server_run_workers, what gatehoused uses): n library
 *    threads wait as leader/followers on the connection epoll; the one that
 *    gets a connection's event reads, parses, authenticates and runs the
 *    handler on its own thread, with no queue and no hand-off. The I/O
 *    threads then only accept and run the timer scan.
 *  - The request queue (gh_server_receive, as HttpReceiveHttpRequest): the
 *    I/O threads (epoll, edge-triggered) accept, read, parse, apply limits
 *    and timeouts and answer protocol errors themselves; complete requests
 *    (body buffered) are queued and the application's own threads take them.
 * Application code never runs on an I/O thread. A request object is
 * owned by exactly one thread at a time: the one that received it, or any
 * thread it is passed to (the caller synchronises the hand-over). Per
 * connection at most one request is in flight; a pipelined next request is
 * queued only after the previous response completed, so responses stay in
 * order.
 *
 * Memory. Strings returned by gh_request_* are borrowed from the request and
 * live until gh_request_complete(). The gh_conn_info_t of a request lives as
 * long as the request.
 */

/** A server: listeners, URL groups, I/O threads and the request queue. Opaque. */
typedef struct gh_server gh_server_t;
/** A URL group: a path prefix with properties and a user context. Owned by its server. */
typedef struct gh_url_group gh_url_group_t;
/** One received request and its response. Opaque; see gh_request_complete(). */
typedef struct gh_request gh_request_t;

/** Limits and tuning of a server. Initialise with gh_server_config_init();
 *  a zero field means "default". Status codes the server answers by itself
 *  are given per field. Timeouts are enforced with ~250 ms granularity. */
typedef struct gh_server_config {
  unsigned io_threads;           /**< epoll threads; default 1 */
  unsigned max_connections;      /**< open connections; beyond, new ones get a canned
                                      503 and are closed; default 16384 */
  size_t max_uri;                /**< request-target bytes → 414; default 8192 */
  size_t max_header_bytes;       /**< sum of header names+values (+4 each) → 431;
                                      default 16384. Authorization values are not
                                      counted: they are held to the base64 of the
                                      largest max_token_size of any URL group
                                      (gh_auth_settings_t; 64 KiB default) + 64,
                                      → 400 and close */
  unsigned max_header_count;     /**< header lines → 431; default 100 */
  size_t max_body;               /**< buffered request body → 413 and close; default 1 MiB */
  unsigned header_timeout_ms;    /**< first byte to end of headers → 408 and close;
                                      default 10000 */
  unsigned body_timeout_ms;      /**< end of headers to end of body → 408 and close;
                                      default 30000 */
  unsigned keepalive_timeout_ms; /**< idle between requests → silent close; default 60000 */
  unsigned send_timeout_ms;      /**< a blocked response write → close; default 60000 */
  unsigned max_queue;            /**< queued requests; beyond, 503 from the server;
                                      default 4096 */
  const char *server_header;     /**< Server header value; NULL = "gatehouse/VERSION",
                                      "" = none. Copied by gh_server_new(). */
  const char *hsts;              /**< Strict-Transport-Security value added to every
                                      response on a TLS connection (unless the
                                      application set one), e.g. "max-age=31536000";
                                      NULL = none. Never sent over plain HTTP
                                      (RFC 6797). Copied by gh_server_new(). */
} gh_server_config_t;

/** Fills cfg with the defaults above. Any thread. */
GH_EXPORT void gh_server_config_init(gh_server_config_t *cfg);

/** Creates a stopped server. cfg may be NULL (defaults); it is copied.
 *  Returns 0 and *ret_server, or -ENOMEM / -EINVAL. */
GH_EXPORT int gh_server_new(const gh_server_config_t *cfg, gh_server_t **ret_server);

/** Binds a listener before gh_server_start(): "HOST:PORT" (IPv4 or name),
 *  "[V6]:PORT", ":PORT" (all IPv4), "unix:/path" (an existing socket file is
 *  unlinked first; mode 0666). Sockets are SOCK_CLOEXEC|SOCK_NONBLOCK with
 *  SO_REUSEADDR. Returns 0, GH_EPARSE for a bad address, GH_ESTATE once started,
 *  or -errno from socket/bind/listen. Not thread-safe against other
 *  configuration calls on the same server. */
GH_EXPORT int gh_server_add_listener(gh_server_t *server, const char *address);

/** TLS settings of a listener (gh_server_add_tls_listener). Strings are
 *  borrowed for the call; the file names are kept for gh_server_reload_tls(). */
typedef struct gh_tls_config {
  const char *const *cert_files; /**< PEM files: certificate, then its chain; n_certs of
                                      them. The first is the default; with several, the
                                      client's SNI name picks the one whose subjectAltName
                                      DNS names (or CN without SANs) match, "*.x" matching
                                      one label. */
  const char *const *key_files;  /**< PEM private keys, one per certificate (unencrypted);
                                      NULL, or a NULL entry = the key is in the cert file */
  size_t n_certs;                /**< ≥ 1 */
  const char *ciphers;           /**< TLS 1.2 cipher list (OpenSSL syntax); NULL = ECDHE with
                                      AES-GCM or ChaCha20-Poly1305 only */
  const char *ciphersuites;      /**< TLS 1.3 suites; NULL = OpenSSL's default */
  unsigned handshake_timeout_ms; /**< accept to handshake done; 0 = header_timeout_ms */
} gh_tls_config_t;

/** Binds a TLS listener (OpenSSL 3): address as gh_server_add_listener()
 *  (TCP only). TLS 1.2 and 1.3 only, ALPN "http/1.1", SNI certificate
 *  selection, session resumption (TLS 1.3 tickets, TLS 1.2 tickets and
 *  session cache), renegotiation off. Handshakes run non-blocking on the I/O
 *  threads; a failed or timed-out handshake (plain HTTP on the port, a
 *  truncated ClientHello, no shared cipher) closes the connection and is
 *  reported through the log callback. The certificates are loaded now; on
 *  failure errbuf (may be NULL) names the file and the OpenSSL reason.
 *  Returns 0, GH_ECONFIG (certificate/key), GH_EPARSE, GH_ESTATE, -EINVAL or
 *  -errno. Same threading rules as gh_server_add_listener(). */
GH_EXPORT int gh_server_add_tls_listener(gh_server_t *server, const char *address,
                                         const gh_tls_config_t *tls, char *errbuf,
                                         size_t errlen);

/** Re-reads every TLS listener's certificate and key files (e.g. on SIGHUP).
 *  All or nothing: when any file fails to load, every listener keeps its
 *  current certificates, errbuf gets the reason and GH_ECONFIG is returned.
 *  New connections get the new certificates; established ones keep theirs.
 *  Any thread, while the server runs. Returns 0, GH_ECONFIG or -ENOMEM. */
GH_EXPORT int gh_server_reload_tls(gh_server_t *server, char *errbuf, size_t errlen);

/** Log sink of a server: the library never prints, events of the I/O
 *  threads (failed or timed-out TLS handshakes, ...) go here. priority is a
 *  syslog level (LOG_WARNING, LOG_INFO...). Called on I/O and worker threads:
 *  must not block for long. At most 20 lines per second per I/O thread's
 *  connections (whichever thread serves them); beyond, a count of
 *  suppressed lines follows. */
typedef void (*gh_log_cb)(int priority, const char *message, void *arg);

/** Installs the log sink (NULL = none) before gh_server_start(). arg is borrowed. */
GH_EXPORT void gh_server_set_log(gh_server_t *server, gh_log_cb log, void *arg);

/** Local address of listener i, in order of gh_server_add_listener() (useful
 *  after binding port 0). Returns 0, or -ENOENT for a bad index. */
GH_EXPORT int gh_server_listener_address(gh_server_t *server, unsigned i,
                                         struct sockaddr_storage *ret_addr,
                                         socklen_t *ret_len);

/** Per-group properties. Zero fields inherit the server configuration. */
typedef struct gh_url_group_props {
  size_t max_body;          /**< request body limit for this group (413); on a
                                 streamed group (gh_url_group_set_stream_body)
                                 0 means unlimited */
  unsigned body_timeout_ms; /**< body read timeout for this group (408); on a
                                 streamed group, the inactivity limit of one
                                 gh_request_read_body() */
  /* The caller allocates this struct: it never grows (a field added here
   * would be read past the end of an older application's copy). New
   * per-group properties get a setter, like gh_url_group_set_stream_body. */
} gh_url_group_props_t;

/** Streams the group's request bodies (on = 1) before gh_server_start():
 *  requests with a body are delivered right after the header block (and
 *  the auth gate), before the body is read; gh_request_read_body() then
 *  reads it from the connection. A max_body of 0 in the group's props then
 *  means unlimited. Returns 0, GH_ESTATE (started) or -EINVAL. ABI 2.2. */
GH_EXPORT int gh_url_group_set_stream_body(gh_url_group_t *group, int on);

/** Adds a URL group before gh_server_start(). prefix is an absolute path
 *  ("/", "/files"); a trailing slash is ignored. A request goes to the group
 *  with the longest prefix that matches on a segment boundary ("/a" matches
 *  "/a", "/a/x", not "/ab"). If groups exist and none matches, the server
 *  answers 404 itself; if no group was added every request is delivered
 *  with group NULL. props may be NULL; it is copied. user_ctx is borrowed,
 *  returned by gh_url_group_get_user_ctx(). The group lives until
 *  gh_server_free(); *ret_group may be NULL. Returns 0, -EINVAL, GH_EEXISTS
 *  (same prefix), GH_ESTATE (started) or -ENOMEM. */
GH_EXPORT int gh_server_add_url_group(gh_server_t *server, const char *prefix,
                                      const gh_url_group_props_t *props, void *user_ctx,
                                      gh_url_group_t **ret_group);

/** The group's prefix (normalised, no trailing slash except "/"). Lives as long as the group. */
GH_EXPORT const char *gh_url_group_get_prefix(const gh_url_group_t *group);
/** The user context given to gh_server_add_url_group(). Any thread. */
GH_EXPORT void *gh_url_group_get_user_ctx(const gh_url_group_t *group);
/** The group's effective properties (inherited values filled in). */
GH_EXPORT const gh_url_group_props_t *gh_url_group_get_props(const gh_url_group_t *group);

/** Starts the I/O threads. Call once, from the configuring thread. Returns 0,
 *  GH_ESTATE (already started) or -errno. */
GH_EXPORT int gh_server_start(gh_server_t *server);

/** Worker processes: a process may configure a server (listeners, groups,
 *  auth with replay_cache_shared), fork() n children, and run it in each.
 *  The parent must still be single-threaded (never started) when it forks,
 *  and keeps its copy unstarted (it holds the listening sockets, so
 *  connections wait in the backlog while a child is replaced).
 *
 *  gh_server_set_processes, before any listener is added: every TCP
 *  listener is n sockets on the same address with SO_REUSEPORT, so the
 *  kernel spreads connections evenly over the processes (one shared socket
 *  would let whichever process wakes first take a whole burst). Unix
 *  listeners stay one shared socket. Returns 0, GH_ESTATE or -EINVAL.
 *
 *  gh_server_atfork_child, once in child `index` (0..n-1), before
 *  gh_server_start(): the child keeps socket `index` of each TCP listener
 *  and closes the others, gets its own connection epoll instance (one is
 *  shared across fork), and never unlinks a unix socket's file (the
 *  parent's). Everything else a server makes before start is memory,
 *  copied by the fork. Returns 0, GH_ESTATE (already started) or -errno. */
GH_EXPORT int gh_server_set_processes(gh_server_t *server, unsigned n);
GH_EXPORT int gh_server_atfork_child(gh_server_t *server, unsigned index);

/** Waits for the next request. timeout_ms < 0 waits forever, 0 polls.
 *  Returns 0 and *ret_req (owned by the caller until gh_request_complete()),
 *  GH_ETIMEOUT, or GH_ESHUTDOWN once the server is shutting down and the queue
 *  is empty. Any number of threads may call it concurrently; never call it on
 *  an I/O thread (there is none in application code). */
GH_EXPORT int gh_server_receive(gh_server_t *server, int timeout_ms, gh_request_t **ret_req);

/** Application handler for gh_server_run_workers(). It owns req and must call
 *  gh_request_complete(req) exactly once, before returning or later from any
 *  thread. */
typedef void (*gh_request_handler_cb)(gh_request_t *req, void *arg);

/** Serves requests on n (≥1) library threads that call handler(req, arg).
 *  They are inline workers (leader/followers on the server's connection
 *  epoll): each waits for one connection event, reads and parses on its own
 *  thread and runs a complete request there (404 when no URL group matches,
 *  the auth gate, then handler), with no queue and no hand-off; the I/O
 *  threads then only accept and run the timer scan. Requests queued before
 *  the call are drained by the workers; gh_server_receive() has nothing left
 *  to return. Only when the workers' stop eventfd cannot be set up do the n
 *  threads loop gh_server_receive() → handler instead. A handler may block:
 *  it holds its own connection only, the other workers take the other
 *  events. Workers have all asynchronous signals blocked. Returns 0 at once;
 *  the threads run until gh_server_shutdown() joins them. Callable once per
 *  server, before or after gh_server_start(). Returns -EINVAL (n is 0 or
 *  over 1024, handler NULL), GH_ESTATE (second call, or after shutdown) or
 *  -errno (threads that did start keep running until shutdown). */
GH_EXPORT int gh_server_run_workers(gh_server_t *server, unsigned n,
                                    gh_request_handler_cb handler, void *arg);

/** Serves on the calling thread alone, in place of gh_server_start() and
 *  gh_server_run_workers(): no I/O thread and no worker thread; this thread
 *  accepts, runs the timer scan and every request (404, the auth gate,
 *  then handler) inline, one at a time. For a process that serves its own
 *  connections (worker processes, gh_server_set_processes): a single-
 *  threaded process pays no shared-descriptor-table reference in each
 *  system call and wakes no other thread. A handler that blocks stops the
 *  server (accept included) for that time; a handler may still complete
 *  its request later from another thread (gh_request_complete), and waits
 *  (gh_request_wait_fd) work as with inline workers.
 *
 *  Serves until fd (≥ 0; -1 for none) is readable, returning 1 (the
 *  caller reads it: a signalfd, a pipe), or until timeout_ms passed (< 0:
 *  no limit), returning 0; call again to go on. The first call sets the
 *  server up and fixes handler and arg (later calls' are ignored); after
 *  it, gh_server_start() and gh_server_run_workers() return GH_ESTATE.
 *  Only the thread of the first call may serve it and shut it down
 *  (gh_server_shutdown serves while the requests in flight finish; from
 *  another thread it returns GH_ESTATE); gh_server_free, once nobody
 *  serves it, from any thread. Returns 1, 0, -EINVAL (handler NULL,
 *  fd < -1), GH_ESTATE (started with threads, or another thread),
 *  GH_ESHUTDOWN (after shutdown) or -errno. ABI 2.5. */
GH_EXPORT int gh_server_serve(gh_server_t *server, gh_request_handler_cb handler, void *arg,
                              int fd, int timeout_ms);

/** Graceful shutdown: closes listeners (no new connections), closes idle
 *  connections, lets requests already received or being read finish, and
 *  waits up to grace_ms for in-flight requests to complete; then shuts down
 *  the sockets of requests still in application hands (a handler blocked
 *  on a streamed body or an upgraded stream returns), closes all
 *  remaining connections, stops the I/O threads and joins the worker threads
 *  of gh_server_run_workers(). gh_server_receive() returns GH_ESHUTDOWN once
 *  the queue is drained. Returns 0, or GH_ETIMEOUT when requests were still
 *  in flight at the deadline (they are cut off). Call once, from a
 *  non-worker thread. */
GH_EXPORT int gh_server_shutdown(gh_server_t *server, unsigned grace_ms);

/** Frees the server (shutting it down with grace 0 if needed). All requests
 *  must be completed before. Accepts NULL. */
GH_EXPORT void gh_server_free(gh_server_t *server);

/* ---- request ---------------------------------------------------------- */

/** Transport of a connection. */
typedef enum gh_transport { GH_TRANSPORT_TCP = 0, GH_TRANSPORT_UNIX = 1 } gh_transport_t;

/** Connection flags (gh_conn_info_t.flags). */
#define GH_CONN_UNIX 0x1u            /**< a Unix-domain socket (peer credentials valid) */
#define GH_CONN_KEEPALIVE 0x2u       /**< the current request allows keeping the connection open */
#define GH_CONN_HAS_CRED 0x4u        /**< peer_cred / peer_groups are set */
#define GH_CONN_TLS 0x8u             /**< TLS connection (see gh_request_get_tls_info) */

/** Facts about the connection a request arrived on. Borrowed from the request. */
typedef struct gh_conn_info {
  uint64_t id;                    /**< unique per server, never reused */
  gh_transport_t transport;
  unsigned flags;                 /**< GH_CONN_* */
  struct sockaddr_storage peer;   /**< peer address (AF_INET/AF_INET6/AF_UNIX) */
  socklen_t peer_len;
  struct sockaddr_storage local;  /**< local address */
  socklen_t local_len;
  pid_t peer_pid;                 /**< SO_PEERCRED, Unix sockets only */
  uid_t peer_uid;
  gid_t peer_gid;
  const gid_t *peer_groups;       /**< SO_PEERGROUPS (supplementary), Unix only */
  size_t n_peer_groups;
} gh_conn_info_t;

/** Method as sent ("GET", "HEAD", ...). */
GH_EXPORT const char *gh_request_get_method(const gh_request_t *req);
/** The raw request-target as sent (percent-encoded, with query). */
GH_EXPORT const char *gh_request_get_url(const gh_request_t *req);
/** The decoded path: percent-decoded, dot-segments removed, never contains
 *  NUL, "..", or a query; always starts with '/' (or is "*"). */
GH_EXPORT const char *gh_request_get_path(const gh_request_t *req);
/** The raw query after '?' (without it), or NULL when there is none. */
GH_EXPORT const char *gh_request_get_query(const gh_request_t *req);
/** HTTP version as 10 or 11 (major*10+minor). */
GH_EXPORT int gh_request_get_version(const gh_request_t *req);
/** First value of a header (case-insensitive name), or NULL. */
GH_EXPORT const char *gh_request_get_header(const gh_request_t *req, const char *name);
/** Number of request headers, in the order received. */
GH_EXPORT size_t gh_request_get_header_count(const gh_request_t *req);
/** Header i: name and value. Returns 0 or -ENOENT. */
GH_EXPORT int gh_request_get_header_at(const gh_request_t *req, size_t i,
                                       const char **ret_name, const char **ret_value);
/** Total buffered body length in bytes. The whole body is buffered (up to
 *  max_body, else the client got 413) before the request is delivered.
 *  On a stream_body group (a request delivered before its body): the
 *  Content-Length, or SIZE_MAX when the body is chunked. */
GH_EXPORT size_t gh_request_get_body_length(const gh_request_t *req);
/** Reads up to len body bytes from the current position. Returns the number
 *  read, 0 at the end.
 *
 *  Streamed (stream_body group, a request with a body): reads from the
 *  connection on the calling thread, blocking up to the group's
 *  body_timeout_ms of inactivity per call, decoding chunked framing and
 *  honouring Content-Length, at most 64 KiB of the connection per call.
 *  "Expect: 100-continue" is answered with "100 Continue" at the first
 *  call (never when the handler answers without reading). Returns >0, 0 at
 *  the end of the body, GH_ETIMEOUT, GH_ECLOSED (client gone), GH_EPARSE
 *  (bad chunk framing: a chunk-size or trailer line over 4 KiB, a bad size,
 *  a bare LF), GH_ELIMIT (max_body exceeded) or GH_ESTATE (the response
 *  ended); errors are sticky, and after one the connection closes after the
 *  response (which is 413/400/408 if the application sends none). A
 *  request completed with its body partly unread: the server discards up
 *  to 64 KiB of it that already arrived, and if that does not reach the
 *  end, the response says "Connection: close" and the connection closes:
 *  it is never reused with its framing in doubt. */
GH_EXPORT ssize_t gh_request_read_body(gh_request_t *req, void *buf, size_t len);
/** The whole body (borrowed) and its length; NULL when empty (and on a
 *  streamed request: use gh_request_read_body()). */
GH_EXPORT const void *gh_request_get_body(const gh_request_t *req, size_t *ret_len);
/** The matched URL group, or NULL when the server has none. */
GH_EXPORT gh_url_group_t *gh_request_get_url_group(const gh_request_t *req);
/** The connection this request arrived on. */
GH_EXPORT const gh_conn_info_t *gh_request_get_conn_info(const gh_request_t *req);
/** The server. */
GH_EXPORT gh_server_t *gh_request_get_server(const gh_request_t *req);

/** TLS facts of a request's connection. Strings are borrowed from the
 *  connection: valid until gh_request_complete(). */
typedef struct gh_tls_info {
  const char *version;   /**< "TLSv1.3", "TLSv1.2" */
  const char *cipher;    /**< OpenSSL name, e.g. "TLS_AES_256_GCM_SHA384" */
  const char *sni;       /**< server name the client asked for, or NULL */
  const char *alpn;      /**< negotiated protocol ("http/1.1"), or NULL */
  int resumed;           /**< 1 when the session was resumed */
} gh_tls_info_t;

/** Fills *ret_info for a request that came over TLS. Returns 0, or
 *  GH_ENOT_FOUND on a plain connection. The thread owning the request. */
GH_EXPORT int gh_request_get_tls_info(const gh_request_t *req, gh_tls_info_t *ret_info);

/* ---- response --------------------------------------------------------- */

/** More body follows in later sends (default: this send ends the response). */
#define GH_SEND_MORE_DATA 0x1u
/** Close the connection after this response ("Connection: close" if headers
 *  are still unsent). */
#define GH_SEND_DISCONNECT 0x2u

/** Sets status and reason (NULL = standard phrase) before headers are sent.
 *  Default 200. Returns 0, -EINVAL (status outside 100..999 or reason with
 *  CR/LF) or GH_ESTATE (headers already sent). */
GH_EXPORT int gh_response_set_status(gh_request_t *req, int status, const char *reason);
/** Sets a response header, replacing earlier values of the same name
 *  (case-insensitive). value NULL removes it. Strings are copied. Date,
 *  Server, Connection and framing headers are managed by the server:
 *  Content-Length set here is honoured (body is then sent raw); setting
 *  Transfer-Encoding/Connection/Date is refused with -EINVAL. Returns 0,
 *  -EINVAL (CR/LF/NUL or bad name), GH_ESTATE or -ENOMEM. */
GH_EXPORT int gh_response_set_header(gh_request_t *req, const char *name, const char *value);
/** Appends a header line even if the name exists (e.g. several
 *  WWW-Authenticate). Same rules and returns as gh_response_set_header(). */
GH_EXPORT int gh_response_add_header(gh_request_t *req, const char *name, const char *value);

/** Sends body bytes (len may be 0). The first send writes the headers too.
 *  Framing: without GH_SEND_MORE_DATA on the first send, Content-Length is
 *  len; with it and no Content-Length header, HTTP/1.1 uses chunked encoding
 *  and HTTP/1.0 a close-delimited body. A send without GH_SEND_MORE_DATA ends
 *  the response; later sends return GH_ESTATE. For HEAD the body is not
 *  written. Writes go straight to the socket from the calling thread; a
 *  final send whose tail does not fit is handed to the I/O thread, earlier
 *  ones wait (up to send_timeout_ms). Returns 0, GH_ECLOSED (peer gone or
 *  timed out; complete the request anyway), GH_ESTATE or -ENOMEM. */
GH_EXPORT int gh_response_send(gh_request_t *req, const void *data, size_t len, unsigned flags);

/** Like gh_response_send() with len bytes from fd at offset, sent with
 *  sendfile(2). fd is borrowed (dup'ed if the I/O thread has to finish the
 *  send). Returns as gh_response_send(), or -errno from the file. */
GH_EXPORT int gh_response_send_fd(gh_request_t *req, int fd, off_t offset, size_t len,
                                  unsigned flags);

/* ---- ABI 2.2: interim responses, client state, Upgrade ---------------- */

/** Sends a 1xx interim response (100..199 except 101) before the final
 *  one, e.g. 103 Early Hints: hdrs holds n name,value pairs (hdrs[2i],
 *  hdrs[2i+1]; names are tokens, values without CR/LF/NUL; NULL with n 0).
 *  Blocks the calling thread up to send_timeout_ms. Dropped for an HTTP/1.0
 *  client (returns 0). A 100 goes out only on a streamed request whose
 *  client sent "Expect: 100-continue" and before the first body read (it
 *  then replaces the one that read would send), at most once; otherwise it
 *  is dropped (returns 0). Returns 0, -EINVAL, GH_ESTATE (the final head was
 *  sent), GH_ECLOSED or -ENOMEM. The thread owning the request. */
GH_EXPORT int gh_request_send_interim(gh_request_t *req, int status, const char *const *hdrs,
                                      size_t n);

/** 1 when the client closed or reset the connection (a poll of the socket
 *  for POLLRDHUP/POLLHUP/POLLERR without waiting), else 0. A client that
 *  only shut its sending side down (after a complete request) also counts
 *  as gone. The thread owning the request, before the response ended. */
GH_EXPORT int gh_request_client_gone(gh_request_t *req);

/** A connection handed over by gh_request_upgrade(): a byte stream. One
 *  thread at a time (the one owning the request); lives until
 *  gh_request_complete(), which closes the connection. */
typedef struct gh_stream gh_stream_t;

/** Switches protocols: only for an HTTP/1.1 request that carried
 *  "Connection: upgrade" and an Upgrade field, whose status was set to 101
 *  and whose head is unsent (a streamed body must have been read to its
 *  end). Writes the 101 head with the headers set, plus "Connection:
 *  upgrade" and, when the application set none, the request's Upgrade
 *  value; then *ret is the connection as a byte stream, bytes the client
 *  sent after the request head readable first. The connection never goes
 *  back to HTTP: gh_request_complete() closes it. The server's timers no
 *  longer apply; the gh_stream_* calls take their own timeouts. Plain TCP,
 *  Unix and TLS. Returns 0, GH_ESTATE (conditions not met; nothing sent),
 *  GH_ECLOSED or -ENOMEM. */
GH_EXPORT int gh_request_upgrade(gh_request_t *req, gh_stream_t **ret);

/** Reads up to len bytes, waiting up to timeout_ms (< 0: forever). Returns
 *  the count (>0), 0 at EOF, GH_ETIMEOUT or GH_ECLOSED. */
GH_EXPORT ssize_t gh_stream_read(gh_stream_t *s, void *buf, size_t len, int timeout_ms);
/** Writes all len bytes, waiting up to timeout_ms (< 0: forever) in all.
 *  Returns 0, GH_ETIMEOUT or GH_ECLOSED. */
GH_EXPORT int gh_stream_write(gh_stream_t *s, const void *buf, size_t len, int timeout_ms);
/** The socket, for poll(POLLIN) only (never read or write it directly). */
GH_EXPORT int gh_stream_get_fd(const gh_stream_t *s);
/** > 0 when bytes are readable without waiting (left over after the head,
 *  or buffered TLS records): poll the fd only when it is 0. */
GH_EXPORT size_t gh_stream_pending(const gh_stream_t *s);
/** Shuts the sending side down (TLS close_notify, then FIN). Returns 0 or
 *  GH_ECLOSED. */
GH_EXPORT int gh_stream_shutdown_write(gh_stream_t *s);

/* ---- ABI 2.3: waiting for a file descriptor without holding a thread --- */

/** gh_request_wait_fd() events and results. */
#define GH_WAIT_IN 0x1u  /* readable (or hung up / in error) */
#define GH_WAIT_OUT 0x2u /* writable */
#define GH_WAIT_READY 0   /* the fd reported an event: look (non-blocking); it */
                          /* may be a spurious wake-up, then wait again */
#define GH_WAIT_TIMEOUT 1 /* timeout_ms passed first, or the server stops */
                          /* past its grace (the connection is then cut) */

/** Called once per successful gh_request_wait_fd(), on an inline worker
 *  thread at the server's base identity, which then owns req as the
 *  handler did: it may send, complete, or wait again. */
typedef void (*gh_request_wait_cb)(gh_request_t *req, int result, void *arg);

/** Hands req back to the server until fd has one of `events` (GH_WAIT_IN,
 *  GH_WAIT_OUT) or timeout_ms passes (< 0: no limit; the server's timer
 *  scan gives it a granularity of 250 ms): the calling thread returns and
 *  serves other connections meanwhile, and cb(req, result, arg) runs later
 *  on whichever worker gets the event. After 0 the caller must not touch
 *  req again (cb may already be running) and must keep fd open until cb.
 *  The fd joins the server's connection epoll, one-shot, and stays
 *  registered (disarmed) after cb until it is closed, so a connection kept
 *  in a pool is re-armed with one system call. Only with
 *  gh_server_run_workers() (inline workers) or gh_server_serve():
 *  GH_EUNSUPPORTED otherwise,
 *  and for an upgraded or completed request GH_ESTATE; -EINVAL; -errno
 *  from epoll_ctl. The thread owning the request. */
GH_EXPORT int gh_request_wait_fd(gh_request_t *req, int fd, unsigned events, int timeout_ms,
                                 gh_request_wait_cb cb, void *arg);
/** ABI 2.4: gh_request_wait_fd() for a descriptor that is waited on again
 *  and again (a pooled upstream connection): fd stays in the connection
 *  epoll, edge-triggered, across waits, so a wait costs no system call.
 *  key is the caller's name for the connection behind fd (nonzero, never
 *  given to another descriptor: a counter of connections): a wait on the
 *  same fd number with another key registers it anew (the kernel forgot
 *  the old one when it was closed). Wake-ups may be spurious (an event
 *  that came while fd sat unused is reported to its next wait). key 0:
 *  gh_request_wait_fd(). Same rules and returns otherwise. */
GH_EXPORT int gh_request_wait_kept(gh_request_t *req, int fd, uint64_t key, unsigned events,
                                   int timeout_ms, gh_request_wait_cb cb, void *arg);
/** 1 when gh_request_wait_fd() can be used for req's server, else 0. */
GH_EXPORT int gh_request_can_wait(const gh_request_t *req);

/** ABI 2.4: size bytes of zeroed memory that live as long as req: freed
 *  (recycled) when req is released, on whichever thread that happens, so
 *  an object that begins on one worker and ends on another costs no
 *  cross-thread free. NULL when out of memory. The thread owning req. */
GH_EXPORT void *gh_request_alloc(gh_request_t *req, size_t size);

/** Ends the request: finishes the response if needed (an unsent response
 *  goes out with its status and an empty body; if neither status nor body
 *  was given the client gets 500), releases the request and lets the
 *  connection continue with its next request. req is invalid afterwards.
 *  Any thread; exactly once per received request. Returns 0 or GH_ECLOSED
 *  (the response could not be delivered). */
GH_EXPORT int gh_request_complete(gh_request_t *req);

#ifdef __cplusplus
}
#endif

#endif
