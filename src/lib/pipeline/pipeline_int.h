/* pipeline_int.h: internal structures of the module pipeline and its seams to httpapi and sec. */
#ifndef GH_PIPELINE_INT_H
#define GH_PIPELINE_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <gatehouse/authinfo.h>
#include <gatehouse/module.h>

#include "util/pool.h"

/* ---- seams ------------------------------------------------------------ */

/* Facts about a request, filled once by the request source (borrowed from it
 * for the request's lifetime). */
typedef struct gh__pl_reqinfo {
  const char *method;
  const char *url;
  const char *path;
  const char *query; /* NULL when none */
  int version;
  int64_t content_length;
  const char *remote_addr; /* text */
  int remote_port;
  const char *local_addr;
  int local_port;
  bool is_unix;
  bool has_peer_creds;
  pid_t peer_pid;
  uid_t peer_uid;
  gid_t peer_gid;
  bool is_tls;
  const char *host;            /* Host header without port, or NULL */
  const gh_auth_info_t *auth;  /* NULL = anonymous, no auth configured */
} gh__pl_reqinfo_t;

/* The transport a pipeline request runs over (httpapi's gh_request_t in the
 * library; a fake in unit tests). All calls come from the thread running the
 * request. */
typedef struct gh__pl_source_ops {
  /* fills info, which the caller zeroed */
  int (*describe)(void *src, gh__pl_reqinfo_t *info);
  size_t (*header_count)(void *src);
  int (*header_at)(void *src, size_t i, const char **ret_name, const char **ret_value);
  ssize_t (*read_body)(void *src, void *buf, size_t len);
  /* reason: NULL, or borrowed until complete (the context's pool) */
  int (*set_status)(void *src, int status, const char *reason);
  int (*add_header)(void *src, const char *name, const char *value);
  /* optional: add_header for a field the response checked (name: name_len
   * tchar, value: value_len bytes without CR, LF or NUL, each NUL-terminated
   * at its length), borrowed from the context's pool until complete */
  int (*add_header_n)(void *src, const char *name, size_t name_len, const char *value,
                      size_t value_len);
  int (*send)(void *src, const void *data, size_t len, unsigned flags);
  int (*send_fd)(void *src, int fd, off_t offset, size_t len, unsigned flags);
  /* ends the request; src is gone afterwards */
  int (*complete)(void *src);
  /* optional: a FILE ccache with the delegated credentials owned by uid/gid */
  const char *(*delegated_ccache)(void *src, uid_t uid, gid_t gid);
  /* optional (ABI 2.2; NULL: GH_EUNSUPPORTED, client_gone 0): 1xx, client
   * state, Upgrade (status and headers already given) and the byte stream
   * it returns */
  int (*send_interim)(void *src, int status, const char *const *hdrs, size_t n);
  int (*client_gone)(void *src);
  int (*upgrade)(void *src, void **ret_stream);
  ssize_t (*stream_read)(void *stream, void *buf, size_t len, int timeout_ms);
  int (*stream_write)(void *stream, const void *buf, size_t len, int timeout_ms);
  int (*stream_get_fd)(const void *stream);
  size_t (*stream_pending)(const void *stream);
  int (*stream_shutdown_write)(void *stream);
  /* optional: the request's in-process MEMORY ccache (delegated or S4U credentials) */
  const char *(*delegated_mem_ccache)(void *src);
  /* optional (ABI 2.3; NULL: GH_EUNSUPPORTED): the request waits for fd in
   * the server (cb(result, arg) later on a worker thread that then owns
   * src); can_wait says whether wait_fd works for this source */
  int (*can_wait)(void *src);
  int (*wait_fd)(void *src, int fd, uint64_t key, unsigned events, int timeout_ms,
                 void (*cb)(int result, void *arg), void *arg); /* key: 0, or kept (ABI 2.4) */
  /* optional: the request's auth token (info.auth->token) was closed by the
   * pipeline, so the source need not close it again */
  void (*auth_token_closed)(void *src, gh_token_t token);
} gh__pl_source_ops_t;

