/* metrics.c: the counter block — the static one-slot default, attaching application memory, slots,
 * the site table, sums. */
#include "util/metrics.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define METRICS_MAGIC 0x67686d31u /* "ghm1" */

const uint64_t gh__metrics_bounds_ns[GH__METRICS_BOUNDS] = {
    500000ull,     1000000ull,    2500000ull,    5000000ull,     10000000ull,
    25000000ull,   50000000ull,   100000000ull,  250000000ull,   500000000ull,
    1000000000ull, 2500000000ull, 5000000000ull, 10000000000ull,
};

/* The default block: one slot, in this process's memory. */
typedef struct builtin {
  gh__metrics_block_t b;
  gh__metrics_slot_t s;
} builtin_t;

_Static_assert(sizeof(gh__metrics_block_t) % 64 == 0, "slots follow the header, aligned");
_Static_assert(sizeof(gh__metrics_slot_t) % 64 == 0, "each slot on its own cache lines");
_Static_assert(offsetof(builtin_t, s) == sizeof(gh__metrics_block_t), "layout of the default");

static builtin_t builtin = {
    .b = {.magic = METRICS_MAGIC, .n_slots = 1, .n_sites = 2, .procs_alive = 1}};

gh__metrics_block_t *gh__metrics_blk = &builtin.b;
gh__metrics_slot_t *gh__metrics_self = &builtin.s;
__thread unsigned gh__metrics_tix;

unsigned gh__metrics_pick_shard(void)
{
  static atomic_uint next;
  gh__metrics_tix = atomic_fetch_add_explicit(&next, 1, memory_order_relaxed) %
                        GH__METRICS_SHARDS + 1;
  return gh__metrics_tix;
}

static gh__metrics_slot_t *slot_at(gh__metrics_block_t *b, unsigned i)
{
  return (gh__metrics_slot_t *)((char *)b + sizeof(*b)) + i;
}

size_t gh__metrics_size(unsigned n_slots)
{
  if (n_slots == 0 || n_slots > GH__METRICS_MAX_SLOTS)
    return 0;
  return sizeof(gh__metrics_block_t) + (size_t)n_slots * sizeof(gh__metrics_slot_t);
}

int gh__metrics_attach(void *mem, size_t len, unsigned n_slots)
{
  size_t need = gh__metrics_size(n_slots);
  if (mem == NULL || need == 0 || len < need || ((uintptr_t)mem % 64) != 0)
    return -EINVAL;
  gh__metrics_block_t *old = gh__metrics_blk, *b = mem;
  memset(mem, 0, need);
  b->magic = METRICS_MAGIC;
  b->n_slots = n_slots;
  atomic_store(&b->procs_alive, 1);
  uint32_t n = atomic_load(&old->n_sites);
  for (uint32_t i = 0; i < n && i < GH__METRICS_SITES; i++)
    if (atomic_load(&old->site_ready[i]) != 0) {
      memcpy(b->site_name + (size_t)i * GH__METRICS_SITE_NAME,
             old->site_name + (size_t)i * GH__METRICS_SITE_NAME, GH__METRICS_SITE_NAME);
      atomic_store(&b->site_ready[i], 1);
    }
  atomic_store(&b->n_sites, n < 2 ? 2 : n);
  gh__metrics_blk = b;
  gh__metrics_self = slot_at(b, 0);
  atomic_store(&gh__metrics_self->pid, (int64_t)getpid());
  return 0;
}

int gh__metrics_use_slot(unsigned index)
{
  if (index >= gh__metrics_blk->n_slots)
    return -EINVAL;
  gh__metrics_self = slot_at(gh__metrics_blk, index);
  atomic_store(&gh__metrics_self->conns_active, 0);
  atomic_store(&gh__metrics_self->pid, (int64_t)getpid());
  return 0;
}

void gh__metrics_slot_gone(unsigned index)
{
  if (index < gh__metrics_blk->n_slots) {
    atomic_store(&slot_at(gh__metrics_blk, index)->conns_active, 0);
    atomic_store(&slot_at(gh__metrics_blk, index)->pid, 0);
  }
}

const gh__metrics_slot_t *gh__metrics_slot_at(unsigned index)
{
  return slot_at(gh__metrics_blk, index);
}

static const char *entry(const gh__metrics_block_t *b, unsigned i)
{
  return b->site_name + (size_t)i * GH__METRICS_SITE_NAME;
}

const char *gh__metrics_site_name(unsigned index)
{
  gh__metrics_block_t *b = gh__metrics_blk;
  if (index == GH__METRICS_SITE_NONE)
    return "(none)";
  if (index == GH__METRICS_SITE_OTHER)
    return "(other)";
  if (index >= GH__METRICS_SITES ||
      atomic_load_explicit(&b->site_ready[index], memory_order_acquire) == 0)
    return NULL;
  return entry(b, index);
}

unsigned gh__metrics_site(const char *name)
{
  gh__metrics_block_t *b = gh__metrics_blk;
  char cut[GH__METRICS_SITE_NAME];
  if (name == NULL)
    return GH__METRICS_SITE_NONE;
  snprintf(cut, sizeof(cut), "%s", name);
  uint32_t n = atomic_load_explicit(&b->n_sites, memory_order_acquire);
  for (uint32_t i = 2; i < n && i < GH__METRICS_SITES; i++) {
    const char *have = gh__metrics_site_name(i);
    if (have != NULL && strcmp(have, cut) == 0)
      return i;
  }
  uint32_t i = atomic_fetch_add(&b->n_sites, 1);
  if (i >= GH__METRICS_SITES) {
    atomic_store(&b->n_sites, GH__METRICS_SITES); /* stays bounded */
    return GH__METRICS_SITE_OTHER;
  }
  memcpy(b->site_name + (size_t)i * GH__METRICS_SITE_NAME, cut, sizeof(cut));
  atomic_store_explicit(&b->site_ready[i], 1, memory_order_release);
  return i;
}

uint64_t gh__metrics_sum_slot(unsigned index, const _Atomic uint64_t *in_shard0)
{
  gh__metrics_block_t *b = gh__metrics_blk;
  size_t off = (size_t)((const char *)in_shard0 - (const char *)&slot_at(b, 0)->shard[0]);
  uint64_t sum = 0;
  for (unsigned j = 0; index < b->n_slots && j < GH__METRICS_SHARDS; j++)
    sum += atomic_load_explicit(
        (const _Atomic uint64_t *)((const char *)&slot_at(b, index)->shard[j] + off),
        memory_order_relaxed);
  return sum;
}

uint64_t gh__metrics_sum(const _Atomic uint64_t *in_shard0)
{
  uint64_t sum = 0;
  for (unsigned i = 0; i < gh__metrics_blk->n_slots; i++)
    sum += gh__metrics_sum_slot(i, in_shard0);
  return sum;
}

int64_t gh__metrics_sum_conns(void)
{
  gh__metrics_block_t *b = gh__metrics_blk;
  int64_t sum = 0;
  for (unsigned i = 0; i < b->n_slots; i++)
    sum += atomic_load_explicit(&slot_at(b, i)->conns_active, memory_order_relaxed);
  return sum < 0 ? 0 : sum;
}

void gh__metrics_reset_for_tests(void)
{
  memset(&builtin, 0, sizeof(builtin));
  builtin.b.magic = METRICS_MAGIC;
  builtin.b.n_slots = 1;
  atomic_store(&builtin.b.n_sites, 2);
  atomic_store(&builtin.b.procs_alive, 1);
  gh__metrics_blk = &builtin.b;
  gh__metrics_self = &builtin.s;
}
