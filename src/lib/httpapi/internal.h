/* internal.h: structures shared by the HTTP core's files (server, event threads, connections, requests). */
#ifndef GH_HTTPAPI_INTERNAL_H
#define GH_HTTPAPI_INTERNAL_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/uio.h>

#include <gatehouse/httpapi.h>

#include "httpapi/framing.h"
#include "httpapi/hooks.h"
#include "httpapi/http_parse.h"
#include "httpapi/tls.h"
#include "util/pool.h"

/* First byte of every object whose pointer is an epoll cookie. */
enum {
  GH__KIND_CONN = 1,
  GH__KIND_LISTENER = 2,
  GH__KIND_WAKE = 3,
  GH__KIND_CEP = 4,
  GH__KIND_STOP = 5,
  GH__KIND_DUE = 6,
  GH__KIND_KICK = 7,
  GH__KIND_CALLER = 8
};

/* A request's wait on a file descriptor (gh_request_wait_fd), in
 * gh__conn_t.wait: (generation << 2) | one of these. The connection's owner
 * stays WORKER throughout; the word says who may run the callback. ARMING:
 * the waiting thread is registering the fd (the fd's event may already take
 * it, the scan may not: the fd is not known to be registered yet); WAITING:
 * registered, the fd's event or the scan (deadline) takes it; a thread takes
 * it with a CAS to (same generation, NONE) and then owns the request. The
 * generation, bumped by every wait, makes a late CAS of an earlier wait fail. */
enum { GH__WAIT_NONE = 0, GH__WAIT_ARMING = 1, GH__WAIT_WAITING = 2 };

/* Who may touch a connection's mutable fields (hand-over with release/acquire).
 * IO: at rest, armed in the connection epoll; the thread that receives its
 * event (or the timer scan) claims it with a CAS IO -> BUSY. BUSY: one loop
 * thread reads, parses, writes. WORKER: a request is in application hands.
 * FREE: the object sits in the server's connection pool (never freed before
 * gh_server_free, so a late epoll event's pointer always names a connection
 * object whose CAS simply fails). */
enum { GH__OWN_IO = 0, GH__OWN_WORKER = 1, GH__OWN_BUSY = 2, GH__OWN_FREE = 3 };

/* Connection states (meaningful while an event thread owns it). An event
 * thread is one that processes connection events: an inline worker of
 * gh_server_run_workers(), or the I/O thread in queue mode (the walk of one
 * request: docs/internals/request-walk.md). */
enum {
  GH__CS_IDLE,      /* between requests, keep-alive deadline */
  GH__CS_READING,   /* reading a request; header or body deadline */
  GH__CS_WORKER,    /* a request is in a worker's hands */
  GH__CS_WRITING,   /* an event thread finishes a response write */
  GH__CS_LINGER,    /* write side shut; discarding input until EOF or deadline */
  GH__CS_CLOSE,     /* to be closed at the next event or scan */
  GH__CS_HANDSHAKE, /* TLS handshake in progress; handshake deadline */
};

#define GH__LINGER_MS 1000
#define GH__SCAN_MS 250
#define GH__SPARE_MS 20        /* spare workers: how soon one takes over from blocked ones */
#define GH__SPARE_IDLE_MS 1000 /* ... while the server had an event this recently */
#define GH__BATCH 16           /* inline workers: events per epoll_wait (batch.c) */
#define GH__RING 1024          /* ... the shared ring of events taken but not yet run */
#define GH__KICK_MIN 4         /* ... a batch leaving this many wakes a sleeping worker */
#define GH__SEND_HANDOFF 1

typedef struct gh__io gh__io_t;
typedef struct gh__conn gh__conn_t;

/* Per-thread state of a thread that processes connection events: the I/O
 * thread (requests go to the queue) or an inline worker of
 * gh_server_run_workers() (requests run on the same thread). */
typedef struct gh__loop {
  gh_server_t *srv;
  bool worker; /* run complete requests inline */
  char *rbuf;
  size_t rbuf_size;
  uint64_t now;
  gh_request_t *batch_head, *batch_tail;
  unsigned batch_n;
} gh__loop_t;

typedef struct gh__listener {
  uint8_t kind;
  int fd;
  int *copies;       /* worker processes: n_copies SO_REUSEPORT sockets (fd is one) */
  unsigned n_copies; /* until gh_server_atfork_child keeps this process's one */
  char *unix_path;   /* unlinked at close (NULL in a worker process: not its path) */
  struct sockaddr_storage addr;
  socklen_t addr_len;
  gh__tls_listener_t *tls; /* NULL: plain */
} gh__listener_t;

