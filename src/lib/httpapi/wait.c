/* wait.c: gh_request_wait_fd / gh_request_wait_kept — a request waits for a file descriptor in the connection epoll instead of on a thread; the fd's event or the timer scan hands it to a worker (ABI 2.3, 2.4). */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <gatehouse/error.h>

#include "httpapi/internal.h"
#include "util/alloc.h"
#include "util/clock.h"

#define WAIT_STATE(w) ((w)&3u)
#define WAIT_GEN(w) ((w) & ~3u)
/* The epoll cookie of a wait: the connection's address in the low 48 bits,
 * the wait's generation (16 bits, never 0) above, so that an event of an
 * earlier arm of the same fd (a wait the scan took at its deadline) can
 * never take a later wait. Other cookies are plain pointers (top bits 0). */
#define COOKIE_SHIFT 48
#define COOKIE_GEN(w) ((uint64_t)((WAIT_GEN(w) >> 2) & 0xffffu))

bool gh__conn_wait_cookie_ok(const gh__conn_t *c)
{
  return ((uintptr_t)c >> COOKIE_SHIFT) == 0 && ((uintptr_t)c & GH__SLOT_BIT) == 0;
}

/* Takes the wait whose word was seen as w (ARMING or WAITING): true when
 * this thread now owns the request. */
static bool take(gh__conn_t *c, uint32_t w)
{
  return atomic_compare_exchange_strong_explicit(&c->wait, &w, WAIT_GEN(w) | GH__WAIT_NONE,
                                                 memory_order_acq_rel, memory_order_relaxed);
}

static void call_back(gh__conn_t *c, int result)
{
  gh_request_wait_cb cb = c->wait_cb;
  gh_request_t *req = c->wait_req;
  void *arg = c->wait_arg;
  c->wait_cb = NULL;
  c->wait_req = NULL;
  c->wait_arg = NULL;
  cb(req, result, arg);
}

GH_EXPORT int gh_request_can_wait(const gh_request_t *req)
{
  return req != NULL && atomic_load_explicit(&req->srv->waits_ok, memory_order_acquire);
}

/* ---- kept descriptors ---------------------------------------------------
 * gh_request_wait_kept: a pooled upstream socket stays in the connection
 * epoll, edge-triggered, with a cookie naming its slot (GH__SLOT_BIT | fd)
 * instead of the request: a wait stores the waiting request's cookie in
 * the slot and costs no system call (the one-shot re-arm was one of a
 * proxied request's nine). The slot's key (the caller's, unique per
 * connection) tells a new descriptor that reuses the number: it is
 * registered anew (the kernel dropped the old one at its close). An event
 * takes the slot's waiter; with none (the answer came before the wait,
 * or the wait timed out) it sets `missed`, and the next wait, which reads
 * it after storing its cookie (both sequentially consistent), re-reports
 * readiness with a MOD. */

static gh__slot_t *slot_get(gh_server_t *s, int fd, bool create)
{
  unsigned i = (unsigned)fd / GH__SLOT_CHUNK, j = (unsigned)fd % GH__SLOT_CHUNK;
  gh__slot_t *chunk, *fresh;
  if (fd < 0 || i >= GH__SLOT_CHUNKS)
    return NULL;
  chunk = atomic_load_explicit(&s->slots[i], memory_order_acquire);
  if (chunk == NULL && create) {
    fresh = gh__calloc(GH__SLOT_CHUNK, sizeof(*fresh));
    if (fresh == NULL)
      return NULL;
    if (atomic_compare_exchange_strong_explicit(&s->slots[i], &chunk, fresh, memory_order_acq_rel,
                                                memory_order_acquire))
      chunk = fresh;
    else
      free(fresh); /* another thread's chunk is in chunk */
  }
  return chunk != NULL ? &chunk[j] : NULL;
}

void gh__slots_free(gh_server_t *s)
{
  for (unsigned i = 0; i < GH__SLOT_CHUNKS; i++)
    free(atomic_load_explicit(&s->slots[i], memory_order_relaxed));
}

/* Puts the wait's cookie in fd's slot, registering fd if the slot's key or
 * events differ. 0, or -errno with the cookie taken back (*taken: an event
 * took it first: the wait stands, its callback runs). */
