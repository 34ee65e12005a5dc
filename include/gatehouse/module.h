/* module.h: the IIS-style native module API — registration, notifications, context, request, response, user. */
#ifndef GATEHOUSE_MODULE_H
#define GATEHOUSE_MODULE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <gatehouse/authinfo.h>
#include <gatehouse/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The C counterpart of the IIS native module API (httpserv.h).
 *
 *   IIS                              gatehouse
 *   RegisterModule                   gh_register_module (exported by the .so)
 *   IHttpModuleRegistrationInfo      gh_module_registration_t
 *   IHttpServer                      gh_module_server_t
 *   IHttpModuleFactory + CHttpModule gh_module_factory_t (create/dispose + callbacks)
 *   CGlobalModule                    gh_global_module_t
 *   IHttpContext                     gh_http_context_t
 *   IHttpRequest / IHttpResponse     gh_http_request_t / gh_http_response_t
 *   IHttpUser                        gh_http_user_t
 *   IHttpEventProvider (+ subtypes)  gh_event_provider_t
 *   REQUEST_NOTIFICATION_STATUS      gh_request_status_t
 *
 * Lifetime rules, written once (they hold for every object below):
 *   - Everything a module gets through a callback parameter or a _get_
 *     function is borrowed. Objects reachable from a gh_http_context_t live
 *     until the request ends (after END_REQUEST and the disposal of every
 *     module instance), except where a function says otherwise.
 *   - Strings returned are NUL-terminated and must not be freed or modified.
 *   - gh_http_user_ref() keeps a user object alive past its request; the
 *     user's tokens do not outlive the request (see gh_http_user_t).
 *   - Calls on one request's objects must come from the thread currently
 *     running a notification of that request, or, while the request is
 *     PENDING, from the thread that will call gh_http_context_complete().
 *     gh_http_context_complete() itself may be called from any thread.
 *   - Functions return 0 (or a positive count) on success, -errno or a GH_E*
 *     code (gatehouse/error.h) on failure. Pipeline control is the separate
 *     gh_request_status_t.
 */

/* ---------------------------------------------------------------------- */
/* ABI                                                                     */
/* ---------------------------------------------------------------------- */

/** Bumped on any incompatible change of this header (2: membership is
 *  tri-state, gh_http_user_ops_t.is_in_role and gh_http_user_is_in_role
 *  take a gh_membership_t). */
#define GH_MODULE_ABI_VERSION 2u

/** Server version passed to gh_register_module(): major << 16 | minor. */
#define GH_MODULE_SERVER_VERSION ((uint32_t)((GH_VERSION_MAJOR << 16) | GH_VERSION_MINOR))

#define GH__MOD_STR2(x) #x
#define GH__MOD_STR(x) GH__MOD_STR2(x)
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define GH__MOD_ENDIAN "BE"
#else
#define GH__MOD_ENDIAN "LE"
#endif

/** Build signature: what must match between the server and a module beyond
 *  the ABI version (pointer/long size, byte order). Checked at load time. */
#define GH_MODULE_SIGNATURE                                                    \
  "gatehouse-module/" GH__MOD_STR(GH_MODULE_ABI_VERSION) "/P" GH__MOD_STR(  \
      __SIZEOF_POINTER__) "/L" GH__MOD_STR(__SIZEOF_LONG__) "/" GH__MOD_ENDIAN

/** The symbol every module exports next to gh_register_module, read by the
 *  loader before anything in the module runs. Use GH_MODULE_DEFINE(). */
typedef struct gh_module_abi {
  uint32_t abi_version; /* GH_MODULE_ABI_VERSION the module was built with */
  const char *signature; /* GH_MODULE_SIGNATURE the module was built with */
  const char *name;      /* unique module name ("static", "whoami" ...) */
} gh_module_abi_t;

#define GH_MODULE_ABI_SYMBOL "gh_module_abi"
#define GH_MODULE_REGISTER_SYMBOL "gh_register_module"

/** Put once in each module source: defines the ABI record for NAME (a string
 *  literal). The loader refuses a module without it, with another ABI version
 *  or signature, or with a name already loaded. */
#define GH_MODULE_DEFINE(NAME)                                                 \
  __attribute__((visibility("default"))) const gh_module_abi_t gh_module_abi = { \
      GH_MODULE_ABI_VERSION, GH_MODULE_SIGNATURE, NAME}

#define GH_MODULE_EXPORT __attribute__((visibility("default")))

typedef struct gh_module_registration gh_module_registration_t;
typedef struct gh_module_server gh_module_server_t;
typedef struct gh_http_context gh_http_context_t;
typedef struct gh_http_request gh_http_request_t;
typedef struct gh_http_response gh_http_response_t;
typedef struct gh_http_user gh_http_user_t;
typedef struct gh_event_provider gh_event_provider_t;

/** The entry point each module exports (RegisterModule). Called once, at
 *  load, on the loading thread, before the server starts, and only after the
 *  loader has checked the module's gh_module_abi (ABI version, build
 *  signature, name): a module need not check versions itself.
 *  server_version is GH_MODULE_SERVER_VERSION of the server (for messages
 *  or optional features). reg and server are borrowed: reg
 *  is valid only during the call; server lives as long as the module is
 *  loaded. Return 0 or an error (the module is then unloaded and the server
 *  reports the error with the module's path). */
typedef int (*gh_register_module_fn)(uint32_t server_version, gh_module_registration_t *reg,
                                     gh_module_server_t *server);
GH_MODULE_EXPORT int gh_register_module(uint32_t server_version, gh_module_registration_t *reg,
                                        gh_module_server_t *server);

/* ---------------------------------------------------------------------- */
/* Notifications                                                           */
/* ---------------------------------------------------------------------- */

/** Request notifications, in the order they are raised (IIS order). Each of
 *  the first twelve also has a post event, raised after the event for every
 *  module. SEND_RESPONSE is raised each time headers/body are about to go out
 *  (first flush, end of request); READ_ENTITY when the request body is read
 *  through gh_http_request_read_body(); MAP_PATH when a module calls
 *  gh_http_context_map_path(). The last three have no post event. */
typedef enum gh_notification {
  GH_NOTIFY_BEGIN_REQUEST = 0,
  GH_NOTIFY_AUTHENTICATE_REQUEST,
  GH_NOTIFY_AUTHORIZE_REQUEST,
  GH_NOTIFY_RESOLVE_REQUEST_CACHE,
  GH_NOTIFY_MAP_REQUEST_HANDLER,
  GH_NOTIFY_ACQUIRE_REQUEST_STATE,
  GH_NOTIFY_PRE_EXECUTE_REQUEST_HANDLER,
  GH_NOTIFY_EXECUTE_REQUEST_HANDLER,
  GH_NOTIFY_RELEASE_REQUEST_STATE,
  GH_NOTIFY_UPDATE_REQUEST_CACHE,
  GH_NOTIFY_LOG_REQUEST,
  GH_NOTIFY_END_REQUEST,
  GH_NOTIFY_SEND_RESPONSE,
  GH_NOTIFY_READ_ENTITY,
  GH_NOTIFY_MAP_PATH,
  GH_NOTIFY_COUNT_
} gh_notification_t;

/** Bit for a notification in the masks of gh_module_registration_set_*. */
#define GH_NOTIFY_BIT(n) (1u << (unsigned)(n))
#define GH_NOTIFY_ALL_REQUEST_BITS ((1u << GH_NOTIFY_SEND_RESPONSE) - 1u)

/** Returned by every request notification callback. */
typedef enum gh_request_status {
  /** Go on with the next module / notification. */
  GH_REQUEST_CONTINUE = 0,
  /** Stop this request's notifications: no other module gets this event or
   *  its post event, and the stages up to UPDATE_REQUEST_CACHE are skipped.
   *  LOG_REQUEST and END_REQUEST (and their posts) still run, and the
   *  response is sent. Returned from SEND_RESPONSE, READ_ENTITY or MAP_PATH
   *  it only stops the remaining modules of that event. */
  GH_REQUEST_FINISH = 1,
  /** The module has started asynchronous work and will call
   *  gh_http_context_complete() (from any thread). The pipeline suspends the
   *  request after this callback returns and resumes with the next module. */
  GH_REQUEST_PENDING = 2,
} gh_request_status_t;

