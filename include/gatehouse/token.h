/* token.h: access tokens (client identities) reached through generation-checked handles. */
#ifndef GATEHOUSE_TOKEN_H
#define GATEHOUSE_TOKEN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <gssapi/gssapi.h>

#include <gatehouse/common.h>
#include <gatehouse/error.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The Linux counterpart of a Windows access token.
 *
 * A token is an immutable, atomically reference-counted record of one
 * identity: user name, the name as authenticated, uid, primary gid, the
 * supplementary groups (sorted, deduplicated, at most max_groups, always
 * containing the primary gid), type, impersonation level, source, creation
 * and expiry time, a unique id and an optional delegated GSS credential.
 *
 * Tokens are only reached through handles (gh_token_t). A handle is a slot
 * index plus a generation: once a handle is closed, or its owner closed it,
 * every call with it returns GH_EINVALID_HANDLE. A handle is never 0.
 *
 * Handle kinds:
 *  - owned: returned by every constructor, gh_token_open_handle and
 *    gh_token_duplicate. The receiver closes it with gh_token_close at most
 *    once: a second close returns GH_EINVALID_HANDLE. A handle never closed
 *    keeps its token alive (a leak), except the token of a request's
 *    auth-info record (authinfo.h), which the server closes when the
 *    request completes if the receiver did not.
 *  - borrowed: returned by gh_token_borrow. Same slot and generation as the
 *    owned handle it came from, with a "borrowed" bit. It works in every
 *    query and in gh_impersonate, but gh_token_close on it returns
 *    GH_EBORROWED and changes nothing. It becomes invalid
 *    (GH_EINVALID_HANDLE) the moment its owner closes the owned handle, so a
 *    module can never outlive or destroy the server's token. A borrower that
 *    needs the token longer takes its own owned handle with
 *    gh_token_open_handle.
 *
 * Every function here may be called from any thread, concurrently, once
 * gh_sec_init (impersonate.h) has returned. Every call that takes a handle
 * borrows it for the duration of the call only. Output parameters (ret_*)
 * are written only on success.
 */

/** A token handle. 0 (GH_TOKEN_NULL) is never a valid handle. */
typedef uint64_t gh_token_t;
#define GH_TOKEN_NULL ((gh_token_t)0)

/** Token type: primary (a process identity, usable by gh_token_spawn_as
 *  and gh_impersonate) or impersonation (a thread identity). */
typedef enum { GH_TOKEN_PRIMARY = 1, GH_TOKEN_IMPERSONATION = 2 } gh_token_type_t;

/** Impersonation level, lowest first. A duplicate never has a higher level
 *  than its source.
 *  ANONYMOUS and IDENTIFY: queries, membership and access checks only;
 *  impersonating such a token gives the thread the configured anonymous
 *  account (uid/gid of gh_sec_config_t.anonymous_user, no supplementary
 *  groups), never the client's rights. IMPERSONATE: the thread runs as the
 *  client. DELEGATE: as IMPERSONATE, and the token carries the client's
 *  delegated GSS credential. */
typedef enum {
  GH_LEVEL_ANONYMOUS = 0,
  GH_LEVEL_IDENTIFY = 1,
  GH_LEVEL_IMPERSONATE = 2,
  GH_LEVEL_DELEGATE = 3
} gh_token_level_t;

/** Where the identity came from. GH_SOURCE_LOCAL: a service-side lookup of
 *  a local account with no client authentication (opts == NULL). */
typedef enum {
  GH_SOURCE_ANONYMOUS = 0,
  GH_SOURCE_KERBEROS,
  GH_SOURCE_NTLM,
  GH_SOURCE_BASIC,
  GH_SOURCE_PEER,
  GH_SOURCE_LOCAL
} gh_token_source_t;

/** Limits on a token's SIDs: count, and bytes of one SID string with its NUL. */
#define GH_TOKEN_MAX_SIDS 4096
#define GH_TOKEN_SID_MAX 192

