/* scoped.c: token-scoped opens — openat2 with a token's identity without switching the thread (io_uring personalities, switch fallback). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/io_uring.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sec/sec_internal.h"
#include "util/alloc.h"

/*
 * gh_token_openat2 opens a file as gh_impersonate(token) + openat2 +
 * gh_revert would, but the calling thread never changes identity.
 *
 * Where the kernel allows io_uring, each thread owns one small ring and
 * registers a personality (IORING_REGISTER_PERSONALITY: a reference to the
 * thread's credentials at the time of the call) once per identity: the
 * thread switches to the token's ids through the normal path
 * (gh__sec_enter), registers, and switches back (gh__sec_leave, which
 * aborts if the kernel refuses). An IORING_OP_OPENAT2 carrying that
 * personality runs with exactly those credentials — uid, gid, groups and
 * capabilities as impersonation would have them — so the kernel makes the
 * same access decision, for one syscall instead of six credential changes.
 *
 * Identities, not tokens, key the cache: a personality is reused for any
 * token whose impersonation ids (t->imp: effective uid, gid and the sorted
 * group list) are equal, and never for any other. Entries keep copies of the
 * ids, not token references (a DELEGATE token's credentials must not outlive
 * the request). At most SCOPED_MAX_IDS identities per thread; the least
 * recently used one is unregistered when a new one is needed. Everything is
 * per thread: no locks, and the ring is closed when the thread exits.
 *
 * Fallback, whenever the ring cannot be used (io_uring disabled or filtered,
 * a kernel without IORING_OP_OPENAT2, an allocation failure, more than
 * SCOPED_MAX_GROUPS groups, or GATEHOUSE_NO_IO_URING=1 in the environment):
 * switch, openat2, switch back — the same access decision, slower.
 */

#define SCOPED_MAX_IDS 16
#define SCOPED_MAX_GROUPS 256
#define RING_ENTRIES 4

typedef struct scoped_id {
  bool used;
  uint16_t personality;
  uid_t uid;
  gid_t gid;
  uint32_t ngroups;
  gid_t *groups;
  uint64_t last_use;
} scoped_id_t;

typedef struct scoped_ring {
  int fd;
  void *sq_map, *cq_map, *sqe_map;
  size_t sq_len, cq_len, sqe_len;
  unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
  unsigned *cq_head, *cq_tail, *cq_mask;
  struct io_uring_sqe *sqes;
  struct io_uring_cqe *cqes;
  uint64_t seq, uses;
  scoped_id_t ids[SCOPED_MAX_IDS];
} scoped_ring_t;

/* per thread: NULL = not tried yet; RING_BROKEN = do not use io_uring */
static __thread scoped_ring_t *tring;
static scoped_ring_t ring_broken_marker;
#define RING_BROKEN (&ring_broken_marker)

static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t ring_key;
static atomic_int uring_disabled = -1; /* -1 unknown, 0 allowed, 1 disabled */

static void ring_free(scoped_ring_t *r)
{
  if (r == NULL || r == RING_BROKEN)
    return;
  for (size_t i = 0; i < SCOPED_MAX_IDS; i++)
    free(r->ids[i].groups);
  if (r->sqe_map != NULL)
    munmap(r->sqe_map, r->sqe_len);
  if (r->cq_map != NULL && r->cq_map != r->sq_map)
    munmap(r->cq_map, r->cq_len);
  if (r->sq_map != NULL)
    munmap(r->sq_map, r->sq_len);
  if (r->fd >= 0)
    close(r->fd); /* drops every personality registered on it */
  free(r);
}

static void ring_key_destroy(void *arg)
{
  ring_free(arg);
}

static void key_init(void)
{
  if (pthread_key_create(&ring_key, ring_key_destroy) != 0)
    abort();
}

void gh__sec_scoped_force_switch(bool on)
{
  atomic_store(&uring_disabled, on ? 1 : 0);
}

bool gh__sec_scoped_ring_active(void)
{
  return tring != NULL && tring != RING_BROKEN;
}

static bool uring_allowed(void)
{
  int d = atomic_load(&uring_disabled);
  if (d < 0) {
    const char *v = getenv("GATEHOUSE_NO_IO_URING");
    d = v != NULL && *v != '\0' && strcmp(v, "0") != 0;
    atomic_store(&uring_disabled, d);
  }
  return d == 0;
}

/* IORING_REGISTER_PROBE (5.6+): whether the kernel knows opcode `op`. */
static bool op_supported(int fd, unsigned op)
{
  union {
    struct io_uring_probe probe;
    char space[sizeof(struct io_uring_probe) + 256 * sizeof(struct io_uring_probe_op)];
  } u;
  memset(&u, 0, sizeof(u));
  if (syscall(__NR_io_uring_register, fd, IORING_REGISTER_PROBE, &u.probe, 256) < 0)
    return false;
  return op <= u.probe.last_op && (u.probe.ops[op].flags & IO_URING_OP_SUPPORTED);
}

