/* fault_common.h: the harness the allocation-failure walks share: fixture users and files, loopback clients (TCP, Unix as carol), response parsing, walk statistics and the walk loop over one server iteration. */
#ifndef GH_TEST_FAULT_COMMON_H
#define GH_TEST_FAULT_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <gatehouse/httpapi.h>

#define CLIENT_TIMEOUT_MS 3000
#define MAX_N 20000

typedef struct walk_stats {
  long iterations;
  long setup_failed; /* the server (or pipeline) API refused cleanly (-ENOMEM) before serving */
  long served_ok;    /* exactly the right response */
  long error_status; /* 400/500/503 */
  long closed;       /* connection closed before a full response */
  long recovered;    /* post-failure requests served correctly */
  /* library bugs the pipeline walk found (counted, printed; fatal with GH_FAULT_STRICT=1) */
  long bug_pam_enomem_401; /* right Basic password, 401 after an ENOMEM inside the PAM conversation */
  long bug_user_vars;      /* whoami 200 with the right user but uid/level/groups missing */
} walk_stats_t;

typedef struct resp {
  int status;
  char body[1024];
} resp_t;

/* alice, bob, carol: their accounts in the nss_wrapper fixture */
typedef struct fault_user {
  const char *name;
  uid_t uid;
  gid_t gid;
} fault_user_t;
#define FAULT_N_USERS 3
extern const fault_user_t fault_users[FAULT_N_USERS];

extern bool fault_have_root;
extern char fault_unix_path[100]; /* <fixture>/gh.sock */
extern char fault_files_dir[300]; /* <fixture>/files: <user>.txt, 0600, owned by the user */

uid_t fault_uid_of(const char *user);
gid_t fault_gid_of(const char *user);
/* Writes text to path (created with mode); exits 99 on failure. */
void fault_write_text(const char *path, const char *text, mode_t mode);
/* After fx_init: fault_have_root, fault_unix_path; as root the fixture files
 * and gh_sec_init. Returns 0, or 99 (main's exit code) on failure. */
int fault_setup(void);

/* ---- the client side ---------------------------------------------------- */

/* Reads from fd until want responses were parsed, EOF, or the deadline.
 * Returns the number of complete responses; *ret_eof tells whether the
 * server closed; *ret_timeout whether the deadline passed first. */
int fault_read_responses(int fd, resp_t *out, int want, bool *ret_eof, bool *ret_timeout);
/* A TCP connection to 127.0.0.1:port, or -1. */
int fault_connect_tcp(int port);
/* A connection to the Unix listener made with carol's euid (SO_PEERCRED
 * records the connecting thread's credentials), or -1. */
int fault_connect_peer(void);

/* Judges response i of an exchange against ctx; counts it in st. */
typedef void fault_judge_fn(const resp_t *r, int i, const void *ctx, walk_stats_t *st, long n);
/* What request i of an exchange was, for the timeout message (may be NULL). */
typedef const char *fault_label_fn(int i, const void *ctx);

/* Sends raw (pipelined requests) in one write, reads want responses and
 * judges them. A failed send or an early close counts as closed; no response
 * and no close within CLIENT_TIMEOUT_MS fails the test. */
void fault_exchange(int fd, const char *raw, size_t len, int want, fault_judge_fn *judge,
                    fault_label_fn *label, const void *ctx, walk_stats_t *st, long n);

/* ---- the walk ----------------------------------------------------------- */

typedef struct fault_walk {
  /* before the server (may be NULL): what *arg is to the handler */
  int (*setup)(void **arg);
  /* after the server's shutdown (may be NULL) */
  void (*teardown)(void *arg);
  int (*add_groups)(gh_server_t *srv);
  gh_request_handler_cb handler;
  /* one round of clients on fresh connections */
  void (*clients)(int port, walk_stats_t *st, long n);
  /* how many of those a recovered server serves exactly */
  long (*recover_want)(void);
  /* served alone (gh_server_serve) on the walk's thread, the clients on
   * another one; else started with 2 inline workers */
  bool alone;
} fault_walk_t;

/* One iteration with every allocation after the first n failing (or only the
 * nth, once): set-up (-ENOMEM or fail), a TCP listener and, as root, the Unix
 * one, the clients, then with the allocator reset a round that must be served
 * exactly. Returns true when the iteration ran without any injected failure. */
bool fault_run_once(const fault_walk_t *w, long n, bool once, walk_stats_t *st);
/* The walk: N = GH_FAULT_START_N (0) ... until the first clean iteration,
 * failing at GH_FAULT_MAX_N (MAX_N). Returns that N. */
long fault_walk(const fault_walk_t *w, bool once, walk_stats_t *st);

#endif