struct gh__io {
  uint8_t kind; /* GH__KIND_WAKE: the eventfd's cookie */
  gh_server_t *srv;
  unsigned idx;
  int epfd;
  int wakefd;
  pthread_t thread;
  bool started;
  atomic_bool exit;
  pthread_mutex_t lock; /* conns list (accept, close, scan) */
  bool lock_init;
  gh__conn_t *conns; /* connections this thread accepted */
  gh__loop_t loop;   /* this thread's own event processing */
  uint64_t now;
  uint64_t next_scan;
  bool accept_paused;
  bool listeners_dropped; /* stopping: this thread no longer touches listeners */
  bool cep_nested;        /* the connection epoll is in this thread's set */
  pthread_mutex_t log_lock;
  uint64_t log_window; /* log rate limit: second of the current window */
  unsigned log_count, log_dropped;
};

struct gh__conn {
  uint8_t kind;          /* set once; never reset (late epoll events read it) */
  atomic_int owner;      /* set once per incarnation; the rest is reset on reuse */
  _Atomic uint32_t wait; /* GH__WAIT_* with its generation; never reset */
  atomic_bool missed;    /* an event came while the connection was owned (conn.c) */
  uint8_t state;
  bool quiet;       /* the owner took the connection out of the epoll (gh__conn_quiet) */
  bool dead;        /* closed */
  bool close_after; /* WRITING: close once the output is flushed */
  atomic_int refs;  /* epoll registration + request in flight + releasing thread */
  int fd;
  uint32_t armed; /* events the state waits for (the scan re-arms with them) */
  gh__io_t *io;
  gh_server_t *srv;
  gh__conn_t *prev, *next, *scan_next, *pool_next, *due_next;
  int due_result;             /* GH_WAIT_TIMEOUT (the scan) or GH_WAIT_READY (deferred event) */
  gh_request_wait_cb wait_cb; /* the wait's callback, request and argument */
  gh_request_t *wait_req;
  void *wait_arg;
  _Atomic uint64_t deadline; /* monotonic ms; read by the scan before claiming */
  gh__http_parser_t parser;
  gh_request_t *req; /* request being read (I/O side) */
  char *pending;     /* bytes after a dispatched request (pipelining) */
  size_t pending_len;
  /* output an event thread finishes: out, then file, then out2 */
  char *out;
  size_t out_len, out_off;
  int out_fd;
  off_t out_foff;
  size_t out_fleft;
  char *out2;
  size_t out2_len, out2_off;
  gh_conn_info_t info;
  gid_t *groups;
  void *ext_state;
  void (*ext_state_free)(void *);
  /* TLS (owner-only, like the rest: never two threads on one SSL) */
  SSL *ssl;
  gh__tls_store_t *tls_store;
  unsigned char *cbt; /* channel binding, computed on first use */
  size_t cbt_len;
  char *alpn;
  /* info's addresses as text, formatted on first use (gh__request_get_addrs) */
  bool addr_done;
  int addr_rport, addr_lport;
  char addr_remote[INET6_ADDRSTRLEN];
  char addr_local[INET6_ADDRSTRLEN];
};

struct gh_url_group {
  gh_server_t *srv;
  char *prefix;
  size_t prefix_len;
  gh_url_group_props_t props;
  bool max_body_unset; /* props.max_body was 0: the server's, or none when streamed */
  bool stream_body;    /* gh_url_group_set_stream_body */
  void *user_ctx;
  void *auth_slot;
  void (*auth_slot_free)(void *);
  unsigned metrics_site; /* its entry in the metrics site table */
};

struct gh_request {
  gh_server_t *srv;
  gh__conn_t *conn;
  gh_request_t *next;
  gh__pool_t *pool;
  gh__http_msg_t msg;
  gh_url_group_t *group;
  char *path;
  char *query;
  size_t body_pos;
  uint64_t t0_ns; /* dispatched (the request read whole): latency starts */
  /* response */
  int status;
  const char *reason;
  bool status_set;
  bool any_send;
  bool headers_sent;
  bool finished;
  bool failed;
  bool released; /* connection handed back (re-armed, at rest) */
  bool keep_alive;
  bool app_length;
  bool counted; /* in the metrics (request.c count_request) */
  gh__frame_t frame;
  gh__resp_hdr_t *rh;
  size_t n_rh, cap_rh;
  void *auth_slot;
  void (*auth_slot_free)(void *);
  /* streamed body (stream_body group): read from the connection (stream.c) */
  bool streamed;       /* delivered after the header block */
  bool body_done;      /* the parser reached the end of the message */
  bool body_touched;   /* the application read from it */
  bool continue_sent;  /* "100 Continue" written (or not needed) */
  int body_err;        /* sticky error of a streamed read */
  gh_stream_t *stream; /* gh_request_upgrade() */
};