/** Options for gh_token_from_user. All pointers are borrowed for the call,
 *  except delegated_cred, which the token takes on success only (on failure
 *  the caller still owns it). A delegated credential is kept only at level
 *  GH_LEVEL_DELEGATE; at any lower level it is released on success. */
typedef struct gh_token_opts {
  gh_token_level_t level;
  gh_token_source_t source;
  const char *auth_name;        /* "alice@REALM", "DOM\\alice"; NULL = user name */
  time_t expiry;                /* absolute, CLOCK_REALTIME seconds; 0 = none */
  gss_cred_id_t delegated_cred; /* taken on success; may be GSS_C_NO_CREDENTIAL */
  /* Windows identity (Active Directory): SID strings "S-1-5-21-…", the
   * user's first, then its groups', as a verified PAC or the DC gave them;
   * copied into the token. NULL/0 = none (MIT realm, Basic, peers). At most
   * 4096, each a valid SID string, else -EINVAL. */
  const char *const *sids;
  size_t nsids;
  /* Supplementary gids to use instead of NSS's (group_source = pac: the
   * SIDs mapped through winbind); NULL = the account's NSS groups. The
   * primary gid is always the account's. Ignored at level ANONYMOUS. */
  const gid_t *groups;
  size_t ngroups;
} gh_token_opts_t;

/** GetTokenInformation(TokenStatistics)-like snapshot. */
typedef struct gh_token_statistics {
  uint64_t token_id;       /* unique per token; duplicates get a new id */
  gh_token_type_t type;
  gh_token_level_t level;
  gh_token_source_t source;
  time_t created;          /* CLOCK_REALTIME seconds */
  time_t expiry;           /* 0 = none */
  uint32_t group_count;    /* supplementary groups, primary gid included */
  uint32_t ref_count;      /* references at the time of the call (handles + users) */
  bool has_delegated_cred;
  uint32_t sid_count;      /* SIDs (gh_token_get_sids); 0 without a Windows identity */
} gh_token_statistics_t;

/** Build a token for the local account `user` (getpwnam_r + getgrouplist,
 *  group list served from the NSS cache for gh_sec_config_t.group_cache_ttl_s).
 *  opts may be NULL: level IMPERSONATE, source LOCAL, no expiry, no cred.
 *  Type is GH_TOKEN_IMPERSONATION. Call at base identity (NSS runs as the
 *  service, never as a client); a thread that is impersonating gets GH_ESTATE.
 *  Errors: GH_ENO_SUCH_USER, GH_EUID_REFUSED (uid 0, service uid, uid <
 *  min_uid), GH_ELIMIT (more than max_groups groups), -ENOMEM, -EINVAL.
 *  *ret_token is an owned handle; close it with gh_token_close. Any thread. */
GH_EXPORT int gh_token_from_user(const char *user, const gh_token_opts_t *opts,
                                 gh_token_t *ret_token);

/** Build a token for the peer of a connected AF_UNIX socket. The uid is
 *  SO_PEERCRED's (the peer's at connect()); gid and groups follow
 *  gh_sec_config_t.peer_groups: by default the kernel's (SO_PEERCRED gid,
 *  SO_PEERGROUPS), with GH_PEER_GROUPS_NSS the account's from NSS, as
 *  gh_token_from_user (then GH_ENO_SUCH_USER for a uid NSS does not know,
 *  GH_ESTATE on an impersonating thread). Level IMPERSONATE, source PEER,
 *  type IMPERSONATION; the user name is the NSS name of the uid or (kernel
 *  groups only) its decimal form when NSS has none. unix_fd is borrowed.
 *  Same refusals as gh_token_from_user. *ret_token is owned. Any thread. */
GH_EXPORT int gh_token_from_peer(int unix_fd, gh_token_t *ret_token);

/** A token for the anonymous account (gh_sec_config_t.anonymous_user):
 *  level ANONYMOUS, source ANONYMOUS, no supplementary groups.
 *  *ret_token is owned. Any thread. */
GH_EXPORT int gh_token_anonymous(gh_token_t *ret_token);

