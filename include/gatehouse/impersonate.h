/* impersonate.h: per-thread impersonation, call scopes, privilege set-up and spawn-as. */
#ifndef GATEHOUSE_IMPERSONATE_H
#define GATEHOUSE_IMPERSONATE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <gatehouse/common.h>
#include <gatehouse/error.h>
#include <gatehouse/token.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Model (in full: docs/internals/sec.md, installed in share/doc/gatehouse):
 *  - The process has one "base" identity (real = effective = saved uid/gid
 *    and supplementary groups), recorded by gh_sec_init. It is root, or a
 *    service user holding only CAP_SETUID/CAP_SETGID (gh_privileges_drop).
 *  - gh_impersonate changes the *effective* uid/gid and the supplementary
 *    groups of the calling thread only, with raw syscalls (never the glibc
 *    wrappers, which change every thread). Real and saved ids stay at base.
 *  - gh_revert puts the thread back at base. If that fails the process
 *    aborts: it never serves as the wrong user.
 *  - Threads must be created at base. The first sec call on a thread checks
 *    the kernel's view of its ids and aborts if they are not base.
 */

/** Where the groups of a peer token (gh_token_from_peer) come from. */
typedef enum gh_peer_groups {
  /** Default. The kernel's: the uid, gid and supplementary groups the peer
   *  process had at connect() (SO_PEERCRED, SO_PEERGROUPS), whatever NSS
   *  says; a process that dropped a group (newgrp, setgroups) has dropped it
   *  for gatehouse too. */
  GH_PEER_GROUPS_KERNEL = 0,
  /** NSS's, as for Basic and Negotiate tokens: the uid from SO_PEERCRED,
   *  primary gid and groups of that account from NSS (cached as for
   *  gh_token_from_user); a uid NSS does not know is refused
   *  (GH_ENO_SUCH_USER). */
  GH_PEER_GROUPS_NSS = 1,
} gh_peer_groups_t;

/** Process-wide configuration, copied by gh_sec_init. */
typedef struct gh_sec_config {
  uid_t min_uid;              /* tokens refuse uid < min_uid (uid 0 and the service uid always) */
  const char *anonymous_user; /* account for ANONYMOUS/IDENTIFY impersonation; NULL = "nobody" */
  unsigned group_cache_ttl_s; /* NSS group-list and group-name cache lifetime; 0 = no caching */
  unsigned max_groups;        /* supplementary group cap; 0 = 1024; more -> GH_ELIMIT */
  gh_peer_groups_t peer_groups; /* groups of peer tokens; default (0) the kernel's */
} gh_sec_config_t;

/** Initialise the sec layer: copy cfg (NULL = min_uid 1000, "nobody", 60 s,
 *  1024, kernel peer groups), record the calling thread's ids as the base identity and its euid
 *  as the service uid, resolve the anonymous account. If anonymous_user is
 *  NULL and "nobody" does not resolve, 65534:65534 is used; a configured
 *  name that does not resolve is GH_ENO_SUCH_USER; max_groups above 65536
 *  or an unknown peer_groups is GH_ECONFIG. Refuses
 *  (GH_EPRIV_VERIFY) a process whose capabilities would survive
 *  impersonation (securebits NO_SETUID_FIXUP or non-root, with any
 *  capability other than SETUID/SETGID/NET_BIND_SERVICE/SETPCAP).
 *  Call once, at start-up, single-threaded, at base identity, after
 *  gh_privileges_drop. A second call returns GH_ESTATE. */
GH_EXPORT int gh_sec_init(const gh_sec_config_t *cfg);

/** Impersonation modes, per thread. */
typedef enum {
  /** Default. Last impersonate wins; one gh_revert restores base; a revert
   *  at base does nothing and returns 0. */
  GH_IMPERSONATE_TRADITIONAL = 0,
  /** Apartment model: a stack of at most GH_IMPERSONATE_MAX_DEPTH tokens;
   *  gh_revert pops one level and restores the outer client (or base).
   *  Overflow and underflow (revert at base) abort the process. */
  GH_IMPERSONATE_NESTED = 1
} gh_impersonate_mode_t;

#define GH_IMPERSONATE_MAX_DEPTH 16

/** Set the calling thread's mode. Only at base (GH_ESTATE otherwise).
 *  Calling thread only. */