#define GH__PL_SEND_MORE 0x1u
#define GH__PL_SEND_DISCONNECT 0x2u

#define GH__PL_MAX_GROUPS 256

/* What the user object reads of a token (token_view): immutable, made
 * once per token and owned by it (freed with it), kept alive by the pin
 * token_view takes until token_view_release. The texts are the user
 * variables' values, so a request reading "groups" formats nothing. Groups
 * beyond GH__PL_MAX_GROUPS: none kept; a name of 256 bytes or more: "". */
typedef struct gh__pl_token_view {
  uid_t uid;
  gid_t gid;
  int level; /* GH__PL_LEVEL_* */
  const char *name;
  const char *uid_text;
  const char *gid_text;
  const char *groups_text; /* comma-separated gids */
  void *pin;               /* the sec layer's: what token_view_release lets go */
} gh__pl_token_view_t;

enum {
  GH__PL_LEVEL_ANONYMOUS = 0,
  GH__PL_LEVEL_IDENTIFY = 1,
  GH__PL_LEVEL_IMPERSONATE = 2,
  GH__PL_LEVEL_DELEGATE = 3,
};

/* The sec layer as the pipeline uses it (real one in secglue.c; tests
 * install fakes with gh__pipeline_set_sec_ops). */
struct open_how;

typedef struct gh__pl_sec_ops {
  int (*impersonate)(gh_token_t tok);
  int (*revert)(void); /* aborts the process if it fails */
  bool (*is_impersonating)(void);
  int (*assert_base)(void); /* 0 when at base identity */
  int (*token_close)(gh_token_t tok);
  int (*token_borrow)(gh_token_t tok, gh_token_t *ret_borrowed);
  bool (*token_valid)(gh_token_t tok);
  /* the token's view, pinned (the handle may close before the user is
   * freed); every successful call is paired with token_view_release */
  int (*token_view)(gh_token_t tok, const gh__pl_token_view_t **ret_view);
  void (*token_view_release)(const gh__pl_token_view_t *view);
  /* the names of the view's token's groups, owned by the token (the sec
   * layer resolves them once per token: no NSS call in this layer) */
  int (*token_group_names)(const gh__pl_token_view_t *view, const char **ret_names);
  int (*token_is_member)(gh_token_t tok, gid_t gid, bool *ret_member);
  /* gh_token_is_member_name: the only way the pipeline learns about a
   * group name (no NSS call in this layer) */
  int (*token_is_member_name)(gh_token_t tok, const char *group, gh_membership_t *ret);
  /* openat2 as the token without switching the thread (fd or -errno/GH_E*) */
  int (*token_openat2)(gh_token_t tok, int dirfd, const char *path, const struct open_how *how);
  /* connect(2) to a Unix socket as the token (gh_token_connect_unix) */
  int (*token_connect_unix)(gh_token_t tok, const char *path, int *ret_fd);
  /* gh_token_get_identity_key (snprintf's contract: the whole length) */
  int (*token_identity_key)(gh_token_t tok, char *buf, size_t len);
} gh__pl_sec_ops_t;

extern const gh__pl_sec_ops_t gh__pl_real_sec_ops;

void gh__pipeline_set_sec_ops(gh_pipeline_t *pl, const gh__pl_sec_ops_t *ops);

/* Runs a request from any source (the httpapi glue and the tests use it). */
int gh__pipeline_process_source(gh_pipeline_t *pl, const char *site,
                                const gh__pl_source_ops_t *ops, void *src);

/* ---- configuration ---------------------------------------------------- */

/* A value parsed by its key's declaration (keys.c), once per configuration. */
typedef struct gh__pl_value {
  bool ok;       /* parsed and checked */
  bool b;        /* BOOL */
  uint64_t u;    /* UINT; DURATION in ms */
  const char *s; /* STRING, PATH: the text */
  char **words;  /* LIST: one allocation, the array then the words */
  size_t n_words;
} gh__pl_value_t;

