/* hooks.h: internal extension points of the HTTP core for the auth engine (request gate, per-connection and per-group state). */
#ifndef GH_HTTPAPI_HOOKS_H
#define GH_HTTPAPI_HOOKS_H

#include <stdbool.h>

#include <gatehouse/httpapi.h>

/*
 * The auth engine (src/lib/httpapi/auth/) plugs in here; the HTTP core knows
 * nothing about authentication. See docs/internals/httpapi.md, "Auth hook".
 *
 * Where it runs: before the application sees the request, on the thread
 * that will hand it over: the inline worker that read it
 * (gh_server_run_workers, server.c:gh__server_run_inline), or the
 * application thread in gh_server_receive() that dequeued it (queue mode).
 * Never on an I/O thread, so it may block on GSSAPI/PAM. Per connection only
 * one request is in flight, so per-connection state needs no lock. See
 * docs/internals/request-walk.md.
 */

/** Verdicts of a request gate. */
typedef enum gh__gate_verdict {
  GH__GATE_DELIVER = 0, /**< hand the request to the application */
  GH__GATE_HANDLED = 1, /**< the gate answered and completed the request itself
                             (e.g. 401 + several WWW-Authenticate, or 400) with
                             the normal gh_response_* / gh_request_complete()
                             calls; the connection stays open unless it sent
                             GH_SEND_DISCONNECT. receive() goes on to the next
                             request. */
} gh__gate_verdict_t;

/** A request gate: returns a gh__gate_verdict_t, or a negative error, in
 *  which case the server answers 503 itself (the request is not delivered,
 *  the connection is kept). On GH__GATE_HANDLED the request must already be
 *  completed (req is invalid afterwards). */
typedef int (*gh__request_gate_cb)(gh_request_t *req, void *arg);

/** Installs the gate of a server (one per server; NULL removes it). Call
 *  before gh_server_start(), or from a configuring thread before any worker
 *  calls receive. arg is borrowed. */
void gh__server_set_request_gate(gh_server_t *server, gh__request_gate_cb gate, void *arg);

/** A response hook runs on the sending thread right before the response head
 *  is serialised (first send or complete), e.g. to add the mutual-auth
 *  WWW-Authenticate to a final 2xx. It may call gh_response_set_header /
 *  add_header; it must not send. */
typedef void (*gh__response_hook_cb)(gh_request_t *req, int status, void *arg);
void gh__server_set_response_hook(gh_server_t *server, gh__response_hook_cb hook, void *arg);

/** The status the response will carry (or carried); 200 if unset. */
int gh__response_get_status(const gh_request_t *req);
/** True once the head went out. */
bool gh__response_headers_sent(const gh_request_t *req);

/** One-call server answer for gates: status, reason (NULL = standard),
 *  n_hdrs name/value pairs (hdrs[2i], hdrs[2i+1]), a text/plain body (NULL =
 *  the reason phrase), then gh_request_complete(). The connection is kept
 *  when the request allows it. Returns as gh_request_complete(). */
int gh__request_reply(gh_request_t *req, int status, const char *reason,
                      const char *const *hdrs, size_t n_hdrs, const char *body);

/** Per-connection opaque state (e.g. an NTLM context bound to the TCP
 *  connection). The destructor runs once when the connection is freed (on
 *  whichever thread drops the last reference), or when the state is
 *  replaced. Only from the thread that currently owns a request of this
 *  connection. */
void gh__request_set_conn_state(gh_request_t *req, void *state, void (*destroy)(void *state));
void *gh__request_get_conn_state(const gh_request_t *req);

/** Per-request slot (e.g. the auth-info record); destructor runs at
 *  gh_request_complete(). Same thread rules as the request. */
void gh__request_set_auth_slot(gh_request_t *req, void *data, void (*destroy)(void *data));
void *gh__request_get_auth_slot(const gh_request_t *req);

/** Per-URL-group slot (e.g. the group's auth configuration); destructor runs
 *  at gh_server_free(). Configure before gh_server_start(); read-only after. */
void gh__url_group_set_auth_slot(gh_url_group_t *group, void *data, void (*destroy)(void *data));
void *gh__url_group_get_auth_slot(const gh_url_group_t *group);
/** The server a group belongs to. */
gh_server_t *gh__url_group_get_server(const gh_url_group_t *group);

/** Per-server auth state (the auth engine); destructor runs in
 *  gh_server_free() after the workers are joined. Configure before
 *  gh_server_start(); read-only after. */
void gh__server_set_auth_state(gh_server_t *server, void *data, void (*destroy)(void *data));
void *gh__server_get_auth_state(const gh_server_t *server);

/** The connection's socket (e.g. for SO_PEERCRED on unix listeners).
 *  Borrowed: valid while the caller owns the request. */
int gh__request_get_fd(const gh_request_t *req);

/** The tls-server-end-point channel-binding application data of the
 *  request's TLS connection ("tls-server-end-point:" + certificate hash,
 *  RFC 5929), computed once per connection; NULL on plain connections.
 *  Borrowed from the connection: valid while the caller owns the request. */
const void *gh__request_get_channel_binding(gh_request_t *req, size_t *ret_len);

/** Whether the response already has a header of that name (case-insensitive). */
bool gh__response_has_header(const gh_request_t *req, const char *name);

#endif
