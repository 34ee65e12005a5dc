/* authz_rules.h: URL authorization rules (IIS order: deny before allow, parent before child). */
#ifndef GH_AUTHZ_RULES_H
#define GH_AUTHZ_RULES_H

#include <stdbool.h>
#include <stddef.h>

/*
 * A `require` value is a space-separated list of rules:
 *   [allow:|deny:]WHO[:VERBS]
 * WHO is `*` (everyone), `?` (anonymous), `valid-user` (any authenticated
 * user), `user:NAME`, `group:NAME` (through is_in_role) or `sid:S-1-…`
 * (the token's user or group SIDs, Active Directory users; a user without
 * SIDs is not a member; no token to ask: undecided). VERBS is a
 * comma-separated method list (GET,HEAD); absent = all methods. Examples:
 *   require = valid-user
 *   require = user:alice group:staff deny:user:bob deny:?:POST
 * Rules from several `require` values (parent path first, then child) are
 * evaluated IIS-style: every deny rule in order, first match denies; then
 * every allow rule in order, first match allows; nothing matched denies.
 *
 * Group membership is tri-state (DESIGN.md §2 item 26): a group rule whose
 * membership could not be decided (NSS failed) matches neither way, and the
 * verdict is worked out in three-valued logic: a deny rule that surely
 * matches denies; else no allow rule surely matching denies; else any
 * undecided rule on the way makes the verdict UNDECIDED (the module answers
 * 503) — so an undecided rule never lets a request through, and never
 * blames the client for the server's failure when a decided rule would have
 * let it in.
 */

typedef enum authz_verdict {
  AUTHZ_ALLOW = 0,
  AUTHZ_DENY = 1,
  AUTHZ_UNDECIDED = 2, /* the verdict hangs on a membership nobody could decide */
} authz_verdict_t;

/* One membership answer. */
typedef enum authz_member { AUTHZ_NO = 0, AUTHZ_YES = 1, AUTHZ_UNKNOWN = 2 } authz_member_t;

typedef struct authz_subject {
  bool anonymous;
  const char *name;    /* as authenticated */
  const char *local;   /* local account */
  const char *method;
  /* group membership (never called for an anonymous subject) */
  authz_member_t (*in_role)(void *data, const char *group);
  /* SID membership (never called for an anonymous subject) */
  authz_member_t (*has_sid)(void *data, const char *sid);
  void *data;
} authz_subject_t;

/* Evaluates the rule lists lists[0..n) (parent first). Malformed rules fail
 * closed (deny). */
authz_verdict_t authz_evaluate(const char *const *lists, size_t n, const authz_subject_t *who);

/* Checks the syntax of one require value: 0, or -EINVAL with *ret_bad set to
 * the offending rule's offset. */
int authz_check(const char *list, size_t *ret_bad);

#endif