/* A declared key: the module's table entry (copied by the growth rule),
 * who declared it, and its parsed default. */
typedef struct gh__pl_key {
  gh_module_key_t k;
  const char *owner; /* the module's name, or "pipeline" */
  bool has_default;
  gh__pl_value_t def;
} gh__pl_key_t;

typedef struct gh__pl_entry {
  char *section;
  char *key;   /* NULL for a section declaration */
  char *value;
  char *file; /* where it came from (gh_pipeline_config_add_at), or NULL */
  unsigned line;
  bool host; /* GH_PIPELINE_CONFIG_HOST */
  /* bound when installed (and when a module declares keys later) */
  const gh__pl_key_t *decl;
  gh__pl_value_t v;
} gh__pl_entry_t;

/* One [site P] of an installed config: its items in file order (every
 * block with that exact section name), and the two keys the engine reads on
 * every request. Built once by gh__pl_config_index(); pointers into the
 * config's own entries. */
/* A module's data for one site of one configuration
 * (gh_http_context_get_site_data): built by the first request that asks,
 * freed with the configuration (never while a request can use it). */
typedef struct gh__pl_site_data {
  int id; /* the module's */
  void *data;
  void (*free_cb)(void *data);
  struct gh__pl_site_data *next;
} gh__pl_site_data_t;

typedef struct gh__pl_site {
  const char *section; /* "site /files" */
  const gh__pl_entry_t **items;
  size_t n_items;
  const char *handler; /* last handler = value, or NULL */
  bool impersonate;    /* last impersonate = value is a yes word */
  /* the modules' site data: a list that only grows (compare-and-swap at
   * its head), the one mutable part of an indexed configuration */
  _Atomic(gh__pl_site_data_t *) data;
} gh__pl_site_t;

struct gh_pipeline_config {
  gh__pl_entry_t *entries;
  size_t n, cap;
  gh__pl_site_t *sites; /* NULL until indexed (then the config is read-only) */
  size_t n_sites;
  struct gh_pipeline_config *older; /* retired configs, freed with the pipeline */
};

const char *gh__pl_config_get(const gh_pipeline_config_t *cfg, const char *section,
                              const char *key, size_t nth_or_last);
#define GH__PL_LAST ((size_t)-1)
/* Builds cfg->sites (called when a config is installed, before other threads
 * see it). On ENOMEM the config stays unindexed and lookups scan. */
int gh__pl_config_index(gh_pipeline_config_t *cfg);
/* The indexed site whose section is "site PATH" (site_or_section may be
 * either form), or NULL. */
const gh__pl_site_t *gh__pl_config_site(const gh_pipeline_config_t *cfg,
                                        const char *site_or_section);
/* engine.c: frees the request pools kept for any thread (gh_pipeline_free) */
void gh__pl_spare_pools_free(void);
/* Frees the modules' site data of cfg and of its older configurations
 * (their free callbacks run: before the modules unload). */
void gh__pl_config_free_site_data(gh_pipeline_config_t *cfg);
/* Frees a list of site data (the callbacks run). */
void gh__pl_site_data_free(gh__pl_site_data_t *d);
/* A site's value of key: the nth (0-based) or the last (GH__PL_LAST). */
const char *gh__pl_site_get(const gh__pl_site_t *site, const char *key, size_t nth_or_last);
/* yes/true/on/1 (case-insensitive) */
bool gh__pl_word_true(const char *v);

/* keys.c: the declared key of key in section ("site /x", "module NAME"),
 * or NULL; *ret_owner (may be NULL) also names the module of a NAME.key
 * without a table. */
const gh__pl_key_t *gh__pl_find_key(const gh_pipeline_t *pl, const char *section, const char *key,
                                    const char **ret_owner);
/* Parses text by d (type, range, check): 0 or -EINVAL with why. out is
 * cleared first; free it with gh__pl_value_done. */
