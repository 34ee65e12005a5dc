/* common.h: export macro and small shared definitions of the public API. */
#ifndef GATEHOUSE_COMMON_H
#define GATEHOUSE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(GH_BUILDING_LIBRARY)
#define GH_EXPORT __attribute__((visibility("default")))
#else
#define GH_EXPORT
#endif

#define GH_VERSION_MAJOR 0
#define GH_VERSION_MINOR 1
#define GH_VERSION_PATCH 0
#define GH_VERSION_STRING "0.1.0"

/** A membership answer, from gh_token_is_member_name
 *  (token.h) and gh_http_user_is_in_role (module.h). Three states, because
 *  "not a member" and "could not find out" lead to different decisions: a
 *  deny rule must never read the second as the first. Zero is UNKNOWN, so a
 *  result that was never set, or was set by a failing call, decides nothing. */
typedef enum gh_membership {
  GH_MEMBER_UNKNOWN = 0, /**< could not decide (NSS error, size limit, ...) */
  GH_MEMBER_NO = 1,      /**< decided: not a member */
  GH_MEMBER_YES = 2,     /**< decided: a member */
} gh_membership_t;

/** Positive (success) return of the name-based membership calls: decided
 *  GH_MEMBER_NO because NSS has no group of that name, so that a caller can
 *  tell a misspelt or deleted group from an ordinary "no". */
#define GH_MEMBER_NO_SUCH_GROUP 1

#ifdef __cplusplus
}
#endif

#endif
