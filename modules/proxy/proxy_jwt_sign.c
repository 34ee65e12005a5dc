/* proxy_jwt_sign.c: test tool: prints the assertion the proxy would send, for python3-jwt to
 * verify. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy_jwt.h"

/* proxy-jwt-sign KEYFILE AUD SUB [NOW [TTL [GROUP...]]] */
int main(int argc, char **argv)
{
  proxy_jwt_t *j = NULL;
  char err[512], *tok = NULL;
  proxy_jwt_config_t cfg = {0};
  proxy_jwt_claims_t c = {0};
  int ret;

  if (argc < 4) {
    fprintf(stderr, "usage: %s KEYFILE AUD SUB [NOW [TTL [GROUP...]]]\n", argv[0]);
    return 2;
  }
  cfg.key_file = argv[1];
  cfg.ttl_s = argc > 5 ? strtoull(argv[5], NULL, 10) : 0;
  c.aud = argv[2];
  c.sub = argv[3];
  c.principal = argv[3];
  c.auth_type = "Negotiate";
  c.now = argc > 4 ? (time_t)strtoll(argv[4], NULL, 10) : 0;
  c.groups = (const char *const *)(argc > 6 ? argv + 6 : NULL);
  c.n_groups = argc > 6 ? (size_t)(argc - 6) : 0;
  ret = proxy_jwt_new(&cfg, &j, err, sizeof(err));
  if (ret != 0) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  ret = proxy_jwt_sign(j, &c, &tok);
  if (ret == 0)
    printf("%s\n", tok);
  else
    fprintf(stderr, "sign failed: %s\n", strerror(-ret));
  free(tok);
  proxy_jwt_free(j);
  return ret == 0 ? 0 : 1;
}
