/* impersonate.c: per-thread identity switching with raw syscalls, modes, call scopes, base checks. */
#include <errno.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sec/sec_internal.h"
#include "util/metrics.h"

#define SCOPE_MAGIC 0x67687363u /* "ghsc" */
#define VERIFY_MAX_GROUPS 1024

/* What the sec layer knows about the calling thread. `cur` mirrors the
 * kernel: the effective uid/gid and supplementary groups it has now; its
 * groups pointer stays valid because the token that owns the array is held
 * (stack entry or access-check hold) or it is the base list. */
typedef struct thread_state {
  bool ready;
  gh_impersonate_mode_t mode;
  uint32_t depth;
  gh__token_t *stack[GH_IMPERSONATE_MAX_DEPTH];
  gh__ids_t cur;
} thread_state_t;

static __thread thread_state_t ts;

static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t exit_key;

/* A thread that exits while impersonating must not leak its references. */
static void thread_exit_cb(void *arg)
{
  thread_state_t *s = arg;
  while (s->depth > 0) {
    s->depth--;
    gh__token_unref(s->stack[s->depth]);
    s->stack[s->depth] = NULL;
  }
}

static void key_init(void)
{
  if (pthread_key_create(&exit_key, thread_exit_cb) != 0)
    abort();
}

int gh__sec_map_errno(int err)
{
  return err == EPERM ? GH_ENO_PRIVILEGE : -err;
}

static int cmp_gid(const void *a, const void *b)
{
  gid_t x = *(const gid_t *)a, y = *(const gid_t *)b;
  return x < y ? -1 : x > y;
}

/* Whether the kernel's view of the calling thread is: real and saved ids at
 * base, effective ids and groups as `want`. */
static bool kernel_matches(const gh__ids_t *want)
{
  const gh__ids_t *base = &gh__sec.base;
  gid_t buf[VERIFY_MAX_GROUPS];
  uid_t ru, eu, su;
  gid_t rg, eg, sg;
  bool ok = false;
  int n;

  if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0)
    goto out;
  if (ru != base->uid || su != base->uid || eu != want->uid || rg != base->gid ||
      sg != base->gid || eg != want->gid)
    goto out;
  if (want->ngroups > VERIFY_MAX_GROUPS)
    goto out;
  n = getgroups(VERIFY_MAX_GROUPS, buf);
  if (n < 0 || (uint32_t)n != want->ngroups)
    goto out;
  if (n > 1)
    qsort(buf, (size_t)n, sizeof(gid_t), cmp_gid);
  ok = n == 0 || memcmp(buf, want->groups, (size_t)n * sizeof(gid_t)) == 0;
out:
  return ok;
}

/* Make the thread state usable; false if gh_sec_init has not run. The first
 * call on a thread checks that the kernel has it at base (threads must be
 * created at base) and aborts otherwise. */
static bool thread_ready(void)
{
  bool ok = true;

  if (__builtin_expect(ts.ready, 1))
    goto out;
  if (!gh__sec.initialised) {
    ok = false;
    goto out;
  }
  if (!kernel_matches(&gh__sec.base))
    abort();
  pthread_once(&key_once, key_init);
  if (pthread_setspecific(exit_key, &ts) != 0)
    abort();
  ts.cur = gh__sec.base;
  ts.ready = true;
out:
  return ok;
}

static inline bool groups_equal(const gh__ids_t *a, const gh__ids_t *b)
{
  return a->ngroups == b->ngroups &&
         (a->groups == b->groups || a->ngroups == 0 ||
          memcmp(a->groups, b->groups, a->ngroups * sizeof(gid_t)) == 0);
}

static inline int sys_euid(uid_t u)
{
  return syscall(SYS_setresuid, (uid_t)-1, u, (uid_t)-1) == 0 ? 0 : errno;
}

static inline int sys_egid(gid_t g)
{
  return syscall(SYS_setresgid, (gid_t)-1, g, (gid_t)-1) == 0 ? 0 : errno;
}

static inline int sys_groups(const gh__ids_t *ids)
{
  return syscall(SYS_setgroups, (size_t)ids->ngroups, ids->groups) == 0 ? 0 : errno;
}

