/* metrics.h: the counter block — fixed layout, one slot per process, relaxed atomics, memory the
 * application may give (internal). */
#ifndef GH_UTIL_METRICS_H
#define GH_UTIL_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * One block per process image: a header (the site table, the master's
 * figures) and n_slots slots, one per process that counts. A process adds
 * to its own slot only (gh__metrics_self), with relaxed atomic adds: no
 * lock, no allocation. A slot holds GH__METRICS_SHARDS copies of the
 * counters; each thread adds to one of them (its first count picks one,
 * round robin), so the worker threads of a process do not pass the same
 * cache lines back and forth on every request. A reader sums slots and
 * shards.
 *
 * Until gh__metrics_attach the block is a static one with one slot, so a
 * library user counts (and can render) without doing anything. A daemon
 * with worker processes attaches a MAP_SHARED mapping before it forks and
 * gives each worker the slot of its index (gh__metrics_use_slot): a worker
 * restarted in the same slot keeps that slot's counters, so every sum only
 * grows (Prometheus counters never go down); only gauges are reset.
 *
 * The layout holds no pointer: it is the same in every process that maps
 * it. Everything is sized here, so an index out of range is a bug of the
 * caller (the layers above map their values into these ranges).
 */

#define GH__METRICS_SITES 64      /* site table entries, the two below included */
#define GH__METRICS_SITE_NONE 0   /* requests no site matched */
#define GH__METRICS_SITE_OTHER 1  /* sites beyond the table */
#define GH__METRICS_SITE_NAME 120 /* bytes per name, NUL included; longer ones are cut */
#define GH__METRICS_CODES 32      /* status code indexes (httpapi maps codes to them) */
#define GH__METRICS_BOUNDS 14     /* latency bucket upper bounds; one more bucket: +Inf */
#define GH__METRICS_SCHEMES 8     /* auth scheme indexes (gh_auth_type_t) */
#define GH__METRICS_OUTCOMES 8    /* auth outcome indexes */
#define GH__METRICS_REASONS 32    /* failure cause indexes (gh_auth_failure_t) */
#define GH__METRICS_SESSION_REASONS 8
#define GH__METRICS_SHARDS 4      /* copies of the counters per slot (threads spread over them) */
#define GH__METRICS_MAX_SLOTS 1024

/* Counters without labels. */
typedef enum gh__metrics_scalar {
  GH__M_IMPERSONATIONS = 0, /* sec: a thread took a client identity */
  GH__M_REVERT_FAILURES,    /* sec: a revert failed (the process then aborts) */
  GH__M_REPLAYS,            /* auth: a replayed Kerberos authenticator refused */
  GH__M_RCACHE_ERRORS,      /* auth: the replay cache backend (Redis) failed a call */
  GH__M_SESSIONS_MINTED,    /* auth: a session cookie was issued */
  GH__M_SESSIONS_ACCEPTED,  /* auth: a session cookie stood for a credential */
  GH__M_CONNECTIONS,        /* httpapi: connections accepted */
  GH__M_SCALARS
} gh__metrics_scalar_t;

/* Latency bucket upper bounds in nanoseconds (0.5 ms ... 10 s). */
extern const uint64_t gh__metrics_bounds_ns[GH__METRICS_BOUNDS];

/* The counters; GH__METRICS_SHARDS of them per slot. */
typedef struct gh__metrics_shard {
  _Alignas(64) _Atomic uint64_t scalar[GH__M_SCALARS];
  _Atomic uint64_t requests[GH__METRICS_SITES][GH__METRICS_CODES];
  _Atomic uint64_t latency[GH__METRICS_SITES][GH__METRICS_BOUNDS + 1]; /* not cumulative */
  _Atomic uint64_t latency_sum_ns[GH__METRICS_SITES];
  _Atomic uint64_t auth[GH__METRICS_SCHEMES][GH__METRICS_OUTCOMES];
  _Atomic uint64_t auth_fail[GH__METRICS_SCHEMES][GH__METRICS_REASONS];
  _Atomic uint64_t sessions_refused[GH__METRICS_SESSION_REASONS];
} gh__metrics_shard_t;

typedef struct gh__metrics_slot {
  _Alignas(64) _Atomic int64_t conns_active; /* gauge: reset when a process takes the slot */
  _Atomic int64_t pid;                       /* the process counting here (0: none yet) */
  gh__metrics_shard_t shard[GH__METRICS_SHARDS];
} gh__metrics_slot_t;

