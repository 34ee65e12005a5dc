/* batch.c: inline workers take several connection-epoll events per epoll_wait; the ones a worker does not run itself wait in a shared ring for the next free worker. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "httpapi/internal.h"
#include "util/alloc.h"

/* ---- event batches ------------------------------------------------------
 * One epoll_wait per event was two system calls of a proxied request's
 * twelve (bench/proxy); nginx takes ~9 events per call. An inline worker
 * asks for up to GH__BATCH events, runs the first, and puts the others in
 * the server's ring, where every inline worker looks first when it comes
 * back for work. Every event is a one-shot registration (or the due and
 * kick eventfds), so one descriptor is in at most one batch and the ring
 * never holds more than the ring's room reserved before the epoll_wait.
 *
 * A worker that blocks inside a handler holds nobody's event: the ring is
 * shared. But the other workers may be asleep in epoll_wait; they are
 * woken by the kick eventfd (edge-triggered: one write wakes one worker):
 * when a batch leaves several events while a worker waits, when a worker
 * is about to block on a slow client (gh__server_may_block), and by the I/O
 * thread's tick when events sat in the ring for GH__SPARE_MS (a handler
 * blocked without saying so: a CGI script, PAM). */

int gh__batch_init(gh_server_t *s)
{
  int ret = 0;
  s->ring = gh__calloc(GH__RING, sizeof(*s->ring));
  s->kickfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s->ring == NULL || s->kickfd < 0) {
    ret = s->ring == NULL ? -ENOMEM : -errno;
    goto fail;
  }
  struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.ptr = &s->kick_kind};
  if (epoll_ctl(s->cepfd, EPOLL_CTL_ADD, s->kickfd, &ev) != 0) {
    ret = -errno;
    goto fail;
  }
  atomic_store_explicit(&s->batching, true, memory_order_release); /* the I/O threads' word */
  return 0;
fail:
  gh__batch_free(s);
  return ret;
}

void gh__batch_free(gh_server_t *s)
{
  if (s->kickfd >= 0)
    close(s->kickfd);
  s->kickfd = -1;
  free(s->ring);
  s->ring = NULL;
}

/* Room for the events of one epoll_wait beyond the first: reserved before
 * the call, so concurrent batches cannot overflow the ring. */
unsigned gh__batch_reserve(gh_server_t *s)
{
  unsigned want = GH__BATCH - 1;
  if (s->ring == NULL)
    return 0;
  unsigned used = atomic_fetch_add_explicit(&s->rused, want, memory_order_relaxed);
  if (used + want > GH__RING) {
    atomic_fetch_sub_explicit(&s->rused, want, memory_order_relaxed);
    return 0;
  }
  return want;
}

void gh__batch_kick(gh_server_t *s)
{
  uint64_t one = 1;
  ssize_t w = write(s->kickfd, &one, sizeof(one));
  (void)w;
}

/* evs[0..n) into the ring (n <= reserved); the rest of the reservation is
 * given back. */
void gh__batch_push(gh_server_t *s, const struct epoll_event *evs, unsigned n, unsigned reserved)
{
  if (n > 0) {
    pthread_mutex_lock(&s->rlock);
    for (unsigned i = 0; i < n; i++)
      s->ring[(s->rhead + s->rcount++) % GH__RING] = evs[i];
    atomic_store_explicit(&s->rn, s->rcount, memory_order_release);
    pthread_mutex_unlock(&s->rlock);
  }
  if (reserved > n)
    atomic_fetch_sub_explicit(&s->rused, reserved - n, memory_order_relaxed);
  if (n >= GH__KICK_MIN && atomic_load_explicit(&s->listening, memory_order_relaxed) > 0)
    gh__batch_kick(s); /* a worker sleeps while events wait: one more hand */
}

bool gh__batch_pop(gh_server_t *s, struct epoll_event *ev)
{
  bool ok = false;
  if (atomic_load_explicit(&s->rn, memory_order_acquire) == 0)
    return false;
  pthread_mutex_lock(&s->rlock);
  if (s->rcount > 0) {
    *ev = s->ring[s->rhead];
    s->rhead = (s->rhead + 1) % GH__RING;
    s->rcount--;
    s->rpops++;
    atomic_store_explicit(&s->rn, s->rcount, memory_order_release);
    ok = true;
  }
  pthread_mutex_unlock(&s->rlock);
  if (ok)
    atomic_fetch_sub_explicit(&s->rused, 1, memory_order_relaxed);
  return ok;
}

/* The I/O threads' tick (every GH__SPARE_MS while busy): events in the
 * ring at the last tick and none taken since means the workers are blocked
 * or asleep (a batch's worker blocked in a handler): one is woken. */
void gh__batch_check(gh_server_t *s, uint64_t now)
{
  bool stuck = false;
  /* an empty ring is stuck at no tick (only pops empty it, and a pop
   * changes rpops): no lock on the I/O thread's every turn */
  if (!atomic_load_explicit(&s->batching, memory_order_acquire) ||
      atomic_load_explicit(&s->rn, memory_order_acquire) == 0)
    return;
  pthread_mutex_lock(&s->rlock);
  if (now - s->tick_ms < GH__SPARE_MS)
    goto out;
  s->tick_ms = now;
  stuck = s->rcount > 0 && s->tick_waiting && s->rpops == s->tick_pops;
  s->tick_pops = s->rpops;
  s->tick_waiting = s->rcount > 0;
out:
  pthread_mutex_unlock(&s->rlock);
  if (stuck)
    gh__batch_kick(s);
}