static int slot_arm(gh_server_t *s, gh__slot_t *sl, int fd, uint64_t key, uint32_t mask,
                    uint64_t cookie, bool *taken)
{
  struct epoll_event ev = {.events = mask, .data.u64 = GH__SLOT_BIT | (uint64_t)(unsigned)fd};
  *taken = false;
  if (sl->key == key && sl->mask == mask) {
    atomic_store_explicit(&sl->waiter, cookie, memory_order_seq_cst);
    if (atomic_load_explicit(&sl->missed, memory_order_seq_cst)) {
      atomic_store_explicit(&sl->missed, false, memory_order_relaxed);
      (void)epoll_ctl(s->cepfd, EPOLL_CTL_MOD, fd, &ev); /* reports what came meanwhile */
    }
    return 0;
  }
  atomic_store_explicit(&sl->missed, false, memory_order_relaxed);
  atomic_store_explicit(&sl->waiter, cookie, memory_order_seq_cst);
  /* the registration reports present readiness: its event takes the cookie */
  if (epoll_ctl(s->cepfd, EPOLL_CTL_MOD, fd, &ev) != 0 &&
      (errno != ENOENT || epoll_ctl(s->cepfd, EPOLL_CTL_ADD, fd, &ev) != 0)) {
    int e = -errno;
    sl->key = 0;
    *taken = atomic_exchange_explicit(&sl->waiter, 0, memory_order_acq_rel) != cookie;
    return e;
  }
  sl->key = key;
  sl->mask = mask;
  return 0;
}

GH_EXPORT int gh_request_wait_kept(gh_request_t *req, int fd, uint64_t key, unsigned events,
                                   int timeout_ms, gh_request_wait_cb cb, void *arg)
{
  gh__conn_t *c;
  gh__slot_t *sl;
  uint32_t w, armed, mask = 0;
  uint64_t cookie;
  bool taken = false;
  int e;
  if (req == NULL || fd < 0 || cb == NULL || events == 0 ||
      (events & ~(GH_WAIT_IN | GH_WAIT_OUT)) != 0)
    return -EINVAL;
  if (!atomic_load_explicit(&req->srv->waits_ok, memory_order_acquire))
    return GH_EUNSUPPORTED;
  c = req->conn;
  if (c != NULL && !gh__conn_wait_cookie_ok(c))
    return GH_EUNSUPPORTED;
  if (c == NULL || c->dead || req->finished || req->released || req->stream != NULL)
    return GH_ESTATE;
  w = atomic_load_explicit(&c->wait, memory_order_relaxed);
  if (WAIT_STATE(w) != GH__WAIT_NONE)
    return GH_ESTATE; /* a wait of this request is outstanding */
  sl = slot_get(req->srv, fd, key != 0);
  if (key == 0 && sl != NULL)
    sl->key = 0; /* a one-shot wait replaces the registration's cookie */
  c->wait_cb = cb;
  c->wait_req = req;
  c->wait_arg = arg;
  atomic_store_explicit(&c->deadline,
                        timeout_ms < 0 ? UINT64_MAX : gh__now_ms() + (uint64_t)timeout_ms,
                        memory_order_relaxed);
  armed = WAIT_GEN(w) + 4u; /* the next generation */
  if (COOKIE_GEN(armed) == 0)
    armed += 4u;
  atomic_store_explicit(&c->wait, armed | GH__WAIT_ARMING, memory_order_release);
  if (events & GH_WAIT_IN)
    mask |= EPOLLIN | EPOLLRDHUP;
  if (events & GH_WAIT_OUT)
    mask |= EPOLLOUT;
  cookie = (uint64_t)(uintptr_t)c | COOKIE_GEN(armed) << COOKIE_SHIFT;
  if (key != 0 && sl != NULL) {
    e = slot_arm(req->srv, sl, fd, key, mask | EPOLLET, cookie, &taken);
  } else {
    struct epoll_event ev = {.events = mask | EPOLLONESHOT, .data.u64 = cookie};
    e = epoll_ctl(req->srv->cepfd, EPOLL_CTL_MOD, fd, &ev) != 0 &&
                (errno != ENOENT || epoll_ctl(req->srv->cepfd, EPOLL_CTL_ADD, fd, &ev) != 0)
            ? -errno
            : 0;
  }
  if (e != 0 && !taken) {
    /* nothing is registered: no event can take it */
    atomic_store_explicit(&c->wait, armed | GH__WAIT_NONE, memory_order_relaxed);
    c->wait_cb = NULL;
    c->wait_req = NULL;
    c->wait_arg = NULL;
    return e;
  }
  /* From here c may be another thread's. Only the CAS below touches it; it
   * fails when the event already took the wait (or a later wait runs: the
   * generation differs), and then that thread called back. */
  w = armed | GH__WAIT_ARMING;
  (void)atomic_compare_exchange_strong_explicit(&c->wait, &w, armed | GH__WAIT_WAITING,
                                                memory_order_acq_rel, memory_order_relaxed);
  return 0;
}