GH_EXPORT int gh_impersonate_set_mode(gh_impersonate_mode_t mode);
/** The calling thread's mode. */
GH_EXPORT gh_impersonate_mode_t gh_impersonate_get_mode(void);

/** ImpersonateLoggedOnUser: the calling thread takes the token's identity
 *  (effective uid, effective gid, supplementary groups). For IMPERSONATE
 *  and DELEGATE tokens that is the client; for ANONYMOUS and IDENTIFY
 *  tokens it is the anonymous account with no supplementary groups (the
 *  call succeeds, gh_is_impersonating() is true, and the thread has no
 *  access as the client). The thread keeps its own reference to the token
 *  until it reverts, so the caller may close its handle meanwhile.
 *  setgroups is skipped when the thread already carries the same list.
 *  Errors (thread identity unchanged): GH_EINVALID_HANDLE,
 *  GH_ETOKEN_EXPIRED, GH_ENO_PRIVILEGE (the process lacks
 *  CAP_SETUID/CAP_SETGID: never continues as the service), GH_ESTATE
 *  (gh_sec_init not called). Nested-mode overflow aborts.
 *  Calling thread only. */
GH_EXPORT int gh_impersonate(gh_token_t token);

/** RevertToSelf: traditional mode, back to base (0 even if already at
 *  base); nested mode, pop one level (abort at base). Aborts the process if
 *  the kernel refuses to restore an identity. Calling thread only. */
GH_EXPORT int gh_revert(void);

struct open_how;

/** openat2(2) as the token: the same access decision as gh_impersonate(token)
 *  + openat2 + gh_revert — effective uid, gid and groups of the token, the
 *  anonymous account for ANONYMOUS and IDENTIFY tokens — but the calling
 *  thread's identity never changes. `how` as for openat2 (size must be
 *  sizeof(struct open_how)); O_CLOEXEC is always added. Where the kernel
 *  allows io_uring, each thread registers one io_uring personality per
 *  identity (once; up to 16 per thread, least recently used dropped) and the
 *  open runs in the kernel with it; otherwise (io_uring unavailable or
 *  filtered, GATEHOUSE_NO_IO_URING=1, more than 256 groups) the thread
 *  switches around one openat2, aborting if the switch back fails like
 *  gh_revert. Returns the new fd, -errno from openat2, or
 *  GH_EINVALID_HANDLE, GH_ETOKEN_EXPIRED, GH_ENO_PRIVILEGE, GH_ESTATE,
 *  -EINVAL. Calling thread only; works at base or impersonating. */
GH_EXPORT int gh_token_openat2(gh_token_t token, int dirfd, const char *path,
                               const struct open_how *how, size_t size);

/** connect(2) of a new AF_UNIX stream socket to `path` (a filesystem
 *  socket) as the token: the connect runs with the token's effective uid,
 *  gid and groups (the anonymous account for ANONYMOUS and IDENTIFY tokens,
 *  as gh_impersonate), so the kernel checks the path and the socket file's
 *  write permission as that user and the listener's SO_PEERCRED and
 *  SO_PEERGROUPS report those ids. The socket is created at the caller's
 *  identity with SOCK_CLOEXEC|SOCK_NONBLOCK; the thread switches around the
 *  one connect (aborting if the switch back fails, like gh_revert). On
 *  success *ret_fd is the connected socket (the caller closes it). Returns
 *  0, -errno from socket/connect (-EAGAIN: the listener's backlog is full,
 *  -ECONNREFUSED, -EACCES, -ENOENT ...), -ENAMETOOLONG, -EINVAL,
 *  GH_EINVALID_HANDLE, GH_ETOKEN_EXPIRED, GH_ENO_PRIVILEGE, GH_ESTATE.
 *  Calling thread only; works at base or impersonating. */
GH_EXPORT int gh_token_connect_unix(gh_token_t token, const char *path, int *ret_fd);

/** The identity a gh_token_connect_unix connection carries, as a string
 *  "UID:GID:G1,G2,..." (effective ids and sorted supplementary groups the
 *  connect runs with): two tokens have the same key exactly when their
 *  connections are indistinguishable to the peer, so a pool of such
 *  connections keyed by it never hands one user's connection to another.
 *  snprintf's contract: returns the key's whole length (without the NUL)
 *  and writes what fits in len bytes, NUL-terminated when len > 0 (buf may
 *  be NULL with len 0); a return >= len means the key did not fit. Errors:
 *  -EINVAL, GH_EINVALID_HANDLE, GH_ETOKEN_EXPIRED, GH_ESTATE. Any thread. */
