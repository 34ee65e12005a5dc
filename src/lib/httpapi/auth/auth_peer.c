/* auth_peer.c: Peer — the token of a unix-socket client's SO_PEERCRED, per request. */
#include <errno.h>
#include <stdio.h>

#include <gatehouse/error.h>

#include "httpapi/auth/auth_engine.h"

void gh__auth_step_peer(gh__auth_engine_t *e, gh__auth_conn_t *c, const gh_auth_settings_t *site,
                        int fd, gh__auth_result_t *r)
{
  gh_token_t tok = 0;
  char user[256];
  int ret;

  ret = e->ops.from_peer(fd, &tok);
  if (ret == -ENOMEM) {
    gh__auth_set_verdict(r, GH__AUTH_UNAVAILABLE, ret);
    goto out;
  }
  if (ret) {
    gh__auth_set_failure(r, gh__auth_failure_of_local(ret), GH_AUTH_TYPE_PEER, "Peer",
                         GH_AUTH_SEC_ERRNO, (uint32_t)-ret, 0, gh_strerror(ret));
    goto out;
  }
  r->info.token = tok;
  if (!e->ops.get_user || e->ops.get_user(tok, user, sizeof(user)) < 0)
    snprintf(user, sizeof(user), "%s", "");
  {
    gh_auth_settings_t s = *site;
    s.persist = GH_AUTH_PERSIST_NONE; /* recomputed per request: cheap and exact */
    ret = gh__auth_deliver_success(c, r, &s, GH_AUTH_TYPE_PEER, "Peer", 0, 0, user[0] ? user : NULL,
                                   user[0] ? user : NULL);
  }
  if (ret) {
    e->ops.close(tok);
    r->info.token = 0;
    gh__auth_set_verdict(r, GH__AUTH_UNAVAILABLE, ret);
  }
out:
  return;
}