GH_EXPORT int gh_request_wait_fd(gh_request_t *req, int fd, unsigned events, int timeout_ms,
                                 gh_request_wait_cb cb, void *arg)
{
  return gh_request_wait_kept(req, fd, 0, events, timeout_ms, cb, arg);
}

/* The wait a cookie names, taken (this thread owns the request), or NULL
 * for an event of an arm whose wait was already called back. */
static gh__conn_t *take_cookie(uint64_t cookie)
{
  gh__conn_t *c = (gh__conn_t *)(uintptr_t)(cookie & ((UINT64_C(1) << COOKIE_SHIFT) - 1));
  uint32_t w = atomic_load_explicit(&c->wait, memory_order_acquire);
  if (WAIT_STATE(w) == GH__WAIT_NONE || COOKIE_GEN(w) != cookie >> COOKIE_SHIFT || !take(c, w))
    return NULL;
  return c;
}

void gh__conn_wait_event(uint64_t cookie)
{
  gh__conn_t *c = take_cookie(cookie);
  if (c != NULL)
    call_back(c, GH_WAIT_READY);
}

static void push_due(gh_server_t *s, gh__conn_t *c, int result);

/* A kept descriptor's event: its waiter is taken, or `missed` is set (and
 * the slot looked at once more: a wait stored meanwhile is taken). */
void gh__wait_slot_event(gh_server_t *s, uint64_t cookie, bool defer)
{
  gh__slot_t *sl = slot_get(s, (int)(cookie & 0xffffffffu), false);
  gh__conn_t *c = NULL;
  uint64_t w;
  if (sl == NULL)
    return;
  w = atomic_exchange_explicit(&sl->waiter, 0, memory_order_seq_cst);
  if (w != 0)
    c = take_cookie(w);
  if (c == NULL) {
    atomic_store_explicit(&sl->missed, true, memory_order_seq_cst);
    w = atomic_exchange_explicit(&sl->waiter, 0, memory_order_seq_cst);
    if (w == 0 || (c = take_cookie(w)) == NULL)
      return;
  }
  if (defer) {
    push_due(s, c, GH_WAIT_READY);
    gh__conn_due_signal(s);
  } else {
    call_back(c, GH_WAIT_READY);
  }
}

static void push_due(gh_server_t *s, gh__conn_t *c, int result)
{
  c->due_result = result;
  pthread_mutex_lock(&s->wdlock);
  c->due_next = s->wdue;
  s->wdue = c;
  pthread_mutex_unlock(&s->wdlock);
}

void gh__conn_wait_defer(gh_server_t *s, uint64_t cookie)
{
  gh__conn_t *c = take_cookie(cookie);
  if (c == NULL)
    return;
  push_due(s, c, GH_WAIT_READY);
  gh__conn_due_signal(s);
}

void gh__conn_due_signal_rearm(gh_server_t *s)
{
  struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT, .data.ptr = &s->wdue_kind};
  (void)epoll_ctl(s->cepfd, EPOLL_CTL_MOD, s->wduefd, &ev);
}

/* The I/O thread's scan: a due wait is taken and queued for a worker (the
 * scan never runs application code). Called under the I/O list lock. */
bool gh__conn_wait_due(gh__conn_t *c, uint64_t now, bool cut)
{
  gh_server_t *s = c->srv;
  uint32_t w = atomic_load_explicit(&c->wait, memory_order_acquire);
  if (WAIT_STATE(w) != GH__WAIT_WAITING)
    return false;
  if (!cut && now < atomic_load_explicit(&c->deadline, memory_order_relaxed))
    return false;
  if (!take(c, w))
    return false;
  push_due(s, c, GH_WAIT_TIMEOUT);
  return true;
}

/* After a scan queued waits: one worker gets the eventfd's one-shot event. */
void gh__conn_due_signal(gh_server_t *s)
{
  uint64_t one = 1;
  ssize_t n = write(s->wduefd, &one, sizeof(one));
  (void)n;
}

void gh__conn_run_due(gh_server_t *s)
{
  gh__conn_t *list, *next;
  uint64_t v;
  pthread_mutex_lock(&s->wdlock);
  list = s->wdue;
  s->wdue = NULL;
  while (read(s->wduefd, &v, sizeof(v)) > 0)
    ;
  /* re-armed under the lock: a later push writes the eventfd after this */
  gh__conn_due_signal_rearm(s);
  pthread_mutex_unlock(&s->wdlock);
  for (gh__conn_t *c = list; c != NULL; c = next) {
    next = c->due_next;
    c->due_next = NULL;
    call_back(c, c->due_result);
  }
}