/* The thread's ring, or NULL. *ret_broken says whether io_uring is unusable
 * here for good (setup refused, no OPENAT2) rather than for want of memory. */
static scoped_ring_t *ring_create(bool *ret_broken)
{
  struct io_uring_params p;
  scoped_ring_t *r = gh__calloc(1, sizeof(*r));
  long fd;
  char *sq, *cq;

  *ret_broken = false;
  if (r == NULL)
    goto fail;
  r->fd = -1;
  memset(&p, 0, sizeof(p));
  fd = syscall(__NR_io_uring_setup, RING_ENTRIES, &p); /* always O_CLOEXEC */
  if (fd < 0) {
    *ret_broken = errno != ENOMEM;
    goto fail;
  }
  r->fd = (int)fd;
  if (!op_supported(r->fd, IORING_OP_OPENAT2)) {
    *ret_broken = true;
    goto fail;
  }
  r->sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  r->cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  if (p.features & IORING_FEAT_SINGLE_MMAP) {
    if (r->cq_len > r->sq_len)
      r->sq_len = r->cq_len;
    r->cq_len = r->sq_len;
  }
  sq = mmap(NULL, r->sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
            IORING_OFF_SQ_RING);
  if (sq == MAP_FAILED)
    goto fail;
  r->sq_map = sq;
  if (p.features & IORING_FEAT_SINGLE_MMAP) {
    cq = sq;
  } else {
    cq = mmap(NULL, r->cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
              IORING_OFF_CQ_RING);
    if (cq == MAP_FAILED)
      goto fail;
  }
  r->cq_map = cq;
  r->sqe_len = p.sq_entries * sizeof(struct io_uring_sqe);
  r->sqe_map = mmap(NULL, r->sqe_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
                    IORING_OFF_SQES);
  if (r->sqe_map == MAP_FAILED) {
    r->sqe_map = NULL;
    goto fail;
  }
  r->sqes = r->sqe_map;
  r->sq_head = (unsigned *)(void *)(sq + p.sq_off.head);
  r->sq_tail = (unsigned *)(void *)(sq + p.sq_off.tail);
  r->sq_mask = (unsigned *)(void *)(sq + p.sq_off.ring_mask);
  r->sq_array = (unsigned *)(void *)(sq + p.sq_off.array);
  r->cq_head = (unsigned *)(void *)(cq + p.cq_off.head);
  r->cq_tail = (unsigned *)(void *)(cq + p.cq_off.tail);
  r->cq_mask = (unsigned *)(void *)(cq + p.cq_off.ring_mask);
  r->cqes = (struct io_uring_cqe *)(void *)(cq + p.cq_off.cqes);
  pthread_once(&key_once, key_init);
  if (pthread_setspecific(ring_key, r) != 0)
    goto fail;
  return r;
fail:
  ring_free(r);
  return NULL;
}

/* One OPENAT2 with `personality`; the CQE's result (fd or -errno), or
 * INT_MIN when the ring itself failed before submitting (the caller drops
 * the ring and falls back). */
static int ring_openat2(scoped_ring_t *r, uint16_t personality, int dirfd, const char *path,
                        const struct open_how *how)
{
  unsigned tail = *r->sq_tail, idx = tail & *r->sq_mask, head, ctail;
  struct io_uring_sqe *s = &r->sqes[idx];
  struct io_uring_cqe *c;
  uint64_t tag = ++r->seq;
  bool submitted = false;
  int res;
  long n;

  memset(s, 0, sizeof(*s));
  s->opcode = IORING_OP_OPENAT2;
  s->fd = dirfd;
  s->addr = (uint64_t)(uintptr_t)path;
  s->len = sizeof(*how);
  s->off = (uint64_t)(uintptr_t)how;
  s->personality = personality;
  s->user_data = tag;
  r->sq_array[idx] = idx;
  atomic_store_explicit((_Atomic unsigned *)r->sq_tail, tail + 1, memory_order_release);
  for (;;) {
    n = syscall(__NR_io_uring_enter, r->fd, submitted ? 0u : 1u, 1u, IORING_ENTER_GETEVENTS,
                NULL, 0);
    /* the kernel moves the SQ head once it has taken the entry */
    if (atomic_load_explicit((_Atomic unsigned *)r->sq_head, memory_order_acquire) != tail)
      submitted = true;
    head = *r->cq_head;
    ctail = atomic_load_explicit((_Atomic unsigned *)r->cq_tail, memory_order_acquire);
    if (head != ctail)
      break;
    if (n < 0 && errno != EINTR && errno != EAGAIN && errno != EBUSY) {
      if (!submitted)
        return INT_MIN; /* the entry stays unsubmitted: the caller closes the ring */
      abort(); /* a submitted open whose result can never be read */
    }
  }
  c = &r->cqes[head & *r->cq_mask];
  if (c->user_data != tag)
    abort(); /* one submission in flight per thread: anything else is corruption */
  res = c->res;
  atomic_store_explicit((_Atomic unsigned *)r->cq_head, head + 1, memory_order_release);
  return res;
}