int gh__pl_parse_value(const gh__pl_key_t *d, const char *key, const char *text,
                       gh__pl_value_t *out, char *why, size_t whylen);
void gh__pl_value_done(gh__pl_value_t *v);
/* The checks of gh_pipeline_config_check, in file order. */
int gh__pl_config_validate(gh_pipeline_t *pl, const gh_pipeline_config_t *cfg, char *errbuf,
                           size_t errlen);
/* Binds and parses the entries of cfg that have a declaration and are not
 * bound yet (install, and after a module declared keys). */
void gh__pl_config_bind(gh_pipeline_t *pl, gh_pipeline_config_t *cfg);
/* Frees a module's key declarations. */
void gh__pl_keys_free(gh__pl_key_t *keys, size_t n);

/* ---- modules ---------------------------------------------------------- */

typedef struct gh__pl_module {
  char *name;
  char *path; /* NULL for built-in */
  void *dl;
  int id;
  bool has_factory;
  gh_module_factory_t factory; /* as this library knows it (gh__pl_struct_in) */
  /* the factory's callbacks by notification: the one record of what the
   * module gets (NULL: not registered) */
  gh_module_request_cb on_request[GH_NOTIFY_COUNT_];
  gh_module_request_cb on_post[GH_NOTIFY_COUNT_];
  gh_module_priority_t priority[GH_NOTIFY_COUNT_];
  bool has_global;
  gh_global_module_t global;
  gh_global_cb on_global[GH_GLOBAL_COUNT_];
  bool handler;
  bool scoped_impersonation; /* opens as the client via gh_http_context_openat2 */
  bool streamed_body;        /* its sites stream request bodies (ABI 2.2) */
  /* its configuration keys (gh_module_registration_set_config_keys) */
  bool has_keys;
  gh__pl_key_t *keys;
  size_t n_keys;
  /* the first failed registration call: the loader refuses the module even
   * if gh_register_module ignored the error, with this reason */
  int reg_error;
  char reg_why[256];
} gh__pl_module_t;

/* Reads a module's registration struct (src, whose first field is its
 * size_t struct_size) into dst (dst_size bytes, this library's sizeof) by
 * the growth rules of module.h: a smaller struct_size (older minor version)
 * leaves the rest of dst zero; a larger one is read if every byte this
 * library does not know is zero. min_size is the struct's first version.
 * Returns 0 or GH_EMODULE_ABI with the reason in why. */
int gh__pl_struct_in(void *dst, size_t dst_size, const void *src, size_t min_size, char *why,
                     size_t whylen);
/* The same rule for a struct without a struct_size field, whose size is
 * given (the entries of a key table). */
int gh__pl_struct_in_sized(void *dst, size_t dst_size, const void *src, size_t size,
                           size_t min_size, char *why, size_t whylen);