#ifdef GH_FAULT_INJECTION
/* Test-only (-Dfault_injection=true builds): GH_FAULT_REVERT=N makes the Nth
 * switch of a thread back to base (process-wide count, from 1) fail as if
 * the kernel had refused it, so tests can prove that a failed revert aborts
 * the process (DESIGN.md item 18) and that nothing is served after it. */
static bool fault_revert_now(void)
{
  static atomic_long target = -2, count;
  long t = atomic_load(&target);
  if (t == -2) {
    const char *v = getenv("GH_FAULT_REVERT");
    t = v && *v ? strtol(v, NULL, 10) : 0;
    atomic_store(&target, t);
  }
  return t > 0 && atomic_fetch_add(&count, 1) + 1 == t;
}
#endif

/* Bring the thread from ts.cur to *to with the fewest syscalls: uid back to
 * base first if anything must change while running as a client; towards a
 * client groups, gid, uid; towards base gid, groups (DESIGN.md §3). ts.cur
 * follows every successful step. On failure: abort if must_succeed, else
 * roll back to where the thread was (aborting if that fails) and return a
 * positive errno. */
static int apply(const gh__ids_t *to, bool must_succeed)
{
  const uid_t base_uid = gh__sec.base.uid;
  gh__ids_t *cur = &ts.cur;
  const gh__ids_t prev = *cur;
  bool same_groups = groups_equal(cur, to);
  int err = 0;

  if (cur->uid == to->uid && cur->gid == to->gid && same_groups) {
    cur->groups = to->groups; /* keep pointing at memory that stays held */
    goto out;
  }
  if (cur->uid != base_uid) {
#ifdef GH_FAULT_INJECTION
    if (to->uid == base_uid && fault_revert_now()) {
      err = EPERM;
      goto fail;
    }
#endif
    if ((err = sys_euid(base_uid)) != 0)
      goto fail;
    cur->uid = base_uid;
  }
  if (to->uid == base_uid) {
    if (cur->gid != to->gid) {
      if ((err = sys_egid(to->gid)) != 0)
        goto fail;
      cur->gid = to->gid;
    }
    if (!same_groups && (err = sys_groups(to)) != 0)
      goto fail;
    cur->groups = to->groups;
    cur->ngroups = to->ngroups;
  } else {
    if (!same_groups && (err = sys_groups(to)) != 0)
      goto fail;
    cur->groups = to->groups;
    cur->ngroups = to->ngroups;
    if (cur->gid != to->gid) {
      if ((err = sys_egid(to->gid)) != 0)
        goto fail;
      cur->gid = to->gid;
    }
    if ((err = sys_euid(to->uid)) != 0)
      goto fail;
    cur->uid = to->uid;
  }
  goto out;
fail:
  if (must_succeed || to->uid == base_uid)
    gh__metrics_add(GH__M_REVERT_FAILURES); /* counted before the abort: the slot outlives us */
  if (must_succeed)
    abort();
  if (apply(&prev, true) != 0)
    abort();
out:
  return err;
}

bool gh__sec_thread_impersonating(void)
{
  return ts.ready && (ts.depth > 0 || ts.cur.uid != gh__sec.base.uid);
}

int gh__sec_enter(gh__token_t *t, const gh__ids_t *ids, gh__sec_saved_t *saved)
{
  int rc = 0, err;

  if (!thread_ready()) {
    rc = GH_ESTATE;
    goto out;
  }
  saved->prev = ts.cur;
  saved->hold = t;
  if (t != NULL)
    gh__token_ref(t);
  err = apply(ids, false);
  if (err != 0) {
    gh__token_unref(t);
    saved->hold = NULL;
    rc = gh__sec_map_errno(err);
  } else if (t != NULL) {
    gh__metrics_add(GH__M_IMPERSONATIONS);
  }
out:
  return rc;
}

void gh__sec_leave(gh__sec_saved_t *saved)
{
  apply(&saved->prev, true);
  gh__token_unref(saved->hold);
  saved->hold = NULL;
}