/** Priorities (IIS PRIORITY_ALIAS_*). Within a notification modules run
 *  FIRST → LAST, in load order inside one priority; for SEND_RESPONSE the
 *  order is reversed (LAST → FIRST, reverse load order). */
typedef enum gh_module_priority {
  GH_PRIORITY_FIRST = 0,
  GH_PRIORITY_HIGH = 1,
  GH_PRIORITY_MEDIUM = 2, /* default */
  GH_PRIORITY_LOW = 3,
  GH_PRIORITY_LAST = 4,
} gh_module_priority_t;

/** Global (server-wide) notifications. */
typedef enum gh_global_notification {
  GH_GLOBAL_START = 0,         /* after every module is loaded, before requests */
  GH_GLOBAL_STOP = 1,          /* server stopping; no request runs any more */
  GH_GLOBAL_CONFIG_RELOAD = 2, /* SIGHUP: configuration re-read */
  GH_GLOBAL_COUNT_
} gh_global_notification_t;

/** Callback for one request notification. module is the instance the factory
 *  created for this request; provider carries event-specific data (see the
 *  gh_event_provider_* functions) and is valid during the call only. Runs on
 *  a worker thread at base identity, or impersonating the client when the
 *  site says impersonate = yes and this is EXECUTE_REQUEST_HANDLER. Whatever
 *  the callback does, the thread is reverted when it returns. */
typedef gh_request_status_t (*gh_module_request_cb)(void *module, gh_http_context_t *ctx,
                                                    gh_event_provider_t *provider);

/*
 * Growth of the registration structs (gh_module_factory_t,
 * gh_global_module_t, gh_http_user_ops_t), as MIT krb5's plugin vtables:
 * each starts with struct_size, which the module sets to sizeof() of the
 * struct it was compiled with, and each grows only at its tail, a minor
 * version at a time ("ABI 2.N ends here" below). The server reads the
 * fields within struct_size:
 *   - a module built for an older minor version (smaller struct_size) keeps
 *     working: the fields it did not have count as NULL;
 *   - a module built for a newer minor version (larger struct_size) loads
 *     as long as every field this server does not know is zero (NULL);
 *     otherwise registration fails with GH_EMODULE_ABI, naming the struct;
 *   - a struct_size smaller than the first version of the struct, or not a
 *     multiple of the pointer size, is refused with GH_EMODULE_ABI.
 * Only GH_MODULE_ABI_VERSION changes say that a module must be rebuilt.
 * Modules built against the first ABI 2 header (request callbacks in
 * on_request[] / on_post_request[] arrays, registered with explicit masks)
 * keep loading: the library still exports the calls they were linked with.
 */

/** Minor version of the registration structs in this header (see above). */
#define GH_MODULE_ABI_MINOR 2u

/** A request-level module (IHttpModuleFactory + CHttpModule). The module
 *  gets exactly the notifications whose callback is non-NULL (CHttpModule's
 *  On* methods; there is no separate mask). The pipeline copies the struct
 *  at registration; factory_data is borrowed until terminate. */
typedef struct gh_module_factory {
  /** sizeof(gh_module_factory_t) as the module was compiled (see above). */
  size_t struct_size;
  /** Handed to create, dispose and terminate. */
  void *factory_data;
  /** Creates the per-request instance the first time the request reaches
   *  this module (GetHttpModule). Memory may come from
   *  gh_http_context_alloc(). Return 0 and *ret_module (may be NULL), or an
   *  error: the request then fails with 500. Worker thread, base identity.
   *  May be NULL: the instance is then NULL. */
  int (*create)(void *factory_data, gh_http_context_t *ctx, void **ret_module);
  /** Disposes the instance: called exactly once per created instance, at the
   *  end of the request (after END_REQUEST), also when the request was
   *  aborted. May be NULL. */
  void (*dispose)(void *factory_data, void *module);
  /** Called once when the module is unloaded (Terminate). May be NULL. */
  void (*terminate)(void *factory_data);
  /** Request notifications in IIS order, each followed by its post event. */
  gh_module_request_cb on_begin_request;
  gh_module_request_cb on_post_begin_request;
  gh_module_request_cb on_authenticate_request;
  gh_module_request_cb on_post_authenticate_request;
  gh_module_request_cb on_authorize_request;
  gh_module_request_cb on_post_authorize_request;
  gh_module_request_cb on_resolve_request_cache;
  gh_module_request_cb on_post_resolve_request_cache;
  gh_module_request_cb on_map_request_handler;
  gh_module_request_cb on_post_map_request_handler;
  gh_module_request_cb on_acquire_request_state;
  gh_module_request_cb on_post_acquire_request_state;
  gh_module_request_cb on_pre_execute_request_handler;
  gh_module_request_cb on_post_pre_execute_request_handler;
  gh_module_request_cb on_execute_request_handler;
  gh_module_request_cb on_post_execute_request_handler;
  gh_module_request_cb on_release_request_state;
  gh_module_request_cb on_post_release_request_state;
  gh_module_request_cb on_update_request_cache;
  gh_module_request_cb on_post_update_request_cache;
  gh_module_request_cb on_log_request;
  gh_module_request_cb on_post_log_request;
  gh_module_request_cb on_end_request;
  gh_module_request_cb on_post_end_request;
  /** Nested events (no post event). */
  gh_module_request_cb on_send_response;
  gh_module_request_cb on_read_entity;
  gh_module_request_cb on_map_path;
  /* ABI 2.1 ends here. New fields (a new notification, a new factory
   * callback) are added below this line, never above, with the next minor
   * version's marker. */
} gh_module_factory_t;

/** Status of a global notification callback. */
typedef enum gh_global_status {
  GH_GLOBAL_CONTINUE = 0,
  GH_GLOBAL_FINISH = 1, /* later modules do not get this global event */
} gh_global_status_t;

/** Callback for one global notification. */
typedef gh_global_status_t (*gh_global_cb)(void *global_data, gh_module_server_t *server);

/** A global module (CGlobalModule): it gets the global notifications whose
 *  callback is non-NULL. Callbacks run on the thread that starts, stops or
 *  reloads the server, never concurrently with each other, but possibly
 *  concurrently with requests (reload). The struct is copied; global_data
 *  is borrowed until terminate. */
typedef struct gh_global_module {
  size_t struct_size;                   /* sizeof(gh_global_module_t) as compiled (see above) */
  void *global_data;                    /* handed to every callback */
  void (*terminate)(void *global_data); /* at unload; may be NULL */
  gh_global_cb on_start;                /* GH_GLOBAL_START */
  gh_global_cb on_stop;                 /* GH_GLOBAL_STOP */
  gh_global_cb on_config_reload;        /* GH_GLOBAL_CONFIG_RELOAD */
  /* ABI 2.1 ends here (new fields below, never above). */
} gh_global_module_t;

/** Registers the request-level module (SetRequestNotifications): factory is
 *  copied; the notifications are its non-NULL callbacks. Once per
 *  registration. Errors: GH_EEXISTS if called twice; -EINVAL when no
 *  callback is set; GH_EMODULE_ABI for a struct_size this server cannot
 *  read (see above; the loader's message names it). */
GH_EXPORT int gh_module_registration_set_factory(gh_module_registration_t *reg,
                                                 const gh_module_factory_t *factory);

/** Sets the priority of the module for the notifications in mask (masks of
 *  GH_NOTIFY_BIT; default MEDIUM). Applies to pre and post events. */
GH_EXPORT int gh_module_registration_set_priority(gh_module_registration_t *reg, uint32_t mask,
                                                  gh_module_priority_t priority);

/** Registers global notifications (SetGlobalNotifications): global is
 *  copied; the notifications are its non-NULL callbacks. Errors as
 *  gh_module_registration_set_factory. */
GH_EXPORT int gh_module_registration_set_global(gh_module_registration_t *reg,
                                                const gh_global_module_t *global);

/** Marks the module as a handler: its EXECUTE_REQUEST_HANDLER (and post) run
 *  only for sites whose `handler` key names it. Modules without this flag get
 *  EXECUTE_REQUEST_HANDLER on every site. */
GH_EXPORT int gh_module_registration_set_handler(gh_module_registration_t *reg);

