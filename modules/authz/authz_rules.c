/* authz_rules.c: parses and evaluates URL authorization rules, deny before allow, parent before
 * child. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "authz_rules.h"

#define RULE_MAX 512

typedef struct rule {
  bool deny;
  char who[RULE_MAX];
  const char *verbs; /* into who, or NULL */
} rule_t;

/* Parses one rule token into r. Returns false when malformed. */
/* S-1-<authority>-<sub>… : 1 to 15 sub-authorities, digits only */
static bool sid_syntax(const char *s)
{
  unsigned dashes = 0;
  if (strncmp(s, "S-1-", 4) != 0 || s[4] == '\0')
    return false;
  for (const char *p = s + 4; *p; p++) {
    if (*p == '-') {
      if (p[-1] == '-' || p[1] == '\0')
        return false;
      dashes++;
    } else if (*p < '0' || *p > '9') {
      return false;
    }
  }
  return dashes >= 1 && dashes <= 15;
}

static bool parse_rule(const char *tok, size_t len, rule_t *r)
{
  char *w;
  memset(r, 0, sizeof(*r));
  if (len == 0 || len >= RULE_MAX)
    return false;
  memcpy(r->who, tok, len);
  r->who[len] = '\0';
  w = r->who;
  if (strncmp(w, "deny:", 5) == 0) {
    r->deny = true;
    memmove(w, w + 5, strlen(w + 5) + 1);
  } else if (strncmp(w, "allow:", 6) == 0) {
    memmove(w, w + 6, strlen(w + 6) + 1);
  }
  if (strncmp(w, "user:", 5) == 0 || strncmp(w, "group:", 6) == 0 || strncmp(w, "sid:", 4) == 0) {
    char *name = strchr(w, ':') + 1;
    char *v = strchr(name, ':');
    if (*name == '\0' || name == v)
      return false;
    if (v != NULL) {
      *v = '\0';
      r->verbs = v + 1;
    }
    if (w[0] == 's' && !sid_syntax(name))
      return false;
  } else {
    char *v = strchr(w, ':');
    if (v != NULL) {
      *v = '\0';
      r->verbs = v + 1;
    }
    if (strcmp(w, "*") != 0 && strcmp(w, "?") != 0 && strcmp(w, "valid-user") != 0)
      return false;
  }
  if (r->verbs != NULL && *r->verbs == '\0')
    return false;
  return true;
}

static bool verb_matches(const char *verbs, const char *method)
{
  const char *p = verbs;
  size_t ml = strlen(method);
  if (verbs == NULL)
    return true;
  while (*p) {
    size_t n = strcspn(p, ",");
    if (n == ml && strncasecmp(p, method, n) == 0)
      return true;
    p += n;
    if (*p == ',')
      p++;
  }
  return false;
}

static authz_member_t yes_no(bool b)
{
  return b ? AUTHZ_YES : AUTHZ_NO;
}

static authz_member_t who_matches(const rule_t *r, const authz_subject_t *s)
{
  const char *w = r->who;
  if (!verb_matches(r->verbs, s->method ? s->method : ""))
    return AUTHZ_NO;
  if (strcmp(w, "*") == 0)
    return AUTHZ_YES;
  if (strcmp(w, "?") == 0)
    return yes_no(s->anonymous);
  if (strcmp(w, "valid-user") == 0)
    return yes_no(!s->anonymous);
  if (s->anonymous)
    return AUTHZ_NO;
  if (strncmp(w, "user:", 5) == 0)
    return yes_no((s->name && strcasecmp(w + 5, s->name) == 0) ||
                  (s->local && s->local[0] && strcmp(w + 5, s->local) == 0));
  if (strncmp(w, "group:", 6) == 0) {
    authz_member_t m = s->in_role != NULL ? s->in_role(s->data, w + 6) : AUTHZ_UNKNOWN;
    return m == AUTHZ_YES || m == AUTHZ_NO ? m : AUTHZ_UNKNOWN;
  }
  if (strncmp(w, "sid:", 4) == 0) {
    authz_member_t m = s->has_sid != NULL ? s->has_sid(s->data, w + 4) : AUTHZ_UNKNOWN;
    return m == AUTHZ_YES || m == AUTHZ_NO ? m : AUTHZ_UNKNOWN;
  }
  return AUTHZ_NO;
}

/* Walks every rule of every list of one kind (deny or allow): AUTHZ_YES at
 * the first rule that surely matches, else AUTHZ_UNKNOWN if a rule could
 * not be decided, else AUTHZ_NO. *ret_malformed on a bad rule. */
static authz_member_t pass(const char *const *lists, size_t n, const authz_subject_t *s,
                           bool deny_pass, bool *ret_malformed)
{
  authz_member_t res = AUTHZ_NO;
  for (size_t i = 0; i < n; i++) {
    const char *p = lists[i];
    while (p != NULL && *p) {
      rule_t r;
      size_t len;
      while (*p == ' ' || *p == '\t' || *p == ',')
        p++;
      len = strcspn(p, " \t");
      if (len == 0)
        break;
      if (!parse_rule(p, len, &r)) {
        *ret_malformed = true;
        return AUTHZ_YES;
      }
      if (r.deny == deny_pass) {
        authz_member_t m = who_matches(&r, s);
        if (m == AUTHZ_YES)
          return AUTHZ_YES;
        if (m == AUTHZ_UNKNOWN)
          res = AUTHZ_UNKNOWN;
      }
      p += len;
    }
  }
  return res;
}

authz_verdict_t authz_evaluate(const char *const *lists, size_t n, const authz_subject_t *who)
{
  authz_verdict_t v = AUTHZ_DENY;
  bool malformed = false;
  authz_member_t deny = pass(lists, n, who, true, &malformed);
  authz_member_t allow;
  if (malformed || deny == AUTHZ_YES)
    goto out; /* a deny matched, or malformed: fail closed */
  allow = pass(lists, n, who, false, &malformed);
  if (malformed || allow == AUTHZ_NO)
    goto out; /* nothing can let this request in */
  if (deny == AUTHZ_UNKNOWN || allow == AUTHZ_UNKNOWN)
    v = AUTHZ_UNDECIDED; /* could be either: never a yes */
  else
    v = AUTHZ_ALLOW;
out:
  return v;
}

int authz_check(const char *list, size_t *ret_bad)
{
  const char *p = list;
  while (*p) {
    rule_t r;
    size_t len;
    while (*p == ' ' || *p == '\t' || *p == ',')
      p++;
    len = strcspn(p, " \t");
    if (len == 0)
      break;
    if (!parse_rule(p, len, &r)) {
      if (ret_bad)
        *ret_bad = (size_t)(p - list);
      return -EINVAL;
    }
    p += len;
  }
  return 0;
}