int gh_impersonate(gh_token_t token)
{
  gh__token_t *t = NULL, *old = NULL;
  int rc, err;

  if (!thread_ready()) {
    rc = GH_ESTATE;
    goto out;
  }
  rc = gh__token_get(token, &t);
  if (rc != 0)
    goto out;
  if (t->expiry != 0 && gh__sec_now() >= t->expiry) {
    rc = GH_ETOKEN_EXPIRED;
    goto out;
  }
  if (ts.mode == GH_IMPERSONATE_NESTED && ts.depth == GH_IMPERSONATE_MAX_DEPTH)
    abort(); /* overflow: a caller lost track of its reverts */
  err = apply(&t->imp, false);
  if (err != 0) {
    rc = gh__sec_map_errno(err);
    goto out;
  }
  gh__metrics_add(GH__M_IMPERSONATIONS);
  if (ts.mode == GH_IMPERSONATE_TRADITIONAL && ts.depth == 1) {
    old = ts.stack[0]; /* last impersonate wins */
    ts.stack[0] = t;
  } else {
    ts.stack[ts.depth++] = t;
  }
  t = NULL; /* the stack holds the reference now */
out:
  gh__token_unref(t);
  gh__token_unref(old);
  return rc;
}

/* Pop one level, restoring the outer identity or base; aborts on failure. */
static void pop_one(void)
{
  const gh__ids_t *to = ts.depth > 1 ? &ts.stack[ts.depth - 2]->imp : &gh__sec.base;
  gh__token_t *popped;

  apply(to, true);
  popped = ts.stack[--ts.depth];
  ts.stack[ts.depth] = NULL;
  gh__token_unref(popped);
}

int gh_revert(void)
{
  int rc = 0;

  if (!thread_ready()) {
    rc = GH_ESTATE;
    goto out;
  }
  if (ts.depth == 0) {
    if (ts.mode == GH_IMPERSONATE_NESTED)
      abort(); /* underflow */
    goto out;
  }
  pop_one();
out:
  return rc;
}

bool gh_is_impersonating(void)
{
  return ts.depth > 0;
}

unsigned gh_impersonation_depth(void)
{
  return ts.depth;
}

int gh_impersonate_set_mode(gh_impersonate_mode_t mode)
{
  int rc = 0;

  if (mode != GH_IMPERSONATE_TRADITIONAL && mode != GH_IMPERSONATE_NESTED)
    rc = -EINVAL;
  else if (ts.depth > 0)
    rc = GH_ESTATE;
  else
    ts.mode = mode;
  return rc;
}

gh_impersonate_mode_t gh_impersonate_get_mode(void)
{
  return ts.mode;
}

int gh_thread_get_token(gh_token_t *ret_token)
{
  int rc;

  if (ret_token == NULL)
    rc = -EINVAL;
  else if (ts.depth == 0)
    rc = GH_ENOT_IMPERSONATING;
  else
    rc = gh__token_new_handle(ts.stack[ts.depth - 1], ret_token);
  return rc;
}

int gh_assert_base(void)
{
  int rc = 0;

  if (!gh__sec.initialised) {
    rc = GH_ESTATE; /* no base identity yet: gh_sec_init was not called */
    goto out;
  }
  if (!thread_ready() || ts.depth != 0 || ts.cur.uid != gh__sec.base.uid ||
      !kernel_matches(&gh__sec.base))
    abort();
out:
  return rc;
}

void gh_call_scope_begin(gh_call_scope_t *scope)
{
  scope->magic = SCOPE_MAGIC;
  scope->depth = 0;
  scope->mode = ts.mode;
  scope->thread_id = (uint64_t)(uintptr_t)&ts;
  if (!thread_ready())
    goto out; /* sec layer not in use: nothing to guard */
  scope->depth = ts.depth;
  if (ts.depth == 0)
    (void)gh_assert_base(); /* thread_ready(): gh_sec_init has run */
out:
  return;
}

int gh_call_scope_end(gh_call_scope_t *scope)
{
  int reverted = 0;

  if (scope->magic != SCOPE_MAGIC || scope->thread_id != (uint64_t)(uintptr_t)&ts)
    abort();
  scope->magic = 0;
  if (!thread_ready())
    goto out;
  while (ts.depth > scope->depth) {
    pop_one();
    reverted++;
  }
  if (ts.depth != scope->depth)
    abort(); /* the callee reverted its caller's impersonation */
  ts.mode = (gh_impersonate_mode_t)scope->mode;
  if (!kernel_matches(ts.depth ? &ts.stack[ts.depth - 1]->imp : &gh__sec.base))
    abort();
out:
  return reverted;
}