struct gh_stream {
  gh__conn_t *conn;
};

/* A kept descriptor's slot (wait.c, gh_request_wait_kept), by fd number. */
#define GH__SLOT_BIT (UINT64_C(1) << 47) /* its epoll cookie: this bit and the fd */
#define GH__SLOT_CHUNK 1024
#define GH__SLOT_CHUNKS 1024 /* descriptors below 2^20 can be kept */
typedef struct {
  _Atomic uint64_t waiter; /* the waiting request's cookie, 0: none */
  atomic_bool missed;      /* an event came with no waiter */
  uint64_t key;            /* the registered descriptor's key (0: none); its owner's */
  uint32_t mask;           /* its epoll events */
} gh__slot_t;

struct gh_server {
  gh_server_config_t cfg;
  char *server_header;
  gh__http_limits_t limits;
  gh__listener_t **listeners;
  unsigned n_listeners;
  unsigned listener_copies; /* gh_server_set_processes: sockets per TCP listener */
  gh_url_group_t **groups;
  const char **gprefixes;
  size_t *glens;
  size_t n_groups;
  gh__io_t *ios;
  unsigned n_ios;
  int cepfd;                  /* connection epoll, shared by all event threads */
  uint8_t cep_kind;           /* GH__KIND_CEP: cepfd's cookie in the I/O threads' sets */
  int wstopfd;                /* eventfd in cepfd: inline workers stop */
  uint8_t wstop_kind;         /* GH__KIND_STOP */
  atomic_bool inline_workers; /* gh_server_run_workers(): requests run on the event thread */
  int wduefd;                 /* eventfd in cepfd (one-shot): waits whose deadline passed */
  uint8_t wdue_kind;          /* GH__KIND_DUE */
  atomic_bool waits_ok;       /* inline workers and wduefd: gh_request_wait_fd works */
  atomic_bool cut;            /* shutdown past its grace: waits are called back now */
  /* inline workers beyond the CPUs park (server.c "spare workers"): at most
   * listen_max of them wait on the connection epoll at once */
  atomic_uint listening; /* inline workers in (or entering) epoll_wait */
  unsigned listen_max;   /* the CPUs (at least 2) */
  bool spares;           /* more inline workers than listen_max (set before they start) */
  pthread_mutex_t sparelock;
  pthread_cond_t sparecv;
  unsigned parked;               /* under sparelock */
  atomic_uint n_parked;          /* the same, read without the lock */
  _Atomic uint64_t last_busy_ms; /* a worker took an event (updated every 500 ms at most) */
  unsigned release;              /* under sparelock: parked workers let go */
  /* event batches (batch.c) */
  struct epoll_event *ring; /* GH__RING slots; NULL: one event per epoll_wait */
  atomic_bool batching;     /* ring and kick eventfd ready (read by the I/O threads) */
  pthread_mutex_t rlock;
  unsigned rhead, rcount; /* under rlock */
  uint64_t rpops;         /* under rlock: events taken from the ring */
  uint64_t tick_pops;     /* under rlock: rpops at the I/O threads' last tick */
  bool tick_waiting;      /* under rlock: events were waiting at that tick */
  uint64_t tick_ms;       /* under rlock: that tick's time */
  atomic_uint rn;         /* rcount, read without the lock */
  atomic_uint rused;      /* events in the ring plus room reserved by epoll_waits */
  int kickfd;             /* eventfd in cepfd (edge-triggered): a worker, look at the ring */
  uint8_t kick_kind;      /* GH__KIND_KICK */
  /* gh_server_serve: the caller's thread is the only one (server.c "serving
   * alone"): listeners, the wake eventfd and the caller's fd are in cepfd */
  bool solo;
  pthread_t solo_thread; /* the one thread that serves it (and shuts it down) */
  int caller_fd;      /* the caller's descriptor in cepfd (-1: none) */
  uint8_t caller_kind; /* GH__KIND_CALLER */
  _Atomic(gh__slot_t *) slots[GH__SLOT_CHUNKS]; /* kept descriptors (wait.c), made on use */
  pthread_mutex_t wdlock;
  gh__conn_t *wdue; /* taken waits for a worker to call back (due_next) */
  atomic_bool wstop;
  pthread_mutex_t cplock; /* connection pool */
  gh__conn_t *conn_pool;
  bool started;
  atomic_bool stopping;
  bool shut_down;
  /* request queue */
  pthread_mutex_t qlock;
  pthread_cond_t qcond;
  gh_request_t *qhead, *qtail;
  atomic_uint qlen;
  unsigned qwaiters;
  bool qclosed;
  /* recycled request objects */
  pthread_mutex_t flock;
  gh_request_t *free_reqs;
  unsigned n_free;
  atomic_uint n_conns;
  atomic_uint_fast64_t next_conn_id;
  atomic_int inflight;
  atomic_uint ios_dropped_listeners;
  /* worker pool */
  pthread_t *wthreads;
  unsigned n_workers;
  gh__loop_t *wloops; /* inline workers' loops (read buffers), n_wloops of them */
  unsigned n_wloops;
  gh_request_handler_cb handler;
  void *handler_arg;
  /* hooks */
  gh__request_gate_cb gate;
  void *gate_arg;
  gh__response_hook_cb resp_hook;
  void *resp_hook_arg;
  void *auth_state;
  void (*auth_state_free)(void *);
  char *hsts;
  gh_log_cb log;
  void *log_arg;
};

