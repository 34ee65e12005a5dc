/* proxy_conf.h: the proxy module's key table. */
#ifndef GH_PROXY_CONF_H
#define GH_PROXY_CONF_H
#include <stddef.h>

#include <gatehouse/module.h>

extern const gh_module_key_t proxy_keys[];
extern const size_t proxy_n_keys;

/** 0 user, 1 groups, 2 principal, 3 auth-type, 4 group-names for an identity_headers kind
 *  (len bytes of word), or -1. */
int proxy_identity_kind(const char *word, size_t len);

#endif
