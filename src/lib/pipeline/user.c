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

/* A user and `extra` bytes after it (strings, groups: freed with it). */
static gh_http_user_t *user_alloc(size_t extra)
{
  gh_http_user_t *u = gh__calloc(1, sizeof(*u) + extra);
  if (u != NULL) {
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
  return ret;
}

static const char *level_text(int level)
{
  return level == GH__PL_LEVEL_DELEGATE      ? "delegate"
         : level == GH__PL_LEVEL_IMPERSONATE ? "impersonate"
         : level == GH__PL_LEVEL_IDENTIFY    ? "identify"
                                             : "anonymous";
}

/* Bytes the token variables (uid, gid, level, groups) take: four nodes,
 * then their names and values (ids of at most 10 digits, the longest
 * level, the groups comma-separated), rounded up for the gid_t after. */
static size_t vars_len(size_t n_groups)
{
  size_t len = 4 * sizeof(struct gh__pl_uvar) + sizeof("uid") + sizeof("gid") + sizeof("level") +
               sizeof("groups") + 2 * 12 + sizeof("impersonate") + n_groups * 12 + 1;
  return (len + sizeof(void *) - 1) & ~(sizeof(void *) - 1);
}

/* Makes the token variables the first time any variable is read or set, in
 * the order the eager version set them: their nodes and text in the room
 * kept for them in the user's own allocation (u->vars_block; a relaying
 * module reads "groups" on every request, and four variables made one by
 * one were a dozen allocations). A later set of one of them replaces its
 * value with an allocation of its own, as for any variable. */
static int vars_make_locked(gh_http_user_t *u)
{
  static const char *const names[4] = {"uid", "gid", "level", "groups"};
  struct gh__pl_uvar *nodes;
  char *text;
  if (!u->vars_pending)
    return 0;
  nodes = (struct gh__pl_uvar *)(void *)u->vars_block;
  text = u->vars_block + 4 * sizeof(*nodes);
  for (size_t i = 0; i < 4; i++) {
    nodes[i].name = put_str(&text, names[i], strlen(names[i]));
    nodes[i].value = text;
    if (i == 0)
      text += gh__u64_text(text, u->tok_uid) + 1;
    else if (i == 1)
      text += gh__u64_text(text, u->tok_gid) + 1;
    else if (i == 2)
      (void)put_str(&text, level_text(u->level), strlen(level_text(u->level)));
    else {
      *text = '\0';
      for (size_t g = 0; g < u->n_tok_groups; g++) {
        if (g > 0)
          *text++ = ',';
        text += gh__u64_text(text, u->tok_groups[g]);
      }
      text++;
    }
  }
  /* newest first, as set_var_locked links them */
  for (size_t i = 0; i < 4; i++) {
    nodes[i].next = i ? &nodes[i - 1] : u->vars;
  }
  u->vars = &nodes[3];
  u->vars_pending = false;
  return 0;
}

/* Whether p lies in the token variables' block (not freed on its own). */
static bool in_vars_block(const gh_http_user_t *u, const void *p)
{
  const char *c = p;
  return u->vars_block != NULL && c >= u->vars_block && c < u->vars_block + u->vars_block_len;
}

int gh__pl_user_new_server(gh_pipeline_t *pl, const gh_auth_info_t *auth, gh_http_user_t **ret_user)
{
  int ret = 0;
  gh_http_user_t *u = NULL;
  bool ok = auth != NULL && auth->status == GH_AUTH_STATUS_SUCCESS;
  const char *name = ok && auth->remote_user ? auth->remote_user : "";
  const char *local = ok && auth->local_user ? auth->local_user : "";
  const char *type = auth_type_text(auth);
  gh__pl_token_info_t ti;
  bool have_ti = false;
  size_t nlen, llen, tlen, extra;
  char *p;

  if (ok && auth->token != 0 && pl->sec->token_info(auth->token, &ti) == 0) {
    have_ti = true;
    if (local[0] == '\0' && ti.name[0] != '\0')
      local = ti.name;
  }
  nlen = strlen(name);
  llen = strlen(local);
  tlen = strlen(type);
  /* the token variables' room and the groups first (aligned), then the
   * three strings */
  extra =
      (have_ti ? vars_len(ti.n_groups) + ti.n_groups * sizeof(gid_t) : 0) + nlen + llen + tlen + 3;
  u = user_alloc(extra);
  if (u == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  u->pl = pl;
  p = (char *)(u + 1);
  if (have_ti) {
    u->vars_block = p;
    u->vars_block_len = vars_len(ti.n_groups);
    p += u->vars_block_len;
    u->tok_groups = (gid_t *)(void *)p;
    u->n_tok_groups = ti.n_groups;
    memcpy(u->tok_groups, ti.groups, ti.n_groups * sizeof(gid_t));
    p += ti.n_groups * sizeof(gid_t);
  }
  u->name = put_str(&p, name, nlen);
  u->local_name = put_str(&p, local, llen);
  u->auth_type = put_str(&p, type, tlen);
  u->level = GH__PL_LEVEL_ANONYMOUS;
  if (ok && auth->token != 0) {
    u->token = auth->token;
    if (have_ti) {
      u->level = ti.level;
      u->tok_uid = ti.uid;
      u->tok_gid = ti.gid;
      u->vars_pending = true;
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
  u = user_alloc(0);
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
  struct gh__pl_uvar *v, *next;
  if (user == NULL || atomic_fetch_sub(&user->refs, 1) != 1)
    return;
  if (user->custom && user->ops.free != NULL)
    user->ops.free(user->data);
  for (v = user->vars; v != NULL; v = next) {
    next = v->next;
    if (!in_vars_block(user, v->name))
      free(v->name);
    if (!in_vars_block(user, v->value))
      free(v->value);
    if (!in_vars_block(user, v))
      free(v);
  }
  pthread_mutex_destroy(&user->lock);
  free(user);
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
  pthread_mutex_lock(&user->lock);
  (void)vars_make_locked(user);
  for (struct gh__pl_uvar *v = user->vars; v != NULL; v = v->next)
    if (v->name != NULL && strcmp(v->name, name) == 0) {
      val = v->value;
      break;
    }
  pthread_mutex_unlock(&user->lock);
  return val;
}

int gh_http_user_set_variable(gh_http_user_t *user, const char *name, const char *value)
{
  int ret;
  if (user == NULL || name == NULL || value == NULL)
    return -EINVAL;
  pthread_mutex_lock(&user->lock);
  ret = vars_make_locked(user);
  if (ret == 0)
    ret = set_var_locked(user, name, value);
  pthread_mutex_unlock(&user->lock);
  return ret;
}
