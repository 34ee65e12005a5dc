/* metrics.h: the HTTP and auth counters over the util counter block — status code indexes, auth
 * outcomes, session outcomes (internal). */
#ifndef GH_HTTPAPI_METRICS_H
#define GH_HTTPAPI_METRICS_H

#include <stdint.h>

#include <gatehouse/authinfo.h>

#include "util/metrics.h"

/* Status codes with their own series; any other counts as its class
 * ("4xx"), outside 100..599 as "other". */
extern const uint8_t gh__metrics_code_idx[600];

static inline unsigned gh__metrics_code(int status)
{
  if (status < 100 || status > 599)
    return 5;
  unsigned i = gh__metrics_code_idx[status];
  return i != 0 ? i : (unsigned)(status / 100 - 1);
}

/** The label value of code index i ("401", "4xx", "other"). */
const char *gh__metrics_code_name(unsigned i);

/* What an authentication step came to (one count per request that carried
 * a credential, or ran on a connection authenticated before). */
typedef enum gh__metrics_outcome {
  GH__MO_SUCCESS = 0, /* a credential of this request was accepted */
  GH__MO_CACHED,      /* the connection's earlier authentication (persist) */
  GH__MO_FAILURE,     /* refused: gatehouse_auth_failures_total says why */
  GH__MO_CONTINUE,    /* an intermediate leg (NTLM): 401 with the next token */
  GH__MO_MALFORMED,   /* 400: an Authorization the server cannot parse */
  GH__MO_ERROR,       /* 503: the server could not decide (KDC, replay cache ...) */
  GH__MO_COUNT
} gh__metrics_outcome_t;

/** Counts one authentication step of scheme type; failure is the cause for
 *  GH__MO_FAILURE (a replay also counts in gatehouse_auth_replays_refused_total). */
void gh__metrics_auth(gh_auth_type_t type, gh__metrics_outcome_t outcome,
                      gh_auth_failure_t failure);

/* Session cookies (auth_session.c). */
typedef enum gh__metrics_session {
  GH__MS_MINTED = 0, /* a cookie was issued after an authentication */
  GH__MS_ACCEPTED,   /* a cookie stood for the credential of a request */
  GH__MS_REFUSED,    /* a cookie was there and counted as no cookie: reason says why */
} gh__metrics_session_t;

typedef enum gh__metrics_session_reason {
  GH__MSR_NONE = 0,  /* minted / accepted */
  GH__MSR_MALFORMED, /* not a cookie of ours: truncated, bad encoding, unknown version */
  GH__MSR_INVALID,   /* failed authentication: tampered, or a key we do not hold */
  GH__MSR_EXPIRED,   /* past session_max_age or the credential's end */
  GH__MSR_IDLE,      /* unused for longer than session_idle */
  GH__MSR_ACCOUNT,   /* the account is gone or no longer allowed (min_uid) */
  GH__MSR_ERROR,     /* the server could not check it (memory, NSS error) */
  GH__MSR_COUNT
} gh__metrics_session_reason_t;

/** Counts one session cookie event: gh__metrics_session(GH__MS_MINTED,
 *  GH__MSR_NONE) when a cookie is issued, (GH__MS_ACCEPTED, GH__MSR_NONE)
 *  when one is used, (GH__MS_REFUSED, reason) when one is ignored. Any
 *  thread; lock-free. */
void gh__metrics_session(gh__metrics_session_t outcome, gh__metrics_session_reason_t reason);

#endif
