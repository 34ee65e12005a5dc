/* metricsite.c: metrics_allow of the built-in metrics handler (handler = metrics): the list of who
 * may scrape, parsed and checked. */
#include "metricsite.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void add_net(gh_metrics_allow_t *a, int family, const void *addr, unsigned bits)
{
  gh_metrics_net_t *n = &a->nets[a->n++];
  n->family = family;
  memcpy(n->addr, addr, family == AF_INET ? 4 : 16);
  n->bits = bits;
}

/* One word of the list. 0, or -1 with msg. */
static int parse_word(gh_metrics_allow_t *a, const char *w, char *msg, size_t msglen)
{
  char host[INET6_ADDRSTRLEN + 1];
  uint8_t addr[16];
  const char *slash = strchr(w, '/');
  size_t hl = slash ? (size_t)(slash - w) : strlen(w);
  int family = strchr(w, ':') ? AF_INET6 : AF_INET;
  unsigned max = family == AF_INET ? 32 : 128;
  unsigned long bits = max;

  if (strcmp(w, "any") == 0) {
    a->any = true;
    return 0;
  }
  if (strcmp(w, "unix") == 0) {
    a->unix_peers = true;
    return 0;
  }
  if (a->n + 2 > GH_METRICS_ALLOW_MAX) {
    snprintf(msg, msglen, "more than %d networks", GH_METRICS_ALLOW_MAX);
    return -1;
  }
  if (strcmp(w, "loopback") == 0) {
    a->unix_peers = true;
    add_net(a, AF_INET, (const uint8_t[]){127, 0, 0, 0}, 8);
    add_net(a, AF_INET6, &in6addr_loopback, 128);
    return 0;
  }
  if (slash != NULL) {
    char *end;
    bits = strtoul(slash + 1, &end, 10);
    if (slash[1] == '\0' || *end != '\0' || bits > max)
      goto bad;
  }
  if (hl == 0 || hl >= sizeof(host))
    goto bad;
  memcpy(host, w, hl);
  host[hl] = '\0';
  if (inet_pton(family, host, addr) != 1)
    goto bad;
  add_net(a, family, addr, (unsigned)bits);
  return 0;
bad:
  snprintf(msg, msglen, "'%s' is not loopback, unix, any, an address or ADDR/BITS", w);
  return -1;
}

int gh_daemon_metrics_allow_parse(const char *value, gh_metrics_allow_t *ret, char *msg,
                                  size_t msglen)
{
  gh_metrics_allow_t a = {.set = true};
  char *copy = strdup(value), *save = NULL;
  int rc = 0;
  if (copy == NULL) {
    snprintf(msg, msglen, "out of memory");
    return -1;
  }
  for (char *w = strtok_r(copy, " \t,", &save); w != NULL && rc == 0;
       w = strtok_r(NULL, " \t,", &save))
    rc = parse_word(&a, w, msg, msglen);
  if (rc == 0 && !a.any && !a.unix_peers && a.n == 0) {
    snprintf(msg, msglen, "empty (loopback | any | ADDR[/BITS] ...)");
    rc = -1;
  }
  free(copy);
  if (rc == 0)
    *ret = a;
  return rc;
}

static bool in_net(const gh_metrics_net_t *n, int family, const uint8_t *addr)
{
  if (n->family != family)
    return false;
  unsigned full = n->bits / 8, rest = n->bits % 8;
  if (memcmp(n->addr, addr, full) != 0)
    return false;
  if (rest == 0)
    return true;
  uint8_t mask = (uint8_t)(0xff << (8 - rest));
  return (n->addr[full] & mask) == (addr[full] & mask);
}

bool gh_daemon_metrics_allowed(const gh_metrics_allow_t *allow, const gh_conn_info_t *ci)
{
  const struct sockaddr *sa = (const struct sockaddr *)&ci->peer;
  int family = sa->sa_family;
  const uint8_t *addr = NULL;
  uint8_t v4[4];

  if (allow == NULL || !allow->set)
    return false; /* the configuration always sets one (default loopback): fail closed */
  if (allow->any)
    return true;
  if (family == AF_UNIX)
    return allow->unix_peers;
  if (family == AF_INET) {
    addr = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
  } else if (family == AF_INET6) {
    addr = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)addr)) {
      memcpy(v4, addr + 12, 4);
      addr = v4;
      family = AF_INET;
    }
  } else {
    return false;
  }
  for (size_t i = 0; i < allow->n; i++)
    if (in_net(&allow->nets[i], family, addr))
      return true;
  return false;
}