/** Close an owned handle, dropping its reference; the token is freed (and
 *  its delegated credential released) with its last reference. Borrowed
 *  handles from this one become invalid at once. Returns GH_EINVALID_HANDLE
 *  for a closed, stale or unknown handle (so a second close reports it) and
 *  GH_EBORROWED for a borrowed handle, which stays usable. Any thread. */
GH_EXPORT int gh_token_close(gh_token_t token);

/** A new owned handle to the same token (DuplicateHandle-like: same id,
 *  same everything). token may be owned or borrowed. Close the new handle
 *  with gh_token_close. Any thread. */
GH_EXPORT int gh_token_open_handle(gh_token_t token, gh_token_t *ret_token);

/** A borrowed handle to the token behind the owned handle `token` (see the
 *  top of this file): usable until the owner closes `token`, and never
 *  closable by the borrower. Borrowing a borrowed handle returns it as is.
 *  Allocates nothing. Any thread. */
GH_EXPORT int gh_token_borrow(gh_token_t token, gh_token_t *ret_token);

/** Whether `token` is a borrowed handle (no validity check). */
GH_EXPORT bool gh_token_is_borrowed(gh_token_t token);

/** DuplicateTokenEx-like: a new token (new id) with the same identity at
 *  `level` and `type`. The level can never be raised and a PRIMARY token
 *  needs level IMPERSONATE or DELEGATE: both give
 *  GH_EBAD_IMPERSONATION_LEVEL. The delegated credential is shared (by
 *  reference) only when the new level is DELEGATE. *ret_token is owned.
 *  Any thread. */
GH_EXPORT int gh_token_duplicate(gh_token_t token, gh_token_level_t level,
                                 gh_token_type_t type, gh_token_t *ret_token);

/*
 * Queries. All borrow the handle for the call and return GH_EINVALID_HANDLE
 * for a stale one. String queries copy into the caller's buffer and return
 * the string length (>= 0), or -ERANGE if len is too small.
 */

/** Local account name (for ANONYMOUS-level tokens: the anonymous account). */
GH_EXPORT int gh_token_get_user(gh_token_t token, char *buf, size_t len);
/** The name as authenticated ("alice@REALM"); the user name if none was given. */
GH_EXPORT int gh_token_get_auth_name(gh_token_t token, char *buf, size_t len);
GH_EXPORT int gh_token_get_uid(gh_token_t token, uid_t *ret_uid);
GH_EXPORT int gh_token_get_gid(gh_token_t token, gid_t *ret_gid);
/** Supplementary groups, sorted ascending, primary gid included. Returns the
 *  count; with buf == NULL or len == 0 only counts; -ERANGE if 0 < len < count. */
GH_EXPORT int gh_token_get_groups(gh_token_t token, gid_t *buf, size_t len);
GH_EXPORT int gh_token_get_level(gh_token_t token, gh_token_level_t *ret_level);
GH_EXPORT int gh_token_get_type(gh_token_t token, gh_token_type_t *ret_type);
GH_EXPORT int gh_token_get_source(gh_token_t token, gh_token_source_t *ret_source);
/** Absolute expiry (CLOCK_REALTIME seconds), 0 = none. */
GH_EXPORT int gh_token_get_expiry(gh_token_t token, time_t *ret_expiry);
GH_EXPORT int gh_token_get_id(gh_token_t token, uint64_t *ret_id);
/** The delegated GSS credential, or GSS_C_NO_CREDENTIAL. Borrowed: valid
 *  while `token` (or, for a borrowed handle, its owner) stays open; never
 *  release it. Use it at base identity or under impersonation of this token. */
GH_EXPORT int gh_token_get_delegated_cred(gh_token_t token, gss_cred_id_t *ret_cred);
GH_EXPORT int gh_token_get_statistics(gh_token_t token, gh_token_statistics_t *ret_stats);

/** CheckTokenMembership-like: whether gid is the token's primary gid or one
 *  of its groups. Any level. */