/* request.c (request objects; the accessors are public or in hooks.h) */
/** A request object for srv from its free list, or a new one; NULL: no memory. */
gh_request_t *gh__request_alloc(gh_server_t *srv);
/** Releases the per-request slot, resets the pool and keeps the object on the
 *  free list (at most 256; larger buffers dropped). NULL is a no-op. */
void gh__request_recycle(gh_request_t *req);
/** Frees the request free list (gh_server_free). */
void gh__request_pool_free(gh_server_t *srv);

/* server.c */
/** A worker is about to block on a socket (a slow client): when no inline
 *  worker is left waiting on the connection epoll, a spare one is let go so
 *  the other connections are not left unread. Cheap; any thread. */
void gh__server_may_block(gh_server_t *srv);
/* batch.c */
/** The ring and the kick eventfd (gh_server_run_workers, inline mode). */
int gh__batch_init(gh_server_t *srv);
void gh__batch_free(gh_server_t *srv);
/** Ring room for one epoll_wait's events beyond the first (0: none). */
unsigned gh__batch_reserve(gh_server_t *srv);
/** n events into the ring (n <= reserved); the unused room is given back. */
void gh__batch_push(gh_server_t *srv, const struct epoll_event *evs, unsigned n, unsigned reserved);
/** The oldest event in the ring, if any. */
bool gh__batch_pop(gh_server_t *srv, struct epoll_event *ev);
/** Wakes one worker waiting on the connection epoll. */
void gh__batch_kick(gh_server_t *srv);
/** The I/O threads' tick: events left in the ring since the last tick get a worker woken. */
void gh__batch_check(gh_server_t *srv, uint64_t now);
/** The timer scan: the same check (the fallback for handlers that block
 *  without saying so, e.g. a CGI script or PAM). */
void gh__server_spare_check(gh_server_t *srv);
/* conn.c */
/** The owner of a connection handed to the application for long (an
 *  upgraded stream, a streamed body) stops its events until the release. */
void gh__conn_quiet(gh__conn_t *conn);
/** Inline worker: 404/auth gate, then the handler, on the calling thread. */
void gh__server_run_inline(gh_server_t *srv, gh_request_t *req);
/** Appends a batch of requests to the queue and wakes workers. */
void gh__queue_push_batch(gh_server_t *srv, gh_request_t *head, gh_request_t *tail, unsigned n);
/** Parses an address, creates, binds and listens (exposed for tests). */
/** Binds and listens. copies > 1 (TCP only): that many sockets on the same
 *  address with SO_REUSEPORT (the kernel spreads connections over them),
 *  one per worker process; fd is the first. */
int gh__listener_open(const char *address, unsigned copies, gh__listener_t **ret_listener);
void gh__listener_close(gh__listener_t *l);
/** In worker process `index`: keeps that copy of a TCP listener, closes
 *  the others, and forgets a unix socket's path (not unlinked by this
 *  process). */
void gh__listener_keep_copy(gh__listener_t *l, unsigned index);

/* stream.c (worker side: streamed bodies, interim responses, Upgrade) */
/** Before the head of the final response: an unread streamed body is
 *  drained (up to 64 KiB already arrived) when final; if its end is still
 *  not reached the connection is not kept. */
void gh__request_body_settle(gh_request_t *req, bool final);
/** gh_request_read_body() of a streamed request. */
ssize_t gh__request_read_streamed(gh_request_t *req, void *buf, size_t len);
/** The status a failed streamed read answers when the application sent
 *  nothing (413, 400, 408), or 0. */
int gh__request_body_status(const gh_request_t *req);