typedef struct gh__metrics_block {
  _Alignas(64) uint32_t magic;
  uint32_t n_slots;
  _Atomic uint32_t n_sites;                       /* entries claimed (ready or being written) */
  _Atomic uint32_t site_ready[GH__METRICS_SITES]; /* 1: the name is written */
  char site_name[GH__METRICS_SITE_NAME * GH__METRICS_SITES];
  _Atomic uint64_t restarts;    /* master: worker processes started again */
  _Atomic uint32_t procs_alive; /* master: worker processes running (1 without a master) */
} gh__metrics_block_t;

/** The block and this process's slot; never NULL. Set before any thread
 *  exists (gh__metrics_attach, gh__metrics_use_slot); read by every thread. */
extern gh__metrics_block_t *gh__metrics_blk;
extern gh__metrics_slot_t *gh__metrics_self;

/** This thread's shard, 1-based (0: none picked yet). */
extern __thread unsigned gh__metrics_tix;
/** Picks this thread's shard (round robin); returns gh__metrics_tix. */
unsigned gh__metrics_pick_shard(void);

/** The counters this thread adds to. */
static inline gh__metrics_shard_t *gh__metrics_mine(void)
{
  unsigned i = gh__metrics_tix;
  if (__builtin_expect(i == 0, 0))
    i = gh__metrics_pick_shard();
  return &gh__metrics_self->shard[i - 1];
}

/** Bytes a block of n_slots needs (0 when n_slots is 0 or too large). */
size_t gh__metrics_size(unsigned n_slots);

/** Makes mem (len >= gh__metrics_size(n_slots), 64-byte aligned, zeroed or
 *  not) the block, with this process counting in slot 0. The sites named so
 *  far are kept; counts made so far are not carried over. mem must outlive
 *  every later count. Before any thread exists. 0, or -EINVAL. */
int gh__metrics_attach(void *mem, size_t len, unsigned n_slots);

/** This process counts in slot index from now on; its gauges restart at 0,
 *  its counters are kept. Before any thread of this process exists (a
 *  forked worker). 0, or -EINVAL (index >= n_slots). */
int gh__metrics_use_slot(unsigned index);

/** Zeroes the gauges of slot index (the master, once the process that
 *  counted there is gone). Any thread. */
void gh__metrics_slot_gone(unsigned index);

/** The slot at index (< n_slots) for reading. */
const gh__metrics_slot_t *gh__metrics_slot_at(unsigned index);

/** The index of site name in the table: the entry already holding that
 *  name, else a new entry, else GH__METRICS_SITE_OTHER (table full). NULL
 *  is GH__METRICS_SITE_NONE. Any thread or process (claims are atomic; two
 *  processes naming the same new site at once may get two entries of one
 *  name: readers add them up by name). */
unsigned gh__metrics_site(const char *name);

/** The name of entry index, or NULL when it is not (yet) in use. */
const char *gh__metrics_site_name(unsigned index);

/** The latency bucket of ns nanoseconds (GH__METRICS_BOUNDS: +Inf). */
static inline unsigned gh__metrics_bucket(uint64_t ns)
{
  unsigned b = 0;
  while (b < GH__METRICS_BOUNDS && ns > gh__metrics_bounds_ns[b])
    b++;
  return b;
}

static inline void gh__metrics_add(gh__metrics_scalar_t m)
{
  atomic_fetch_add_explicit(&gh__metrics_mine()->scalar[m], 1, memory_order_relaxed);
}

static inline void gh__metrics_conn(int delta)
{
  atomic_fetch_add_explicit(&gh__metrics_self->conns_active, delta, memory_order_relaxed);
}

/** One request of site (index) answered with code (index), taking ns
 *  (UINT64_MAX: no latency known, e.g. answered while parsing). */
static inline void gh__metrics_request(unsigned site, unsigned code, uint64_t ns)
{
  gh__metrics_shard_t *s = gh__metrics_mine();
  atomic_fetch_add_explicit(&s->requests[site][code], 1, memory_order_relaxed);
  if (ns != UINT64_MAX) {
    atomic_fetch_add_explicit(&s->latency[site][gh__metrics_bucket(ns)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->latency_sum_ns[site], ns, memory_order_relaxed);
  }
}

/** Sum over every slot and shard of one counter, named by its place in
 *  the first shard of slot 0 (a pointer into gh__metrics_slot_at(0)->shard);
 *  relaxed loads. */
uint64_t gh__metrics_sum(const _Atomic uint64_t *in_shard0);

/** The same sum over the shards of slot index only. */
uint64_t gh__metrics_sum_slot(unsigned index, const _Atomic uint64_t *in_shard0);

/** Sum over the slots of the gauge of active connections. */
int64_t gh__metrics_sum_conns(void);

/** Reset to the static one-slot block, zeroed (unit tests). */
void gh__metrics_reset_for_tests(void);

#endif
