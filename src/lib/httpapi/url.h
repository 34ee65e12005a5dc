/* url.h: request-target decoding, dot-segment removal and URL-group prefix matching (internal). */
#ifndef GH_HTTPAPI_URL_H
#define GH_HTTPAPI_URL_H

#include <stdbool.h>
#include <stddef.h>

#include <gatehouse/httpapi.h>

#include "util/pool.h"

/** Splits a request-target (origin-form "/p?q", absolute-form
 *  "http://h/p?q", or "*") into a decoded, dot-segment-free path and the raw
 *  query (NULL if none), both allocated from pool. Rejects with GH_EPARSE:
 *  bad or NUL percent-escapes, ".." above the root, other forms. Returns 0 or
 *  GH_EPARSE / -ENOMEM. */
int gh__url_split(const char *target, size_t len, gh__pool_t *pool, char **ret_path,
                  char **ret_query);

/** Normalises a URL-group prefix in place: must start with '/', trailing
 *  slashes removed (except for "/"). Returns 0 or -EINVAL. */
int gh__url_prefix_normalize(char *prefix);

/** True when path lies under prefix on a segment boundary ("/a" matches
 *  "/a", "/a/", "/a/b", not "/ab"; "/" matches everything). */
bool gh__url_prefix_match(const char *prefix, size_t prefix_len, const char *path);

/** Index of the longest matching prefix among n (not necessarily sorted), or -1. */
int gh__url_best_match(const char *const *prefixes, const size_t *lens, size_t n,
                       const char *path);

/** The URL group of a decoded path: the one whose prefix is the longest
 *  match (gh__url_best_match over the server's groups), or NULL. Groups are
 *  fixed once the server started, so any event thread may call it. */
gh_url_group_t *gh__url_group_match(gh_server_t *srv, const char *path);

#endif
