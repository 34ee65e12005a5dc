/* auth_pac.h: SIDs of an AD user — the bounded MS-PAC logon-info parser, the gss-ntlmssp SID list,
 * GSS name attributes and winbind SID → id mapping. */
#ifndef GH_HTTPAPI_AUTH_PAC_H
#define GH_HTTPAPI_AUTH_PAC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <gssapi/gssapi.h>

/* Limits of what a PAC or a SID list may hold; more is refused (GH_ELIMIT). */
#define GH__PAC_MAX_SIDS 4096u  /* user + primary group + groups + extra + resource */
#define GH__SID_MAX_SUBAUTH 15u /* MS-DTYP 2.4.2 */
#define GH__SID_STR_MAX 192u    /* "S-1-" + 48-bit authority + 15 x "-4294967295" + NUL */

/* A list of SIDs in string form ("S-1-5-21-…"). v[0] is the user's SID,
 * v[1] the primary group's (PAC) — both always present when n >= 2; the
 * rest are groups in the order the source gave them (not deduplicated). One
 * allocation: free with free(). */
typedef struct gh__sids {
  size_t n;
  char *v[];
} gh__sids_t;

/* Parse the value of the GSS name attribute "urn:mspac:logon-info": a
 * PAC_LOGON_INFO buffer (MS-PAC 2.5) with its 16-byte type serialisation
 * header, then the NDR of KERB_VALIDATION_INFO. Reads user RID, primary
 * group RID, the group RIDs and logon domain SID, the ExtraSids and (when
 * UserFlags says so) the resource groups. Every count, pointer and offset is
 * checked against len; at most GH__PAC_MAX_SIDS SIDs. Returns 0, -EBADMSG for
 * malformed input, GH_ELIMIT, -ENOMEM. Pure: any thread. */
int gh__pac_logon_sids(const uint8_t *buf, size_t len, gh__sids_t **ret_sids);

/* Parse gss-ntlmssp's "urn:gssntlmssp:sids" value: "S-1-…,S-1-…" with an
 * optional trailing NUL; the first is the user's SID. Same returns. */
int gh__ntlm_sids_parse(const char *buf, size_t len, gh__sids_t **ret_sids);

/* Whether s is a well-formed SID string (S-1-<auth>-<sub>…, at most 15
 * sub-authorities, no leading zeros, no trailing junk). */
bool gh__sid_valid(const char *s);

/* Read the SIDs of an accepted GSS name: Kerberos reads urn:mspac:logon-info,
 * NTLM urn:gssntlmssp:sids; a value is used only when GSSAPI reports it
 * authenticated (for the PAC: the server checksum verified with our key).
 * Returns 0 with *ret_sids = NULL when the name has no such attribute (an
 * MIT realm); -EBADMSG (malformed or unauthenticated), GH_ELIMIT, -ENOMEM. */
int gh__auth_name_sids(gss_name_t name, bool ntlm, gh__sids_t **ret_sids);

/* Map SIDs to gids through winbind (wbcSidsToUnixIds); SIDs that winbind
 * maps to no gid (a uid, or nothing) are left out. *ret_gids is malloc'd.
 * Returns -ENOSYS when built without libwbclient, GH_EUNAVAILABLE-like
 * -EAGAIN when winbind does not answer. */
int gh__sids_to_gids(const gh__sids_t *sids, gid_t **ret_gids, size_t *ret_n);

/* The identity of an AD user's SID through winbind: *ret_local the local
 * account (the NSS name of the uid wbcSidToUid gives), *ret_canonical the
 * name in format fmt (gh_auth_name_format_t) from wbcLookupSid (and the
 * domain's DNS name for user@realm). Both malloc'd. Returns 0; -ENOSYS
 * without libwbclient; -EAGAIN when winbind does not answer;
 * GH_ENO_SUCH_USER when the SID is no user or maps to no uid or account;
 * -EBADMSG, -ENOMEM. Base identity; any thread. */
int gh__sid_identity(const char *sid, int fmt, char **ret_canonical, char **ret_local);

/* Whether the build has libwbclient (group_source = pac needs it). */
bool gh__have_wbclient(void);

#endif