/* conn.c (I/O side and the worker-side hand-back) */
void *gh__io_main(void *arg);
/** The epoll set io's listeners are in: the connection epoll when the
 *  server is served alone (gh_server_serve), else the I/O thread's own. */
static inline int gh__io_listen_epfd(const gh__io_t *io)
{
  return io->srv->solo ? io->srv->cepfd : io->epfd;
}
/** Accepts what the listener has (up to 64 connections); io->now is the time. */
void gh__io_accept(gh__io_t *io, gh__listener_t *l);
/** The timer scan (deadlines, and while stopping every connection at rest). */
void gh__io_scan(gh__io_t *io);
/** Claims and processes one event of the connection epoll (any event thread). */
void gh__conn_event(gh__loop_t *lp, gh__conn_t *c, uint32_t events);
/** Harvests the connection epoll without blocking (queue mode, I/O thread). */
void gh__loop_harvest(gh__loop_t *lp, int timeout_ms, int max);
/* wait.c (gh_request_wait_fd) */
/** Inline worker: the event of a waited fd (its cookie: connection and
 *  generation; top 16 bits nonzero, unlike every other cookie). */
void gh__conn_wait_event(uint64_t cookie);
/** A kept descriptor's event (cookie GH__SLOT_BIT | fd): its waiter is
 *  called back (defer: queued for a worker, the harvest's window). */
void gh__wait_slot_event(gh_server_t *srv, uint64_t cookie, bool defer);
/** Frees the slots (gh_server_free). */
void gh__slots_free(gh_server_t *srv);
/** True when c's address fits a wait cookie (48 bits, GH__SLOT_BIT clear). */
bool gh__conn_wait_cookie_ok(const gh__conn_t *c);
/** The scan, under the I/O list lock: takes c's wait when it is due (or
 *  cut: the server stops past its grace) and queues it for a worker. */
bool gh__conn_wait_due(gh__conn_t *c, uint64_t now, bool cut);
/** After a scan queued waits: wakes one worker for them. */
void gh__conn_due_signal(gh_server_t *srv);
/** Queue mode's harvest took a wait's event (the switch to inline workers
 *  is under way): the wait is taken and queued for a worker as READY. */
void gh__conn_wait_defer(gh_server_t *srv, uint64_t cookie);
/** The same window took the due eventfd's one-shot event: re-armed. */
void gh__conn_due_signal_rearm(gh_server_t *srv);
/** Inline worker: the due-list eventfd fired: calls back the waits the
 *  scan took at their deadline. */
void gh__conn_run_due(gh_server_t *srv);
/** Frees the connection pool (gh_server_free). */
void gh__conn_pool_free(gh_server_t *srv);
void gh__io_wake(gh__io_t *io);
void gh__conn_ref(gh__conn_t *conn);
void gh__conn_unref(gh__conn_t *conn);
/** Worker side: writes pre iovecs, then flen bytes of fd from foff, then post
 *  iovecs. Non-final writes wait for the socket; a final write whose tail
 *  would block is copied into the connection (returns GH__SEND_HANDOFF; call
 *  gh__conn_release_writing()). Returns 0, GH__SEND_HANDOFF, GH_ECLOSED or
 *  -errno (file). */
int gh__conn_send(gh__conn_t *conn, struct iovec *pre, int npre, int fd, off_t foff, size_t flen,
                  struct iovec *post, int npost, bool final);
/** Worker side: writes len bytes, waiting for the socket until deadline
 *  (monotonic ms). Returns 0, GH_ETIMEOUT or GH_ECLOSED. */
int gh__conn_write(gh__conn_t *conn, const void *buf, size_t len, uint64_t deadline);
/** Worker side, response fully written: keep-alive or close, hand back. */
void gh__conn_release_done(gh__conn_t *conn, bool keep_alive);
/** Worker side, after GH__SEND_HANDOFF. */
void gh__conn_release_writing(gh__conn_t *conn, bool keep_alive);
/** Worker side, after a failure: the next event thread to claim it closes it. */
void gh__conn_release_close(gh__conn_t *conn);
void gh__io_close_all(gh__io_t *io);
/** Shutdown past its grace: shuts down (SHUT_RDWR) the sockets of
 *  connections in application hands, so blocked handlers return. */
void gh__io_cut_worker_conns(gh__io_t *io);
/** After every event thread stopped: closes connections at rest, shuts down
 *  those in application hands. */
void gh__io_stop_conns(gh__io_t *io);
/** Any event thread: a rate-limited line (per I/O thread) to the server's log callback. */
void gh__io_log(gh__io_t *io, int priority, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
