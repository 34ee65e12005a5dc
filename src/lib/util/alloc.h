/* alloc.h: allocation wrappers with optional failure injection (internal). */
#ifndef GH_UTIL_ALLOC_H
#define GH_UTIL_ALLOC_H

#include <stddef.h>

/*
 * Every allocation in the library goes through these, so that a build with
 * -Dfault_injection=true can make the Nth allocation fail (see
 * gh__alloc_fail_after) and tests can walk N over a whole request.
 */
void *gh__malloc(size_t size);
void *gh__calloc(size_t n, size_t size);
void *gh__realloc(void *ptr, size_t size);
char *gh__strdup(const char *s);
char *gh__strndup(const char *s, size_t n);

/** Fault-injection builds only: after n more successful allocations, every
 *  allocation fails until reset with n < 0. No-op in normal builds. */
void gh__alloc_fail_after(long n);
/** Fault-injection builds only: the allocation after n more successful ones
 *  fails, and only that one (a transient failure). Reset with
 *  gh__alloc_fail_after(-1). No-op in normal builds. */
void gh__alloc_fail_once_after(long n);
/** Fault-injection builds only: failures injected since the last
 *  gh__alloc_fail_after / gh__alloc_fail_once_after call (0 otherwise). */
long gh__alloc_injected(void);

#endif
