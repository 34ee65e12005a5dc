/* authz_rules.h: URL authorization rules (IIS order: deny before allow, parent before child). */
#ifndef GH_AUTHZ_RULES_H
#define GH_AUTHZ_RULES_H

#include <stdbool.h>
#include <stddef.h>

/*
 * A `require` value is a space-separated list of rules:
 *   [allow:|deny:]WHO[:VERBS]
 * WHO is `*` (everyone), `?` (anonymous), `valid-user` (any authenticated
 * user), `user:NAME`, or `group:NAME` (through is_in_role). VERBS is a
 * comma-separated method list (GET,HEAD); absent = all methods. Examples:
 *   require = valid-user
 *   require = user:alice group:staff deny:user:bob deny:?:POST
 * Rules from several `require` values (parent path first, then child) are
 * evaluated IIS-style: every deny rule in order, first match denies; then
 * every allow rule in order, first match allows; nothing matched denies.
 */

typedef enum authz_verdict { AUTHZ_ALLOW = 0, AUTHZ_DENY = 1 } authz_verdict_t;

typedef struct authz_subject {
  bool anonymous;
  const char *name;    /* as authenticated */
  const char *local;   /* local account */
  const char *method;
  /* group membership; returns true when member */
  bool (*in_role)(void *data, const char *group);
  void *data;
} authz_subject_t;

/* Evaluates the rule lists lists[0..n) (parent first). Malformed rules fail
 * closed (deny). */
authz_verdict_t authz_evaluate(const char *const *lists, size_t n, const authz_subject_t *who);

/* Checks the syntax of one require value: 0, or -EINVAL with *ret_bad set to
 * the offending rule's offset. */
int authz_check(const char *list, size_t *ret_bad);

#endif
