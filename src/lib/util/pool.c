/* pool.c: region allocator for per-request and per-connection memory. */
#include "util/pool.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

#define GH__POOL_ALIGN 16u

typedef struct gh__pool_block {
  struct gh__pool_block *next;
  size_t size; /* usable bytes after the header */
  size_t used;
} gh__pool_block_t;

typedef struct gh__pool_cleanup {
  struct gh__pool_cleanup *next;
  gh__pool_cleanup_cb fn;
  void *data;
} gh__pool_cleanup_t;

struct gh__pool {
  gh__pool_block_t *head; /* current block; first block is last in the chain */
  gh__pool_block_t *first;
  gh__pool_block_t *large; /* private blocks of big allocations */
  gh__pool_cleanup_t *cleanups;
  size_t block_size;
  size_t total;
};

static size_t block_header(void)
{
  return (sizeof(gh__pool_block_t) + GH__POOL_ALIGN - 1) & ~(size_t)(GH__POOL_ALIGN - 1);
}

static gh__pool_block_t *block_new(size_t size)
{
  if (size > SIZE_MAX - block_header())
    return NULL;
  gh__pool_block_t *b = gh__malloc(block_header() + size);
  if (b == NULL)
    return NULL;
  b->next = NULL;
  b->size = size;
  b->used = 0;
  return b;
}

gh__pool_t *gh__pool_new(size_t block_size)
{
  if (block_size == 0)
    block_size = 4096;
  gh__pool_t *p = gh__malloc(sizeof(*p));
  if (p == NULL)
    return NULL;
  p->first = block_new(block_size);
  if (p->first == NULL) {
    free(p);
    return NULL;
  }
  p->head = p->first;
  p->large = NULL;
  p->cleanups = NULL;
  p->block_size = block_size;
  p->total = block_size;
  return p;
}

static void run_cleanups(gh__pool_t *p)
{
  /* Cleanups may allocate nothing from this pool; they are popped first so a
   * cleanup that fails cannot run twice. */
  while (p->cleanups != NULL) {
    gh__pool_cleanup_t *c = p->cleanups;
    p->cleanups = c->next;
    c->fn(c->data);
  }
}

static void free_extra_blocks(gh__pool_t *p)
{
  gh__pool_block_t *b = p->head;
  while (b != NULL && b != p->first) {
    gh__pool_block_t *next = b->next;
    free(b);
    b = next;
  }
  while (p->large != NULL) {
    gh__pool_block_t *next = p->large->next;
    free(p->large);
    p->large = next;
  }
  p->head = p->first;
  p->first->next = NULL;
  p->first->used = 0;
  p->total = p->first->size;
}

void gh__pool_reset(gh__pool_t *p)
{
  if (p == NULL)
    return;
  run_cleanups(p);
  free_extra_blocks(p);
}

void gh__pool_free(gh__pool_t *p)
{
  if (p == NULL)
    return;
  gh__pool_reset(p);
  free(p->first);
  free(p);
}

void *gh__pool_alloc(gh__pool_t *p, size_t size)
{
  if (size == 0)
    size = 1;
  if (size > SIZE_MAX - GH__POOL_ALIGN)
    return NULL;
  size = (size + GH__POOL_ALIGN - 1) & ~(size_t)(GH__POOL_ALIGN - 1);

  gh__pool_block_t *b = p->head;
  if (b->size - b->used >= size) {
    void *r = (char *)b + block_header() + b->used;
    b->used += size;
    return r;
  }
  /* Big allocations get a private block on a separate list, so the current
   * block's free space stays usable for small ones. */
  if (size > p->block_size / 4) {
    gh__pool_block_t *big = block_new(size);
    if (big == NULL)
      return NULL;
    big->used = size;
    big->next = p->large;
    p->large = big;
    p->total += size;
    return (char *)big + block_header();
  }
  gh__pool_block_t *nb = block_new(p->block_size);
  if (nb == NULL)
    return NULL;
  nb->next = p->head;
  p->head = nb;
  p->total += p->block_size;
  nb->used = size;
  return (char *)nb + block_header();
}

void *gh__pool_calloc(gh__pool_t *p, size_t n, size_t size)
{
  if (size != 0 && n > SIZE_MAX / size)
    return NULL;
  void *r = gh__pool_alloc(p, n * size);
  if (r != NULL)
    memset(r, 0, n * size);
  return r;
}

char *gh__pool_strndup(gh__pool_t *p, const char *s, size_t len)
{
  if (len == SIZE_MAX)
    return NULL;
  char *r = gh__pool_alloc(p, len + 1);
  if (r == NULL)
    return NULL;
  memcpy(r, s, len);
  r[len] = '\0';
  return r;
}

char *gh__pool_strdup(gh__pool_t *p, const char *s)
{
  return gh__pool_strndup(p, s, strlen(s));
}

int gh__pool_add_cleanup(gh__pool_t *p, gh__pool_cleanup_cb fn, void *data)
{
  gh__pool_cleanup_t *c = gh__pool_alloc(p, sizeof(*c));
  if (c == NULL)
    return -ENOMEM;
  c->fn = fn;
  c->data = data;
  c->next = p->cleanups;
  p->cleanups = c;
  return 0;
}

size_t gh__pool_used(const gh__pool_t *p)
{
  return p->total;
}
