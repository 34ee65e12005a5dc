/* auth_peer.c: Peer — the token of a unix-socket client's SO_PEERCRED, per request. */
#include <stdio.h>

#include "httpapi/auth/auth_engine.h"

void gh__auth_step_peer(gh__auth_engine_t *e, gh__auth_conn_t *c, const gh_auth_settings_t *site,
                        int fd, gh__auth_result_t *r)
{
  gh_token_t tok = 0;
  char user[256];
  int ret;

  ret = e->ops.from_peer(fd, &tok);
  if (ret) {
    gh__auth_set_local_failure(r, ret, GH_AUTH_TYPE_PEER, "Peer", NULL);
    goto out;
  }
  r->info.token = tok;
  if (!e->ops.get_user || e->ops.get_user(tok, user, sizeof(user)) < 0)
    snprintf(user, sizeof(user), "%s", "");
  {
    gh_auth_settings_t s = *site;
    s.persist = GH_AUTH_PERSIST_NONE; /* recomputed per request: cheap and exact */
    gh__auth_deliver_success(c, r, &s, GH_AUTH_TYPE_PEER, "Peer", 0, 0, user[0] ? user : NULL,
                             user[0] ? user : NULL);
  }
out:
  return;
}