GH_EXPORT int gh_token_is_member(gh_token_t token, gid_t gid, bool *ret_member);
/** Whether the token is a member of the group called `group`, tri-state
 *  (gh_membership_t: "could not decide" is never "no"). NSS resolves the
 *  name to a gid and the token's own groups answer, as gh_token_is_member:
 *  the token is the identity, exactly what the kernel checks while
 *  impersonating. Names are resolved once per
 *  gh_sec_config_t.group_cache_ttl_s (answers, "no such group" included,
 *  are cached; errors never are); groups of any size are read (up to 32
 *  MiB of entry).
 *  Returns
 *   - 0: decided, *ret_membership is GH_MEMBER_YES or GH_MEMBER_NO;
 *   - GH_MEMBER_NO_SUCH_GROUP (positive): decided, GH_MEMBER_NO, because
 *     NSS has no such group;
 *   - negative: could not decide, *ret_membership is GH_MEMBER_UNKNOWN and
 *     the return says why: the NSS error (-EACCES, -EIO, -EAGAIN ...),
 *     GH_ELIMIT (entry past the cap), -ENOMEM, GH_EINVALID_HANDLE, -EINVAL.
 *  Unlike other ret_ parameters, *ret_membership is written on failure too
 *  (GH_MEMBER_UNKNOWN), so a caller that drops the return still decides
 *  nothing. Any thread and any identity: a lookup that must ask NSS runs
 *  at base identity (an impersonating thread is switched to base for the
 *  call and back). May block on a directory on a cache miss. */
GH_EXPORT int gh_token_is_member_name(gh_token_t token, const char *group,
                                      gh_membership_t *ret_membership);

/** The token's SIDs (Active Directory identities only): the user's SID
 *  first, then its groups' (from the verified PAC or the DC), written to buf
 *  joined by ',' and NUL-terminated ("" when the token has none). Returns
 *  the number of SIDs (0: no Windows identity), -ERANGE when len is too
 *  small (GH_TOKEN_SID_MAX bytes per SID always suffice; gh_token_get_statistics gives
 *  sid_count). The token owns the SIDs; buf is the caller's. Any thread. */
GH_EXPORT int gh_token_get_sids(gh_token_t token, char *buf, size_t len);

/** The names of the token's groups (the gids of gh_token_get_groups, in
 *  that order), joined by ',' and NUL-terminated into buf, for an
 *  application that wants names (a proxied app's role mapping): resolved
 *  from the group database at the first call and kept by the token. A
 *  name's control bytes, bytes from 0x7f on (UTF-8), ',' and '%' are
 *  percent-encoded ("%C3%A9quipe", "a%2Cb"), so the list is printable
 *  ASCII and splits on ','; a gid with no group entry, or an empty name
 *  or one over 255 bytes, is written as its number. Returns the
 *  length written (without the NUL), -ERANGE when len is too small, or the
 *  lookup's failure (GH_ELIMIT, -EIO...: the database could not answer;
 *  never a shorter list), -EINVAL, GH_EINVALID_HANDLE. Any thread; the
 *  first call may block on NSS. ABI 2.5. */
GH_EXPORT int gh_token_get_group_names(gh_token_t token, char *buf, size_t len);

/** Whether sid ("S-1-5-21-…-1104", compared exactly)
 *  is the token's user SID or one of its group SIDs. A token without SIDs
 *  answers false: the caller decides whether that means "cannot
 *  decide". Any level. Any thread. */
GH_EXPORT int gh_token_has_sid(gh_token_t token, const char *sid, bool *ret_member);

/** The kernel's own answer to "may this token access path with mode
 *  (R_OK|W_OK|X_OK|F_OK)": the calling thread switches to the token's ids
 *  (the client's own ids at every level, IDENTIFY included, as AccessCheck
 *  does; the anonymous account for ANONYMOUS), runs faccessat(AT_FDCWD,
 *  path, mode, AT_EACCESS) and switches back to whatever identity it had.
 *  Returns 0 if allowed, -EACCES if denied, another -errno (-ENOENT...) or
 *  GH_E* otherwise. Aborts if it cannot switch back. Any thread. */
GH_EXPORT int gh_token_access_check(gh_token_t token, const char *path, int mode);

#ifdef __cplusplus
}
#endif

#endif