GH_EXPORT int gh_token_get_identity_key(gh_token_t token, char *buf, size_t len);

/** Whether the calling thread is impersonating (any level). */
GH_EXPORT bool gh_is_impersonating(void);

/** Current nesting depth of the calling thread (0 = base). */
GH_EXPORT unsigned gh_impersonation_depth(void);

/** OpenThreadToken-like: a new owned handle to the token the calling thread
 *  impersonates, or GH_ENOT_IMPERSONATING. Close it with gh_token_close. */
GH_EXPORT int gh_thread_get_token(gh_token_t *ret_token);

/** Checks that the calling thread is at base, for the start of every
 *  request (a worker never starts a request impersonating): getresuid,
 *  getresgid and getgroups must equal the base identity and no
 *  impersonation may be recorded, or the process aborts (it never serves
 *  as the wrong user). Returns 0, or GH_ESTATE without checking anything
 *  when gh_sec_init has not been called (there is no base identity to
 *  compare with: call gh_sec_init at start-up). Any thread. */
GH_EXPORT int gh_assert_base(void);

/** Call scope (IServerSecurity's auto-revert: a call ends at the identity
 *  it began with, whatever the callee left). Opaque to
 *  callers; lives on the caller's stack for one call. */
typedef struct gh_call_scope {
  uint32_t magic;
  uint32_t depth;
  int mode;
  uint64_t thread_id;
} gh_call_scope_t;

/** Begin a call: record the calling thread's depth and mode. At depth 0 it
 *  also verifies the kernel ids are base (aborts otherwise). Same thread as
 *  the matching end. */
GH_EXPORT void gh_call_scope_begin(gh_call_scope_t *scope);

/** End a call: revert every impersonation the call left open (back to the
 *  recorded depth, or base), restore the recorded mode, then verify the
 *  kernel ids match (aborting otherwise, and on a wrong-thread or
 *  unbegun scope). Returns how many impersonations it had to revert
 *  (0 when the callee cleaned up after itself). */
GH_EXPORT int gh_call_scope_end(gh_call_scope_t *scope);

/** Flags for gh_privileges_drop. */
#define GH_PRIV_KEEP_NET_BIND_SERVICE 0x1u

/** Daemon privilege set-up (docs/internals/sec.md, "Privilege set-up").
 *  Call first thing, single-threaded (GH_ESTATE otherwise), before
 *  gh_sec_init.
 *  service_user == NULL: stay root. The process must be uid 0 holding
 *  CAP_SETUID, CAP_SETGID and CAP_SETPCAP (needed to shrink the bounding
 *  set), with securebits without NO_SETUID_FIXUP (so the kernel clears the
 *  effective capabilities while a thread impersonates). Keeps only
 *  CAP_SETUID and CAP_SETGID (plus CAP_NET_BIND_SERVICE with
 *  GH_PRIV_KEEP_NET_BIND_SERVICE) in the bounding, permitted and effective
 *  sets, none inheritable or ambient (CAP_SETPCAP, CAP_CHOWN,
 *  CAP_DAC_OVERRIDE and every other capability are dropped: delegated
 *  ccaches are written as the client); sets NO_NEW_PRIVS; reads it back.
 *  Otherwise: lock securebits KEEP_CAPS|NO_SETUID_FIXUP|NOROOT, drop every
 *  capability but CAP_SETUID, CAP_SETGID (and CAP_NET_BIND_SERVICE with
 *  GH_PRIV_KEEP_NET_BIND_SERVICE) from the bounding set, switch real,
 *  effective and saved ids and groups to service_user, keep exactly those
 *  capabilities permitted+effective (none inheritable or ambient), set
 *  NO_NEW_PRIVS, then read everything back. Returns 0 only if the result is
 *  exactly that; otherwise GH_EPRIV_VERIFY, GH_ENO_PRIVILEGE (not root /
 *  lacking CAP_SETPCAP), GH_ENO_SUCH_USER or GH_EUID_REFUSED (uid 0): the
 *  daemon must refuse to start. */