static bool ids_equal(const scoped_id_t *e, const gh__ids_t *ids)
{
  return e->used && e->uid == ids->uid && e->gid == ids->gid && e->ngroups == ids->ngroups &&
         (ids->ngroups == 0 || memcmp(e->groups, ids->groups, ids->ngroups * sizeof(gid_t)) == 0);
}

/* The personality for t->imp on this thread's ring, registering it (one
 * switch there and back) if needed; -1 if it cannot be had. */
static int personality_for(scoped_ring_t *r, gh__token_t *t)
{
  const gh__ids_t *ids = &t->imp;
  scoped_id_t *slot = NULL;
  gh__sec_saved_t saved;
  gid_t *copy = NULL;
  long pers;
  int ret = -1;

  r->uses++;
  for (size_t i = 0; i < SCOPED_MAX_IDS; i++) {
    scoped_id_t *e = &r->ids[i];
    if (ids_equal(e, ids)) {
      e->last_use = r->uses;
      ret = e->personality;
      goto out;
    }
    /* a free slot, else the least recently used one */
    if (slot == NULL || (slot->used && (!e->used || e->last_use < slot->last_use)))
      slot = e;
  }
  if (ids->ngroups > SCOPED_MAX_GROUPS)
    goto out;
  if (ids->ngroups > 0) {
    copy = gh__malloc(ids->ngroups * sizeof(gid_t));
    if (copy == NULL)
      goto out;
    memcpy(copy, ids->groups, ids->ngroups * sizeof(gid_t));
  }
  if (gh__sec_enter(t, ids, &saved) != 0)
    goto out;
  pers = syscall(__NR_io_uring_register, r->fd, IORING_REGISTER_PERSONALITY, NULL, 0);
  gh__sec_leave(&saved); /* aborts if the switch back fails */
  if (pers < 0 || pers > UINT16_MAX)
    goto out;
  if (slot->used) {
    (void)syscall(__NR_io_uring_register, r->fd, IORING_UNREGISTER_PERSONALITY, NULL,
                  (unsigned)slot->personality);
    free(slot->groups);
  }
  *slot = (scoped_id_t){.used = true,
                        .personality = (uint16_t)pers,
                        .uid = ids->uid,
                        .gid = ids->gid,
                        .ngroups = ids->ngroups,
                        .groups = copy,
                        .last_use = r->uses};
  copy = NULL;
  ret = (int)pers;
out:
  free(copy);
  return ret;
}

static int switch_openat2(gh__token_t *t, int dirfd, const char *path, const struct open_how *how)
{
  gh__sec_saved_t saved;
  long fd;
  int ret = gh__sec_enter(t, &t->imp, &saved);
  if (ret != 0)
    goto out;
  fd = syscall(SYS_openat2, dirfd, path, how, sizeof(*how));
  ret = fd < 0 ? -errno : (int)fd;
  gh__sec_leave(&saved);
out:
  return ret;
}

int gh_token_openat2(gh_token_t token, int dirfd, const char *path, const struct open_how *how,
                     size_t size)
{
  gh__token_t *t = NULL;
  struct open_how h;
  int ret, pers;

  if (path == NULL || how == NULL || size != sizeof(h)) {
    ret = -EINVAL;
    goto out;
  }
  ret = gh__token_get_live(token, &t);
  if (ret != 0)
    goto out;
  h = *how;
  h.flags |= O_CLOEXEC;
  if (uring_allowed()) {
    if (tring == NULL) {
      bool broken;
      tring = ring_create(&broken);
      if (tring == NULL && broken)
        tring = RING_BROKEN; /* no io_uring here: do not try again on this thread */
    }
    if (tring != NULL && tring != RING_BROKEN && (pers = personality_for(tring, t)) >= 0) {
      ret = ring_openat2(tring, (uint16_t)pers, dirfd, path, &h);
      if (ret == INT_MIN) {
        /* the ring broke (or io_uring_enter is filtered): never again on
         * this thread; closing it discards the unsubmitted entry */
        pthread_setspecific(ring_key, NULL);
        ring_free(tring);
        tring = RING_BROKEN;
      } else if (ret != -EINVAL) {
        goto out;
      }
      /* -EINVAL: a bad open_how (the probe said OPENAT2 exists); the
       * switch path below gives the kernel's own answer */
    }
  }
  ret = switch_openat2(t, dirfd, path, &h);
out:
  gh__token_unref(t);
  return ret;
}