/** The registration of a plain handler module in one call (whoami, cgi):
 *  a factory whose only callback is on_execute (EXECUTE_REQUEST_HANDLER, no
 *  per-request instance: module is NULL in the callback), marked as a
 *  handler (gh_module_registration_set_handler). A module may register
 *  more afterwards (global notifications, priorities, scoped
 *  impersonation). Errors as gh_module_registration_set_factory; -EINVAL
 *  for a NULL on_execute. */
GH_EXPORT int gh_module_registration_set_execute_handler(gh_module_registration_t *reg,
                                                         gh_module_request_cb on_execute);

/* ---------------------------------------------------------------------- */
/* Configuration keys (nginx's per-module directive table)                */
/* ---------------------------------------------------------------------- */

/*
 * A module declares its configuration keys at registration: name, type,
 * where the key is given, default, whether it repeats, and an optional
 * check. The host's configuration is then checked once, when it is loaded
 * and at every reload (gh_pipeline_config_check: "FILE:LINE: [section]
 * key = value: why"), never per request, and the module reads typed values
 * (gh_http_context_get_config_*, gh_module_server_get_config_*). The host
 * (gatehoused) knows nothing of a module's keys; gatehouse.conf(5) lists the
 * built-in modules' keys under each module. A module without a table keeps
 * the untyped gh_http_context_get_site_config and NAME.key site keys.
 */

/** Type of a key's value. */
typedef enum gh_config_type {
  GH_CONFIG_STRING = 1,   /**< any text */
  GH_CONFIG_BOOL = 2,     /**< yes/no, true/false, on/off, 1/0 (any case) */
  GH_CONFIG_UINT = 3,     /**< a decimal number; a k, m or g suffix multiplies by
                               1024, 1024^2, 1024^3 */
  GH_CONFIG_DURATION = 4, /**< a number with a unit ms, s, m or h (no unit: seconds);
                               read in milliseconds */
  GH_CONFIG_PATH = 5,     /**< an absolute path */
  GH_CONFIG_LIST = 6,     /**< words separated by blanks or commas */
} gh_config_type_t;

/* gh_module_key_t.flags:
 *   GH_CONFIG_SITE        given in [site /path] sections, read per request;
 *   GH_CONFIG_MODULE      given in the module's own [module NAME] section;
 *   GH_CONFIG_REPEATABLE  every line adds a value (STRING, PATH, LIST only);
 *                         otherwise a second line is an error;
 *   GH_CONFIG_SUBPATH     site keys: also written "NAME /sub/path", each such
 *                         key a key of its own (authz's require /hr). */
#define GH_CONFIG_SITE 0x1u
#define GH_CONFIG_MODULE 0x2u
#define GH_CONFIG_REPEATABLE 0x4u
#define GH_CONFIG_SUBPATH 0x8u

/** One entry of a module's key table. Strings are borrowed for as long as
 *  the module is loaded. Grows at its tail like the registration structs:
 *  the table's entry size is given to gh_module_registration_set_config_keys. */
typedef struct gh_module_key {
  const char *name; /* as written in the file: letters, digits, '_', '-', '.' */
  gh_config_type_t type;
  uint32_t flags;            /* GH_CONFIG_SITE and/or GH_CONFIG_MODULE, plus
                                GH_CONFIG_REPEATABLE, GH_CONFIG_SUBPATH */
  const char *default_value; /* as it would be written, checked at registration; NULL:
                                none (a getter then returns GH_ENOT_FOUND) */
  uint64_t min, max;         /* UINT, DURATION (in ms): the range; max 0 = no limit */
  /** Optional further check of a value that passed its type's (and of the
   *  default): 0, or a negative code with a one-line reason in why. Loading
   *  thread, at load and reload. */
  int (*check)(const char *key, const char *value, char *why, size_t whylen);
  /* ABI 2.1 ends here (new fields below, never above). */
} gh_module_key_t;

/** Declares the module's configuration keys: n entries of key_size bytes
 *  (sizeof(keys[0]); use GH_MODULE_CONFIG_KEYS). Copied. Once per
 *  registration. Errors (the loader's message names the key): -EINVAL for
 *  a bad name, type, flags or range, or a default that fails its own
 *  checks; GH_EEXISTS when called twice or for a site key the pipeline or
 *  another loaded module declared (site keys share the [site] sections);
 *  GH_EMODULE_ABI for a key_size this server cannot read. */
GH_EXPORT int gh_module_registration_set_config_keys(gh_module_registration_t *reg,
                                                     const gh_module_key_t *keys, size_t n,
                                                     size_t key_size);
#define GH_MODULE_CONFIG_KEYS(reg, table)                                                          \
  gh_module_registration_set_config_keys((reg), (table), sizeof(table) / sizeof((table)[0]),       \
                                         sizeof((table)[0]))

/** Token-scoped impersonation for the module's EXECUTE_REQUEST_HANDLER on
 *  sites with impersonate = yes: the pipeline does not switch the thread to
 *  the client around the handler; instead every gh_http_context_openat2 in
 *  it opens as the client (gh_token_openat2: the kernel checks the client's
 *  uid, gid and groups, the thread never changes identity). The module
 *  promises that it touches client-owned resources only through
 *  gh_http_context_openat2 or after gh_http_context_impersonate (which
 *  still works). Users who cannot be impersonated are refused before the
 *  handler exactly as without the flag. Saves the six credential syscalls of
 *  a switch and revert per request; the static module uses it. */
GH_EXPORT int gh_module_registration_set_scoped_impersonation(gh_module_registration_t *reg);

/** The module's name (from its GH_MODULE_DEFINE), borrowed for the call. */
GH_EXPORT const char *gh_module_registration_get_name(const gh_module_registration_t *reg);

/** The module's id: index for gh_http_context_{get,set}_module_context. */
GH_EXPORT int gh_module_registration_get_id(const gh_module_registration_t *reg);

/* ---------------------------------------------------------------------- */
/* Server (IHttpServer)                                                    */
/* ---------------------------------------------------------------------- */

typedef enum gh_log_level {
  GH_LOG_ERROR = 3,
  GH_LOG_WARNING = 4,
  GH_LOG_NOTICE = 5,
  GH_LOG_INFO = 6,
  GH_LOG_DEBUG = 7,
} gh_log_level_t;

/** Server version (GH_MODULE_SERVER_VERSION). Any thread. */
GH_EXPORT uint32_t gh_module_server_get_version(const gh_module_server_t *server);

/** Value of key in a server-wide config section ("server" or the module's
 *  own "[module NAME]" section, which is given as "module NAME"), or NULL.
 *  Borrowed until the next config reload; read it again in the
 *  GH_GLOBAL_CONFIG_RELOAD callback. */
GH_EXPORT const char *gh_module_server_get_config(gh_module_server_t *server,
                                                  const char *section, const char *key);

/** Typed value of a declared key of the [module NAME] section of module
 *  (GH_CONFIG_MODULE), as gh_http_context_get_config_* (same returns).
 *  Strings are borrowed until the next configuration reload: read them
 *  again in the GH_GLOBAL_CONFIG_RELOAD callback. Any thread. */
GH_EXPORT int gh_module_server_get_config_bool(gh_module_server_t *server, const char *module,
                                               const char *key, bool *ret_value);
GH_EXPORT int gh_module_server_get_config_uint(gh_module_server_t *server, const char *module,
                                               const char *key, uint64_t *ret_value);
GH_EXPORT int gh_module_server_get_config_string(gh_module_server_t *server, const char *module,
                                                 const char *key, size_t i, const char **ret_value);

/** Logs through the host's log function (the daemon: stderr or journald).
 *  The library itself never prints. Any thread. */
