/* proxy_negotiate.h: Kerberos to the upstream: an Authorization: Negotiate for the client from its
 * delegated or S4U credential, and the upstream's mutual authentication. */
#ifndef GH_PROXY_NEGOTIATE_H
#define GH_PROXY_NEGOTIATE_H

#include <stddef.h>

/*
 * upstream_auth = negotiate: for each upstream request the proxy starts a
 * Kerberos (RFC 4121, raw krb5 in RFC 4559 Negotiate, as pykerberos and
 * curl's GSS-API Kerberos do) context as the client to upstream_spn, with
 * the client's credential from the request's MEMORY ccache: the TGT the
 * client delegated (then a service ticket is asked of the KDC), or the
 * ticket S4U2Proxy got for the site's s4u_targets (s4u = proxy). The
 * context asks for mutual authentication; the upstream's final response
 * must carry "WWW-Authenticate: Negotiate <token>" that completes it
 * (proxy_negotiate_finish), otherwise the response is not relayed.
 * Credentials are never delegated further (no GSS_C_DELEG_FLAG).
 * All GSS calls run at base identity and touch no default ccache.
 */

typedef struct proxy_negotiate proxy_negotiate_t;

/** Starts the context: ccache is the request's ccache name ("MEMORY:..."
 *  or "FILE:..."), spn "service/host[@REALM]" (a Kerberos principal name;
 *  without a realm the default realm) or "service@host" (host-based). On
 *  success *ret_n is the context (proxy_negotiate_free) and *ret_value the
 *  Authorization value "Negotiate <base64>" (malloc'd). Errors: -EINVAL
 *  (no ccache or spn), -ENOKEY (no usable credential for the client in the
 *  ccache, or the KDC refused a ticket to spn), -ENOMEM, with the GSS
 *  message in err. Any thread; calls the KDC when no ticket is cached. */
int proxy_negotiate_start(const char *ccache, const char *spn, proxy_negotiate_t **ret_n,
                          char **ret_value, char *err, size_t errlen);

/** Checks the upstream's mutual authentication: values are the
 *  WWW-Authenticate fields of its final response (n may be 0). 0 when one
 *  "Negotiate <token>" completes the context with the mutual flag;
 *  -EBADMSG (no Negotiate token, bad base64) or -EPERM (the token does not
 *  prove the upstream is spn) with the reason in err. */
int proxy_negotiate_finish(proxy_negotiate_t *n, const char *const *values, size_t n_values,
                           char *err, size_t errlen);

/** Deletes the context. Accepts NULL. */
void proxy_negotiate_free(proxy_negotiate_t *n);

/** The base64 token of a "Negotiate <token>" value (scheme in any case), as
 *  a pointer into value with *ret_len; NULL for another scheme or no token. */
const char *proxy_negotiate_token_of(const char *value, size_t *ret_len);

#endif
