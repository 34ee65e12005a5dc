/* runas.c: gh__token_run_as — a callback under a token's own ids, for other layers. */
#include <errno.h>

#include <gatehouse/error.h>

#include "sec/runas.h"
#include "sec/sec_internal.h"

int gh__token_run_as(gh_token_t token, int (*fn)(void *arg), void *arg)
{
  gh__token_t *t = NULL;
  gh__sec_saved_t saved;
  int rc;

  if (fn == NULL) {
    rc = -EINVAL;
    goto out;
  }
  rc = gh__token_get(token, &t);
  if (rc != 0)
    goto out;
  if (t->level != GH_LEVEL_IMPERSONATE && t->level != GH_LEVEL_DELEGATE) {
    rc = GH_EBAD_IMPERSONATION_LEVEL;
    goto out;
  }
  rc = gh__sec_enter(t, &t->own, &saved);
  if (rc != 0)
    goto out;
  rc = fn(arg);
  gh__sec_leave(&saved); /* aborts if the switch back fails */
out:
  gh__token_unref(t);
  return rc;
}