GH_EXPORT int gh_privileges_drop(const char *service_user, unsigned flags);

/** Options for gh_token_spawn_as; all borrowed for the call. */
typedef struct gh_spawn_opts {
  int stdin_fd;      /* dup2'ed to 0 in the child; -1 = /dev/null */
  int stdout_fd;     /* to 1; -1 = /dev/null */
  int stderr_fd;     /* to 2; -1 = /dev/null */
  const char *cwd;   /* chdir (as the client) before exec; NULL = inherit */
} gh_spawn_opts_t;

/** CreateProcessAsUser-like: fork a child that sets
 *  real, effective and saved uid and gid and the supplementary groups to
 *  the token's (raw syscalls), clears every capability, verifies with
 *  getresuid/getresgid/getgroups, then execve(argv[0], argv, envp). argv[0]
 *  must be an absolute path. Every other fd is closed on exec; signal mask
 *  and dispositions are reset. Needs level IMPERSONATE or DELEGATE (any
 *  type), else GH_EBAD_IMPERSONATION_LEVEL. A failure in the child before
 *  or at exec is reported through a CLOEXEC pipe and returned here as
 *  -errno (the child is reaped); GH_EPRIV_VERIFY if the ids did not verify.
 *  On success *ret_pid is the child, which the caller must wait for.
 *  opts may be NULL (all /dev/null). Any thread, at base or not (the child
 *  starts from the process's real ids, not the thread's). */
GH_EXPORT int gh_token_spawn_as(gh_token_t token, char *const argv[], char *const envp[],
                                const gh_spawn_opts_t *opts, pid_t *ret_pid);

/** Cloaking for outbound Kerberos: which identity an
 *  outbound GSS call made from a worker uses.
 *  NONE: always the service's own credentials.
 *  STATIC: the identity the thread had at the first gh_cloak_identity call
 *  (the client if it was impersonating, else the service), kept after.
 *  DYNAMIC: the thread's current identity at every call. */
typedef enum { GH_CLOAK_NONE = 0, GH_CLOAK_STATIC = 1, GH_CLOAK_DYNAMIC = 2 } gh_cloak_mode_t;

/** Cloaking state for one outbound channel. Used by one thread at a time;
 *  lives on the caller's side between gh_cloak_init and gh_cloak_done. */
typedef struct gh_cloak {
  gh_cloak_mode_t mode;
  bool captured;
  gh_token_t token; /* owned handle of the STATIC identity, or GH_TOKEN_NULL */
} gh_cloak_t;

/** Start a cloaking state; nothing is captured yet. */
GH_EXPORT void gh_cloak_init(gh_cloak_t *cloak, gh_cloak_mode_t mode);

/** The identity for an outbound call: *ret_token is a new owned handle the
 *  caller closes, or GH_TOKEN_NULL for the service itself. Calling thread. */
GH_EXPORT int gh_cloak_identity(gh_cloak_t *cloak, gh_token_t *ret_token);

/** The GSS initiator credential for an outbound call: GSS_C_NO_CREDENTIAL
 *  (service default credentials; make the call at base) when the identity
 *  is the service, else the identity's delegated credential, valid while the
 *  owned handle *ret_token (which the caller closes) stays open. A client
 *  identity without a delegated credential (level below DELEGATE) gives
 *  GH_EBAD_IMPERSONATION_LEVEL: it never falls back to the service. */
GH_EXPORT int gh_cloak_cred(gh_cloak_t *cloak, gss_cred_id_t *ret_cred, gh_token_t *ret_token);

/** Release what the cloaking state captured. Accepts a zeroed state. */
GH_EXPORT void gh_cloak_done(gh_cloak_t *cloak);

/** Store the token's delegated credential in the ccache `ccache_name`
 *  ("FILE:/path", owned by the client: the store runs under the client's
 *  ids) for a CGI child's KRB5CCNAME. Needs level
 *  DELEGATE with a credential (GH_EBAD_IMPERSONATION_LEVEL, GH_ENOT_FOUND);
 *  GSS failures give GH_EGSS. The caller removes the ccache when the
 *  request ends (delegated credentials never outlive their request). Any
 *  thread. */
GH_EXPORT int gh_token_store_delegated_ccache(gh_token_t token, const char *ccache_name);

#ifdef __cplusplus
}
#endif

#endif