GH_EXPORT void gh_module_server_log(gh_module_server_t *server, gh_log_level_t level,
                                    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---------------------------------------------------------------------- */
/* Event providers                                                         */
/* ---------------------------------------------------------------------- */

/** Which notification the provider belongs to. */
GH_EXPORT gh_notification_t gh_event_provider_get_notification(const gh_event_provider_t *p);
/** true for a post event. */
GH_EXPORT bool gh_event_provider_is_post(const gh_event_provider_t *p);
/** Records an error status for the event (SetErrorStatus). The pipeline fails
 *  the request with 500 if the callback then returns FINISH. */
GH_EXPORT void gh_event_provider_set_error_status(gh_event_provider_t *p, int err);

/** AUTHENTICATE_REQUEST only (IAuthenticationProvider::SetUser): replaces the
 *  request's user with user, taking one reference (the caller keeps its own).
 *  -EINVAL in other notifications. */
GH_EXPORT int gh_event_provider_set_user(gh_event_provider_t *p, gh_http_user_t *user);

/** SEND_RESPONSE only: GH_SEND_RESPONSE_FLAG_* for this send. */
#define GH_SEND_RESPONSE_FLAG_FINAL 0x1u  /* last send of the request */
#define GH_SEND_RESPONSE_FLAG_HEADERS 0x2u /* headers go out with this send */
GH_EXPORT uint32_t gh_event_provider_get_send_flags(const gh_event_provider_t *p);

/** READ_ENTITY only: the bytes just read (borrowed for the call). A module
 *  may inspect them; FINISH makes the read fail with -EPERM. */
GH_EXPORT int gh_event_provider_get_entity(const gh_event_provider_t *p, const void **ret_data,
                                           size_t *ret_len);

/** MAP_PATH only: the URL being mapped and the physical path computed so far;
 *  a module may replace the path (copied). */
GH_EXPORT const char *gh_event_provider_get_url(const gh_event_provider_t *p);
GH_EXPORT const char *gh_event_provider_get_physical_path(const gh_event_provider_t *p);
GH_EXPORT int gh_event_provider_set_physical_path(gh_event_provider_t *p, const char *path);

/* ---------------------------------------------------------------------- */
/* Context (IHttpContext)                                                  */
/* ---------------------------------------------------------------------- */

/** The request (borrowed, lives with the context). */
GH_EXPORT gh_http_request_t *gh_http_context_get_request(gh_http_context_t *ctx);
/** The response (borrowed, lives with the context). */
GH_EXPORT gh_http_response_t *gh_http_context_get_response(gh_http_context_t *ctx);
/** The request's user (borrowed): never NULL — an anonymous request has a
 *  user with empty name and auth type "". Take gh_http_user_ref() to keep it
 *  past the request. */
GH_EXPORT gh_http_user_t *gh_http_context_get_user(gh_http_context_t *ctx);
/** The server object (borrowed, lives as long as the pipeline). */
GH_EXPORT gh_module_server_t *gh_http_context_get_server(gh_http_context_t *ctx);

/** The notification currently running for this request. */
GH_EXPORT gh_notification_t gh_http_context_get_notification(const gh_http_context_t *ctx);

/** Server variable (GetServerVariable) as a NUL-terminated string borrowed
 *  until the request ends: AUTH_TYPE, AUTH_USER, REMOTE_USER (= AUTH_USER,
 *  the name as sent), LOGON_USER (the local account impersonated), AUTH_PACKAGE,
 *  REMOTE_ADDR, REMOTE_PORT, LOCAL_ADDR, SERVER_PORT, SERVER_NAME,
 *  SERVER_PROTOCOL, SERVER_SOFTWARE, REQUEST_METHOD, URL, PATH_INFO,
 *  QUERY_STRING, SCRIPT_NAME, CONTENT_TYPE, CONTENT_LENGTH, HTTPS,
 *  GATEWAY_INTERFACE, SITE_PATH, and HTTP_<NAME> for any request header.
 *  Returns 0, or GH_ENOT_FOUND (*ret_value untouched). */
GH_EXPORT int gh_http_context_get_server_variable(gh_http_context_t *ctx, const char *name,
                                                  const char **ret_value);

/** Per-site configuration: the value of key in the request's [site] section
 *  (last occurrence), or NULL. Borrowed until the request ends. */
GH_EXPORT const char *gh_http_context_get_site_config(gh_http_context_t *ctx, const char *key);
/** The i-th (0-based) occurrence of a repeatable key (require = ...), or
 *  NULL past the end. */
GH_EXPORT const char *gh_http_context_get_site_config_n(gh_http_context_t *ctx, const char *key,
                                                        size_t i);
/** Typed value of a declared site key (GH_CONFIG_SITE) for the request's
 *  site: the site's value, or the key's default. Checked when the
 *  configuration was loaded: no parsing here. _bool for BOOL; _uint for
 *  UINT and DURATION (milliseconds); _string for STRING, PATH and LIST,
 *  where i is the i-th line of a repeatable key, the i-th word of a LIST
 *  (every line's words in order when both), else 0. Returns 0;
 *  GH_ENOT_FOUND when there is no value and no default, or i is past the
 *  end; -EINVAL for an undeclared key or another type; GH_ECONFIG when the
 *  value failed its check (a host that installed an unchecked
 *  configuration: fail the request). Strings are borrowed until the
 *  request ends. The thread running the request. */
GH_EXPORT int gh_http_context_get_config_bool(gh_http_context_t *ctx, const char *key,
                                              bool *ret_value);
GH_EXPORT int gh_http_context_get_config_uint(gh_http_context_t *ctx, const char *key,
                                              uint64_t *ret_value);
GH_EXPORT int gh_http_context_get_config_string(gh_http_context_t *ctx, const char *key, size_t i,
                                                const char **ret_value);

/** ABI 2.4: the i-th (0-based) distinct sub path ("/sub/path") for which
 *  the request's site has lines `key /sub/path = ...` of a declared
 *  GH_CONFIG_SUBPATH site key, in the order they first appear: a module
 *  building its site data (gh_http_context_get_site_data) learns which
 *  sub-path keys exist without probing every prefix of every request's
 *  path. Returns 0 and *ret_path (borrowed as the configuration's
 *  strings: until the request ends, and as long as site data built from
 *  it), GH_ENOT_FOUND past the last, -EINVAL for an undeclared or
 *  non-SUBPATH key. The thread running the request. */
GH_EXPORT int gh_http_context_get_config_subpath(gh_http_context_t *ctx, const char *key,
                                                 size_t i, const char **ret_path);

/** The site's URL prefix ("/files"), borrowed until the request ends. */
GH_EXPORT const char *gh_http_context_get_site_path(gh_http_context_t *ctx);

/** Per-module request context (IHttpModuleContextContainer). id is
 *  gh_module_registration_get_id(). cleanup (may be NULL) runs once at the
 *  end of the request, after dispose. Replacing runs the old cleanup. */
GH_EXPORT int gh_http_context_set_module_context(gh_http_context_t *ctx, int id, void *data,
                                                 void (*cleanup)(void *data));
GH_EXPORT void *gh_http_context_get_module_context(gh_http_context_t *ctx, int id);

/** Request-lifetime memory (IModuleAllocator): freed when the request ends.
 *  NULL on ENOMEM. */
GH_EXPORT void *gh_http_context_alloc(gh_http_context_t *ctx, size_t size);
GH_EXPORT char *gh_http_context_strdup(gh_http_context_t *ctx, const char *s);

/** Impersonates the request's user on the calling thread (only with a token
 *  of level IMPERSONATE or DELEGATE). The pipeline reverts at the end of the
 *  current notification call if the module does not. Returns 0,
 *  GH_ENOT_FOUND for an anonymous user, or the sec layer's error. */
GH_EXPORT int gh_http_context_impersonate(gh_http_context_t *ctx);
struct open_how;
/** openat2(2) with the identity the handler's file access must have: the
 *  client, through gh_token_openat2, in the handler of a module registered
 *  with gh_module_registration_set_scoped_impersonation on an impersonating
 *  site (unless the thread already impersonates); otherwise the calling
 *  thread's own identity. O_CLOEXEC is always added; size must be
 *  sizeof(struct open_how). Returns the fd, -errno from openat2,
 *  GH_ENOT_FOUND (scoped call without a token) or the sec layer's error. */
GH_EXPORT int gh_http_context_openat2(gh_http_context_t *ctx, int dirfd, const char *path,
                                      const struct open_how *how, size_t size);
/** Reverts the calling thread to base identity (aborts the process if the
 *  revert fails: it never serves as the wrong user). Returns 0 or GH_ENOT_IMPERSONATING. */
GH_EXPORT int gh_http_context_revert(gh_http_context_t *ctx);

/** Maps url (NULL = the request path) to a file under the site's `root`,
 *  raising MAP_PATH. The result is normalised (no "." or ".." segments, no
 *  "//"); GH_ENOT_FOUND when the site has no root, -EACCES when the URL
 *  escapes the root. Request memory. */
GH_EXPORT int gh_http_context_map_path(gh_http_context_t *ctx, const char *url,
                                       const char **ret_path);

/** Resumes a request whose module returned PENDING (IndicateCompletion /
 *  PostCompletion). status is how the pending notification ended (CONTINUE
 *  or FINISH). Any thread, exactly once per PENDING. The remaining pipeline
 *  runs on the calling thread (which must be at base identity) unless the
 *  host installed an executor, in which case it is queued there. May be
 *  called before the PENDING callback has returned. -EINVAL if the request
 *  is not pending. */
GH_EXPORT int gh_http_context_complete(gh_http_context_t *ctx, gh_request_status_t status);

/** The auth-info record the server delivered with the request (borrowed,
 *  valid until the request ends). Its token belongs to the pipeline. */
GH_EXPORT const gh_auth_info_t *gh_http_context_get_auth_info(gh_http_context_t *ctx);

/* ---------------------------------------------------------------------- */
/* Request (IHttpRequest)                                                  */
/* ---------------------------------------------------------------------- */

/** Method ("GET"), raw URL as sent ("/a%20b?x=1"), decoded path without the
 *  query ("/a b"), query without '?' ("" if none). Borrowed for the request. */
GH_EXPORT const char *gh_http_request_get_method(gh_http_request_t *req);
GH_EXPORT const char *gh_http_request_get_url(gh_http_request_t *req);
GH_EXPORT const char *gh_http_request_get_path(gh_http_request_t *req);
GH_EXPORT const char *gh_http_request_get_query(gh_http_request_t *req);
/** HTTP version as major*10+minor (11 for HTTP/1.1). */
GH_EXPORT int gh_http_request_get_version(gh_http_request_t *req);
/** Value of the first header named name (case-insensitive), or NULL. */
GH_EXPORT const char *gh_http_request_get_header(gh_http_request_t *req, const char *name);
/** Number of request headers; i-th header name/value (borrowed). */
GH_EXPORT size_t gh_http_request_get_header_count(gh_http_request_t *req);
GH_EXPORT int gh_http_request_get_header_at(gh_http_request_t *req, size_t i,
                                            const char **ret_name, const char **ret_value);
/** Replaces (or, with value NULL, removes) a request header as seen by later
 *  modules (SetHeader on IHttpRequest). Copied. */
GH_EXPORT int gh_http_request_set_header(gh_http_request_t *req, const char *name,
                                         const char *value);
/** Content-Length of the body, or -1 when unknown (chunked). */
GH_EXPORT int64_t gh_http_request_get_content_length(gh_http_request_t *req);
/** Reads up to len bytes of the request body (ReadEntityBody), raising
 *  READ_ENTITY. Returns the byte count, 0 at the end, or an error. */
GH_EXPORT ssize_t gh_http_request_read_body(gh_http_request_t *req, void *buf, size_t len);
/** Peer address as text ("127.0.0.1", "::1", "unix") and port (0 for unix). */
GH_EXPORT const char *gh_http_request_get_remote_addr(gh_http_request_t *req);
GH_EXPORT int gh_http_request_get_remote_port(gh_http_request_t *req);
/** Unix-socket peer credentials: 0 and ids, or GH_ENOT_FOUND on TCP. */
GH_EXPORT int gh_http_request_get_peer_creds(gh_http_request_t *req, pid_t *ret_pid,
                                             uid_t *ret_uid, gid_t *ret_gid);
/** true when the request came over TLS. */
GH_EXPORT bool gh_http_request_is_tls(gh_http_request_t *req);
/** Path of the delegated Kerberos ccache of this request ("FILE:/..."),
 *  or NULL. Destroyed when the request ends. */
GH_EXPORT const char *gh_http_request_get_delegated_ccache(gh_http_request_t *req);

/* ---------------------------------------------------------------------- */
/* Response (IHttpResponse)                                                */
/* ---------------------------------------------------------------------- */

/** How gh_http_response_set_header treats an existing header. */
typedef enum gh_header_mode {
  GH_HEADER_REPLACE = 0, /* remove all of that name, then set */
  GH_HEADER_APPEND = 1,  /* append ", value" to the existing one (or set) */
  GH_HEADER_ADD = 2,     /* add another header line (Set-Cookie) */
} gh_header_mode_t;

/** Status code and reason (NULL = standard text). -EINVAL outside 100..999,
 *  GH_ESTATE once headers were sent. Copied. */
GH_EXPORT int gh_http_response_set_status(gh_http_response_t *resp, int status,
                                          const char *reason);
GH_EXPORT int gh_http_response_get_status(gh_http_response_t *resp);
/** Sets a header (names case-insensitive). -EINVAL on CR/LF/NUL in either,
 *  GH_ESTATE once headers were sent. Copied into request memory. */
GH_EXPORT int gh_http_response_set_header(gh_http_response_t *resp, const char *name,
                                          const char *value, gh_header_mode_t mode);
/** Value of the first header of that name (borrowed until it changes), or
 *  NULL. */
GH_EXPORT const char *gh_http_response_get_header(gh_http_response_t *resp, const char *name);
/** Removes every header of that name. 0 even when there was none. */
GH_EXPORT int gh_http_response_delete_header(gh_http_response_t *resp, const char *name);
/** Clear (IHttpResponse::Clear): status back to 200, all headers removed,
 *  buffered body discarded. GH_ESTATE once headers were sent. */
GH_EXPORT int gh_http_response_clear(gh_http_response_t *resp);
/** Discards the buffered body only (ClearBody-like). */
GH_EXPORT int gh_http_response_clear_body(gh_http_response_t *resp);
/** Appends len bytes (copied) to the body. With buffering on (default) the
 *  body is kept until flush or end of request; past 64 KiB buffered it is
 *  flushed automatically. */
GH_EXPORT int gh_http_response_write(gh_http_response_t *resp, const void *data, size_t len);
/** printf into the body. */
GH_EXPORT int gh_http_response_printf(gh_http_response_t *resp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/** Appends len bytes of fd from offset as a body chunk, sent with sendfile.
 *  Takes ownership of fd (closed after sending or when the response is
 *  cleared). The fd keeps the rights it was opened with: open while
 *  impersonating, send after revert. */
GH_EXPORT int gh_http_response_write_fd_take(gh_http_response_t *resp, int fd, off_t offset,
                                             size_t len);
/** Sends headers (raising SEND_RESPONSE first) and the buffered body now;
 *  later writes stream as chunks (or raw with a Content-Length). */
GH_EXPORT int gh_http_response_flush(gh_http_response_t *resp);
/** Turns buffering off: each write is sent at once (implies a flush). */
GH_EXPORT int gh_http_response_disable_buffering(gh_http_response_t *resp);
/** true once the status line and headers were sent. */
GH_EXPORT bool gh_http_response_headers_sent(gh_http_response_t *resp);
/** Bytes of body buffered or sent so far. */
GH_EXPORT uint64_t gh_http_response_get_body_length(gh_http_response_t *resp);
/** Closes the connection after this response. */
GH_EXPORT void gh_http_response_set_disconnect(gh_http_response_t *resp);
/** Convenience: clear, set status, text/html body with reason. */
GH_EXPORT int gh_http_response_send_error(gh_http_response_t *resp, int status,
                                          const char *reason);

/* ---------------------------------------------------------------------- */
/* User (IHttpUser)                                                        */
/* ---------------------------------------------------------------------- */

/*
 * The request's user. For an authenticated request it wraps the auth-info
 * record's token; the token belongs to the server and is closed when the
 * request ends. The token handles a module gets from
 * gh_http_user_get_impersonation_token / _get_primary_token are borrowed
 * handles: a module may close them (the server's token survives), and they
 * stop working when the request ends even if the user object is still
 * referenced. A custom user (gh_http_user_new) has no token unless given one.
 */

/** Ops of a custom user object, for gh_http_user_new(). Any may be NULL.
 *  Grows at its tail like the registration structs (see "Growth" above). */
typedef struct gh_http_user_ops {
  size_t struct_size; /* sizeof(gh_http_user_ops_t) as compiled */
  const char *(*get_name)(void *data);
  const char *(*get_remote_name)(void *data);
  const char *(*get_auth_type)(void *data);
  /** Membership, with the contract of gh_http_user_is_in_role: return 0 (or
   *  GH_MEMBER_NO_SUCH_GROUP) with *ret_membership GH_MEMBER_YES or
   *  GH_MEMBER_NO, or a negative code when the answer cannot be known
   *  (a directory that does not answer...): never guess "no". The caller
   *  has set *ret_membership to GH_MEMBER_UNKNOWN; a success that leaves it
   *  there is turned into -EPROTO. Called on the caller's thread. */
  int (*is_in_role)(void *data, const char *role, gh_membership_t *ret_membership);
  void (*free)(void *data); /* last unref */
  /* ABI 2.1 ends here (new fields below, never above). */
} gh_http_user_ops_t;

/** Creates a custom user (IHttpUser implementation by a module, for
 *  gh_event_provider_set_user). ops is copied; data is handed to ops. The
 *  user starts with one reference owned by the caller. GH_EMODULE_ABI for a
 *  struct_size this server cannot read. */
GH_EXPORT int gh_http_user_new(const gh_http_user_ops_t *ops, void *data,
                               gh_http_user_t **ret_user);
/** ReferenceUser / DereferenceUser (atomic). The last unref frees the user
 *  (on the calling thread). Both accept NULL. */
GH_EXPORT gh_http_user_t *gh_http_user_ref(gh_http_user_t *user);
GH_EXPORT void gh_http_user_unref(gh_http_user_t *user);
/** Name as authenticated ("alice@EXAMPLE.ORG", "" when anonymous). */
GH_EXPORT const char *gh_http_user_get_name(gh_http_user_t *user);
/** Remote name: same as the name for server users (IIS GetRemoteUserName). */
GH_EXPORT const char *gh_http_user_get_remote_name(gh_http_user_t *user);
/** Local account the token is for ("alice"), or "" without a token. */
GH_EXPORT const char *gh_http_user_get_local_name(gh_http_user_t *user);
/** Authentication type ("Negotiate", "NTLM", "Basic", "Peer", "" when
 *  anonymous). */
GH_EXPORT const char *gh_http_user_get_auth_type(gh_http_user_t *user);
/** Borrowed impersonation token handle, or 0 when none (anonymous, custom
 *  user, request ended). Closing it does not close the server's token. */
GH_EXPORT gh_token_t gh_http_user_get_impersonation_token(gh_http_user_t *user);
/** Borrowed primary token handle (for spawning), or 0 (also for an IDENTIFY
 *  level token). Closing it does not close the server's token. */
GH_EXPORT gh_token_t gh_http_user_get_primary_token(gh_http_user_t *user);
/** true: is_in_role is implemented (unlike IIS's default). */
GH_EXPORT bool gh_http_user_supports_is_in_role(gh_http_user_t *user);
/** IsInRole, tri-state: whether the user is in role,
 *  a group name or "#gid". For a server user the token's own groups answer
 *  (a token is the identity the kernel checks), the name resolved to a gid
 *  by the sec layer (gh_token_is_member_name: NSS, cached per
 *  group_cache_ttl); an anonymous user is in no role. A custom user answers
 *  through its is_in_role op.
 *  Returns
 *   - 0: decided, *ret_membership is GH_MEMBER_YES or GH_MEMBER_NO;
 *   - GH_MEMBER_NO_SUCH_GROUP (1): decided GH_MEMBER_NO, no group has that
 *     name (worth a log line: a rule may name a misspelt group);
 *   - negative: could not decide, *ret_membership is GH_MEMBER_UNKNOWN: the
 *     NSS error (-EACCES, -EIO ...), GH_ELIMIT, -ENOMEM,
 *     GH_EINVALID_HANDLE (the request ended), -EINVAL (bad "#gid"),
 *     -ENOTSUP (custom user without is_in_role).
 *  *ret_membership is written on failure too (GH_MEMBER_UNKNOWN). A caller
 *  deciding access must treat UNKNOWN as neither yes nor no: deny, and
 *  answer 503 (the authz module does). From the thread running a
 *  notification of the request (module.h lifetime rules), at base identity
 *  or impersonating (NSS itself always runs at base). May block on a
 *  directory on a cache miss. */
GH_EXPORT int gh_http_user_is_in_role(gh_http_user_t *user, const char *role,
                                      gh_membership_t *ret_membership);
/** User variables (GetUserVariable): "uid", "gid", "level", "groups"
 *  (comma separated gids) and "group_names" (gh_http_user_get_group_names;
 *  NULL when they cannot be resolved) for token users; a variable a module
 *  set wins. Borrowed while the user lives. */
GH_EXPORT const char *gh_http_user_get_variable(gh_http_user_t *user, const char *name);
/** ABI 2.5: the names of the user's token's groups (gh_token_get_group_names:
 *  ','-joined, in "groups" order, percent-encoded bytes where a name has
 *  ',', '%', control or non-ASCII ones, a number where a gid has no name),
 *  from the token itself (never a variable a module set), resolved once per
 *  token and borrowed while the user lives. 0 and *ret_names; GH_ENOT_FOUND
 *  for a user without a token; the group database's failure (GH_ELIMIT,
 *  -EIO, -EACCES...: it could not answer; a caller passing names on must
 *  fail, not send fewer); -EINVAL. The first call for a token may block on
 *  NSS. */
GH_EXPORT int gh_http_user_get_group_names(gh_http_user_t *user, const char **ret_names);
/** Sets a user variable (copied). */
GH_EXPORT int gh_http_user_set_variable(gh_http_user_t *user, const char *name,
                                        const char *value);

/* ---------------------------------------------------------------------- */
/* ABI 2.2: streamed bodies, interim responses, client state, Upgrade      */
/* ---------------------------------------------------------------------- */

/*
 * For modules that relay (the reverse proxy). All from the thread running
 * the request's notification (the handler), at base identity or not.
 */

/** The sites this handler module serves (the `handler` key names it) get
 *  their request bodies streamed: gatehoused sets stream_body on those
 *  sites' URL groups (gatehouse/httpapi.h), so a request with a body
 *  reaches the pipeline right after its header block and
 *  gh_http_request_read_body() reads the body from the connection (blocking
 *  up to the site's body timeout of inactivity per call; READ_ENTITY is
 *  still raised for every piece; errors GH_ETIMEOUT, GH_ECLOSED, GH_EPARSE,
 *  GH_ELIMIT; "Expect: 100-continue" is answered at the first read) and
 *  gh_http_request_get_content_length() is -1 when the body is chunked.
 *  A streamed site's max_body is unlimited unless configured. An unread
 *  rest is drained (64 KiB) or the connection closed after the response.
 *  Meaningful for a handler module (gh_module_registration_set_handler,
 *  in any order). The sites are chosen when the server starts (a reload
 *  that changes a site's handler takes effect at the next start). Returns 0
 *  or -EINVAL (reg NULL). */
GH_EXPORT int gh_module_registration_set_streamed_body(gh_module_registration_t *reg);

/** Sends a 1xx interim response (100..199 except 101: e.g. 103 with Link
 *  fields) before the final one; hdrs holds n name,value pairs. Does not
 *  raise SEND_RESPONSE. Dropped (0) for an HTTP/1.0 client. A relayed 100
 *  goes out only if the client waits for it and no body was read yet (it
 *  replaces the server's own), once; else it is dropped (0). Returns 0,
 *  -EINVAL, GH_ESTATE (headers already sent), GH_ECLOSED. */
GH_EXPORT int gh_http_response_send_interim(gh_http_response_t *resp, int status,
                                            const char *const *hdrs, size_t n);

/** 1 when the client closed or reset its connection, else 0 (a poll
 *  without waiting). A relaying handler checks it to cancel upstream work. */
GH_EXPORT int gh_http_context_client_gone(gh_http_context_t *ctx);

/** A connection after gh_http_context_upgrade(): a byte stream owned by the
 *  request, closed when the request ends. One thread at a time. */
typedef struct gh_http_stream gh_http_stream_t;

/** Switches protocols (WebSocket and other Upgrade): set status 101 and
 *  the response headers first (Upgrade; Connection: upgrade is added).
 *  Raises SEND_RESPONSE, writes the 101 head, and hands the connection over
 *  (*ret, bytes the client sent after its request head readable first).
 *  Only for an HTTP/1.1 request with "Connection: upgrade" and an Upgrade
 *  field whose body (if any) was read: GH_ESTATE otherwise, with nothing
 *  sent. The server's timeouts no longer apply to it; the stream calls take
 *  their own. Returns 0, GH_ESTATE, GH_ECLOSED, -ENOMEM, -EPERM (a
 *  SEND_RESPONSE module refused). */
GH_EXPORT int gh_http_context_upgrade(gh_http_context_t *ctx, gh_http_stream_t **ret);
/** As gh_stream_read/_write/_get_fd/_pending/_shutdown_write (httpapi.h):
 *  read >0, 0 at EOF, GH_ETIMEOUT, GH_ECLOSED; write all or GH_ETIMEOUT /
 *  GH_ECLOSED; timeout_ms < 0 waits forever; the fd is for poll(POLLIN)
 *  only; pending > 0 means readable without waiting (poll only at 0). */
GH_EXPORT ssize_t gh_http_stream_read(gh_http_stream_t *s, void *buf, size_t len, int timeout_ms);
GH_EXPORT int gh_http_stream_write(gh_http_stream_t *s, const void *buf, size_t len,
                                   int timeout_ms);
GH_EXPORT int gh_http_stream_get_fd(const gh_http_stream_t *s);
GH_EXPORT size_t gh_http_stream_pending(const gh_http_stream_t *s);
GH_EXPORT int gh_http_stream_shutdown_write(gh_http_stream_t *s);

/* ---------------------------------------------------------------------- */
/* ABI 2.2 (issue 15): identity to an upstream, as the client              */
/* ---------------------------------------------------------------------- */

/** Connects a new AF_UNIX stream socket to `path` AS THE CLIENT, through
 *  gh_token_connect_unix with the request's token: the peer's SO_PEERCRED
 *  and SO_PEERGROUPS report the client's uid, gid and groups (the anonymous
 *  account for an IDENTIFY token), and the socket file's permissions are
 *  checked as the client. Always the client, whether or not the site
 *  impersonates and whatever the calling thread's identity. *ret_fd is
 *  O_CLOEXEC|O_NONBLOCK and connected; the module owns it and must use it
 *  for this identity only (key pools with gh_http_context_get_identity_key).
 *  Returns 0, GH_ENOT_FOUND for a request without a token (anonymous), or
 *  gh_token_connect_unix's errors. From the thread running a notification
 *  of the request. */
GH_EXPORT int gh_http_context_connect_unix(gh_http_context_t *ctx, const char *path, int *ret_fd);
/** The request token's identity key (gh_token_get_identity_key:
 *  "UID:GID:G1,G2,..."), request memory: connections made by
 *  gh_http_context_connect_unix for requests with equal keys are
 *  interchangeable, and never otherwise. GH_ENOT_FOUND without a token. */
GH_EXPORT int gh_http_context_get_identity_key(gh_http_context_t *ctx, const char **ret_key);
/** The name of the request's in-process MEMORY ccache ("MEMORY:gh-deleg-...")
 *  holding the client's Kerberos credentials: the TGT the client delegated
 *  (Negotiate with delegation), or the tickets S4U got for it (site s4u =
 *  self | proxy: the S4U2Self evidence ticket and an S4U2Proxy ticket to
 *  each allowed s4u_targets SPN); NULL when there are none or the request
 *  is anonymous. For GSS initiator calls in this process at base identity
 *  (gss_acquire_cred_from with a "ccache" store element), e.g. Kerberos to
 *  an upstream as the client; unlike gh_http_request_get_delegated_ccache
 *  nothing is written to disk. Borrowed; destroyed when the request ends. */
GH_EXPORT const char *gh_http_request_get_delegated_mem_ccache(gh_http_request_t *req);

/* ---------------------------------------------------------------------- */
/* ABI 2.3: waiting for a descriptor without holding a worker               */
/* ---------------------------------------------------------------------- */

#define GH_HTTP_WAIT_IN 0x1u  /* readable (or hung up / in error) */
#define GH_HTTP_WAIT_OUT 0x2u /* writable */
#define GH_HTTP_WAIT_READY 0   /* the descriptor reported an event: look without */
                               /* blocking (a wake-up may be spurious: wait again) */
#define GH_HTTP_WAIT_TIMEOUT 1 /* timeout_ms passed first, or the server stops past */
                               /* its grace (the client connection is then cut) */

/** A wait's callback: result is GH_HTTP_WAIT_READY, GH_HTTP_WAIT_TIMEOUT, or
 *  a negative error when the wait could not be set up after the callback
 *  that asked for it returned (then end the request). Runs on a worker
 *  thread of the server, at base identity whatever the site's
 *  impersonation (gh_http_context_impersonate works and is reverted after
 *  it), as part of the notification that asked. Returns like that
 *  notification's callback: FINISH or CONTINUE, or PENDING after calling
 *  gh_http_context_wait_fd() again (or when another thread will call
 *  gh_http_context_complete()). */
typedef gh_request_status_t (*gh_http_wait_cb)(gh_http_context_t *ctx, int result, void *arg);

/** Asks the server to wait for `events` on fd (a socket to an upstream, a
 *  pipe...) instead of a worker thread: the module's callback then returns
 *  GH_REQUEST_PENDING, its worker goes on serving other connections, and
 *  cb(ctx, result, arg) runs when fd is ready or after timeout_ms (< 0: no
 *  limit; 250 ms granularity), on whichever worker gets the event. fd is
 *  the module's and must stay open until cb runs; it stays registered
 *  with the server (disarmed) until closed, so waiting again on a pooled
 *  connection costs one system call. At most one wait per request.
 *  Returns 0 (return PENDING now), GH_EUNSUPPORTED (this server has no
 *  inline workers: do the work blocking instead), GH_ESTATE (a wait is
 *  already asked for), -EINVAL. From a request notification's callback or
 *  a wait callback, on the thread running it. */
GH_EXPORT int gh_http_context_wait_fd(gh_http_context_t *ctx, int fd, unsigned events,
                                      int timeout_ms, gh_http_wait_cb cb, void *arg);
/** ABI 2.4: gh_http_context_wait_fd() for a descriptor waited on again and
 *  again (a pooled upstream connection): fd stays registered with the
 *  server, edge-triggered, so a wait costs no system call. key names the
 *  connection behind fd: nonzero and never given to another descriptor (a
 *  counter of the module's connections); a wait on the same fd number
 *  with another key registers it anew (the kernel forgot the old one at
 *  its close). A wake-up may be spurious (an event that came while the
 *  descriptor sat unused is reported to its next wait). key 0:
 *  gh_http_context_wait_fd(). */
GH_EXPORT int gh_http_context_wait_kept(gh_http_context_t *ctx, int fd, uint64_t key,
                                        unsigned events, int timeout_ms, gh_http_wait_cb cb,
                                        void *arg);

/* ---------------------------------------------------------------------- */
/* ABI 2.4: a module's data per site, built once per configuration         */
/* ---------------------------------------------------------------------- */

/** Builds a module's data for the request's site from the site's keys
 *  (gh_http_context_get_config_*): 0 and *ret_data (may be NULL), or an
 *  error (nothing is kept; the next request builds again). The data is
 *  shared by every request of the site, on any thread: it must hold
 *  nothing of this request beyond the site's configuration (no user, no
 *  URL) and stay read-only once returned. Runs on the request's thread
 *  (which may be impersonating: read no file here). */
typedef int (*gh_site_data_build_cb)(gh_http_context_t *ctx, void **ret_data);
/** Frees what a build returned. */
typedef void (*gh_site_data_free_cb)(void *data);

/** The calling module's data (id: gh_module_registration_get_id()) for the
 *  request's site under the configuration the request runs with: made by
 *  build(ctx, &data) for the first request of that site and configuration
 *  that asks, then returned to every later one. A reload installs a new
 *  configuration: its requests build anew from the new values, while
 *  requests still running under the old one keep the old data. Data is
 *  freed with free_cb (may be NULL) together with its configuration (old
 *  configurations are kept until the pipeline is freed, and the data goes
 *  before the modules unload), never while a request can still use it; for
 *  a request outside any configured site it is built for that request only
 *  and freed when it ends. Two requests may build at once: one result is
 *  kept, the other freed with free_cb. Returns 0 and *ret_data (borrowed
 *  at least until the request ends), build's error, -ENOMEM, -EINVAL. From
 *  the thread running a notification (or a wait callback) of the request. */
GH_EXPORT int gh_http_context_get_site_data(gh_http_context_t *ctx, int id,
                                            gh_site_data_build_cb build,
                                            gh_site_data_free_cb free_cb, void **ret_data);

/* ---------------------------------------------------------------------- */
/* Host API: for gatehoused and applications embedding the pipeline        */
/* ---------------------------------------------------------------------- */

/*
 * The host (the daemon) creates one pipeline, loads modules into it, gives
 * it a configuration (sections and keys of gatehouse.conf), starts it, and
 * for each request received from httpapi calls gh_pipeline_process() from a
 * worker thread. See docs/internals/pipeline.md.
 */
typedef struct gh_pipeline gh_pipeline_t;
typedef struct gh_pipeline_config gh_pipeline_config_t;
struct gh_request; /* gatehouse/httpapi.h */

/** Log sink of the host: msg is one line without newline. Any thread. */
typedef void (*gh_pipeline_log_cb)(void *data, gh_log_level_t level, const char *msg);
/** Executor of the host: run fn(arg) soon on a worker thread at base. */
typedef void (*gh_pipeline_executor_cb)(void *data, void (*fn)(void *arg), void *arg);

/** New empty pipeline (no module, empty config). */
GH_EXPORT int gh_pipeline_new(gh_pipeline_t **ret_pipeline);
/** Raises GH_GLOBAL_STOP if started, terminates and unloads every module,
 *  frees. No request may be running. Accepts NULL. */
GH_EXPORT void gh_pipeline_free(gh_pipeline_t *pl);
/** Installs the log sink (before start). */
GH_EXPORT void gh_pipeline_set_log(gh_pipeline_t *pl, gh_pipeline_log_cb cb, void *data);
/** Installs the executor used to resume PENDING requests (before start).
 *  Without one, gh_http_context_complete() resumes on its calling thread. */
GH_EXPORT void gh_pipeline_set_executor(gh_pipeline_t *pl, gh_pipeline_executor_cb cb,
                                        void *data);
/** Loads the module at path (dlopen RTLD_NOW|RTLD_LOCAL), checks its ABI
 *  record and name, calls its gh_register_module. Errors: GH_EMODULE_ABI,
 *  GH_EMODULE_DUPLICATE, GH_ENOT_FOUND (no such file or symbol), or what the
 *  module returned; errbuf (may be NULL) receives a one-line message naming
 *  the path. Before gh_pipeline_start only; loading thread. */
GH_EXPORT int gh_pipeline_load_module(gh_pipeline_t *pl, const char *path, char *errbuf,
                                      size_t errlen);
/** Registers a module compiled into the host (no .so): same checks. */
GH_EXPORT int gh_pipeline_add_module(gh_pipeline_t *pl, const gh_module_abi_t *abi,
                                     gh_register_module_fn fn, char *errbuf, size_t errlen);
/** Number of loaded modules, and the name of the i-th (load order). */
GH_EXPORT size_t gh_pipeline_get_module_count(gh_pipeline_t *pl);
GH_EXPORT const char *gh_pipeline_get_module_name(gh_pipeline_t *pl, size_t i);

/** A configuration: an ordered list of (section, key, value). Sections are
 *  "server", "site /path" and "module NAME". Immutable once applied. */
GH_EXPORT int gh_pipeline_config_new(gh_pipeline_config_t **ret_config);
GH_EXPORT void gh_pipeline_config_free(gh_pipeline_config_t *cfg);
/** Appends key = value to section (all copied). Declares the section even
 *  when key is NULL. Same as gh_pipeline_config_add_at(cfg, section, key,
 *  value, NULL, 0, GH_PIPELINE_CONFIG_HOST). */
GH_EXPORT int gh_pipeline_config_add(gh_pipeline_config_t *cfg, const char *section,
                                     const char *key, const char *value);
/** The key is the host's own (gatehoused's auth, listen ... keys): never
 *  "unknown" to gh_pipeline_config_check, which checks it only when the
 *  pipeline or a module declares it too. */
#define GH_PIPELINE_CONFIG_HOST 0x1u
/** gh_pipeline_config_add with where the line came from (file, copied, and
 *  line; NULL, 0 when unknown) for the messages of gh_pipeline_config_check,
 *  and flags (GH_PIPELINE_CONFIG_HOST). A key added without
 *  GH_PIPELINE_CONFIG_HOST must be declared: by the pipeline (impersonate),
 *  by a loaded module's key table, or be NAME.key of a loaded module that
 *  has no table. */
GH_EXPORT int gh_pipeline_config_add_at(gh_pipeline_config_t *cfg, const char *section,
                                        const char *key, const char *value, const char *file,
                                        unsigned line, unsigned flags);
/** Checks cfg against the loaded modules, in file order, and returns the
 *  first error as GH_ECONFIG with errbuf "FILE:LINE: [section] key = value:
 *  why" (without "FILE:LINE: " for entries added without a place): a value
 *  that fails its key's type, range or check; a one-value key given twice
 *  in a section (both lines named); a key nobody declared (above); a site
 *  path not starting with '/'; a handler no loaded module has. Loading
 *  thread. Call it at load and before every reload: gh_pipeline_set_config_take
 *  does not refuse a configuration (typed getters then fail with
 *  GH_ECONFIG on what did not pass). */
GH_EXPORT int gh_pipeline_config_check(gh_pipeline_t *pl, const gh_pipeline_config_t *cfg,
                                       char *errbuf, size_t errlen);
/** Who declared key in section ("site /x" or "module NAME"): the module's
 *  name, "pipeline" for the pipeline's own keys, NAME for a NAME.key of a
 *  loaded module without a table; NULL when nobody did. Borrowed while the
 *  pipeline lives. For a host telling an unknown key from one that has no
 *  effect where it is. */
GH_EXPORT const char *gh_pipeline_find_key(gh_pipeline_t *pl, const char *section, const char *key);
/** Installs cfg (takes ownership). Requests already running keep the config
 *  they started with; new requests use cfg. After gh_pipeline_start this
 *  raises GH_GLOBAL_CONFIG_RELOAD. */
GH_EXPORT int gh_pipeline_set_config_take(gh_pipeline_t *pl, gh_pipeline_config_t *cfg);

/** Raises GH_GLOBAL_START; after it requests may be processed. */
GH_EXPORT int gh_pipeline_start(gh_pipeline_t *pl);
/** Raises GH_GLOBAL_STOP (once). */
GH_EXPORT void gh_pipeline_stop(gh_pipeline_t *pl);

/** Site section name ("site /files") whose path is the longest prefix of
 *  path on a segment boundary, or NULL. Borrowed until the next config. */
GH_EXPORT const char *gh_pipeline_find_site(gh_pipeline_t *pl, const char *path);
/** 1 when the handler module of site ("/files" or "site /files") asked for
 *  streamed bodies (gh_module_registration_set_streamed_body), else 0: the
 *  host sets stream_body on that site's URL group. Any thread. */
GH_EXPORT int gh_pipeline_site_streams_body(gh_pipeline_t *pl, const char *site);

/** Runs the whole pipeline for req (a request received from httpapi), on a
 *  worker thread at base identity (checked: GH_ESTATE and a 500 otherwise).
 *  site is the site's URL prefix ("/files") or NULL to pick it by longest
 *  prefix. The pipeline takes over the request: it closes its auth-info
 *  token, sends the response and completes it. Returns 0 when the request
 *  finished, GH_REQUEST_PENDING (positive) when a module suspended it (the
 *  pipeline completes it later), or an error (the request was answered with
 *  a 500 or dropped). */
GH_EXPORT int gh_pipeline_process(gh_pipeline_t *pl, const char *site, struct gh_request *req);

#ifdef __cplusplus
}
#endif

#endif
