/* pool.h: region allocator for per-request and per-connection memory (internal). */
#ifndef GH_UTIL_POOL_H
#define GH_UTIL_POOL_H

#include <stddef.h>

/*
 * A pool hands out memory that lives until gh__pool_reset() or
 * gh__pool_free(). Not thread-safe: a pool belongs to one object (a request,
 * a connection) and is used by whichever thread currently owns that object.
 * Allocations are 16-byte aligned. Large allocations (over a quarter of the
 * block size) get their own block. Cleanup callbacks run in reverse order of
 * registration on reset and free.
 */
typedef struct gh__pool gh__pool_t;

typedef void (*gh__pool_cleanup_cb)(void *data);

/** New pool whose blocks are block_size bytes (0 = 4096). NULL on ENOMEM. */
gh__pool_t *gh__pool_new(size_t block_size);
/** Runs cleanups and frees everything, including the pool. Accepts NULL. */
void gh__pool_free(gh__pool_t *pool);
/** Runs cleanups and forgets all allocations; keeps the first block. */
void gh__pool_reset(gh__pool_t *pool);
/** Uninitialised memory, or NULL on ENOMEM or size overflow. */
void *gh__pool_alloc(gh__pool_t *pool, size_t size);
/** Zeroed memory, or NULL. */
void *gh__pool_calloc(gh__pool_t *pool, size_t n, size_t size);
/** NUL-terminated copy of len bytes of s, or NULL. */
char *gh__pool_strndup(gh__pool_t *pool, const char *s, size_t len);
/** NUL-terminated copy of s, or NULL. */
char *gh__pool_strdup(gh__pool_t *pool, const char *s);
/** Registers fn(data) to run on reset/free. Returns 0 or -ENOMEM. */
int gh__pool_add_cleanup(gh__pool_t *pool, gh__pool_cleanup_cb fn, void *data);
/** Bytes currently handed out plus overhead (for limits and statistics). */
size_t gh__pool_used(const gh__pool_t *pool);

#endif
