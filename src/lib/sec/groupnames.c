/* groupnames.c: a token's group names (gh_token_get_group_names), resolved once per token. */
#include <errno.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/error.h>

#include "sec/sec_internal.h"
#include "util/alloc.h"
#include "util/str.h"

#define NAME_MAX_BYTES 255

/* A byte a ','-joined list in a header field cannot carry as itself:
 * controls, DEL, non-ASCII (UTF-8), and the list's ',' and the escape's '%'. */
static bool needs_escape(unsigned char c)
{
  return c < 0x20 || c >= 0x7f || c == ',' || c == '%';
}

/* Appends "," (after the first) and the group's name, its bytes above
 * percent-encoded, or its number (name NULL, empty or over NAME_MAX_BYTES). */
static int append(char **buf, size_t *len, size_t *cap, gid_t gid, const char *name)
{
  static const char hex[] = "0123456789ABCDEF";
  char num[24];
  size_t n = 0, need;
  if (name != NULL)
    n = strlen(name);
  if (name == NULL || n == 0 || n > NAME_MAX_BYTES) {
    n = gh__u64_text(num, gid);
    name = num;
  }
  need = *len + 3 * n + 2;
  if (need > *cap) {
    char *nb = gh__realloc(*buf, need * 2);
    if (nb == NULL)
      return -ENOMEM;
    *buf = nb;
    *cap = need * 2;
  }
  if (*len > 0)
    (*buf)[(*len)++] = ',';
  for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++) {
    if (name != num && needs_escape(*p)) {
      (*buf)[(*len)++] = '%';
      (*buf)[(*len)++] = hex[*p >> 4];
      (*buf)[(*len)++] = hex[*p & 15];
    } else {
      (*buf)[(*len)++] = (char)*p;
    }
  }
  (*buf)[*len] = '\0';
  return 0;
}

static int build(const gh__token_t *t, char **ret)
{
  size_t len = 0, cap = 64;
  char *buf = gh__malloc(cap);
  int rc = 0;
  if (buf == NULL)
    return -ENOMEM;
  buf[0] = '\0';
  for (uint32_t i = 0; i < t->ngroups && rc == 0; i++) {
    struct group gr;
    char *gbuf = NULL;
    int e = gh__nss_lookup(GH__NSS_GRGID, NULL, t->groups[i], &gr, &gbuf);
    if (e == 0)
      rc = append(&buf, &len, &cap, t->groups[i], gr.gr_name);
    else if (e == GH_ENOT_FOUND)
      rc = append(&buf, &len, &cap, t->groups[i], NULL);
    else
      rc = e; /* the database failed: no list rather than a short one */
    free(gbuf);
  }
  if (rc != 0) {
    free(buf);
    buf = NULL;
  }
  *ret = buf;
  return rc;
}

int gh__token_group_names(gh__token_t *t, const char **ret_names)
{
  char *have = atomic_load_explicit(&t->group_names, memory_order_acquire);
  if (have == NULL) {
    char *mine = NULL;
    int rc;
    /* NSS runs at base identity (DESIGN.md §3): a handler that
     * impersonates gets the same answer as one that does not */
    if (gh__sec_thread_impersonating()) {
      gh__sec_saved_t saved;
      rc = gh__sec_enter(NULL, &gh__sec.base, &saved);
      if (rc == 0) {
        rc = build(t, &mine);
        gh__sec_leave(&saved);
      }
    } else {
      rc = build(t, &mine);
    }
    if (rc != 0)
      return rc;
    if (atomic_compare_exchange_strong_explicit(&t->group_names, &have, mine,
                                                memory_order_acq_rel, memory_order_acquire))
      have = mine;
    else
      free(mine); /* have: the one another thread published */
  }
  *ret_names = have;
  return 0;
}

int gh_token_get_group_names(gh_token_t h, char *buf, size_t len)
{
  gh__token_t *t = NULL;
  const char *names = NULL;
  int rc = buf == NULL ? -EINVAL : gh__token_get(h, &t);
  if (rc == 0)
    rc = gh__token_group_names(t, &names);
  if (rc == 0) {
    size_t n = strlen(names);
    if (n >= len)
      rc = -ERANGE;
    else
      memcpy(buf, names, n + 1);
    if (rc == 0)
      rc = (int)(n > INT32_MAX ? INT32_MAX : n);
  }
  gh__token_unref(t);
  return rc;
}
