/* pl_fake.h: a fake request source and fake sec layer for pipeline unit tests. */
#ifndef GH_TEST_PL_FAKE_H
#define GH_TEST_PL_FAKE_H

#include <stdbool.h>
#include <stddef.h>

#include <gatehouse/module.h>

#include "pipeline/pipeline_int.h"

typedef struct fake_req {
  gh__pl_reqinfo_t info;
  const char *hdr_names[16];
  const char *hdr_values[16];
  size_t n_hdrs;
  const char *body;
  size_t body_off;
  gh_auth_info_t auth;
  /* captured output */
  int status;
  char headers[4096];
  char out[65536];
  size_t out_len;
  int sends;
  int fd_sends;
  bool ended_ok; /* final send seen */
  int completed;
  /* waits (fake_wait_source_ops): wait_fd records the wait; the test calls
   * it back with fake_wait_fire() */
  bool cannot_wait;    /* can_wait answers 0 */
  int wait_fail;       /* wait_fd returns this instead of recording (0: records) */
  bool wait_inline;    /* wait_fd calls back READY itself before returning */
  int wait_calls;      /* wait_fd calls */
  bool wait_suspended; /* the request was suspended at every wait_fd call */
  int wait_fd;         /* of the last wait_fd call */
  uint64_t wait_key;   /* its key (gh_http_context_wait_kept; 0: wait_fd) */
  unsigned wait_events;
  int wait_timeout_ms;
  void (*wait_cb)(int result, void *arg); /* the recorded wait, NULL once fired */
  void *wait_arg;
} fake_req_t;

extern const gh__pl_source_ops_t fake_source_ops;
/* fake_source_ops with can_wait and wait_fd */
extern const gh__pl_source_ops_t fake_wait_source_ops;

/* fake sec: a thread is "impersonating" tok while fake_sec_current != 0 */
extern const gh__pl_sec_ops_t fake_sec_ops;
extern __thread gh_token_t fake_sec_current;
extern int fake_sec_closed; /* token_close calls */
extern int fake_sec_views_pinned; /* token views pinned by users, not yet released */
extern int fake_sec_impersonations;
extern int fake_sec_reverts;
extern gh_token_t fake_sec_scoped_token; /* last token_openat2 */
extern int fake_sec_scoped_opens;

void fake_req_init(fake_req_t *r, const char *method, const char *path);
void fake_req_header(fake_req_t *r, const char *name, const char *value);
/* SUCCESS auth with token 42 (level IMPERSONATE), remote alice@EXAMPLE.ORG, local alice */
void fake_req_auth(fake_req_t *r);
/* Calls the recorded wait back with result on a new thread (at identity
 * `as`: 0 is base) and joins it. */
void fake_wait_fire(fake_req_t *r, int result, gh_token_t as);

/* new pipeline with fake sec and a config holding "site /" + given site keys (NULL-terminated
 * pairs) */
gh_pipeline_t *fake_pipeline(const char *const *kv);

#endif
