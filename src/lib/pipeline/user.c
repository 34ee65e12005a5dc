/* user.c: gh_http_user_t — the request's user, borrowed tokens, is_in_role, user variables. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/error.h>
#include <gatehouse/module.h>

#include "pipeline/pipeline_int.h"
#include "util/alloc.h"
#include "util/str.h"

/* The scheme's name ("" when not signed in): gh_auth_type_name's. */
static const char *auth_type_text(const gh_auth_info_t *auth)
{
  if (auth == NULL || auth->status != GH_AUTH_STATUS_SUCCESS || auth->type == GH_AUTH_TYPE_NONE ||
      auth->type > GH_AUTH_TYPE_PEER)
    return "";
  return gh_auth_type_name(auth->type);
}

/* A user and `extra` bytes after it (strings: freed with it). A server
 * user that fits takes a block of GH__PL_USER_BLOCK bytes: *block when the
 * caller has a spare one (the engine keeps them with its spare pools), else
 * a new one; the block comes back from gh__pl_user_release for the next
 * request. Users are made by the worker that starts a request and mostly
 * freed by the one that ends it, so each malloc missed the allocator's
 * per-thread cache and each free took the long path. */
static gh_http_user_t *user_alloc(size_t extra, void **block)
{
  bool fits = block != NULL && sizeof(gh_http_user_t) + extra <= GH__PL_USER_BLOCK;
  gh_http_user_t *u;
  if (fits && *block != NULL) {
    u = *block;
    *block = NULL;
    memset(u, 0, sizeof(*u));
  } else {
    u = fits ? gh__calloc(1, GH__PL_USER_BLOCK) : gh__calloc(1, sizeof(*u) + extra);
  }
  if (u != NULL) {
    u->block = fits;
    atomic_init(&u->refs, 1);
    pthread_mutex_init(&u->lock, NULL);
  }
  return u;
}

/* Copies s to *p and advances it. */
static char *put_str(char **p, const char *s, size_t len)
{
  char *d = *p;
  memcpy(d, s, len);
  d[len] = '\0';
  *p += len + 1;
  return d;
}

