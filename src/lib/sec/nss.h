/* nss.h: the sec layer's NSS lookups (getpwnam_r / getpwuid_r / getgrnam_r with growing buffers), shared with the auth engine's SID -> account mapping. */
#ifndef GH_SEC_NSS_H
#define GH_SEC_NSS_H

#include <stdint.h>

/* nss.c: every NSS call of the sec layer (and so of the library).
 * gh__nss_lookup is getpwnam_r / getpwuid_r / getgrnam_r with a buffer that
 * grows on ERANGE up to a cap: ret_ent is a struct passwd (PWNAM, PWUID) or
 * a struct group (GRNAM); its strings live in *ret_buf, gh__malloc'ed, the
 * caller's to free (both written only on success). name is used for PWNAM
 * and GRNAM, id for PWUID. Returns 0; GH_ENO_SUCH_USER (passwd) or
 * GH_ENOT_FOUND (group) when NSS says there is no such entry; GH_ELIMIT
 * when the entry does not fit the cap; -ENOMEM; or the NSS error (-EACCES,
 * -EIO ...): callers must not read an error as "no such entry". Base
 * identity (DESIGN.md §3); any thread. */
typedef enum gh__nss_db { GH__NSS_PWNAM, GH__NSS_PWUID, GH__NSS_GRNAM, GH__NSS_GRGID } gh__nss_db_t;
int gh__nss_lookup(gh__nss_db_t db, const char *name, uint32_t id, void *ret_ent, char **ret_buf);

#endif