/* Records a failed registration call of the module (first one wins). */
int gh__pl_reg_fail(gh_module_registration_t *reg, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The factory field of notification n (post: its post event), or NULL
 * when n has no such event. */
gh_module_request_cb *gh__pl_factory_slot(gh_module_factory_t *f, gh_notification_t n, bool post);
/* Sizes of the first version (ABI 2.1) of each registration struct. */
#define GH__PL_FACTORY_SIZE_2_1 (offsetof(gh_module_factory_t, on_map_path) + sizeof(void *))
#define GH__PL_GLOBAL_SIZE_2_1 (offsetof(gh_global_module_t, on_config_reload) + sizeof(void *))
#define GH__PL_USER_OPS_SIZE_2_1 (offsetof(gh_http_user_ops_t, free) + sizeof(void *))

struct gh_module_registration {
  gh_pipeline_t *pl;
  gh__pl_module_t *mod;
};

struct gh_module_server {
  gh_pipeline_t *pl;
};

/* The engine's position as one number, 2 * notification + post, from
 * BEGIN_REQUEST to END_REQUEST; GH__PL_SLOTS: past the end. */
#define GH__PL_SLOTS (2 * (GH_NOTIFY_END_REQUEST + 1))

struct gh_pipeline {
  gh_module_server_t server;
  uint64_t id; /* unique in the process: keys the per-thread key memo (keys.c) */
  gh__pl_module_t **modules;
  size_t n_modules;
  /* per notification: module indices in call order */
  size_t *order[GH_NOTIFY_COUNT_];
  size_t n_order[GH_NOTIFY_COUNT_];
  size_t *post_order[GH_NOTIFY_COUNT_];
  size_t n_post_order[GH_NOTIFY_COUNT_];
  /* per slot: the first slot from it on where the engine has work (a
   * module, EXECUTE's impersonation check, LOG_REQUEST's send-out), or
   * GH__PL_SLOTS (gh__pl_build_skip, at start) */
  uint8_t next_slot[GH__PL_SLOTS + 1];
  pthread_mutex_t lock;
  gh_pipeline_config_t *cfg; /* current; older ones hang off cfg->older */
  gh_pipeline_log_cb log_cb;
  void *log_data;
  gh_pipeline_executor_cb exec_cb;
  void *exec_data;
  const gh__pl_sec_ops_t *sec;
  bool started, stopped;
};

/* ---- request objects -------------------------------------------------- */

typedef struct gh__pl_header {
  char *name;
  char *value;
  struct gh__pl_header *next;
  /* response fields only: strlen(name), strlen(value), name all tchar */
  size_t name_len, value_len;
  bool token;
} gh__pl_header_t;

typedef struct gh__pl_chunk {
  struct gh__pl_chunk *next;
  int fd; /* -1 for memory */
  bool pooled; /* in the context's pool (not freed) */
  off_t offset;
  size_t len;
  char *data;
} gh__pl_chunk_t;

struct gh_http_request {
  gh_http_context_t *ctx;
  gh__pl_header_t *headers; /* in order */
  size_t n_headers;
};

struct gh_http_response {
  gh_http_context_t *ctx;
  int status;
  char *reason;
  gh__pl_header_t *headers, **headers_tail;
  uint64_t name_lens; /* bit (len & 63) of every name set since the last clear */
  size_t pooled_bytes; /* chunk bytes taken from the context's pool */
  gh__pl_chunk_t *chunks, **chunks_tail;
  size_t buffered;     /* bytes in chunks */
  uint64_t body_total; /* buffered + sent */
  bool headers_sent;
  bool final_sent;
  bool buffering_off;
  bool disconnect;
  bool in_send_response;
  bool touched; /* anything set since start (for the no-handler 404) */
};

struct gh_http_user {
  _Atomic int refs;
  bool custom;
  bool block; /* in a GH__PL_USER_BLOCK block (gh__pl_user_release) */
  gh_http_user_ops_t ops;
  void *data;
  gh_pipeline_t *pl;
  pthread_mutex_t lock;
  char *name;
  char *local_name;
  char *auth_type;
  gh_token_t token; /* the server's (owned by the context); 0 after request end */
  gh_token_t borrowed_imp;
  gh_token_t borrowed_primary;
  int level;
  /* The token's view (its ids as the variables "uid", "gid", "level",
   * "groups"), pinned until the user is freed; NULL without a token */
  const gh__pl_token_view_t *view;
  void (*view_release)(const gh__pl_token_view_t *view);
  atomic_bool has_vars; /* a variable was set: vars must be read under lock */
  struct gh__pl_uvar {
    char *name;
    char *value;
    struct gh__pl_uvar *next;
  } *vars;
};

struct gh_event_provider {
  gh_notification_t notification;
  bool post;
  int error;
  gh_http_context_t *ctx;
  uint32_t send_flags;
  const void *entity;
  size_t entity_len;
  const char *url;
  const char *physical_path;
};

enum { GH__PL_RUNNING = 0, GH__PL_SUSPENDED = 1, GH__PL_COMPLETED_EARLY = 2 };

typedef struct gh__pl_modctx {
  void *data;
  void (*cleanup)(void *data);
} gh__pl_modctx_t;

struct gh_http_context {
  gh_pipeline_t *pl;
  gh__pool_t *pool;
  const gh_pipeline_config_t *cfg;
  const char *site_section; /* "site /files" or NULL */
  const gh__pl_site_t *site; /* its index entry, NULL if unindexed or unknown */
  gh__pl_site_data_t *site_data; /* no indexed site: site data built for this request only */
  const char *site_path;    /* "/files" or "" */
  const gh__pl_source_ops_t *src_ops;
  void *src;
  gh__pl_reqinfo_t info;
  struct gh_http_request request;
  struct gh_http_response response;
  gh_http_user_t *user;
  void *user_block;      /* a spare user block the user did not take, or NULL */
  gh_token_t auth_token; /* owned: closed at request end */
  void **instances;
  bool *created;
  gh__pl_modctx_t *modctx;
  /* bounds for the request's end: no module at or above n_live has an
   * instance, none at or above n_cleanups a context cleanup */
  size_t n_live, n_cleanups;
  /* engine position */
  gh_notification_t stage;
  bool post;
  size_t index;
  gh_notification_t current; /* for get_notification */
  bool finished;
  bool handled;
  bool impersonate_site;
  int imp_depth; /* > 0 while the context impersonates its user */
  bool scoped_call; /* a scoped module's handler on an impersonating site is running */
  _Atomic int state;
  _Atomic int pending_status;
  struct {                 /* gh_http_context_wait_fd, armed when the request suspends */
    gh_http_wait_cb cb;    /* NULL: none asked for */
    void *arg;
    int fd, timeout_ms;
    unsigned events;
    uint64_t key;          /* gh_http_context_wait_kept's (0: wait_fd) */
    gh_notification_t n;   /* the notification that asked */
  } wait;
  bool waited; /* resumed by a wait's callback (identity checked there) */
  char *var_cache_groups;
};

/* engine helpers shared between files */
int gh__pl_raise_send_response(gh_http_context_t *ctx, uint32_t flags);
int gh__pl_response_send_out(gh_http_response_t *resp, bool final);
void gh__pl_response_init(gh_http_response_t *resp, gh_http_context_t *ctx);
void gh__pl_response_done(gh_http_response_t *resp);
int gh__pl_request_init(gh_http_request_t *req, gh_http_context_t *ctx);
/* The request's user; *block (may be NULL): a spare user block the user
 * takes if it fits (then set to NULL) */
int gh__pl_user_new_server(gh_pipeline_t *pl, const gh_auth_info_t *auth, void **block,
                           gh_http_user_t **ret_user);
/* gh_http_user_unref, but a last reference to a user in a block gives the
 * block back (to keep as a spare or free) instead of freeing it */
void *gh__pl_user_release(gh_http_user_t *user);
/* Bytes of a user block: the user and its three strings, most of the time */
#define GH__PL_USER_BLOCK 512
void gh__pl_user_end_request(gh_http_user_t *user);
void gh__pl_log(gh_pipeline_t *pl, gh_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *gh__pl_status_reason(int status);
/* call one module callback with per-call identity handling */
gh_request_status_t gh__pl_call(gh_http_context_t *ctx, size_t mod_index, gh_module_request_cb cb,
                                gh_event_provider_t *prov, bool impersonate);
/* Fills pl->next_slot from the call orders (gh_pipeline_start). */
void gh__pl_build_skip(gh_pipeline_t *pl);
/* runs the modules of a nested (synchronous) event: SEND_RESPONSE, READ_ENTITY, MAP_PATH */
int gh__pl_raise_nested(gh_http_context_t *ctx, gh_event_provider_t *prov);

/* path normalisation (also used by map_path): joins root and a decoded URL
 * path, removing "." and "//", refusing ".." above the root (-EACCES).
 * Writes into out (outsz). Returns length or -errno. */
ssize_t gh__pl_path_join(const char *root, const char *path, char *out, size_t outsz);

#endif