static int set_var_locked(gh_http_user_t *u, const char *name, const char *value)
{
  int ret = 0;
  struct gh__pl_uvar *v;
  char *nv = gh__strdup(value);
  if (nv == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  for (v = u->vars; v != NULL; v = v->next) {
    /* name == NULL: a superseded value kept alive for borrowers */
    if (v->name != NULL && strcmp(v->name, name) == 0) {
      /* the old value stays valid until the user is freed (borrowed out) */
      struct gh__pl_uvar *old = gh__calloc(1, sizeof(*old));
      if (old == NULL) {
        free(nv);
        ret = -ENOMEM;
        goto out;
      }
      old->name = NULL;
      old->value = v->value;
      old->next = v->next;
      v->next = old;
      v->value = nv;
      goto out;
    }
  }
  v = gh__calloc(1, sizeof(*v));
  if (v == NULL || (v->name = gh__strdup(name)) == NULL) {
    free(v);
    free(nv);
    ret = -ENOMEM;
    goto out;
  }
  v->value = nv;
  v->next = u->vars;
  u->vars = v;
out:
  if (ret == 0)
    atomic_store_explicit(&u->has_vars, true, memory_order_release);
  return ret;
}

static const char *level_text(int level)
{
  return level == GH__PL_LEVEL_DELEGATE      ? "delegate"
         : level == GH__PL_LEVEL_IMPERSONATE ? "impersonate"
         : level == GH__PL_LEVEL_IDENTIFY    ? "identify"
                                             : "anonymous";
}

/* A token variable's value from the token's view (owned by the token,
 * pinned by the user: nothing to format per request), or NULL. */
static const char *token_var(const gh_http_user_t *u, const char *name)
{
  const gh__pl_token_view_t *v = u->view;
  if (v == NULL)
    return NULL;
  if (strcmp(name, "groups") == 0)
    return v->groups_text;
  if (strcmp(name, "uid") == 0)
    return v->uid_text;
  if (strcmp(name, "gid") == 0)
    return v->gid_text;
  if (strcmp(name, "level") == 0)
    return level_text(u->level);
  if (strcmp(name, "group_names") == 0) {
    const char *names = NULL;
    return gh_http_user_get_group_names((gh_http_user_t *)u, &names) == 0 ? names : NULL;
  }
  return NULL;
}

int gh__pl_user_new_server(gh_pipeline_t *pl, const gh_auth_info_t *auth, void **block,
                           gh_http_user_t **ret_user)
{
  int ret = 0;
  gh_http_user_t *u = NULL;
  bool ok = auth != NULL && auth->status == GH_AUTH_STATUS_SUCCESS;
  const char *name = ok && auth->remote_user ? auth->remote_user : "";
  const char *local = ok && auth->local_user ? auth->local_user : "";
  const char *type = auth_type_text(auth);
  const gh__pl_token_view_t *view = NULL;
  size_t nlen, llen, tlen;
  char *p;

  if (ok && auth->token != 0) {
    ret = pl->sec->token_view(auth->token, &view);
    if (ret == -ENOMEM)
      goto out; /* a 500, not a user without the token's level (a 403) */
    if (ret != 0)
      view = NULL;
    ret = 0;
  }
  if (view != NULL && local[0] == '\0' && view->name[0] != '\0')
    local = view->name;
  nlen = strlen(name);
  llen = strlen(local);
  tlen = strlen(type);
  u = user_alloc(nlen + llen + tlen + 3, block);
  if (u == NULL) {
    if (view != NULL)
      pl->sec->token_view_release(view);
    ret = -ENOMEM;
    goto out;
  }
  u->pl = pl;
  p = (char *)(u + 1);
  u->name = put_str(&p, name, nlen);
  u->local_name = put_str(&p, local, llen);
  u->auth_type = put_str(&p, type, tlen);
  u->level = GH__PL_LEVEL_ANONYMOUS;
  if (ok && auth->token != 0) {
    u->token = auth->token;
    if (view != NULL) {
      u->level = view->level;
      u->view = view;
      u->view_release = pl->sec->token_view_release;
    }
  }
  *ret_user = u;
out:
  return ret;
}

void gh__pl_user_end_request(gh_http_user_t *u)
{
  if (u == NULL || u->custom)
    return;
  pthread_mutex_lock(&u->lock);
  /* Borrowed handles die with the owner's handle; nothing to close. */
  u->token = 0;
  u->borrowed_imp = 0;
  u->borrowed_primary = 0;
  pthread_mutex_unlock(&u->lock);
}

int gh_http_user_new(const gh_http_user_ops_t *ops, void *data, gh_http_user_t **ret_user)
{
  int ret = 0;
  gh_http_user_t *u;
  gh_http_user_ops_t o;
  char why[160];
  if (ops == NULL || ret_user == NULL) {
    ret = -EINVAL;
    goto out;
  }
  ret = gh__pl_struct_in(&o, sizeof(o), ops, GH__PL_USER_OPS_SIZE_2_1, why, sizeof(why));
  if (ret < 0)
    goto out;
  u = user_alloc(0, NULL);
  if (u == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  u->custom = true;
  u->ops = o;
  u->data = data;
  *ret_user = u;
out:
  return ret;
}

gh_http_user_t *gh_http_user_ref(gh_http_user_t *user)
{
  if (user != NULL)
    atomic_fetch_add(&user->refs, 1);
  return user;
}

void gh_http_user_unref(gh_http_user_t *user)
{
  free(gh__pl_user_release(user));
}

void *gh__pl_user_release(gh_http_user_t *user)
{
  struct gh__pl_uvar *v, *next;
  if (user == NULL || atomic_fetch_sub(&user->refs, 1) != 1)
    return NULL;
  if (user->custom && user->ops.free != NULL)
    user->ops.free(user->data);
  for (v = user->vars; v != NULL; v = next) {
    next = v->next;
    free(v->name);
    free(v->value);
    free(v);
  }
  if (user->view != NULL)
    user->view_release(user->view);
  pthread_mutex_destroy(&user->lock);
  if (user->block)
    return user; /* the caller's to keep or free */
  free(user);
  return NULL;
}

const char *gh_http_user_get_name(gh_http_user_t *user)
{
  if (user == NULL)
    return "";
  if (user->custom)
    return user->ops.get_name ? user->ops.get_name(user->data) : "";
  return user->name;
}

const char *gh_http_user_get_remote_name(gh_http_user_t *user)
{
  if (user != NULL && user->custom && user->ops.get_remote_name)
    return user->ops.get_remote_name(user->data);
  return gh_http_user_get_name(user);
}

const char *gh_http_user_get_local_name(gh_http_user_t *user)
{
  return (user == NULL || user->custom) ? "" : user->local_name;
}

const char *gh_http_user_get_auth_type(gh_http_user_t *user)
{
  if (user == NULL)
    return "";
  if (user->custom)
    return user->ops.get_auth_type ? user->ops.get_auth_type(user->data) : "";
  return user->auth_type;
}

static gh_token_t get_borrowed(gh_http_user_t *user, gh_token_t *slot, int min_level)
{
  gh_token_t t = 0;
  if (user == NULL || user->custom)
    return 0;
  pthread_mutex_lock(&user->lock);
  if (user->token == 0 || user->level < min_level)
    goto out;
  /* A borrowed handle can't be closed by the module, so one per user does;
   * re-borrow if it was somehow invalidated. */
  if (*slot == 0 || !user->pl->sec->token_valid(*slot)) {
    gh_token_t b = 0;
    if (user->pl->sec->token_borrow(user->token, &b) < 0)
      goto out;
    *slot = b;
  }
  t = *slot;
out:
  pthread_mutex_unlock(&user->lock);
  return t;
}

gh_token_t gh_http_user_get_impersonation_token(gh_http_user_t *user)
{
  return user ? get_borrowed(user, &user->borrowed_imp, GH__PL_LEVEL_ANONYMOUS) : 0;
}

gh_token_t gh_http_user_get_primary_token(gh_http_user_t *user)
{
  /* a primary token cannot be made from an IDENTIFY one (DESIGN item 13) */
  return user ? get_borrowed(user, &user->borrowed_primary, GH__PL_LEVEL_IMPERSONATE) : 0;
}

bool gh_http_user_supports_is_in_role(gh_http_user_t *user)
{
  if (user == NULL)
    return false;
  return user->custom ? user->ops.is_in_role != NULL : true;
}

int gh_http_user_is_in_role(gh_http_user_t *user, const char *role, gh_membership_t *ret_membership)
{
  int ret = 0;
  gh_membership_t m = GH_MEMBER_UNKNOWN;
  gh_token_t tok;
  if (user == NULL || role == NULL || *role == '\0' || ret_membership == NULL) {
    ret = -EINVAL;
    goto out;
  }
  if (user->custom) {
    if (user->ops.is_in_role == NULL) {
      ret = -ENOTSUP;
      goto out;
    }
    ret = user->ops.is_in_role(user->data, role, &m);
    /* a custom answer is a yes or a no, or it is no answer at all */
    if (ret >= 0 && m != GH_MEMBER_YES && m != GH_MEMBER_NO)
      ret = -EPROTO;
    goto out;
  }
  pthread_mutex_lock(&user->lock);
  tok = user->token;
  pthread_mutex_unlock(&user->lock);
  if (tok == 0) {
    m = GH_MEMBER_NO; /* anonymous: member of nothing */
    goto out;
  }
  if (role[0] == '#') {
    char *end;
    bool member = false;
    unsigned long v;
    errno = 0;
    v = strtoul(role + 1, &end, 10);
    if (*end != '\0' || end == role + 1 || role[1] == '-' || errno != 0 || v > UINT32_MAX - 1) {
      ret = -EINVAL;
      goto out;
    }
    ret = user->pl->sec->token_is_member(tok, (gid_t)v, &member);
    m = member ? GH_MEMBER_YES : GH_MEMBER_NO;
  } else {
    /* the sec layer resolves the name (NSS, cached): never this layer */
    ret = user->pl->sec->token_is_member_name(tok, role, &m);
  }
out:
  if (ret_membership != NULL)
    *ret_membership = ret < 0 ? GH_MEMBER_UNKNOWN : m;
  return ret;
}

const char *gh_http_user_get_variable(gh_http_user_t *user, const char *name)
{
  const char *val = NULL;
  if (user == NULL || name == NULL)
    return NULL;
  /* nothing set: the token's view answers, immutable (no lock) */
  if (!atomic_load_explicit(&user->has_vars, memory_order_acquire))
    return token_var(user, name);
  pthread_mutex_lock(&user->lock);
  for (struct gh__pl_uvar *v = user->vars; v != NULL; v = v->next)
    if (v->name != NULL && strcmp(v->name, name) == 0) {
      val = v->value;
      break;
    }
  pthread_mutex_unlock(&user->lock);
  return val != NULL ? val : token_var(user, name);
}

int gh_http_user_get_group_names(gh_http_user_t *user, const char **ret_names)
{
  if (user == NULL || ret_names == NULL)
    return -EINVAL;
  if (user->view == NULL || user->pl == NULL || user->pl->sec->token_group_names == NULL)
    return GH_ENOT_FOUND; /* no token: no groups to name */
  return user->pl->sec->token_group_names(user->view, ret_names);
}

int gh_http_user_set_variable(gh_http_user_t *user, const char *name, const char *value)
{
  int ret;
  if (user == NULL || name == NULL || value == NULL)
    return -EINVAL;
  pthread_mutex_lock(&user->lock);
  ret = set_var_locked(user, name, value);
  pthread_mutex_unlock(&user->lock);
  return ret;
}
